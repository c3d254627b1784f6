//! `/api/v1/alerts`: the health alerts' settings and what is firing; a test alert on demand.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::auth::{RequireAdmin, RequireMonitor};
use super::error::{ApiError, Problem};
use crate::state::AppState;
use crate::timefmt::rfc3339_ms;

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertsOverview {
    /// Alerts are on when they have recipients (`HERALD_ALERT_EMAILS`).
    enabled: bool,
    recipients: Vec<String>,
    /// The conditions whose last mailed state is firing, oldest first.
    firing: Vec<Firing>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Firing {
    /// `integration:<name>`, `node:<id>`, `error-queue` or `queue-age`.
    key: String,
    summary: String,
    /// When the condition began to hold (RFC 3339, UTC).
    since: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestAlert {
    /// The test mail's id in the mail queue (`GET /api/v1/mail/{id}`).
    id: String,
    recipients: Vec<String>,
}

/// Whether alerts are on, to whom they go, and what is firing now (as last mailed).
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "alerts", security(("basic" = []), ("bearer" = [])),
    responses((status = 200, body = AlertsOverview), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn overview(State(state): State<AppState>, _who: RequireMonitor) -> Result<Json<AlertsOverview>, ApiError> {
    let firing = state
        .alerts
        .firing()
        .await?
        .into_iter()
        .map(|f| Firing {
            key: f.key,
            summary: f.summary,
            since: rfc3339_ms(f.since),
        })
        .collect();
    Ok(Json(AlertsOverview {
        enabled: state.alerts.enabled(),
        recipients: state.alerts.recipients().to_vec(),
        firing,
    }))
}

/// Queues a test alert to the recipients, through the mail queue like any alert: 202 with its id.
#[utoipa::path(
    post, path = "/api/v1/alerts/test", tag = "alerts", security(("basic" = []), ("bearer" = [])),
    responses(
        (status = 202, body = TestAlert), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "Alerts are off (no HERALD_ALERT_EMAILS)", body = Problem),
        (status = 503, body = Problem)
    )
)]
pub async fn send_test(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
) -> Result<(StatusCode, Json<TestAlert>), ApiError> {
    let id = state.alerts.send_test(admin.username.as_str()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestAlert {
            id,
            recipients: state.alerts.recipients().to_vec(),
        }),
    ))
}
