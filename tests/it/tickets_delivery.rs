//! Ticket delivery end to end, on both backends: events posted to Herald become issues in the Jira
//! simulator, exactly once per problem: a repeat adds nothing (or one comment when it says something
//! new), a resolution runs the resolve transition, a new firing reopens; a create whose answer is lost
//! makes no second issue; Jira's 429s are waited out; a field Jira rejects parks the event, holding
//! back the later events of its problem, until it is resent.

use std::time::Duration;

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::integrations::{spec_for, with};
use support::jira_sim::{Flavour, JiraSim, SimConfig};
use support::tickets::events_of;
use support::tickets::fast_worker;
use support::{Backend, TestApp, eventually, spawn_app_with};

backend_tests!(
    an_event_makes_one_issue_and_follows_its_problem,
    a_lost_create_answer_makes_no_second_issue,
    jiras_429s_are_waited_out,
    a_rejected_field_parks_the_event_and_holds_back_its_problem,
);

const DEADLINE: Duration = Duration::from_secs(30);

/// A Herald with its ticket worker on (fast retries, short Jira timeout) and the integration `jira`
/// pointing at a fresh simulator of `flavour`.
async fn app(backend: Backend, flavour: Flavour, tickets: Value) -> Option<(TestApp, JiraSim)> {
    app_with(backend, SimConfig::new(flavour), tickets).await
}

async fn app_with(backend: Backend, config: SimConfig, tickets: Value) -> Option<(TestApp, JiraSim)> {
    let flavour = config.flavour;
    let app = spawn_app_with(backend, fast_worker).await?;
    let sim = JiraSim::start_with(config).await;
    let spec = with(
        spec_for("jira", &sim, flavour),
        json!({"project_key": "SEC", "issue_type": "Bug", "tickets": tickets}),
    );
    let created = app.register(&spec).await;
    assert_eq!(created["check"]["status"], "HEALTHY_INTEGRATION", "{created}");
    Some((app, sim))
}

fn settings() -> Value {
    json!({"enabled": true, "summary": "{{ summary }}", "description": "{{ description }}",
        "labels": ["scanner"], "resolve_transition": "Done", "reopen_transition": "Reopen",
        "wont_fix_resolution": "Won't Do", "comment_on_repeat": true})
}

async fn post(app: &TestApp, key: &str, status: &str, description: &str) -> Value {
    let response = app
        .admin(Method::POST, "/api/v1/events")
        .json(&json!({"integration": "jira", "dedup_key": key, "status": status,
            "summary": format!("Finding {key}"), "description": description}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

/// Waits until every event of the integration is applied; false if one is still waiting at the deadline.
async fn all_applied(app: &TestApp) -> bool {
    eventually(DEADLINE, || async {
        events_of(&app.state.store, "jira")
            .await
            .iter()
            .all(|e| e.state == "done")
    })
    .await
}

async fn an_event_makes_one_issue_and_follows_its_problem(backend: Backend) {
    let Some((app, sim)) = app(backend, Flavour::Cloud, settings()).await else {
        return;
    };
    post(&app, "scan/CVE-1", "firing", "xz backdoor").await;
    assert!(
        all_applied(&app).await,
        "{:?}",
        events_of(&app.state.store, "jira").await
    );
    let issues = sim.tickets().issues();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!(
        (issue.project.as_str(), issue.summary.as_str()),
        ("SEC", "Finding scan/CVE-1")
    );
    assert_eq!(issue.api, 3, "Cloud is spoken to in API v3");
    assert_eq!(issue.description["type"], "doc", "an Atlassian Document on Cloud");
    let label = herald::tickets::dedup_label("jira", "scan/CVE-1");
    assert_eq!(issue.labels, vec!["scanner".to_owned(), label.clone()]);
    let ticket = app.state.store.ticket("jira", "scan/CVE-1").await.unwrap().unwrap();
    assert_eq!(
        (ticket.state.as_str(), ticket.issue_key.as_deref()),
        ("open", Some(issue.key.as_str()))
    );
    assert!(ticket.issue_url.unwrap().ends_with(&format!("/browse/{}", issue.key)));

    // The same again: nothing new in Jira. Something new: one comment, once.
    post(&app, "scan/CVE-1", "firing", "xz backdoor").await;
    post(&app, "scan/CVE-1", "firing", "xz backdoor, now exploited").await;
    post(&app, "scan/CVE-1", "firing", "xz backdoor, now exploited").await;
    assert!(all_applied(&app).await);
    let issue = sim.tickets().issue(&issues[0].key).unwrap();
    assert_eq!(sim.tickets().issues().len(), 1);
    assert_eq!(issue.comments.len(), 1, "{:?}", issue.comments);

    // Resolved: the resolve transition. Firing again within the window: reopened, not a new issue.
    post(&app, "scan/CVE-1", "resolved", "fixed").await;
    assert!(all_applied(&app).await);
    assert_eq!(sim.tickets().issue(&issue.key).unwrap().status, "Done");
    let ticket = app.state.store.ticket("jira", "scan/CVE-1").await.unwrap().unwrap();
    assert_eq!(ticket.state, "resolved");
    post(&app, "scan/CVE-1", "firing", "back again").await;
    assert!(all_applied(&app).await);
    assert_eq!(sim.tickets().issue(&issue.key).unwrap().status, "To Do");
    assert_eq!(sim.tickets().issues().len(), 1);

    // Resolved as won't do by a person: a new firing does not reopen it.
    sim.tickets().set_status(&issue.key, "Done", Some("Won't Do"));
    post(&app, "scan/CVE-1", "firing", "still there").await;
    assert!(all_applied(&app).await);
    assert_eq!(sim.tickets().issue(&issue.key).unwrap().status, "Done");
    assert_eq!(sim.tickets().issues().len(), 1);

    // Another problem: another issue. Every action is counted.
    post(&app, "scan/CVE-2", "firing", "another").await;
    assert!(all_applied(&app).await);
    assert_eq!(sim.tickets().issues().len(), 2);
    let metrics = app.admin_text("/metrics").await;
    for line in [
        r#"herald_ticket_events_applied_total{integration="jira",action="created"} 2"#,
        r#"herald_ticket_events_applied_total{integration="jira",action="commented"} 1"#,
        r#"herald_ticket_events_applied_total{integration="jira",action="resolved"} 1"#,
        r#"herald_ticket_events_applied_total{integration="jira",action="reopened"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

async fn a_lost_create_answer_makes_no_second_issue(backend: Backend) {
    let Some((app, sim)) = app(backend, Flavour::DataCenter, json!({"enabled": true})).await else {
        return;
    };
    sim.tickets().lose_create_answers(2);
    post(&app, "backup/nightly", "firing", "the nightly backup failed").await;
    post(&app, "disk/db1", "firing", "disk full").await;
    assert!(
        all_applied(&app).await,
        "{:?}",
        events_of(&app.state.store, "jira").await
    );
    assert_eq!(sim.tickets().lost_answers(), 2);
    for key in ["backup/nightly", "disk/db1"] {
        let label = herald::tickets::dedup_label("jira", key);
        assert_eq!(sim.tickets().created_with_label(&label), 1, "{key}");
        let ticket = app.state.store.ticket("jira", key).await.unwrap().unwrap();
        assert_eq!(ticket.state, "open");
    }
    assert_eq!(sim.tickets().issues().len(), 2);
    let first = sim.tickets().issues()[0].clone();
    assert_eq!(first.api, 2, "Data Center is spoken to in API v2");
    assert!(first.description.is_string(), "wiki markup on Data Center");
    let metrics = app.admin_text("/metrics").await;
    assert!(
        metrics.contains(r#"herald_ticket_event_failures_total{integration="jira",kind="unknown_outcome"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"herald_ticket_events_applied_total{integration="jira",action="recorded"} 2"#));
}

async fn jiras_429s_are_waited_out(backend: Backend) {
    let Some((app, sim)) = app(backend, Flavour::Cloud, json!({"enabled": true})).await else {
        return;
    };
    sim.tickets().throttle_next(3, 1);
    post(&app, "a", "firing", "one").await;
    assert!(
        all_applied(&app).await,
        "{:?}",
        events_of(&app.state.store, "jira").await
    );
    assert_eq!(sim.tickets().throttled(), 3);
    assert_eq!(sim.tickets().issues().len(), 1);
    let metrics = app.admin_text("/metrics").await;
    assert!(
        metrics.contains(r#"herald_ticket_jira_throttled_total{integration="jira"} 3"#),
        "{metrics}"
    );
}

async fn a_rejected_field_parks_the_event_and_holds_back_its_problem(backend: Backend) {
    let tickets = json!({"enabled": true, "resolve_transition": "Done",
        "fields": {"customfield_10010": "{{ labels.team | default('ops') }}"}});
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.optional_fields.push("customfield_10010".into());
    let Some((app, sim)) = app_with(backend, config, tickets).await else {
        return;
    };
    sim.tickets()
        .reject_field("customfield_10010", Some("Field 'customfield_10010' cannot be set."));
    post(&app, "x", "firing", "first").await;
    post(&app, "x", "resolved", "second").await;
    let parked = eventually(DEADLINE, || async {
        events_of(&app.state.store, "jira")
            .await
            .first()
            .is_some_and(|e| e.state == "error")
    })
    .await;
    let events = events_of(&app.state.store, "jira").await;
    assert!(parked, "{events:?}");
    let error: Value = serde_json::from_str(events[0].last_error.as_deref().unwrap()).unwrap();
    assert_eq!(error["kind"], "rejected");
    assert_eq!(error["status"], 400);
    assert_eq!(
        error["errors"]["customfield_10010"],
        "Field 'customfield_10010' cannot be set."
    );
    // The resolution waits behind the parked firing: never applied first.
    assert_eq!(events[1].state, "queued");
    assert_eq!(events[1].attempts, 0);
    assert!(sim.tickets().issues().is_empty());
    // Jira said no: nothing is marked as being created (a plain delete would leave nothing behind).
    assert_eq!(app.state.store.ticket("jira", "x").await.unwrap(), None);

    // Fixed in Jira and resent: created, then resolved, in order.
    sim.tickets().accept_fields();
    let now = herald::store::now_ms();
    assert_eq!(app.state.store.resend_ticket_events("jira", "x", now).await.unwrap(), 1);
    app.state.tickets.wake.notify_one();
    assert!(
        all_applied(&app).await,
        "{:?}",
        events_of(&app.state.store, "jira").await
    );
    let issues = sim.tickets().issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].status, "Done");
    assert_eq!(issues[0].fields["customfield_10010"], "ops");
}
