//! Mail queue benchmarks, each in one run against the release-built `herald` binary:
//!
//! (a) delivery throughput into Postfix's `smtp-sink`, next to `smtp-source` driving the same sink with
//!     the same concurrency (the raw ceiling), with durability on (SQLite, synchronous=FULL);
//! (b) durable submission throughput over HTTP (`POST /api/v1/mail`, 202 only after the commit);
//! (c) submit-to-delivered latency, p50 and p99, measured at a relay inside this process;
//! (d) `GET /rest/mailqueue/1.0/status` latency with 1,000,000 messages queued, next to what a
//!     `COUNT(*)` of the same queue costs;
//! (e) a relay outage in the middle of a steady load: mail accepted, probes sent, time to an empty queue.
//!
//! Knobs (environment): BENCH_MAIL_MESSAGES (a, default 20000), BENCH_MAIL_CONNECTIONS (a, default 4,10),
//! BENCH_SECONDS (b, default 5), BENCH_MAIL_CLIENTS (b, default 64), BENCH_MAIL_RATE (c, msg/s, default
//! 200; e, default 200), BENCH_MAIL_QUEUED (d, default 1000000), BENCH_OUTAGE_SECONDS (e, default 60),
//! BENCH_ONLY (a|b|c|d|e, to run one part).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::smtp_sink::Sink;
use common::{basic, env_secs, env_usize, request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use common::herald_process::{Herald, PASSWORD};

fn mail_body(i: usize, payload: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "from": "bench@example.com",
        "to": [format!("user{i}@example.com")],
        "subject": format!("bench message {i}"),
        "text": payload,
    }))
    .unwrap()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// POSTs one mail; returns the HTTP status and the accepted id.
async fn post_mail(sender: &mut Sender, addr: SocketAddr, auth: &str, body: Vec<u8>) -> (u16, Option<String>) {
    sender.ready().await.unwrap();
    let request = hyper::Request::post("/api/v1/mail")
        .header("host", addr.to_string())
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned));
    (status, id)
}

/// Fills the queue over HTTP with `n` messages (1 KiB payload) using `clients` connections.
async fn fill(addr: SocketAddr, n: usize, clients: usize) -> Duration {
    let auth = basic("admin", PASSWORD);
    let next = Arc::new(AtomicU64::new(0));
    let payload = "x".repeat(1024);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, auth, payload) = (next.clone(), auth.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                let (status, _) = post_mail(&mut sender, addr, &auth, mail_body(i, &payload)).await;
                assert_eq!(status, 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn part_enabled(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|p| p.trim() == name))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// (a) Delivery throughput against the smtp-source ceiling, at each connection count of
/// BENCH_MAIL_CONNECTIONS (comma-separated, default 4 and 10).
async fn delivery_throughput() {
    let counts = std::env::var("BENCH_MAIL_CONNECTIONS").unwrap_or_else(|_| "4,10".to_owned());
    for connections in counts.split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
        delivery_throughput_at(connections).await;
    }
}

async fn delivery_throughput_at(connections: usize) {
    let messages = env_usize("BENCH_MAIL_MESSAGES", 20_000);
    let sink = Sink::start();

    let started = Instant::now();
    let status = Command::new("smtp-source")
        .args([
            "-s",
            &connections.to_string(),
            "-d",
            "-m",
            &messages.to_string(),
            "-l",
            "1024",
        ])
        .arg(format!("127.0.0.1:{}", sink.port))
        .status()
        .expect("smtp-source (package postfix)");
    assert!(status.success());
    let ceiling = messages as f64 / started.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap();
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    {
        let herald = Herald::start(dir.path(), &[("HERALD_MAIL_DELIVERY", "false".into())]);
        fill(herald.addr, messages, 32).await;
        assert_eq!(herald.status().0, messages as i64);
    }
    let herald = Herald::start(
        dir.path(),
        &[
            ("HERALD_SMTP_URL", smtp),
            ("HERALD_SMTP_CONNECTIONS", connections.to_string()),
        ],
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        let (size, errors) = herald.status();
        assert_eq!(errors, 0, "deliveries failed");
        if size == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let herald_rate = messages as f64 / started.elapsed().as_secs_f64();
    println!("(a) delivery into smtp-sink, {messages} messages of 1 KiB, {connections} connections");
    println!("    smtp-source ceiling : {ceiling:>9.0} msg/s");
    println!(
        "    herald (durable)    : {herald_rate:>9.0} msg/s   ratio {:.2} (target >= 0.80)",
        herald_rate / ceiling
    );
}

/// (b) Durable submissions over HTTP.
async fn submission_throughput() {
    let seconds = env_secs("BENCH_SECONDS", 5.0);
    let clients = env_usize("BENCH_MAIL_CLIENTS", 64);
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(dir.path(), &[("HERALD_MAIL_DELIVERY", "false".into())]);
    let addr = herald.addr;
    let auth = basic("admin", PASSWORD);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + seconds;
    let payload = "x".repeat(512);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..clients {
        let (done, failed, auth, payload) = (done.clone(), failed.clone(), auth.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut i = c * 1_000_000;
            while Instant::now() < stop_at {
                let (status, _) = post_mail(&mut sender, addr, &auth, mail_body(i, &payload)).await;
                if status == 202 {
                    done.fetch_add(1, Ordering::Relaxed)
                } else {
                    failed.fetch_add(1, Ordering::Relaxed)
                };
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = done.load(Ordering::Relaxed);
    let (size, _) = herald.status();
    assert_eq!(size as u64, accepted, "every 202 is in the queue");
    println!("(b) durable submission over HTTP, {clients} keep-alive clients, {seconds:?}");
    println!(
        "    accepted            : {:>9.0} msg/s   ({accepted} messages, {} failed; target 10000 msg/s)",
        accepted as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
}

/// A relay in this process that records when each Message-ID arrived.
async fn recording_relay(arrivals: Arc<Mutex<HashMap<String, Instant>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                stream.set_nodelay(true).unwrap();
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 bench ESMTP\r\n").await;
                let mut in_data = false;
                let mut message_id = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            if let Some(id) = message_id.take() {
                                arrivals.lock().await.insert(id, Instant::now());
                            }
                            let _ = write.write_all(b"250 2.0.0 Ok\r\n").await;
                        } else if let Some(v) = line.strip_prefix("Message-ID: ") {
                            message_id = Some(v.trim_matches(['<', '>']).trim_end_matches("@herald").to_owned());
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-bench\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 Ok\r\n"
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    port
}

/// (c) Submit-to-delivered latency at a steady rate.
async fn delivery_latency() {
    let rate = env_usize("BENCH_MAIL_RATE", 200);
    let seconds = env_secs("BENCH_SECONDS", 5.0);
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let relay = recording_relay(arrivals.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(dir.path(), &[("HERALD_SMTP_URL", format!("smtp://127.0.0.1:{relay}"))]);
    let addr = herald.addr;
    let auth = basic("admin", PASSWORD);
    let total = (rate as f64 * seconds.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let submitted = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let mut ticker = tokio::time::interval(interval);
    let mut tasks = Vec::new();
    for i in 0..total {
        ticker.tick().await;
        let (auth, submitted) = (auth.clone(), submitted.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let sent_at = Instant::now();
            let (status, id) = post_mail(&mut sender, addr, &auth, mail_body(i, "latency probe")).await;
            assert_eq!(status, 202);
            submitted.lock().await.push((id.unwrap(), sent_at));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().await.len() < total {
        assert!(Instant::now() < deadline, "not every message arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let arrivals = arrivals.lock().await;
    let mut latencies: Vec<Duration> = submitted
        .lock()
        .await
        .iter()
        .map(|(id, sent)| arrivals[id].duration_since(*sent))
        .collect();
    latencies.sort();
    println!("(c) submit-to-delivered latency, {total} messages at {rate} msg/s");
    println!(
        "    p50 {}   p99 {}   max {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
}

/// (d) The status endpoint with a million messages queued.
async fn status_with_a_million_queued() {
    let queued = env_usize("BENCH_MAIL_QUEUED", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    // Create the schema, then load the queue straight through the store (HTTP would take minutes).
    drop(Herald::start(dir.path(), &[("HERALD_MAIL_DELIVERY", "false".into())]));
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = herald::store::Store::connect(&herald::store::ConnectOptions {
        url: url.clone(),
        max_connections: 1,
        timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let loading = Instant::now();
    let content = r#"{"from":"b@example.com","to":["u@example.com"],"cc":[],"bcc":[],"reply_to":null,"subject":"s","text":"t","html":null,"headers":{}}"#;
    for chunk in 0..queued.div_ceil(10_000) {
        let batch: Vec<herald::store::NewMail> = (chunk * 10_000..((chunk + 1) * 10_000).min(queued))
            .map(|i| herald::store::NewMail {
                id: format!("{i:036}"),
                node_id: "bench-node".into(),
                envelope_from: "b@example.com".into(),
                recipients_json: r#"["u@example.com"]"#.into(),
                subject: "s".into(),
                content_json: content.into(),
                size_bytes: content.len() as i64,
                submitted_by: "bench".into(),
                raw: None,
                envelope_params: String::new(),
                protocol: "http",
                client_addr: None,
                message_id: None,
                now: 1_700_000_000_000 + i as i64,
                idempotency: None,
            })
            .collect();
        store.enqueue_mail(&batch).await.unwrap();
    }
    let load_time = loading.elapsed();
    let count_started = Instant::now();
    let counted: i64 = {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM mail_messages WHERE node_id = 'bench-node' AND state IN ('queued', 'sending')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap()
    };
    let count_time = count_started.elapsed();
    store.close().await;
    assert_eq!(counted as usize, queued);

    let herald = Herald::start(dir.path(), &[("HERALD_MAIL_DELIVERY", "false".into())]);
    assert_eq!(herald.status(), (queued as i64, 0));
    let auth = basic("admin", PASSWORD);
    let mut sender = {
        let stream = tokio::net::TcpStream::connect(herald.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    };
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        sender.ready().await.unwrap();
        let request = hyper::Request::get("/rest/mailqueue/1.0/status")
            .header("host", herald.addr.to_string())
            .header("authorization", &auth)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        let _ = response.into_body().collect().await.unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    println!("(d) GET /rest/mailqueue/1.0/status with {queued} messages queued (SQLite; loaded in {load_time:.1?})");
    println!(
        "    p50 {}   p99 {}   (one COUNT(*) of the same queue: {}; ratio p50/COUNT {:.4})",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(count_time),
        percentile(&samples, 0.5).as_secs_f64() / count_time.as_secs_f64()
    );
}

/// (e) A relay outage of BENCH_OUTAGE_SECONDS (default 60) in the middle of a steady load of
/// BENCH_MAIL_RATE messages/s (default 200): what was accepted, how many probes the down relay got,
/// and how long the queue took to empty after the relay came back.
async fn relay_outage() {
    let rate = env_usize("BENCH_MAIL_RATE", 200);
    let outage = env_secs("BENCH_OUTAGE_SECONDS", 60.0);
    let calm = Duration::from_secs(10);
    let sink = Sink::start();
    let port = sink.port;
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(dir.path(), &[("HERALD_SMTP_URL", format!("smtp://127.0.0.1:{port}"))]);
    let addr = herald.addr;
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let total = calm + outage + calm;
    let load = {
        let (accepted, failed) = (accepted.clone(), failed.clone());
        tokio::spawn(async move {
            let auth = basic("admin", PASSWORD);
            let payload = "x".repeat(1024);
            let mut sender = connect(addr).await;
            let started = Instant::now();
            let mut i = 0usize;
            while started.elapsed() < total {
                // Paced: message i goes out at i / rate seconds.
                let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let (status, _) = post_mail(&mut sender, addr, &auth, mail_body(i, &payload)).await;
                if status == 202 { &accepted } else { &failed }.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    tokio::time::sleep(calm).await;
    drop(sink);
    let down_at = Instant::now();
    tokio::time::sleep(outage).await;
    let probes_during = relay_probes(&herald, port);
    let sink = Sink::start_on(port);
    let back_at = Instant::now();
    let _ = load.await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while herald.status().0 > 0 {
        assert!(Instant::now() < deadline, "the queue did not empty after the outage");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let emptied = back_at.elapsed();
    let (_, errors) = herald.status();
    println!(
        "(e) relay outage of {:.0} s in a steady load of {rate} msg/s ({:.0} s before and after)",
        outage.as_secs_f64(),
        calm.as_secs_f64()
    );
    println!(
        "    accepted {} ({} refused); probes sent while down: {probes_during} (the outage lasted {:.0} s)",
        accepted.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        back_at.duration_since(down_at).as_secs_f64()
    );
    println!(
        "    queue empty {} after the relay came back (the load went on for {:.0} s of that); error queue {errors}",
        ms(emptied),
        calm.as_secs_f64()
    );
    drop(sink);
}

/// The probes `herald_mail_relay_probes_total` counts for the relay on `port`.
fn relay_probes(herald: &Herald, port: u16) -> u64 {
    let auth = basic("admin", PASSWORD);
    let text = request(
        herald.addr,
        "GET",
        "/metrics",
        &[("Authorization", auth.as_str())],
        None,
    )
    .expect("metrics")
    .text();
    let relay = format!("relay=\"smtp://127.0.0.1:{port}\"");
    text.lines()
        .filter(|l| l.starts_with("herald_mail_relay_probes_total") && l.contains(&relay))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::main]
async fn main() {
    println!("herald mail queue benchmarks (load: {})", common::loadavg());
    if part_enabled("a") {
        delivery_throughput().await;
    }
    if part_enabled("b") {
        submission_throughput().await;
    }
    if part_enabled("c") {
        delivery_latency().await;
    }
    if part_enabled("e") {
        relay_outage().await;
    }
    if part_enabled("d") {
        status_with_a_million_queued().await;
    }
}
