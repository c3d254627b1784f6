//! Startup time and idle memory of `herald serve` on SQLite.
//!
//! (a) Time from spawning the process until `GET /readyz` answers 200: on a fresh, empty data dir
//!     (first start: migrations, and the bootstrap admin's Argon2id hash), and again on the data
//!     dir the first start left (second start). `BENCH_RUNS` (default 10) of each; min/median/max.
//!     Between the two, the server is stopped with SIGTERM; that time is printed too.
//! (b) Idle memory: VmRSS and VmHWM from /proc/<pid>/status once the server is ready and has
//!     answered 50 requests (49 unauthenticated, then one with the admin's Basic password), for a
//!     first start and for a second start. Target: under 20 MiB RSS. One more row, outside the
//!     target, shows the memory after one further Argon2id verification (a wrong password).
//!
//! Run with `cargo bench --bench startup`. See bench/README.md.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::{Server, basic, fmt_dur, mib, min_median_max, request};

const ADMIN_PASSWORD: &str = "bench-admin-password-0123";
const READY_DEADLINE: Duration = Duration::from_secs(60);
const RSS_TARGET_MIB: f64 = 20.0;

fn main() -> ExitCode {
    let runs = common::env_usize("BENCH_RUNS", 10);
    println!("herald startup benchmark");
    println!("  binary: {}", common::HERALD);
    println!(
        "  machine: {} CPU(s); SQLite data dir in a fresh temp dir per run; {runs} run(s) (BENCH_RUNS)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  load average at start: {}", common::loadavg());
    println!();

    let mut first = Vec::with_capacity(runs);
    let mut second = Vec::with_capacity(runs);
    let mut stops = Vec::with_capacity(runs * 2);
    for run in 0..runs {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");

        let mut server = Server::spawn(&data, &tmp.path().join("first.log"), ADMIN_PASSWORD);
        let t1 = server.wait_ready(READY_DEADLINE);
        stops.push(server.stop());

        let mut server = Server::spawn(&data, &tmp.path().join("second.log"), ADMIN_PASSWORD);
        let t2 = server.wait_ready(READY_DEADLINE);
        stops.push(server.stop());

        eprintln!(
            "  run {:>2}/{runs}: first start {:>9}, second start {:>9}",
            run + 1,
            fmt_dur(t1),
            fmt_dur(t2)
        );
        first.push(t1);
        second.push(t2);
    }

    println!();
    println!("(a) spawn -> GET /readyz 200 ({runs} runs each)");
    println!("  {:<44} {:>10} {:>10} {:>10}", "", "min", "median", "max");
    for (label, sample) in [
        ("first start (empty data dir, hashes admin pw)", &first),
        ("second start (existing data dir)", &second),
        ("stop (SIGTERM -> exit), all starts", &stops),
    ] {
        let (min, median, max) = min_median_max(sample);
        println!(
            "  {label:<44} {:>10} {:>10} {:>10}",
            fmt_dur(min),
            fmt_dur(median),
            fmt_dur(max)
        );
    }

    println!();
    println!("(b) memory after ready + 50 requests (49 x GET /livez, 1 x GET /api/v1/whoami with Basic password)");
    println!(
        "  {:<46} {:>10} {:>10} {:>10} {:>10} {:>8}   target",
        "", "VmRSS", "VmHWM", "RssAnon", "RssFile", "threads"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut over_target = false;
    for label in ["first start", "second start"] {
        let log = tmp.path().join(format!("{}.log", label.replace(' ', "-")));
        let mut server = Server::spawn(&data, &log, ADMIN_PASSWORD);
        server.wait_ready(READY_DEADLINE);
        let at_ready = server.memory();
        for _ in 0..49 {
            let resp = request(server.addr, "GET", "/livez", &[], None).expect("GET /livez");
            assert_eq!(resp.status, 200, "GET /livez: {}", resp.text());
        }
        let unauthenticated = server.memory();
        let auth = basic("admin", ADMIN_PASSWORD);
        let resp = request(server.addr, "GET", "/api/v1/whoami", &[("Authorization", &auth)], None)
            .expect("GET /api/v1/whoami");
        assert_eq!(resp.status, 200, "GET /api/v1/whoami: {}", resp.text());
        assert_eq!(resp.json()["username"], "admin", "{}", resp.text());
        let after = server.memory();
        // Not part of the target: one more Argon2id verification (a wrong password is never
        // cached), to show whether a second hash's working memory stays resident.
        let wrong = basic("admin", "not-the-admin-password");
        let resp = request(server.addr, "GET", "/api/v1/whoami", &[("Authorization", &wrong)], None)
            .expect("GET /api/v1/whoami (wrong password)");
        assert_eq!(resp.status, 401, "wrong password: {}", resp.text());
        let after_second_hash = server.memory();
        for (stage, m) in [
            ("at ready", at_ready),
            ("after 49 unauthenticated", unauthenticated),
            ("after + 1 authenticated (idle)", after),
            ("then + 1 wrong password (401)", after_second_hash),
        ] {
            let target = if stage.starts_with("after +") {
                let ok = mib(m.vm_rss_kb) < RSS_TARGET_MIB;
                over_target |= !ok;
                format!("RSS < {RSS_TARGET_MIB:.0} MiB: {}", if ok { "met" } else { "MISSED" })
            } else {
                String::new()
            };
            println!(
                "  {:<46} {:>10} {:>10} {:>10} {:>10} {:>8}   {target}",
                format!("{label}, {stage}"),
                format!("{:.1} MiB", mib(m.vm_rss_kb)),
                format!("{:.1} MiB", mib(m.vm_hwm_kb)),
                format!("{:.1} MiB", mib(m.rss_anon_kb)),
                format!("{:.1} MiB", mib(m.rss_file_kb)),
                m.threads
            );
        }
        server.stop();
    }
    println!();
    println!("  load average at end: {}", common::loadavg());
    if over_target {
        println!();
        println!("note: idle RSS is above the {RSS_TARGET_MIB:.0} MiB target (reported, not a failure)");
    }
    ExitCode::SUCCESS
}
