//! One integration's tickets: its problems by state, the error list with Jira's own words, and
//! resending, deleting and forgetting a problem's events, and sending a test event.
//!
//! Dedup keys may hold `/`, spaces and any printable character, so the forms post them as fields,
//! never in the path.

use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Badge;
use crate::console::error::{ConsoleError, sentence};
use crate::console::session::{Change, CsrfForm, Session};
use crate::console::view::{Chrome, When, encode_component, html};
use crate::links::Link;
use crate::state::AppState;
use crate::store::{ProblemFilter, now_ms};
use crate::ticket_delivery::{Problem, TicketsError};
use crate::tickets::{EventError, EventSubmission, Origin};

/// Problems per page of each list.
const PAGE_SIZE: usize = 200;
/// The states in the order the page counts them.
const STATES: [&str; 5] = ["error", "pending", "creating", "open", "resolved"];

/// Why an event's last attempt failed, as the worker recorded it, ready to read.
pub struct LastError {
    /// `rejected`, `unreachable`, `template`, …
    pub kind: String,
    pub message: String,
    /// What Herald asked Jira, e.g. `POST /rest/api/2/issue`, when it got that far.
    pub operation: String,
    /// Jira's HTTP status, when Jira answered.
    pub status: Option<u64>,
    /// Jira's `errorMessages`.
    pub messages: Vec<String>,
    /// Jira's `errors`: field → message.
    pub fields: Vec<(String, String)>,
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn last_error_of(value: &Value) -> LastError {
    let field = |name: &str| {
        value
            .get(name)
            .filter(|v| !v.is_null())
            .map(text_of)
            .unwrap_or_default()
    };
    let Value::Object(_) = value else {
        // Text this version cannot read as the worker's record is shown as it is.
        return LastError {
            kind: String::new(),
            message: text_of(value),
            operation: String::new(),
            status: None,
            messages: Vec::new(),
            fields: Vec::new(),
        };
    };
    LastError {
        kind: field("kind"),
        message: field("message"),
        operation: field("operation"),
        status: value.get("status").and_then(Value::as_u64),
        messages: value
            .get("errorMessages")
            .and_then(Value::as_array)
            .map(|all| all.iter().map(text_of).collect())
            .unwrap_or_default(),
        fields: value
            .get("errors")
            .and_then(Value::as_object)
            .map(|all| all.iter().map(|(k, v)| (k.clone(), text_of(v))).collect())
            .unwrap_or_default(),
    }
}

/// One problem as the lists show it.
pub struct ProblemLine {
    pub dedup_key: String,
    pub badge: Badge,
    /// In the error list: its oldest waiting event is parked until resent or deleted.
    pub parked: bool,
    pub issue_key: Option<String>,
    /// The issue's page, when it is an http(s) link.
    pub issue_url: Option<String>,
    pub summary: String,
    /// Events not yet applied.
    pub pending: i64,
    /// Attempts at the oldest waiting event.
    pub attempts: i32,
    /// When the oldest waiting event is tried next (while it waits for a retry, not when parked).
    pub next_attempt: Option<When>,
    pub last_event: Option<When>,
    pub resolved: Option<When>,
    pub error: Option<LastError>,
    /// Herald has a record of an issue (or of a create under way) that can be forgotten.
    pub has_issue: bool,
}

fn badge_of(state: &str) -> Badge {
    let (class, label) = match state {
        "error" => ("bad", "error"),
        "pending" => ("warn", "pending"),
        "creating" => ("warn", "creating"),
        "open" => ("ok", "open"),
        "resolved" => ("unknown", "resolved"),
        _ => ("unknown", "unknown"),
    };
    Badge { class, label }
}

fn problem_line(p: Problem, now: i64) -> ProblemLine {
    let r = p.row;
    let waiting = r.state == "pending" && r.head_id.is_some();
    ProblemLine {
        badge: badge_of(&r.state),
        parked: r.state == "error",
        issue_url: r
            .issue_url
            .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
        summary: r.summary.unwrap_or_default(),
        pending: r.pending,
        attempts: r.head_attempts.unwrap_or(0),
        next_attempt: r.head_next_attempt_at.filter(|_| waiting).map(|at| When::at(at, now)),
        last_event: r.last_event_at.map(|at| When::at(at, now)),
        resolved: r.resolved_at.map(|at| When::at(at, now)),
        error: p.last_error.as_ref().map(last_error_of),
        has_issue: r.issue_state.is_some(),
        issue_key: r.issue_key,
        dedup_key: r.dedup_key,
    }
}

/// How many problems are in one state.
pub struct StateCount {
    pub state: &'static str,
    pub badge: Badge,
    pub count: i64,
}

#[derive(Deserialize)]
pub struct TicketsQuery {
    /// The last dedup key of the previous page of problems outside the error list.
    after: Option<String>,
    /// The last dedup key of the previous page of the error list.
    errors_after: Option<String>,
}

#[derive(Template)]
#[template(path = "console/tickets.html")]
struct TicketsPage {
    page: Chrome,
    name: String,
    href: String,
    /// The page's own address, for the forms and the pager.
    tickets_href: String,
    enabled: bool,
    /// This node applies events to Jira (`HERALD_TICKETS_DELIVERY`).
    delivers: bool,
    counts: Vec<StateCount>,
    total: i64,
    error_total: i64,
    errors: Vec<ProblemLine>,
    errors_first_page: Option<String>,
    errors_next_page: Option<String>,
    others: Vec<ProblemLine>,
    others_total: i64,
    others_first_page: Option<String>,
    others_next_page: Option<String>,
    page_size: usize,
}

pub async fn tickets(
    State(state): State<AppState>,
    session: Session,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<TicketsQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    let Query(query) = query?;
    let integration = state.integrations.get(&name).await?;
    let now = now_ms();
    let delivery = &state.ticket_delivery;
    let found = delivery.problem_counts(&name).await?;
    let count_of = |s: &str| found.iter().find(|(state, _)| state == s).map_or(0, |(_, n)| *n);
    let counts: Vec<StateCount> = STATES
        .iter()
        .map(|&s| StateCount {
            state: s,
            badge: badge_of(s),
            count: count_of(s),
        })
        .collect();
    let total = found.iter().map(|(_, n)| n).sum();
    let error_total = count_of("error");

    let errors_after = query.errors_after.filter(|a| !a.is_empty());
    let mut errors = delivery
        .problems(&ProblemFilter {
            integration: Some(name.clone()),
            state: Some("error"),
            after: errors_after.clone().map(|k| (name.clone(), k)),
            limit: PAGE_SIZE as i64 + 1,
            ..ProblemFilter::default()
        })
        .await?;
    let more_errors = errors.len() > PAGE_SIZE;
    errors.truncate(PAGE_SIZE);
    let after = query.after.filter(|a| !a.is_empty());
    let (others, others_next) = other_problems(&state, &name, after.clone()).await?;

    let tickets_href = Link::Tickets(&name).path();
    let page_link = |param: &str, key: &str| format!("{tickets_href}?{param}={}", encode_component(key));
    let page = TicketsPage {
        page: Chrome::new(
            &session,
            state.node_id.as_str(),
            "integrations",
            format!("Tickets of {name}"),
        ),
        href: Link::Integration(&name).path(),
        enabled: integration.settings.tickets.as_ref().is_some_and(|t| t.enabled),
        delivers: state.settings.tickets.delivery,
        counts,
        total,
        error_total,
        errors_next_page: more_errors
            .then(|| errors.last().map(|p| page_link("errors_after", &p.row.dedup_key)))
            .flatten(),
        errors_first_page: errors_after.is_some().then(|| tickets_href.clone()),
        errors: errors.into_iter().map(|p| problem_line(p, now)).collect(),
        others_total: total - error_total,
        others_next_page: others_next.map(|key| page_link("after", &key)),
        others_first_page: after.is_some().then(|| tickets_href.clone()),
        others: others.into_iter().map(|p| problem_line(p, now)).collect(),
        page_size: PAGE_SIZE,
        tickets_href,
        name,
    };
    html(&page)
}

/// One page of the problems outside the error list, in dedup key order after `after`, and the key
/// the next page starts after, if more follow.
async fn other_problems(
    state: &AppState,
    name: &str,
    after: Option<String>,
) -> Result<(Vec<Problem>, Option<String>), ConsoleError> {
    let mut shown = state
        .ticket_delivery
        .problems(&ProblemFilter {
            integration: Some(name.to_owned()),
            except_state: Some("error"),
            after: after.map(|k| (name.to_owned(), k)),
            limit: PAGE_SIZE as i64 + 1,
            ..ProblemFilter::default()
        })
        .await?;
    let next = (shown.len() > PAGE_SIZE).then(|| {
        shown.truncate(PAGE_SIZE);
        shown.last().map(|p| p.row.dedup_key.clone())
    });
    Ok((shown, next.flatten()))
}

/// A form about one problem: its dedup key, as a field.
#[derive(Deserialize)]
pub struct ProblemForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
    /// Delete: also forget Herald's record of the issue.
    #[serde(default)]
    forget: Option<String>,
}

crate::console::session::with_csrf!(ProblemForm);

impl ProblemForm {
    fn key(&self) -> Result<&str, ConsoleError> {
        if self.key.is_empty() {
            Err(ConsoleError::BadRequest(
                "The form names no problem (its dedup key is missing).".to_owned(),
            ))
        } else {
            Ok(&self.key)
        }
    }
}

/// A problem that is gone, or no longer in the error list, since the page was shown is said in the
/// notice rather than on an error page: another admin, or the worker, got there first.
fn stale(e: TicketsError) -> Result<String, ConsoleError> {
    match e {
        TicketsError::NotFound { dedup_key, .. } => Ok(format!(
            "There is no problem “{dedup_key}” any more: it was deleted, or its issue forgotten, meanwhile."
        )),
        TicketsError::NothingToResend { dedup_key, .. } => Ok(format!(
            "“{dedup_key}” has no event in the error list any more: it was resent or deleted meanwhile."
        )),
        other => Err(other.into()),
    }
}

fn events(n: u64) -> String {
    if n == 1 {
        "1 event".to_owned()
    } else {
        format!("{n} events")
    }
}

pub async fn resend_problem(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, form }: Change<ProblemForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    state.integrations.get(&name).await?;
    let key = form.key()?;
    let message = match state.ticket_delivery.resend(&name, key).await {
        Ok(n) => {
            tracing::info!(integration = %name, dedup_key = %key, by = %session.username, "parked ticket event resent");
            format!(
                "“{key}”: {} queued again; Herald sends {} to Jira now.",
                events(n),
                if n == 1 { "it" } else { "them" }
            )
        }
        Err(e) => stale(e)?,
    };
    Ok(session.done(&state, &Link::Tickets(&name).path(), message).await)
}

pub async fn resend_all_problems(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    state.integrations.get(&name).await?;
    let n = state.ticket_delivery.resend_all(Some(&name)).await?;
    let message = if n == 0 {
        "The error list is empty: nothing to resend.".to_owned()
    } else {
        format!(
            "{} from the error list queued again; Herald applies them to Jira now.",
            events(n)
        )
    };
    tracing::info!(integration = %name, count = n, by = %session.username, "parked ticket events resent");
    Ok(session.done(&state, &Link::Tickets(&name).path(), message).await)
}

pub async fn delete_problem(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, form }: Change<ProblemForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    state.integrations.get(&name).await?;
    let key = form.key()?;
    let forget = form.forget.as_deref().is_some_and(|f| !f.is_empty() && f != "0");
    let message = match state.ticket_delivery.delete(&name, key, forget).await {
        Ok(deleted) => {
            tracing::info!(integration = %name, dedup_key = %key, events = deleted.events,
                forgotten = deleted.forgotten, by = %session.username, "ticket events deleted");
            const FORGOTTEN: &str = "Herald forgot its issue: the problem's next event searches Jira for it, and creates one if none is found.";
            match (deleted.events, deleted.forgotten) {
                (0, false) => format!("“{key}”: no event was waiting; nothing was deleted."),
                (0, true) => format!("“{key}”: {FORGOTTEN}"),
                (n, false) => format!("“{key}”: {} deleted.", events(n)),
                (n, true) => format!("“{key}”: {} deleted. {FORGOTTEN}", events(n)),
            }
        }
        Err(e) => stale(e)?,
    };
    Ok(session.done(&state, &Link::Tickets(&name).path(), message).await)
}

/// The test event: a problem of its own, firing, labelled as coming from the console.
fn test_event(name: &str, user: &str, now_ms: i64) -> Result<crate::tickets::Event, ConsoleError> {
    let submission: EventSubmission = serde_json::from_value(json!({
        "integration": name,
        "dedup_key": format!("herald-test-{}", now_ms / 1000),
        "status": "firing",
        "summary": "Test event from Herald's console",
        "description": format!(
            "{user} sent this test event from Herald's console to check that events for the integration \
             {name} become Jira issues. Nothing else is needed: resolve or delete this issue."
        ),
        "labels": {"source": "herald-console"},
    }))
    .map_err(|e| {
        tracing::error!(error = %e, "console: the test event does not read as an event");
        ConsoleError::Internal
    })?;
    Ok(submission.validate()?)
}

pub async fn send_test_event(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    state.integrations.get(&name).await?;
    let event = test_event(&name, session.username.as_str(), now_ms())?;
    let dedup_key = event.dedup_key.clone();
    let origin = Origin {
        user: session.username.to_string(),
        idempotency_key: None,
    };
    let message = match state.tickets.submit(vec![event], &origin).await {
        Ok(accepted) => {
            let id = accepted.ids.first().cloned().unwrap_or_default();
            tracing::info!(integration = %name, event = %id, by = %session.username, "test ticket event sent");
            let when = if state.settings.tickets.delivery {
                "its issue appears in Jira shortly"
            } else {
                "its issue appears in Jira once a node with ticket delivery on (HERALD_TICKETS_DELIVERY) applies it"
            };
            format!("Test event {id} accepted as problem “{dedup_key}”: {when}, and in the list below.")
        }
        Err(e @ EventError::TicketsDisabled(_)) => format!("{} No test event was sent.", sentence(&e.to_string())),
        Err(e) => return Err(e.into()),
    };
    Ok(session.done(&state, &Link::Tickets(&name).path(), message).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jiras_answer_is_read_field_by_field() {
        let e = last_error_of(&json!({"kind": "rejected", "message": "Jira refused the request",
            "operation": "POST /rest/api/2/issue", "status": 400, "errorMessages": ["Bad"],
            "errors": {"customfield_10010": "Team is not valid.", "priority": 3}}));
        assert_eq!((e.kind.as_str(), e.status), ("rejected", Some(400)));
        assert_eq!(e.messages, ["Bad"]);
        assert_eq!(
            e.fields,
            [
                ("customfield_10010".to_owned(), "Team is not valid.".to_owned()),
                ("priority".to_owned(), "3".to_owned())
            ]
        );
        let plain = last_error_of(&json!({"kind": "template", "message": "undefined value", "status": null}));
        assert_eq!((plain.status, plain.operation.as_str()), (None, ""));
        assert_eq!(last_error_of(&json!("old text")).message, "old text");
    }

    #[test]
    fn the_test_event_is_valid_and_names_its_source() {
        let event = test_event("jira prod", "admin", 1_700_000_000_123).unwrap();
        assert_eq!(event.dedup_key, "herald-test-1700000000");
        assert_eq!(event.labels["source"], "herald-console");
        assert_eq!(event.summary, "Test event from Herald's console");
    }
}
