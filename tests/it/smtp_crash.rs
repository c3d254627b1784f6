//! SIGKILL during a burst of SMTP submissions: every message Herald answered `250` after its final
//! dot arrives at the relay after a restart, on both backends; a message is delivered twice only if
//! it was in flight to the relay when the process died.

use crate::support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use support::Process;
use support::process::{free_port, serve_command};
use support::smtp::SmtpSink;
use support::{ADMIN_PASSWORD, Backend, create_postgres_database, eventually, http_client, postgres_admin_url};

const CLIENTS: usize = 4;
/// Delivery connections, and the messages a worker sends back to back before recording them.
const CONNECTIONS: usize = 2;
const PIPELINE_RUN: usize = 16;
/// Answers to wait for before the kill.
const BEFORE_KILL: usize = 300;

async fn start(data_dir: &Path, database_url: Option<&str>, smtp_port: u16, relay: &str) -> Process {
    let listen = format!("127.0.0.1:{smtp_port}");
    let (mut command, base) = serve_command(data_dir, &["--log", "warn", "--smtp-listen", &listen]);
    command
        .env("HERALD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HERALD_SMTP_URL", relay)
        .env("HERALD_SMTP_CONNECTIONS", CONNECTIONS.to_string())
        .env("HERALD_SMTP_TRUSTED_NETWORKS", "127.0.0.0/8")
        .env("HERALD_NODE_ID", "node_1");
    if let Some(url) = database_url {
        command.env("HERALD_DATABASE_URL", url);
    }
    Process::start(command, base).await
}

/// Reads one reply (all its lines); its code and last line.
async fn reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, String)> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, line));
        }
    }
}

/// Sends messages one transaction after another (envelope pipelined, as RFC 2920 allows) until the
/// connection fails; returns the Message-IDs Herald answered 250 for.
async fn burst(port: u16, client: usize, answered: Arc<AtomicUsize>) -> Vec<String> {
    let mut accepted = Vec::new();
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return accepted;
    };
    let mut conn = BufReader::new(stream);
    let session = async {
        assert_eq!(reply(&mut conn).await?.0, 220);
        conn.get_mut().write_all(b"EHLO burst.example.com\r\n").await?;
        assert_eq!(reply(&mut conn).await?.0, 250);
        for i in 0.. {
            let id = format!("burst-{client}-{i}@example.com");
            let envelope = format!("MAIL FROM:<burst@example.com>\r\nRCPT TO:<user{i}@example.com>\r\nDATA\r\n");
            conn.get_mut().write_all(envelope.as_bytes()).await?;
            for expected in [250, 250, 354] {
                let (code, text) = reply(&mut conn).await?;
                assert_eq!(code, expected, "{text}");
            }
            let content =
                format!("Message-ID: <{id}>\r\nSubject: burst {i}\r\n\r\nmessage {i} of client {client}\r\n.\r\n");
            conn.get_mut().write_all(content.as_bytes()).await?;
            let (code, text) = reply(&mut conn).await?;
            assert_eq!(code, 250, "{text}");
            accepted.push(id);
            answered.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = session.await; // ends when the process dies under it
    accepted
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

fn ids(sink: &SmtpSink) -> Vec<String> {
    sink.received()
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .map(|v| v.trim_matches(['<', '>']).to_owned())
        .collect()
}

async fn every_answered_smtp_message_survives_sigkill_during_a_burst(backend: Backend) {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match postgres_admin_url() {
            Some(admin) => Some(create_postgres_database(&admin).await),
            None => return,
        },
    };
    // A relay that takes a second per DATA: delivery goes on during the burst but cannot keep up.
    let Some(slow) = SmtpSink::start(&["-w", "1"]) else {
        return;
    };
    let Some(fast) = SmtpSink::start(&[]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut herald = start(dir.path(), database_url.as_deref(), port, &slow.url()).await;

    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(burst(port, c, answered.clone())))
        .collect();
    // Killed once the burst is under way and delivery too: messages are then being accepted, waiting,
    // and in flight to the relay.
    let enough = eventually(Duration::from_secs(60), || async {
        answered.load(Ordering::Relaxed) >= BEFORE_KILL && !ids(&slow).is_empty()
    })
    .await;
    assert!(enough, "the burst or its delivery did not get going");
    herald.kill(); // SIGKILL, with clients mid-transaction
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.unwrap());
    }
    let before_crash = ids(&slow);
    assert!(accepted.len() >= BEFORE_KILL);

    let restarted = start(dir.path(), database_url.as_deref(), free_port(), &fast.url()).await;
    let drained = eventually(Duration::from_secs(120), || async {
        queue_size(&restarted).await == Some(0)
    })
    .await;
    assert!(drained, "the queue did not drain after the restart");

    let after = ids(&fast);
    let delivered: HashSet<&String> = before_crash.iter().chain(&after).collect();
    let lost: Vec<&String> = accepted.iter().filter(|id| !delivered.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered messages lost: {lost:?}",
        lost.len(),
        accepted.len()
    );
    let duplicates = before_crash.len() + after.len() - delivered.len();
    eprintln!(
        "answered 250: {}; delivered before the kill: {}, after the restart: {}; duplicates: {duplicates}",
        accepted.len(),
        before_crash.len(),
        after.len()
    );
    assert!(
        duplicates <= CONNECTIONS * PIPELINE_RUN,
        "{duplicates} duplicates; at most the {} in flight may be sent again",
        CONNECTIONS * PIPELINE_RUN
    );
}

backend_tests!(every_answered_smtp_message_survives_sigkill_during_a_burst);
