//! Throughput and latency of authenticated requests, against the unauthenticated baseline.
//!
//! One `herald serve` (SQLite, default settings: 30 s credential cache), four scenarios in sequence,
//! each with the same closed-loop load: `BENCH_CONNECTIONS` (default 32) keep-alive HTTP/1.1
//! connections, each sending its next request as soon as the previous answer is read, for
//! `BENCH_WARMUP_SECONDS` (default 3, not counted) then `BENCH_SECONDS` (default 5, measured):
//!
//!   1. GET /livez              no credentials (the baseline)
//!   2. GET /api/v1/whoami      Basic user:password
//!   3. GET /api/v1/whoami      Basic user:hrld_token
//!   4. GET /api/v1/whoami      Bearer hrld_token
//!
//! Prints requests/s, p50/p99/max latency, errors and the ratio to the baseline, plus the CPU the
//! server and this client used. Exits non-zero if any request (warm-up included) failed or was
//! answered with a non-2xx status. There is no threshold on speed.
//!
//! Run with `cargo bench --bench auth_throughput`. See bench/README.md.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use common::{Server, basic, fmt_dur, mib, request};

const ADMIN_PASSWORD: &str = "bench-admin-password-0123";
const USER: &str = "bench";
const USER_PASSWORD: &str = "bench-user-password-4567";

struct Scenario {
    label: &'static str,
    path: &'static str,
    authorization: Option<String>,
    /// Expected `authenticated_by` in the whoami answer; None for /livez.
    expect_method: Option<&'static str>,
}

#[derive(Default)]
struct Outcome {
    /// Latencies of the requests completed inside the measured window, in ns.
    latencies: Vec<u64>,
    /// Longest latency seen during warm-up (includes the first, uncached credential checks).
    warmup_max: u64,
    warmup_requests: u64,
    errors: u64,
    first_error: Option<String>,
    measured: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
    /// CPU used by everything else on the machine during the measured window.
    other_cpu: Duration,
}

fn main() -> ExitCode {
    let connections = common::env_usize("BENCH_CONNECTIONS", 32);
    let client_threads = common::env_usize("BENCH_CLIENT_THREADS", 1);
    let warmup = common::env_secs("BENCH_WARMUP_SECONDS", 3.0);
    let seconds = common::env_secs("BENCH_SECONDS", 5.0);
    assert!(!seconds.is_zero(), "BENCH_SECONDS must be more than 0");

    let tmp = tempfile::tempdir().expect("temp dir");
    let mut server = Server::spawn(&tmp.path().join("data"), &tmp.path().join("server.log"), ADMIN_PASSWORD);
    let ready = server.wait_ready(Duration::from_secs(60));
    let token = setup_user_and_token(server.addr);

    println!("herald auth throughput benchmark");
    println!("  binary: {}", common::HERALD);
    println!(
        "  machine: {} CPU(s), shared by server and client; server ready {} after spawn (SQLite, default settings)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fmt_dur(ready)
    );
    println!(
        "  load: {connections} keep-alive HTTP/1.1 connections (BENCH_CONNECTIONS), closed loop, {client_threads} client thread(s) (BENCH_CLIENT_THREADS); \
         {:.1} s warm-up (BENCH_WARMUP_SECONDS) + {:.1} s measured (BENCH_SECONDS) per scenario",
        warmup.as_secs_f64(),
        seconds.as_secs_f64()
    );
    println!();

    let scenarios = [
        Scenario {
            label: "GET /livez (no auth, baseline)",
            path: "/livez",
            authorization: None,
            expect_method: None,
        },
        Scenario {
            label: "GET /api/v1/whoami  Basic password",
            path: "/api/v1/whoami",
            authorization: Some(basic(USER, USER_PASSWORD)),
            expect_method: Some("password"),
        },
        Scenario {
            label: "GET /api/v1/whoami  Basic token",
            path: "/api/v1/whoami",
            authorization: Some(basic(USER, &token)),
            expect_method: Some("token"),
        },
        Scenario {
            label: "GET /api/v1/whoami  Bearer token",
            path: "/api/v1/whoami",
            authorization: Some(format!("Bearer {token}")),
            expect_method: Some("token"),
        },
    ];

    let runtime = if client_threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(client_threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let mut results = Vec::new();
    for scenario in &scenarios {
        check_once(server.addr, scenario);
        eprintln!("  running: {} ...", scenario.label);
        let outcome = runtime.block_on(run_load(&server, scenario, connections, warmup, seconds));
        results.push(outcome);
    }
    let memory = server.memory();

    let baseline = rps(&results[0]);
    println!(
        "{:<36} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9} {:>11} {:>11} {:>10} {:>12}",
        "scenario",
        "req/s",
        "p50",
        "p99",
        "max",
        "errors",
        "vs /livez",
        "server CPU",
        "client CPU",
        "other CPU",
        "warm-up max"
    );
    let mut errors = 0;
    for (scenario, outcome) in scenarios.iter().zip(&results) {
        let mut sorted = outcome.latencies.clone();
        sorted.sort_unstable();
        let pct = |p: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            Duration::from_nanos(sorted[rank.clamp(1, sorted.len()) - 1])
        };
        let measured = outcome.measured.as_secs_f64();
        println!(
            "{:<36} {:>10.0} {:>9} {:>9} {:>9} {:>7} {:>9} {:>11} {:>11} {:>10} {:>12}",
            scenario.label,
            rps(outcome),
            fmt_dur(pct(50.0)),
            fmt_dur(pct(99.0)),
            fmt_dur(Duration::from_nanos(sorted.last().copied().unwrap_or(0))),
            outcome.errors,
            format!("{:.2}x", rps(outcome) / baseline),
            format!("{:.0}%", 100.0 * outcome.server_cpu.as_secs_f64() / measured),
            format!("{:.0}%", 100.0 * outcome.client_cpu.as_secs_f64() / measured),
            format!("{:.0}%", 100.0 * outcome.other_cpu.as_secs_f64() / measured),
            fmt_dur(Duration::from_nanos(outcome.warmup_max)),
        );
        errors += outcome.errors;
    }
    println!();
    println!("  errors count the whole scenario (warm-up included); CPU is over the measured window, 100% = one core;");
    println!("  other CPU = the rest of the machine (other processes): figures are comparable only when it is near 0%");
    for (scenario, outcome) in scenarios.iter().zip(&results) {
        let measured_requests = outcome.latencies.len().max(1) as f64;
        println!(
            "  {:<36} server CPU per request {:>7}   ({} warm-up + {} measured requests)",
            scenario.label,
            fmt_dur(Duration::from_secs_f64(
                outcome.server_cpu.as_secs_f64() / measured_requests
            )),
            outcome.warmup_requests,
            outcome.latencies.len()
        );
    }
    println!(
        "  server after the run: VmRSS {:.1} MiB, VmHWM {:.1} MiB, {} threads; load average {}",
        mib(memory.vm_rss_kb),
        mib(memory.vm_hwm_kb),
        memory.threads,
        common::loadavg()
    );

    let busy = scenarios
        .iter()
        .zip(&results)
        .filter(|(_, o)| o.other_cpu.as_secs_f64() > 0.10 * o.measured.as_secs_f64())
        .map(|(s, _)| s.label)
        .collect::<Vec<_>>();
    if !busy.is_empty() {
        println!(
            "  WARNING: other processes used more than 10% of a core during: {}; rerun on a quiet machine",
            busy.join(", ")
        );
    }

    for (scenario, outcome) in scenarios.iter().zip(&results) {
        if let Some(first) = &outcome.first_error {
            eprintln!(
                "FAILED: {}: {} error(s), the first: {first}",
                scenario.label, outcome.errors
            );
        }
    }
    drop(server);
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn rps(outcome: &Outcome) -> f64 {
    outcome.latencies.len() as f64 / outcome.measured.as_secs_f64()
}

/// Creates a monitor user and an API token for it through the API, as the bootstrap admin.
fn setup_user_and_token(addr: SocketAddr) -> String {
    let admin = basic("admin", ADMIN_PASSWORD);
    let headers = [("Authorization", admin.as_str()), ("Content-Type", "application/json")];
    let body = serde_json::json!({"username": USER, "password": USER_PASSWORD, "role": "monitor"});
    let resp = request(
        addr,
        "POST",
        "/api/v1/users",
        &headers,
        Some(body.to_string().as_bytes()),
    )
    .expect("POST /api/v1/users");
    assert_eq!(resp.status, 201, "POST /api/v1/users: {}", resp.text());
    let body = serde_json::json!({"name": "bench", "user": USER});
    let resp = request(
        addr,
        "POST",
        "/api/v1/tokens",
        &headers,
        Some(body.to_string().as_bytes()),
    )
    .expect("POST /api/v1/tokens");
    assert_eq!(resp.status, 201, "POST /api/v1/tokens: {}", resp.text());
    let token = resp.json()["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {}", resp.text()))
        .to_owned();
    assert!(token.starts_with("hrld_"), "unexpected token shape");
    token
}

/// One request before the load, checking the answer's content, not only its status.
fn check_once(addr: SocketAddr, scenario: &Scenario) {
    let headers: Vec<(&str, &str)> = scenario
        .authorization
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let resp =
        request(addr, "GET", scenario.path, &headers, None).unwrap_or_else(|e| panic!("{}: {e}", scenario.label));
    assert_eq!(resp.status, 200, "{}: {}", scenario.label, resp.text());
    let json = resp.json();
    match scenario.expect_method {
        None => assert_eq!(json["status"], "ok", "{}: {json}", scenario.label),
        Some(method) => {
            assert_eq!(json["username"], USER, "{}: {json}", scenario.label);
            assert_eq!(json["authenticated_by"], method, "{}: {json}", scenario.label);
        }
    }
}

async fn run_load(
    server: &Server,
    scenario: &Scenario,
    connections: usize,
    warmup: Duration,
    seconds: Duration,
) -> Outcome {
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + seconds;
    let authorization = scenario
        .authorization
        .as_deref()
        .map(|a| HeaderValue::from_str(a).expect("header value"));
    let host = HeaderValue::from_str(&server.addr.to_string()).unwrap();

    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(connection_loop(
                server.addr,
                scenario.path,
                host.clone(),
                authorization.clone(),
                warm_end,
                end,
            ))
        })
        .collect();

    // CPU used by each side over the measured window only.
    tokio::time::sleep_until(warm_end.into()).await;
    let (server_cpu0, client_cpu0) = (server.cpu_time(), common::cpu_time(std::process::id()));
    let machine0 = common::machine_busy();
    tokio::time::sleep_until(end.into()).await;
    let (server_cpu1, client_cpu1) = (server.cpu_time(), common::cpu_time(std::process::id()));
    let machine1 = common::machine_busy();
    let server_cpu = server_cpu1.saturating_sub(server_cpu0);
    let client_cpu = client_cpu1.saturating_sub(client_cpu0);

    let mut total = Outcome {
        measured: seconds,
        server_cpu,
        client_cpu,
        other_cpu: machine1
            .saturating_sub(machine0)
            .saturating_sub(server_cpu + client_cpu),
        ..Outcome::default()
    };
    for task in tasks {
        let part = task.await.expect("connection task panicked");
        total.latencies.extend(part.latencies);
        total.warmup_max = total.warmup_max.max(part.warmup_max);
        total.warmup_requests += part.warmup_requests;
        total.errors += part.errors;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    total
}

/// One keep-alive connection sending requests back to back until `end`.
async fn connection_loop(
    addr: SocketAddr,
    path: &'static str,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
    warm_end: Instant,
    end: Instant,
) -> Outcome {
    let mut out = Outcome {
        latencies: Vec::with_capacity(64 * 1024),
        ..Outcome::default()
    };
    let fail = |out: &mut Outcome, what: String| {
        out.errors += 1;
        if out.first_error.is_none() {
            out.first_error = Some(what);
        }
    };
    'connect: while Instant::now() < end {
        let mut sender = match connect(addr).await {
            Ok(sender) => sender,
            Err(e) => {
                fail(&mut out, format!("connect: {e}"));
                // Do not spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < end {
            let mut req = Request::get(path).header(HOST, host.clone());
            if let Some(auth) = &authorization {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            let req = req.body(Empty::<Bytes>::new()).expect("request");
            let started = Instant::now();
            let result = async {
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            }
            .await;
            let done = Instant::now();
            match result {
                Ok((status, body)) if status.is_success() => {
                    let ns = done.duration_since(started).as_nanos() as u64;
                    if done < warm_end {
                        out.warmup_max = out.warmup_max.max(ns);
                        out.warmup_requests += 1;
                    } else if done < end {
                        out.latencies.push(ns);
                    }
                    let _ = body;
                }
                Ok((status, body)) => {
                    fail(
                        &mut out,
                        format!("{path}: {status}: {}", String::from_utf8_lossy(&body)),
                    );
                }
                Err(e) => {
                    fail(&mut out, format!("{path}: {e}"));
                    continue 'connect;
                }
            }
        }
    }
    out
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
