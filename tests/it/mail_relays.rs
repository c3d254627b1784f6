//! Relay health and fail-over against real SMTP servers (Postfix's `smtp-sink`, stopped and started
//! on its port, refusing with a 421 greeting) and a relay that accepts connections and never answers.
//! The delivery loop runs as in production; tests poll the API and `/metrics` with a deadline.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::console::ConsoleClient;
use crate::support::process::{free_port, herald_command, run};
use crate::support::smtp::SmtpSink;
use crate::support::{ADMIN_PASSWORD, Backend, TestApp, eventually, spawn_app_with};

backend_tests!(
    a_down_relay_is_probed_not_tried_and_its_mail_goes_out_when_it_is_back,
    mail_fails_over_to_the_next_relay_and_back_to_the_first_exactly_once,
    a_relay_that_accepts_and_never_answers_is_left_for_the_next_one,
    a_421_greeting_marks_the_relay_down_and_charges_no_attempt,
    mail_that_waited_past_its_max_age_for_a_relay_goes_to_the_error_queue,
);

const WAIT: Duration = Duration::from_secs(30);

/// An app that delivers by itself to `relays` (comma-separated), probing a down relay every 100–200 ms.
async fn delivering_app(backend: Backend, relays: String) -> Option<TestApp> {
    spawn_app_with(backend, move |s| {
        s.mail.delivery = true;
        s.mail.smtp_url = herald::secret::Secret::new(relays);
        s.mail.smtp_timeout = Duration::from_secs(1);
        s.mail.probe_initial = Duration::from_millis(100);
        s.mail.probe_max = Duration::from_millis(200);
    })
    .await
}

async fn submit(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"to": [format!("user{i}@example.com")], "subject": "Relay test", "text": "hello"});
        let response = app
            .admin(Method::POST, "/api/v1/mail")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: serde_json::Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn queue_size(app: &TestApp) -> (i64, i64) {
    let body: serde_json::Value = app.admin_json("/rest/mailqueue/1.0/status").await;
    (body["size"].as_i64().unwrap(), body["errorSize"].as_i64().unwrap())
}

/// The value of a metric series of `/metrics`, by its name and labels as printed.
async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let text = app.admin_text("/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until every message is back in the queue, uncharged (a message a worker had claimed when the
/// relay failed is released by the completer a moment later).
async fn all_queued_uncharged(app: &TestApp, ids: &[String]) {
    for id in ids {
        let settled = eventually(WAIT, || async {
            let message: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
            message["state"] == "queued" && message["attempts"] == 0
        })
        .await;
        let message: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
        assert!(settled, "{message}");
    }
}

async fn relay_up(app: &TestApp, relay: &str) -> Option<f64> {
    metric(app, &format!("herald_mail_relay_up{{relay=\"{relay}\"}}")).await
}

fn relay_name(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}")
}

async fn a_down_relay_is_probed_not_tried_and_its_mail_goes_out_when_it_is_back(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let port = sink.port;
    sink.stop();
    let Some(app) = delivering_app(backend, relay_name(port)).await else {
        return;
    };
    let first = submit(&app, 1).await;
    assert!(
        eventually(WAIT, || async { relay_up(&app, &relay_name(port)).await == Some(0.0) }).await,
        "the relay is reported down"
    );
    let mut ids = first;
    ids.extend(submit(&app, 20).await);
    // While it is down, the relay's probes fail, and no message is charged an attempt.
    let probe_series = format!(
        "herald_mail_relay_probes_total{{relay=\"{}\",result=\"down\"}}",
        relay_name(port)
    );
    assert!(
        eventually(WAIT, || async {
            metric(&app, &probe_series).await.unwrap_or(0.0) >= 2.0
        })
        .await,
        "probes go out while the relay is down"
    );
    all_queued_uncharged(&app, &ids).await;
    assert_eq!(queue_size(&app).await, (21, 0));

    // The health is where an admin looks: the console's overview and Mail page, and `herald mail status`.
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    for page in ["/console/", "/console/mail"] {
        let (_, _, html) = console.get(page).await;
        let relays = &html[html.find(r#"id="relays""#).expect("the relays are listed")..];
        assert!(
            relays.contains(&relay_name(port)) && relays.contains("down since") && relays.contains("cannot connect"),
            "{page}: {relays}"
        );
    }
    let mut status = herald_command();
    status.arg("--data-dir").arg(app.db.dir.path());
    if let Some(url) = &app.db.url {
        status.args(["--database-url", url]);
    }
    let status = run(status.args(["mail", "status"]), None);
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let line = printed
        .lines()
        .find(|l| l.starts_with(&format!("relay {} (node ", relay_name(port))))
        .unwrap_or_else(|| panic!("no relay line in:\n{printed}"));
    assert!(
        line.contains(": down since ") && line.contains("probes failed"),
        "{line}"
    );

    let Some(back) = SmtpSink::start_on(port, &[]) else {
        return;
    };
    assert!(
        eventually(WAIT, || async { queue_size(&app).await == (0, 0) }).await,
        "the queue empties once the relay is back"
    );
    assert_eq!(relay_up(&app, &relay_name(port)).await, Some(1.0));
    let rows = app.state.store.mail_relays().await.unwrap();
    assert_eq!((rows.len(), rows[0].up), (1, true), "{rows:?}");
    let mut received = back.received_ids();
    received.sort();
    ids.sort();
    assert_eq!(received, ids, "every message once");
}

async fn mail_fails_over_to_the_next_relay_and_back_to_the_first_exactly_once(backend: Backend) {
    let Some(second) = SmtpSink::start(&[]) else { return };
    let first_port = free_port();
    let Some(app) = delivering_app(backend, format!("{},{}", relay_name(first_port), second.url())).await else {
        return;
    };
    // The first relay is down from the start: its mail goes to the second.
    let during_outage = submit(&app, 10).await;
    assert!(
        eventually(WAIT, || async { queue_size(&app).await == (0, 0) }).await,
        "the second relay takes the mail"
    );
    assert_eq!(relay_up(&app, &relay_name(first_port)).await, Some(0.0));

    // The first relay comes back: once a probe finds it, it is preferred again.
    let Some(first) = SmtpSink::start_on(first_port, &[]) else {
        return;
    };
    assert!(
        eventually(WAIT, || async {
            relay_up(&app, &relay_name(first_port)).await == Some(1.0)
        })
        .await,
        "a probe finds the first relay back"
    );
    let after_recovery = submit(&app, 10).await;
    assert!(eventually(WAIT, || async { queue_size(&app).await == (0, 0) }).await);

    let at_first: BTreeSet<String> = first.received_ids().into_iter().collect();
    let at_second: BTreeSet<String> = second.received_ids().into_iter().collect();
    assert!(at_first.is_disjoint(&at_second), "no message reached both relays");
    assert_eq!(
        at_second,
        during_outage.iter().cloned().collect(),
        "the outage's mail went to the second relay"
    );
    assert_eq!(
        at_first,
        after_recovery.iter().cloned().collect(),
        "the first relay is preferred again"
    );
}

async fn a_relay_that_accepts_and_never_answers_is_left_for_the_next_one(backend: Backend) {
    // Accepts connections and says nothing: the greeting never comes.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let Some(app) = delivering_app(backend, format!("{},{}", relay_name(silent_port), sink.url())).await else {
        return;
    };
    let ids = submit(&app, 10).await;
    assert!(
        eventually(WAIT, || async { queue_size(&app).await == (0, 0) }).await,
        "the timeout frees the workers and the next relay takes the mail"
    );
    assert_eq!(relay_up(&app, &relay_name(silent_port)).await, Some(0.0));
    let received: BTreeSet<String> = sink.received_ids().into_iter().collect();
    assert_eq!(received, ids.into_iter().collect());
    held.abort();
}

async fn a_421_greeting_marks_the_relay_down_and_charges_no_attempt(backend: Backend) {
    let Some(refusing) = SmtpSink::start(&["-Q", "CONNECT"]) else {
        return;
    };
    let Some(app) = delivering_app(backend, refusing.url()).await else {
        return;
    };
    let ids = submit(&app, 3).await;
    assert!(
        eventually(WAIT, || async { relay_up(&app, &refusing.url()).await == Some(0.0) }).await,
        "a 421 greeting marks the relay down"
    );
    all_queued_uncharged(&app, &ids).await;
    assert!(refusing.received_ids().is_empty());
}

async fn mail_that_waited_past_its_max_age_for_a_relay_goes_to_the_error_queue(backend: Backend) {
    let closed = free_port();
    let Some(app) = spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(relay_name(closed));
        s.mail.retry.max_age = Duration::from_millis(1);
    })
    .await
    else {
        return;
    };
    // Tried once the relay is known down: too old to wait for it any longer.
    let ids = submit(&app, 1).await;
    assert!(
        eventually(WAIT, || {
            let delivery = app.state.delivery.clone();
            async move { delivery.deliver_due_batch(100).await.unwrap().parked == 1 }
        })
        .await
    );
    let message: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{}", ids[0])).await;
    assert_eq!(message["state"], "error", "{message}");
    assert_eq!(message["attempts"], 0, "no attempt was made: {message}");
    assert!(
        message["last_error"].as_str().unwrap().contains("HERALD_MAIL_MAX_AGE"),
        "{message}"
    );

    // Mail never claimed (no relay up to try it on) is moved by the queue's housekeeping.
    let waiting = submit(&app, 2).await;
    let now = herald::store::now_ms();
    let node = app.state.node_id.to_string();
    let moved = app
        .state
        .store
        .park_expired_mail(&node, now + 1, "no relay could be reached", now)
        .await
        .unwrap();
    assert_eq!(moved, 2);
    for id in waiting {
        let message: serde_json::Value = app.admin_json(&format!("/api/v1/mail/{id}")).await;
        assert_eq!(
            (message["state"].as_str(), message["attempts"].as_i64()),
            (Some("error"), Some(0))
        );
    }
}
