//! The "Tickets" fieldset of the console's integration form, on both backends: saved into the
//! integration's ticket settings, shown again for editing, and a bad template sent back with its
//! error next to the field.

use crate::support;

use reqwest::StatusCode;
use serde_json::json;
use support::console::ConsoleClient;
use support::jira_sim::{Flavour, JiraSim};
use support::{ADMIN_PASSWORD, Backend, spawn_app};

backend_tests!(
    the_tickets_fieldset_round_trips,
    a_bad_template_comes_back_next_to_its_field
);

fn form<'a>(token: &'a str, url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", token),
        ("name", "jira"),
        ("url", url),
        ("auth_type", "basic"),
        ("username", support::jira_sim::USER),
        ("secret", support::jira_sim::PASSWORD),
        ("project_key", "SEC"),
        ("issue_type", "Bug"),
        ("tickets_enabled", "on"),
        ("tickets_summary", "{{ labels.alertname }}: {{ annotations.summary }}"),
        ("tickets_description", "{{ description }}\r\n\r\n{{ url }}"),
        (
            "tickets_labels",
            "prometheus\r\nteam-{{ labels.team | default('ops') }}\r\n",
        ),
        ("tickets_priority", "{{ labels.severity | default('Medium') }}"),
        (
            "tickets_fields",
            r#"{"customfield_10010": "{{ labels.service }}", "components": [{"name": "Ops"}]}"#,
        ),
        ("tickets_dedup", "{{ labels.alertname }}"),
        ("tickets_resolve_transition", "Done"),
        ("tickets_reopen_transition", "Reopen"),
        ("tickets_reopen_window", "2d"),
        ("tickets_wont_fix_resolution", "Won't Do"),
        ("tickets_comment_on_repeat", "on"),
    ]
}

async fn the_tickets_fieldset_round_trips(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let token = admin.csrf().await;
    let (status, _, body) = admin.post("/console/integrations", &form(&token, &sim.url)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let stored = app.admin_json("/api/v1/integrations/jira").await;
    assert_eq!(
        stored["tickets"],
        json!({"enabled": true, "summary": "{{ labels.alertname }}: {{ annotations.summary }}",
            "description": "{{ description }}\r\n\r\n{{ url }}",
            "labels": ["prometheus", "team-{{ labels.team | default('ops') }}"],
            "priority": "{{ labels.severity | default('Medium') }}",
            "fields": {"components": [{"name": "Ops"}], "customfield_10010": "{{ labels.service }}"},
            "dedup": "{{ labels.alertname }}", "reopen_transition": "Reopen", "reopen_window": "2d",
            "resolve_transition": "Done", "wont_fix_resolution": "Won't Do", "comment_on_repeat": true})
    );
    // The edit form shows every setting again (HTML-escaped), and saving it unchanged keeps them.
    let (status, _, page) = admin.get("/console/integrations/jira/edit").await;
    assert_eq!(status, StatusCode::OK);
    for shown in [
        r#"name="tickets_enabled" checked"#,
        "{{ labels.alertname }}: {{ annotations.summary }}",
        "prometheus\nteam-{{ labels.team | default(&#39;ops&#39;) }}",
        r#"value="2d""#,
        r#"value="Won&#39;t Do""#,
        r#"name="tickets_comment_on_repeat" checked"#,
        "customfield_10010",
    ] {
        assert!(page.contains(shown), "{shown} not in the edit form: {page}");
    }
    let mut again = form(&token, &sim.url);
    again.retain(|(k, _)| *k != "name" && *k != "secret");
    let (status, _, body) = admin.post("/console/integrations/jira/edit", &again).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        app.admin_json("/api/v1/integrations/jira").await["tickets"],
        stored["tickets"]
    );
    // Unchecking "enabled" keeps the templates for later.
    again.retain(|(k, _)| *k != "tickets_enabled");
    admin.post("/console/integrations/jira/edit", &again).await;
    let tickets = &app.admin_json("/api/v1/integrations/jira").await["tickets"];
    assert_eq!(tickets["enabled"], false);
    assert_eq!(tickets["dedup"], "{{ labels.alertname }}");
}

async fn a_bad_template_comes_back_next_to_its_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let token = admin.csrf().await;
    let mut bad = form(&token, &sim.url);
    for (k, v) in bad.iter_mut() {
        if *k == "tickets_summary" {
            *v = "{{ labels.alertname";
        }
    }
    let (status, _, page) = admin.post("/console/integrations", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = page
        .split(r#"id="tickets_summary-error">"#)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no error next to the summary: {page}"));
    assert!(
        error.contains("tickets.summary") && error.contains("syntax error"),
        "{error}"
    );
    assert!(
        page.contains(r#"value="{{ labels.alertname""#),
        "the value is kept: {page}"
    );
    assert!(!page.contains(support::jira_sim::PASSWORD), "never the secret");
    // Enabled without a project: the error is next to the project key.
    let mut homeless = form(&token, &sim.url);
    homeless.retain(|(k, _)| *k != "project_key" && *k != "issue_type");
    let (status, _, page) = admin.post("/console/integrations", &homeless).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains(r#"id="project_key-error""#), "{page}");
    // Bad JSON in the fields names them.
    let mut json_error = form(&token, &sim.url);
    for (k, v) in json_error.iter_mut() {
        if *k == "tickets_fields" {
            *v = "{nope";
        }
    }
    let (status, _, page) = admin.post("/console/integrations", &json_error).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains(r#"id="tickets_fields-error""#), "{page}");
    assert!(
        app.admin_json("/api/v1/integrations")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}
