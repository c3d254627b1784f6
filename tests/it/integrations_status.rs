//! The Xray-compatible status check, on both backends: every status and code, the seed's exact shape,
//! caching for HERALD_CHECK_MAX_AGE and one Jira check for many concurrent callers.

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::integrations::{STATUS_PATH, UNREACHABLE, spec_for, with};
use support::jira_sim::{Fault, Flavour, JiraSim};
use support::{Backend, eventually, problem, spawn_app, spawn_app_with};

backend_tests!(
    a_healthy_integration_answers_in_the_seed_shape,
    a_faulty_integration_answers_200_with_the_reason,
    an_unknown_integration_is_404_in_the_same_shape,
    a_missing_or_empty_name_is_400,
    the_status_check_is_admin_only,
    a_database_failure_is_500_in_the_same_shape,
    a_thousand_concurrent_calls_cost_jira_one_check,
    results_are_cached_for_the_max_age,
    an_update_is_checked_afresh,
);

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

/// The seed's field order and time format, on the raw bytes.
fn assert_seed_shape(body: &str, status: &str, name: &str) {
    let positions: Vec<usize> = ["\"status\"", "\"reason\"", "\"time\"", "\"integration_name\""]
        .iter()
        .map(|k| body.find(k).unwrap_or_else(|| panic!("{k} missing in {body}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "field order: {body}");
    let value = parse(body);
    assert_eq!(value.as_object().unwrap().len(), 4, "{body}");
    assert_eq!(value["status"], status);
    assert_eq!(value["integration_name"], name);
    let time = value["time"].as_str().unwrap();
    assert_eq!(time.len(), 20, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert!(time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok());
}

async fn a_healthy_integration_answers_in_the_seed_shape(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::Cloud).await;
    app.register(&spec_for("jira-prod", &sim, Flavour::Cloud)).await;
    let (status, body) = app.status_check("jira-prod").await;
    assert_eq!(status, StatusCode::OK);
    assert_seed_shape(&body, "HEALTHY_INTEGRATION", "jira-prod");
    assert_eq!(parse(&body)["reason"], "Integration is healthy and operational.");
}

async fn a_faulty_integration_answers_200_with_the_reason(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault(
        "/rest/api/2/serverInfo",
        Fault::Status(502, "<html>Bad gateway</html>".into()),
    );
    app.register(&spec_for("Jira Test", &sim, Flavour::DataCenter)).await;
    let (status, body) = app.status_check("Jira Test").await;
    assert_eq!(status, StatusCode::OK);
    assert_seed_shape(&body, "FAULTY_CONFIGURATION", "Jira Test");
    let reason = parse(&body)["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with(UNREACHABLE) && reason.contains("HTTP 502"),
        "{reason}"
    );
}

async fn an_unknown_integration_is_404_in_the_same_shape(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app.status_check("non-existent-integration").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_seed_shape(&body, "INTEGRATION_NOT_FOUND", "non-existent-integration");
    assert_eq!(
        parse(&body)["reason"],
        "The integration does not exist or cannot be located."
    );
    // Names are case-sensitive.
    let sim = JiraSim::start(Flavour::Cloud).await;
    app.register(&spec_for("jira", &sim, Flavour::Cloud)).await;
    assert_eq!(app.status_check("JIRA").await.0, StatusCode::NOT_FOUND);
}

async fn a_missing_or_empty_name_is_400(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for path in [STATUS_PATH.to_owned(), format!("{STATUS_PATH}?integrationName=")] {
        let response = app.admin(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("integrationName"), "{body}");
    }
}

async fn the_status_check_is_admin_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let path = format!("{STATUS_PATH}?integrationName=x");
    let response = app.get(&path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    problem(response).await;
    let password = app.create_user("watcher", "monitor").await;
    let response = app
        .get(&path)
        .basic_auth("watcher", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    problem(response).await;
}

async fn a_database_failure_is_500_in_the_same_shape(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    // Warm the credential cache, then take the database away.
    assert_eq!(app.status_check("jira").await.0, StatusCode::NOT_FOUND);
    app.state.store.close().await;
    let (status, body) = app.status_check("jira").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_seed_shape(&body, "INTERNAL_SERVER_ERROR", "jira");
    assert_eq!(
        parse(&body)["reason"],
        "The system is temporarily unable to retrieve integration details. Please try again later."
    );
}

async fn a_thousand_concurrent_calls_cost_jira_one_check(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::Cloud).await;
    let spec = with(
        spec_for("jira", &sim, Flavour::Cloud),
        json!({"project_key": "SEC", "issue_type": "Bug"}),
    );
    app.register(&spec).await;
    // The registration checked once and cached the verdict; start from an expired cache.
    app.state.integrations.check_now("jira").await.unwrap();
    sim.reset_counts();
    app.state.integrations.invalidate_cache_for_tests();
    sim.configure(|c| c.latency = Duration::from_millis(200));
    let calls = (0..1000).map(|_| app.status_check("jira"));
    let answers = futures::future::join_all(calls).await;
    assert!(
        answers
            .iter()
            .all(|(s, b)| *s == StatusCode::OK && b.contains("HEALTHY_INTEGRATION"))
    );
    let times: std::collections::HashSet<String> = answers
        .iter()
        .map(|(_, b)| parse(b)["time"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(times.len(), 1, "every caller got the same verified result");
    assert_eq!(sim.count("/rest/api/2/serverInfo"), 1);
    assert_eq!(sim.count("/rest/api/2/myself"), 1);
    assert_eq!(sim.total(), 6, "one full check: six requests");
}

async fn results_are_cached_for_the_max_age(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.checks.max_age = Duration::from_millis(300)).await else {
        return;
    };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    app.register(&spec_for("jira", &sim, Flavour::DataCenter)).await;
    let after_register = sim.count("/rest/api/2/myself");
    assert_eq!(after_register, 1);
    app.status_check("jira").await;
    app.status_check("jira").await;
    let cached = sim.count("/rest/api/2/myself");
    assert!(cached <= 2, "at most one more check within the max age, got {cached}");
    let rechecked = eventually(Duration::from_secs(10), || async {
        app.status_check("jira").await;
        sim.count("/rest/api/2/myself") > cached
    })
    .await;
    assert!(rechecked, "an expired result is checked again");
}

async fn an_update_is_checked_afresh(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    app.register(&spec_for("jira", &sim, Flavour::DataCenter)).await;
    assert!(app.status_check("jira").await.1.contains("HEALTHY_INTEGRATION"));
    let response = app
        .admin(Method::PATCH, "/api/v1/integrations/jira")
        .json(&json!({"auth": {"password": "wrong"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, body) = app.status_check("jira").await;
    let value = parse(&body);
    assert_eq!(value["status"], "FAULTY_CONFIGURATION");
    assert!(
        value["reason"].as_str().unwrap().contains("AUTHENTICATED_FAILED"),
        "{body}"
    );
}
