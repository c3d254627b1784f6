//! Alertmanager's webhook payload (version "4", as `notify/webhook/webhook.go` `Message` and
//! `template/template.go` `Data`/`Alert` write it), taken as Alertmanager sends it, and the events it
//! becomes: one per alert group by default (dedup key: the group key; status: the group's), or one per
//! alert with `?per=alert` (dedup key: the alert's fingerprint; status: the alert's).
//!
//! Alertmanager cannot change what it sends, and keeps a refused notification only in memory while it
//! retries: so beyond the payload's shape (checked, 400 naming the field) nothing here refuses. A group
//! key longer than a dedup key may be is replaced by its SHA-256, stable across notifications; the
//! summary and description are cut to their limits; a link that is not http(s) is left out.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::event::{
    AlertContext, AlertGroup, DEDUP_KEY_MAX, DESCRIPTION_MAX, Event, EventSource, EventStatus, InvalidEvent,
    SUMMARY_MAX, printable, valid_url,
};
use crate::identity::IntegrationName;

/// A webhook notification, as Alertmanager posts it. Fields Alertmanager adds later (such as
/// `notification_reason`) are accepted and ignored.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = AlertmanagerNotification)]
pub struct Notification {
    /// The webhook protocol version: "4".
    #[schema(pattern = "^4$")]
    pub version: String,
    /// Identifies the alert group: the dedup key of a per-group event.
    #[serde(rename = "groupKey")]
    #[schema(min_length = 1)]
    pub group_key: String,
    /// How many alerts `max_alerts` left out.
    #[serde(rename = "truncatedAlerts", default)]
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    pub truncated_alerts: u64,
    /// `firing` while any alert of the group fires, `resolved` once all are.
    pub status: EventStatus,
    #[serde(default)]
    pub receiver: String,
    #[serde(rename = "groupLabels", default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(rename = "commonLabels", default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(rename = "commonAnnotations", default)]
    pub common_annotations: BTreeMap<String, String>,
    /// A link back to the Alertmanager.
    #[serde(rename = "externalURL", default)]
    pub external_url: String,
    #[schema(min_items = 1)]
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = AlertmanagerAlert)]
pub struct Alert {
    pub status: EventStatus,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(rename = "startsAt", default)]
    pub starts_at: String,
    /// RFC 3339; Go's zero time (`0001-01-01T00:00:00Z`) when not known.
    #[serde(rename = "endsAt", default)]
    pub ends_at: String,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    /// Identifies the alert (its label set): the dedup key of a per-alert event.
    #[schema(min_length = 1)]
    pub fingerprint: String,
}

/// How a notification becomes events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// One event per notification: one issue per alert group.
    #[default]
    Group,
    /// One event per alert: one issue per alert.
    Alert,
}

/// A time as RFC 3339 in UTC; `None` for Go's zero time and for what does not parse.
fn time_of(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .filter(|t| t.year() > 1)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&Rfc3339).ok()
}

/// A dedup key from Alertmanager's text: as it is when it may be one, else its SHA-256.
fn dedup_key_of(text: &str) -> String {
    if text.chars().count() <= DEDUP_KEY_MAX && printable(text) {
        return text.to_owned();
    }
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One line of at most `max` characters: control characters (line breaks) become spaces.
fn one_line(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    line.trim().to_owned()
}

fn first_of<'a>(maps: &[&'a BTreeMap<String, String>], key: &str) -> Option<&'a str> {
    maps.iter()
        .find_map(|m| m.get(key).map(String::as_str).filter(|v| !v.trim().is_empty()))
}

impl Alert {
    fn context(&self) -> AlertContext {
        AlertContext {
            status: self.status,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: time_of(&self.starts_at).and_then(rfc3339),
            // Alertmanager sends a firing alert's expected end (now + resolve_timeout): not an end.
            ends_at: match self.status {
                EventStatus::Resolved => time_of(&self.ends_at).and_then(rfc3339),
                EventStatus::Firing => None,
            },
            url: Some(self.generator_url.clone()).filter(|u| valid_url(u)),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

impl Notification {
    /// Checks what the schema cannot say (the version).
    fn check(&self) -> Result<(), InvalidEvent> {
        if self.version != "4" {
            return Err(InvalidEvent::new(
                "version",
                format!(
                    "is `{}`; Herald reads version 4 of Alertmanager's webhook payload",
                    self.version.chars().take(16).collect::<String>()
                ),
            ));
        }
        if self.group_key.is_empty() {
            return Err(InvalidEvent::new("groupKey", "must not be empty"));
        }
        if self.alerts.is_empty() {
            return Err(InvalidEvent::new("alerts", "must hold at least one alert"));
        }
        if let Some(i) = self.alerts.iter().position(|a| a.fingerprint.is_empty()) {
            return Err(InvalidEvent::new(
                format!("alerts[{i}].fingerprint"),
                "must not be empty",
            ));
        }
        Ok(())
    }

    fn group(&self, alerts: Vec<AlertContext>) -> AlertGroup {
        AlertGroup {
            alerts,
            group_labels: self.group_labels.clone(),
            common_labels: self.common_labels.clone(),
            common_annotations: self.common_annotations.clone(),
            external_url: Some(self.external_url.clone()),
            receiver: Some(self.receiver.clone()),
        }
    }

    /// The events this notification becomes for `integration`.
    pub fn into_events(self, integration: &IntegrationName, grouping: Grouping) -> Result<Vec<Event>, InvalidEvent> {
        self.check()?;
        let fallback_url = Some(self.external_url.clone()).filter(|u| valid_url(u));
        match grouping {
            Grouping::Group => {
                let summary = first_of(&[&self.common_annotations], "summary")
                    .or_else(|| first_of(&[&self.common_labels, &self.group_labels], "alertname"))
                    .or_else(|| self.alerts.iter().find_map(|a| first_of(&[&a.labels], "alertname")))
                    .unwrap_or("Alertmanager alert group");
                let description = first_of(&[&self.common_annotations], "description").unwrap_or("");
                let starts_at = self.alerts.iter().filter_map(|a| time_of(&a.starts_at)).min();
                let ends_at = match self.status {
                    EventStatus::Resolved => self.alerts.iter().filter_map(|a| time_of(&a.ends_at)).max(),
                    EventStatus::Firing => None,
                };
                let event = Event {
                    status: self.status,
                    dedup_key: dedup_key_of(&self.group_key),
                    summary: one_line(summary, SUMMARY_MAX),
                    description: description.chars().take(DESCRIPTION_MAX).collect(),
                    labels: self.common_labels.clone(),
                    annotations: self.common_annotations.clone(),
                    url: fallback_url,
                    starts_at: starts_at.and_then(rfc3339),
                    ends_at: ends_at.and_then(rfc3339),
                    integration: integration.to_string(),
                    source: EventSource::Alertmanager,
                    group: self.group(self.alerts.iter().map(Alert::context).collect()),
                };
                Ok(vec![event])
            }
            Grouping::Alert => Ok(self
                .alerts
                .iter()
                .map(|alert| {
                    let context = alert.context();
                    let summary = first_of(&[&alert.annotations], "summary")
                        .or_else(|| first_of(&[&alert.labels], "alertname"))
                        .unwrap_or("Alertmanager alert");
                    let description = first_of(&[&alert.annotations], "description").unwrap_or("");
                    Event {
                        status: alert.status,
                        dedup_key: dedup_key_of(&alert.fingerprint),
                        summary: one_line(summary, SUMMARY_MAX),
                        description: description.chars().take(DESCRIPTION_MAX).collect(),
                        labels: alert.labels.clone(),
                        annotations: alert.annotations.clone(),
                        url: context.url.clone().or_else(|| fallback_url.clone()),
                        starts_at: context.starts_at.clone(),
                        ends_at: context.ends_at.clone(),
                        integration: integration.to_string(),
                        source: EventSource::Alertmanager,
                        group: self.group(vec![context]),
                    }
                })
                .collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A notification as Alertmanager 0.25+ posts it (two alerts of one group, one resolved).
    fn payload() -> serde_json::Value {
        json!({
            "receiver": "herald",
            "status": "firing",
            "alerts": [
                {"status": "firing",
                 "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"},
                 "annotations": {"summary": "Disk full on db1", "description": "/var is at 99%"},
                 "startsAt": "2024-05-01T10:00:00.123+02:00", "endsAt": "2024-05-01T10:05:00Z",
                 "generatorURL": "http://prometheus:9090/graph?g0.expr=disk", "fingerprint": "a1b2c3d4e5f60718"},
                {"status": "resolved",
                 "labels": {"alertname": "DiskFull", "instance": "db2:9100", "severity": "critical"},
                 "annotations": {"summary": "Disk full on db2"},
                 "startsAt": "2024-05-01T07:00:00Z", "endsAt": "2024-05-01T09:00:00Z",
                 "generatorURL": "", "fingerprint": "0f1e2d3c4b5a6978"}
            ],
            "groupLabels": {"alertname": "DiskFull"},
            "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": "{}/{severity=\"critical\"}:{alertname=\"DiskFull\"}",
            "truncatedAlerts": 0,
            "notification_reason": "new_alerts"
        })
    }

    fn events(value: serde_json::Value, grouping: Grouping) -> Result<Vec<Event>, InvalidEvent> {
        let notification: Notification = serde_json::from_value(value).unwrap();
        notification.into_events(&IntegrationName::try_from("jira").unwrap(), grouping)
    }

    #[test]
    fn a_group_becomes_one_event_keyed_by_its_group_key() {
        let events = events(payload(), Grouping::Group).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.dedup_key, "{}/{severity=\"critical\"}:{alertname=\"DiskFull\"}");
        assert_eq!((e.status, e.summary.as_str()), (EventStatus::Firing, "DiskFull"));
        assert_eq!(e.starts_at.as_deref(), Some("2024-05-01T07:00:00Z"));
        assert_eq!(e.ends_at, None);
        assert_eq!(e.url.as_deref(), Some("http://alertmanager:9093"));
        let context = serde_json::to_value(e).unwrap();
        let mut keys: Vec<&str> = context.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "alerts",
                "annotations",
                "common_annotations",
                "common_labels",
                "dedup_key",
                "description",
                "ends_at",
                "external_url",
                "group_labels",
                "integration",
                "labels",
                "receiver",
                "source",
                "starts_at",
                "status",
                "summary",
                "url"
            ]
        );
        assert_eq!(context["source"], "alertmanager");
        assert_eq!(context["alerts"][0]["starts_at"], "2024-05-01T08:00:00.123Z");
        assert_eq!(context["alerts"][0]["ends_at"], serde_json::Value::Null);
        assert_eq!(context["alerts"][1]["ends_at"], "2024-05-01T09:00:00Z");
        assert_eq!(context["alerts"][1]["url"], serde_json::Value::Null);
        let mut alert_keys: Vec<&str> = context["alerts"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        alert_keys.sort_unstable();
        assert_eq!(
            alert_keys,
            [
                "annotations",
                "ends_at",
                "fingerprint",
                "labels",
                "starts_at",
                "status",
                "url"
            ]
        );
        assert_eq!(serde_json::from_value::<Event>(context).unwrap(), *e);
    }

    #[test]
    fn per_alert_each_alert_is_an_event_keyed_by_its_fingerprint() {
        let events = events(payload(), Grouping::Alert).unwrap();
        let keys: Vec<(&str, EventStatus, &str)> = events
            .iter()
            .map(|e| (e.dedup_key.as_str(), e.status, e.summary.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("a1b2c3d4e5f60718", EventStatus::Firing, "Disk full on db1"),
                ("0f1e2d3c4b5a6978", EventStatus::Resolved, "Disk full on db2")
            ]
        );
        assert_eq!(
            events[0].url.as_deref(),
            Some("http://prometheus:9090/graph?g0.expr=disk")
        );
        assert_eq!(events[1].url.as_deref(), Some("http://alertmanager:9093"));
        assert_eq!(events[1].ends_at.as_deref(), Some("2024-05-01T09:00:00Z"));
        assert_eq!(events[0].group.alerts.len(), 1);
    }

    #[test]
    fn a_long_group_key_becomes_its_hash_and_a_resolved_group_ends_with_its_last_alert() {
        let mut value = payload();
        value["groupKey"] = json!("k".repeat(300));
        value["status"] = json!("resolved");
        let e = &events(value, Grouping::Group).unwrap()[0];
        assert!(e.dedup_key.starts_with("sha256:") && e.dedup_key.len() == 71);
        assert_eq!(e.ends_at.as_deref(), Some("2024-05-01T10:05:00Z"));
    }

    #[test]
    fn the_payload_s_faults_are_named() {
        let mut v = payload();
        v["version"] = json!("3");
        assert_eq!(events(v, Grouping::Group).unwrap_err().field, "version");
        let mut v = payload();
        v["alerts"][1]["fingerprint"] = json!("");
        assert_eq!(events(v, Grouping::Alert).unwrap_err().field, "alerts[1].fingerprint");
        let mut v = payload();
        v["alerts"] = json!([]);
        assert_eq!(events(v, Grouping::Group).unwrap_err().field, "alerts");
    }
}
