//! `/rest/mailqueue/1.0/…`: Jira's mail queue REST API, JSON or XML by `Accept`.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::auth::RequireMonitor;
use super::error::{ApiError, Problem};
use super::negotiate::{Format, render};
use crate::state::AppState;

/// `{"size":N,"errorSize":M}` / `<mailQueue><size>N</size><errorSize>M</errorSize></mailQueue>`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailQueueStatus {
    /// Messages of this node waiting or being sent.
    pub size: i64,
    /// Messages of this node in the error queue.
    pub error_size: i64,
}

/// One node of `clusterStatus`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeMailQueue {
    pub node_id: String,
    /// ACTIVE, PASSIVE, ACTIVATING, PASSIVATING or OFFLINE.
    pub node_state: String,
    pub is_clustered: bool,
    pub mail_queue: MailQueueStatus,
}

/// JSON form of `clusterStatus`: `{"nodes":[…]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterMailQueue {
    pub nodes: Vec<NodeMailQueue>,
}

/// XML form of `clusterStatus`: one `<node>` element per node, `<clusterMailQueue/>` when empty.
#[derive(Serialize)]
struct ClusterMailQueueXml<'a> {
    #[serde(rename = "node")]
    nodes: &'a [NodeMailQueue],
}

/// The mail queue of the answering node, in real time.
#[utoipa::path(
    get, path = "/rest/mailqueue/1.0/status", tag = "mail queue (Jira-compatible)", security(("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, content((MailQueueStatus = "application/json"), (MailQueueStatus = "application/xml"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 406, body = Problem), (status = 503, body = Problem)
    )
)]
pub async fn status(State(state): State<AppState>, _who: RequireMonitor, format: Format) -> Result<Response, ApiError> {
    let (size, error_size) = state.mail.counts().await?;
    Ok(render(format, "mailQueue", &MailQueueStatus { size, error_size }))
}

/// Every node's mail queue, ordered by node id: figures as last published (up to one poll interval
/// old), except the answering node's own, which are live. A single node is not clustered: the list
/// is empty.
#[utoipa::path(
    get, path = "/rest/mailqueue/1.0/clusterStatus", tag = "mail queue (Jira-compatible)", security(("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, content((ClusterMailQueue = "application/json"), (ClusterMailQueue = "application/xml"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 406, body = Problem)
    )
)]
pub async fn cluster_status(
    State(state): State<AppState>,
    _who: RequireMonitor,
    format: Format,
) -> Result<Response, ApiError> {
    let nodes: Vec<NodeMailQueue> = state
        .cluster
        .view()
        .await?
        .into_iter()
        .map(|node| NodeMailQueue {
            node_id: node.node_id,
            node_state: node.state.as_str().to_owned(),
            is_clustered: true,
            mail_queue: MailQueueStatus {
                size: node.queue_size,
                error_size: node.error_size,
            },
        })
        .collect();
    Ok(match format {
        Format::Json => render(format, "clusterMailQueue", &ClusterMailQueue { nodes }),
        Format::Xml => render(format, "clusterMailQueue", &ClusterMailQueueXml { nodes: &nodes }),
    })
}
