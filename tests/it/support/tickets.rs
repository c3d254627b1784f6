//! Helpers for the ticket intake's tests: an integration with tickets enabled, an Alertmanager payload.
#![allow(dead_code)]

use herald::store::{Store, TicketEventFilter, TicketEventRow};
use serde_json::{Value, json};

/// Stores an integration whose configuration has `tickets.enabled` (as the integration API will
/// store it once the ticket settings are on the integration): the intake reads only that setting.
/// Its Jira is never called here.
pub async fn integration(store: &Store, name: &str, tickets_enabled: bool) {
    let config = json!({"spec": {
        "url": "http://127.0.0.1:9", "installation_type": "auto",
        "auth": {"type": "basic", "username": "jira-bot"},
        "project_key": "OPS", "issue_type": "Bug",
        "tickets": {"enabled": tickets_enabled}
    }});
    store
        .insert_integration(name, &config.to_string(), "not-used-by-the-intake", 1_000)
        .await
        .expect("store the integration");
}

/// Turns the ticket worker on, retrying fast and giving up on Jira after a second: what tests that
/// watch events become issues in the simulator need.
pub fn fast_worker(s: &mut herald::config::Settings) {
    s.tickets.delivery = true;
    s.tickets.client.request_timeout = std::time::Duration::from_secs(1);
    s.tickets.retry.initial = std::time::Duration::from_millis(100);
    s.tickets.retry.max = std::time::Duration::from_millis(400);
}

/// Every stored event of an integration, in id order.
pub async fn events_of(store: &Store, integration: &str) -> Vec<TicketEventRow> {
    store
        .ticket_events(&TicketEventFilter {
            integration: Some(integration.to_owned()),
            limit: 100_000,
            ..TicketEventFilter::default()
        })
        .await
        .expect("list events")
}

/// The stored context of an event, parsed.
pub fn context(row: &TicketEventRow) -> Value {
    serde_json::from_str(&row.context).expect("the context is JSON")
}

/// A notification as Alertmanager 0.25+ posts it: two alerts of one group, one firing, one resolved.
pub fn alertmanager_payload() -> Value {
    json!({
        "receiver": "herald",
        "status": "firing",
        "alerts": [
            {"status": "firing",
             "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"},
             "annotations": {"summary": "Disk full on db1", "description": "/var is at 99%"},
             "startsAt": "2024-05-01T10:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus:9090/graph?g0.expr=disk", "fingerprint": "a1b2c3d4e5f60718"},
            {"status": "resolved",
             "labels": {"alertname": "DiskFull", "instance": "db2:9100", "severity": "critical"},
             "annotations": {"summary": "Disk full on db2"},
             "startsAt": "2024-05-01T07:00:00Z", "endsAt": "2024-05-01T09:00:00Z",
             "generatorURL": "http://prometheus:9090/graph?g0.expr=disk", "fingerprint": "0f1e2d3c4b5a6978"}
        ],
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}/{}:{alertname=\"DiskFull\"}",
        "truncatedAlerts": 0
    })
}
