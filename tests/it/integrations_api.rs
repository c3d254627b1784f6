//! Herald's own integrations API and the Xray-compatible management endpoints, on both backends:
//! the CRUD lifecycle, validation, secrets that never come back, history, sweep and metrics.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::integrations::{spec_for, with};
use support::jira_sim::{self, Fault, Flavour, JiraSim, SimConfig};
use support::{Backend, problem, spawn_app};

backend_tests!(
    an_integration_is_created_read_listed_and_deleted,
    secrets_are_write_only_and_kept_when_omitted,
    secrets_are_encrypted_at_rest,
    an_integration_is_stored_even_when_its_check_fails,
    invalid_integrations_get_400_naming_the_field,
    duplicates_conflict_and_unknown_names_are_404,
    the_management_api_is_admin_only,
    put_replaces_and_patch_merges,
    the_sweep_checks_every_integration_and_keeps_history,
    metrics_export_health_and_check_durations,
    xray_create_verifies_the_connection_first,
    xray_update_details_and_delete,
    a_new_ca_or_proxy_choice_is_refused_without_the_secret,
);

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

async fn an_integration_is_created_read_listed_and_deleted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::Cloud).await;
    let spec = with(
        spec_for("jira-prod", &sim, Flavour::Cloud),
        json!({"project_key": "SEC", "issue_type": "Bug", "fields": {"components": [{"name": "Backend"}]},
               "skip_proxy": true, "installation_type": "cloud"}),
    );
    let created = app.register(&spec).await;
    assert_eq!(created["name"], "jira-prod");
    assert_eq!(created["url"], sim.url);
    assert_eq!(created["installation_type"], "cloud");
    assert_eq!(
        created["auth"],
        json!({"type": "basic", "username": jira_sim::USER, "password_set": true})
    );
    assert_eq!(created["fields"], json!({"components": [{"name": "Backend"}]}));
    assert_eq!(created["timeout"], "5s");
    assert_eq!(created["check"]["status"], "HEALTHY_INTEGRATION");
    assert_eq!(created["check"]["deployment_type"], "Cloud");
    let (status, one) = send(&app, Method::GET, "/api/v1/integrations/jira-prod", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["project_key"], "SEC");
    assert_eq!(
        one["status"]["status"], "HEALTHY_INTEGRATION",
        "the cached verdict is shown"
    );
    let (_, list) = send(&app, Method::GET, "/api/v1/integrations", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, _) = send(&app, Method::DELETE, "/api/v1/integrations/jira-prod", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&app, Method::GET, "/api/v1/integrations/jira-prod", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.status_check("jira-prod").await.0, StatusCode::NOT_FOUND);
}

async fn secrets_are_write_only_and_kept_when_omitted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let created = app.register(&spec_for("jira", &sim, Flavour::DataCenter)).await;
    let mut bodies = vec![created.to_string()];
    // PUT without the password keeps the stored one: the check still passes.
    let mut spec = spec_for("jira", &sim, Flavour::DataCenter);
    spec["auth"] = json!({"type": "basic", "username": jira_sim::USER});
    let (status, replaced) = send(&app, Method::PUT, "/api/v1/integrations/jira", Some(spec)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["check"]["status"], "HEALTHY_INTEGRATION", "{replaced}");
    bodies.push(replaced.to_string());
    let (status, bearer) = send(
        &app,
        Method::PATCH,
        "/api/v1/integrations/jira",
        Some(json!({"auth": {"type": "bearer", "token": jira_sim::PAT}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{bearer}");
    assert_eq!(bearer["auth"], json!({"type": "bearer", "token_set": true}));
    assert_eq!(bearer["check"]["status"], "HEALTHY_INTEGRATION", "{bearer}");
    bodies.push(bearer.to_string());
    for path in [
        "/api/v1/integrations",
        "/api/v1/integrations/jira",
        "/api/v1/integrations/jira/history",
    ] {
        bodies.push(send(&app, Method::GET, path, None).await.1.to_string());
    }
    bodies.push(
        send(
            &app,
            Method::GET,
            "/xray/api/v1/ticketing/jira-integrations/jira/details",
            None,
        )
        .await
        .1
        .to_string(),
    );
    bodies.push(app.status_check("jira").await.1);
    for body in &bodies {
        assert!(
            !body.contains(jira_sim::PASSWORD) && !body.contains(jira_sim::PAT),
            "secret leaked: {body}"
        );
    }
}

async fn secrets_are_encrypted_at_rest(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    app.register(&spec_for("jira", &sim, Flavour::DataCenter)).await;
    let row = app.state.store.integration("jira").await.unwrap().unwrap();
    assert!(!row.secret.contains(jira_sim::PASSWORD) && !row.config.contains(jira_sim::PASSWORD));
    assert!(row.secret.starts_with("v1:"), "{}", row.secret);
    let key_file = app.db.dir.path().join("secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

async fn an_integration_is_stored_even_when_its_check_fails(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault("/rest/api/2/myself", Fault::Status(401, String::new()));
    let created = app.register(&spec_for("jira", &sim, Flavour::DataCenter)).await;
    assert_eq!(created["check"]["status"], "FAULTY_CONFIGURATION");
    assert_eq!(created["check"]["failed_step"], "authentication");
    assert_eq!(
        send(&app, Method::GET, "/api/v1/integrations/jira", None).await.0,
        StatusCode::OK
    );
}

async fn invalid_integrations_get_400_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let base = json!({"name": "jira", "url": "https://jira.example.com", "auth": {"type": "bearer", "token": "t"}});
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(129)}), "name"),
        (json!({"name": "bad\u{7}name"}), "name"),
        (json!({"url": "ftp://jira"}), "url"),
        (json!({"url": "https://svc:pw@jira.example.com"}), "url"),
        (json!({"installation_type": "mainframe"}), "installation_type"),
        (json!({"auth": {"type": "basic", "username": "svc"}}), "auth.password"),
        (json!({"auth": {"type": "kerberos"}}), "auth"),
        (json!({"project_key": "no spaces"}), "project_key"),
        (json!({"issue_type": "Bug"}), "issue_type"),
        (json!({"ca_cert_pem": "not a certificate"}), "ca_cert_pem"),
        (json!({"timeout": "forever"}), "timeout"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (change, field) in cases {
        let response = app
            .admin(Method::POST, "/api/v1/integrations")
            .json(&with(base.clone(), change.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{change}");
        let body = problem(response).await;
        assert!(
            body["field"].as_str().unwrap_or("").starts_with(field),
            "{change}: {body}"
        );
    }
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn duplicates_conflict_and_unknown_names_are_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::Cloud).await;
    let spec = spec_for("jira", &sim, Flavour::Cloud);
    app.register(&spec).await;
    let (status, body) = send(&app, Method::POST, "/api/v1/integrations", Some(spec.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for (method, path) in [
        (Method::GET, "/api/v1/integrations/nope"),
        (Method::DELETE, "/api/v1/integrations/nope"),
        (Method::POST, "/api/v1/integrations/nope/check"),
        (Method::GET, "/api/v1/integrations/nope/history"),
    ] {
        assert_eq!(send(&app, method, path, None).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = send(&app, Method::PUT, "/api/v1/integrations/nope", Some(spec.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the body's name must match the path");
    let (status, _) = send(
        &app,
        Method::PUT,
        "/api/v1/integrations/nope",
        Some(with(spec, json!({"name": "nope"}))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_management_api_is_admin_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("watcher", "monitor").await;
    for (method, path) in [
        (Method::GET, "/api/v1/integrations"),
        (Method::POST, "/api/v1/integrations"),
        (Method::GET, "/api/v1/integrations/x"),
        (Method::POST, "/api/v1/integrations/x/check"),
        (Method::POST, "/xray/api/v1/ticketing/jira-integrations"),
        (Method::GET, "/xray/api/v1/ticketing/jira-integrations/x/details"),
        (Method::DELETE, "/xray/api/v1/ticketing/jira-integrations/x"),
    ] {
        let anonymous = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        let monitor = app
            .client
            .request(method, app.url(path))
            .basic_auth("watcher", Some(&password))
            .send()
            .await
            .unwrap();
        assert_eq!(monitor.status(), StatusCode::FORBIDDEN, "{path}");
    }
}

async fn put_replaces_and_patch_merges(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::Cloud).await;
    app.register(&with(
        spec_for("jira", &sim, Flavour::Cloud),
        json!({"project_key": "SEC"}),
    ))
    .await;
    let (status, patched) = send(
        &app,
        Method::PATCH,
        "/api/v1/integrations/jira",
        Some(json!({"issue_type": "Bug", "timeout": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["issue_type"], "Bug");
    assert_eq!(patched["project_key"], "SEC");
    assert!(patched.get("timeout").is_none());
    assert_eq!(patched["revision"], 2);
    let (status, replaced) = send(
        &app,
        Method::PUT,
        "/api/v1/integrations/jira",
        Some(spec_for("jira", &sim, Flavour::Cloud)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(replaced.get("project_key").is_none(), "PUT replaces: {replaced}");
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/v1/integrations/jira",
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Moving to another server needs the secret again: the stored one never leaves for a new host.
    let (status, body) = send(
        &app,
        Method::PATCH,
        "/api/v1/integrations/jira",
        Some(json!({"url": "https://jira.attacker.example"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "auth.password", "{body}");
}

async fn the_sweep_checks_every_integration_and_keeps_history(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    for name in ["a", "b", "c"] {
        app.register(&spec_for(name, &sim, Flavour::DataCenter)).await;
    }
    sim.reset_counts();
    sim.fault("/rest/api/2/myself", Fault::Status(401, String::new()));
    let summary = app.state.integrations.sweep_once().await.unwrap();
    assert_eq!((summary.checked, summary.healthy, summary.faulty), (3, 0, 3));
    assert_eq!(sim.count("/rest/api/2/serverInfo"), 3);
    sim.clear_faults();
    app.state.integrations.sweep_once().await.unwrap();
    let (status, history) = send(&app, Method::GET, "/api/v1/integrations/b/history", None).await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["HEALTHY_INTEGRATION", "FAULTY_CONFIGURATION", "HEALTHY_INTEGRATION"],
        "{history}"
    );
    assert_eq!(history[1]["failed_step"], "authentication");
    let (_, limited) = send(&app, Method::GET, "/api/v1/integrations/b/history?limit=1", None).await;
    assert_eq!(limited.as_array().unwrap().len(), 1);
    // The sweep stops with the server.
    app.stop().await;
}

async fn metrics_export_health_and_check_durations(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::Cloud).await;
    app.register(&spec_for("good", &sim, Flavour::Cloud)).await;
    let mut bad = spec_for("bad", &sim, Flavour::Cloud);
    bad["auth"]["password"] = json!("wrong");
    app.register(&bad).await;
    let text = app.admin_text("/metrics").await;
    assert!(
        text.contains("herald_integration_healthy{integration=\"good\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("herald_integration_healthy{integration=\"bad\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("herald_integration_check_duration_seconds_count{outcome=\"healthy\"} 1"),
        "{text}"
    );
    send(&app, Method::DELETE, "/api/v1/integrations/bad", None).await;
    let text = app.admin_text("/metrics").await;
    assert!(!text.contains("integration=\"bad\""), "{text}");
}

const XRAY: &str = "/xray/api/v1/ticketing/jira-integrations";

fn xray_body(name: &str, sim: &JiraSim, password: &str) -> Value {
    json!({"connection_name": name, "auth_type": "basic", "username": jira_sim::USER, "password": password,
           "installation_type": "server", "jira_server_url": sim.url, "skip_proxy": false})
}

async fn xray_create_verifies_the_connection_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let (status, body) = send(&app, Method::POST, XRAY, Some(xray_body("bad-password", &sim, "wrong"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("Authentication failed"),
        "{body}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = xray_body("unreachable", &sim, jira_sim::PASSWORD);
    unreachable["jira_server_url"] = json!(format!("http://127.0.0.1:{port}"));
    let (status, body) = send(&app, Method::POST, XRAY, Some(unreachable)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("The system is unable to connect to Jira."),
        "{body}"
    );
    assert_eq!(
        send(&app, Method::GET, "/api/v1/integrations", None).await.1,
        json!([]),
        "nothing stored"
    );
    let (status, body) = send(
        &app,
        Method::POST,
        XRAY,
        Some(xray_body("jira", &sim, jira_sim::PASSWORD)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["info"].as_str().is_some(), "{body}");
    let (status, body) = send(
        &app,
        Method::POST,
        XRAY,
        Some(xray_body("jira", &sim, jira_sim::PASSWORD)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().is_some(), "{body}");
    let (status, body) = send(&app, Method::POST, XRAY, Some(json!({"connection_name": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("jira_server_url"), "{body}");
    assert!(app.status_check("jira").await.1.contains("HEALTHY_INTEGRATION"));
}

async fn xray_update_details_and_delete(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    send(
        &app,
        Method::POST,
        XRAY,
        Some(xray_body("jira", &sim, jira_sim::PASSWORD)),
    )
    .await;
    let details_path = format!("{XRAY}/jira/details");
    let (status, details) = send(&app, Method::GET, &details_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        details,
        json!({"connection_name": "jira", "auth_type": "basic", "username": jira_sim::USER,
               "installation_type": "server", "jira_server_url": sim.url, "skip_proxy": false})
    );
    // An update that Jira refuses is not saved.
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("{XRAY}/jira"),
        Some(xray_body("jira", &sim, "wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut update = json!({"auth_type": "bearer", "password": jira_sim::PAT, "installation_type": "server",
                            "jira_server_url": sim.url, "skip_proxy": true});
    let (status, body) = send(&app, Method::PUT, &format!("{XRAY}/jira"), Some(update.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, details) = send(&app, Method::GET, &details_path, None).await;
    assert_eq!(details["auth_type"], "bearer");
    assert_eq!(details["skip_proxy"], true);
    assert!(details.get("username").is_none() && details.get("password").is_none());
    update["connection_name"] = json!("nope");
    let (status, _) = send(&app, Method::PUT, &format!("{XRAY}/nope"), Some(update)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(&app, Method::DELETE, &format!("{XRAY}/jira"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&app, Method::DELETE, &format!("{XRAY}/jira"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().is_some());
    let (status, _) = send(&app, Method::GET, &details_path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A stored secret follows the integration only while it goes to the same server: another CA could
/// vouch for an impostor under the same host name, and a proxy change changes who answers.
async fn a_new_ca_or_proxy_choice_is_refused_without_the_secret(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start_tls(SimConfig::new(Flavour::DataCenter), &["localhost"]).await;
    let impostor = JiraSim::start_tls(SimConfig::new(Flavour::DataCenter), &["localhost"]).await;
    let ca = sim.ca_pem.clone().unwrap();
    let other_ca = impostor.ca_pem.clone().unwrap();
    let spec = with(spec_for("jira", &sim, Flavour::DataCenter), json!({"ca_cert_pem": ca}));
    let created = app.register(&spec).await;
    assert_eq!(created["check"]["status"], "HEALTHY_INTEGRATION", "{created}");
    let path = "/api/v1/integrations/jira";
    let refused = |field: &'static str| {
        move |(status, body): (StatusCode, Value)| {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["field"], field, "{body}");
        }
    };
    for change in [
        json!({"ca_cert_pem": other_ca}),
        json!({"ca_cert_pem": null}),
        json!({"skip_proxy": true}),
    ] {
        refused("auth.password")(send(&app, Method::PATCH, path, Some(change.clone())).await);
        let mut put = with(spec.clone(), change);
        put["auth"] = json!({"type": "basic", "username": jira_sim::USER});
        refused("auth.password")(send(&app, Method::PUT, path, Some(put)).await);
    }
    // Same server, same CA, same proxy choice: the stored password is kept and still works.
    let (status, kept) = send(&app, Method::PATCH, path, Some(json!({"timeout": "4s"}))).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["check"]["status"], "HEALTHY_INTEGRATION", "{kept}");
    // With the password given again, the new CA is accepted.
    let (status, moved) = send(
        &app,
        Method::PATCH,
        path,
        Some(json!({"ca_cert_pem": other_ca, "auth": {"password": jira_sim::PASSWORD}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["ca_cert_pem"], other_ca.as_str());
    // The same rule for a token.
    let (status, bearer) = send(
        &app,
        Method::PATCH,
        path,
        Some(json!({"ca_cert_pem": ca, "auth": {"type": "bearer", "token": jira_sim::PAT}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{bearer}");
    refused("auth.token")(send(&app, Method::PATCH, path, Some(json!({"ca_cert_pem": other_ca}))).await);
    refused("auth.token")(send(&app, Method::PATCH, path, Some(json!({"skip_proxy": true}))).await);
    // The Xray update route shares the rule: toggling skip_proxy without the token is refused.
    let xray = json!({"auth_type": "bearer", "installation_type": "server", "jira_server_url": sim.url,
                      "skip_proxy": true});
    let (status, body) = send(&app, Method::PUT, &format!("{XRAY}/jira"), Some(xray.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("auth.token"), "{body}");
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("{XRAY}/jira"),
        Some(with(xray, json!({"skip_proxy": false}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "same proxy choice, token kept: {body}");
    let (_, current) = send(&app, Method::GET, path, None).await;
    assert_eq!(current["skip_proxy"], false);
    assert_eq!(current["ca_cert_pem"], ca.as_str());
}
