//! The console's pages, one file per page (its template in `templates/console/` has the same name),
//! each with the actions its forms post to. What several pages show (status badges, node figures,
//! integration rows) is here.

pub(super) mod account;
pub(super) mod cluster;
pub(super) mod integration;
pub(super) mod integration_form;
pub(super) mod integrations;
pub(super) mod mail;
pub(super) mod overview;
pub(super) mod tickets;
pub(super) mod users;

use super::error::ConsoleError;
use super::view::{When, encode_component};
use crate::cluster::NodeState;
use crate::integrations::IntegrationSpec;
use crate::links::Link;
use crate::state::AppState;
use crate::store::LatestCheck;

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

/// One mail relay of a delivering node, as the overview and the Mail page show it.
pub struct RelayLine {
    pub relay: String,
    pub node_id: String,
    pub up: bool,
    /// "up since …", or "down since … (4m): why; 3 probes failed, next in 20s".
    pub health: String,
}

/// Every delivering node's relays, in order of preference (none when no node delivers).
async fn relay_lines(state: &AppState, now: i64) -> Result<Vec<RelayLine>, ConsoleError> {
    Ok(state
        .store
        .mail_relays()
        .await?
        .into_iter()
        .map(|row| RelayLine {
            health: crate::mail::describe_relay(&row, now),
            relay: row.relay,
            node_id: row.node_id,
            up: row.up,
        })
        .collect())
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
    /// Its Tickets page, when tickets are on for it.
    pub tickets_href: Option<String>,
    /// Problems in its tickets' error list (filled by the pages that show it).
    pub ticket_errors: i64,
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
        tickets_href: spec
            .tickets
            .as_ref()
            .is_some_and(|t| t.enabled)
            .then(|| Link::Tickets(&latest.name).path()),
        ticket_errors: 0,
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
