//! Why an event could not be applied, in the one shape the worker records: whether to try again, and
//! what the error list shows (Jira's own `errorMessages` and `errors` when Jira refused).

use serde_json::{Value, json};

use crate::jira::{Retry, TicketError};
use crate::store::StoreError;
use crate::tickets::TemplateError;

/// A failed attempt at one event.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    /// A stable name for metrics and the error list (`rejected`, `rate_limited`, `template`, …).
    pub kind: &'static str,
    pub retry: Retry,
    /// One line for a person.
    pub message: String,
    /// What the error list shows: `{"kind", "message"}` and, when Jira answered, `operation`,
    /// `status`, `errorMessages` and `errors`.
    pub detail: Value,
}

impl Failure {
    /// A fault that retrying cannot fix: the event waits in the error list.
    pub fn parked(kind: &'static str, message: String) -> Self {
        Self::plain(kind, Retry::Never, message)
    }

    /// A passing fault: try again with backoff.
    pub fn later(kind: &'static str, message: String) -> Self {
        Self::plain(kind, Retry::Backoff, message)
    }

    fn plain(kind: &'static str, retry: Retry, message: String) -> Self {
        let detail = json!({"kind": kind, "message": message});
        Self {
            kind,
            retry,
            message,
            detail,
        }
    }
}

impl From<TicketError> for Failure {
    fn from(e: TicketError) -> Self {
        let kind = e.kind.as_str();
        let detail = json!({
            "kind": kind,
            "message": e.message,
            "operation": e.operation,
            "status": e.status,
            "errorMessages": e.error_messages,
            "errors": e.field_errors,
        });
        Self {
            kind,
            retry: e.retry,
            message: e.to_string(),
            detail,
        }
    }
}

impl From<TemplateError> for Failure {
    fn from(e: TemplateError) -> Self {
        Failure::parked("template", e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::later("database", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_refusals_keep_jiras_words() {
        let mut e = TicketError {
            kind: crate::jira::TicketErrorKind::Rejected,
            retry: Retry::Never,
            operation: "POST /rest/api/2/issue".into(),
            status: Some(400),
            message: "Jira refused the request".into(),
            error_messages: vec!["one".into()],
            field_errors: Default::default(),
        };
        e.field_errors.insert("customfield_1".into(), "is required".into());
        let failure = Failure::from(e);
        assert_eq!(failure.kind, "rejected");
        assert_eq!(failure.retry, Retry::Never);
        assert_eq!(failure.detail["errors"]["customfield_1"], "is required");
        assert_eq!(failure.detail["errorMessages"][0], "one");
        assert_eq!(failure.detail["status"], 400);
        let later = Failure::later("database", "down".into());
        assert_eq!(
            (later.retry, later.detail["message"].as_str()),
            (Retry::Backoff, Some("down"))
        );
    }
}
