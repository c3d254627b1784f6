//! `/api/v1/mail`: the queue's admin operations (submission is in `submission.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::RequireAdmin;
use super::error::{ApiError, Problem};
use super::json::ApiQuery;
use super::paging::{Cursor, PageLimit};
use crate::mail::MailError;
use crate::mail::recipients::{self, Recipient};
use crate::state::AppState;
use crate::store::{MailFilter, MailSummary};
use crate::timefmt::rfc3339_ms;

/// A message in the queue or the error queue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueuedMail {
    id: String,
    node_id: String,
    /// `queued`, `sending` or `error`.
    state: String,
    /// The envelope sender (empty for the null sender `<>`).
    from: String,
    /// The envelope recipients.
    recipients: Vec<String>,
    /// Each envelope recipient with its state: `pending` (not delivered yet), `delivered`, or `failed`
    /// (refused for good; the message is in the error queue for it), and the relay's last reply about it.
    recipient_states: Vec<Recipient>,
    subject: String,
    size_bytes: i64,
    /// The user who submitted it (`trusted-network` for SMTP without AUTH; `alerts` or `cli` for mail
    /// Herald wrote itself).
    submitted_by: String,
    /// How it arrived: `http` (`POST /api/v1/mail`), `smtp` (the submission listener) or `internal`
    /// (Herald's alerts, `herald mail send`).
    #[schema(pattern = "^(http|smtp|internal)$")]
    protocol: String,
    /// The submitting client's address (HTTP and SMTP).
    client_addr: Option<String>,
    /// The Message-ID header, without angle brackets.
    message_id: Option<String>,
    attempts: i32,
    created_at: String,
    next_attempt_at: Option<String>,
    /// The last SMTP reply or error.
    last_error: Option<String>,
}

impl From<MailSummary> for QueuedMail {
    fn from(m: MailSummary) -> Self {
        let recipient_states = recipients::parse(&m.recipients).unwrap_or_default();
        QueuedMail {
            recipients: recipient_states.iter().map(|r| r.address.clone()).collect(),
            recipient_states,
            next_attempt_at: (m.state == "queued").then(|| rfc3339_ms(m.next_attempt_at)),
            id: m.id,
            node_id: m.node_id,
            state: m.state,
            from: m.envelope_from,
            subject: m.subject,
            size_bytes: m.size_bytes,
            submitted_by: m.submitted_by,
            protocol: m.protocol,
            client_addr: m.client_addr,
            message_id: m.message_id,
            attempts: m.attempts,
            created_at: rfc3339_ms(m.created_at),
            last_error: m.last_error,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MailPage {
    items: Vec<QueuedMail>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A page of the queue holds 100 messages unless `limit` says otherwise, and at most 1000.
type MailPageLimit = PageLimit<100, 1000>;

/// Which of the queue's states to list.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueState {
    Queued,
    Sending,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// Only this node's messages.
    node: Option<String>,
    /// `queued` or `sending`; both when omitted.
    #[param(inline)]
    state: Option<QueueState>,
    #[serde(default)]
    #[param(inline)]
    limit: MailPageLimit,
    #[param(inline)]
    after: Option<Cursor>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ErrorQuery {
    /// Only this node's messages.
    node: Option<String>,
    #[serde(default)]
    #[param(inline)]
    limit: MailPageLimit,
    #[param(inline)]
    after: Option<Cursor>,
}

async fn page(state: &AppState, filter: MailFilter) -> Result<Json<MailPage>, ApiError> {
    let limit = filter.limit;
    let items: Vec<QueuedMail> = state
        .mail
        .list(&filter)
        .await?
        .into_iter()
        .map(QueuedMail::from)
        .collect();
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.clone()))
        .flatten();
    Ok(Json(MailPage { items, next }))
}

/// Messages waiting or being sent, oldest first.
#[utoipa::path(
    get, path = "/api/v1/mail/queue", tag = "mail", security(("basic" = []), ("bearer" = [])), params(QueueQuery),
    responses((status = 200, body = MailPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn list_queue(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<MailPage>, ApiError> {
    let states = match query.state {
        None => vec!["queued", "sending"],
        Some(QueueState::Queued) => vec!["queued"],
        Some(QueueState::Sending) => vec!["sending"],
    };
    let filter = MailFilter {
        states,
        node_id: query.node,
        after: query.after.map(Cursor::into_inner),
        limit: query.limit.get(),
    };
    page(&state, filter).await
}

/// The error queue: messages that failed permanently or too often, with the last SMTP reply.
#[utoipa::path(
    get, path = "/api/v1/mail/errors", tag = "mail", security(("basic" = []), ("bearer" = [])), params(ErrorQuery),
    responses((status = 200, body = MailPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn list_errors(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    ApiQuery(query): ApiQuery<ErrorQuery>,
) -> Result<Json<MailPage>, ApiError> {
    let filter = MailFilter {
        states: vec!["error"],
        node_id: query.node,
        after: query.after.map(Cursor::into_inner),
        limit: query.limit.get(),
    };
    page(&state, filter).await
}

/// One message that is still queued, being sent, or in the error queue.
#[utoipa::path(
    get, path = "/api/v1/mail/{id}", tag = "mail", security(("basic" = []), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = QueuedMail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, description = "Delivered, deleted, or never accepted", body = Problem))
)]
pub async fn get_mail(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(id): Path<String>,
) -> Result<Json<QueuedMail>, ApiError> {
    state.mail.get(&id).await.map(|m| Json(m.into())).map_err(|e| match e {
        MailError::NotFound(_) => ApiError::not_found(format!(
            "no message `{id}` in the queue (delivered, deleted, or unknown)"
        )),
        other => other.into(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Affected {
    /// How many messages the operation changed.
    count: u64,
}

/// Deletes a queued message that is not being sent at this moment.
#[utoipa::path(
    delete, path = "/api/v1/mail/queue/{id}", tag = "mail", security(("basic" = []), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn delete_queued(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.mail.delete_queued(&id).await?;
    tracing::info!(id = %id, by = %admin.username, "queued mail deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Puts one errored message back in the queue of the answering node, due now.
#[utoipa::path(
    post, path = "/api/v1/mail/errors/{id}/resend", tag = "mail", security(("basic" = []), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Affected), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn resend_one(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(id): Path<String>,
) -> Result<Json<Affected>, ApiError> {
    let count = state.mail.resend(Some(&id)).await?;
    tracing::info!(id = %id, by = %admin.username, "errored mail resent");
    Ok(Json(Affected { count }))
}

/// Puts every errored message back in the queue of the answering node, due now.
#[utoipa::path(
    post, path = "/api/v1/mail/errors/resend", tag = "mail", security(("basic" = []), ("bearer" = [])),
    responses((status = 200, body = Affected), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn resend_all(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
) -> Result<Json<Affected>, ApiError> {
    let count = state.mail.resend(None).await?;
    tracing::info!(count, by = %admin.username, "all errored mail resent");
    Ok(Json(Affected { count }))
}

/// Deletes one errored message.
#[utoipa::path(
    delete, path = "/api/v1/mail/errors/{id}", tag = "mail", security(("basic" = []), ("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn delete_error(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.mail.delete_errors(Some(&id)).await?;
    tracing::info!(id = %id, by = %admin.username, "errored mail deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes every errored message.
#[utoipa::path(
    delete, path = "/api/v1/mail/errors", tag = "mail", security(("basic" = []), ("bearer" = [])),
    responses((status = 200, body = Affected), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn delete_all_errors(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
) -> Result<Json<Affected>, ApiError> {
    let count = state.mail.delete_errors(None).await?;
    tracing::info!(count, by = %admin.username, "all errored mail deleted");
    Ok(Json(Affected { count }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlushQuery {
    /// Only this node's messages; every node's when omitted.
    node: Option<String>,
}

/// Makes every queued message due now, skipping the rest of its backoff: in a cluster, every node's
/// (each node sends its own within 5 seconds), or one node's with `node`.
#[utoipa::path(
    post, path = "/api/v1/mail/flush", tag = "mail", security(("basic" = []), ("bearer" = [])), params(FlushQuery),
    responses((status = 200, body = Affected), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn flush(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiQuery(query): ApiQuery<FlushQuery>,
) -> Result<Json<Affected>, ApiError> {
    let node = query.node.as_deref().filter(|n| !n.is_empty());
    let count = state.mail.flush(node).await?;
    tracing::info!(count, node = node.unwrap_or("every node"), by = %admin.username, "mail queue flushed");
    Ok(Json(Affected { count }))
}
