//! Hostile input, deterministically: 300 sessions generated from a fixed seed (random bytes, long
//! lines, commands out of order, truncated DATA, valid transactions among them), each over a real
//! connection. Afterwards no session panicked, every one was closed, the active-sessions gauge is
//! back to 0, and the server still answers a fresh EHLO.

use super::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::smtp_client::RawSmtp;
use support::{Backend, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::smtp_app;

const SESSIONS: usize = 300;
const SEED: u64 = 0x5eed_f022;
/// Sessions run at once.
const PARALLEL: usize = 25;

static PANICS: AtomicUsize = AtomicUsize::new(0);

const WORDS: &[&str] = &[
    "EHLO fuzz.example",
    "HELO fuzz.example",
    "MAIL FROM:<a@example.com>",
    "MAIL FROM:<a@example.com> SIZE=999999999",
    "MAIL FROM:<> BODY=8BITMIME SMTPUTF8",
    "RCPT TO:<b@example.com>",
    "RCPT TO:<>",
    "DATA",
    "BDAT 10 LAST",
    "RSET",
    "NOOP",
    "VRFY x",
    "HELP",
    "STARTTLS",
    "AUTH PLAIN",
    "AUTH PLAIN AGppcmEAd3Jvbmc=",
    "AUTH LOGIN",
    "AUTH XOAUTH2 abc",
    "*",
    ".",
    "..",
    "MAIL",
    "RCPT TO:",
    "\u{0}\u{1}\u{7f}",
];

/// One session's bytes.
fn script(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(1..12) {
        match rng.random_range(0..10) {
            0 => out.extend((0..rng.random_range(1..300)).map(|_| rng.random::<u8>())),
            1 => {
                let long = rng.random_range(400..20_000);
                out.extend(std::iter::repeat_n(b'A', long));
                if rng.random_bool(0.5) {
                    out.extend_from_slice(b"\r\n");
                }
            }
            2 => {
                // A transaction, possibly truncated or with bare line endings in DATA.
                out.extend_from_slice(
                    b"EHLO f.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
                );
                let body: &[u8] = match rng.random_range(0..4) {
                    0 => b"Subject: x\r\n\r\nbody\r\n.\r\n",
                    1 => b"Subject: x\n.\nQUIT\n",
                    2 => b"Subject: x\r\n\r\ntrunc",
                    _ => b"..\r\n.x\r\n\r.\r\n.\r\n",
                };
                out.extend_from_slice(body);
            }
            _ => {
                let word = WORDS[rng.random_range(0..WORDS.len())];
                out.extend_from_slice(word.as_bytes());
                out.extend_from_slice(match rng.random_range(0..4) {
                    0 => b"\n",
                    1 => b"\r",
                    _ => b"\r\n",
                });
            }
        }
    }
    out
}

/// Plays one session: reads the greeting, writes the script in random pieces, then half-closes and
/// reads until the server closes. Returns whether the server closed the connection.
async fn play(addr: std::net::SocketAddr, bytes: Vec<u8>, pieces: usize) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let chunk = bytes.len().div_ceil(pieces.max(1)).max(1);
    for piece in bytes.chunks(chunk) {
        // The server may close first (errors, pipelining refusals): that is a closed session too.
        if stream.write_all(piece).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 8192];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), drain).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_sessions_neither_crash_nor_leak_the_server() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let app = smtp_app(Backend::Sqlite, |s| {
        s.smtp.trusted_networks = herald::client_addr::TrustedNetworks::parse("127.0.0.0/8").unwrap();
        s.mail.max_size = 16 * 1024;
        s.smtp.max_errors = 5;
    })
    .await
    .expect("SQLite always runs");
    let addr = app.smtp_addr();
    let mut rng = StdRng::seed_from_u64(SEED);
    let scripts: Vec<(Vec<u8>, usize)> = (0..SESSIONS)
        .map(|_| {
            let bytes = script(&mut rng);
            (bytes, rng.random_range(1..5))
        })
        .collect();
    let mut closed = 0;
    for batch in scripts.chunks(PARALLEL) {
        let plays: Vec<_> = batch
            .iter()
            .cloned()
            .map(|(bytes, pieces)| tokio::spawn(play(addr, bytes, pieces)))
            .collect();
        for play in plays {
            closed += usize::from(play.await.expect("client task"));
        }
    }
    assert_eq!(closed, SESSIONS, "every session was closed");
    let metrics = || app.admin_text("/metrics");
    let idle = eventually(Duration::from_secs(20), || async {
        metrics().await.lines().any(|l| l == "herald_smtp_sessions_active 0")
    })
    .await;
    assert!(idle, "{}", metrics().await);
    let text = metrics().await;
    let opened = text
        .lines()
        .find_map(|l| l.strip_prefix("herald_smtp_sessions_total "))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    assert_eq!(opened, SESSIONS);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a session panicked");
    let mut fresh = RawSmtp::open(addr).await;
    let reply = fresh.command("EHLO after.example").await;
    assert!(reply.starts_with("250-"), "{reply}");
    app.stop().await;
}
