//! What went wrong talking to Jira about tickets, classified once: a kind for the error list and the
//! metrics, and a [`Retry`] decision for the worker.
//!
//! The classification lives here, beside the client, so that the worker never reads a status code
//! itself: it asks `retry` (never / with backoff / not before an instant Jira asked for) and keeps
//! Jira's own `errorMessages` and `errors` for whoever fixes a parked event.
//!
//! One distinction matters more than the others: a write (create, comment, transition) whose request
//! may have reached Jira but whose answer never came is [`TicketErrorKind::UnknownOutcome`], not a
//! timeout. Jira may have applied it; the worker must look (search by the dedup label, read the
//! issue) before sending it again, or it makes a second issue: the duplicate that jiralert#73 and
//! alertmanager#4295 report.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderMap, StatusCode, header};

use super::{AuthDenial, JiraResponse, MAX_RETRY_AFTER, auth_denial, excerpt, types::ErrorCollection};
use crate::error_kind::{Classified, ErrorKind};

/// Whether and when a failed ticket operation may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Sending it again cannot help: the request, the configuration or the credentials must change.
    Never,
    /// A passing fault: retry with the caller's backoff.
    Backoff,
    /// Jira asked Herald to wait (`Retry-After`, `X-RateLimit-Reset`): retry no sooner than this.
    After(Duration),
}

/// What kind of failure a [`TicketError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketErrorKind {
    /// Jira was not reached (DNS, refused, TLS, connect): nothing was sent.
    Unreachable,
    /// A read (search, transitions, issue) got no answer in time.
    Timeout,
    /// A write was sent but its answer was lost (timeout, reset, a gateway's 502/504, or a 5xx that
    /// may come after the commit): Jira may have applied it. Look before sending it again.
    UnknownOutcome,
    /// 429 (or 503 with `Retry-After`): Jira asks Herald to slow down; nothing was applied.
    RateLimited,
    /// Another 5xx: Jira failed; nothing is known to have been applied.
    ServerError,
    /// 400: Jira refused the content (a field not on the screen, a bad value, invalid JQL).
    Rejected,
    /// 401 or Jira's other refusals of the credentials (Seraph headers, CAPTCHA, a login page).
    Unauthorized,
    /// 403: the credentials work but may not do this (create, comment, transition).
    Forbidden,
    /// 404 on an issue: it was deleted or moved out of sight.
    IssueNotFound,
    /// 404 on anything else (a project, an endpoint).
    NotFound,
    /// 410: Jira removed the endpoint (Cloud's old `/rest/api/3/search`, CHANGE-2046).
    Gone,
    /// An answer Herald cannot read (not JSON, not the expected shape, another status).
    Unexpected,
}

impl TicketErrorKind {
    /// A stable name for metrics, logs and the error list.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketErrorKind::Unreachable => "unreachable",
            TicketErrorKind::Timeout => "timeout",
            TicketErrorKind::UnknownOutcome => "unknown_outcome",
            TicketErrorKind::RateLimited => "rate_limited",
            TicketErrorKind::ServerError => "server_error",
            TicketErrorKind::Rejected => "rejected",
            TicketErrorKind::Unauthorized => "unauthorized",
            TicketErrorKind::Forbidden => "forbidden",
            TicketErrorKind::IssueNotFound => "issue_not_found",
            TicketErrorKind::NotFound => "not_found",
            TicketErrorKind::Gone => "gone",
            TicketErrorKind::Unexpected => "unexpected",
        }
    }
}

/// A failed ticket operation: what kind, whether to retry, and what Jira said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct TicketError {
    pub kind: TicketErrorKind,
    pub retry: Retry,
    /// What Herald was doing, e.g. `POST /rest/api/3/issue`.
    pub operation: String,
    /// The HTTP status, when Jira answered.
    pub status: Option<u16>,
    /// One line for a person.
    pub message: String,
    /// Jira's `errorMessages`, unchanged.
    pub error_messages: Vec<String>,
    /// Jira's `errors`: field id → message, unchanged.
    pub field_errors: BTreeMap<String, String>,
}

impl TicketError {
    pub(crate) fn new(kind: TicketErrorKind, retry: Retry, operation: &str, message: String) -> Self {
        Self {
            kind,
            retry,
            operation: operation.to_owned(),
            status: None,
            message,
            error_messages: Vec::new(),
            field_errors: BTreeMap::new(),
        }
    }

    /// Whether Jira may have applied the write: search or read before sending it again.
    pub fn is_unknown_outcome(&self) -> bool {
        self.kind == TicketErrorKind::UnknownOutcome
    }

    /// Whether Jira refused the request because of this field (e.g. `labels` not on the create
    /// screen, alertmanager#5230), so the caller may drop it and try again.
    pub fn rejects_field(&self, field: &str) -> bool {
        self.kind == TicketErrorKind::Rejected && self.field_errors.contains_key(field)
    }
}

impl Classified for TicketError {
    fn kind(&self) -> ErrorKind {
        match self.kind {
            TicketErrorKind::Rejected => ErrorKind::Invalid {
                field: self.field_errors.keys().next().cloned().unwrap_or_default(),
            },
            TicketErrorKind::IssueNotFound | TicketErrorKind::NotFound => ErrorKind::NotFound,
            // Herald's credentials or permissions in Jira contradict what the integration is for:
            // the caller's own credentials are not at fault, so not `Unauthenticated`.
            TicketErrorKind::Unauthorized | TicketErrorKind::Forbidden => ErrorKind::Conflict,
            // Jira throttles Herald, not whoever asked Herald: an upstream that is busy for now.
            TicketErrorKind::RateLimited
            | TicketErrorKind::Unreachable
            | TicketErrorKind::Timeout
            | TicketErrorKind::UnknownOutcome
            | TicketErrorKind::ServerError
            | TicketErrorKind::Unexpected => ErrorKind::Unavailable,
            TicketErrorKind::Gone => ErrorKind::Internal,
        }
    }

    fn code(&self) -> Option<&'static str> {
        Some(match self.kind {
            TicketErrorKind::Unreachable => "jira_unreachable",
            TicketErrorKind::Timeout => "jira_timeout",
            TicketErrorKind::UnknownOutcome => "jira_unknown_outcome",
            TicketErrorKind::RateLimited => "jira_rate_limited",
            TicketErrorKind::ServerError => "jira_server_error",
            TicketErrorKind::Rejected => "jira_rejected",
            TicketErrorKind::Unauthorized => "jira_unauthorized",
            TicketErrorKind::Forbidden => "jira_forbidden",
            TicketErrorKind::IssueNotFound => "jira_issue_not_found",
            TicketErrorKind::NotFound => "jira_not_found",
            TicketErrorKind::Gone => "jira_gone",
            TicketErrorKind::Unexpected => "jira_unexpected_answer",
        })
    }
}

/// Whether a request changes Jira (so a lost answer leaves the outcome unknown) and whether it names
/// an issue (so a 404 means the issue is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Op {
    pub writes: bool,
    pub on_issue: bool,
}

/// What Jira's rate-limit headers asked for (Cloud: `Retry-After`, `X-RateLimit-Limit`,
/// `X-RateLimit-Remaining`, `X-RateLimit-Reset`, `RateLimit-Reason`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `Retry-After` (seconds or an HTTP date), as a wait from now.
    pub retry_after: Option<Duration>,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset` (an ISO 8601 instant, or seconds), as a wait from now.
    pub reset_in: Option<Duration>,
    /// `RateLimit-Reason`, e.g. `jira-burst-based` or `jira-quota-tenant-based`.
    pub reason: Option<String>,
}

impl RateLimitHeaders {
    pub fn parse(headers: &HeaderMap, now: time::OffsetDateTime) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        Self {
            retry_after: text(header::RETRY_AFTER.as_str()).and_then(|v| wait_from(v, now)),
            limit: number("x-ratelimit-limit"),
            remaining: number("x-ratelimit-remaining"),
            reset_in: text("x-ratelimit-reset").and_then(|v| wait_from(v, now)),
            reason: text("ratelimit-reason")
                .filter(|v| !v.is_empty())
                .map(|v| excerpt(v, 80)),
        }
    }

    /// The pause Jira asked for: `Retry-After`, else the reset of an exhausted window; at most
    /// [`MAX_RETRY_AFTER`].
    pub fn pause(&self) -> Option<Duration> {
        let exhausted = self.remaining == Some(0);
        self.retry_after
            .or(if exhausted { self.reset_in } else { None })
            .map(|wait| wait.min(MAX_RETRY_AFTER))
    }
}

/// A header value as a wait from `now`: whole seconds (saturating), or an instant (RFC 3339, with or
/// without seconds as Cloud's `X-RateLimit-Reset` may be, or an HTTP date). A past instant is zero.
pub(crate) fn wait_from(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    use time::format_description::well_known::{Rfc2822, Rfc3339};
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = time::OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(value, &Rfc2822))
        .or_else(|_| {
            // `2024-02-26T14:17Z`: minute precision.
            let with_seconds = value.strip_suffix('Z').map(|v| format!("{v}:00Z")).unwrap_or_default();
            time::OffsetDateTime::parse(&with_seconds, &Rfc3339)
        })
        .ok()?;
    let millis = (at - now).whole_milliseconds();
    Some(Duration::from_millis(u64::try_from(millis.max(0)).unwrap_or(u64::MAX)))
}

/// Classifies an answer that is not a success. `pause` is what the rate-limit headers asked for.
pub(crate) fn from_response(operation: &str, op: Op, response: &JiraResponse, pause: Option<Duration>) -> TicketError {
    let status = response.status;
    let collection = serde_json::from_slice::<ErrorCollection>(&response.body).unwrap_or_default();
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let error_messages: Vec<String> = collection
        .error_messages
        .unwrap_or_default()
        .into_iter()
        .map(text)
        .collect();
    let field_errors: BTreeMap<String, String> = collection
        .errors
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, text(v)))
        .collect();
    let summary = response.error_summary();
    let said = |what: &str| {
        if summary.is_empty() {
            format!("HTTP {} ({what})", status.as_u16())
        } else {
            format!("HTTP {} ({what}): {summary}", status.as_u16())
        }
    };
    let (kind, retry, message) = match status {
        StatusCode::TOO_MANY_REQUESTS => (
            TicketErrorKind::RateLimited,
            pause.map_or(Retry::Backoff, Retry::After),
            said("rate-limited"),
        ),
        StatusCode::SERVICE_UNAVAILABLE if pause.is_some() => (
            TicketErrorKind::RateLimited,
            pause.map_or(Retry::Backoff, Retry::After),
            said("unavailable, retry later"),
        ),
        // A gateway that lost Jira's answer, or a failure that may follow the commit.
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT | StatusCode::INTERNAL_SERVER_ERROR if op.writes => (
            TicketErrorKind::UnknownOutcome,
            Retry::Backoff,
            said("the write may have been applied"),
        ),
        s if s.is_server_error() => (TicketErrorKind::ServerError, Retry::Backoff, said("Jira failed")),
        StatusCode::UNAUTHORIZED => (
            TicketErrorKind::Unauthorized,
            Retry::Never,
            format!(
                "Jira refused Herald's credentials: {}; fix the integration's `auth`",
                denial_text(response)
            ),
        ),
        StatusCode::FORBIDDEN => match auth_denial(response) {
            Some(d @ (AuthDenial::CaptchaChallenge { .. } | AuthDenial::AuthenticationDenied)) => (
                TicketErrorKind::Unauthorized,
                Retry::Never,
                format!("Jira refused Herald's credentials: {d}; sign in once in a browser to clear it"),
            ),
            _ => (
                TicketErrorKind::Forbidden,
                Retry::Never,
                said("Herald's Jira user lacks a permission for this: check the project's permission scheme"),
            ),
        },
        StatusCode::NOT_FOUND if op.on_issue => (
            TicketErrorKind::IssueNotFound,
            Retry::Never,
            said("the issue does not exist or is not visible to Herald's Jira user"),
        ),
        StatusCode::NOT_FOUND => (TicketErrorKind::NotFound, Retry::Never, said("not found")),
        StatusCode::GONE => (TicketErrorKind::Gone, Retry::Never, said("Jira removed this endpoint")),
        s if s.is_client_error() => (
            TicketErrorKind::Rejected,
            Retry::Never,
            said("Jira refused the request"),
        ),
        _ => (TicketErrorKind::Unexpected, Retry::Backoff, said("unexpected answer")),
    };
    TicketError {
        kind,
        retry,
        operation: operation.to_owned(),
        status: Some(status.as_u16()),
        message,
        error_messages,
        field_errors,
    }
}

fn denial_text(response: &JiraResponse) -> String {
    auth_denial(response).map_or_else(|| "HTTP 401".to_owned(), |d| d.to_string())
}

/// Classifies a transport failure. A write is in doubt unless Jira was certainly never reached.
pub(crate) fn from_transport(operation: &str, op: Op, err: &reqwest::Error, after: Duration) -> TicketError {
    let never_sent = err.is_connect() || err.is_builder() || err.is_redirect();
    let detail = {
        let mut chain = Vec::new();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            chain.push(e.to_string());
            source = e.source();
        }
        excerpt(&chain.join(": "), 240)
    };
    let waited = humantime::format_duration(Duration::from_millis(after.as_millis() as u64));
    if op.writes && !never_sent {
        let how = if err.is_timeout() {
            format!("no answer within {waited}")
        } else {
            detail
        };
        return TicketError::new(
            TicketErrorKind::UnknownOutcome,
            Retry::Backoff,
            operation,
            format!("the request was sent but its answer was lost ({how}); Jira may have applied it"),
        );
    }
    if err.is_timeout() && !err.is_connect() {
        return TicketError::new(
            TicketErrorKind::Timeout,
            Retry::Backoff,
            operation,
            format!("no answer within {waited}"),
        );
    }
    TicketError::new(
        TicketErrorKind::Unreachable,
        Retry::Backoff,
        operation,
        format!("Jira cannot be reached: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const WRITE: Op = Op {
        writes: true,
        on_issue: false,
    };
    const READ_ISSUE: Op = Op {
        writes: false,
        on_issue: true,
    };

    fn answer(status: u16, body: &str) -> JiraResponse {
        JiraResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    fn at(text: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn rate_limit_headers_are_read_as_cloud_sends_them() {
        let now = at("2026-11-30T10:00:00Z");
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "5".parse().unwrap());
        headers.insert("x-ratelimit-limit", "100".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", "2026-11-30T10:00:30Z".parse().unwrap());
        headers.insert("ratelimit-reason", "jira-burst-based".parse().unwrap());
        let parsed = RateLimitHeaders::parse(&headers, now);
        assert_eq!(
            parsed,
            RateLimitHeaders {
                retry_after: Some(Duration::from_secs(5)),
                limit: Some(100),
                remaining: Some(0),
                reset_in: Some(Duration::from_secs(30)),
                reason: Some("jira-burst-based".to_owned()),
            }
        );
        // Retry-After wins; without it an exhausted window waits for its reset.
        assert_eq!(parsed.pause(), Some(Duration::from_secs(5)));
        headers.remove("retry-after");
        assert_eq!(
            RateLimitHeaders::parse(&headers, now).pause(),
            Some(Duration::from_secs(30))
        );
        // A window with requests left asks for no pause.
        headers.insert("x-ratelimit-remaining", "7".parse().unwrap());
        assert_eq!(RateLimitHeaders::parse(&headers, now).pause(), None);
    }

    #[test]
    fn waits_come_from_seconds_dates_and_minute_precision_instants() {
        let now = at("2026-11-30T10:00:00Z");
        assert_eq!(wait_from("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            wait_from("Mon, 30 Nov 2026 10:00:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(wait_from("2026-11-30T10:01Z", now), Some(Duration::from_secs(60)));
        assert_eq!(wait_from("2026-11-30T09:00:00Z", now), Some(Duration::ZERO));
        assert_eq!(
            wait_from("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(wait_from("soon", now), None);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "99999999999".parse().unwrap());
        assert_eq!(RateLimitHeaders::parse(&headers, now).pause(), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn field_errors_are_permanent_and_kept_as_jira_said_them() {
        let body = r#"{"errorMessages":[],"errors":{"customfield_10010":"Field 'customfield_10010' cannot be set. It is not on the appropriate screen, or unknown."}}"#;
        let err = from_response("POST /rest/api/3/issue", WRITE, &answer(400, body), None);
        assert_eq!((err.kind, err.retry), (TicketErrorKind::Rejected, Retry::Never));
        assert!(err.rejects_field("customfield_10010"));
        assert!(err.field_errors["customfield_10010"].contains("not on the appropriate screen"));
        assert_eq!(
            Classified::kind(&err),
            ErrorKind::Invalid {
                field: "customfield_10010".to_owned()
            }
        );
        let err = from_response(
            "POST",
            WRITE,
            &answer(
                400,
                r#"{"errorMessages":["one of 'fields' or 'update' required"],"errors":{}}"#,
            ),
            None,
        );
        assert_eq!(err.error_messages, ["one of 'fields' or 'update' required"]);
    }

    #[test]
    fn statuses_map_to_kinds_and_retry_decisions() {
        let cases = [
            (
                429,
                WRITE,
                Some(3),
                TicketErrorKind::RateLimited,
                Retry::After(Duration::from_secs(3)),
            ),
            (429, READ_ISSUE, None, TicketErrorKind::RateLimited, Retry::Backoff),
            (
                503,
                READ_ISSUE,
                Some(1),
                TicketErrorKind::RateLimited,
                Retry::After(Duration::from_secs(1)),
            ),
            (503, WRITE, None, TicketErrorKind::ServerError, Retry::Backoff),
            (504, WRITE, None, TicketErrorKind::UnknownOutcome, Retry::Backoff),
            (500, READ_ISSUE, None, TicketErrorKind::ServerError, Retry::Backoff),
            (401, READ_ISSUE, None, TicketErrorKind::Unauthorized, Retry::Never),
            (403, WRITE, None, TicketErrorKind::Forbidden, Retry::Never),
            (404, READ_ISSUE, None, TicketErrorKind::IssueNotFound, Retry::Never),
            (404, WRITE, None, TicketErrorKind::NotFound, Retry::Never),
            (410, READ_ISSUE, None, TicketErrorKind::Gone, Retry::Never),
            (302, READ_ISSUE, None, TicketErrorKind::Unexpected, Retry::Backoff),
        ];
        for (status, op, pause, kind, retry) in cases {
            let err = from_response("op", op, &answer(status, "{}"), pause.map(Duration::from_secs));
            assert_eq!((err.kind, err.retry), (kind, retry), "HTTP {status}");
            assert_eq!(err.status, Some(status));
        }
        let unauthorized = from_response("op", WRITE, &answer(401, "{}"), None);
        assert!(
            unauthorized.message.contains("fix the integration's `auth`"),
            "{unauthorized}"
        );
    }
}
