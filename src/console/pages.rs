//! The console's pages and the actions their forms post to.

use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::chart::{history_svg, slowest_ms};
use super::error::ConsoleError;
use super::forms::IntegrationForm;
use super::session::{Change, CsrfForm, Session};
use super::view::{Chrome, When, encode_component, html, html_with};
use crate::cluster::NodeState;
use crate::integrations::{Auth, CheckReport, Integration, IntegrationError, IntegrationSpec, StepOutcome};
use crate::links::Link;
use crate::state::AppState;
use crate::store::{CheckRecord, LatestCheck, MailFilter, MailSummary, now_ms};

/// Messages per page of the mail lists.
const PAGE_SIZE: i64 = 50;
/// Checks shown in an integration's history table (the chart shows all that are kept).
const RECENT_CHECKS: usize = 10;

/// A status as a badge: the CSS class and the words.
#[derive(Debug, Clone)]
pub struct Badge {
    pub class: &'static str,
    pub label: &'static str,
}

impl Badge {
    fn of_status(status: Option<&str>) -> Badge {
        match status {
            Some("HEALTHY_INTEGRATION") => Badge {
                class: "ok",
                label: "Healthy",
            },
            Some(_) => Badge {
                class: "bad",
                label: "Faulty",
            },
            None => Badge {
                class: "unknown",
                label: "Not checked",
            },
        }
    }

    /// A node stopped on purpose is OFFLINE in grey, one that fell silent in red.
    fn of_node(state: NodeState, stopped: bool) -> Badge {
        match state {
            NodeState::Active => Badge {
                class: "ok",
                label: "ACTIVE",
            },
            NodeState::Activating => Badge {
                class: "warn",
                label: "ACTIVATING",
            },
            NodeState::Passivating => Badge {
                class: "warn",
                label: "PASSIVATING",
            },
            NodeState::Passive => Badge {
                class: "unknown",
                label: "PASSIVE",
            },
            NodeState::Offline => Badge {
                class: if stopped { "unknown" } else { "bad" },
                label: "OFFLINE",
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Figures shared by several pages

/// One node's mail figures.
pub struct NodeFigures {
    pub node_id: String,
    pub href: String,
    pub this: bool,
    pub badge: Badge,
    /// OFFLINE after a clean shutdown.
    pub stopped: bool,
    pub heartbeat: Option<When>,
    pub queue: i64,
    pub errors: i64,
    pub oldest: Option<When>,
    oldest_at: Option<i64>,
    pub can_drain: bool,
    pub can_activate: bool,
}

/// Every node (this one alone when not clustered), with its queue figures and oldest queued mail.
async fn node_figures(state: &AppState, now: i64) -> Result<Vec<NodeFigures>, ConsoleError> {
    let clustered = state.cluster.enabled();
    let mut views = state.cluster.view().await?;
    if views.is_empty() {
        let (queue_size, error_size) = state.mail.counts().await?;
        views.push(crate::cluster::NodeView {
            node_id: state.node_id.to_string(),
            state: state.cluster.state(),
            heartbeat_at: now,
            queue_size,
            error_size,
            stopped: false,
        });
    }
    let oldest: std::collections::HashMap<String, i64> = state
        .store
        .mail_figures_by_node()
        .await?
        .into_iter()
        .filter_map(|f| f.oldest_queued_at.map(|at| (f.node_id, at)))
        .collect();
    let mut nodes = Vec::with_capacity(views.len());
    for view in views {
        let oldest = oldest.get(&view.node_id).copied();
        nodes.push(NodeFigures {
            href: encode_component(&view.node_id),
            this: view.node_id == state.node_id.as_str(),
            badge: Badge::of_node(view.state, view.stopped),
            stopped: view.stopped,
            heartbeat: clustered.then(|| When::at(view.heartbeat_at, now)),
            queue: view.queue_size,
            errors: view.error_size,
            oldest: oldest.map(|at| When::at(at, now)),
            oldest_at: oldest,
            can_drain: clustered && matches!(view.state, NodeState::Active | NodeState::Activating),
            can_activate: clustered && matches!(view.state, NodeState::Passive | NodeState::Passivating),
            node_id: view.node_id,
        });
    }
    Ok(nodes)
}

/// One integration as the tables show it.
pub struct IntegrationRow {
    pub name: String,
    pub href: String,
    pub url: String,
    pub installation_type: &'static str,
    pub target: String,
    pub badge: Badge,
    pub reason: String,
    pub verified: Option<When>,
}

fn integration_row(spec: &IntegrationSpec, latest: &LatestCheck, now: i64) -> IntegrationRow {
    let target = match (&spec.project_key, &spec.issue_type) {
        (Some(p), Some(t)) => format!("{p} / {t}"),
        (Some(p), None) => p.clone(),
        _ => String::new(),
    };
    IntegrationRow {
        name: latest.name.clone(),
        href: Link::Integration(&latest.name).path(),
        url: spec.url.clone(),
        installation_type: spec.installation_type.as_str(),
        target,
        badge: Badge::of_status(latest.status.as_deref()),
        reason: latest.reason.clone().unwrap_or_default(),
        verified: latest.checked_at.map(|at| When::at(at, now)),
    }
}

/// Every integration with its newest check, sorted by name byte by byte (the paging cursor compares
/// names the same way, whatever the database's collation).
async fn integration_rows(state: &AppState, now: i64) -> Result<Vec<IntegrationRow>, ConsoleError> {
    let listed = state.integrations.list_with_latest_checks().await?;
    let mut rows: Vec<IntegrationRow> = listed
        .iter()
        .map(|(spec, latest)| integration_row(spec, latest, now))
        .collect();
    rows.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------------
// Overview

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
        sweep_every: humantime::format_duration(state.settings.check_interval).to_string(),
        problems_shown: OVERVIEW_PROBLEMS,
    };
    html(&page)
}

/// Queues a test alert to the recipients and says where to watch it.
pub async fn test_alert(
    State(state): State<AppState>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let id = state.alerts.send_test(session.username.as_str()).await?;
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

// ---------------------------------------------------------------------------------------------------
// Integrations

/// Rows per page of the integrations list.
const INTEGRATIONS_PAGE: usize = 100;
/// The longest search accepted, in characters.
const SEARCH_MAX: usize = 200;

/// Which integrations the list shows, by the verdict of their newest check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFilter {
    All,
    Faulty,
    Healthy,
    Unchecked,
}

impl StatusFilter {
    const EVERY: [StatusFilter; 4] = [
        StatusFilter::All,
        StatusFilter::Faulty,
        StatusFilter::Healthy,
        StatusFilter::Unchecked,
    ];

    fn parse(value: Option<&str>) -> Result<StatusFilter, ConsoleError> {
        match value.unwrap_or("") {
            "" | "all" => Ok(StatusFilter::All),
            "faulty" => Ok(StatusFilter::Faulty),
            "healthy" => Ok(StatusFilter::Healthy),
            "unchecked" => Ok(StatusFilter::Unchecked),
            other => Err(ConsoleError::BadRequest(format!(
                "There is no integration status `{}`: use `faulty`, `healthy`, `unchecked` or `all`.",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            StatusFilter::All => "all",
            StatusFilter::Faulty => "faulty",
            StatusFilter::Healthy => "healthy",
            StatusFilter::Unchecked => "unchecked",
        }
    }

    fn label(self) -> &'static str {
        match self {
            StatusFilter::All => "All",
            StatusFilter::Faulty => "Faulty",
            StatusFilter::Healthy => "Healthy",
            StatusFilter::Unchecked => "Not checked",
        }
    }

    fn admits(self, row: &IntegrationRow) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Faulty => row.badge.class == "bad",
            StatusFilter::Healthy => row.badge.class == "ok",
            StatusFilter::Unchecked => row.badge.class == "unknown",
        }
    }
}

/// A search: every word must appear, ignoring case, in the name, the Jira URL or the project /
/// issue type.
struct Search {
    words: Vec<String>,
}

impl Search {
    fn parse(q: Option<&str>) -> Result<Search, ConsoleError> {
        let q = q.unwrap_or("").trim();
        if q.chars().count() > SEARCH_MAX {
            return Err(ConsoleError::BadRequest(format!(
                "The search is too long: {SEARCH_MAX} characters at most."
            )));
        }
        Ok(Search {
            words: q.split_whitespace().map(str::to_lowercase).collect(),
        })
    }

    fn matches(&self, row: &IntegrationRow) -> bool {
        if self.words.is_empty() {
            return true;
        }
        let haystack = format!("{}\n{}\n{}", row.name, row.url, row.target).to_lowercase();
        self.words.iter().all(|w| haystack.contains(w.as_str()))
    }
}

#[derive(Deserialize)]
pub struct IntegrationsQuery {
    status: Option<String>,
    q: Option<String>,
    /// The last name of the previous page.
    after: Option<String>,
}

/// One status tab: its label, link, count (under the current search) and whether it is shown.
pub struct StatusTab {
    pub id: &'static str,
    pub label: &'static str,
    pub href: String,
    pub count: usize,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "console/integrations.html")]
struct IntegrationsPage {
    page: Chrome,
    rows: Vec<IntegrationRow>,
    /// Integrations registered at all.
    total: usize,
    tabs: Vec<StatusTab>,
    status: &'static str,
    /// The status' label in lower case, for "No faulty integration".
    status_label: String,
    q: String,
    first_page: Option<String>,
    next_page: Option<String>,
    page_size: usize,
    /// How many integrations the current tab and search hold, on every page.
    listed: usize,
    /// A batch of checks started from this page is still running on this node.
    batch_running: bool,
}

/// The list's address for a status, a search and a page.
fn integrations_link(status: StatusFilter, q: &str, after: Option<&str>) -> String {
    let mut href = format!("/console/integrations?status={}", status.as_str());
    if !q.is_empty() {
        href.push_str(&format!("&q={}", encode_component(q)));
    }
    if let Some(after) = after {
        href.push_str(&format!("&after={}", encode_component(after)));
    }
    href
}

pub async fn integrations(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<IntegrationsQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(query) = query?;
    let status = StatusFilter::parse(query.status.as_deref())?;
    let search = Search::parse(query.q.as_deref())?;
    let q = query.q.as_deref().unwrap_or("").trim().to_owned();
    let after = query.after.filter(|a| !a.is_empty());
    let now = now_ms();
    let all = integration_rows(&state, now).await?;
    let total = all.len();
    let found: Vec<IntegrationRow> = all.into_iter().filter(|r| search.matches(r)).collect();
    let link = |status: StatusFilter, after: Option<&str>| integrations_link(status, &q, after);
    let listed = found.iter().filter(|r| status.admits(r)).count();
    let tabs = StatusFilter::EVERY
        .iter()
        .map(|&s| StatusTab {
            id: s.as_str(),
            label: s.label(),
            href: link(s, None),
            count: found.iter().filter(|r| s.admits(r)).count(),
            current: s == status,
        })
        .collect();
    let mut rows: Vec<IntegrationRow> = found
        .into_iter()
        .filter(|r| status.admits(r) && after.as_deref().is_none_or(|a| r.name.as_str() > a))
        .take(INTEGRATIONS_PAGE + 1)
        .collect();
    let more = rows.len() > INTEGRATIONS_PAGE;
    rows.truncate(INTEGRATIONS_PAGE);
    let next_page = if more {
        rows.last().map(|r| link(status, Some(&r.name)))
    } else {
        None
    };
    let page = IntegrationsPage {
        page: Chrome::new(&session, state.node_id.as_str(), "integrations", "Integrations"),
        rows,
        total,
        tabs,
        status: status.as_str(),
        status_label: status.label().to_lowercase(),
        first_page: after.is_some().then(|| link(status, None)),
        next_page,
        page_size: INTEGRATIONS_PAGE,
        q,
        listed,
        batch_running: state.integrations.batch_running(),
    };
    html(&page)
}

#[derive(Deserialize)]
pub struct CheckListedForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
}

super::session::with_csrf!(CheckListedForm);

/// Checks every integration the list shows (its tab and search, on every page) again, in the
/// background on this node; back to the list.
pub async fn check_listed(
    State(state): State<AppState>,
    Change { session, form }: Change<CheckListedForm>,
) -> Result<Response, ConsoleError> {
    let status = StatusFilter::parse(Some(&form.status))?;
    let search = Search::parse(Some(&form.q))?;
    let q = form.q.trim();
    let names: Vec<String> = integration_rows(&state, now_ms())
        .await?
        .into_iter()
        .filter(|r| status.admits(r) && search.matches(r))
        .map(|r| r.name)
        .collect();
    let count = names.len();
    let message = if count == 0 {
        "No integration to check.".to_owned()
    } else if state.integrations.check_in_background(names) {
        format!(
            "Checking {count} integration{} now, {} at a time; reload to see the verdicts.",
            if count == 1 { "" } else { "s" },
            state.settings.check_concurrency
        )
    } else {
        "A batch of checks is still running; try again when it has finished.".to_owned()
    };
    Ok(session.done(&state, &integrations_link(status, q, None), message).await)
}

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
        name,
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "console/integration_form.html")]
struct IntegrationFormPage {
    page: Chrome,
    /// None for a new integration.
    editing: Option<String>,
    action: String,
    form: IntegrationForm,
    error: Option<String>,
}

fn form_page(
    session: &Session,
    state: &AppState,
    editing: Option<&str>,
    form: IntegrationForm,
    error: Option<String>,
) -> IntegrationFormPage {
    let (title, action) = match editing {
        Some(name) => (format!("Edit {name}"), Link::IntegrationEdit(name).path()),
        None => ("Add an integration".to_owned(), "/console/integrations".to_owned()),
    };
    IntegrationFormPage {
        page: Chrome::new(session, state.node_id.as_str(), "integrations", title),
        editing: editing.map(str::to_owned),
        action,
        form,
        error,
    }
}

pub async fn new_integration(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    session.require_admin()?;
    let form = IntegrationForm {
        auth_type: "basic".to_owned(),
        installation_type: "auto".to_owned(),
        ..IntegrationForm::default()
    };
    html(&form_page(&session, &state, None, form, None))
}

pub async fn edit_integration(
    State(state): State<AppState>,
    session: Session,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    session.require_admin()?;
    let integration = state.integrations.get(&name).await?;
    html(&form_page(
        &session,
        &state,
        Some(&name),
        IntegrationForm::of(&integration),
        None,
    ))
}

/// A rejected form comes back with the values entered (never the secret) and the reason.
fn form_error(
    state: &AppState,
    session: &Session,
    editing: Option<&str>,
    mut form: IntegrationForm,
    error: String,
) -> Result<Response, ConsoleError> {
    form.secret.clear();
    html_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        &form_page(session, state, editing, form, Some(error)),
    )
}

/// A check run from a console request.
enum Checked {
    Done(std::sync::Arc<crate::integrations::Verdict>),
    /// Jira is slower than a request may last: the check goes on in the background.
    Running,
    Failed(String),
}

/// Checks an integration now, but waits for the verdict only as long as a console request may last
/// (`HERALD_REQUEST_TIMEOUT` less 2 s): a slow Jira's check goes on and its verdict is recorded.
async fn check_within_request(state: &AppState, name: &str) -> Checked {
    let integrations = state.integrations.clone();
    let owned = name.to_owned();
    let check = tokio::spawn(async move { integrations.check_now(&owned).await });
    let wait = state
        .settings
        .request_timeout
        .saturating_sub(std::time::Duration::from_secs(2))
        .max(std::time::Duration::from_secs(1));
    match tokio::time::timeout(wait, check).await {
        Ok(Ok(Ok(verdict))) => Checked::Done(verdict),
        Ok(Ok(Err(e))) => Checked::Failed(e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(integration = name, error = %e, "console: the check task failed");
            Checked::Failed("the check stopped unexpectedly; the log says why".to_owned())
        }
        Err(_) => Checked::Running,
    }
}

const STILL_CHECKING: &str =
    "Jira is slow to answer: the check goes on in the background; reload this page for its verdict.";

/// Saves, then checks at once, so the admin sees straight away whether the integration works.
async fn saved(state: &AppState, session: &Session, integration: Integration, verb: &str) -> Response {
    let name = integration.name.to_string();
    let message = match check_within_request(state, &name).await {
        Checked::Done(v) if v.report.healthy => format!("Integration {name} {verb}. Checked: healthy."),
        Checked::Done(v) => format!(
            "Integration {name} {verb}. Checked: FAULTY_CONFIGURATION: {}",
            v.report.reason
        ),
        Checked::Running => format!("Integration {name} {verb}. {STILL_CHECKING}"),
        Checked::Failed(e) => format!("Integration {name} {verb}, but it could not be checked: {e}"),
    };
    session.done(state, &Link::Integration(&name).path(), message).await
}

fn invalid(e: IntegrationError) -> Result<String, ConsoleError> {
    match e {
        IntegrationError::Invalid(invalid) => Ok(format!("{invalid}.")),
        IntegrationError::AlreadyExists(name) => Ok(format!("An integration named `{name}` already exists.")),
        other => Err(other.into()),
    }
}

pub async fn create_integration(
    State(state): State<AppState>,
    Change { session, form }: Change<IntegrationForm>,
) -> Result<Response, ConsoleError> {
    let spec = match form.to_spec() {
        Ok(spec) => spec,
        Err(e) => return form_error(&state, &session, None, form, format!("{e}.")),
    };
    match state.integrations.create(spec).await {
        Ok(integration) => Ok(saved(&state, &session, integration, "added").await),
        Err(e) => form_error(&state, &session, None, form, invalid(e)?),
    }
}

pub async fn update_integration(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, mut form }: Change<IntegrationForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    form.name = name.clone();
    let spec = match form.to_spec() {
        Ok(spec) => spec,
        Err(e) => return form_error(&state, &session, Some(&name), form, format!("{e}.")),
    };
    match state.integrations.replace(&name, spec).await {
        Ok(integration) => Ok(saved(&state, &session, integration, "saved").await),
        Err(e) => form_error(&state, &session, Some(&name), form, invalid(e)?),
    }
}

pub async fn check_integration(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    // An unknown name is a 404 page, before anything runs in the background.
    state.integrations.get(&name).await?;
    let message = match check_within_request(&state, &name).await {
        Checked::Done(v) if v.report.healthy => {
            format!("Checked {name}: healthy ({} ms).", v.report.duration.as_millis())
        }
        Checked::Done(v) => format!("Checked {name}: FAULTY_CONFIGURATION: {}", v.report.reason),
        Checked::Running => format!("Checking {name}. {STILL_CHECKING}"),
        Checked::Failed(e) => format!("{name} could not be checked: {e}"),
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

// ---------------------------------------------------------------------------------------------------
// Mail

pub struct MailRow {
    pub id: String,
    pub href: String,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub node_id: String,
    pub attempts: i32,
    pub created: When,
    pub next_attempt: Option<When>,
    pub sending: bool,
    pub last_error: String,
}

fn mail_row(m: MailSummary, now: i64) -> MailRow {
    let to = serde_json::from_str::<Vec<String>>(&m.recipients)
        .map(|r| r.join(", "))
        .unwrap_or(m.recipients);
    MailRow {
        href: encode_component(&m.id),
        subject: if m.subject.is_empty() {
            "(no subject)".to_owned()
        } else {
            m.subject
        },
        from: m.envelope_from,
        to,
        attempts: m.attempts,
        created: When::at(m.created_at, now),
        next_attempt: (m.state == "queued").then(|| When::at(m.next_attempt_at, now)),
        sending: m.state == "sending",
        last_error: m.last_error.unwrap_or_default(),
        node_id: m.node_id,
        id: m.id,
    }
}

#[derive(Deserialize)]
pub struct MailQuery {
    view: Option<String>,
    after: Option<String>,
    /// Only this node's messages.
    node: Option<String>,
}

#[derive(Template)]
#[template(path = "console/mail.html")]
struct MailPage {
    page: Chrome,
    errors_view: bool,
    rows: Vec<MailRow>,
    queue_total: i64,
    errors_total: i64,
    first_page: bool,
    next_page: Option<String>,
    page_size: i64,
    /// The node the lists are limited to, if any.
    node: Option<String>,
    /// `&node=…` for the page's own links, or empty.
    node_query: String,
}

pub async fn mail(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<MailQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(query) = query?;
    let errors_view = match query.view.as_deref() {
        None | Some("queue") => false,
        Some("errors") => true,
        Some(other) => {
            return Err(ConsoleError::BadRequest(format!(
                "There is no mail view `{}`: use `queue` or `errors`.",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let now = now_ms();
    let nodes = node_figures(&state, now).await?;
    let filter = MailFilter {
        states: if errors_view {
            vec!["error"]
        } else {
            vec!["queued", "sending"]
        },
        node_id: query.node.clone().filter(|n| !n.is_empty()),
        after: query.after.clone().filter(|a| !a.is_empty()),
        limit: PAGE_SIZE + 1,
    };
    let mut rows: Vec<MailRow> = state
        .mail
        .list(&filter)
        .await?
        .into_iter()
        .map(|m| mail_row(m, now))
        .collect();
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    let view = if errors_view { "errors" } else { "queue" };
    let node_query = filter
        .node_id
        .as_deref()
        .map_or_else(String::new, |n| format!("&node={}", encode_component(n)));
    let next_page = more
        .then(|| {
            rows.last().map(|r| {
                format!(
                    "/console/mail?view={view}{node_query}&after={}",
                    encode_component(&r.id)
                )
            })
        })
        .flatten();
    // The tabs count what they list: one node's messages, or every node's.
    let shown: Vec<&NodeFigures> = nodes
        .iter()
        .filter(|n| filter.node_id.as_deref().is_none_or(|only| only == n.node_id))
        .collect();
    let page = MailPage {
        page: Chrome::new(
            &session,
            state.node_id.as_str(),
            "mail",
            if errors_view { "Error queue" } else { "Mail queue" },
        ),
        errors_view,
        rows,
        queue_total: shown.iter().map(|n| n.queue).sum(),
        errors_total: shown.iter().map(|n| n.errors).sum(),
        first_page: filter.after.is_none(),
        node: filter.node_id.clone(),
        node_query,
        next_page,
        page_size: PAGE_SIZE,
    };
    html(&page)
}

#[derive(Deserialize)]
pub struct MailActionForm {
    #[serde(default)]
    csrf: String,
    /// Which list the message is in: `queue` or `errors` (where to return, and what delete means).
    #[serde(default)]
    view: String,
}

super::session::with_csrf!(MailActionForm);

fn mail_list(view: &str) -> &'static str {
    if view == "queue" {
        "/console/mail?view=queue"
    } else {
        "/console/mail?view=errors"
    }
}

pub async fn resend_mail(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<MailActionForm>,
) -> Result<Response, ConsoleError> {
    let Path(id) = id?;
    state.mail.resend(Some(&id)).await?;
    Ok(session
        .done(
            &state,
            "/console/mail?view=errors",
            format!("Message {id} is queued again for delivery."),
        )
        .await)
}

pub async fn delete_mail(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Change { session, form }: Change<MailActionForm>,
) -> Result<Response, ConsoleError> {
    let Path(id) = id?;
    if form.view == "queue" {
        state.mail.delete_queued(&id).await?;
    } else {
        state.mail.delete_errors(Some(&id)).await?;
    }
    Ok(session
        .done(&state, mail_list(&form.view), format!("Message {id} deleted."))
        .await)
}

fn messages(n: u64) -> String {
    if n == 1 {
        "1 message".to_owned()
    } else {
        format!("{n} messages")
    }
}

pub async fn resend_all_mail(
    State(state): State<AppState>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let n = state.mail.resend(None).await?;
    Ok(session
        .done(
            &state,
            "/console/mail?view=errors",
            format!("{} queued again for delivery.", messages(n)),
        )
        .await)
}

pub async fn delete_all_errors(
    State(state): State<AppState>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let n = state.mail.delete_errors(None).await?;
    Ok(session
        .done(
            &state,
            "/console/mail?view=errors",
            format!("{} deleted from the error queue.", messages(n)),
        )
        .await)
}

#[derive(Deserialize)]
pub struct FlushForm {
    #[serde(default)]
    csrf: String,
    /// Only this node's queue; every node's when empty.
    #[serde(default)]
    node: String,
}

super::session::with_csrf!(FlushForm);

pub async fn flush_mail(
    State(state): State<AppState>,
    Change { session, form }: Change<FlushForm>,
) -> Result<Response, ConsoleError> {
    let node = Some(form.node.as_str()).filter(|n| !n.is_empty());
    let n = state.mail.flush(node).await?;
    let (back, whose) = match node {
        Some(node) => (
            format!("/console/mail?view=queue&node={}", encode_component(node)),
            format!("node {node}"),
        ),
        None if state.cluster.enabled() => ("/console/mail?view=queue".to_owned(), "every node".to_owned()),
        None => ("/console/mail?view=queue".to_owned(), "the queue".to_owned()),
    };
    Ok(session
        .done(&state, &back, format!("Flushed: {} of {whose} due now.", messages(n)))
        .await)
}

// ---------------------------------------------------------------------------------------------------
// Cluster

#[derive(Template)]
#[template(path = "console/cluster.html")]
struct ClusterPage {
    page: Chrome,
    clustered: bool,
    nodes: Vec<NodeFigures>,
    heartbeat_every: String,
    offline_after: String,
    backend: &'static str,
}

pub async fn cluster(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let now = now_ms();
    let settings = state.cluster.settings();
    let page = ClusterPage {
        page: Chrome::new(&session, state.node_id.as_str(), "cluster", "Cluster"),
        clustered: state.cluster.enabled(),
        nodes: node_figures(&state, now).await?,
        heartbeat_every: humantime::format_duration(settings.poll_interval).to_string(),
        offline_after: humantime::format_duration(settings.heartbeat_timeout).to_string(),
        backend: state.store.backend().name(),
    };
    html(&page)
}

async fn set_drain(state: &AppState, session: &Session, node: &str, drain: bool) -> Result<Response, ConsoleError> {
    if !state.cluster.enabled() {
        return Err(ConsoleError::BadRequest(
            "This node is not clustered: draining needs cluster mode (HERALD_CLUSTER=true on PostgreSQL).".to_owned(),
        ));
    }
    if !state.store.request_drain(node, drain).await? {
        return Err(ConsoleError::NotFound(format!("There is no cluster node `{node}`.")));
    }
    let message = if drain {
        format!("Node {node} will drain at its next heartbeat: it stops taking mail and finishes what it holds.")
    } else {
        format!("Node {node} will take work again at its next heartbeat.")
    };
    Ok(session.done(state, "/console/cluster", message).await)
}

pub async fn drain_node(
    State(state): State<AppState>,
    node: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(node) = node?;
    set_drain(&state, &session, &node, true).await
}

pub async fn activate_node(
    State(state): State<AppState>,
    node: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(node) = node?;
    set_drain(&state, &session, &node, false).await
}
