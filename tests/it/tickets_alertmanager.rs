//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) with a webhook receiver pointing
//! at Herald, as docs/events.md configures it: an alert posted to Alertmanager arrives as one event
//! with the alert's labels; the same alert posted again is not notified again (Alertmanager
//! deduplicates it until `repeat_interval`); resolving it sends a resolved event for the same group.
//! With Herald's ticket worker on and the integration pointing at the Jira simulator: the alert
//! becomes one issue, the repeat adds nothing, and the resolution moves the issue to Done.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use support::integrations::{spec_for, with};
use support::jira_sim::{Flavour, JiraSim};
use support::process::free_port;
use support::tickets::{context, events_of, fast_worker};
use support::{Backend, TestApp, eventually, http_client, spawn_app_with};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// Alertmanager's group_interval here: how often it looks at a group for changes to notify.
const GROUP_INTERVAL_MS: u64 = 500;

struct Alertmanager {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts Alertmanager with one route to Herald; `None` (and a warning) when it is not installed.
    async fn start(herald: &TestApp, user: &str, password: &str) -> Option<Alertmanager> {
        if !std::path::Path::new(ALERTMANAGER).exists() {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("CI=true but {ALERTMANAGER} is missing (scripts/test.sh installs prometheus-alertmanager)");
            }
            eprintln!(
                "warning: Alertmanager test NOT RUN: {ALERTMANAGER} is missing (apt-get install prometheus-alertmanager)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"route:
  receiver: herald
  group_by: ['alertname']
  group_wait: 0s
  group_interval: {GROUP_INTERVAL_MS}ms
  repeat_interval: 4h
receivers:
  - name: herald
    webhook_configs:
      - url: '{}/api/v1/alertmanager/jira'
        send_resolved: true
        http_config:
          basic_auth:
            username: '{user}'
            password: '{password}'
"#,
            herald.base
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start Alertmanager");
        let am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let client = http_client();
        let ready = eventually(Duration::from_secs(30), || async {
            client
                .get(format!("{}/-/ready", am.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(ready, "Alertmanager did not become ready");
        Some(am)
    }

    /// Posts alerts as Prometheus does (`POST /api/v2/alerts`).
    async fn post(&self, alerts: Value) {
        let response = http_client()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}

fn alert(alertname: &str, ends_at: Option<OffsetDateTime>) -> Value {
    let mut alert = json!({
        "labels": {"alertname": alertname, "instance": "db1:9100", "severity": "critical"},
        "annotations": {"summary": format!("{alertname} on db1")},
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=up"
    });
    if let Some(at) = ends_at {
        alert["endsAt"] = json!(at.format(&Rfc3339).unwrap());
    }
    json!([alert])
}

/// Events stored for the group of `alertname`: (status, context).
async fn group_events(app: &TestApp, alertname: &str) -> Vec<(String, Value)> {
    events_of(&app.state.store, "jira")
        .await
        .iter()
        .map(|row| (row.status.clone(), context(row)))
        .filter(|(_, c)| c["group_labels"]["alertname"] == alertname)
        .collect()
}

async fn an_alert_becomes_one_event_a_repeat_none_and_its_resolution_another(backend: Backend) {
    let Some(app) = spawn_app_with(backend, fast_worker).await else {
        return;
    };
    let sim = JiraSim::start(Flavour::Cloud).await;
    let spec = with(
        spec_for("jira", &sim, Flavour::Cloud),
        json!({"project_key": "SEC", "issue_type": "Bug",
               "tickets": {"enabled": true, "resolve_transition": "Done", "comment_on_repeat": true}}),
    );
    assert_eq!(app.register(&spec).await["check"]["status"], "HEALTHY_INTEGRATION");
    let password = app.create_user("alertmanager", "events").await;
    let Some(am) = Alertmanager::start(&app, "alertmanager", &password).await else {
        return;
    };

    am.post(alert("DiskFull", None)).await;
    let arrived = eventually(Duration::from_secs(30), || async {
        !group_events(&app, "DiskFull").await.is_empty()
    })
    .await;
    assert!(arrived, "Alertmanager's notification did not reach Herald");
    let events = group_events(&app, "DiskFull").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (status, first) = &events[0];
    assert_eq!(status, "firing");
    assert_eq!(first["source"], "alertmanager");
    assert_eq!(first["receiver"], "herald");
    assert_eq!(first["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(
        first["alerts"][0]["labels"],
        json!({"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"})
    );
    assert_eq!(first["summary"], "DiskFull on db1");
    let rows = events_of(&app.state.store, "jira").await;
    let group_key = rows[0].dedup_key.clone();
    assert!(group_key.contains("alertname=\"DiskFull\""), "{group_key}");
    // The alert is one issue in Jira.
    let created = eventually(Duration::from_secs(30), || async { sim.tickets().issues().len() == 1 }).await;
    assert!(created, "no issue was created");
    let issue = sim.tickets().issues()[0].clone();
    assert_eq!(issue.summary, "DiskFull: DiskFull on db1");
    assert!(issue.labels.contains(&herald::tickets::dedup_label("jira", &group_key)));

    // The same alert again: Alertmanager merges it into the one it has and does not notify again
    // before repeat_interval. A second group posted after it is the marker: once its notification is
    // in, and several more group intervals have passed, DiskFull must still have one event.
    am.post(alert("DiskFull", None)).await;
    am.post(alert("Marker", None)).await;
    let marked = eventually(Duration::from_secs(30), || async {
        !group_events(&app, "Marker").await.is_empty()
    })
    .await;
    assert!(marked, "the marker group's notification did not arrive");
    let window = Instant::now() + Duration::from_millis(GROUP_INTERVAL_MS * 4);
    while Instant::now() < window {
        assert_eq!(group_events(&app, "DiskFull").await.len(), 1, "a repeat was notified");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The marker group has its own issue; DiskFull still has one, without a comment.
    assert!(eventually(Duration::from_secs(30), || async { sim.tickets().issues().len() == 2 }).await);
    assert!(sim.tickets().issue(&issue.key).unwrap().comments.is_empty());

    // Resolved: an end in the past. Alertmanager notifies the group as resolved (send_resolved).
    am.post(alert(
        "DiskFull",
        Some(OffsetDateTime::now_utc() - time::Duration::minutes(1)),
    ))
    .await;
    let resolved = eventually(Duration::from_secs(30), || async {
        group_events(&app, "DiskFull")
            .await
            .iter()
            .any(|(s, _)| s == "resolved")
    })
    .await;
    assert!(resolved, "the resolution did not reach Herald");
    let rows: Vec<_> = events_of(&app.state.store, "jira")
        .await
        .into_iter()
        .filter(|r| r.dedup_key == group_key)
        .collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["firing", "resolved"],
        "one group, one key: its events in order"
    );
    let resolved = context(&rows[1]);
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert!(resolved["ends_at"].is_string(), "{resolved}");
    // The resolution moved the issue through the resolve transition; no second issue.
    let done = eventually(Duration::from_secs(30), || async {
        sim.tickets().issue(&issue.key).is_some_and(|i| i.status == "Done")
    })
    .await;
    assert!(done, "{:?}", sim.tickets().issue(&issue.key));
    assert_eq!(sim.tickets().issues().len(), 2);
}

// Alertmanager runs beside Herald; one backend is enough to show the protocol (the intake's storage
// is covered on both by tickets_intake).
mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_alert_becomes_one_event_a_repeat_none_and_its_resolution_another() {
        super::an_alert_becomes_one_event_a_repeat_none_and_its_resolution_another(crate::support::Backend::Sqlite)
            .await
    }
}
