//! The integrations list: status tabs, search, paging, and checking every integration it shows.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{IntegrationRow, integration_rows};
use crate::console::error::ConsoleError;
use crate::console::session::{Change, Session};
use crate::console::view::{Chrome, encode_component, html};
use crate::state::AppState;
use crate::store::now_ms;

/// Rows per page of the integrations list.
const INTEGRATIONS_PAGE: usize = 100;
/// The longest search accepted, in characters.
const SEARCH_MAX: usize = 200;

/// Which integrations the list shows, by the verdict of their newest check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusFilter {
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

    pub(super) fn admits(self, row: &IntegrationRow) -> bool {
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
    // Parked ticket events are the heads of their problems: one per problem in the error list.
    let parked: std::collections::HashMap<String, i64> = state
        .tickets
        .figures()
        .await?
        .into_iter()
        .map(|f| (f.integration, f.errors))
        .collect();
    for row in &mut rows {
        row.ticket_errors = parked.get(&row.name).copied().unwrap_or(0);
    }
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

crate::console::session::with_csrf!(CheckListedForm);

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
            state.settings.checks.concurrency
        )
    } else {
        "A batch of checks is still running; try again when it has finished.".to_owned()
    };
    Ok(session.done(&state, &integrations_link(status, q, None), message).await)
}
