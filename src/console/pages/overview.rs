//! The overview: integration health, the mail queue on every node, the last sweep and firing
//! alerts at a glance; and the test alert its button sends.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::integrations::StatusFilter;
use super::{IntegrationRow, NodeFigures, integration_rows, node_figures};
use crate::alerts::AlertError;
use crate::console::error::ConsoleError;
use crate::console::session::{Change, CsrfForm, Session};
use crate::console::view::{Chrome, When, html};
use crate::state::AppState;
use crate::store::now_ms;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    page: Chrome,
    total: usize,
    healthy: usize,
    faulty: usize,
    unchecked: usize,
    problems: Vec<IntegrationRow>,
    nodes: Vec<NodeFigures>,
    clustered: bool,
    queue_total: i64,
    errors_total: i64,
    oldest: Option<When>,
    last_sweep: Option<(When, String)>,
    sweep_every: String,
    alerts_enabled: bool,
    alert_recipients: String,
    generated_password: bool,
    firing: Vec<(String, When)>,
    relays: Vec<super::RelayLine>,
    /// How many faulty integrations the overview lists at most; the rest are a link away.
    problems_shown: usize,
}

/// When Jira itself is down every integration is faulty: the overview lists the first few.
const OVERVIEW_PROBLEMS: usize = 20;

pub async fn overview(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let now = now_ms();
    let rows = integration_rows(&state, now).await?;
    let nodes = node_figures(&state, now).await?;
    let count = |label: &str| rows.iter().filter(|r| r.badge.label == label).count();
    let oldest_at = nodes.iter().filter_map(|n| n.oldest_at).min();
    let last_sweep = state.integrations.last_sweep().map(|(at, summary)| {
        (
            When::at(at, now),
            format!(
                "{} checked: {} healthy, {} faulty{}",
                summary.checked,
                summary.healthy,
                summary.faulty,
                if summary.unreadable > 0 {
                    format!(", {} unreadable", summary.unreadable)
                } else {
                    String::new()
                }
            ),
        )
    });
    let firing = state
        .alerts
        .firing()
        .await?
        .into_iter()
        .map(|alert| (alert.summary, When::at(alert.since, now)))
        .collect();
    let page = OverviewPage {
        page: Chrome::new(&session, state.node_id.as_str(), "overview", "Overview"),
        alerts_enabled: state.alerts.enabled(),
        generated_password: super::account::uses_generated_password(&state, &session),
        alert_recipients: state.alerts.recipients().join(", "),
        firing,
        relays: super::relay_lines(&state, now).await?,
        total: rows.len(),
        healthy: count("Healthy"),
        faulty: count("Faulty"),
        unchecked: count("Not checked"),
        queue_total: nodes.iter().map(|n| n.queue).sum(),
        errors_total: nodes.iter().map(|n| n.errors).sum(),
        oldest: oldest_at.map(|at| When::at(at, now)),
        problems: rows
            .into_iter()
            .filter(|r| StatusFilter::Faulty.admits(r))
            .take(OVERVIEW_PROBLEMS)
            .collect(),
        clustered: state.cluster.enabled(),
        nodes,
        last_sweep,
        sweep_every: humantime::format_duration(state.settings.checks.interval).to_string(),
        problems_shown: OVERVIEW_PROBLEMS,
    };
    html(&page)
}

/// Queues a test alert to the recipients and says where to watch it.
pub async fn test_alert(
    State(state): State<AppState>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let id = match state.alerts.send_test(session.username.as_str()).await {
        Ok(id) => id,
        // The page offers no test button while alerts are off: a post without one is a bad request.
        Err(AlertError::Off) => {
            return Err(ConsoleError::BadRequest(
                "Alerts are off: set HERALD_ALERT_EMAILS to the addresses that should receive them, then restart."
                    .to_owned(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(session
        .done(
            &state,
            "/console/",
            format!(
                "Test alert queued for {} as message {id}; it is in the mail queue like any other mail.",
                state.alerts.recipients().join(", ")
            ),
        )
        .await)
}
