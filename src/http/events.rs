//! `POST /api/v1/events` (Herald's own event) and `POST /api/v1/alertmanager/{integration}`
//! (Alertmanager's webhook payload, unchanged): the events role or admin. Both answer 202 only once
//! every event of the request is committed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::RequireEventSender;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiQuery};
use super::submission::idempotency_key;
use crate::integrations::IntegrationName;
use crate::state::AppState;
use crate::tickets::{Accepted, Event, EventSubmission, Grouping, Notification, Origin};

/// The largest Alertmanager notification accepted. Alertmanager sends every alert of a group in each
/// notification (`max_alerts` bounds them), and cannot split one that is refused.
pub const ALERTMANAGER_BODY_LIMIT: usize = 8 << 20;

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventsAccepted {
    /// How many events the request became (and are stored).
    accepted: usize,
    /// Their ids (UUIDv7), in the request's order.
    ids: Vec<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerQuery {
    /// `group` (the default): one event, and one issue, per alert group, keyed by its `groupKey`.
    /// `alert`: one per alert, keyed by its `fingerprint`.
    #[serde(default)]
    #[param(inline)]
    per: Grouping,
}

async fn accept(state: &AppState, user: &str, headers: &HeaderMap, events: Vec<Event>) -> Result<Response, ApiError> {
    let key = idempotency_key(headers)?;
    if !state.cluster.accepts_work() {
        return Err(ApiError::unavailable(format!(
            "node `{}` is draining and takes no new events; send them to another node",
            state.node_id
        )));
    }
    let origin = Origin {
        user: user.to_owned(),
        idempotency_key: key,
    };
    let Accepted { ids, created } = state.tickets.submit(events, &origin).await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(EventsAccepted {
            accepted: ids.len(),
            ids,
        }),
    )
        .into_response();
    if !created {
        response
            .headers_mut()
            .insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Posts one event (for scanners, CI and scripts): a problem, named by its `dedup_key`, is `firing`
/// or `resolved`. Answered 202 once the event is stored; Herald then opens, comments, resolves or
/// reopens the problem's Jira issue. With an `Idempotency-Key` header, a retried post returns the
/// first one's ids and stores nothing.
#[utoipa::path(
    post, path = "/api/v1/events", tag = "events", security(("basic" = []), ("bearer" = [])),
    request_body = EventSubmission,
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$",
             description = "Makes retries safe: 1 to 255 visible ASCII characters")),
    responses(
        (status = 202, body = EventsAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, description = "No such integration", body = Problem),
        (status = 409, description = "The integration does not have tickets enabled (`tickets.enabled`), or the \
                                      Idempotency-Key was used for a different request", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 503, body = Problem)
    )
)]
pub async fn post_event(
    State(state): State<AppState>,
    RequireEventSender(who): RequireEventSender,
    headers: HeaderMap,
    ApiJson(submission): ApiJson<EventSubmission>,
) -> Result<Response, ApiError> {
    let event = submission.validate()?;
    accept(&state, who.username.as_str(), &headers, vec![event]).await
}

/// Alertmanager's webhook receiver: point a `webhook_configs` entry here, with
/// `http_config.basic_auth` of a user with the events role. The payload (version 4) is taken as
/// Alertmanager sends it. One event per notification (`?per=group`, the default: one Jira issue per
/// alert group) or one per alert (`?per=alert`). Answered 202 once every event is stored.
#[utoipa::path(
    post, path = "/api/v1/alertmanager/{integration}", tag = "events", security(("basic" = []), ("bearer" = [])),
    request_body = Notification,
    params(
        ("integration" = String, Path, description = "The integration whose project gets the issues",
         pattern = r"^(?!\.\.?$)[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$",
         min_length = 1, max_length = 128),
        AlertmanagerQuery,
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$",
         description = "Makes retries safe: 1 to 255 visible ASCII characters")
    ),
    responses(
        (status = 202, body = EventsAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, description = "No such integration", body = Problem),
        (status = 409, description = "The integration does not have tickets enabled (`tickets.enabled`), or the \
                                      Idempotency-Key was used for a different request", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 503, body = Problem)
    )
)]
pub async fn post_alertmanager(
    State(state): State<AppState>,
    RequireEventSender(who): RequireEventSender,
    Path(integration): Path<String>,
    ApiQuery(query): ApiQuery<AlertmanagerQuery>,
    headers: HeaderMap,
    ApiJson(notification): ApiJson<Notification>,
) -> Result<Response, ApiError> {
    // A name that cannot be an integration's names none.
    let name = IntegrationName::try_from(integration.as_str())
        .map_err(|_| ApiError::not_found(format!("no integration named `{integration}`")))?;
    let events = notification.into_events(&name, query.per)?;
    accept(&state, who.username.as_str(), &headers, events).await
}
