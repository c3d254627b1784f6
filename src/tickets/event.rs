//! An event: something that should have (or no longer needs) a Jira issue, for one integration and one
//! problem (its dedup key). Herald's own event format is validated here; Alertmanager's payload becomes
//! events in `alertmanager.rs`. An [`Event`] serialises as its template context, the JSON stored with
//! it and read by the ticket templates.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error_kind::{Classified, ErrorKind};
use crate::identity::IntegrationName;

/// Longest dedup key, in characters.
pub const DEDUP_KEY_MAX: usize = 255;
/// Longest summary, in characters (Jira's own limit, 255, is applied when the summary template renders).
pub const SUMMARY_MAX: usize = 1000;
/// Longest description, in characters (Jira's limit).
pub const DESCRIPTION_MAX: usize = 32_767;
/// Most labels, and most annotations, of one event.
pub const ENTRIES_MAX: usize = 100;
/// Longest label or annotation name, in characters.
pub const NAME_MAX: usize = 255;
/// Longest label value, in characters.
pub const LABEL_VALUE_MAX: usize = 1024;
/// Longest annotation value, in characters.
pub const ANNOTATION_VALUE_MAX: usize = 32_767;
/// Longest link, in characters.
pub const URL_MAX: usize = 2048;

/// The JSON Schema pattern of text without control characters (C0, DEL, C1), as [`printable`] checks.
pub const PRINTABLE_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";
/// The JSON Schema pattern of a link, as [`valid_url`] checks.
pub const URL_PATTERN: &str = r"^https?://[^\s\x00-\x1f\x7f-\x9f]+$";

// One definition of each, shared with the templates: the stored context is what they read.
pub use super::template::{AlertContext, EventSource, EventStatus};

/// A value of an event that cannot be used; `field` is its path in the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct InvalidEvent {
    pub field: String,
    pub message: String,
}

impl InvalidEvent {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidEvent {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Classified for InvalidEvent {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid {
            field: self.field.clone(),
        }
    }
}

/// Text without control characters.
pub fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// An http(s) link without white space or control characters, as [`URL_PATTERN`] says.
pub fn valid_url(text: &str) -> bool {
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|rest| !rest.is_empty() && !rest.chars().any(|c| c.is_whitespace() || c.is_control()))
        && text.chars().count() <= URL_MAX
}

/// Checks a dedup key: 1 to 255 characters, no control characters.
pub fn check_dedup_key(key: &str, field: &str) -> Result<(), InvalidEvent> {
    let n = key.chars().count();
    if n == 0 || n > DEDUP_KEY_MAX {
        return Err(InvalidEvent::new(
            field,
            format!("must be 1 to {DEDUP_KEY_MAX} characters long"),
        ));
    }
    if !printable(key) {
        return Err(InvalidEvent::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks labels or annotations: at most 100, names 1 to 255 printable characters, values bounded.
pub fn check_map(map: &BTreeMap<String, String>, field: &str, value_max: usize) -> Result<(), InvalidEvent> {
    if map.len() > ENTRIES_MAX {
        return Err(InvalidEvent::new(
            field,
            format!("may have at most {ENTRIES_MAX} entries"),
        ));
    }
    for (name, value) in map {
        let n = name.chars().count();
        if n == 0 || n > NAME_MAX || !printable(name) {
            return Err(InvalidEvent::new(
                format!("{field}.{name}"),
                format!("needs a name of 1 to {NAME_MAX} characters without control characters"),
            ));
        }
        if value.chars().count() > value_max {
            return Err(InvalidEvent::new(
                format!("{field}.{name}"),
                format!("may be at most {value_max} characters long"),
            ));
        }
    }
    Ok(())
}

/// Herald's own event, as posted to `POST /api/v1/events`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSubmission {
    /// The integration whose project gets the issue; it must have tickets enabled.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?!\.\.?$)[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub integration: String,
    /// Names the problem: every event with the same key is about the same issue.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub dedup_key: String,
    pub status: EventStatus,
    /// One line about the problem, not only white space.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub summary: String,
    /// Free text, at most 32,767 characters.
    #[serde(default)]
    #[schema(max_length = 32767)]
    pub description: String,
    /// At most 100; names 1 to 255 characters without control characters, values at most 1024 characters.
    #[serde(default)]
    #[schema(schema_with = label_map_schema)]
    pub labels: BTreeMap<String, String>,
    /// At most 100; names 1 to 255 characters without control characters, values at most 32,767 characters.
    #[serde(default)]
    #[schema(schema_with = annotation_map_schema)]
    pub annotations: BTreeMap<String, String>,
    /// A link to the problem: http or https, at most 2048 characters.
    #[serde(default)]
    #[schema(max_length = 2048, pattern = r"^https?://[^\s\x00-\x1f\x7f-\x9f]+$")]
    pub url: Option<String>,
}

fn map_schema(value_max: usize, what: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(value_max))
        .build();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(what))
        .max_properties(Some(ENTRIES_MAX))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(NAME_MAX))
                .pattern(Some(PRINTABLE_PATTERN))
                .build(),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(value.into())))
        .build()
}

fn label_map_schema() -> utoipa::openapi::schema::Object {
    map_schema(LABEL_VALUE_MAX, "Labels: name → value")
}

fn annotation_map_schema() -> utoipa::openapi::schema::Object {
    map_schema(ANNOTATION_VALUE_MAX, "Annotations: name → value")
}

impl EventSubmission {
    /// Checks every field; the first fault is named.
    pub fn validate(self) -> Result<Event, InvalidEvent> {
        let integration =
            IntegrationName::try_from(self.integration.as_str()).map_err(|e| InvalidEvent::new("integration", e.0))?;
        check_dedup_key(&self.dedup_key, "dedup_key")?;
        let n = self.summary.chars().count();
        if n == 0 || n > SUMMARY_MAX || self.summary.trim().is_empty() {
            return Err(InvalidEvent::new(
                "summary",
                format!("must be 1 to {SUMMARY_MAX} characters long, not only white space"),
            ));
        }
        if !printable(&self.summary) {
            return Err(InvalidEvent::new(
                "summary",
                "must be one line without control characters",
            ));
        }
        if self.description.chars().count() > DESCRIPTION_MAX {
            return Err(InvalidEvent::new(
                "description",
                format!("may be at most {DESCRIPTION_MAX} characters long"),
            ));
        }
        check_map(&self.labels, "labels", LABEL_VALUE_MAX)?;
        check_map(&self.annotations, "annotations", ANNOTATION_VALUE_MAX)?;
        if let Some(url) = &self.url
            && !valid_url(url)
        {
            return Err(InvalidEvent::new(
                "url",
                format!("must be an http or https link of at most {URL_MAX} characters, without white space"),
            ));
        }
        Ok(Event {
            status: self.status,
            dedup_key: self.dedup_key,
            summary: self.summary,
            description: self.description,
            labels: self.labels,
            annotations: self.annotations,
            url: self.url,
            starts_at: None,
            ends_at: None,
            integration: integration.to_string(),
            source: EventSource::Api,
            group: AlertGroup::default(),
        })
    }
}

/// A valid event. It serialises as its template context, with exactly these keys, always present
/// (the contract with the ticket templates, `tickets::template::EventContext`): `status`,
/// `dedup_key`, `summary`, `description`, `labels`, `annotations`, `url`, `starts_at`, `ends_at`
/// (RFC 3339 or null), `integration`, `source`, and those of [`AlertGroup`] (`alerts` empty, maps
/// empty, `external_url` and `receiver` null for Herald's own events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub status: EventStatus,
    pub dedup_key: String,
    pub summary: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub url: Option<String>,
    /// Alertmanager: the earliest alert's start. API: when Herald accepted a firing event.
    pub starts_at: Option<String>,
    /// Alertmanager: the latest alert's end, when resolved. API: when Herald accepted a resolved event.
    pub ends_at: Option<String>,
    pub integration: String,
    pub source: EventSource,
    #[serde(flatten)]
    pub group: AlertGroup,
}

/// What an Alertmanager notification adds to the context: its alerts (all of the group's, or the one
/// alert an event is about with `?per=alert`) and the group's shared labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertGroup {
    pub alerts: Vec<AlertContext>,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub external_url: Option<String>,
    pub receiver: Option<String>,
}

impl Event {
    /// Fills the times an event of Herald's own format does not carry: a firing event starts, and a
    /// resolved one ends, when Herald accepts it.
    pub fn stamp(&mut self, accepted_at: &str) {
        if self.source == EventSource::Api {
            match self.status {
                EventStatus::Firing => self.starts_at = Some(accepted_at.to_owned()),
                EventStatus::Resolved => self.ends_at = Some(accepted_at.to_owned()),
            }
        }
    }
}

impl From<Event> for super::template::EventContext {
    /// The context the templates see: the same keys as the stored form.
    fn from(e: Event) -> Self {
        super::template::EventContext {
            status: e.status,
            dedup_key: e.dedup_key,
            summary: e.summary,
            description: e.description,
            labels: e.labels,
            annotations: e.annotations,
            url: e.url,
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            integration: e.integration,
            source: e.source,
            alerts: e.group.alerts,
            group_labels: e.group.group_labels,
            common_labels: e.group.common_labels,
            common_annotations: e.group.common_annotations,
            external_url: e.group.external_url,
            receiver: e.group.receiver,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.integration, self.dedup_key, self.status.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn submission(value: serde_json::Value) -> Result<Event, InvalidEvent> {
        serde_json::from_value::<EventSubmission>(value).unwrap().validate()
    }

    fn valid() -> serde_json::Value {
        json!({"integration": "jira", "dedup_key": "scan/CVE-2024-1", "status": "firing", "summary": "CVE in app"})
    }

    #[test]
    fn the_stored_form_is_the_context_the_templates_read() {
        let event = submission(valid()).unwrap();
        let stored = serde_json::to_value(&event).unwrap();
        let read: super::super::template::EventContext = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(read, super::super::template::EventContext::from(event));
        assert_eq!(serde_json::to_value(&read).unwrap(), stored, "the same keys, both ways");
    }

    fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut v = valid();
        v[key] = value;
        v
    }

    fn field_of(value: serde_json::Value) -> String {
        submission(value).unwrap_err().field
    }

    #[test]
    fn the_context_has_exactly_the_documented_keys() {
        let mut event = submission(valid()).unwrap();
        event.stamp("2024-01-01T12:00:00Z");
        let context = serde_json::to_value(&event).unwrap();
        let keys: Vec<&str> = context.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = [
            "alerts",
            "group_labels",
            "common_labels",
            "common_annotations",
            "external_url",
            "receiver",
            "status",
            "dedup_key",
            "summary",
            "description",
            "labels",
            "annotations",
            "url",
            "starts_at",
            "ends_at",
            "integration",
            "source",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(context["starts_at"], "2024-01-01T12:00:00Z");
        assert_eq!(context["ends_at"], serde_json::Value::Null);
        assert_eq!(context["source"], "api");
        assert_eq!(
            (&context["alerts"], &context["receiver"]),
            (&json!([]), &serde_json::Value::Null)
        );
        let back: Event = serde_json::from_value(context).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn each_fault_names_its_field() {
        assert_eq!(field_of(with("integration", json!(" x"))), "integration");
        assert_eq!(field_of(with("dedup_key", json!(""))), "dedup_key");
        assert_eq!(field_of(with("dedup_key", json!("k".repeat(256)))), "dedup_key");
        assert_eq!(field_of(with("dedup_key", json!("a\nb"))), "dedup_key");
        assert_eq!(field_of(with("summary", json!("   "))), "summary");
        assert_eq!(field_of(with("summary", json!("s".repeat(1001)))), "summary");
        assert_eq!(field_of(with("description", json!("d".repeat(32_768)))), "description");
        assert_eq!(field_of(with("url", json!("ftp://x"))), "url");
        assert_eq!(field_of(with("url", json!("https://a b"))), "url");
        assert_eq!(field_of(with("labels", json!({"": "x"}))), "labels.");
        assert_eq!(field_of(with("labels", json!({"env": "v".repeat(1025)}))), "labels.env");
        let many: serde_json::Map<String, serde_json::Value> =
            (0..101).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            field_of(with("annotations", serde_json::Value::Object(many))),
            "annotations"
        );
    }

    #[test]
    fn limits_are_inclusive() {
        let event = submission(json!({
            "integration": "jira", "dedup_key": "k".repeat(255), "status": "resolved",
            "summary": "s".repeat(1000), "description": "d".repeat(32_767),
            "labels": {"env": "v".repeat(1024)}, "url": format!("https://example.com/{}", "p".repeat(2000)),
        }))
        .unwrap();
        assert_eq!(event.status, EventStatus::Resolved);
        assert!(valid_url("http://x"));
        assert!(!valid_url("http://"));
        assert!(!valid_url(&format!("https://{}", "h".repeat(2041))));
    }
}
