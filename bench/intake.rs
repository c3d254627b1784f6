//! Intake: durable mail submissions per second (`POST /api/v1/mail`, 202 only after the commit, 1 KiB
//! text body, Basic credentials served from the credential cache) over real HTTP, driven by an
//! external load generator, `wrk` (Debian package `wrk`, with `bench/wrk/submit.lua`), against the
//! release-built `herald`, in one run:
//!
//! - on SQLite (`synchronous=FULL`) and on PostgreSQL (a throwaway server, fsync on);
//! - with delivery off (the baseline), with the relay up (Postfix's `smtp-sink`), and with the relay
//!   refusing connections; each figure with its ratio to the baseline of its database.
//!
//! Knobs: BENCH_SECONDS (per scenario, default 10), BENCH_MAIL_CLIENTS (wrk connections, default 64),
//! BENCH_ONLY (`sqlite` or `postgres`).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::herald_process::{Herald, PASSWORD};
use common::postgres::Postgres;
use common::smtp_sink::Sink;
use common::wrk::{Load, summary};
use common::{basic, env_secs, env_usize, free_port};

fn wrk(addr: SocketAddr, seconds: Duration, connections: usize) -> Load {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/wrk/submit.lua");
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", seconds.as_secs().max(1)),
        ])
        .args(["-s", script])
        .arg(format!("http://{addr}/api/v1/mail"))
        .env("HERALD_BASIC", basic("admin", PASSWORD).trim_start_matches("Basic "))
        .output()
        .expect("wrk is not installed (apt-get install wrk)");
    summary(&output)
}

/// The three scenarios on one database: (name, accepted mail/s).
fn scenarios(database: &str, database_url: Option<&dyn Fn() -> String>, seconds: Duration, clients: usize) {
    let sink = Sink::start();
    let refused = free_port();
    let runs: [(&str, Vec<(&str, String)>); 3] = [
        ("delivery off", vec![("HERALD_MAIL_DELIVERY", "false".into())]),
        (
            "relay up (smtp-sink)",
            vec![("HERALD_SMTP_URL", format!("smtp://127.0.0.1:{}", sink.port))],
        ),
        (
            "relay refusing connections",
            vec![("HERALD_SMTP_URL", format!("smtp://127.0.0.1:{refused}"))],
        ),
    ];
    let mut baseline = None;
    for (name, mut env) in runs {
        let dir = tempfile::tempdir().unwrap();
        if let Some(url) = database_url {
            env.push(("HERALD_DATABASE_URL", url()));
        }
        let herald = Herald::start(dir.path(), &env);
        // One request first, so that the credential is verified (Argon2) before the clock starts.
        let warm = wrk(herald.addr, Duration::from_secs(1), 1);
        assert!(warm.requests > 0 && warm.non_2xx == 0, "warm-up failed");
        let load = wrk(herald.addr, seconds, clients);
        let queued = herald.status().0;
        let base = *baseline.get_or_insert(load.per_second);
        println!(
            "{database:<10} {name:<28} {:>7.0} mail/s  ratio {:.2}  p50 {:?} p99 {:?}  ({} accepted in {}s; non-2xx {}, socket errors {}; {} still queued)",
            load.per_second,
            load.per_second / base,
            load.p50,
            load.p99,
            load.requests,
            seconds.as_secs(),
            load.non_2xx,
            load.socket_errors,
            queued
        );
    }
}

fn main() {
    let seconds = env_secs("BENCH_SECONDS", 10.0);
    let clients = env_usize("BENCH_MAIL_CLIENTS", 64);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    println!(
        "intake: POST /api/v1/mail, 1 KiB text, wrk -t1 -c{clients}, {}s per scenario, release build",
        seconds.as_secs()
    );
    if only.is_empty() || only == "sqlite" {
        scenarios("SQLite", None, seconds, clients);
    }
    if only.is_empty() || only == "postgres" {
        let pg = Postgres::start();
        let mut n = 0;
        let next = || {
            n += 1;
            pg.create_database(&format!("intake_{n}"))
        };
        let next = std::cell::RefCell::new(next);
        let url = || (next.borrow_mut())();
        scenarios("PostgreSQL", Some(&url), seconds, clients);
    }
}
