//! The cluster: every node's state, heartbeat and queue, and draining or activating a node.

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;

use super::{NodeFigures, node_figures};
use crate::console::error::ConsoleError;
use crate::console::session::{Change, CsrfForm, Session};
use crate::console::view::{Chrome, html};
use crate::state::AppState;
use crate::store::now_ms;

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
    if !state.cluster.set_drain(node, drain).await? {
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
