//! Integration check benchmarks, all on 127.0.0.1 in one process (Herald + the Jira simulator):
//!   1. cached status-check throughput against /livez on the same server, in one run;
//!   2. live-check latency against the simulator with 50 ms injected latency, and its round trips;
//!   3. a sweep of 10,000 integrations against the simulator.
//!
//! Run: `cargo bench --bench integrations_checks` (env: BENCH_SECS=5, BENCH_CONCURRENCY=32,
//! BENCH_INTEGRATIONS=10000). Prints figures and ratios; asserts nothing about timing.

mod common;
#[path = "../tests/it/support/jira_sim.rs"]
mod jira_sim;
#[path = "../tests/it/support/jira_sim_ticket_routes.rs"]
mod jira_sim_ticket_routes;
#[path = "../tests/it/support/jira_sim_tickets.rs"]
mod jira_sim_tickets;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald::integrations::IntegrationSpec;
use jira_sim::{Flavour, JiraSim};
use serde_json::json;

const ADMIN_PASSWORD: &str = "bench-admin-password";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

use common::InProcess as Server;

async fn start_herald() -> Server {
    common::in_process(ADMIN_PASSWORD, |_| {}).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// Requests per second of `url` with `concurrency` workers for `secs`.
async fn throughput(url: &str, admin: bool, concurrency: usize, secs: u64) -> (f64, u64) {
    let client = client();
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, done, errors) = (client.clone(), url.to_owned(), done.clone(), errors.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let mut request = client.get(&url);
                    if admin {
                        request = request.basic_auth("admin", Some(ADMIN_PASSWORD));
                    }
                    match request.send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let n = done.load(Ordering::Relaxed);
    (
        n as f64 / started.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
    )
}

fn spec(name: &str, sim: &JiraSim) -> IntegrationSpec {
    serde_json::from_value(json!({
        "name": name, "url": sim.url,
        "auth": {"type": "basic", "username": jira_sim::USER, "password": jira_sim::PASSWORD},
        "project_key": "SEC", "issue_type": "Bug"
    }))
    .unwrap()
}

async fn bench_cached_throughput(secs: u64, concurrency: usize) {
    let server = start_herald().await;
    let sim = JiraSim::start(Flavour::DataCenter).await;
    server.state.integrations.create(spec("jira", &sim)).await.unwrap();
    let status_url = format!(
        "{}/xray/api/v1/ticketing/integrations/status/check?integrationName=jira",
        server.base
    );
    // Warm: one real check, credential cache filled.
    throughput(&status_url, true, 1, 1).await;
    let before = sim.total();
    let (livez, livez_errors) = throughput(&format!("{}/livez", server.base), false, concurrency, secs).await;
    let (status, status_errors) = throughput(&status_url, true, concurrency, secs).await;
    println!("1. cached status check vs /livez ({concurrency} connections, {secs} s each, same server):");
    println!("   /livez                 {livez:>10.0} req/s  ({livez_errors} errors)");
    println!("   status/check (cached)  {status:>10.0} req/s  ({status_errors} errors)");
    println!(
        "   ratio                  {:>10.1} %  (target >= 70 %)",
        100.0 * status / livez
    );
    println!(
        "   Jira requests during the status run: {} (checks re-run only when the 30 s max age lapses)",
        sim.total() - before
    );
}

async fn bench_live_latency() {
    let server = start_herald().await;
    let sim = JiraSim::start(Flavour::DataCenter).await;
    server.state.integrations.create(spec("jira", &sim)).await.unwrap();
    sim.configure(|c| c.latency = Duration::from_millis(50));
    let client = client();
    let url = format!("{}/api/v1/integrations/jira/check", server.base);
    let mut samples = Vec::new();
    let mut round_trips = 0;
    let mut requests = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let report: serde_json::Value = client
            .post(&url)
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        samples.push(started.elapsed());
        assert_eq!(report["status"], "HEALTHY_INTEGRATION", "{report}");
        round_trips = report["round_trips"].as_u64().unwrap();
        requests = report["requests"].as_u64().unwrap();
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("2. live check, 50 ms injected latency per Jira answer (20 checks, project + issue type set):");
    println!(
        "   latency p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms; {round_trips} round trips, {requests} requests \
         (target <= 3 round trips; 3 x 50 ms = 150 ms floor)",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 9 / 10]),
        ms(samples[samples.len() - 1])
    );
}

async fn bench_sweep(count: usize) {
    let server = start_herald().await;
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let setup = Instant::now();
    let creators: Vec<_> = (0..4)
        .map(|part| {
            let integrations = server.state.integrations.clone();
            let specs: Vec<IntegrationSpec> = (0..count)
                .filter(|i| i % 4 == part)
                .map(|i| spec(&format!("jira-{i:05}"), &sim))
                .collect();
            tokio::spawn(async move {
                for s in specs {
                    integrations.create(s).await.unwrap();
                }
            })
        })
        .collect();
    for c in creators {
        c.await.unwrap();
    }
    let setup = setup.elapsed();
    sim.reset_counts();
    let summary = server.state.integrations.sweep_once().await.unwrap();
    println!(
        "3. sweep of {count} integrations (setup {:.1} s; HERALD_CHECK_CONCURRENCY {}):",
        setup.as_secs_f64(),
        server.state.settings.checks.concurrency
    );
    println!(
        "   {:.2} s: {} healthy, {} faulty, {} unreadable; {} Jira requests ({:.0} checks/s) (target < 20 s)",
        summary.duration.as_secs_f64(),
        summary.healthy,
        summary.faulty,
        summary.unreadable,
        sim.total(),
        summary.checked as f64 / summary.duration.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let secs = env_num("BENCH_SECS", 5);
    let concurrency = env_num("BENCH_CONCURRENCY", 32) as usize;
    let count = env_num("BENCH_INTEGRATIONS", 10_000) as usize;
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    runtime.block_on(async {
        if only.as_deref().is_none_or(|o| o == "cached") {
            bench_cached_throughput(secs, concurrency).await;
        }
        if only.as_deref().is_none_or(|o| o == "latency") {
            bench_live_latency().await;
        }
        if only.as_deref().is_none_or(|o| o == "sweep") {
            bench_sweep(count).await;
        }
    });
}
