//! One failure, one status on every face, on both backends: stored data Herald cannot read (a row
//! altered behind its back, a secret that no longer decrypts) is a 500 in the API, the console and
//! the Xray endpoints, never a 503 that invites a retry; a name already taken is a conflict
//! everywhere, and neither face shows the cause, which is in the log.

use crate::support;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use support::console::ConsoleClient;
use support::{ADMIN_PASSWORD, Backend, TestApp, problem, spawn_app};

backend_tests!(
    an_unreadable_integration_is_500_on_every_face,
    a_secret_that_does_not_decrypt_is_500_on_every_face,
    an_unreadable_user_is_500_in_the_api_and_the_console,
    a_name_already_taken_is_a_conflict_on_every_face,
);

const INTERNAL_DETAIL: &str = "Herald hit an internal error; the log has the details";
const XRAY_INTERNAL: &str = "The system is temporarily unable to retrieve integration details. Please try again later.";

/// Runs one statement on the app's database behind Herald's back.
async fn alter(app: &TestApp, statement: &'static str) {
    let url = app.state.settings.database.url.clone();
    let done = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(statement).execute(&mut conn).await.unwrap().rows_affected()
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(statement).execute(&mut conn).await.unwrap().rows_affected()
    };
    assert_eq!(done, 1, "{statement}");
}

/// An integration named `jira` whose Jira does not answer (its check fails fast; it is stored anyway).
async fn register_jira(app: &TestApp) {
    app.register(&json!({
        "name": "jira",
        "url": "http://127.0.0.1:1",
        "auth": {"type": "basic", "username": "svc", "password": "hunter2"},
        "timeout": "2s",
    }))
    .await;
}

async fn signed_in_admin(app: &TestApp) -> ConsoleClient {
    let mut admin = ConsoleClient::new(app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    admin
}

/// The API and the console answer `path`s with 500 and keep the cause to the log.
async fn assert_internal(app: &TestApp, api_path: &str, console_path: &str, cause: &str) {
    let response = app.admin(Method::GET, api_path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{api_path}");
    let body = problem(response).await;
    assert_eq!(
        (body["code"].as_str(), body["detail"].as_str()),
        (Some("internal"), Some(INTERNAL_DETAIL))
    );

    let admin = signed_in_admin(app).await;
    let (status, headers, body) = admin.get(console_path).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{console_path}: {body}");
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("the log says why") && !body.contains(cause), "{body}");
}

async fn assert_xray_internal(app: &TestApp) {
    let path = "/xray/api/v1/ticketing/jira-integrations/jira/details";
    let response = app.admin(Method::GET, path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": XRAY_INTERNAL}));
}

async fn an_unreadable_integration_is_500_on_every_face(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    register_jira(&app).await;
    alter(
        &app,
        "UPDATE integrations SET config = '{\"spec\": 42}' WHERE name = 'jira'",
    )
    .await;

    assert_internal(
        &app,
        "/api/v1/integrations/jira",
        "/console/integrations/jira",
        "invalid type",
    )
    .await;
    let admin = signed_in_admin(&app).await;
    let (status, _, body) = admin.get("/console/integrations").await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the list cannot be read either: {body}"
    );
    assert_xray_internal(&app).await;
}

async fn a_secret_that_does_not_decrypt_is_500_on_every_face(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    register_jira(&app).await;
    // Well-formed, but sealed with another key (or altered): AES-GCM refuses it.
    alter(
        &app,
        "UPDATE integrations SET secret = 'v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' WHERE name = 'jira'",
    )
    .await;

    assert_internal(
        &app,
        "/api/v1/integrations/jira",
        "/console/integrations/jira/edit",
        "decrypt",
    )
    .await;
    assert_xray_internal(&app).await;
}

async fn an_unreadable_user_is_500_in_the_api_and_the_console(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("ghost", "monitor").await;
    alter(&app, "UPDATE users SET role = 'root' WHERE username = 'ghost'").await;

    assert_internal(&app, "/api/v1/users", "/console/users", "root").await;
}

async fn a_name_already_taken_is_a_conflict_on_every_face(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    register_jira(&app).await;

    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&json!({
            "name": "jira",
            "url": "http://127.0.0.1:1",
            "auth": {"type": "basic", "username": "svc", "password": "hunter2"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = problem(response).await;
    assert_eq!(body["code"], "conflict");
    assert_eq!(body["detail"], "an integration named `jira` already exists");

    // The console shows the form again with the reason: the admin's values are not lost.
    let admin = signed_in_admin(&app).await;
    let token = admin.csrf().await;
    let (status, _, body) = admin
        .post(
            "/console/integrations",
            &[
                ("csrf", &token),
                ("name", "jira"),
                ("url", "http://127.0.0.1:1"),
                ("auth_type", "basic"),
                ("username", "svc"),
                ("secret", "hunter2"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("An integration named `jira` already exists."), "{body}");

    let response = app
        .admin(Method::POST, "/xray/api/v1/ticketing/jira-integrations")
        .json(&json!({
            "connection_name": "jira",
            "username": "svc",
            "password": "hunter2",
            "jira_server_url": "http://127.0.0.1:1",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "Jira integration 'jira' already exists"}));
}
