//! Regressions for what `bench/hostile/smtp_hostile.py` found: a client trickling bytes inside DATA
//! held its session for ever; a large message cost about 50 times its size in memory while SQLite
//! committed it (hex in JSON), so a large message must still be stored byte for byte as a BLOB.

use super::support;

use std::time::Duration;

use support::Backend;
use support::smtp::SmtpSink;
use support::smtp_client::RawSmtp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::smtp_app;

fn trusted_loopback(s: &mut herald::config::Settings) {
    s.smtp.trusted_networks = herald::client_addr::TrustedNetworks::parse("127.0.0.0/8").unwrap();
}

async fn start_data(client: &mut RawSmtp) {
    for (command, code) in [
        ("EHLO hostile.example", "250"),
        ("MAIL FROM:<app@example.com>", "250 "),
        ("RCPT TO:<dev@example.com>", "250 "),
        ("DATA", "354 "),
    ] {
        let reply = client.command(command).await;
        assert!(reply.starts_with(code), "{command}: {reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_bytes_inside_data_is_timed_out_421() {
    let app = smtp_app(Backend::Sqlite, |s| {
        trusted_loopback(s);
        s.smtp.data_timeout = Duration::from_secs(1);
    })
    .await
    .expect("SQLite always runs");
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    start_data(&mut client).await;
    let (mut reader, mut writer) = client.stream.split();
    // A byte every 100 ms, never a whole line: never silent for the data timeout.
    let trickle = async {
        for _ in 0..600 {
            if writer.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let answer = async {
        let mut text = Vec::new();
        let mut chunk = [0u8; 256];
        while let Ok(n @ 1..) = reader.read(&mut chunk).await {
            text.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&text).into_owned()
    };
    let answered = tokio::select! {
        text = answer => text,
        () = trickle => panic!("the server kept a client that trickled bytes for 60 s"),
    };
    assert!(answered.starts_with("421 4.4.2"), "{answered}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_is_stored_and_relayed_byte_for_byte() {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let url = sink.url();
    let app = smtp_app(Backend::Sqlite, move |s| {
        trusted_loopback(s);
        s.mail.smtp_url = herald::secret::Secret::new(url);
    })
    .await
    .expect("SQLite always runs");
    let message: String = std::iter::once("Subject: large\r\n\r\n".to_owned())
        .chain((0..20_000).map(|i| format!("line {i:06} {}\r\n", "y".repeat(i % 90))))
        .collect();
    assert!(message.len() > 1 << 20);
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    start_data(&mut client).await;
    client.send(format!("{message}.\r\n").as_bytes()).await;
    let stored = client.reply().await;
    assert!(stored.starts_with("250 2.0.0"), "{stored}");
    let report = app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let relayed = sink.received()[0].relayed();
    let at = relayed.find("Subject: large").expect("the message after the trace");
    assert_eq!(&relayed[at..], message.replace("\r\n", "\n"), "byte for byte");
    app.stop().await;
}
