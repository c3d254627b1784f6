//! Exactly once, the hard way: `herald serve` processes applying bursts of events to the Jira
//! simulator while a tenth of the creates succeed but never answer. SIGKILL in the middle of a burst
//! (both backends), and two cluster nodes taking events for the same problems (PostgreSQL): in every
//! case each problem has one issue, and every event answered 202 is applied.

use crate::support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald::config::Settings;
use herald::store::{ConnectOptions, Store, TicketEventFilter};
use serde_json::{Value, json};

use support::Process;
use support::integrations::{spec_for, with};
use support::jira_sim::{Flavour, JiraSim};
use support::process::serve_command;
use support::{ADMIN_PASSWORD, Backend, create_postgres_database, eventually, http_client, postgres_admin_url};

/// Problems the bursts cycle through: each gets many events, in both states.
const PROBLEMS: usize = 24;
const CLIENTS: usize = 6;
/// Answers to wait for before the kill.
const BEFORE_KILL: usize = 150;
/// Events each client posts in the cluster test.
const PER_CLIENT: usize = 40;
/// 32 bytes, base64: nodes sharing a database share the key that seals integration secrets.
const SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const DEADLINE: Duration = Duration::from_secs(120);

/// Settings for a worker that retries fast against a simulator that loses answers.
const FAST: [(&str, &str); 6] = [
    ("HERALD_TICKETS_JIRA_TIMEOUT", "1s"),
    ("HERALD_TICKETS_BACKOFF_INITIAL", "100ms"),
    ("HERALD_TICKETS_BACKOFF_MAX", "500ms"),
    ("HERALD_TICKETS_JIRA_RATE", "500"),
    ("HERALD_TICKETS_JIRA_CONCURRENCY", "8"),
    ("HERALD_MAIL_DELIVERY", "false"),
];

fn serve(data_dir: &Path, database_url: Option<&str>, node: &str, cluster: bool) -> (std::process::Command, String) {
    let (mut command, base) = serve_command(data_dir, &["--log", "warn"]);
    command
        .env("HERALD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HERALD_NODE_ID", node)
        .env("HERALD_SECRET_KEY", SECRET_KEY)
        .envs(FAST);
    if let Some(url) = database_url {
        command.env("HERALD_DATABASE_URL", url);
    }
    if cluster {
        command
            .env("HERALD_CLUSTER", "true")
            .env("HERALD_CLUSTER_POLL_INTERVAL", "200ms")
            .env("HERALD_CLUSTER_HEARTBEAT_TIMEOUT", "1s");
    }
    (command, base)
}

async fn open_store(data_dir: &Path, database_url: Option<&str>) -> Store {
    let settings = Settings::for_data_dir(data_dir, database_url.map(str::to_owned));
    Store::connect(&ConnectOptions {
        url: settings.database.url.clone(),
        max_connections: 2,
        timeout: Duration::from_secs(5),
    })
    .await
    .expect("connect")
}

/// The simulator, losing every tenth create's answer, and the integration on `base` pointing at it.
async fn jira_for(base: &str) -> JiraSim {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.tickets().lose_every_nth_create_answer(10);
    let spec = with(
        spec_for("jira", &sim, Flavour::DataCenter),
        json!({"project_key": "SEC", "issue_type": "Bug", "tickets": {"enabled": true,
            "resolve_transition": "Done", "reopen_transition": "Reopen", "comment_on_repeat": true}}),
    );
    let response = http_client()
        .post(format!("{base}/api/v1/integrations"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    sim
}

/// Posts events for the problems in turn (every third one resolved) until `limit` or a failure;
/// returns the ids answered 202. `bases` are the nodes, taken in turn.
async fn burst(bases: Vec<String>, client: usize, limit: usize, answered: Arc<AtomicUsize>) -> Vec<String> {
    let http = http_client();
    let mut accepted = Vec::new();
    for i in 0..limit {
        let problem = (client * 5 + i) % PROBLEMS;
        let status = if i % 3 == 2 { "resolved" } else { "firing" };
        let body = json!({"integration": "jira", "dedup_key": format!("problem/{problem}"), "status": status,
            "summary": format!("Problem {problem}"), "description": format!("event {i} of client {client}")});
        let base = &bases[i % bases.len()];
        let Ok(response) = http
            .post(format!("{base}/api/v1/events"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&body)
            .send()
            .await
        else {
            break;
        };
        if response.status() != 202 {
            break;
        }
        let Ok(answer) = response.json::<Value>().await else {
            break; // cut off by the kill: the event may or may not be stored
        };
        accepted.push(answer["ids"][0].as_str().unwrap_or_default().to_owned());
        answered.fetch_add(1, Ordering::Relaxed);
    }
    accepted
}

/// Waits until no event is left to apply; then checks every accepted event is applied and each
/// problem has exactly one issue.
async fn assert_exactly_once(store: &Store, sim: &JiraSim, accepted: &[String]) {
    let all_applied = eventually(DEADLINE, || async {
        let events = store
            .ticket_events(&TicketEventFilter {
                integration: Some("jira".into()),
                states: vec!["queued", "sending", "error"],
                limit: 1,
                ..TicketEventFilter::default()
            })
            .await
            .unwrap();
        events.is_empty()
    })
    .await;
    let events = store
        .ticket_events(&TicketEventFilter {
            integration: Some("jira".into()),
            limit: 100_000,
            ..TicketEventFilter::default()
        })
        .await
        .unwrap();
    let states: BTreeMap<&str, &str> = events.iter().map(|e| (e.id.as_str(), e.state.as_str())).collect();
    assert!(
        all_applied,
        "events left: {:?}",
        events.iter().filter(|e| e.state != "done").collect::<Vec<_>>()
    );
    let unapplied: Vec<&String> = accepted
        .iter()
        .filter(|id| states.get(id.as_str()) != Some(&"done"))
        .collect();
    assert!(unapplied.is_empty(), "accepted but not applied: {unapplied:?}");
    let problems: HashSet<&str> = events.iter().map(|e| e.dedup_key.as_str()).collect();
    for problem in &problems {
        let label = herald::tickets::dedup_label("jira", problem);
        assert_eq!(sim.tickets().created_with_label(&label), 1, "{problem}");
    }
    assert_eq!(sim.tickets().issues().len(), problems.len(), "one issue per problem");
    assert!(sim.tickets().lost_answers() > 0, "the simulator lost no create answer");
    eprintln!(
        "{} events applied to {} problems, {} issues; {} create answers lost",
        events.len(),
        problems.len(),
        sim.tickets().issues().len(),
        sim.tickets().lost_answers()
    );
}

async fn sigkill_during_a_burst_applies_every_event_once(backend: Backend) {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match postgres_admin_url() {
            Some(admin) => Some(create_postgres_database(&admin).await),
            None => return,
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let (command, base) = serve(dir.path(), database_url.as_deref(), "node_1", false);
    let mut herald = Process::start(command, base).await;
    let sim = jira_for(&herald.base).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(burst(vec![herald.base.clone()], c, usize::MAX, answered.clone())))
        .collect();
    let enough = eventually(Duration::from_secs(60), || async {
        answered.load(Ordering::Relaxed) >= BEFORE_KILL
    })
    .await;
    assert!(enough, "the burst did not get going");
    herald.kill(); // SIGKILL: posts in flight, events being applied, creates waiting for answers
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.unwrap());
    }
    let (command, base) = serve(dir.path(), database_url.as_deref(), "node_1", false);
    let restarted = Process::start(command, base).await;
    let store = open_store(dir.path(), database_url.as_deref()).await;
    assert_exactly_once(&store, &sim, &accepted).await;
    store.close().await;
    drop(restarted);
}

backend_tests!(sigkill_during_a_burst_applies_every_event_once);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_apply_the_same_problems_once() {
    let Some(admin) = postgres_admin_url() else { return };
    let url = create_postgres_database(&admin).await;
    let (dir_1, dir_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (command, base) = serve(dir_1.path(), Some(&url), "node_1", true);
    let node_1 = Process::start(command, base).await;
    let (command, base) = serve(dir_2.path(), Some(&url), "node_2", true);
    let node_2 = Process::start(command, base).await;
    let sim = jira_for(&node_1.base).await;
    let bases = vec![node_1.base.clone(), node_2.base.clone()];
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(burst(bases.clone(), c, PER_CLIENT, answered.clone())))
        .collect();
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.unwrap());
    }
    assert_eq!(accepted.len(), CLIENTS * PER_CLIENT, "every post was answered 202");
    let store = open_store(dir_1.path(), Some(&url)).await;
    assert_exactly_once(&store, &sim, &accepted).await;
    // Both nodes applied some of the events (each wakes its own worker for what it accepted).
    for node in [&node_1, &node_2] {
        let metrics = http_client()
            .get(format!("{}/metrics", node.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let applied: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("herald_ticket_events_applied_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(applied > 0.0, "{} applied nothing", node.base);
    }
    store.close().await;
    drop((node_1, node_2));
}
