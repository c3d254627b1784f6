//! Console benchmarks, in one process on 127.0.0.1 (Herald on SQLite in tmpfs when available):
//!   1. pages with a realistic load of data: 1,000 integrations with 50 checks each, 100,000 queued
//!      messages. Throughput and latency of each page, and the ratio to `/livez` on the same server;
//!   2. one alert evaluation over those 1,000 integrations (all turning faulty at once: one digest),
//!      then a steady-state evaluation.
//!
//! Run: `cargo bench --bench console` (env: BENCH_SECS=5, BENCH_CONCURRENCY=8,
//! BENCH_INTEGRATIONS=1000, BENCH_QUEUED=100000). Prints figures and ratios; asserts nothing on time.

use std::time::{Duration, Instant};

mod common;

use herald::integrations::IntegrationSpec;
use herald::store::{CheckRecord, NewMail, now_ms};
use serde_json::json;

const ADMIN_PASSWORD: &str = "bench-admin-password";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// Throughput and latency percentiles of `GET url` with `concurrency` workers for `secs`.
async fn load(url: &str, cookie: Option<&str>, concurrency: usize, secs: u64) -> (f64, Duration, Duration, u64) {
    let client = client();
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, cookie) = (client.clone(), url.to_owned(), cookie.map(str::to_owned));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < until {
                    let mut request = client.get(&url);
                    if let Some(cookie) = &cookie {
                        request = request.header("cookie", cookie);
                    }
                    let sent = Instant::now();
                    match request.send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(sent.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (rate, pct(0.5), pct(0.99), errors)
}

/// Signs in through the form; the `Cookie` header of the session.
async fn sign_in(base: &str) -> String {
    let client = client();
    let form = client.get(format!("{base}/console/sign-in")).send().await.unwrap();
    let signin = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("herald_signin="))
        .unwrap();
    let html = form.text().await.unwrap();
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).unwrap() + marker.len();
    let csrf = html[start..].split('"').next().unwrap().to_owned();
    let response = client
        .post(format!("{base}/console/sign-in"))
        .header("cookie", signin)
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("herald_session="))
        .unwrap()
}

#[tokio::main]
async fn main() {
    let secs = env_num("BENCH_SECS", 5);
    let concurrency = env_num("BENCH_CONCURRENCY", 8) as usize;
    let integrations = env_num("BENCH_INTEGRATIONS", 1000) as usize;
    let queued = env_num("BENCH_QUEUED", 100_000) as usize;
    let server = common::in_process(ADMIN_PASSWORD, |settings| {
        settings.mail.delivery = false;
        settings.alerts.recipients = vec!["ops@example.com".into()];
        settings.alerts.debounce = Duration::ZERO;
        // The bench evaluates the rules itself (part 2); the background loop must not do it first.
        settings.alerts.interval = Duration::from_secs(86_400);
    })
    .await;
    let (base, state) = (server.base.clone(), server.state.clone());

    let seeding = Instant::now();
    let now = now_ms();
    for i in 0..integrations {
        let name = format!("jira-{i:05}");
        let spec: IntegrationSpec = serde_json::from_value(json!({
            "name": name, "url": "http://127.0.0.1:1",
            "auth": {"type": "basic", "username": "svc-herald", "password": "pw"},
            "project_key": "SEC", "issue_type": "Bug"
        }))
        .unwrap();
        state.integrations.create(spec).await.unwrap();
    }
    // Checks recorded after every integration was created (older ones would belong to a previous
    // integration of the same name), a few milliseconds apart.
    let checked = now_ms();
    let mut history = Vec::with_capacity(integrations * 50);
    for i in 0..integrations {
        let name = format!("jira-{i:05}");
        for c in 0..50 {
            let faulty = i % 10 == 0 && c == 49;
            history.push(CheckRecord {
                integration_name: name.clone(),
                status: if faulty {
                    "FAULTY_CONFIGURATION"
                } else {
                    "HEALTHY_INTEGRATION"
                }
                .to_owned(),
                failed_step: faulty.then(|| "connectivity".to_owned()),
                reason: if faulty {
                    "The system is unable to connect to Jira. Connectivity: the connection was refused".to_owned()
                } else {
                    "Integration is healthy and operational.".to_owned()
                },
                checked_at: checked + c as i64,
                duration_ms: 40 + (c as i64 * 7) % 90,
                report: None,
            });
        }
    }
    for chunk in history.chunks(5_000) {
        state.store.record_checks(chunk).await.unwrap();
    }
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..queued {
        batch.push(NewMail {
            id: uuid::Uuid::now_v7().to_string(),
            node_id: state.node_id.to_string(),
            envelope_from: "herald@localhost".into(),
            recipients_json: r#"["team@example.com"]"#.into(),
            subject: format!("Ticket SEC-{i} created"),
            content_json: "{}".into(),
            size_bytes: 2,
            submitted_by: "admin".into(),
            raw: None,
            envelope_params: String::new(),
            protocol: "http",
            client_addr: None,
            message_id: None,
            now,
            idempotency: None,
        });
        if batch.len() == 1_000 {
            state.store.enqueue_mail(&batch).await.unwrap();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        state.store.enqueue_mail(&batch).await.unwrap();
    }
    println!(
        "seeded {integrations} integrations x 50 checks ({} faulty) and {queued} queued messages in {:.1} s",
        integrations / 10,
        seeding.elapsed().as_secs_f64()
    );

    let cookie = sign_in(&base).await;
    let pages = [
        ("/livez (baseline)", "/livez".to_owned(), None),
        ("overview", "/console/".to_owned(), Some(cookie.as_str())),
        (
            "integrations list",
            "/console/integrations".to_owned(),
            Some(cookie.as_str()),
        ),
        (
            "integration detail",
            "/console/integrations/jira-00000".to_owned(),
            Some(cookie.as_str()),
        ),
        ("mail queue, page 1", "/console/mail".to_owned(), Some(cookie.as_str())),
        ("cluster", "/console/cluster".to_owned(), Some(cookie.as_str())),
    ];
    println!("1. pages: one user (1 connection), then under load ({concurrency} connections); {secs} s each");
    println!(
        "   {:<20} {:>11} {:>11} {:>11} {:>10} {:>9}",
        "page", "1 user p50", "1 user p99", "load req/s", "load p50", "vs livez"
    );
    let mut livez = 0.0;
    for (label, path, cookie) in pages {
        let url = format!("{base}{path}");
        load(&url, cookie, concurrency, 1).await;
        let (_, one_p50, one_p99, _) = load(&url, cookie, 1, secs).await;
        let (rate, p50, _, errors) = load(&url, cookie, concurrency, secs).await;
        if livez == 0.0 {
            livez = rate;
        }
        println!(
            "   {label:<20} {:>9.2}ms {:>9.2}ms {rate:>11.0} {:>8.2}ms {:>8.3}x{}",
            one_p50.as_secs_f64() * 1e3,
            one_p99.as_secs_f64() * 1e3,
            p50.as_secs_f64() * 1e3,
            rate / livez,
            if errors > 0 {
                format!("  ({errors} errors)")
            } else {
                String::new()
            }
        );
    }

    println!(
        "2. alert evaluation over {integrations} integrations ({} faulty):",
        integrations / 10
    );
    let started = Instant::now();
    let first = state.alerts.evaluate_once().await.unwrap();
    println!(
        "   first evaluation (all transitions, one digest mail): {:>8.1} ms, {} transitions",
        started.elapsed().as_secs_f64() * 1e3,
        first.transitions
    );
    let mut steady = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let summary = state.alerts.evaluate_once().await.unwrap();
        assert_eq!(summary.transitions, 0);
        steady.push(started.elapsed());
    }
    steady.sort();
    println!(
        "   steady evaluation (nothing changes), median of 10:   {:>8.1} ms",
        steady[5].as_secs_f64() * 1e3
    );
}
