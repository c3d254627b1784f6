//! A PostgreSQL database that goes away while Herald runs: readiness says so, requests get 503
//! (never a panic), and everything recovers without a restart once the database is back.

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use support::pg_cluster::PgCluster;
use support::{TestDatabase, create_postgres_database, eventually, problem, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_reported_and_recovered_from_without_restart() {
    let Some(cluster) = PgCluster::start() else { return };
    let url = create_postgres_database(&cluster.url()).await;
    let db = TestDatabase {
        url: Some(url),
        dir: tempfile::tempdir().unwrap(),
    };
    let mut settings = db.settings();
    settings.database.timeout = Duration::from_secs(2);
    let app = start(db, settings).await;
    let password = app.create_user("late", "monitor").await;

    cluster.stop_server();

    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    // Either the pool's own error, or readiness's 2 s limit when the pool is still retrying the
    // connection (both limits are 2 s here, so which one answers first depends on timing).
    let reason = body["database"].as_str().unwrap();
    assert!(
        reason == "the database is unavailable (see Herald's log)"
            || reason == "the database did not answer within 2 s",
        "anonymous clients get the kind of fault, not the driver's text: {body}"
    );
    // Credentials that must be checked against the database: 503, not 401 and not a panic.
    let response = app
        .get("/api/v1/whoami")
        .basic_auth("late", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(
        problem(response).await["detail"],
        "the database is unavailable; try again shortly"
    );
    // Cached credentials still pass, but the request needs the database: 503 again.
    let response = app.admin(Method::GET, "/api/v1/users").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/livez").send().await.unwrap().status(), StatusCode::OK);

    cluster.start_server();

    let recovered = eventually(Duration::from_secs(30), || async {
        app.get("/readyz")
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    assert!(recovered, "/readyz did not recover after the database came back");
    let response = app
        .get("/api/v1/whoami")
        .basic_auth("late", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.admin(Method::GET, "/api/v1/users").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
