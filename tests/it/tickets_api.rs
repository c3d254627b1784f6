//! The ticket list through the API and the command line: each problem with its issue, the error list
//! with Jira's own words, resend, delete and forget, paging and roles; `herald events send`.

use std::time::Duration;

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::integrations::{spec_for, with};
use support::jira_sim::{Flavour, JiraSim, SimConfig};
use support::process::{herald_command, run};
use support::tickets::fast_worker;
use support::{Backend, TestApp, eventually, problem, spawn_app_with};

backend_tests!(the_ticket_list_shows_each_problem_its_issue_and_its_error);

const DEADLINE: Duration = Duration::from_secs(30);

async fn app(backend: Backend) -> Option<(TestApp, JiraSim)> {
    let app = spawn_app_with(backend, fast_worker).await?;
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.optional_fields.push("customfield_10010".into());
    let sim = JiraSim::start_with(config).await;
    let spec = with(
        spec_for("jira", &sim, Flavour::DataCenter),
        json!({"project_key": "SEC", "issue_type": "Bug", "tickets": {"enabled": true,
            "resolve_transition": "Done", "fields": {"customfield_10010": "{{ labels.team | default('ops') }}"}}}),
    );
    let created = app.register(&spec).await;
    assert_eq!(created["check"]["status"], "HEALTHY_INTEGRATION", "{created}");
    Some((app, sim))
}

async fn post(app: &TestApp, key: &str, status: &str) {
    let response = app
        .admin(Method::POST, "/api/v1/events")
        .json(&json!({"integration": "jira", "dedup_key": key, "status": status, "summary": format!("Finding {key}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.admin(Method::GET, path).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn the_ticket_list_shows_each_problem_its_issue_and_its_error(backend: Backend) {
    let Some((app, sim)) = app(backend).await else {
        return;
    };
    for key in ["a/1", "b/2", "c/3"] {
        post(&app, key, "firing").await;
    }
    let listed = eventually(DEADLINE, || async {
        let (_, page) = get(&app, "/api/v1/tickets?state=open").await;
        page["items"].as_array().is_some_and(|items| items.len() == 3)
    })
    .await;
    assert!(listed, "{}", get(&app, "/api/v1/tickets").await.1);
    let (status, page) = get(&app, "/api/v1/tickets?integration=jira").await;
    assert_eq!(status, StatusCode::OK);
    let first = &page["items"][0];
    assert_eq!(first["dedup_key"], "a/1");
    assert_eq!(first["state"], "open");
    assert_eq!(first["summary"], "Finding a/1");
    let key = first["issue_key"].as_str().unwrap();
    assert!(
        first["issue_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/browse/{key}"))
    );
    assert_eq!(first["pending_events"], 0);
    assert!(first["last_event_at"].is_string());

    // Pages of one, in order, to the end.
    let mut seen = Vec::new();
    let mut path = "/api/v1/tickets?limit=1".to_owned();
    loop {
        let (_, page) = get(&app, &path).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|t| t["dedup_key"].clone()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/tickets?limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![json!("a/1"), json!("b/2"), json!("c/3")]);

    // A field Jira refuses: the error list, with Jira's words; the resolution waits behind it.
    sim.tickets()
        .reject_field("customfield_10010", Some("Team is not valid."));
    post(&app, "d/4", "firing").await;
    post(&app, "d/4", "resolved").await;
    let parked = eventually(DEADLINE, || async {
        let (_, page) = get(&app, "/api/v1/tickets?state=error").await;
        page["items"].as_array().is_some_and(|items| items.len() == 1)
    })
    .await;
    assert!(parked);
    let (_, errors) = get(&app, "/api/v1/tickets?state=error").await;
    let parked = &errors["items"][0];
    assert_eq!(parked["dedup_key"], "d/4");
    assert_eq!(parked["pending_events"], 2);
    assert_eq!(parked["issue_key"], Value::Null);
    assert_eq!(parked["last_error"]["status"], 400);
    assert_eq!(
        parked["last_error"]["errors"]["customfield_10010"],
        "Team is not valid."
    );
    let (status, detail) = get(&app, "/api/v1/tickets/jira/d%2F4").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0]["state"].as_str(), events[1]["state"].as_str()),
        (Some("error"), Some("queued"))
    );

    // Resent after the fix: created, then resolved.
    sim.tickets().accept_fields();
    let resend = app
        .admin(Method::POST, "/api/v1/tickets/jira/d%2F4/resend")
        .send()
        .await
        .unwrap();
    assert_eq!(resend.status(), StatusCode::OK);
    assert_eq!(resend.json::<Value>().await.unwrap()["count"], 1);
    let resolved = eventually(DEADLINE, || async {
        get(&app, "/api/v1/tickets/jira/d%2F4").await.1["ticket"]["state"] == "resolved"
    })
    .await;
    assert!(resolved, "{}", get(&app, "/api/v1/tickets/jira/d%2F4").await.1);
    // Nothing parked any more: 409; an unknown problem: 404.
    let again = app
        .admin(Method::POST, "/api/v1/tickets/jira/d%2F4/resend")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(problem(again).await["code"], "nothing_to_resend");
    let (status, _) = get(&app, "/api/v1/tickets/jira/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Forgetting an issue: the next firing searches Jira, finds it by its label, and records it again.
    let deleted = app
        .admin(Method::DELETE, "/api/v1/tickets/jira/a%2F1?forget=true")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(
        deleted.json::<Value>().await.unwrap(),
        json!({"events": 0, "forgotten": true})
    );
    let (status, _) = get(&app, "/api/v1/tickets/jira/a%2F1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    post(&app, "a/1", "firing").await;
    let found = eventually(DEADLINE, || async {
        get(&app, "/api/v1/tickets/jira/a%2F1").await.1["ticket"]["issue_key"] == json!(key)
    })
    .await;
    assert!(found);
    assert_eq!(sim.tickets().issues().len(), 4, "no second issue for a/1");

    // Bad parameters are 400s naming them; the list is for admins only.
    let (status, _) = get(&app, "/api/v1/tickets?state=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&app, "/api/v1/tickets?after=@@").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let password = app.create_user("am", "events").await;
    let forbidden = app
        .client
        .get(app.url("/api/v1/tickets"))
        .basic_auth("am", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_send_and_the_tickets_commands() {
    let Some((app, sim)) = app(Backend::Sqlite).await else {
        return;
    };
    let data_dir = app.state.settings.database.data_dir.clone();
    let herald = move |args: &'static [&'static str]| {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let output = run(
                herald_command()
                    .arg("--data-dir")
                    .arg(&data_dir)
                    .args(["--log", "error"])
                    .args(args),
                None,
            );
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (output.status.success(), text)
        })
    };
    let (ok, out) = herald(&[
        "events",
        "send",
        "--integration",
        "jira",
        "--dedup-key",
        "cli/1",
        "--summary",
        "From the command line",
        "--label",
        "team=platform",
    ])
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(uuid::Uuid::try_parse(out.trim()).is_ok(), "{out}");
    // The serving node's worker applies it (its poll finds what another process stored).
    let created = eventually(DEADLINE, || async { sim.tickets().issues().len() == 1 }).await;
    assert!(created);
    let issue = sim.tickets().issues()[0].clone();
    assert_eq!(issue.summary, "From the command line");
    assert_eq!(issue.fields["customfield_10010"], "platform");
    let listed = eventually(DEADLINE, || async {
        herald(&["tickets", "list", "--state", "open"])
            .await
            .unwrap()
            .1
            .contains(&issue.key)
    })
    .await;
    assert!(listed);
    let (ok, out) = herald(&["tickets", "show", "jira", "cli/1"]).await.unwrap();
    assert!(
        ok && out.contains(&format!("issue: {}", issue.key)) && out.contains("state: open"),
        "{out}"
    );
    let (ok, out) = herald(&["tickets", "resend", "jira", "cli/1"]).await.unwrap();
    assert!(!ok && out.contains("no event in the error list"), "{out}");
    let (ok, out) = herald(&["tickets", "delete", "jira", "cli/1", "--forget"])
        .await
        .unwrap();
    assert!(ok && out.contains("the issue is forgotten"), "{out}");
    let (ok, out) = herald(&["tickets", "list"]).await.unwrap();
    assert!(ok && out.contains("no tickets"), "{out}");
    let (ok, out) = herald(&[
        "events",
        "send",
        "--integration",
        "nope",
        "--dedup-key",
        "x",
        "--summary",
        "y",
    ])
    .await
    .unwrap();
    assert!(!ok && out.contains("no integration named `nope`"), "{out}");
    // Paging: a full page ends with the flags for the next one, quoted for the shell.
    static PAGED: [[&str; 8]; 3] = [
        [
            "events",
            "send",
            "--integration",
            "jira",
            "--dedup-key",
            "page a",
            "--summary",
            "Paged",
        ],
        [
            "events",
            "send",
            "--integration",
            "jira",
            "--dedup-key",
            "page b",
            "--summary",
            "Paged",
        ],
        [
            "events",
            "send",
            "--integration",
            "jira",
            "--dedup-key",
            "page c",
            "--summary",
            "Paged",
        ],
    ];
    for args in &PAGED {
        let (ok, out) = herald(args).await.unwrap();
        assert!(ok, "{out}");
    }
    let (ok, out) = herald(&["tickets", "list", "--limit", "2"]).await.unwrap();
    assert!(
        ok && out.contains("page a") && out.contains("page b") && !out.contains("page c"),
        "{out}"
    );
    assert!(
        out.contains("next page: --after-integration jira --after-key 'page b'"),
        "{out}"
    );
    let (ok, out) = herald(&[
        "tickets",
        "list",
        "--limit",
        "2",
        "--after-integration",
        "jira",
        "--after-key",
        "page b",
    ])
    .await
    .unwrap();
    assert!(ok && out.contains("page c") && !out.contains("page b"), "{out}");
    assert!(!out.contains("next page"), "the last page says no more: {out}");
}
