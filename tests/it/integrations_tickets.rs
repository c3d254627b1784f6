//! An integration's ticket settings through the API and the command line, on both backends: stored,
//! shown back, merged by PATCH, replaced by PUT, kept by the Xray routes, and refused with the field
//! named when a template does not compile or the issues would have nowhere to go.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::integrations::{spec_for, with};
use support::jira_sim::{self, Flavour, JiraSim, SimConfig};
use support::process::{herald_command, run};
use support::{Backend, problem, spawn_app};

backend_tests!(
    ticket_settings_are_stored_and_shown_back,
    patch_merges_ticket_settings_and_put_replaces_them,
    a_bad_template_is_400_naming_its_field,
    enabled_tickets_need_a_project_and_an_issue_type,
    the_xray_routes_keep_ticket_settings,
);

/// The issue's example settings.
fn tickets() -> Value {
    json!({"enabled": true, "summary": "[{{ status }}] {{ labels.alertname }}",
        "description": "{{ annotations.description | default(description) }}",
        "labels": ["alert", "team-{{ labels.team | default('ops') }}"],
        "priority": "{{ labels.severity | default('Medium') }}",
        "fields": {"customfield_10010": "{{ labels.service | default('none') }}", "components": [{"name": "Ops"}]},
        "dedup": "{{ labels.alertname }}", "reopen_transition": "Reopen", "reopen_window": "3d",
        "resolve_transition": "Done", "wont_fix_resolution": "Won't Do", "comment_on_repeat": true})
}

/// A simulator whose create screen has the example's custom field.
async fn sim(flavour: Flavour) -> JiraSim {
    let mut config = SimConfig::new(flavour);
    config.optional_fields.push("customfield_10010".into());
    JiraSim::start_with(config).await
}

fn spec_with_tickets(sim: &JiraSim, tickets: Value) -> Value {
    with(
        spec_for("jira", sim, Flavour::Cloud),
        json!({"project_key": "SEC", "issue_type": "Bug", "tickets": tickets}),
    )
}

async fn send(app: &support::TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn ticket_settings_are_stored_and_shown_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = sim(Flavour::Cloud).await;
    let created = app.register(&spec_with_tickets(&sim, tickets())).await;
    assert_eq!(created["tickets"], tickets());
    assert_eq!(created["check"]["status"], "HEALTHY_INTEGRATION", "{created}");
    let (status, one) = send(&app, Method::GET, "/api/v1/integrations/jira", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["tickets"], tickets());
    let list = app.admin_json("/api/v1/integrations").await;
    assert_eq!(list[0]["tickets"], tickets());
    // The service reads them back as compiled settings.
    let stored = app.state.integrations.get("jira").await.unwrap();
    let settings = stored.settings.tickets.expect("ticket settings");
    assert!(settings.enabled && settings.comment_on_repeat);
    assert_eq!(settings.labels.len(), 2);
    assert_eq!(settings.reopen_window, std::time::Duration::from_secs(3 * 86_400));
    assert_eq!(
        settings.summary.unwrap().source(),
        "[{{ status }}] {{ labels.alertname }}"
    );
    // Only `enabled` is required; an integration without tickets shows none.
    let minimal = app
        .register(&with(
            spec_for("minimal", &sim, Flavour::Cloud),
            json!({"tickets": {"enabled": false}}),
        ))
        .await;
    assert_eq!(
        minimal["tickets"],
        json!({"enabled": false, "comment_on_repeat": false})
    );
    let plain = app.register(&spec_for("plain", &sim, Flavour::Cloud)).await;
    assert!(plain.get("tickets").is_none(), "{plain}");
}

async fn patch_merges_ticket_settings_and_put_replaces_them(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = sim(Flavour::Cloud).await;
    app.register(&spec_with_tickets(&sim, tickets())).await;
    let patch = |body: Value| send(&app, Method::PATCH, "/api/v1/integrations/jira", Some(body));
    let (status, patched) = patch(json!({"tickets": {"summary": "{{ summary }}", "labels": null,
        "fields": {"components": null}, "comment_on_repeat": false}}))
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let mut expected = tickets();
    expected["summary"] = json!("{{ summary }}");
    expected.as_object_mut().unwrap().remove("labels");
    expected["fields"].as_object_mut().unwrap().remove("components");
    expected["comment_on_repeat"] = json!(false);
    assert_eq!(patched["tickets"], expected);
    assert_eq!(app.admin_json("/api/v1/integrations/jira").await["tickets"], expected);
    // A bad template in a patch is refused and nothing changes.
    let (status, body) = patch(json!({"tickets": {"description": "{% for %}"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "tickets.description");
    assert_eq!(app.admin_json("/api/v1/integrations/jira").await["tickets"], expected);
    // `null` removes them all; PUT replaces them.
    let (status, patched) = patch(json!({"tickets": null})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched.get("tickets").is_none(), "{patched}");
    let mut replacement = spec_with_tickets(&sim, json!({"enabled": true, "labels": ["{{ source }}"]}));
    replacement.as_object_mut().unwrap().remove("name");
    let (status, replaced) = send(&app, Method::PUT, "/api/v1/integrations/jira", Some(replacement)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(
        replaced["tickets"],
        json!({"enabled": true, "labels": ["{{ source }}"], "comment_on_repeat": false})
    );
    let (status, replaced) = send(
        &app,
        Method::PUT,
        "/api/v1/integrations/jira",
        Some(spec_for("jira", &sim, Flavour::Cloud)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert!(replaced.get("tickets").is_none(), "PUT replaces: {replaced}");
}

async fn a_bad_template_is_400_naming_its_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = sim(Flavour::Cloud).await;
    let cases = [
        (
            json!({"summary": "{{ labels.alertname"}),
            "tickets.summary",
            "syntax error",
        ),
        (
            json!({"summary": "ok\n{{ labels.alertname | shout }}"}),
            "tickets.summary",
            "unknown filter",
        ),
        (
            json!({"labels": ["fine", "{% if %}"]}),
            "tickets.labels[1]",
            "syntax error",
        ),
        (
            json!({"fields": {"customfield_10010": "{{ }}"}}),
            "tickets.fields.customfield_10010",
            "syntax error",
        ),
        (
            json!({"fields": {"summary": "x"}}),
            "tickets.fields.summary",
            "set by Herald",
        ),
        (json!({"reopen_window": "2y"}), "tickets.reopen_window", "1m to 365d"),
        (
            json!({"resolve_transition": "Done\nNow"}),
            "tickets.resolve_transition",
            "one line",
        ),
        (json!({"colour": "red"}), "tickets.colour", ""),
    ];
    for (change, field, words) in cases {
        let mut tickets = json!({"enabled": true});
        tickets
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let response = app
            .admin(Method::POST, "/api/v1/integrations")
            .json(&spec_with_tickets(&sim, tickets))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{change}");
        let body = problem(response).await;
        assert!(
            body["field"].as_str().unwrap_or("").starts_with(field),
            "{change}: {body}"
        );
        assert!(body["detail"].as_str().unwrap().contains(words), "{change}: {body}");
    }
    // minijinja's message, with the line.
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&spec_with_tickets(
            &sim,
            json!({"enabled": true, "summary": "line one\n{{ oops }"}),
        ))
        .send()
        .await
        .unwrap();
    let body = problem(response).await;
    assert_eq!(body["field"], "tickets.summary", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("tickets.summary:2"), "{body}");
    assert!(
        app.admin_json("/api/v1/integrations")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn enabled_tickets_need_a_project_and_an_issue_type(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = sim(Flavour::Cloud).await;
    for (without, field) in [("project_key", "project_key"), ("issue_type", "issue_type")] {
        let mut spec = spec_with_tickets(&sim, json!({"enabled": true}));
        spec.as_object_mut().unwrap().remove(without);
        if without == "project_key" {
            spec.as_object_mut().unwrap().remove("issue_type");
        }
        let response = app
            .admin(Method::POST, "/api/v1/integrations")
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{spec}");
        let body = problem(response).await;
        assert_eq!(body["field"], field, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("tickets are enabled"),
            "{body}"
        );
    }
    // Disabled settings may wait for their project.
    app.register(&with(
        spec_for("later", &sim, Flavour::Cloud),
        json!({"tickets": {"enabled": false}}),
    ))
    .await;
    // And a patch cannot take the project away from enabled tickets.
    app.register(&spec_with_tickets(&sim, json!({"enabled": true}))).await;
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/v1/integrations/jira",
        Some(json!({"project_key": null, "issue_type": null})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "project_key");
}

async fn the_xray_routes_keep_ticket_settings(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = sim(Flavour::DataCenter).await;
    let spec = with(
        spec_for("jira", &sim, Flavour::DataCenter),
        json!({"project_key": "SEC", "issue_type": "Bug", "tickets": tickets()}),
    );
    app.register(&spec).await;
    let xray = "/xray/api/v1/ticketing/jira-integrations";
    let (status, details) = send(&app, Method::GET, &format!("{xray}/jira/details"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(details.get("tickets").is_none(), "the seed's shape: {details}");
    let update = json!({"auth_type": "basic", "username": jira_sim::USER, "password": jira_sim::PASSWORD,
                        "installation_type": "server", "jira_server_url": sim.url, "skip_proxy": false});
    let (status, body) = send(&app, Method::PUT, &format!("{xray}/jira"), Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.admin_json("/api/v1/integrations/jira").await["tickets"], tickets());
}

/// `herald integrations add|update --tickets FILE` and `show`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_sets_and_shows_ticket_settings() {
    let sim = sim(Flavour::DataCenter).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let settings = dir.path().join("tickets.json");
    std::fs::write(&settings, tickets().to_string()).unwrap();
    let patch = dir.path().join("patch.json");
    std::fs::write(&patch, r#"{"summary": "{{ summary }}", "labels": null}"#).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"summary": "{{ oops"}"#).unwrap();
    let url = sim.url.clone();
    let herald = move |args: Vec<String>, stdin: Option<&'static str>| {
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            let output = run(
                herald_command()
                    .arg("--data-dir")
                    .arg(&data)
                    .arg("--log")
                    .arg("error")
                    .args(&args),
                stdin,
            );
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (output.status.success(), text)
        })
    };
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (ok, text) = herald(
        args(&[
            "integrations",
            "add",
            "jira",
            "--url",
            &url,
            "--username",
            jira_sim::USER,
            "--project-key",
            "SEC",
            "--issue-type",
            "Bug",
            "--tickets",
            &path(&settings),
        ]),
        Some("s3cret-password\n"),
    )
    .await
    .unwrap();
    assert!(ok, "{text}");
    let (_, shown) = herald(args(&["integrations", "show", "jira"]), None).await.unwrap();
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["tickets"], tickets());
    let (ok, text) = herald(
        args(&["integrations", "update", "jira", "--tickets", &path(&patch)]),
        None,
    )
    .await
    .unwrap();
    assert!(ok, "{text}");
    let (_, shown) = herald(args(&["integrations", "show", "jira"]), None).await.unwrap();
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["tickets"]["summary"], "{{ summary }}");
    assert!(shown["tickets"].get("labels").is_none(), "{shown}");
    assert_eq!(shown["tickets"]["resolve_transition"], "Done");
    let (ok, text) = herald(
        args(&["integrations", "update", "jira", "--tickets", &path(&bad)]),
        None,
    )
    .await
    .unwrap();
    assert!(
        !ok && text.contains("tickets.summary") && text.contains("syntax error"),
        "{text}"
    );
}
