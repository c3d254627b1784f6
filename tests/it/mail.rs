//! The mail queue through its HTTP API, delivering to a real SMTP server (smtp-sink), against both
//! backends.

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::smtp::SmtpSink;
use support::{Backend, TestApp, eventually, problem, spawn_app, spawn_app_with};

backend_tests!(
    accepted_mail_is_delivered_with_its_envelope_and_headers,
    status_reports_size_and_error_size_as_json_and_xml,
    status_needs_monitor_and_negotiates_or_refuses,
    cluster_status_of_a_single_node_is_empty,
    malformed_submissions_get_400_naming_the_field,
    oversized_submissions_get_413,
    idempotency_keys_return_the_same_id_and_refuse_a_different_body,
    the_mail_role_may_submit_and_nothing_else,
    transient_failures_are_retried_with_backoff,
    permanent_failures_go_to_the_error_queue_and_can_be_resent_or_deleted,
    disconnects_and_slow_replies_are_transient,
    too_many_attempts_end_in_the_error_queue,
    concurrent_submissions_are_all_stored,
    other_writes_get_their_turn_during_a_stream_of_submissions,
    the_queue_is_listed_in_pages,
    flush_makes_waiting_mail_due_now,
    implicit_tls_with_a_private_ca_delivers_and_an_unknown_ca_is_refused,
    bare_cr_or_lf_in_a_body_reaches_the_relay_as_crlf_and_smuggles_no_second_message,
);

fn mail(to: &str) -> serde_json::Value {
    json!({"to": [to], "subject": "Disk almost full", "text": "90% used on /var"})
}

async fn submit(app: &TestApp, body: &serde_json::Value) -> String {
    let response = app.admin(Method::POST, "/api/v1/mail").json(body).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        response.text().await.unwrap()
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/mail/{id}"));
    id
}

async fn status(app: &TestApp) -> (i64, i64) {
    let body: serde_json::Value = app.admin_json("/rest/mailqueue/1.0/status").await;
    (body["size"].as_i64().unwrap(), body["errorSize"].as_i64().unwrap())
}

/// An app that does not deliver by itself: tests drive delivery one batch at a time.
async fn driven_app(backend: Backend, sink: &SmtpSink) -> Option<TestApp> {
    let url = sink.url();
    spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.mail.retry.initial = Duration::from_millis(1);
        s.mail.retry.max = Duration::from_millis(2);
        s.mail.smtp_timeout = Duration::from_secs(1);
    })
    .await
}

async fn deliver(app: &TestApp) -> herald::mail::BatchReport {
    app.state.delivery.deliver_due_batch(100).await.unwrap()
}

async fn accepted_mail_is_delivered_with_its_envelope_and_headers(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let url = sink.url();
    let Some(app) = spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.mail.delivery = true;
    })
    .await
    else {
        return;
    };
    let id = submit(
        &app,
        &json!({
            "from": "Herald Alerts <alerts@example.com>", "to": ["ops@example.com"], "cc": ["lead@example.com"],
            "bcc": ["audit@example.com"], "reply_to": "noreply@example.com", "subject": "Jira is down",
            "text": "plain body", "html": "<p>html body</p>", "headers": {"X-Ticket": "OPS-7"}
        }),
    )
    .await;
    let delivered = eventually(Duration::from_secs(20), || async { sink.received_ids().contains(&id) }).await;
    assert!(delivered, "the message never reached the SMTP server");
    let received = sink.received().into_iter().find(|m| m.data.contains(&id)).unwrap();
    assert_eq!(received.mail_from, "alerts@example.com");
    assert_eq!(
        received.rcpt_to,
        ["ops@example.com", "lead@example.com", "audit@example.com"]
    );
    assert_eq!(received.header("Subject").as_deref(), Some("Jira is down"));
    assert_eq!(received.header("X-Ticket").as_deref(), Some("OPS-7"));
    assert_eq!(received.header("Reply-To").as_deref(), Some("noreply@example.com"));
    assert!(received.header("Bcc").is_none(), "Bcc must not be in the headers");
    assert!(received.data.contains("plain body") && received.data.contains("html body"));
    let drained = eventually(Duration::from_secs(10), || async { status(&app).await == (0, 0) }).await;
    assert!(drained, "delivered mail leaves the queue");
    let metrics = app.admin_text("/metrics").await;
    for line in [
        "herald_mail_delivery_attempts_total{reason=\"delivered\"} 1",
        "herald_mail_delivery_latency_seconds_count 1",
        "herald_mail_commit_batch_size_count 1",
        "herald_mail_commit_batch_size_sum 1.0",
        "herald_mail_queue_size 0",
        "herald_mail_error_queue_size 0",
        "herald_mail_oldest_queued_age_seconds 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }
    let missing = app
        .admin(Method::GET, &format!("/api/v1/mail/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn status_reports_size_and_error_size_as_json_and_xml(backend: Backend) {
    let Some(sink) = SmtpSink::start(&["-f", "RCPT"]) else {
        return;
    };
    let Some(app) = driven_app(backend, &sink).await else {
        return;
    };
    for i in 0..3 {
        submit(&app, &mail(&format!("user{i}@example.com"))).await;
    }
    let json = app
        .admin(Method::GET, "/rest/mailqueue/1.0/status")
        .send()
        .await
        .unwrap();
    assert_eq!(json.headers()["content-type"], "application/json");
    assert_eq!(json.text().await.unwrap(), r#"{"size":3,"errorSize":0}"#);
    assert_eq!(deliver(&app).await.parked, 3);
    submit(&app, &mail("late@example.com")).await;
    let xml = app
        .admin(Method::GET, "/rest/mailqueue/1.0/status")
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status(), StatusCode::OK);
    assert_eq!(xml.headers()["content-type"], "application/xml; charset=utf-8");
    assert_eq!(
        xml.text().await.unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><mailQueue><size>1</size><errorSize>3</errorSize></mailQueue>"#
    );
}

async fn status_needs_monitor_and_negotiates_or_refuses(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    assert_eq!(
        app.get("/rest/mailqueue/1.0/status").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let password = app.create_user("nagios", "monitor").await;
    let ok = app
        .get("/rest/mailqueue/1.0/status")
        .basic_auth("nagios", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = app
        .admin(Method::GET, "/rest/mailqueue/1.0/status")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
    let weighted = app
        .admin(Method::GET, "/rest/mailqueue/1.0/status")
        .header("accept", "application/json;q=0.5, application/xml;q=0.9")
        .send()
        .await
        .unwrap();
    assert!(weighted.text().await.unwrap().starts_with("<?xml"));
}

async fn cluster_status_of_a_single_node_is_empty(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let json = app
        .admin(Method::GET, "/rest/mailqueue/1.0/clusterStatus")
        .send()
        .await
        .unwrap();
    assert_eq!(json.text().await.unwrap(), r#"{"nodes":[]}"#);
    let xml = app
        .admin(Method::GET, "/rest/mailqueue/1.0/clusterStatus")
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(
        xml.text().await.unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><clusterMailQueue/>"#
    );
}

async fn malformed_submissions_get_400_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let cases = [
        (json!({"to": ["nope"], "subject": "s", "text": "t"}), "to[0]"),
        (json!({"to": [], "subject": "s", "text": "t"}), "to"),
        (json!({"subject": "s", "text": "t"}), "to"),
        (json!({"to": ["a@example.com"], "subject": "s"}), "text"),
        (
            json!({"to": ["a@example.com"], "subject": "s\r\nBcc: x@example.com", "text": "t"}),
            "subject",
        ),
        (
            json!({"to": ["a@example.com"], "subject": "s", "text": "t", "headers": {"X-A": "1\r\nBcc: x@example.com"}}),
            "headers.X-A",
        ),
        (
            json!({"to": ["a@example.com"], "subject": "s", "text": "t", "headers": {"Subject": "again"}}),
            "headers.Subject",
        ),
        (
            json!({"to": ["a@example.com"], "from": "x@@example.com", "subject": "s", "text": "t"}),
            "from",
        ),
        (json!({"to": "a@example.com", "subject": "s", "text": "t"}), "to"),
        (json!({"to": ["a@example.com"], "subject": 5, "text": "t"}), "subject"),
        (
            json!({"to": ["a@example.com"], "subject": "s", "text": "t", "attachment": []}),
            "attachment",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .admin(Method::POST, "/api/v1/mail")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem = problem(response).await;
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    assert_eq!(status(&app).await, (0, 0), "nothing was queued");
}

async fn oversized_submissions_get_413(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.mail.max_size = 64 * 1024).await else {
        return;
    };
    let big = json!({"to": ["a@example.com"], "subject": "s", "text": "x".repeat(100_000)});
    let response = app.admin(Method::POST, "/api/v1/mail").json(&big).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Mail may be larger than other request bodies.
    let medium = json!({"to": ["a@example.com"], "subject": "s", "text": "x".repeat(40_000)});
    let response = app
        .admin(Method::POST, "/api/v1/mail")
        .json(&medium)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

async fn idempotency_keys_return_the_same_id_and_refuse_a_different_body(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let send = |body: serde_json::Value, key: &'static str| {
        app.admin(Method::POST, "/api/v1/mail")
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send(mail("a@example.com"), "order-42").await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first_id = first.json::<serde_json::Value>().await.unwrap()["id"].clone();
    let retry = send(mail("a@example.com"), "order-42").await.unwrap();
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<serde_json::Value>().await.unwrap()["id"], first_id);
    let different = send(mail("b@example.com"), "order-42").await.unwrap();
    assert_eq!(different.status(), StatusCode::CONFLICT);
    assert_eq!(problem(different).await["code"], "idempotency_key_reused");
    assert_eq!(status(&app).await, (1, 0));
    let bad_key = app
        .admin(Method::POST, "/api/v1/mail")
        .header("idempotency-key", "has spaces")
        .json(&mail("a@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::BAD_REQUEST);
}

async fn the_mail_role_may_submit_and_nothing_else(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let app_password = app.create_user("billing-app", "mail").await;
    let monitor_password = app.create_user("nagios", "monitor").await;
    let (_, token) = app.create_token("billing-app").await;
    let by_token = app
        .post("/api/v1/mail")
        .bearer_auth(&token)
        .json(&mail("a@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), StatusCode::ACCEPTED);
    let status = app
        .get("/rest/mailqueue/1.0/status")
        .basic_auth("billing-app", Some(&app_password))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::FORBIDDEN);
    let errors = app.get("/api/v1/mail/errors").bearer_auth(&token).send().await.unwrap();
    assert_eq!(errors.status(), StatusCode::FORBIDDEN);
    let by_monitor = app
        .post("/api/v1/mail")
        .basic_auth("nagios", Some(&monitor_password))
        .json(&mail("a@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_monitor.status(), StatusCode::FORBIDDEN);
    let listed: serde_json::Value = app.admin_json("/api/v1/mail/queue").await;
    assert_eq!(listed["items"][0]["submitted_by"], "billing-app");
}

async fn transient_failures_are_retried_with_backoff(backend: Backend) {
    let Some(sink) = SmtpSink::start(&["-r", "RCPT"]) else {
        return;
    };
    let Some(app) = driven_app(backend, &sink).await else {
        return;
    };
    let id = submit(&app, &mail("a@example.com")).await;
    let report = deliver(&app).await;
    assert_eq!(report.retried, 1);
    let queued: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["attempts"], 1);
    assert!(queued["last_error"].as_str().unwrap().contains("450"), "{queued}");
    assert!(queued["next_attempt_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(status(&app).await, (1, 0));
}

async fn permanent_failures_go_to_the_error_queue_and_can_be_resent_or_deleted(backend: Backend) {
    let Some(sink) = SmtpSink::start(&["-f", "RCPT"]) else {
        return;
    };
    let Some(app) = driven_app(backend, &sink).await else {
        return;
    };
    let first = submit(&app, &mail("a@example.com")).await;
    let second = submit(&app, &mail("b@example.com")).await;
    assert_eq!(deliver(&app).await.parked, 2);
    assert_eq!(status(&app).await, (0, 2));
    let errors: serde_json::Value = app.admin_json("/api/v1/mail/errors").await;
    assert_eq!(errors["items"].as_array().unwrap().len(), 2);
    assert_eq!(errors["items"][0]["id"], first.as_str());
    assert_eq!(errors["items"][0]["attempts"], 1);
    assert!(
        errors["items"][0]["last_error"].as_str().unwrap().contains("500"),
        "{errors}"
    );
    // Permanent failures are not retried on their own.
    assert_eq!(deliver(&app).await, herald::mail::BatchReport::default());

    let resent = app
        .admin(Method::POST, &format!("/api/v1/mail/errors/{first}/resend"))
        .send()
        .await
        .unwrap();
    assert_eq!(resent.json::<serde_json::Value>().await.unwrap()["count"], 1);
    assert_eq!(status(&app).await, (1, 1));
    let gone = app
        .admin(Method::DELETE, &format!("/api/v1/mail/errors/{second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let again = app
        .admin(Method::DELETE, &format!("/api/v1/mail/errors/{second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(status(&app).await, (1, 0));
    assert_eq!(deliver(&app).await.parked, 1);
    let all = app
        .admin(Method::POST, "/api/v1/mail/errors/resend")
        .send()
        .await
        .unwrap();
    assert_eq!(all.json::<serde_json::Value>().await.unwrap()["count"], 1);
    assert_eq!(deliver(&app).await.parked, 1);
    let deleted = app.admin(Method::DELETE, "/api/v1/mail/errors").send().await.unwrap();
    assert_eq!(deleted.json::<serde_json::Value>().await.unwrap()["count"], 1);
    assert_eq!(status(&app).await, (0, 0));
}

async fn disconnects_and_slow_replies_are_transient(backend: Backend) {
    let Some(dropping) = SmtpSink::start(&["-q", "DATA"]) else {
        return;
    };
    let Some(app) = driven_app(backend, &dropping).await else {
        return;
    };
    let id = submit(&app, &mail("a@example.com")).await;
    assert_eq!(deliver(&app).await.retried, 1);
    let after_drop: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    assert_eq!(after_drop["state"], "queued");

    let Some(slow) = SmtpSink::start(&["-w", "3"]) else {
        return;
    };
    let Some(app) = driven_app(backend, &slow).await else {
        return;
    };
    let id = submit(&app, &mail("a@example.com")).await;
    assert_eq!(deliver(&app).await.retried, 1);
    let after_timeout: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    assert!(
        after_timeout["last_error"].as_str().unwrap().contains("no answer"),
        "{after_timeout}"
    );

    // Nothing listening at all: connection refused. The relay is down, not the message: it goes back
    // to the queue without counting an attempt.
    let port = dropping.port;
    drop(dropping);
    let Some(app) = spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(format!("smtp://127.0.0.1:{port}"));
    })
    .await
    else {
        return;
    };
    let id = submit(&app, &mail("a@example.com")).await;
    assert_eq!(deliver(&app).await.released, 1);
    let refused: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    assert!(
        refused["last_error"].as_str().unwrap().contains("cannot connect"),
        "{refused}"
    );
    assert_eq!(
        (refused["state"].as_str(), refused["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
}

async fn too_many_attempts_end_in_the_error_queue(backend: Backend) {
    let Some(sink) = SmtpSink::start(&["-r", "MAIL"]) else {
        return;
    };
    let url = sink.url();
    let Some(app) = spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.mail.retry.initial = Duration::from_millis(1);
        s.mail.retry.max = Duration::from_millis(1);
        s.mail.retry.max_attempts = 3;
    })
    .await
    else {
        return;
    };
    let id = submit(&app, &mail("a@example.com")).await;
    let mut reports = Vec::new();
    for _ in 0..50 {
        reports.push(deliver(&app).await);
        if status(&app).await == (0, 1) {
            break;
        }
    }
    assert_eq!(status(&app).await, (0, 1), "{reports:?}");
    // Each attempt found the message due (1 ms backoff): retried, retried, parked.
    let parked: usize = reports.iter().map(|r| r.parked).sum();
    let retried: usize = reports.iter().map(|r| r.retried).sum();
    assert_eq!((retried, parked), (2, 1), "{reports:?}");
    let errored: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    assert_eq!(errored["state"], "error");
    assert_eq!(errored["attempts"], 3);
}

async fn concurrent_submissions_are_all_stored(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let request = app
            .admin(Method::POST, "/api/v1/mail")
            .json(&mail(&format!("u{i}@example.com")));
        tasks.push(tokio::spawn(async move { request.send().await.unwrap().status() }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::ACCEPTED);
    }
    assert_eq!(status(&app).await, (200, 0));
}

/// The queue's committer keeps the writer connection across back-to-back batches (SQLite has one):
/// while submissions never stop, other writes (here, creating users) still get their turn, and the
/// stream goes on around them.
async fn other_writes_get_their_turn_during_a_stream_of_submissions(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let Some(app) = spawn_app(backend).await else { return };
    let streaming = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for s in 0..16 {
        let (streaming, accepted) = (streaming.clone(), accepted.clone());
        let (client, body) = (
            app.admin(Method::POST, "/api/v1/mail"),
            mail(&format!("s{s}@example.com")),
        );
        submitters.push(tokio::spawn(async move {
            while streaming.load(Ordering::Relaxed) {
                let request = client.try_clone().expect("a JSON request can be cloned").json(&body);
                assert_eq!(request.send().await.unwrap().status(), StatusCode::ACCEPTED);
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            accepted.load(Ordering::Relaxed) >= 100
        })
        .await,
        "the submissions did not get going"
    );
    for i in 0..5 {
        let before = accepted.load(Ordering::Relaxed);
        // A guard against a hang, not a speed limit: without its turn the write would wait for ever.
        tokio::time::timeout(
            Duration::from_secs(120),
            app.create_user(&format!("writer{i}"), "monitor"),
        )
        .await
        .expect("a write waited two minutes behind the mail queue's committer");
        assert!(
            eventually(Duration::from_secs(30), || async {
                accepted.load(Ordering::Relaxed) > before
            })
            .await,
            "the submissions stopped"
        );
    }
    streaming.store(false, Ordering::Relaxed);
    for submitter in submitters {
        submitter.await.unwrap();
    }
    let total = accepted.load(Ordering::Relaxed) as i64;
    assert_eq!(
        status(&app).await,
        (total, 0),
        "every accepted submission is in the queue"
    );
}

async fn the_queue_is_listed_in_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&app, &mail(&format!("u{i}@example.com"))).await);
    }
    let page1: serde_json::Value = app.admin_json("/api/v1/mail/queue?limit=3").await;
    let next = page1["next"].as_str().unwrap();
    let page2: serde_json::Value = app
        .admin_json(&format!("/api/v1/mail/queue?limit=3&after={next}"))
        .await;
    let listed: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    assert!(page2.get("next").is_none());
    assert_eq!(page1["items"][0]["recipients"], json!(["u0@example.com"]));
    assert_eq!(page1["items"][0]["state"], "queued");
    let node = page1["items"][0]["node_id"].as_str().unwrap();
    let by_node: serde_json::Value = app.admin_json(&format!("/api/v1/mail/queue?node={node}")).await;
    assert_eq!(by_node["items"].as_array().unwrap().len(), 5);
    let bad = app
        .admin(Method::GET, "/api/v1/mail/queue?state=lost")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad = app
        .admin(Method::GET, "/api/v1/mail/queue?limit=0")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let deleted = app
        .admin(Method::DELETE, &format!("/api/v1/mail/queue/{}", ids[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(&app).await, (4, 0));
}

async fn flush_makes_waiting_mail_due_now(backend: Backend) {
    let Some(sink) = SmtpSink::start(&["-r", "RCPT"]) else {
        return;
    };
    let url = sink.url();
    let Some(app) = spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.mail.retry.initial = Duration::from_secs(3600);
    })
    .await
    else {
        return;
    };
    submit(&app, &mail("a@example.com")).await;
    assert_eq!(deliver(&app).await.retried, 1);
    assert_eq!(
        deliver(&app).await,
        herald::mail::BatchReport::default(),
        "not due for an hour"
    );
    let flushed = app.admin(Method::POST, "/api/v1/mail/flush").send().await.unwrap();
    assert_eq!(flushed.json::<serde_json::Value>().await.unwrap()["count"], 1);
    assert_eq!(deliver(&app).await.retried, 1);
}

async fn implicit_tls_with_a_private_ca_delivers_and_an_unknown_ca_is_refused(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let proxy = support::tls_proxy::start(sink.port).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("relay-ca.pem");
    std::fs::write(&ca_file, &proxy.ca_pem).unwrap();
    let url = format!("smtps://localhost:{}", proxy.port);

    let trusting_url = url.clone();
    let Some(app) = spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(trusting_url);
        s.mail.smtp_ca_file = Some(ca_file);
    })
    .await
    else {
        return;
    };
    let id = submit(&app, &mail("a@example.com")).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    assert!(sink.received_ids().contains(&id));

    let Some(app) = spawn_app_with(backend, move |s| s.mail.smtp_url = herald::secret::Secret::new(url)).await else {
        return;
    };
    let id = submit(&app, &mail("b@example.com")).await;
    // A certificate the relay's TLS cannot be trusted with: the relay is unusable, the message uncharged.
    assert_eq!(deliver(&app).await.released, 1);
    let refused: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    let error = refused["last_error"].as_str().unwrap();
    assert!(error.contains("TLS") && error.contains("certificate"), "{error}");
}

/// SMTP smuggling: a body whose bare CR or LF a relay might take for a line end must not end the data
/// early and start a second transaction. Every such break reaches the relay as CRLF, dot-stuffed.
async fn bare_cr_or_lf_in_a_body_reaches_the_relay_as_crlf_and_smuggles_no_second_message(backend: Backend) {
    let bodies = [
        "line1\r.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<smuggled@example.com>\r\nDATA\r\n\r\nevil\r\n.\r\nline2",
        "line1\n.\nMAIL FROM:<x@y>\nRCPT TO:<smuggled@example.com>\nDATA\n\nevil\n.\nline2",
        "line1\r.\rMAIL FROM:<x@y>\rRCPT TO:<smuggled@example.com>\rDATA\r\revil\r.\rline2",
    ];
    // With PIPELINING (the envelope and the previous message's end in one write) and without it.
    for options in [&[][..], &["-p"][..]] {
        let Some(sink) = SmtpSink::start(options) else { return };
        let Some(app) = driven_app(backend, &sink).await else {
            return;
        };
        let mut ids = Vec::new();
        for body in bodies {
            let submission =
                json!({"from": "alerts@example.com", "to": ["ops@example.com"], "subject": "s", "text": body});
            ids.push(submit(&app, &submission).await);
        }
        assert_eq!(deliver(&app).await.delivered, bodies.len(), "options {options:?}");
        let received = sink.received();
        assert_eq!(
            received.len(),
            bodies.len(),
            "one transaction per message: {received:#?}"
        );
        for id in &ids {
            let message = received.iter().find(|m| m.data.contains(id.as_str()));
            let message = message.unwrap_or_else(|| panic!("{id} not received: {received:#?}"));
            assert_eq!(message.mail_from, "alerts@example.com");
            assert_eq!(message.rcpt_to, ["ops@example.com"], "{message:#?}");
            let body = message.data.split_once("\n\n").map_or("", |(_, b)| b);
            assert!(!body.contains('\r'), "a bare CR reached the relay: {body:?}");
            // smtp-sink's dump shows lines un-stuffed: the `.` lines arrived stuffed, inside the data.
            assert_eq!(
                body.trim_end_matches('\n'),
                "line1\n.\nMAIL FROM:<x@y>\nRCPT TO:<smuggled@example.com>\nDATA\n\nevil\n.\nline2",
                "options {options:?}"
            );
        }
    }
}
