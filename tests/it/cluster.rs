//! Cluster mode: several Herald processes on one PostgreSQL database.

use crate::support;

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::Process;
use support::console::{ConsoleClient, text_after};
use support::pg_cluster::PgCluster;
use support::process::{HERALD, serve_command};
use support::smtp::SmtpSink;
use support::{ADMIN_PASSWORD, create_postgres_database, eventually, http_client, postgres_admin_url};

/// 32 bytes, base64.
const SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Node {
    process: Process,
    _dir: tempfile::TempDir,
}

/// A cluster node's command: shared settings with short intervals, JSON logs, and `extra` env.
fn node_command(id: &str, database_url: &str, extra: &[(&str, &str)]) -> (Command, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (mut command, base) = serve_command(dir.path(), &["--log-format", "json"]);
    command
        .env("HERALD_DATABASE_URL", database_url)
        .env("HERALD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HERALD_NODE_ID", id)
        .env("HERALD_CLUSTER", "true")
        .env("HERALD_CLUSTER_POLL_INTERVAL", "200ms")
        .env("HERALD_CLUSTER_HEARTBEAT_TIMEOUT", "1s")
        .env("HERALD_CLUSTER_ADOPT_AFTER", "1s")
        .env("HERALD_DATABASE_TIMEOUT", "2s")
        .env("HERALD_SMTP_URL", "smtp://127.0.0.1:1")
        .env("HERALD_LOG", "warn")
        // Nodes sharing a database share the key that seals integration secrets.
        .env("HERALD_SECRET_KEY", SECRET_KEY);
    for (k, v) in extra {
        command.env(k, v);
    }
    (command, base, dir)
}

async fn start_node(id: &str, database_url: &str, extra: &[(&str, &str)]) -> Node {
    let (command, base, dir) = node_command(id, database_url, extra);
    spawn_node(command, base, dir).await
}

async fn spawn_node(command: Command, base: String, dir: tempfile::TempDir) -> Node {
    Node {
        process: Process::start(command, base).await,
        _dir: dir,
    }
}

async fn database() -> Option<String> {
    Some(create_postgres_database(&postgres_admin_url()?).await)
}

async fn cluster_status(node: &Node) -> Option<serde_json::Value> {
    let response = http_client()
        .get(format!("{}/rest/mailqueue/1.0/clusterStatus", node.process.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

/// `(nodeId, nodeState, size, errorSize)` of every node in one answer.
fn summary(status: &serde_json::Value) -> Vec<(String, String, i64, i64)> {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["isClustered"], true);
            (
                n["nodeId"].as_str().unwrap().to_owned(),
                n["nodeState"].as_str().unwrap().to_owned(),
                n["mailQueue"]["size"].as_i64().unwrap(),
                n["mailQueue"]["errorSize"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn submit(node: &Node, to: &str) -> reqwest::Response {
    http_client()
        .post(format!("{}/api/v1/mail", node.process.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&serde_json::json!({"to": [to], "subject": "cluster", "text": "x"}))
        .send()
        .await
        .unwrap()
}

fn herald_cli(database_url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(HERALD)
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env("HERALD_DATABASE_URL", database_url)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_reports_the_same_cluster() {
    let Some(db) = database().await else { return };
    let hold = [("HERALD_MAIL_DELIVERY", "false")];
    let nodes = [
        start_node("node_2", &db, &hold).await,
        start_node("node_1", &db, &hold).await,
        start_node("node_3", &db, &hold).await,
    ];
    for i in 0..2 {
        assert_eq!(submit(&nodes[0], &format!("u{i}@example.com")).await.status(), 202);
    }
    let expected = vec![
        ("node_1".to_owned(), "ACTIVE".to_owned(), 0, 0),
        ("node_2".to_owned(), "ACTIVE".to_owned(), 2, 0),
        ("node_3".to_owned(), "ACTIVE".to_owned(), 0, 0),
    ];
    for node in &nodes {
        let agreed = eventually(Duration::from_secs(20), || async {
            cluster_status(node).await.is_some_and(|s| summary(&s) == expected)
        })
        .await;
        assert!(agreed, "{} reports {:?}", node.process.base, cluster_status(node).await);
    }
    let xml = http_client()
        .get(format!("{}/rest/mailqueue/1.0/clusterStatus", nodes[1].process.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.starts_with(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><clusterMailQueue><node><nodeId>node_1</nodeId><nodeState>ACTIVE</nodeState><isClustered>true</isClustered><mailQueue><size>0</size><errorSize>0</errorSize></mailQueue></node><node><nodeId>node_2</nodeId>"#
    ), "{xml}");
    let status = herald_cli(&db, &["cluster", "status"]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("node_1") && table.contains("node_3") && table.contains("ACTIVE"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_goes_offline_and_its_mail_is_adopted_once_and_delivered_once() {
    let Some(db) = database().await else { return };
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let smtp = sink.url();
    let deliver = [("HERALD_SMTP_URL", smtp.as_str())];
    let survivors = [
        start_node("node_1", &db, &deliver).await,
        start_node("node_2", &db, &deliver).await,
    ];
    let mut doomed = start_node("node_3", &db, &[("HERALD_MAIL_DELIVERY", "false")]).await;
    let mut accepted = Vec::new();
    for i in 0..5 {
        let response = submit(&doomed, &format!("u{i}@example.com")).await;
        accepted.push(
            response.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let published = eventually(Duration::from_secs(20), || async {
        cluster_status(&survivors[0])
            .await
            .is_some_and(|s| summary(&s).iter().any(|n| n.0 == "node_3" && n.2 == 5))
    })
    .await;
    assert!(published, "node_3's queue was never published");

    doomed.process.kill(); // SIGKILL

    let offline = eventually(Duration::from_secs(20), || async {
        cluster_status(&survivors[1])
            .await
            .is_some_and(|s| summary(&s).iter().any(|n| n.0 == "node_3" && n.1 == "OFFLINE"))
    })
    .await;
    assert!(offline, "node_3 never went OFFLINE");
    let delivered = eventually(Duration::from_secs(30), || async {
        let ids: HashSet<String> = sink.received_ids().into_iter().collect();
        accepted.iter().all(|id| ids.contains(id))
    })
    .await;
    assert!(delivered, "node_3's mail was not delivered after adoption");
    let drained = eventually(Duration::from_secs(20), || async {
        cluster_status(&survivors[0])
            .await
            .is_some_and(|s| summary(&s).iter().all(|n| n.2 == 0))
    })
    .await;
    assert!(drained);
    let received = sink.received_ids();
    for id in &accepted {
        assert_eq!(
            received.iter().filter(|r| *r == id).count(),
            1,
            "message {id} delivered more than once"
        );
    }
}

/// The console's cluster page as the admin sees it: `(node, state)` of each row (`OFFLINE stopped`
/// for a node that stopped cleanly), and its buttons.
async fn console_nodes(console: &ConsoleClient) -> (Vec<(String, String)>, String) {
    let (status, _, body) = console.get("/console/cluster").await;
    assert_eq!(status, 200, "{body}");
    let rows = body
        .split("<tr data-node=\"")
        .skip(1)
        .map(|row| {
            let node = row.split('"').next().unwrap().to_owned();
            let state_cell = row.split("class=\"badge ").nth(1).unwrap();
            let mut state = text_after(state_cell, ">").unwrap().to_owned();
            if state_cell
                .split("</td>")
                .next()
                .unwrap()
                .contains(r#"<span class="muted">stopped</span>"#)
            {
                state.push_str(" stopped");
            }
            (node, state)
        })
        .collect();
    (rows, body)
}

/// Polls the console until node `id` shows `state`.
async fn console_shows(console: &ConsoleClient, id: &str, state: &str) {
    let shown = eventually(Duration::from_secs(20), || async {
        console_nodes(console)
            .await
            .0
            .contains(&(id.to_owned(), state.to_owned()))
    })
    .await;
    assert!(shown, "{id} never {state}: {:?}", console_nodes(console).await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_every_node_and_drains_one() {
    let Some(db) = database().await else { return };
    let mut nodes = [
        start_node("node_1", &db, &[]).await,
        start_node("node_2", &db, &[]).await,
    ];
    let mut console = ConsoleClient::at(&nodes[0].process.base);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    let both_active = eventually(Duration::from_secs(20), || async {
        console_nodes(&console).await.0
            == [
                ("node_1".to_owned(), "ACTIVE".to_owned()),
                ("node_2".to_owned(), "ACTIVE".to_owned()),
            ]
    })
    .await;
    assert!(both_active, "{:?}", console_nodes(&console).await.0);
    let token = console.csrf().await;
    let (status, _, _) = console.post("/console/cluster/node_2/drain", &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let (_, _, body) = console.get("/console/cluster").await;
    assert!(body.contains("Node node_2 will drain at its next heartbeat"), "{body}");
    let passive = eventually(Duration::from_secs(20), || async {
        console_nodes(&console)
            .await
            .0
            .contains(&("node_2".to_owned(), "PASSIVE".to_owned()))
    })
    .await;
    assert!(passive, "{:?}", console_nodes(&console).await.0);
    assert!(
        console_nodes(&console)
            .await
            .1
            .contains(r#"action="/console/cluster/node_2/activate""#)
    );
    let (status, _, _) = console
        .post("/console/cluster/node_2/activate", &[("csrf", &token)])
        .await;
    assert_eq!(status, 303);
    let active = eventually(Duration::from_secs(20), || async {
        console_nodes(&console)
            .await
            .0
            .contains(&("node_2".to_owned(), "ACTIVE".to_owned()))
    })
    .await;
    assert!(active, "{:?}", console_nodes(&console).await.0);
    let (status, _, body) = console.post("/console/cluster/node_9/drain", &[("csrf", &token)]).await;
    assert_eq!(status, 404, "{body}");
    // A clean shutdown shows as stopped; a restart brings the node back.
    assert!(nodes[1].process.terminate().await.success());
    console_shows(&console, "node_2", "OFFLINE stopped").await;
    let status = herald_cli(&db, &["cluster", "status"]);
    let listed = String::from_utf8_lossy(&status.stdout).into_owned();
    let line = listed.lines().find(|l| l.starts_with("node_2 ")).unwrap_or_default();
    assert!(
        line.contains("OFFLINE") && line.ends_with("(stopped cleanly)"),
        "{listed}"
    );
    nodes[1] = start_node("node_2", &db, &[]).await;
    console_shows(&console, "node_2", "ACTIVE").await;
    // A node that stops answering turns OFFLINE on the page, not stopped.
    nodes[1].process.kill();
    console_shows(&console, "node_2", "OFFLINE").await;
}

/// A flush asked of any node makes every node's waiting mail due (each node sends its own);
/// `?node=` limits it to one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_on_one_node_retries_the_mail_of_every_node() {
    let Some(db) = database().await else { return };
    // A relay that answers 4xx to every recipient: each attempt fails and is charged.
    let Some(refusing) = SmtpSink::start(&["-r", "RCPT"]) else {
        return;
    };
    let relay = refusing.url();
    let backoff = [
        ("HERALD_MAIL_BACKOFF_INITIAL", "1h"),
        ("HERALD_SMTP_URL", relay.as_str()),
    ];
    let nodes = [
        start_node("node_1", &db, &backoff).await,
        start_node("node_2", &db, &backoff).await,
    ];
    let accepted = submit(&nodes[1], "a@example.com").await;
    assert_eq!(accepted.status(), 202);
    let id = accepted.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts = || async {
        http_client()
            .get(format!("{}/api/v1/mail/{id}", nodes[1].process.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["attempts"]
            .as_i64()
            .unwrap()
    };
    // node_2 tries once (its relay refuses the recipient for now), then waits an hour.
    assert!(eventually(Duration::from_secs(20), || async { attempts().await == 1 }).await);
    let base = nodes[0].process.base.clone();
    let flush = |query: &'static str| {
        let url = format!("{base}/api/v1/mail/flush{query}");
        async move {
            let response = http_client()
                .post(url)
                .basic_auth("admin", Some(ADMIN_PASSWORD))
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(flush("?node=node_1").await.1["count"], 0);
    assert_eq!(attempts().await, 1);
    let (status, body) = flush("").await;
    assert_eq!(
        (status.as_u16(), &body["count"]),
        (200, &serde_json::json!(1)),
        "{body}"
    );
    assert!(
        eventually(Duration::from_secs(20), || async { attempts().await == 2 }).await,
        "node_2 did not retry its message after a flush on node_1"
    );
    let (status, body) = flush("?scope=all").await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (400, &serde_json::json!("invalid_query")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("unknown field `scope`"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_takes_no_new_work_until_activated() {
    let Some(db) = database().await else { return };
    let nodes = [
        start_node("node_1", &db, &[]).await,
        start_node("node_2", &db, &[]).await,
    ];
    let drain = herald_cli(&db, &["cluster", "drain", "node_2"]);
    assert!(drain.status.success(), "{}", String::from_utf8_lossy(&drain.stderr));
    let passive = eventually(Duration::from_secs(20), || async {
        cluster_status(&nodes[0])
            .await
            .is_some_and(|s| summary(&s).iter().any(|n| n.0 == "node_2" && n.1 == "PASSIVE"))
    })
    .await;
    assert!(passive, "{:?}", cluster_status(&nodes[0]).await);
    let refused = submit(&nodes[1], "a@example.com").await;
    assert_eq!(refused.status(), 503);
    let ready = http_client()
        .get(format!("{}/readyz", nodes[1].process.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["status"], "draining");
    assert_eq!(
        submit(&nodes[0], "a@example.com").await.status(),
        202,
        "the other node still takes mail"
    );

    assert!(herald_cli(&db, &["cluster", "activate", "node_2"]).status.success());
    let active = eventually(Duration::from_secs(20), || async {
        submit(&nodes[1], "b@example.com").await.status() == 202
    })
    .await;
    assert!(active);
    let unknown = herald_cli(&db, &["cluster", "drain", "node_9"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no cluster node `node_9`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_nodes_cannot_share_an_id() {
    let Some(db) = database().await else { return };
    let _first = start_node("node_1", &db, &[]).await;
    let (mut command, _, _dir) = node_command("node_1", &db, &[]);
    let output = command.stderr(Stdio::piped()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another live node already uses the node id `node_1`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secrets_key_is_refused_at_start_up() {
    let Some(db) = database().await else { return };
    let _first = start_node("node_1", &db, &[]).await;
    let (mut command, _, _dir) = node_command(
        "node_2",
        &db,
        &[("HERALD_SECRET_KEY", "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=")],
    );
    let output = command.stderr(Stdio::piped()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("every node sharing a database needs the same HERALD_SECRET_KEY"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_on_sqlite_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(HERALD)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env_remove("HERALD_DATABASE_URL")
        .env("HERALD_CLUSTER", "true")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("HERALD_CLUSTER=true needs a PostgreSQL database"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_recover_from_a_database_restart_without_restarting() {
    let Some(pg) = PgCluster::start() else { return };
    let db = create_postgres_database(&pg.url()).await;
    let nodes = [
        start_node("node_1", &db, &[]).await,
        start_node("node_2", &db, &[]).await,
    ];
    pg.stop_server();
    let unavailable = http_client()
        .get(format!("{}/readyz", nodes[0].process.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status(), 503);
    pg.start_server();
    for node in &nodes {
        let recovered = eventually(Duration::from_secs(30), || async {
            cluster_status(node).await.is_some_and(|s| {
                summary(&s)
                    .iter()
                    .map(|n| (n.0.as_str(), n.1.as_str()))
                    .collect::<Vec<_>>()
                    == [("node_1", "ACTIVE"), ("node_2", "ACTIVE")]
            })
        })
        .await;
        assert!(
            recovered,
            "{} reports {:?}",
            node.process.base,
            cluster_status(node).await
        );
        assert_eq!(submit(node, "after@example.com").await.status(), 202);
    }
}

/// `checked` of every "integration sweep finished" line a node has logged so far.
fn sweeps_logged(log: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["message"] == "integration sweep finished")
        .filter_map(|v| v["checked"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_nodes_split_the_integration_sweep() {
    use support::jira_sim::{Flavour, JiraSim};
    let Some(db) = database().await else { return };
    const INTEGRATIONS: usize = 8;
    let mut sims = Vec::new();
    for _ in 0..INTEGRATIONS {
        sims.push(JiraSim::start(Flavour::Cloud).await);
    }
    let logs = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for id in ["node_1", "node_2"] {
        let (mut command, base, dir) =
            node_command(id, &db, &[("HERALD_CHECK_INTERVAL", "1s"), ("HERALD_LOG", "info")]);
        command.stderr(std::fs::File::create(logs.path().join(id)).unwrap());
        nodes.push(spawn_node(command, base, dir).await);
    }
    for (i, sim) in sims.iter().enumerate() {
        let spec = support::integrations::spec_for(&format!("jira-{i}"), sim, Flavour::Cloud);
        let response = http_client()
            .post(format!("{}/api/v1/integrations", nodes[0].process.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    // Once both nodes have swept at least twice (the first sweep may come before they see each
    // other), their latest sweeps together cover every integration exactly once.
    let split = eventually(Duration::from_secs(30), || async {
        let (a, b) = (
            sweeps_logged(&logs.path().join("node_1")),
            sweeps_logged(&logs.path().join("node_2")),
        );
        a.len() >= 2 && b.len() >= 2 && a[a.len() - 1] + b[b.len() - 1] == INTEGRATIONS as u64
    })
    .await;
    let (a, b) = (
        sweeps_logged(&logs.path().join("node_1")),
        sweeps_logged(&logs.path().join("node_2")),
    );
    let tail = |id: &str| {
        let text = std::fs::read_to_string(logs.path().join(id)).unwrap_or_default();
        text.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    };
    assert!(
        split,
        "sweeps checked node_1 {a:?}, node_2 {b:?} of {INTEGRATIONS}\nnode_1:\n{}\nnode_2:\n{}",
        tail("node_1"),
        tail("node_2")
    );
    assert!(
        a.last() < Some(&(INTEGRATIONS as u64)) && b.last() < Some(&(INTEGRATIONS as u64)),
        "{a:?} {b:?}"
    );
}
