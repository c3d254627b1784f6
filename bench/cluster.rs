//! Cluster benchmarks, in one run against the release-built `herald` binary and a throwaway
//! PostgreSQL server:
//!
//! (1) `GET /rest/mailqueue/1.0/clusterStatus` latency with 500 registered nodes, next to
//!     `/rest/mailqueue/1.0/status` on the same server (the single-node baseline);
//! (2) delivery throughput of 1, 2 and 3 nodes sharing one PostgreSQL, into one `smtp-sink`.
//!
//! Knobs: BENCH_CLUSTER_NODES (1, default 500), BENCH_MAIL_MESSAGES (2, default 20000, split evenly
//! between the nodes), BENCH_MAIL_CONNECTIONS (2, per node, default 4).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::smtp_sink::Sink;
use common::{basic, env_usize, free_port, request};
use herald::store::{ConnectOptions, Heartbeat, NewMail, Store, now_ms};

const PASSWORD: &str = "bench-admin-password";

struct Node {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(id: &str, database_url: &str, env: &[(&str, String)]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut command = common::serve_command_at(addr, dir.path(), &["--log", "warn"]);
        command
            .env("HERALD_DATABASE_URL", database_url)
            .env("HERALD_CLUSTER", "true")
            .env("HERALD_NODE_ID", id)
            .env("HERALD_ADMIN_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let node = Node {
            child: command.spawn().unwrap(),
            addr,
            _dir: dir,
        };
        wait_ready(addr);
        node
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !request(addr, "GET", "/readyz", &[], None).is_ok_and(|r| r.status == 200) {
        assert!(Instant::now() < deadline, "node did not become ready");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn latency(addr: SocketAddr, path: &str, n: usize) -> (Duration, Duration) {
    let auth = basic("admin", PASSWORD);
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            let r = request(addr, "GET", path, &[("Authorization", &auth)], None).unwrap();
            assert_eq!(r.status, 200);
            started.elapsed()
        })
        .collect();
    samples.sort();
    (samples[n / 2], samples[(n * 99 / 100).min(n - 1)])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn store(url: &str) -> Store {
    let store = Store::connect(&ConnectOptions {
        url: url.to_owned(),
        max_connections: 4,
        timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store
}

async fn cluster_status_with_many_nodes(pg: &Postgres) {
    let nodes = env_usize("BENCH_CLUSTER_NODES", 500);
    let url = pg.create_database("herald_view");
    let store = store(&url).await;
    let now = now_ms();
    for i in 1..nodes {
        let id = format!("node_{i:04}");
        let beat = Heartbeat {
            node_id: &id,
            state: "ACTIVE",
            started_at: now,
            now: now + 3_600_000,
            state_since: now,
            queue_size: i as i64,
            error_size: 0,
        };
        store.publish_heartbeat(&beat).await.unwrap();
    }
    let node = Node::start("node_0000", &url, &[("HERALD_MAIL_DELIVERY", "false".into())]);
    let auth = basic("admin", PASSWORD);
    let body = request(
        node.addr,
        "GET",
        "/rest/mailqueue/1.0/clusterStatus",
        &[("Authorization", &auth)],
        None,
    )
    .unwrap()
    .json();
    assert_eq!(body["nodes"].as_array().unwrap().len(), nodes);
    let (status_p50, status_p99) = latency(node.addr, "/rest/mailqueue/1.0/status", 500);
    let (cluster_p50, cluster_p99) = latency(node.addr, "/rest/mailqueue/1.0/clusterStatus", 500);
    println!(
        "(1) clusterStatus with {nodes} registered nodes (PostgreSQL), 500 sequential requests each, new connection per request"
    );
    println!("    status        p50 {}   p99 {}", ms(status_p50), ms(status_p99));
    println!(
        "    clusterStatus p50 {}   p99 {}   ratio p50 {:.2}",
        ms(cluster_p50),
        ms(cluster_p99),
        cluster_p50.as_secs_f64() / status_p50.as_secs_f64()
    );
    store.close().await;
}

async fn throughput_with(pg: &Postgres, nodes: usize, messages: usize, connections: usize, sink_port: u16) -> f64 {
    let url = pg.create_database(&format!("herald_nodes_{nodes}"));
    let store = store(&url).await;
    let content = serde_json::json!({
        "from": "bench@example.com", "to": ["u@example.com"], "cc": [], "bcc": [], "reply_to": null,
        "subject": "bench", "text": "x".repeat(1024), "html": null, "headers": {}
    })
    .to_string();
    let now = now_ms();
    let per_node = messages / nodes;
    for n in 0..nodes {
        for chunk in (0..per_node).collect::<Vec<_>>().chunks(5000) {
            let batch: Vec<NewMail> = chunk
                .iter()
                .map(|i| NewMail {
                    id: uuid::Uuid::now_v7().to_string(),
                    node_id: format!("node_{n}"),
                    envelope_from: "bench@example.com".into(),
                    recipients_json: r#"["u@example.com"]"#.into(),
                    subject: format!("bench {i}"),
                    content_json: content.clone(),
                    size_bytes: content.len() as i64,
                    submitted_by: "bench".into(),
                    raw: None,
                    envelope_params: String::new(),
                    protocol: "http",
                    client_addr: None,
                    message_id: None,
                    now,
                    idempotency: None,
                })
                .collect();
            store.enqueue_mail(&batch).await.unwrap();
        }
    }
    let env = [
        ("HERALD_SMTP_URL", format!("smtp://127.0.0.1:{sink_port}")),
        ("HERALD_SMTP_CONNECTIONS", connections.to_string()),
    ];
    let started = Instant::now();
    let running: Vec<Node> = (0..nodes)
        .map(|n| Node::start(&format!("node_{n}"), &url, &env))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut left = 0;
        for n in 0..nodes {
            left += store.mail_counts(&format!("node_{n}")).await.unwrap().0;
        }
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the queues did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = (per_node * nodes) as f64 / started.elapsed().as_secs_f64();
    drop(running);
    store.close().await;
    rate
}

#[tokio::main]
async fn main() {
    println!("herald cluster benchmarks (load: {})", common::loadavg());
    let pg = Postgres::start();
    cluster_status_with_many_nodes(&pg).await;
    let messages = env_usize("BENCH_MAIL_MESSAGES", 20_000);
    let connections = env_usize("BENCH_MAIL_CONNECTIONS", 4);
    let sink = Sink::start();
    println!(
        "(2) delivery of {messages} messages (1 KiB) into one smtp-sink, {connections} SMTP connections per node, one PostgreSQL (fsync on); timed from node start-up to empty queues"
    );
    let mut base = None;
    for nodes in 1..=3 {
        let rate = throughput_with(&pg, nodes, messages, connections, sink.port).await;
        let base_rate = *base.get_or_insert(rate);
        println!(
            "    {nodes} node(s): {rate:>8.0} msg/s   ratio to 1 node {:.2}",
            rate / base_rate
        );
    }
}
