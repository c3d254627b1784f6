//! SIGKILL during a burst of event posts: every event Herald answered 202 for is in the table after a
//! restart, on both backends.

use crate::support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald::config::Settings;
use herald::store::{ConnectOptions, Store};
use serde_json::json;

use support::Process;
use support::process::serve_command;
use support::tickets::{events_of, integration};
use support::{ADMIN_PASSWORD, Backend, create_postgres_database, eventually, http_client, postgres_admin_url};

const CLIENTS: usize = 8;
/// Answers to wait for before the kill.
const BEFORE_KILL: usize = 300;

async fn open_store(data_dir: &Path, database_url: Option<&str>) -> Store {
    let settings = Settings::for_data_dir(data_dir, database_url.map(str::to_owned));
    let store = Store::connect(&ConnectOptions {
        url: settings.database.url.clone(),
        max_connections: 2,
        timeout: Duration::from_secs(5),
    })
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    store
}

async fn start(data_dir: &Path, database_url: Option<&str>) -> Process {
    let (mut command, base) = serve_command(data_dir, &["--log", "warn"]);
    command
        .env("HERALD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HERALD_MAIL_DELIVERY", "false")
        .env("HERALD_NODE_ID", "node_1");
    if let Some(url) = database_url {
        command.env("HERALD_DATABASE_URL", url);
    }
    Process::start(command, base).await
}

/// Posts events one after another until the connection fails; returns (id, dedup key) of each 202.
async fn burst(base: String, client: usize, answered: Arc<AtomicUsize>) -> Vec<(String, String)> {
    let http = http_client();
    let mut accepted = Vec::new();
    for i in 0.. {
        let key = format!("burst/{client}/{i}");
        let body =
            json!({"integration": "jira", "dedup_key": key, "status": "firing", "summary": format!("event {i}")});
        let Ok(response) = http
            .post(format!("{base}/api/v1/events"))
            .basic_auth("scanner", Some("scanner-password-123"))
            .json(&body)
            .send()
            .await
        else {
            break;
        };
        if response.status() != 202 {
            break;
        }
        let Ok(answer) = response.json::<serde_json::Value>().await else {
            break; // the answer was cut off by the kill: the event may or may not be stored
        };
        accepted.push((answer["ids"][0].as_str().unwrap_or_default().to_owned(), key));
        answered.fetch_add(1, Ordering::Relaxed);
    }
    accepted
}

async fn every_accepted_event_survives_sigkill_during_a_burst(backend: Backend) {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match postgres_admin_url() {
            Some(admin) => Some(create_postgres_database(&admin).await),
            None => return,
        },
    };
    let dir = tempfile::tempdir().unwrap();
    // Started first: the first start makes the secrets key that stored integrations are checked against.
    let mut herald = start(dir.path(), database_url.as_deref()).await;
    {
        let store = open_store(dir.path(), database_url.as_deref()).await;
        integration(&store, "jira", true).await;
        store.close().await;
    }
    let created = http_client()
        .post(format!("{}/api/v1/users", herald.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"username": "scanner", "password": "scanner-password-123", "role": "events"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(burst(herald.base.clone(), c, answered.clone())))
        .collect();
    let enough = eventually(Duration::from_secs(60), || async {
        answered.load(Ordering::Relaxed) >= BEFORE_KILL
    })
    .await;
    assert!(enough, "the burst did not get going");
    herald.kill(); // SIGKILL, with posts in flight
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.unwrap());
    }
    assert!(accepted.len() >= BEFORE_KILL);

    let restarted = start(dir.path(), database_url.as_deref()).await;
    let store = open_store(dir.path(), database_url.as_deref()).await;
    let stored: HashSet<(String, String)> = events_of(&store, "jira")
        .await
        .into_iter()
        .map(|row| (row.id, row.dedup_key))
        .collect();
    let lost: Vec<&(String, String)> = accepted.iter().filter(|event| !stored.contains(*event)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted events lost: {lost:?}",
        lost.len(),
        accepted.len()
    );
    eprintln!(
        "answered 202: {}; stored after the restart: {} (the rest were committed as the process died, unanswered)",
        accepted.len(),
        stored.len()
    );
    store.close().await;
    drop(restarted);
}

backend_tests!(every_accepted_event_survives_sigkill_during_a_burst);
