//! SIGKILL in the middle of a delivery run: after a restart, every accepted message is delivered,
//! and the only duplicates are the few that were in flight.

use crate::support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use support::Process;
use support::process::serve_command;
use support::smtp::SmtpSink;
use support::{ADMIN_PASSWORD, Backend, create_postgres_database, eventually, http_client, postgres_admin_url};

const MESSAGES: usize = 40;
const CONNECTIONS: usize = 4;
/// Messages a worker sends back to back before recording them (see mail::delivery).
const PIPELINE_RUN: usize = 16;

async fn start(data_dir: &Path, database_url: Option<&str>, smtp_url: &str) -> Process {
    let (mut command, base) = serve_command(data_dir, &["--log", "warn"]);
    command
        .env("HERALD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HERALD_SMTP_URL", smtp_url)
        .env("HERALD_SMTP_CONNECTIONS", CONNECTIONS.to_string())
        .env("HERALD_NODE_ID", "node_1");
    if let Some(url) = database_url {
        command.env("HERALD_DATABASE_URL", url);
    }
    Process::start(command, base).await
}

async fn queue_size(herald: &Process) -> Option<i64> {
    let response = http_client()
        .get(format!("{}/rest/mailqueue/1.0/status", herald.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .ok()?;
    response.json::<serde_json::Value>().await.ok()?["size"].as_i64()
}

async fn every_accepted_message_survives_sigkill_during_delivery(backend: Backend) {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match postgres_admin_url() {
            Some(admin) => Some(create_postgres_database(&admin).await),
            None => return,
        },
    };
    // A relay that takes a second to answer each DATA: delivery is slow enough to be interrupted.
    let Some(slow) = SmtpSink::start(&["-w", "1"]) else {
        return;
    };
    let Some(fast) = SmtpSink::start(&[]) else { return };
    let dir = tempfile::tempdir().unwrap();

    let herald = start(dir.path(), database_url.as_deref(), &slow.url()).await;
    let client = http_client();
    let mut accepted = Vec::new();
    for i in 0..MESSAGES {
        let response = client
            .post(format!("{}/api/v1/mail", herald.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&serde_json::json!({"to": [format!("user{i}@example.com")], "subject": format!("m{i}"), "text": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        accepted.push(
            response.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let started = eventually(Duration::from_secs(30), || async { !slow.received_ids().is_empty() }).await;
    assert!(started, "delivery never started");
    let mut herald = herald;
    herald.kill(); // SIGKILL
    let before_crash: Vec<String> = slow.received_ids();
    assert!(
        before_crash.len() < MESSAGES,
        "the crash came too late to interrupt delivery"
    );

    let restarted = start(dir.path(), database_url.as_deref(), &fast.url()).await;
    let drained = eventually(Duration::from_secs(60), || async {
        queue_size(&restarted).await == Some(0)
    })
    .await;
    assert!(drained, "the queue did not drain after the restart");

    let after: Vec<String> = fast.received_ids();
    let delivered: HashSet<&String> = before_crash.iter().chain(&after).collect();
    for id in &accepted {
        assert!(delivered.contains(id), "accepted message {id} was lost");
    }
    let duplicates = before_crash.len() + after.len() - delivered.len();
    assert!(
        duplicates <= CONNECTIONS * PIPELINE_RUN,
        "{duplicates} duplicates; at most the {} in flight may be resent",
        CONNECTIONS * PIPELINE_RUN
    );
}

backend_tests!(every_accepted_message_survives_sigkill_during_delivery);
