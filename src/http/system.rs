//! `/livez`, `/readyz`, `/metrics`, `/api/v1/whoami`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::{Authenticated, RequireMonitor};
use super::error::{ApiError, Problem};
use super::negotiate::asks_for;
use crate::auth::{AuthMethod, Role};
use crate::metrics::Exposition;
use crate::state::AppState;
use crate::store::StoreError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    status: &'static str,
    /// The database's state, when checked: `ok`, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    /// This node's cluster state, when it is not serving (`passivating`, `passive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

/// The process is up. No authentication; never touches the database.
#[utoipa::path(get, path = "/livez", tag = "system", responses((status = 200, body = Health)))]
pub async fn livez() -> Json<Health> {
    Json(Health {
        status: "ok",
        database: None,
        node: None,
    })
}

/// Herald can serve: the database answers. No authentication.
#[utoipa::path(
    get, path = "/readyz", tag = "system",
    responses((status = 200, body = Health), (status = 503, description = "The database is unreachable", body = Health))
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let checked = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let (status, health) = match checked {
        Ok(Ok(())) => (
            StatusCode::OK,
            Health {
                status: "ready",
                database: Some("ok".to_owned()),
                node: None,
            },
        ),
        Ok(Err(e)) => {
            // Anyone may ask: the answer names the kind of fault, the log has the driver's words
            // (host names, user names and server messages are not for anonymous clients).
            tracing::warn!(error = %e, "readiness check: the database is not usable");
            let reason = match e {
                StoreError::Unavailable(_) => "the database is unavailable (see Herald's log)",
                _ => "the database answered with an error (see Herald's log)",
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Health {
                    status: "unavailable",
                    database: Some(reason.to_owned()),
                    node: None,
                },
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                status: "unavailable",
                database: Some("the database did not answer within 2 s".to_owned()),
                node: None,
            },
        ),
    };
    state.metrics.database_up.set(i64::from(status == StatusCode::OK));
    // A draining node tells load balancers to send new work elsewhere.
    if status == StatusCode::OK && !state.cluster.accepts_work() {
        let node_state = state.cluster.state().as_str().to_ascii_lowercase();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "draining",
                database: Some("ok".to_owned()),
                node: Some(node_state),
            }),
        )
            .into_response();
    }
    (status, Json(health)).into_response()
}

/// Prometheus metrics. Admin or monitor. The Prometheus text format (0.0.4), or OpenMetrics 1.0 when
/// `Accept` asks for `application/openmetrics-text` (as Prometheus does).
#[utoipa::path(
    get, path = "/metrics", tag = "system",
    security(("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The metrics, in the format negotiated by `Accept`", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8")
        )),
        (status = 401, body = Problem), (status = 403, body = Problem)
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    _who: RequireMonitor,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Queue figures are read at scrape time, from the live counts (cheap at any queue size).
    if let Ok((size, errors)) = state.mail.counts().await {
        state.metrics.mail_queue_size.set(size);
        state.metrics.mail_error_size.set(errors);
    }
    if let Ok(oldest) = state.mail.oldest_queued().await {
        let age_ms = oldest.map_or(0, |created| (crate::store::now_ms() - created).max(0));
        state.metrics.mail_oldest_queued_seconds.set(age_ms / 1000);
    }
    if let Err(e) = state.tickets.update_metrics().await {
        tracing::warn!(error = %e, "cannot read the ticket event figures for /metrics");
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let exposition = if asks_for(accept, "application/openmetrics-text", "text/plain") {
        Exposition::OpenMetrics
    } else {
        Exposition::Prometheus
    };
    let text = state.metrics.render(exposition).map_err(|e| ApiError::internal(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, exposition.content_type()),
            (header::VARY, "Accept"),
        ],
        text,
    )
        .into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    username: String,
    role: Role,
    /// `password` or `token`.
    authenticated_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<String>,
}

/// Who the credentials belong to. Any signed-in user.
#[utoipa::path(
    get, path = "/api/v1/whoami", tag = "users",
    security(("basic" = []), ("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem))
)]
pub async fn whoami(Authenticated(principal): Authenticated) -> Json<WhoAmI> {
    let (authenticated_by, token_id) = match principal.method {
        AuthMethod::Password => ("password", None),
        AuthMethod::Token { id } => ("token", Some(id)),
    };
    Json(WhoAmI {
        username: principal.username.to_string(),
        role: principal.role,
        authenticated_by,
        token_id,
    })
}
