//! The ticket intake over HTTP: Herald's own events and Alertmanager's webhook, stored with their
//! template context before 202; validation, roles, idempotency, on both backends.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use support::tickets::{alertmanager_payload, context, events_of, integration};
use support::{Backend, TestApp, problem, spawn_app};

backend_tests!(
    a_herald_event_is_stored_with_its_context_before_202,
    each_invalid_field_is_a_400_naming_it,
    an_unknown_integration_is_404_and_one_without_tickets_409,
    an_alertmanager_group_is_one_event_keyed_by_its_group_key,
    per_alert_each_alert_is_an_event_keyed_by_its_fingerprint,
    the_events_role_may_post_events_and_nothing_else,
    a_retried_post_with_its_idempotency_key_stores_nothing_new,
    accepted_and_queued_events_are_in_the_metrics,
);

const EVENTS_USER: &str = "alertmanager";

/// A Herald with the integration `jira` (tickets on) and an events user.
async fn app(backend: Backend) -> Option<(TestApp, String)> {
    let app = spawn_app(backend).await?;
    integration(&app.state.store, "jira", true).await;
    let password = app.create_user(EVENTS_USER, "events").await;
    Some((app, password))
}

fn event() -> Value {
    json!({
        "integration": "jira", "dedup_key": "trivy/app/CVE-2024-3094", "status": "firing",
        "summary": "CVE-2024-3094 in app:1.4", "description": "xz backdoor",
        "labels": {"severity": "critical", "team": "platform"},
        "annotations": {"runbook": "https://wiki.example.com/cve"},
        "url": "https://scanner.example.com/findings/42"
    })
}

async fn post(app: &TestApp, password: &str, path: &str, body: &Value) -> reqwest::Response {
    app.post(path)
        .basic_auth(EVENTS_USER, Some(password))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn accepted_ids(response: reqwest::Response) -> Vec<String> {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ids: Vec<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(body["accepted"], ids.len());
    ids
}

async fn a_herald_event_is_stored_with_its_context_before_202(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    let ids = accepted_ids(post(&app, &password, "/api/v1/events", &event()).await).await;
    assert_eq!(ids.len(), 1);
    // Answered after the commit: the row is there as soon as the answer is.
    let row = app.state.store.ticket_event(&ids[0]).await.unwrap().expect("stored");
    assert_eq!(
        (
            row.integration.as_str(),
            row.dedup_key.as_str(),
            row.status.as_str(),
            row.source.as_str()
        ),
        ("jira", "trivy/app/CVE-2024-3094", "firing", "api")
    );
    assert_eq!(
        (row.state.as_str(), row.attempts, row.submitted_by.as_str()),
        ("queued", 0, EVENTS_USER)
    );
    assert_eq!(row.node_id, app.state.node_id.to_string());
    assert!(row.next_attempt_at <= row.created_at && row.lease_until.is_none() && row.last_error.is_none());
    let context = context(&row);
    let mut keys: Vec<&str> = context.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "alerts",
            "annotations",
            "common_annotations",
            "common_labels",
            "dedup_key",
            "description",
            "ends_at",
            "external_url",
            "group_labels",
            "integration",
            "labels",
            "receiver",
            "source",
            "starts_at",
            "status",
            "summary",
            "url"
        ]
    );
    assert_eq!(context["labels"], json!({"severity": "critical", "team": "platform"}));
    assert_eq!(context["annotations"]["runbook"], "https://wiki.example.com/cve");
    assert_eq!(context["url"], "https://scanner.example.com/findings/42");
    assert_eq!(context["summary"], "CVE-2024-3094 in app:1.4");
    assert!(context["starts_at"].as_str().unwrap().ends_with('Z'), "{context}");
    assert_eq!(context["ends_at"], Value::Null);
    assert_eq!((&context["alerts"], &context["group_labels"]), (&json!([]), &json!({})));

    // The events of one key are ordered by id: a later post sorts after.
    let mut resolved = event();
    resolved["status"] = json!("resolved");
    let later = accepted_ids(post(&app, &password, "/api/v1/events", &resolved).await).await;
    assert!(later[0] > ids[0]);
    let rows = events_of(&app.state.store, "jira").await;
    let order: Vec<(&str, &str)> = rows.iter().map(|r| (r.id.as_str(), r.status.as_str())).collect();
    assert_eq!(order, [(ids[0].as_str(), "firing"), (later[0].as_str(), "resolved")]);
    assert!(context_of(&rows[1])["ends_at"].is_string());
}

fn context_of(row: &herald::store::TicketEventRow) -> Value {
    context(row)
}

async fn each_invalid_field_is_a_400_naming_it(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    let cases = [
        ("dedup_key", json!("")),
        ("dedup_key", json!("x".repeat(256))),
        ("dedup_key", json!("line\nbreak")),
        ("status", json!("open")),
        ("summary", json!("   ")),
        ("summary", json!("s".repeat(1001))),
        ("description", json!("d".repeat(32_768))),
        ("url", json!("javascript:alert(1)")),
        (
            "labels",
            json!(
                (0..101)
                    .map(|i| (format!("k{i}"), json!("v")))
                    .collect::<serde_json::Map<_, _>>()
            ),
        ),
    ];
    for (field, value) in cases {
        let mut body = event();
        body[field] = value;
        let response = post(&app, &password, "/api/v1/events", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{field}");
        let answer = problem(response).await;
        assert_eq!(answer["field"], field, "{answer}");
    }
    let mut body = event();
    body["labels"] = json!({"team": "v".repeat(1025)});
    let answer = problem(post(&app, &password, "/api/v1/events", &body).await).await;
    assert_eq!(answer["field"], "labels.team");
    let mut body = event();
    body["priority"] = json!("high");
    let answer = problem(post(&app, &password, "/api/v1/events", &body).await).await;
    assert!(answer["detail"].as_str().unwrap().contains("priority"), "{answer}");
    let mut body = alertmanager_payload();
    body["version"] = json!("3");
    let answer = problem(post(&app, &password, "/api/v1/alertmanager/jira", &body).await).await;
    assert_eq!(answer["field"], "version");
    let response = post(
        &app,
        &password,
        "/api/v1/alertmanager/jira?per=rule",
        &alertmanager_payload(),
    )
    .await;
    assert_eq!(problem_field(response).await, "per");
    assert!(
        events_of(&app.state.store, "jira").await.is_empty(),
        "nothing invalid is stored"
    );
}

async fn problem_field(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    problem(response).await["field"].as_str().unwrap_or_default().to_owned()
}

async fn an_unknown_integration_is_404_and_one_without_tickets_409(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    integration(&app.state.store, "jira-off", false).await;
    let mut body = event();
    body["integration"] = json!("nope");
    let response = post(&app, &password, "/api/v1/events", &body).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = post(&app, &password, "/api/v1/alertmanager/nope", &alertmanager_payload()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    body["integration"] = json!("jira-off");
    let response = post(&app, &password, "/api/v1/events", &body).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let answer = problem(response).await;
    assert_eq!(answer["code"], "tickets_disabled");
    assert!(
        answer["detail"].as_str().unwrap().contains("tickets.enabled"),
        "{answer}"
    );
    let response = post(
        &app,
        &password,
        "/api/v1/alertmanager/jira-off",
        &alertmanager_payload(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(events_of(&app.state.store, "jira-off").await.is_empty());
}

async fn an_alertmanager_group_is_one_event_keyed_by_its_group_key(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    let ids = accepted_ids(post(&app, &password, "/api/v1/alertmanager/jira", &alertmanager_payload()).await).await;
    assert_eq!(ids.len(), 1);
    let rows = events_of(&app.state.store, "jira").await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (row.dedup_key.as_str(), row.status.as_str(), row.source.as_str()),
        ("{}/{}:{alertname=\"DiskFull\"}", "firing", "alertmanager")
    );
    let context = context(row);
    assert_eq!(context["summary"], "DiskFull");
    assert_eq!(
        context["labels"],
        json!({"alertname": "DiskFull", "severity": "critical"})
    );
    assert_eq!(context["group_labels"], json!({"alertname": "DiskFull"}));
    assert_eq!(context["receiver"], "herald");
    assert_eq!(context["external_url"], "http://alertmanager:9093");
    assert_eq!(context["starts_at"], "2024-05-01T07:00:00Z");
    let alerts = context["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["labels"]["instance"], "db1:9100");
    assert_eq!(alerts[0]["starts_at"], "2024-05-01T10:00:00.123456789Z");
    assert_eq!(alerts[0]["ends_at"], Value::Null);
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["fingerprint"], "0f1e2d3c4b5a6978");
}

async fn per_alert_each_alert_is_an_event_keyed_by_its_fingerprint(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    let ids = accepted_ids(
        post(
            &app,
            &password,
            "/api/v1/alertmanager/jira?per=alert",
            &alertmanager_payload(),
        )
        .await,
    )
    .await;
    assert_eq!(ids.len(), 2);
    let rows = events_of(&app.state.store, "jira").await;
    let keys: Vec<(&str, &str)> = rows.iter().map(|r| (r.dedup_key.as_str(), r.status.as_str())).collect();
    assert_eq!(keys, [("a1b2c3d4e5f60718", "firing"), ("0f1e2d3c4b5a6978", "resolved")]);
    assert_eq!(rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), ids);
    let first = context(&rows[0]);
    assert_eq!(first["summary"], "Disk full on db1");
    assert_eq!(first["labels"]["instance"], "db1:9100");
    assert_eq!(first["url"], "http://prometheus:9090/graph?g0.expr=disk");
    assert_eq!(first["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(context(&rows[1])["ends_at"], "2024-05-01T09:00:00Z");
}

async fn the_events_role_may_post_events_and_nothing_else(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    let monitor = app.create_user("watcher", "monitor").await;
    let mailer = app.create_user("mailer", "mail").await;
    for (user, secret) in [("watcher", &monitor), ("mailer", &mailer)] {
        let response = app
            .post("/api/v1/events")
            .basic_auth(user, Some(secret))
            .json(&event())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{user}");
        let response = app
            .post("/api/v1/alertmanager/jira")
            .basic_auth(user, Some(secret))
            .json(&alertmanager_payload())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{user}");
    }
    for path in [
        "/api/v1/mail/queue",
        "/metrics",
        "/rest/mailqueue/1.0/status",
        "/api/v1/integrations",
    ] {
        let response = app
            .get(path)
            .basic_auth(EVENTS_USER, Some(&password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let response = app
        .post("/api/v1/mail")
        .basic_auth(EVENTS_USER, Some(&password))
        .json(&json!({"to": ["a@example.com"], "subject": "s", "text": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // An events user's API token works like its password; admin may post too.
    let (_, token) = app.create_token(EVENTS_USER).await;
    let response = app
        .post("/api/v1/events")
        .bearer_auth(&token)
        .json(&event())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = app
        .admin(Method::POST, "/api/v1/events")
        .json(&event())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = app
        .post("/api/v1/events")
        .basic_auth(EVENTS_USER, Some("wrong-password"))
        .json(&event())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(events_of(&app.state.store, "jira").await.len(), 2);
}

async fn a_retried_post_with_its_idempotency_key_stores_nothing_new(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    let send = |body: Value| {
        app.post("/api/v1/alertmanager/jira?per=alert")
            .basic_auth(EVENTS_USER, Some(&password))
            .header("Idempotency-Key", "am-notification-1")
            .json(&body)
            .send()
    };
    let first = send(alertmanager_payload()).await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let ids = accepted_ids(first).await;
    let again = send(alertmanager_payload()).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(accepted_ids(again).await, ids);
    // A different request under the same key (here: another summary), not a retry.
    let mut other = alertmanager_payload();
    other["alerts"][0]["annotations"]["summary"] = json!("Disk nearly full on db1");
    let response = send(other).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem(response).await["code"], "idempotency_key_reused");
    assert_eq!(events_of(&app.state.store, "jira").await.len(), 2);
}

async fn accepted_and_queued_events_are_in_the_metrics(backend: Backend) {
    let Some((app, password)) = app(backend).await else {
        return;
    };
    accepted_ids(post(&app, &password, "/api/v1/events", &event()).await).await;
    accepted_ids(
        post(
            &app,
            &password,
            "/api/v1/alertmanager/jira?per=alert",
            &alertmanager_payload(),
        )
        .await,
    )
    .await;
    let metrics = app.admin_text("/metrics").await;
    for line in [
        "herald_ticket_events_accepted_total{source=\"api\"} 1",
        "herald_ticket_events_accepted_total{source=\"alertmanager\"} 2",
        "herald_ticket_events_queued{integration=\"jira\"} 3",
        "herald_ticket_events_errors{integration=\"jira\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from:\n{metrics}");
    }
    assert!(metrics.contains("herald_ticket_events_oldest_queued_age_seconds{integration=\"jira\"}"));
}
