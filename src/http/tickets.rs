//! `/api/v1/tickets`: each problem (integration and dedup key) with its Jira issue and the events it
//! still waits for; resend a parked event, delete what waits. Admin only.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::RequireAdmin;
use super::error::{ApiError, Problem};
use super::json::ApiQuery;
use super::paging::{PageLimit, ProblemCursor};
use crate::state::AppState;
use crate::store::{ProblemFilter, TicketEventRow};
use crate::ticket_delivery::{Problem as TicketProblem, stored_error};
use crate::timefmt::rfc3339_ms;

/// A problem and its issue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ticket {
    integration: String,
    dedup_key: String,
    /// `error`: its oldest waiting event is parked in the error list (resend or delete it);
    /// `pending`: events wait to be applied; otherwise its issue's state: `open`, `resolved`, or
    /// `creating` (a create was sent and its answer not yet recorded).
    #[schema(pattern = "^(error|pending|open|resolved|creating)$")]
    state: String,
    /// The Jira issue (`SEC-12`), once Herald knows it.
    issue_key: Option<String>,
    /// The issue's page.
    issue_url: Option<String>,
    /// The summary the issue was created with.
    summary: Option<String>,
    /// When Herald last recorded the issue resolved.
    resolved_at: Option<String>,
    /// The last event applied to the issue, and when.
    last_event_id: Option<String>,
    last_event_at: Option<String>,
    /// Events not yet applied.
    pending_events: i64,
    /// Attempts at the oldest waiting event.
    attempts: i32,
    /// When the oldest waiting event is tried next (while it is queued).
    next_attempt_at: Option<String>,
    /// Why its last attempt failed: `kind` and `message`, and when Jira answered, `operation`,
    /// `status` and Jira's own `errorMessages` and `errors`.
    #[schema(value_type = Option<Object>)]
    last_error: Option<Value>,
}

impl From<TicketProblem> for Ticket {
    fn from(p: TicketProblem) -> Self {
        let r = p.row;
        let queued = r.head_id.is_some() && r.state == "pending";
        Ticket {
            next_attempt_at: r.head_next_attempt_at.filter(|_| queued).map(rfc3339_ms),
            integration: r.integration,
            dedup_key: r.dedup_key,
            state: r.state,
            issue_key: r.issue_key,
            issue_url: r.issue_url,
            summary: r.summary,
            resolved_at: r.resolved_at.map(rfc3339_ms),
            last_event_id: r.last_event_id,
            last_event_at: r.last_event_at.map(rfc3339_ms),
            pending_events: r.pending,
            attempts: r.head_attempts.unwrap_or(0),
            last_error: p.last_error,
        }
    }
}

/// An event of a problem.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketEvent {
    id: String,
    /// `firing` or `resolved`.
    status: String,
    /// `alertmanager` or `api`.
    source: String,
    /// `queued`, `sending`, `error` (parked) or `done` (applied).
    #[schema(pattern = "^(queued|sending|error|done)$")]
    state: String,
    attempts: i32,
    submitted_by: String,
    created_at: String,
    updated_at: String,
    #[schema(value_type = Option<Object>)]
    last_error: Option<Value>,
}

impl From<TicketEventRow> for TicketEvent {
    fn from(e: TicketEventRow) -> Self {
        TicketEvent {
            last_error: e.last_error.as_deref().map(stored_error),
            id: e.id,
            status: e.status,
            source: e.source,
            state: e.state,
            attempts: e.attempts,
            submitted_by: e.submitted_by,
            created_at: rfc3339_ms(e.created_at),
            updated_at: rfc3339_ms(e.updated_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketPage {
    items: Vec<Ticket>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketDetail {
    ticket: Ticket,
    /// Its events, oldest first: those still waiting and the last applied ones.
    events: Vec<TicketEvent>,
}

/// Which problems to list by state.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketState {
    Error,
    Pending,
    Open,
    Resolved,
    Creating,
}

impl TicketState {
    fn as_str(&self) -> &'static str {
        match self {
            TicketState::Error => "error",
            TicketState::Pending => "pending",
            TicketState::Open => "open",
            TicketState::Resolved => "resolved",
            TicketState::Creating => "creating",
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    /// Only this integration's problems.
    integration: Option<String>,
    /// Only problems in this state (`error` is the error list).
    #[param(inline)]
    state: Option<TicketState>,
    #[serde(default)]
    #[param(inline)]
    limit: PageLimit<100, 1000>,
    #[param(inline)]
    after: Option<ProblemCursor>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResendQuery {
    /// Only this integration's parked events; every integration's when omitted.
    integration: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Also forget the problem's issue: its next event searches Jira for it and creates a new one
    /// when none is found.
    #[serde(default)]
    forget: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Resent {
    /// How many parked events were queued again.
    count: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketDeleted {
    /// How many waiting or parked events were deleted.
    events: u64,
    /// Whether Herald's record of the issue was forgotten.
    forgotten: bool,
}

/// Problems with their Jira issue, their waiting events and their last error, by integration and
/// dedup key.
#[utoipa::path(
    get, path = "/api/v1/tickets", tag = "tickets", security(("basic" = []), ("bearer" = [])), params(TicketQuery),
    responses((status = 200, body = TicketPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem))
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    ApiQuery(query): ApiQuery<TicketQuery>,
) -> Result<Json<TicketPage>, ApiError> {
    let limit = query.limit.get();
    let filter = ProblemFilter {
        integration: query.integration.filter(|i| !i.is_empty()),
        state: query.state.as_ref().map(TicketState::as_str),
        after: query.after.map(|c| (c.integration, c.dedup_key)),
        limit,
        ..ProblemFilter::default()
    };
    let items: Vec<Ticket> = state
        .ticket_delivery
        .problems(&filter)
        .await?
        .into_iter()
        .map(Ticket::from)
        .collect();
    let next = (items.len() as i64 == limit)
        .then(|| {
            items
                .last()
                .map(|t| ProblemCursor::encode(&t.integration, &t.dedup_key))
        })
        .flatten();
    Ok(Json(TicketPage { items, next }))
}

/// One problem with its issue and its events (waiting ones and the last applied ones).
#[utoipa::path(
    get, path = "/api/v1/tickets/{integration}/{dedup_key}", tag = "tickets", security(("basic" = []), ("bearer" = [])),
    params(("integration" = String, Path), ("dedup_key" = String, Path, description = "URL-encoded (`/` as `%2F`)")),
    responses((status = 200, body = TicketDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem))
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path((integration, dedup_key)): Path<(String, String)>,
) -> Result<Json<TicketDetail>, ApiError> {
    let (problem, events) = state.ticket_delivery.problem(&integration, &dedup_key, 100).await?;
    Ok(Json(TicketDetail {
        ticket: problem.into(),
        events: events.into_iter().map(TicketEvent::from).collect(),
    }))
}

/// Queues a problem's parked event again, due now (after fixing what Jira refused).
#[utoipa::path(
    post, path = "/api/v1/tickets/{integration}/{dedup_key}/resend", tag = "tickets",
    security(("basic" = []), ("bearer" = [])),
    params(("integration" = String, Path), ("dedup_key" = String, Path, description = "URL-encoded (`/` as `%2F`)")),
    responses((status = 200, body = Resent), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, description = "Nothing of it is parked", body = Problem),
              (status = 503, body = Problem))
)]
pub async fn resend_ticket(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path((integration, dedup_key)): Path<(String, String)>,
) -> Result<Json<Resent>, ApiError> {
    let count = state.ticket_delivery.resend(&integration, &dedup_key).await?;
    tracing::info!(%integration, %dedup_key, by = %admin.username, "parked ticket event resent");
    Ok(Json(Resent { count }))
}

/// Queues every parked event again (of one integration, or of all), due now.
#[utoipa::path(
    post, path = "/api/v1/tickets/resend", tag = "tickets", security(("basic" = []), ("bearer" = [])),
    params(ResendQuery),
    responses((status = 200, body = Resent), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem))
)]
pub async fn resend_all_tickets(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiQuery(query): ApiQuery<ResendQuery>,
) -> Result<Json<Resent>, ApiError> {
    let integration = query.integration.as_deref().filter(|i| !i.is_empty());
    let count = state.ticket_delivery.resend_all(integration).await?;
    tracing::info!(count, integration = integration.unwrap_or("every integration"), by = %admin.username,
        "parked ticket events resent");
    Ok(Json(Resent { count }))
}

/// Deletes a problem's waiting and parked events (one being applied right now finishes); with
/// `forget=true`, also Herald's record of its issue.
#[utoipa::path(
    delete, path = "/api/v1/tickets/{integration}/{dedup_key}", tag = "tickets", security(("basic" = []), ("bearer" = [])),
    params(("integration" = String, Path), ("dedup_key" = String, Path, description = "URL-encoded (`/` as `%2F`)"),
           DeleteQuery),
    responses((status = 200, body = TicketDeleted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem))
)]
pub async fn delete_ticket(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path((integration, dedup_key)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<Json<TicketDeleted>, ApiError> {
    let deleted = state
        .ticket_delivery
        .delete(&integration, &dedup_key, query.forget)
        .await?;
    tracing::info!(%integration, %dedup_key, events = deleted.events, forgotten = deleted.forgotten,
        by = %admin.username, "ticket events deleted");
    Ok(Json(TicketDeleted {
        events: deleted.events,
        forgotten: deleted.forgotten,
    }))
}
