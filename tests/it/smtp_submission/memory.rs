//! The listener's memory budget for messages (`HERALD_SMTP_DATA_MEMORY`): sessions that together
//! would hold more are answered `452 4.3.1` and may try again once the budget is given back.

use super::support;

use std::time::Duration;

use support::smtp_client::RawSmtp;
use support::{Backend, TestApp, eventually};

use super::smtp_app;

const KIB: usize = 1024;

/// A message of about `size` bytes in 102-octet lines, with the final dot left off.
fn message(size: usize) -> Vec<u8> {
    let line = [b"x".repeat(100), b"\r\n".to_vec()].concat();
    [b"Subject: big\r\n\r\n".to_vec(), line.repeat(size / line.len())].concat()
}

async fn metric(app: &TestApp, series: &str) -> Option<u64> {
    let text = app.admin_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

/// Starts a transaction up to `354`.
async fn start_data(client: &mut RawSmtp) {
    for (command, code) in [
        ("MAIL FROM:<app@example.com>", "250 "),
        ("RCPT TO:<dev@example.com>", "250 "),
        ("DATA", "354 "),
    ] {
        let reply = client.command(command).await;
        assert!(reply.starts_with(code), "{command}: {reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_beyond_the_shared_memory_budget_get_452_and_a_retry_succeeds() {
    // One largest message (192 KiB) plus a chunk fills the budget of 256 KiB.
    let app = smtp_app(Backend::Sqlite, |s| {
        s.mail.max_size = 192 * KIB;
        s.smtp.data_memory = 256 * KIB;
        s.smtp.trusted_networks = herald::client_addr::TrustedNetworks::parse("127.0.0.0/8").unwrap();
    })
    .await
    .expect("SQLite always runs");
    let addr = app.smtp_addr();

    // The first client sends 150 KiB and holds back its final dot: the server keeps three chunks.
    let mut first = RawSmtp::open(addr).await;
    first.command("EHLO first.example").await;
    start_data(&mut first).await;
    first.send(&message(150 * KIB)).await;
    let held = eventually(Duration::from_secs(20), || async {
        metric(&app, "herald_smtp_data_memory_bytes ").await >= Some(3 * 64 * 1024)
    })
    .await;
    assert!(held, "the first message never held its budget");

    // The second needs more than is left: read to its end, refused for now.
    let mut second = RawSmtp::open(addr).await;
    second.command("EHLO second.example").await;
    start_data(&mut second).await;
    second.send(&[message(100 * KIB), b".\r\n".to_vec()].concat()).await;
    let refused = second.reply().await;
    assert!(
        refused.starts_with("452 4.3.1 Insufficient system storage"),
        "{refused}"
    );

    // The first one commits and gives its budget back.
    first.send(b".\r\n").await;
    let stored = first.reply().await;
    assert!(stored.starts_with("250 2.0.0"), "{stored}");
    let given_back = eventually(Duration::from_secs(20), || async {
        metric(&app, "herald_smtp_data_memory_bytes ").await == Some(0)
    })
    .await;
    assert!(given_back, "the budget was not given back");

    // The same session tries again and is served.
    start_data(&mut second).await;
    second.send(&[message(100 * KIB), b".\r\n".to_vec()].concat()).await;
    let retried = second.reply().await;
    assert!(retried.starts_with("250 2.0.0"), "{retried}");
    assert_eq!(
        metric(&app, "herald_smtp_rejections_total{reason=\"memory\"} ").await,
        Some(1)
    );
    assert_eq!(metric(&app, "herald_smtp_data_memory_bytes ").await, Some(0));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_inside_data_gives_its_budget_back() {
    let app = smtp_app(Backend::Sqlite, |s| {
        s.mail.max_size = 192 * KIB;
        s.smtp.data_memory = 256 * KIB;
        s.smtp.trusted_networks = herald::client_addr::TrustedNetworks::parse("127.0.0.0/8").unwrap();
    })
    .await
    .expect("SQLite always runs");
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    client.command("EHLO gone.example").await;
    start_data(&mut client).await;
    client.send(&message(100 * KIB)).await;
    let held = eventually(Duration::from_secs(20), || async {
        metric(&app, "herald_smtp_data_memory_bytes ").await >= Some(100 * KIB as u64)
    })
    .await;
    assert!(held, "the message never held its budget");
    drop(client);
    let given_back = eventually(Duration::from_secs(20), || async {
        metric(&app, "herald_smtp_data_memory_bytes ").await == Some(0)
            && metric(&app, "herald_smtp_sessions_active ").await == Some(0)
    })
    .await;
    assert!(given_back, "{}", app.admin_text("/metrics").await);
    app.stop().await;
}
