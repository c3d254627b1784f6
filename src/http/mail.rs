//! `/api/v1/mail`: submission (admin or the `mail` role), and the queue's admin operations.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{RequireAdmin, RequireMailSender};
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiQuery};
use super::paging::{Cursor, PageLimit};
use crate::client_addr::ClientAddr;
use crate::mail::{IdempotencyKey, MailError, MailSubmission, Origin, Protocol, recipients};
use crate::state::AppState;
use crate::store::{MailFilter, MailSummary};
use crate::timefmt::rfc3339_ms;

/// The documented body of `POST /api/v1/mail`: a `MailSubmission` with a recipient and a body.
pub struct MailBody;

impl utoipa::PartialSchema for MailBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::Type;
        super::openapi::requiring_one_of_each(
            "MailSubmission",
            &[
                &[("to", Type::Array), ("cc", Type::Array), ("bcc", Type::Array)],
                &[("text", Type::String), ("html", Type::String)],
            ],
        )
    }
}

impl utoipa::ToSchema for MailBody {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        schemas.push((
            "MailSubmission".to_owned(),
            <MailSubmission as utoipa::PartialSchema>::schema(),
        ));
        <MailSubmission as utoipa::ToSchema>::schemas(schemas);
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The message id (a UUIDv7).
    id: String,
    /// Always `queued`: the message is stored and will be delivered.
    status: &'static str,
}

/// Submits a message. Answered 202 only once the message is durably stored. With an
/// `Idempotency-Key` header, a retried submission returns the first one's id and queues nothing.
#[utoipa::path(
    post, path = "/api/v1/mail", tag = "mail", security(("basic" = []), ("bearer" = [])),
    request_body = MailBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$",
             description = "Makes retries safe: 1 to 255 visible ASCII characters")),
    responses(
        (status = 202, body = Submitted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, description = "Idempotency-Key reused with a different message", body = Problem),
        (status = 413, body = Problem), (status = 503, body = Problem)
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    RequireMailSender(sender): RequireMailSender,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    ApiJson(submission): ApiJson<MailSubmission>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request("invalid_header", "the Idempotency-Key header must be visible ASCII")
            })?;
            Some(IdempotencyKey::try_from(text).map_err(|e| ApiError::bad_request("invalid_header", e))?)
        }
    };
    if !state.cluster.accepts_work() {
        return Err(ApiError::unavailable(format!(
            "node `{}` is draining and takes no new mail; send it to another node",
            state.node_id
        )));
    }
    let mail = submission.validate(&state.settings.mail.from)?;
    let origin = Origin {
        protocol: Protocol::Http,
        user: sender.username.to_string(),
        client: Some(client),
    };
    let accepted = state.mail.submit(&mail, &origin, key.as_ref()).await?;
    let location = format!("/api/v1/mail/{}", accepted.id);
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Submitted {
            id: accepted.id,
            status: "queued",
        }),
    )
        .into_response();
    if !accepted.created {
        response
            .headers_mut()
            .insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A message in the queue or the error queue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueuedMail {
    id: String,
    node_id: String,
    /// `queued`, `sending` or `error`.
    state: String,
    from: String,
    recipients: Vec<String>,
    subject: String,
    size_bytes: i64,
    submitted_by: String,
    attempts: i32,
    created_at: String,
    next_attempt_at: Option<String>,
    /// The last SMTP reply or error.
    last_error: Option<String>,
}

impl From<MailSummary> for QueuedMail {
    fn from(m: MailSummary) -> Self {
        QueuedMail {
            recipients: recipients::parse(&m.recipients)
                .map(|all| all.into_iter().map(|r| r.address).collect())
                .unwrap_or_default(),
            next_attempt_at: (m.state == "queued").then(|| rfc3339_ms(m.next_attempt_at)),
            id: m.id,
            node_id: m.node_id,
            state: m.state,
            from: m.envelope_from,
            subject: m.subject,
            size_bytes: m.size_bytes,
            submitted_by: m.submitted_by,
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
