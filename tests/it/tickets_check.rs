//! The integration check grows with the job: with tickets enabled it also verifies the permissions
//! the ticket settings use, the Labels field on the create screen (its absence is said, not a
//! failure), the ticket fields, and that the named transitions exist in the workflow.

use std::time::Duration;

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::integrations::{spec_for, with};
use support::jira_sim::{Flavour, JiraSim, SimConfig};
use support::tickets::fast_worker;
use support::{Backend, TestApp, eventually, spawn_app_with};

fn tickets() -> Value {
    json!({"enabled": true, "comment_on_repeat": true, "resolve_transition": "Done", "reopen_transition": "Reopen"})
}

async fn herald_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, fast_worker)
        .await
        .expect("sqlite always runs")
}

async fn register(app: &TestApp, sim: &JiraSim, flavour: Flavour, tickets: Value) -> Value {
    let spec = with(
        spec_for("jira", sim, flavour),
        json!({"project_key": "SEC", "issue_type": "Bug", "tickets": tickets}),
    );
    app.register(&spec).await["check"].clone()
}

async fn check_now(app: &TestApp) -> Value {
    let response = app
        .admin(Method::POST, "/api/v1/integrations/jira/check")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn configuration_detail(report: &Value) -> String {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "configuration")
        .map(|s| s["detail"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_add_their_permissions_fields_and_transitions_to_the_check() {
    for flavour in [Flavour::Cloud, Flavour::DataCenter] {
        let app = herald_app().await;
        let sim = JiraSim::start(flavour).await;
        let check = register(&app, &sim, flavour, tickets()).await;
        assert_eq!(check["status"], "HEALTHY_INTEGRATION", "{check}");
        let detail = configuration_detail(&check);
        assert!(
            detail.contains("`resolve_transition` `Done` is not verified yet"),
            "{detail}"
        );
        assert!(
            detail.contains("`reopen_transition` `Reopen` is not verified yet"),
            "{detail}"
        );

        // Once issues exist, the transitions are read on them: an open one for Done, a done one for Reopen.
        for key in ["a", "b"] {
            let response = app
                .admin(Method::POST, "/api/v1/events")
                .json(&json!({"integration": "jira", "dedup_key": key, "status": "firing", "summary": key}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
        assert!(eventually(Duration::from_secs(30), || async { sim.tickets().issues().len() == 2 }).await);
        let first = sim.tickets().issues()[0].key.clone();
        sim.tickets().set_status(&first, "Done", Some("Done"));
        let report = check_now(&app).await;
        assert_eq!(report["status"], "HEALTHY_INTEGRATION", "{report}");
        let detail = configuration_detail(&report);
        assert!(
            detail.contains("the permissions, the Labels field and the transitions they need are there"),
            "{flavour:?}: {detail}"
        );

        // A transition the workflow does not have: the check fails and names what is offered.
        let patch = app
            .admin(Method::PATCH, "/api/v1/integrations/jira")
            .json(&json!({"tickets": {"resolve_transition": "Close"}}))
            .send()
            .await
            .unwrap();
        assert!(patch.status().is_success(), "{}", patch.text().await.unwrap());
        let report = check_now(&app).await;
        assert_eq!(report["status"], "FAULTY_CONFIGURATION", "{report}");
        let reason = report["reason"].as_str().unwrap();
        assert!(
            reason.contains("`resolve_transition` names `Close`") && reason.contains("it offers: "),
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permissions_fail_and_a_missing_labels_field_is_said() {
    let app = herald_app().await;
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.comment = false;
    let sim = JiraSim::start_with(config).await;
    let check = register(&app, &sim, Flavour::DataCenter, tickets()).await;
    assert_eq!(check["status"], "FAULTY_CONFIGURATION", "{check}");
    assert!(check["reason"].as_str().unwrap().contains("ADD_COMMENTS"), "{check}");

    // Without comments configured, ADD_COMMENTS is not asked for.
    let app = herald_app().await;
    let check = register(&app, &sim, Flavour::DataCenter, json!({"enabled": true})).await;
    assert_eq!(check["status"], "HEALTHY_INTEGRATION", "{check}");

    let app = herald_app().await;
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.transition = false;
    config.optional_fields.retain(|f| f != "labels");
    let sim = JiraSim::start_with(config).await;
    let check = register(&app, &sim, Flavour::DataCenter, tickets()).await;
    assert_eq!(check["status"], "FAULTY_CONFIGURATION", "{check}");
    assert!(
        check["reason"].as_str().unwrap().contains("TRANSITION_ISSUES"),
        "{check}"
    );
    let app = herald_app().await;
    let check = register(&app, &sim, Flavour::DataCenter, json!({"enabled": true})).await;
    assert_eq!(check["status"], "HEALTHY_INTEGRATION", "{check}");
    let detail = configuration_detail(&check);
    assert!(
        detail.contains("the Labels field is not on the create screen"),
        "{detail}"
    );

    // A ticket field the create screen does not have would be refused by Jira: the check says so.
    let app = herald_app().await;
    let check = register(
        &app,
        &sim,
        Flavour::DataCenter,
        json!({"enabled": true, "fields": {"customfield_99999": "x"}}),
    )
    .await;
    assert_eq!(check["status"], "FAULTY_CONFIGURATION", "{check}");
    assert!(
        check["reason"].as_str().unwrap().contains("`customfield_99999`"),
        "{check}"
    );
}
