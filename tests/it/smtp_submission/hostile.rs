//! Regressions for what `bench/hostile/smtp_hostile.py` found: a client trickling bytes inside DATA
//! held its session for ever.

use super::support;

use std::time::Duration;

use support::Backend;
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
