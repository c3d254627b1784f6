//! Health alerts through Herald's own mail queue, on both backends: the alert rules are evaluated
//! by hand with a clock the test moves, and the mail they queue is read back through the queue's API.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use herald::alerts::{EvaluationSummary, FiringAlert};
use herald::clock::{Clock, ManualClock};
use herald::store::{Completion, now_ms};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::integrations::spec_for;
use support::jira_sim::{Fault, Flavour, JiraSim};
use support::{Backend, TestApp, eventually, spawn_app_with_clock};

backend_tests!(
    a_faulty_integration_is_mailed_once_after_the_debounce,
    a_fixed_integration_is_mailed_resolved_after_the_debounce,
    a_flap_shorter_than_the_debounce_sends_nothing,
    a_deleted_integration_is_forgotten_without_a_mail,
    one_evaluation_mails_one_digest_of_every_transition,
    the_error_queue_over_its_threshold_is_mailed_with_per_node_figures,
    mail_waiting_too_long_is_mailed_and_resolved,
    parked_ticket_events_are_mailed_and_resolved,
    alerts_are_off_without_recipients,
    a_lost_state_write_does_not_mail_twice,
    deleted_alert_states_do_not_mail_twice,
    the_background_loop_mails_without_being_driven,
    the_api_lists_firing_alerts_and_queues_a_test_alert,
);

const OPS: &str = "ops@example.com";
const ONCALL: &str = "oncall@example.org";
const DEBOUNCE: Duration = Duration::from_secs(120);
const MINUTE: Duration = Duration::from_secs(60);
/// An integration that cannot be reached: nothing listens on port 1.
const DEAD_JIRA: &str = "http://127.0.0.1:1";

struct AlertingApp {
    app: TestApp,
    clock: Arc<ManualClock>,
}

/// An app with alerts on (two recipients, a 2-minute debounce, a public URL), a manual clock
/// starting now, and a background loop too slow to interfere.
async fn alerting_app(backend: Backend, configure: impl FnOnce(&mut herald::config::Settings)) -> Option<AlertingApp> {
    let clock = ManualClock::starting_at(now_ms());
    let app = spawn_app_with_clock(backend, clock.clone(), |s| {
        s.alerts.recipients = vec![OPS.to_owned(), ONCALL.to_owned()];
        s.alerts.debounce = DEBOUNCE;
        s.alerts.interval = Duration::from_secs(3600);
        // The alert mails themselves wait in the queue (delivery is off): only the queue-age test
        // lets the clock run far enough for that to matter.
        s.alerts.queue_age = Duration::from_secs(24 * 3600);
        s.console.public_url = Some("https://herald.example.com".to_owned());
        configure(s);
    })
    .await?;
    Some(AlertingApp { app, clock })
}

/// An alerting app as node `node_1` of a cluster on PostgreSQL (None without PostgreSQL).
async fn clustered_alerting_app() -> Option<AlertingApp> {
    alerting_app(Backend::Postgres, |s| {
        s.cluster.enabled = true;
        s.cluster.node_id = Some(herald::cluster::NodeId::try_from("node_1").unwrap());
    })
    .await
}

impl AlertingApp {
    /// Moves the clock on by `by`, then evaluates the rules once.
    async fn evaluate_after(&self, by: Duration) -> EvaluationSummary {
        self.clock.advance(by);
        self.app.state.alerts.evaluate_once().await.expect("evaluation")
    }

    async fn evaluate(&self) -> EvaluationSummary {
        self.evaluate_after(Duration::ZERO).await
    }

    /// Every alert mail in the queue or the error queue, oldest first.
    async fn alert_mails(&self) -> Vec<Value> {
        let mut mails = Vec::new();
        for path in ["/api/v1/mail/queue?limit=1000", "/api/v1/mail/errors?limit=1000"] {
            let page = self.app.admin_json(path).await;
            mails.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["submitted_by"] == "herald-alerts")
                    .cloned(),
            );
        }
        mails.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        mails
    }

    async fn subjects(&self) -> Vec<String> {
        self.alert_mails()
            .await
            .iter()
            .map(|m| m["subject"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The plain-text body of a queued message, as stored.
    async fn body(&self, id: &str) -> String {
        let content = self
            .app
            .state
            .store
            .mail_content(id)
            .await
            .unwrap()
            .expect("message stored");
        let content: Value = serde_json::from_str(&content).unwrap();
        content["text"].as_str().unwrap().to_owned()
    }

    async fn firing(&self) -> Vec<FiringAlert> {
        self.app.state.alerts.firing().await.unwrap()
    }

    /// Registers an integration that cannot reach Jira; its first check records it as faulty.
    async fn register_dead(&self, name: &str) {
        let body = self
            .app
            .register(&json!({"name": name, "url": DEAD_JIRA, "timeout": "2s",
                               "auth": {"type": "basic", "username": "svc", "password": "pw"}}))
            .await;
        assert_eq!(body["check"]["status"], "FAULTY_CONFIGURATION", "{body}");
    }

    /// Submits a message through the API (delivery is off: it stays queued).
    async fn submit(&self, to: &str) -> String {
        let response = self
            .app
            .admin(Method::POST, "/api/v1/mail")
            .json(&json!({"to": [to], "subject": "hello", "text": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Fires the alert of one dead integration: seen, then confirmed after the debounce.
    async fn fire_dead_integration(&self, name: &str) -> EvaluationSummary {
        self.register_dead(name).await;
        let first = self.evaluate().await;
        assert_eq!((first.pending, first.transitions), (1, 0));
        let fired = self.evaluate_after(DEBOUNCE).await;
        assert_eq!(fired.transitions, 1);
        fired
    }
}

async fn a_faulty_integration_is_mailed_once_after_the_debounce(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    a.register_dead("jira prod").await;
    let seen_at = a.clock.now_ms();
    let first = a.evaluate().await;
    assert_eq!((first.pending, first.firing, first.transitions), (1, 0, 0));
    assert!(a.alert_mails().await.is_empty());
    a.evaluate_after(MINUTE).await;
    a.evaluate_after(MINUTE - Duration::from_secs(1)).await;
    assert!(a.alert_mails().await.is_empty(), "nothing before the debounce ran out");
    assert!(a.firing().await.is_empty());

    let fired = a.evaluate_after(Duration::from_secs(1)).await;
    assert_eq!((fired.transitions, fired.firing, fired.pending), (1, 1, 0));
    assert!(!fired.already_queued);
    let mails = a.alert_mails().await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(Some(mail["id"].as_str().unwrap()), fired.mail_id.as_deref());
    assert_eq!(mail["subject"], "[Herald] FAULTY: integration jira prod");
    assert_eq!(mail["recipients"], json!([OPS, ONCALL]));
    assert_eq!(mail["from"], "herald@localhost");
    assert_eq!(mail["state"], "queued");
    let body = a.body(mail["id"].as_str().unwrap()).await;
    let node = a.app.state.node_id.to_string();
    assert!(body.contains(&format!("seen by node {node} at ")), "{body}");
    assert!(body.contains("FAULTY: integration jira prod\n"), "{body}");
    assert!(
        body.contains(&format!("  Since: {}\n", herald::timefmt::rfc3339_ms(seen_at))),
        "{body}"
    );
    assert!(body.contains("  Status: FAULTY_CONFIGURATION\n"), "{body}");
    assert!(
        body.contains("  Reason: The system is unable to connect to Jira. Connectivity:"),
        "{body}"
    );
    assert!(
        body.contains("  Console: https://herald.example.com/console/integrations/jira%20prod\n"),
        "{body}"
    );
    let firing = a.firing().await;
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].key, "integration:jira prod");
    assert_eq!(firing[0].since, seen_at);
    assert!(
        firing[0].summary.starts_with("Integration jira prod is faulty: "),
        "{firing:?}"
    );

    for _ in 0..5 {
        let again = a.evaluate_after(MINUTE).await;
        assert_eq!((again.transitions, again.firing), (0, 1));
    }
    assert_eq!(a.alert_mails().await.len(), 1, "no more mail while it stays faulty");
    let metrics = a.app.admin_text("/metrics").await;
    assert!(metrics.contains("herald_alerts_sent_total 1\n"), "{metrics}");
    assert!(metrics.contains("herald_alerts_firing 1\n"), "{metrics}");
}

async fn a_fixed_integration_is_mailed_resolved_after_the_debounce(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault("/rest/api/2/myself", Fault::Status(401, String::new()));
    let created = a.app.register(&spec_for("jira-prod", &sim, Flavour::DataCenter)).await;
    assert_eq!(created["check"]["status"], "FAULTY_CONFIGURATION");
    a.evaluate().await;
    a.evaluate_after(DEBOUNCE).await;
    assert_eq!(a.subjects().await, ["[Herald] FAULTY: integration jira-prod"]);

    sim.clear_faults();
    a.clock.advance(5 * MINUTE);
    let fixed_at = a.clock.now_ms();
    assert_eq!(a.app.check("jira-prod").await["status"], "HEALTHY_INTEGRATION");
    let pending = a.evaluate().await;
    assert_eq!((pending.pending, pending.firing, pending.transitions), (1, 1, 0));
    assert_eq!(
        a.firing().await.len(),
        1,
        "still firing while the recovery waits out the debounce"
    );
    a.evaluate_after(MINUTE).await;
    assert_eq!(a.alert_mails().await.len(), 1);

    let resolved = a.evaluate_after(MINUTE).await;
    assert_eq!((resolved.transitions, resolved.firing), (1, 0));
    let mails = a.alert_mails().await;
    assert_eq!(
        a.subjects().await,
        [
            "[Herald] FAULTY: integration jira-prod",
            "[Herald] RESOLVED: integration jira-prod"
        ]
    );
    let body = a.body(mails[1]["id"].as_str().unwrap()).await;
    assert!(body.contains("RESOLVED: integration jira-prod\n"), "{body}");
    assert!(
        body.contains(&format!("  Since: {}\n", herald::timefmt::rfc3339_ms(fixed_at))),
        "{body}"
    );
    assert!(body.contains("  Faulty since: "), "{body}");
    assert!(body.contains("  Status: HEALTHY_INTEGRATION\n"), "{body}");
    assert!(a.firing().await.is_empty());
    a.evaluate_after(10 * MINUTE).await;
    assert_eq!(a.alert_mails().await.len(), 2);
}

async fn a_flap_shorter_than_the_debounce_sends_nothing(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    a.app.register(&spec_for("jira-prod", &sim, Flavour::DataCenter)).await;
    a.evaluate().await;
    sim.fault("/rest/api/2/myself", Fault::Status(401, String::new()));
    assert_eq!(a.app.check("jira-prod").await["status"], "FAULTY_CONFIGURATION");
    assert_eq!(a.evaluate_after(MINUTE).await.pending, 1);
    sim.clear_faults();
    assert_eq!(a.app.check("jira-prod").await["status"], "HEALTHY_INTEGRATION");
    let back = a.evaluate_after(MINUTE - Duration::from_secs(1)).await;
    assert_eq!((back.pending, back.transitions), (0, 0));
    for _ in 0..5 {
        a.evaluate_after(MINUTE).await;
    }
    assert!(a.alert_mails().await.is_empty());
    assert!(a.firing().await.is_empty());
}

async fn a_deleted_integration_is_forgotten_without_a_mail(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    a.fire_dead_integration("jira-old").await;
    assert_eq!(a.firing().await.len(), 1);
    let response = a
        .app
        .admin(Method::DELETE, "/api/v1/integrations/jira-old")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let after = a.evaluate_after(MINUTE).await;
    assert_eq!((after.transitions, after.firing, after.pending), (0, 0, 0));
    a.evaluate_after(DEBOUNCE).await;
    assert_eq!(a.subjects().await, ["[Herald] FAULTY: integration jira-old"]);
    assert!(a.firing().await.is_empty());
    let keys: Vec<String> = a
        .app
        .state
        .store
        .alert_states()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert!(!keys.iter().any(|k| k.starts_with("integration:")), "{keys:?}");
}

async fn one_evaluation_mails_one_digest_of_every_transition(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    for name in ["jira-a", "jira-b", "jira-c"] {
        a.register_dead(name).await;
    }
    a.evaluate().await;
    let fired = a.evaluate_after(DEBOUNCE).await;
    assert_eq!((fired.transitions, fired.firing), (3, 3));
    let mails = a.alert_mails().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["subject"], "[Herald] 3 alerts: 3 integrations FAULTY");
    let body = a.body(mails[0]["id"].as_str().unwrap()).await;
    assert!(
        body.starts_with("Herald health alerts: 3 changes, seen by node "),
        "{body}"
    );
    for name in ["jira-a", "jira-b", "jira-c"] {
        assert!(body.contains(&format!("FAULTY: integration {name}\n")), "{body}");
    }
    assert_eq!(a.firing().await.len(), 3);
}

/// Parks every queued message of the node in the error queue, as a permanent SMTP failure would.
async fn park_queued_mail(app: &TestApp) -> usize {
    let store = &app.state.store;
    let node = app.state.node_id.to_string();
    let claimed = store
        .claim_due_mail(&node, now_ms() + 1_000, now_ms() + 60_000, 1_000)
        .await
        .unwrap();
    let parked: Vec<Completion> = claimed
        .iter()
        .map(|m| Completion::Park {
            id: m.id.clone(),
            attempts: 1,
            error: "550 5.1.1 mailbox unavailable".to_owned(),
            recipients: None,
        })
        .collect();
    store.complete_mail(&parked, now_ms()).await.unwrap();
    parked.len()
}

async fn the_error_queue_over_its_threshold_is_mailed_with_per_node_figures(backend: Backend) {
    let Some(a) = alerting_app(backend, |s| s.alerts.error_queue = 2).await else {
        return;
    };
    for i in 0..2 {
        a.submit(&format!("user{i}@example.com")).await;
    }
    assert_eq!(park_queued_mail(&a.app).await, 2);
    a.evaluate().await;
    a.evaluate_after(DEBOUNCE).await;
    assert!(a.alert_mails().await.is_empty(), "2 messages is not over 2");

    a.submit("user2@example.com").await;
    assert_eq!(park_queued_mail(&a.app).await, 1);
    assert_eq!(a.evaluate_after(MINUTE).await.pending, 1);
    let fired = a.evaluate_after(DEBOUNCE).await;
    assert_eq!(fired.transitions, 1);
    let mails = a.alert_mails().await;
    assert_eq!(a.subjects().await, ["[Herald] FIRING: error queue over 2 messages"]);
    let body = a.body(mails[0]["id"].as_str().unwrap()).await;
    let node = a.app.state.node_id.to_string();
    assert!(
        body.contains("  Now: The error queue holds 3 messages (alert above 2)\n"),
        "{body}"
    );
    assert!(
        body.contains(&format!("  Node {node}: 0 waiting, 3 in the error queue\n")),
        "{body}"
    );
    assert!(
        body.contains("  Console: https://herald.example.com/console/\n"),
        "{body}"
    );
    let firing = a.firing().await;
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].key, "error-queue");

    let emptied = a.app.admin(Method::DELETE, "/api/v1/mail/errors").send().await.unwrap();
    assert_eq!(emptied.status(), StatusCode::OK);
    a.evaluate_after(MINUTE).await;
    a.evaluate_after(DEBOUNCE).await;
    assert_eq!(
        a.subjects().await,
        [
            "[Herald] FIRING: error queue over 2 messages",
            "[Herald] RESOLVED: error queue over 2 messages"
        ]
    );
}

async fn mail_waiting_too_long_is_mailed_and_resolved(backend: Backend) {
    let Some(a) = alerting_app(backend, |s| s.alerts.queue_age = Duration::from_secs(30 * 60)).await else {
        return;
    };
    let waiting = a.submit("user@example.com").await;
    a.evaluate().await;
    assert_eq!(a.evaluate_after(29 * MINUTE).await.pending, 0);
    assert_eq!(a.evaluate_after(2 * MINUTE).await.pending, 1);
    let fired = a.evaluate_after(DEBOUNCE).await;
    assert_eq!(fired.transitions, 1);
    let mails = a.alert_mails().await;
    assert_eq!(a.subjects().await, ["[Herald] FIRING: mail waiting over 30m"]);
    let body = a.body(mails[0]["id"].as_str().unwrap()).await;
    let node = a.app.state.node_id.to_string();
    assert!(body.contains(&format!("(alert above 30m), on node {node}\n")), "{body}");
    assert!(
        body.contains("  Oldest waiting message: accepted ") && body.contains(&format!(" by node {node}\n")),
        "{body}"
    );
    assert_eq!(a.firing().await[0].key, "queue-age");

    // The old message is cancelled; so is the alert mail, which would soon be as old.
    for id in [waiting.as_str(), mails[0]["id"].as_str().unwrap()] {
        let response = a
            .app
            .admin(Method::DELETE, &format!("/api/v1/mail/queue/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{id}");
    }
    assert_eq!(a.evaluate_after(MINUTE).await.pending, 1);
    let resolved = a.evaluate_after(DEBOUNCE).await;
    assert_eq!((resolved.transitions, resolved.firing), (1, 0));
    assert_eq!(
        a.subjects().await,
        ["[Herald] RESOLVED: mail waiting over 30m"],
        "the first alert mail was cancelled above"
    );
}

async fn parked_ticket_events_are_mailed_and_resolved(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    let store = &a.app.state.store;
    support::tickets::integration(store, "jira", true).await;
    let now = now_ms();
    let post = herald::store::NewEventPost {
        node_id: "node_1".into(),
        submitted_by: "am".into(),
        now,
        idempotency: None,
        events: vec![herald::store::NewTicketEvent {
            id: uuid::Uuid::now_v7().to_string(),
            integration: "jira".into(),
            dedup_key: "scan/1".into(),
            status: "firing",
            source: "api",
            context: "{}".into(),
        }],
    };
    store.insert_ticket_events(&[post]).await.unwrap();
    assert_eq!(a.evaluate().await.pending, 0, "a queued event is not a failure");
    let claimed = store
        .claim_ticket_events("node_1", now, now + 60_000, 10)
        .await
        .unwrap();
    let parked = herald::store::EventOutcome::Parked {
        error: r#"{"kind":"rejected","message":"customfield_10010: Team is required"}"#.into(),
    };
    assert!(
        store
            .finish_ticket_event("node_1", &claimed[0].id, now + 60_000, &parked, None, now)
            .await
            .unwrap()
    );
    assert_eq!(a.evaluate().await.pending, 1);
    assert_eq!(a.evaluate_after(DEBOUNCE).await.transitions, 1);
    assert_eq!(
        a.subjects().await,
        ["[Herald] FAILING: ticket delivery of integration jira"]
    );
    let mails = a.alert_mails().await;
    let body = a.body(mails[0]["id"].as_str().unwrap()).await;
    assert!(
        body.contains("1 ticket event of integration jira is parked in the error list"),
        "{body}"
    );
    assert!(
        body.contains("https://herald.example.com/console/integrations/jira/tickets"),
        "{body}"
    );

    // Deleted by an admin: resolved.
    store.delete_ticket_events("jira", "scan/1", false).await.unwrap();
    assert_eq!(a.evaluate_after(MINUTE).await.pending, 1);
    assert_eq!(a.evaluate_after(DEBOUNCE).await.transitions, 1);
    assert_eq!(
        a.subjects().await,
        [
            "[Herald] FAILING: ticket delivery of integration jira",
            "[Herald] RESOLVED: ticket delivery of integration jira"
        ]
    );
}

async fn alerts_are_off_without_recipients(backend: Backend) {
    let Some(a) = alerting_app(backend, |s| s.alerts.recipients.clear()).await else {
        return;
    };
    assert!(!a.app.state.alerts.enabled());
    assert!(a.app.state.alerts.recipients().is_empty());
    a.register_dead("jira-prod").await;
    for _ in 0..3 {
        assert_eq!(a.evaluate_after(DEBOUNCE).await, EvaluationSummary::default());
    }
    assert!(a.alert_mails().await.is_empty());
    assert!(a.firing().await.is_empty());
    assert!(a.app.state.store.alert_states().await.unwrap().is_empty());
    assert_eq!(
        a.app.admin_json("/api/v1/alerts").await,
        json!({"enabled": false, "recipients": [], "firing": []})
    );
    let refused = a.app.admin(Method::POST, "/api/v1/alerts/test").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "alerts_off", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("HERALD_ALERT_EMAILS"),
        "{problem}"
    );
}

async fn a_lost_state_write_does_not_mail_twice(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    a.register_dead("jira-prod").await;
    a.evaluate().await;
    let store = &a.app.state.store;
    let before = store.alert_states().await.unwrap();
    let fired = a.evaluate_after(DEBOUNCE).await;
    assert_eq!(fired.transitions, 1);
    // As if the process had died after queueing the mail, before writing the states.
    let written: Vec<String> = store.alert_states().await.unwrap().into_iter().map(|s| s.key).collect();
    store.save_alert_states(&[], &written).await.unwrap();
    store.save_alert_states(&before, &[]).await.unwrap();
    assert_eq!(store.alert_states().await.unwrap(), before);

    let retried = a.evaluate_after(MINUTE).await;
    assert_eq!(retried.transitions, 1);
    assert!(retried.already_queued);
    assert_eq!(retried.mail_id, fired.mail_id);
    assert_eq!(a.alert_mails().await.len(), 1);
    assert_eq!(a.firing().await.len(), 1, "the states are written this time");
    assert_eq!(a.evaluate_after(MINUTE).await.transitions, 0);
}

async fn deleted_alert_states_do_not_mail_twice(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    let fired = a.fire_dead_integration("jira-prod").await;
    let store = &a.app.state.store;
    let keys: Vec<String> = store.alert_states().await.unwrap().into_iter().map(|s| s.key).collect();
    store.save_alert_states(&[], &keys).await.unwrap();
    assert_eq!(a.evaluate_after(MINUTE).await.pending, 1);
    let again = a.evaluate_after(DEBOUNCE).await;
    assert_eq!(again.transitions, 1);
    assert!(again.already_queued);
    assert_eq!(again.mail_id, fired.mail_id);
    assert_eq!(a.alert_mails().await.len(), 1);
}

async fn the_background_loop_mails_without_being_driven(backend: Backend) {
    let Some(a) = alerting_app(backend, |s| {
        s.alerts.interval = Duration::from_millis(50);
        s.alerts.debounce = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    a.register_dead("jira-prod").await;
    let mailed = eventually(Duration::from_secs(20), || async { !a.alert_mails().await.is_empty() }).await;
    assert!(mailed, "the loop never queued the alert");
    assert_eq!(a.subjects().await, ["[Herald] FAULTY: integration jira-prod"]);
}

/// A cluster node that stops publishing heartbeats goes OFFLINE: mailed after the debounce,
/// RESOLVED when it is back, and forgotten without a mail once it is dropped from the view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_offline_node_is_mailed_and_resolved() {
    let Some(a) = clustered_alerting_app().await else {
        return;
    };
    let store = &a.app.state.store;
    let beat = |at: i64| herald::store::Heartbeat {
        node_id: "node_ghost",
        state: "ACTIVE",
        started_at: at,
        now: at,
        state_since: at,
        queue_size: 4,
        error_size: 1,
    };
    // Silent for longer than the heartbeat timeout (5 minutes).
    store.publish_heartbeat(&beat(now_ms() - 10 * 60_000)).await.unwrap();
    let first = a.evaluate().await;
    assert_eq!((first.pending, first.transitions), (1, 0));
    a.evaluate_after(DEBOUNCE).await;
    let mails = a.alert_mails().await;
    assert_eq!(a.subjects().await, ["[Herald] OFFLINE: node node_ghost"]);
    let body = a.body(mails[0]["id"].as_str().unwrap()).await;
    assert!(body.contains("seen by node node_1 at "), "{body}");
    assert!(body.contains("  State: OFFLINE\n"), "{body}");
    assert!(
        body.contains("  Mail: 4 waiting, 1 in the error queue (as last published)\n"),
        "{body}"
    );
    assert_eq!(a.firing().await[0].key, "node:node_ghost");

    store.publish_heartbeat(&beat(now_ms())).await.unwrap();
    a.evaluate_after(MINUTE).await;
    a.evaluate_after(DEBOUNCE).await;
    assert_eq!(
        a.subjects().await,
        [
            "[Herald] OFFLINE: node node_ghost",
            "[Herald] RESOLVED: node node_ghost"
        ]
    );

    store.publish_heartbeat(&beat(now_ms() - 10 * 60_000)).await.unwrap();
    assert_eq!(a.evaluate_after(MINUTE).await.pending, 1);
    // Dropped from the view (node_1 keeps its row: it holds the alert mail).
    store.prune_nodes(now_ms() - 60_000).await.unwrap();
    let after = a.evaluate_after(DEBOUNCE).await;
    assert_eq!((after.pending, after.transitions), (0, 0));
    assert_eq!(a.alert_mails().await.len(), 2);
    let keys: Vec<String> = store.alert_states().await.unwrap().into_iter().map(|s| s.key).collect();
    assert!(!keys.contains(&"node:node_ghost".to_owned()), "{keys:?}");
}

/// A node that stopped cleanly (it published OFFLINE itself) is a restart or an upgrade in progress:
/// nothing is mailed while it stays stopped for less than `HERALD_ALERT_STOPPED_NODE` (30 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_stopped_cleanly_is_mailed_only_once_it_stays_stopped() {
    let Some(a) = clustered_alerting_app().await else {
        return;
    };
    let store = &a.app.state.store;
    // Stamped by the alert clock, which the test moves on.
    let beat = |state: &'static str, at: i64| herald::store::Heartbeat {
        node_id: "node_2",
        state,
        started_at: at,
        now: at,
        state_since: at,
        queue_size: 0,
        error_size: 0,
    };
    store
        .publish_heartbeat(&beat("OFFLINE", a.clock.now_ms()))
        .await
        .unwrap();
    let view = a.app.state.cluster.view().await.unwrap();
    let node_2 = view.iter().find(|n| n.node_id == "node_2").unwrap();
    assert!(node_2.stopped, "{node_2:?}");
    assert_eq!(a.evaluate().await.pending, 0);
    // A restart within the grace: back to ACTIVE, nothing pending, nothing mailed.
    a.evaluate_after(10 * MINUTE).await;
    store
        .publish_heartbeat(&beat("ACTIVE", a.clock.now_ms()))
        .await
        .unwrap();
    assert!(!a.app.state.cluster.view().await.unwrap().iter().any(|n| n.stopped));
    let restarted = a.evaluate_after(DEBOUNCE).await;
    assert_eq!((restarted.pending, restarted.transitions), (0, 0));

    // Stopped again, for good this time: mailed once the grace and the debounce have passed.
    store
        .publish_heartbeat(&beat("OFFLINE", a.clock.now_ms()))
        .await
        .unwrap();
    assert_eq!(a.evaluate_after(29 * MINUTE).await.pending, 0);
    assert_eq!(a.evaluate_after(MINUTE).await.pending, 1);
    a.evaluate_after(DEBOUNCE).await;
    assert_eq!(a.subjects().await, ["[Herald] OFFLINE: node node_2"]);
    let mails = a.alert_mails().await;
    let body = a.body(mails[0]["id"].as_str().unwrap()).await;
    assert!(body.contains("is OFFLINE (stopped cleanly at "), "{body}");
    assert!(body.contains("  Stopped cleanly at "), "{body}");
}

async fn the_api_lists_firing_alerts_and_queues_a_test_alert(backend: Backend) {
    let Some(a) = alerting_app(backend, |_| {}).await else {
        return;
    };
    assert_eq!(
        a.app.admin_json("/api/v1/alerts").await,
        json!({"enabled": true, "recipients": [OPS, ONCALL], "firing": []})
    );
    a.fire_dead_integration("jira-prod").await;
    let overview = a.app.admin_json("/api/v1/alerts").await;
    let firing = overview["firing"].as_array().unwrap();
    assert_eq!(firing.len(), 1, "{overview}");
    assert_eq!(firing[0]["key"], "integration:jira-prod");
    assert!(firing[0]["since"].as_str().unwrap().ends_with('Z'), "{overview}");

    let sent = a.app.admin(Method::POST, "/api/v1/alerts/test").send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let sent: Value = sent.json().await.unwrap();
    assert_eq!(sent["recipients"], json!([OPS, ONCALL]));
    let id = sent["id"].as_str().unwrap();
    let node = a.app.state.node_id.to_string();
    let mail = a
        .alert_mails()
        .await
        .into_iter()
        .find(|m| m["id"] == id)
        .expect("queued");
    assert_eq!(mail["subject"], format!("[Herald] Test alert from node {node}"));
    assert_eq!(mail["recipients"], json!([OPS, ONCALL]));
    let body = a.body(id).await;
    assert!(body.contains("asked for by admin on node"), "{body}");
    assert!(body.contains("If this reached you, alert mail flows."), "{body}");
    assert!(body.contains("Console: https://herald.example.com/console/"), "{body}");

    // Monitors read the alerts but cannot send a test.
    let password = a.app.create_user("watcher", "monitor").await;
    let as_monitor = |method: Method, path: &str| {
        a.app
            .client
            .request(method, a.app.url(path))
            .basic_auth("watcher", Some(&password))
    };
    assert_eq!(
        as_monitor(Method::GET, "/api/v1/alerts").send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        as_monitor(Method::POST, "/api/v1/alerts/test")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let tests = a
        .subjects()
        .await
        .into_iter()
        .filter(|s| s.starts_with("[Herald] Test alert"))
        .count();
    assert_eq!(tests, 1);
}

/// Nodes evaluate one at a time across the cluster (a PostgreSQL advisory lock): while another
/// holds the lock, an evaluation leaves the round to it. A holder that fails on the way (its lock
/// dropped, not released) closes its connection, which frees the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_node_evaluates_at_a_time() {
    let Some(a) = clustered_alerting_app().await else {
        return;
    };
    a.register_dead("jira-prod").await;
    let store = &a.app.state.store;
    let held = store.try_lock_alerts().await.unwrap().expect("the lock is free");
    assert!(store.try_lock_alerts().await.unwrap().is_none(), "held elsewhere");
    let skipped = a.evaluate().await;
    assert_eq!(
        skipped,
        EvaluationSummary {
            skipped: true,
            ..EvaluationSummary::default()
        }
    );
    held.release().await;
    let first = a.evaluate().await;
    assert_eq!((first.skipped, first.pending), (false, 1));

    let dropped = store.try_lock_alerts().await.unwrap().expect("released");
    drop(dropped);
    let freed = eventually(Duration::from_secs(20), || async {
        match store.try_lock_alerts().await.unwrap() {
            Some(lock) => {
                lock.release().await;
                true
            }
            None => false,
        }
    })
    .await;
    assert!(freed, "a dropped lock was never freed");
    let fired = a.evaluate_after(DEBOUNCE).await;
    assert_eq!((fired.skipped, fired.transitions), (false, 1));
}
