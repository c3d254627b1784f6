//! The ticket operations on one integration's Jira: create an issue, find one by its dedup label,
//! read its state, list and apply transitions, add comments.
//!
//! A separate file from the check's `get` because the needs differ: the check reads with a
//! deadline and gives up; tickets write, so every request goes through the integration's
//! [`Limiter`] (concurrency, rate, Jira's pauses), and every failure is classified once
//! ([`TicketError`]) with a retry decision and, for a write whose answer was lost, the
//! "unknown outcome" that tells the worker to look before it sends again. The transport (the shared
//! `reqwest::Client` with the integration's TLS and proxy settings) and the credentials are the
//! check's [`JiraClient`].
//!
//! Cloud speaks API v3 with Atlassian Document Format bodies and searches with
//! `POST /rest/api/3/search/jql`; Data Center speaks v2 with wiki-markup strings and searches with
//! `POST /rest/api/2/search`. Cloud's `/rest/api/{2,3}/search` answers 410 since CHANGE-2046
//! (alertmanager#4513) and is never called. Cloud's search is eventually consistent: an issue
//! created a moment ago may not be found yet, so after an unknown outcome search a little later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::limiter::Limiter;
use super::ticket_error::{Op, RateLimitHeaders, Retry, TicketError, TicketErrorKind, from_response, from_transport};
use super::ticket_types::{
    CreatedIssue, FoundIssue, IssueState, IssueWire, SearchWire, Transition, TransitionsWire, adf_from_text, label_jql,
};
use super::{Auth, AuthDenial, JiraClient, JiraError, JiraResponse, auth_denial, read_capped};

/// Which API Herald speaks to a Jira.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFlavor {
    /// Jira Cloud: `/rest/api/3`, Atlassian Document Format bodies.
    Cloud,
    /// Jira Server or Data Center: `/rest/api/2`, wiki-markup strings.
    DataCenter,
}

impl ApiFlavor {
    fn api(self) -> &'static str {
        match self {
            ApiFlavor::Cloud => "/rest/api/3",
            ApiFlavor::DataCenter => "/rest/api/2",
        }
    }

    fn search_path(self) -> &'static str {
        match self {
            ApiFlavor::Cloud => "/rest/api/3/search/jql",
            ApiFlavor::DataCenter => "/rest/api/2/search",
        }
    }
}

/// An issue to create. `description` is an ADF document for Cloud or a wiki-markup string for Data
/// Center; a string given for Cloud becomes a plain ADF document. `fields` are further fields by id
/// (`customfield_10010`); the named ones above win over them.
#[derive(Debug, Clone, Default)]
pub struct NewIssue {
    pub project_key: String,
    /// A name (`Bug`) or an id (`10004`).
    pub issue_type: String,
    pub summary: String,
    pub description: Option<Value>,
    pub labels: Vec<String>,
    pub priority: Option<String>,
    pub fields: BTreeMap<String, Value>,
}

/// How the client waits and retries inside one operation.
#[derive(Debug, Clone, Copy)]
pub struct TicketClientSettings {
    /// The longest one request may take, answer included (default 30 s).
    pub request_timeout: Duration,
    /// 429s (and 503s with `Retry-After`) waited out inside one operation before it fails with
    /// [`TicketErrorKind::RateLimited`] (default 3).
    pub rate_limit_retries: u32,
    /// The longest pause waited out inside one operation; a longer one fails at once with
    /// `Retry::After` for the worker to schedule (default 60 s).
    pub max_inline_wait: Duration,
}

impl Default for TicketClientSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            rate_limit_retries: 3,
            max_inline_wait: Duration::from_secs(60),
        }
    }
}

/// A 429 without any header saying how long to wait still pauses the integration this long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// Path segments such as issue keys, escaped: a key comes from Jira or the store, never trusted raw.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The ticket operations on one integration's Jira.
#[derive(Clone)]
pub struct TicketClient {
    jira: JiraClient,
    flavor: ApiFlavor,
    limiter: Arc<Limiter>,
    settings: TicketClientSettings,
}

impl TicketClient {
    pub fn new(jira: JiraClient, flavor: ApiFlavor, limiter: Arc<Limiter>, settings: TicketClientSettings) -> Self {
        Self {
            jira,
            flavor,
            limiter,
            settings,
        }
    }

    pub fn flavor(&self) -> ApiFlavor {
        self.flavor
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// The page of an issue for people: `<base>/browse/KEY`.
    pub fn browse_url(&self, issue_key: &str) -> String {
        self.jira.base.join(&format!("/browse/{}", segment(issue_key)))
    }

    pub async fn create_issue(&self, issue: &NewIssue) -> Result<CreatedIssue, TicketError> {
        let path = format!("{}/issue", self.flavor.api());
        let operation = format!("POST {path}");
        let mut fields: serde_json::Map<String, Value> =
            issue.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        fields.insert("project".into(), json!({"key": issue.project_key}));
        let by = if !issue.issue_type.is_empty() && issue.issue_type.bytes().all(|b| b.is_ascii_digit()) {
            "id"
        } else {
            "name"
        };
        fields.insert("issuetype".into(), json!({ by: issue.issue_type }));
        fields.insert("summary".into(), json!(issue.summary));
        if let Some(description) = &issue.description {
            fields.insert("description".into(), self.body_text(&operation, description)?);
        }
        if !issue.labels.is_empty() {
            fields.insert("labels".into(), json!(issue.labels));
        }
        if let Some(priority) = &issue.priority {
            fields.insert("priority".into(), json!({"name": priority}));
        }
        let op = Op {
            writes: true,
            on_issue: false,
        };
        let response = self
            .call(Method::POST, &path, Some(&json!({"fields": fields})), op)
            .await?;
        // Created, but without a readable key the worker cannot record it: it must search.
        response.json::<CreatedIssue>().map_err(|e| {
            TicketError::new(
                TicketErrorKind::UnknownOutcome,
                Retry::Backoff,
                &operation,
                format!(
                    "Jira answered {} but its body cannot be read ({e})",
                    response.status.as_u16()
                ),
            )
        })
    }

    /// The newest issue of `project_key` carrying `label`, or `None`.
    pub async fn find_by_label(&self, project_key: &str, label: &str) -> Result<Option<FoundIssue>, TicketError> {
        let path = self.flavor.search_path();
        let body = json!({
            "jql": label_jql(project_key, label),
            "fields": ["status", "resolution", "resolutiondate"],
            "maxResults": 1,
        });
        let op = Op {
            writes: false,
            on_issue: false,
        };
        let response = self.call(Method::POST, path, Some(&body), op).await?;
        let page: SearchWire = response.json().map_err(|e| unreadable(&format!("POST {path}"), &e))?;
        Ok(page.issues.into_iter().next().map(IssueState::from))
    }

    /// The issue's status category and resolution, for reopen and resolve decisions.
    pub async fn get_issue(&self, issue_key: &str) -> Result<IssueState, TicketError> {
        let path = format!("{}/issue/{}", self.flavor.api(), checked_key(issue_key)?);
        let query = format!("{path}?fields=status,resolution,resolutiondate");
        let response = self.call(Method::GET, &query, None, on_issue(false)).await?;
        let wire: IssueWire = response.json().map_err(|e| unreadable(&format!("GET {path}"), &e))?;
        Ok(IssueState::from(wire))
    }

    /// The transitions the issue offers now (they depend on its status and Herald's permissions).
    pub async fn transitions(&self, issue_key: &str) -> Result<Vec<Transition>, TicketError> {
        let path = format!("{}/issue/{}/transitions", self.flavor.api(), checked_key(issue_key)?);
        let response = self.call(Method::GET, &path, None, on_issue(false)).await?;
        let wire: TransitionsWire = response.json().map_err(|e| unreadable(&format!("GET {path}"), &e))?;
        Ok(wire.transitions.into_iter().map(Transition::from).collect())
    }

    /// Applies a transition by id, setting the resolution when one is given (a resolving transition
    /// whose screen has the Resolution field).
    pub async fn transition(
        &self,
        issue_key: &str,
        transition_id: &str,
        resolution: Option<&str>,
    ) -> Result<(), TicketError> {
        let path = format!("{}/issue/{}/transitions", self.flavor.api(), checked_key(issue_key)?);
        let mut body = json!({"transition": {"id": transition_id}});
        if let Some(resolution) = resolution {
            body["fields"] = json!({"resolution": {"name": resolution}});
        }
        self.call(Method::POST, &path, Some(&body), on_issue(true)).await?;
        Ok(())
    }

    /// Adds a comment: an ADF document or a string (Cloud turns a string into a plain document).
    pub async fn add_comment(&self, issue_key: &str, body: &Value) -> Result<(), TicketError> {
        let path = format!("{}/issue/{}/comment", self.flavor.api(), checked_key(issue_key)?);
        let text = self.body_text(&format!("POST {path}"), body)?;
        self.call(Method::POST, &path, Some(&json!({"body": text})), on_issue(true))
            .await?;
        Ok(())
    }

    /// A rich-text field as this API wants it: ADF for Cloud, a string for Data Center.
    fn body_text(&self, operation: &str, value: &Value) -> Result<Value, TicketError> {
        match (self.flavor, value) {
            (ApiFlavor::Cloud, Value::String(text)) => Ok(adf_from_text(text)),
            (ApiFlavor::Cloud, Value::Object(_)) | (ApiFlavor::DataCenter, Value::String(_)) => Ok(value.clone()),
            (ApiFlavor::DataCenter, _) => Err(TicketError::new(
                TicketErrorKind::Rejected,
                Retry::Never,
                operation,
                "Data Center (API v2) takes wiki-markup text, not an Atlassian Document".to_owned(),
            )),
            (ApiFlavor::Cloud, _) => Err(TicketError::new(
                TicketErrorKind::Rejected,
                Retry::Never,
                operation,
                "Jira Cloud (API v3) takes an Atlassian Document or text".to_owned(),
            )),
        }
    }

    /// One operation: waits for the limiter, sends, classifies; waits out 429s while the settings
    /// allow, pausing the whole integration for as long as Jira asked.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        op: Op,
    ) -> Result<JiraResponse, TicketError> {
        let operation = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let url = reqwest::Url::parse(&self.jira.base.join(path)).map_err(|e| {
            TicketError::new(
                TicketErrorKind::Rejected,
                Retry::Never,
                &operation,
                format!("not a valid URL: {e}"),
            )
        })?;
        let mut rate_limited = 0;
        loop {
            // A pause longer than the client waits inline fails at once, for the worker to schedule:
            // an event does not hold a worker (and its lease) through an hour-long Retry-After.
            if let Some(until) = self.limiter.blocked_until() {
                let wait = until.saturating_duration_since(Instant::now());
                if wait > self.settings.max_inline_wait {
                    return Err(TicketError::new(
                        TicketErrorKind::RateLimited,
                        Retry::After(wait),
                        &operation,
                        format!(
                            "Jira asked Herald to pause this integration; {} to go",
                            humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
                        ),
                    ));
                }
            }
            // Waiting for a slot, a token or a pause that began meanwhile: no longer than the
            // inline wait either.
            let Ok(permit) = tokio::time::timeout(self.settings.max_inline_wait, self.limiter.acquire()).await else {
                let wait = self
                    .limiter
                    .blocked_until()
                    .map_or(DEFAULT_PAUSE, |until| until.saturating_duration_since(Instant::now()));
                return Err(TicketError::new(
                    TicketErrorKind::RateLimited,
                    Retry::After(wait),
                    &operation,
                    "this integration's requests are paused or its rate limit is used up; tried again later".to_owned(),
                ));
            };
            let mut request = self
                .jira
                .http
                .request(method.clone(), url.clone())
                .header(header::ACCEPT, "application/json")
                .timeout(self.settings.request_timeout);
            request = match &self.jira.auth {
                Auth::Basic { username, password } => request.basic_auth(username, Some(password.expose())),
                Auth::Bearer { token } => request.bearer_auth(token.expose()),
            };
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let response = request
                .send()
                .await
                .map_err(|e| from_transport(&operation, op, &e, started.elapsed()))?;
            let status = response.status();
            let headers = response.headers().clone();
            let limits = RateLimitHeaders::parse(&headers, time::OffsetDateTime::now_utc());
            let asked = limits.pause();
            let throttled = status == StatusCode::TOO_MANY_REQUESTS
                || (status == StatusCode::SERVICE_UNAVAILABLE && asked.is_some());
            if throttled {
                self.limiter.note_throttled();
            }
            if throttled || limits.remaining == Some(0) {
                let pause = asked.unwrap_or(DEFAULT_PAUSE);
                tracing::info!(
                    %operation, status = status.as_u16(), pause_ms = pause.as_millis() as u64,
                    reason = limits.reason.as_deref().unwrap_or(""), "Jira asked Herald to pause"
                );
                self.limiter.pause_for(pause);
            }
            let read = read_capped(response, &url).await;
            drop(permit);
            let body = match read {
                Ok(body) => body,
                Err(e) if status.is_success() && op.writes => {
                    return Err(TicketError::new(
                        TicketErrorKind::UnknownOutcome,
                        Retry::Backoff,
                        &operation,
                        format!("Jira answered {} but the answer was cut off ({e})", status.as_u16()),
                    ));
                }
                Err(JiraError::Timeout { .. }) if status.is_success() => {
                    return Err(TicketError::new(
                        TicketErrorKind::Timeout,
                        Retry::Backoff,
                        &operation,
                        "the answer did not arrive in time".to_owned(),
                    ));
                }
                Err(_) => Default::default(),
            };
            let answer = JiraResponse { status, headers, body };
            if throttled
                && rate_limited < self.settings.rate_limit_retries
                && asked.unwrap_or(DEFAULT_PAUSE) <= self.settings.max_inline_wait
            {
                rate_limited += 1;
                continue;
            }
            if status.is_success() {
                // A 200 can still be a refusal: an SSO login page, or Seraph saying the login failed.
                // (Not Cloud's password message: a 2xx body may quote a comment that says anything.)
                let refusal = auth_denial(&answer).filter(|d| {
                    matches!(
                        d,
                        AuthDenial::HtmlLoginPage
                            | AuthDenial::AuthenticatedFailed
                            | AuthDenial::AuthenticationDenied
                            | AuthDenial::CaptchaChallenge { .. }
                    )
                });
                if let Some(denial) = refusal {
                    return Err(TicketError::new(
                        TicketErrorKind::Unauthorized,
                        Retry::Never,
                        &operation,
                        format!("Jira refused Herald's credentials: {denial}"),
                    ));
                }
                return Ok(answer);
            }
            let pause = if throttled {
                Some(asked.unwrap_or(DEFAULT_PAUSE))
            } else {
                asked
            };
            return Err(from_response(&operation, op, &answer, pause));
        }
    }
}

fn on_issue(writes: bool) -> Op {
    Op { writes, on_issue: true }
}

/// An issue key (`SEC-12`) or id (`10005`), checked before it becomes part of a path: a `..` or a
/// `/` from a corrupt row must not reach another endpoint.
fn checked_key(key: &str) -> Result<&str, TicketError> {
    let valid = match key.rsplit_once('-') {
        Some((project, number)) => {
            project.starts_with(|c: char| c.is_ascii_alphabetic())
                && project.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        None => !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()),
    };
    if valid && key.len() <= 255 {
        Ok(key)
    } else {
        Err(TicketError::new(
            TicketErrorKind::Rejected,
            Retry::Never,
            "issue key",
            format!("`{}` is not a Jira issue key", super::excerpt(key, 80)),
        ))
    }
}

fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

fn unreadable(operation: &str, detail: &str) -> TicketError {
    TicketError::new(
        TicketErrorKind::Unexpected,
        Retry::Backoff,
        operation,
        format!("Jira's answer cannot be read: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_issue_keys_and_ids_become_paths() {
        for key in ["SEC-12", "A_B2-1", "10005"] {
            assert!(checked_key(key).is_ok(), "{key}");
        }
        for key in [
            "",
            "..",
            "../x",
            "SEC-",
            "-1",
            "SEC-1/comment",
            "SEC-1?x",
            "1SEC-2",
            "%2e%2e",
        ] {
            assert!(checked_key(key).is_err(), "{key}");
        }
        assert_eq!(segment("SEC-12"), "SEC-12");
    }

    #[test]
    fn each_flavor_speaks_its_api() {
        assert_eq!(ApiFlavor::Cloud.search_path(), "/rest/api/3/search/jql");
        assert_eq!(ApiFlavor::DataCenter.search_path(), "/rest/api/2/search");
        assert_eq!(ApiFlavor::DataCenter.api(), "/rest/api/2");
    }
}
