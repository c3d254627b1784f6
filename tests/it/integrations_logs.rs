//! Secrets never reach a log line, whatever happens: creation, failed and successful checks, updates,
//! the Xray endpoints, the sweep. Everything runs on one thread so one subscriber sees every event.

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use support::integrations::spec_for;
use support::jira_sim::{self, Flavour, JiraSim};
use support::{Backend, spawn_app};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Captures every event `filter` lets through on this thread until the guard is dropped.
    fn start(filter: &str) -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_appears_in_any_log_line() {
    let (captured, _guard) = Captured::start("trace");

    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let wrong = "wrong-Passw0rd-that-must-not-leak";
    let mut spec = spec_for("jira", &sim, Flavour::DataCenter);
    spec["auth"]["password"] = json!(wrong);
    app.register(&spec).await;
    let response = app
        .admin(Method::PATCH, "/api/v1/integrations/jira")
        .json(&json!({"auth": {"password": jira_sim::PASSWORD}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.register(
        &json!({"name": "pat", "url": sim.url, "auth": {"type": "basic", "username": "x", "password": jira_sim::PAT}}),
    )
    .await;
    app.admin(Method::POST, "/xray/api/v1/ticketing/jira-integrations")
        .json(
            &json!({"connection_name": "x", "auth_type": "basic", "username": jira_sim::USER, "password": wrong,
                      "jira_server_url": sim.url}),
        )
        .send()
        .await
        .unwrap();
    app.state.integrations.sweep_once().await.unwrap();
    app.status_check("jira").await;
    app.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("integration created"), "the test saw Herald's logs");
    assert!(logs.contains("integration status changed"), "transitions are logged");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for secret in [
        wrong.to_owned(),
        jira_sim::PASSWORD.to_owned(),
        jira_sim::PAT.to_owned(),
        b64(&format!("{}:{wrong}", jira_sim::USER)),
        b64(&format!("{}:{}", jira_sim::USER, jira_sim::PASSWORD)),
    ] {
        assert!(!logs.contains(&secret), "secret `{secret}` appears in the logs");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_fault_replaced_by_another_is_logged() {
    let (captured, _guard) = Captured::start("herald=info");

    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let mut spec = spec_for("jira", &sim, Flavour::DataCenter);
    spec["auth"]["password"] = json!("wrong");
    app.register(&spec).await;
    app.check("jira").await;
    sim.fault(
        "/rest/api/2/serverInfo",
        jira_sim::Fault::Status(500, r#"{"errorMessages":["Internal server error"],"errors":{}}"#.into()),
    );
    app.check("jira").await;
    app.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let changes: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("integration status changed"))
        .collect();
    assert_eq!(
        changes.len(),
        2,
        "first verdict and the new fault, not the repeated one: {logs}"
    );
    assert!(changes[1].contains("from=\"FAULTY_CONFIGURATION\""), "{}", changes[1]);
    assert!(changes[1].contains("HTTP 500 Internal Server Error"), "{}", changes[1]);
    assert!(
        changes[1].contains("previous_reason=Authentication failed"),
        "{}",
        changes[1]
    );
}
