//! Tickets (issue 14): events in, Jira issues out, against the release-built `herald serve` and the
//! test suite's Jira simulator (tests/it/support/jira_sim*.rs, in this process), in one run:
//!
//! (1) **events accepted per second, durable**: `wrk` (with `bench/wrk/events.lua`) posts Herald's own
//!     events (`POST /api/v1/events`, a new dedup key each) and Alertmanager's webhook payload
//!     (`POST /api/v1/alertmanager/jira`, version 4, two alerts, a new group each) with ticket delivery
//!     off (`HERALD_TICKETS_DELIVERY=false`: a 202 means the event is committed), next to the mail
//!     intake (`POST /api/v1/mail`, `bench/wrk/submit.lua`) with the same wrk settings as the baseline;
//!     on SQLite and PostgreSQL. Afterwards the events Herald stored (its database count, from
//!     `/metrics`) must cover every 202 wrk counted.
//! (2) **issues created per second** against a simulated Jira Cloud that answers after 50 ms and takes
//!     100 requests a second (429 with `Retry-After` and `X-RateLimit-*` beyond): N firing events for
//!     N problems are posted at once, then the time until none is pending; with Herald's per-integration
//!     rate at the limit (100) and above it (150).
//! (3) **duplicates when a tenth of the creates time out**: as (2) at rate 100, but the simulator
//!     applies every 10th create and never answers it (Herald's request timeout 2 s): issues per
//!     problem (goal: exactly one), lost answers, time to apply everything.
//!
//! Knobs (environment): BENCH_ONLY (comma-separated parts: 1, 2, 3), BENCH_SECONDS (1: per scenario,
//! default 10), BENCH_MAIL_CLIENTS (1: wrk connections, default 64), BENCH_TICKETS_DATABASES (1:
//! default `sqlite,postgres`), BENCH_TICKETS_EVENTS (2, 3: events, default 600),
//! BENCH_TICKETS_DEADLINE (2, 3: seconds to wait for every event to be applied, default 300).
//! Exits non-zero when an acknowledged event is missing, an event ends in the error list, or a problem
//! has no issue or more than one.

mod common;
#[path = "../tests/it/support/jira_sim.rs"]
mod jira_sim;
#[path = "../tests/it/support/jira_sim_ticket_routes.rs"]
mod jira_sim_ticket_routes;
#[path = "../tests/it/support/jira_sim_tickets.rs"]
mod jira_sim_tickets;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::herald_process::{Herald, PASSWORD};
use common::postgres::Postgres;
use common::wrk::{Load, summary};
use common::{Response, basic, cpu_time, env_secs, env_usize, loadavg, request};
use jira_sim::{Flavour, JiraSim, SimConfig};
use serde_json::{Value, json};

const INTEGRATION: &str = "jira";
/// The simulated Jira's limit, requests a second, and its latency per answer.
const JIRA_LIMIT: f64 = 100.0;
const JIRA_LATENCY: Duration = Duration::from_millis(50);
/// What a user would set for that Jira: 8 requests in flight cover 50 ms answers at 160 requests/s.
const JIRA_CONCURRENCY: &str = "8";

fn part_enabled(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|p| p.trim() == name))
}

fn admin() -> String {
    basic("admin", PASSWORD)
}

fn get(addr: SocketAddr, path: &str) -> Response {
    let auth = admin();
    request(addr, "GET", path, &[("Authorization", &auth)], None).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Response {
    let auth = admin();
    let body = body.to_string();
    request(
        addr,
        "POST",
        path,
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// Registers the integration through the API, pointing at the simulator (Cloud credentials), with
/// tickets enabled; its first check must pass.
fn register(herald: &Herald, sim: &JiraSim) {
    let spec = json!({
        "name": INTEGRATION, "url": sim.url, "installation_type": "auto", "timeout": "5s",
        "auth": {"type": "basic", "username": jira_sim::USER, "password": jira_sim::API_TOKEN},
        "project_key": "SEC", "issue_type": "Bug", "tickets": {"enabled": true},
    });
    let response = post_json(herald.addr, "/api/v1/integrations", &spec);
    assert_eq!(response.status, 201, "registering the integration: {}", response.text());
    let check = &response.json()["check"];
    assert_eq!(
        check["status"], "HEALTHY_INTEGRATION",
        "the integration's check: {check}"
    );
}

/// Every series of a metric: (labels, value).
fn series(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            if !labels.is_empty() && !labels.starts_with('{') {
                return None; // another metric whose name starts with this one
            }
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sum(text: &str, name: &str) -> f64 {
    // Starting from 0.0: an empty f64 sum is -0.0.
    series(text, name).iter().fold(0.0, |total, (_, v)| total + v)
}

/// `kind=3, other=1` from a metric's series, by one label.
fn by_label(text: &str, name: &str, label: &str) -> String {
    let items: Vec<String> = series(text, name)
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(labels, v)| {
            let key = format!("{label}=\"");
            let value = labels
                .split_once(&key)
                .and_then(|(_, rest)| rest.split('"').next())
                .unwrap_or("?");
            format!("{value} {v}")
        })
        .collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Polls `read` until it gives the same value twice 100 ms apart (the last requests wrk abandoned
/// are committed by then), at most 10 s.
fn settled(read: impl Fn() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = read();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// `wrk -t1 -c<connections> -d<seconds>s -s <script> http://<addr><path>`, as bench/intake.rs runs it.
fn wrk(
    addr: SocketAddr,
    path: &str,
    script: &str,
    env: &[(&str, &str)],
    seconds: Duration,
    connections: usize,
) -> Load {
    let script = format!("{}/bench/wrk/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", seconds.as_secs().max(1)),
        ])
        .args(["-s", &script])
        .arg(format!("http://{addr}{path}"))
        .env("HERALD_BASIC", admin().trim_start_matches("Basic "))
        .env("HERALD_INTEGRATION", INTEGRATION)
        .envs(env.iter().copied())
        .output()
        .expect("wrk is not installed (apt-get install wrk)");
    summary(&output)
}

/// Busy CPU time of the machine (user, nice, system, irq, softirq, steal) and of finished children
/// (wrk, once waited for).
fn machine_and_children() -> (Duration, Duration) {
    // SAFETY: getrusage writes into the struct we own; RUSAGE_CHILDREN has no other precondition.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (common::machine_busy(), tv(usage.ru_utime) + tv(usage.ru_stime))
}

/// One scenario of part 1: what is posted, and how Herald's stored count is read.
#[derive(Clone, Copy)]
enum Intake {
    Mail,
    Events,
    Alertmanager,
}

impl Intake {
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Intake::Mail => ("mail intake (baseline)", "POST /api/v1/mail"),
            Intake::Events => ("Herald events", "POST /api/v1/events"),
            Intake::Alertmanager => ("Alertmanager webhook", "POST /api/v1/alertmanager/jira"),
        }
    }

    fn wrk(self, addr: SocketAddr, run: &str, seconds: Duration, connections: usize) -> Load {
        match self {
            Intake::Mail => wrk(addr, "/api/v1/mail", "submit.lua", &[], seconds, connections),
            Intake::Events => wrk(
                addr,
                "/api/v1/events",
                "events.lua",
                &[("EVENT_FORMAT", "api"), ("BENCH_RUN", run)],
                seconds,
                connections,
            ),
            Intake::Alertmanager => wrk(
                addr,
                &format!("/api/v1/alertmanager/{INTEGRATION}"),
                "events.lua",
                &[("EVENT_FORMAT", "alertmanager"), ("BENCH_RUN", run)],
                seconds,
                connections,
            ),
        }
    }

    /// What the database holds: the queue's size for mail; for events the per-integration count of
    /// waiting events (read from the database at each scrape; with delivery off every stored event
    /// waits). For events also `herald_ticket_events_accepted_total` of their source.
    fn stored(self, herald: &Herald) -> (u64, Option<u64>) {
        match self {
            Intake::Mail => (herald.status().0 as u64, None),
            Intake::Events | Intake::Alertmanager => {
                let text = herald.metrics();
                let source = if matches!(self, Intake::Events) {
                    "api"
                } else {
                    "alertmanager"
                };
                let stored = sum(
                    &text,
                    &format!("herald_ticket_events_queued{{integration=\"{INTEGRATION}\"}}"),
                );
                let counted = sum(
                    &text,
                    &format!("herald_ticket_events_accepted_total{{source=\"{source}\"}}"),
                );
                (stored as u64, Some(counted as u64))
            }
        }
    }
}

/// (1) Durable acceptance of events vs mail, under wrk, on each database.
fn acceptance(rt: &tokio::runtime::Runtime, failures: &mut Vec<String>) {
    let seconds = env_secs("BENCH_SECONDS", 10.0);
    let clients = env_usize("BENCH_MAIL_CLIENTS", 64);
    let databases = std::env::var("BENCH_TICKETS_DATABASES").unwrap_or_else(|_| "sqlite,postgres".into());
    println!(
        "(1) durable acceptance, delivery off: wrk -t1 -c{clients} -d{}s after 1 s of warm-up (one connection), a fresh herald serve per scenario; stored = what its database holds afterwards   load {}",
        seconds.as_secs(),
        loadavg()
    );
    let sim = rt.block_on(JiraSim::start(Flavour::Cloud));
    let postgres = databases.contains("postgres").then(Postgres::start);
    let mut n = 0;
    for database in databases.split(',').map(str::trim) {
        let mut baseline = None;
        for intake in [Intake::Mail, Intake::Events, Intake::Alertmanager] {
            n += 1;
            let dir = tempfile::tempdir().unwrap();
            let mut env = vec![
                ("HERALD_TICKETS_DELIVERY", "false".to_owned()),
                ("HERALD_MAIL_DELIVERY", "false".to_owned()),
            ];
            match (database, &postgres) {
                ("postgres", Some(pg)) => {
                    env.push(("HERALD_DATABASE_URL", pg.create_database(&format!("tickets_{n}"))))
                }
                ("sqlite", _) => {}
                (other, _) => panic!("BENCH_TICKETS_DATABASES: unknown database {other:?}"),
            }
            let herald = Herald::start(dir.path(), &env);
            register(&herald, &sim);
            let warm = intake.wrk(herald.addr, "warm", Duration::from_secs(1), 1);
            assert!(warm.requests > 0 && warm.non_2xx == 0, "warm-up failed");
            let (before, counted_before) = {
                let stored = settled(|| intake.stored(&herald).0);
                (stored, intake.stored(&herald).1)
            };
            let (machine0, children0) = machine_and_children();
            let server0 = cpu_time(herald.pid());
            let started = Instant::now();
            let load = intake.wrk(herald.addr, "measured", seconds, clients);
            let wall = started.elapsed().as_secs_f64();
            let server = (cpu_time(herald.pid()) - server0).as_secs_f64();
            let (machine1, children1) = machine_and_children();
            let client = (children1 - children0).as_secs_f64();
            let other = ((machine1 - machine0).as_secs_f64() - server - client).max(0.0);
            let stored = settled(|| intake.stored(&herald).0) - before;
            let counter = match (intake.stored(&herald).1, counted_before) {
                (Some(after), Some(before)) => format!("; herald_ticket_events_accepted_total +{}", after - before),
                _ => String::new(),
            };
            let acknowledged = load.requests - load.non_2xx;
            let base = *baseline.get_or_insert(load.per_second);
            let (name, route) = intake.describe();
            let verdict = if stored >= acknowledged && stored - acknowledged <= clients as u64 {
                "ok"
            } else {
                failures.push(format!(
                    "(1) {database} {name}: {acknowledged} answered 202 but {stored} stored"
                ));
                "MISMATCH"
            };
            println!(
                "    {database:<8} {name:<23} {route:<31} {:>6.0}/s  ratio {:.2}  p50 {} p99 {}  non-2xx {}, socket errors {}",
                load.per_second,
                load.per_second / base,
                common::fmt_dur(load.p50),
                common::fmt_dur(load.p99),
                load.non_2xx,
                load.socket_errors,
            );
            println!(
                "             {acknowledged} answered 202, {stored} stored (+{} abandoned in flight when wrk stopped{counter}): {verdict}; CPU: server {:.0}% ({:.0} µs/request), wrk {:.0}%, other {:.0}%",
                stored.saturating_sub(acknowledged),
                server / wall * 100.0,
                server * 1e6 / load.requests.max(1) as f64,
                client / wall * 100.0,
                other / wall * 100.0,
            );
        }
    }
}

/// One run of parts 2 and 3.
struct Delivery<'a> {
    title: &'a str,
    rate: u32,
    /// Every `n`th create is applied but never answered.
    lose_every: Option<usize>,
    extra_env: &'a [(&'a str, &'a str)],
}

/// Posts `events` firing events for as many problems with `threads` connections at once.
fn post_events(addr: SocketAddr, events: usize, threads: usize) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                for i in (t..events).step_by(threads) {
                    let body = json!({
                        "integration": INTEGRATION, "dedup_key": format!("problem/{i}"), "status": "firing",
                        "summary": format!("Disk full on db{i}"),
                        "description": "Free space on /var fell below one percent.",
                        "labels": {"severity": "critical", "instance": format!("db{i}:9100")},
                    });
                    let response = post_json(addr, "/api/v1/events", &body);
                    assert_eq!(response.status, 202, "posting an event: {}", response.text());
                }
            });
        }
    });
}

fn items(herald: &Herald, query: &str) -> usize {
    let page = get(herald.addr, &format!("/api/v1/tickets?{query}")).json();
    page["items"].as_array().map_or(0, Vec::len)
}

/// The most requests that arrived in any one second.
fn busiest_second(mut arrivals: Vec<Instant>) -> usize {
    arrivals.sort();
    let mut best = 0;
    let mut first = 0;
    for last in 0..arrivals.len() {
        while arrivals[last] - arrivals[first] >= Duration::from_secs(1) {
            first += 1;
        }
        best = best.max(last - first + 1);
    }
    best
}

fn delivery(rt: &tokio::runtime::Runtime, run: &Delivery, failures: &mut Vec<String>) {
    let events = env_usize("BENCH_TICKETS_EVENTS", 600);
    let deadline = env_secs("BENCH_TICKETS_DEADLINE", 300.0);
    let sim = rt.block_on(JiraSim::start_with(SimConfig {
        latency: JIRA_LATENCY,
        ..SimConfig::new(Flavour::Cloud)
    }));
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("HERALD_MAIL_DELIVERY", "false".to_owned()),
        ("HERALD_TICKETS_JIRA_RATE", run.rate.to_string()),
        ("HERALD_TICKETS_JIRA_CONCURRENCY", JIRA_CONCURRENCY.to_owned()),
    ];
    env.extend(run.extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let herald = Herald::start(dir.path(), &env);
    register(&herald, &sim);
    let settings: Vec<String> = env[1..].iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("    {} ({})   load {}", run.title, settings.join(" "), loadavg());

    // The limit starts now, with a full bucket, as Herald's own does; the check's requests are done.
    sim.tickets().rate_limit(JIRA_LIMIT);
    if let Some(n) = run.lose_every {
        sim.tickets().lose_every_nth_create_answer(n);
    }
    let seen_before = sim.tickets().seen().len();
    let throttled_before = sim.tickets().throttled();
    let started = Instant::now();
    post_events(herald.addr, events, 8);
    let posted = started.elapsed();
    let give_up = started + deadline;
    while items(&herald, "state=pending&limit=1") > 0 {
        if Instant::now() > give_up {
            failures.push(format!("{}: events still pending after {deadline:?}", run.title));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let parked = items(&herald, "state=error&limit=1000");

    let seen = sim.tickets().seen().split_off(seen_before);
    let throttled = sim.tickets().throttled() - throttled_before;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for s in &seen {
        let kind = if s.method == "POST" && s.path.ends_with("/issue") {
            "creates".to_owned()
        } else if s.path.contains("/search") {
            "searches".to_owned()
        } else {
            format!("{} {}", s.method, s.path)
        };
        *kinds.entry(kind).or_default() += 1;
    }
    let creates = kinds.get("creates").copied().unwrap_or(0);
    let searches = kinds.get("searches").copied().unwrap_or(0);
    let other: Vec<String> = kinds
        .iter()
        .filter(|(k, _)| *k != "creates" && *k != "searches")
        .map(|(k, n)| format!("{n} × {k}"))
        .collect();
    let busiest = busiest_second(seen.iter().map(|s| s.at.into_std()).collect());

    let issues = sim.tickets().issues();
    let mut per_label: HashMap<&str, usize> = HashMap::new();
    for issue in &issues {
        for label in &issue.labels {
            *per_label.entry(label.as_str()).or_default() += 1;
        }
    }
    let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
    for i in 0..events {
        let label = herald::tickets::dedup_label(INTEGRATION, &format!("problem/{i}"));
        *histogram
            .entry(per_label.get(label.as_str()).copied().unwrap_or(0))
            .or_default() += 1;
    }
    let one = histogram.get(&1).copied().unwrap_or(0);
    let missing = histogram.get(&0).copied().unwrap_or(0);
    let duplicates: usize = histogram
        .iter()
        .filter(|(n, _)| **n > 1)
        .map(|(n, p)| (n - 1) * p)
        .sum();

    let secs = elapsed.as_secs_f64();
    let sent = seen.len() as f64 / secs;
    let served = (seen.len() - throttled) as f64 / secs;
    println!(
        "      posted {events} events in {:.2} s; every event applied after {secs:.2} s; error list: {parked}",
        posted.as_secs_f64()
    );
    println!(
        "      issues created: {} ({:.1} issues/s); issues per dedup label: {one} × 1, {missing} × 0, {duplicates} duplicates",
        issues.len(),
        issues.len() as f64 / secs
    );
    println!(
        "      Jira requests: {} = {creates} creates + {searches} searches{}{}: {sent:.1}/s sent, {throttled} answered 429 ({:.1}%), {served:.1}/s served = {:.2} of the {JIRA_LIMIT:.0} req/s limit; busiest second {busiest}",
        seen.len(),
        if other.is_empty() { "" } else { " + " },
        other.join(" + "),
        throttled as f64 * 100.0 / seen.len().max(1) as f64,
        served / JIRA_LIMIT,
    );
    // A full bucket goes at once, then the rate: the least time the limit allows for these requests.
    let served_n = seen.len() - throttled;
    let floor = (served_n as f64 - JIRA_LIMIT).max(0.0) / JIRA_LIMIT;
    if floor > 0.0 {
        println!(
            "      the limit lets {served_n} requests through in no less than {floor:.2} s (a bucket of {JIRA_LIMIT:.0}, then {JIRA_LIMIT:.0}/s): Herald went at {:.2} of that pace",
            floor / secs,
        );
    }
    if run.lose_every.is_some() {
        println!(
            "      create answers the simulator held back: {}",
            sim.tickets().lost_answers()
        );
    }
    let metrics = herald.metrics();
    println!(
        "      Herald's metrics: throttled answers {}; failed attempts: {}; applied: {}",
        sum(&metrics, "herald_ticket_jira_throttled_total"),
        by_label(&metrics, "herald_ticket_event_failures_total", "kind"),
        by_label(&metrics, "herald_ticket_events_applied_total", "action"),
    );
    if parked > 0 {
        failures.push(format!("{}: {parked} problems in the error list", run.title));
    }
    if missing > 0 || duplicates > 0 {
        failures.push(format!(
            "{}: {missing} problems without an issue, {duplicates} duplicate issues",
            run.title
        ));
    }
}

fn main() {
    println!(
        "herald ticket benchmarks (release build; {} CPUs; load average {} at start)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    // The simulator runs here, on a thread of its own; everything else in this process blocks.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut failures = Vec::new();
    if part_enabled("1") {
        acceptance(&rt, &mut failures);
    }
    let jira = format!(
        "simulated Jira Cloud: {} ms per answer, {JIRA_LIMIT:.0} requests/s (429 + Retry-After beyond); {} firing events for as many problems, posted by 8 threads",
        JIRA_LATENCY.as_millis(),
        env_usize("BENCH_TICKETS_EVENTS", 600)
    );
    if part_enabled("2") {
        println!("(2) issues created per second; {jira}");
        for (title, rate) in [("at the limit", 100), ("above the limit", 150)] {
            let run = Delivery {
                title,
                rate,
                lose_every: None,
                extra_env: &[],
            };
            delivery(&rt, &run, &mut failures);
        }
    }
    if part_enabled("3") {
        println!("(3) duplicates when every 10th create is applied but never answered; {jira}");
        let run = Delivery {
            title: "a tenth of the creates time out",
            rate: 100,
            lose_every: Some(10),
            extra_env: &[
                ("HERALD_TICKETS_JIRA_TIMEOUT", "2s"),
                ("HERALD_TICKETS_BACKOFF_INITIAL", "200ms"),
            ],
        };
        delivery(&rt, &run, &mut failures);
    }
    println!("load average at end: {}", loadavg());
    if !failures.is_empty() {
        for failure in &failures {
            println!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
}
