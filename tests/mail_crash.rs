//! SIGKILL in the middle of a delivery run: after a restart, every accepted message is delivered,
//! and the only duplicates are the few that were in flight.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::smtp::SmtpSink;
use support::{ADMIN_PASSWORD, Backend, create_postgres_database, eventually, http_client, postgres_admin_url};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const MESSAGES: usize = 40;
const CONNECTIONS: usize = 4;
/// Messages a worker sends back to back before recording them (see mail::delivery).
const PIPELINE_RUN: usize = 16;

struct Herald {
    child: Child,
    base: String,
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(data_dir: &Path, database_url: Option<&str>, smtp_url: &str) -> Herald {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(HERALD);
    command
        .args([
            "serve",
            "--log",
            "warn",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env("HERALD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HERALD_SMTP_URL", smtp_url)
        .env("HERALD_SMTP_CONNECTIONS", CONNECTIONS.to_string())
        .env("HERALD_NODE_ID", "node_1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match database_url {
        Some(url) => command.env("HERALD_DATABASE_URL", url),
        None => command.env_remove("HERALD_DATABASE_URL"),
    };
    let herald = Herald {
        child: command.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = http_client();
    let url = format!("{}/readyz", herald.base);
    let ready = eventually(Duration::from_secs(30), || async {
        client.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "herald did not start");
    herald
}

async fn queue_size(herald: &Herald) -> Option<i64> {
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
    herald.child.kill().unwrap(); // SIGKILL
    herald.child.wait().unwrap();
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
