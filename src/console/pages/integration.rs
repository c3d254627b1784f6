//! One integration's page: its settings, its last check with the steps, the history chart; and
//! checking or deleting it.

use std::time::Duration;

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;

use super::Badge;
use crate::console::chart::{history_svg, slowest_ms};
use crate::console::error::ConsoleError;
use crate::console::session::{Change, CsrfForm, Session};
use crate::console::view::{Chrome, When, html};
use crate::error_kind::Classified;
use crate::integrations::{Auth, CheckReport, Integration, Saved, StepOutcome};
use crate::links::Link;
use crate::state::AppState;
use crate::store::{CheckRecord, now_ms};

/// Checks shown in an integration's history table (the chart shows all that are kept).
const RECENT_CHECKS: usize = 10;

pub struct StepRow {
    pub step: &'static str,
    pub class: &'static str,
    pub outcome: &'static str,
    pub detail: String,
}

/// The newest recorded check (whichever node ran it), with its steps when the report was kept.
pub struct LastCheck {
    pub badge: Badge,
    pub status: String,
    pub reason: String,
    pub failed_step: Option<String>,
    pub verified: When,
    pub duration_ms: i64,
    pub steps: Vec<StepRow>,
    pub facts: Vec<(&'static str, String)>,
}

fn last_check_of(latest: &CheckRecord, now: i64) -> LastCheck {
    let report: Option<CheckReport> = latest
        .report
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok());
    let mut facts = Vec::new();
    let mut steps = Vec::new();
    if let Some(r) = &report {
        if let Some(d) = &r.deployment_type {
            facts.push(("Deployment", d.clone()));
        }
        if let Some(version) = &r.server_version {
            facts.push(("Jira version", version.clone()));
        }
        if let Some(user) = &r.user {
            facts.push(("Acting as", user.clone()));
        }
        facts.push(("Round trips", format!("{} ({} requests)", r.round_trips, r.requests)));
        steps = r
            .steps
            .iter()
            .map(|s| {
                let (class, outcome) = match s.outcome {
                    StepOutcome::Passed => ("ok", "passed"),
                    StepOutcome::Failed => ("bad", "failed"),
                    StepOutcome::Skipped => ("unknown", "skipped"),
                };
                StepRow {
                    step: s.step.as_str(),
                    class,
                    outcome,
                    detail: s.detail.clone(),
                }
            })
            .collect();
    }
    LastCheck {
        badge: Badge::of_status(Some(&latest.status)),
        status: latest.status.clone(),
        reason: latest.reason.clone(),
        failed_step: latest.failed_step.clone(),
        verified: When::at(latest.checked_at, now),
        duration_ms: latest.duration_ms,
        steps,
        facts,
    }
}

pub struct HistoryRow {
    pub badge: Badge,
    pub when: When,
    pub duration_ms: i64,
    pub failed_step: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "console/integration.html")]
struct IntegrationPage {
    page: Chrome,
    name: String,
    href: String,
    settings: Vec<(&'static str, String)>,
    fields_json: String,
    last: Option<LastCheck>,
    chart: String,
    slowest_ms: i64,
    recent: Vec<HistoryRow>,
    kept: usize,
    /// Problems in the error list of its tickets.
    ticket_errors: i64,
}

fn settings_list(integration: &Integration, now: i64) -> Vec<(&'static str, String)> {
    let s = &integration.settings;
    let mut out = vec![
        ("Jira URL", s.url.as_str().to_owned()),
        ("Installation", s.installation_type.as_str().to_owned()),
    ];
    match &s.auth {
        Auth::Basic { username, .. } => {
            out.push(("Authentication", "Basic (password or API token)".to_owned()));
            out.push(("User", username.clone()));
            out.push(("Secret", "set (never shown)".to_owned()));
        }
        Auth::Bearer { .. } => {
            out.push(("Authentication", "Bearer (personal access token)".to_owned()));
            out.push(("Secret", "set (never shown)".to_owned()));
        }
    }
    out.push(("Project", s.project_key.clone().unwrap_or_else(|| "—".to_owned())));
    out.push(("Issue type", s.issue_type.clone().unwrap_or_else(|| "—".to_owned())));
    out.push((
        "Tickets",
        if s.tickets.as_ref().is_some_and(|t| t.enabled) {
            "on: events become Jira issues"
        } else {
            "off"
        }
        .to_owned(),
    ));
    out.push((
        "Private CA",
        if s.ca_cert_pem.is_some() {
            "set"
        } else {
            "no (system trust store)"
        }
        .to_owned(),
    ));
    out.push((
        "Proxy",
        if s.skip_proxy {
            "bypassed"
        } else {
            "from the environment, if any"
        }
        .to_owned(),
    ));
    out.push((
        "Check budget",
        s.timeout.map_or_else(
            || "HERALD_CHECK_TIMEOUT".to_owned(),
            |d| humantime::format_duration(d).to_string(),
        ),
    ));
    out.push((
        "Revision",
        format!(
            "{} (changed {})",
            integration.revision,
            When::at(integration.updated_at, now).ago
        ),
    ));
    out
}

pub async fn integration(
    State(state): State<AppState>,
    session: Session,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    let now = now_ms();
    let integration = state.integrations.get(&name).await?;
    let history = state
        .integrations
        .history(&name, crate::integrations::HISTORY_LENGTH)
        .await?;
    let page = IntegrationPage {
        page: Chrome::new(&session, state.node_id.as_str(), "integrations", name.clone()),
        href: Link::Integration(&name).path(),
        settings: settings_list(&integration, now),
        fields_json: if integration.settings.fields.is_empty() {
            String::new()
        } else {
            serde_json::to_string_pretty(&integration.settings.fields).unwrap_or_default()
        },
        last: history.first().map(|latest| last_check_of(latest, now)),
        chart: history_svg(&history),
        slowest_ms: slowest_ms(&history),
        recent: history
            .iter()
            .take(RECENT_CHECKS)
            .map(|r| HistoryRow {
                badge: Badge::of_status(Some(&r.status)),
                when: When::at(r.checked_at, now),
                duration_ms: r.duration_ms,
                failed_step: r.failed_step.clone().unwrap_or_default(),
                reason: r.reason.clone(),
            })
            .collect(),
        kept: history.len(),
        ticket_errors: state
            .ticket_delivery
            .problem_counts(&name)
            .await?
            .into_iter()
            .find_map(|(s, n)| (s == "error").then_some(n))
            .unwrap_or(0),
        name,
    };
    html(&page)
}

/// How long a console request waits for a check's verdict: as long as a request may last
/// (`HERALD_REQUEST_TIMEOUT` less 2 s); a slow Jira's check goes on and its verdict is recorded.
pub(super) fn check_wait(state: &AppState) -> Duration {
    state
        .settings
        .http
        .request_timeout
        .saturating_sub(Duration::from_secs(2))
        .max(Duration::from_secs(1))
}

pub(super) const STILL_CHECKING: &str =
    "Jira is slow to answer: the check goes on in the background; reload this page for its verdict.";

pub(super) const CHECK_STOPPED: &str = "the check stopped unexpectedly; the log says why";

pub async fn check_integration(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    // An unknown name is a 404 page, before anything runs in the background.
    state.integrations.get(&name).await?;
    let message = match state.integrations.check_within(&name, check_wait(&state)).await {
        Saved::Checked(v) if v.report.healthy => {
            format!("Checked {name}: healthy ({} ms).", v.report.duration.as_millis())
        }
        Saved::Checked(v) => format!("Checked {name}: FAULTY_CONFIGURATION: {}", v.report.reason),
        Saved::StillRunning => format!("Checking {name}. {STILL_CHECKING}"),
        Saved::NotChecked(e) => format!("{name} could not be checked: {}", e.public_detail()),
        Saved::CheckStopped => format!("{name} could not be checked: {CHECK_STOPPED}"),
    };
    Ok(session.done(&state, &Link::Integration(&name).path(), message).await)
}

pub async fn delete_integration(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    state.integrations.delete(&name).await?;
    Ok(session
        .done(&state, "/console/integrations", format!("Integration {name} deleted."))
        .await)
}
