//! Cluster membership on a shared PostgreSQL database: each node publishes its heartbeat, state and
//! mail queue figures every poll interval; any node reports the whole cluster; a live node adopts the
//! mail of a node that has been offline for too long.
//!
//! States follow Jira Data Center: ACTIVATING while starting, ACTIVE while serving, PASSIVATING while
//! draining (delivering what it holds, taking no new mail), PASSIVE once drained, OFFLINE after a
//! clean shutdown or when no heartbeat came for the heartbeat timeout.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

use super::NodeId;
use crate::store::{Heartbeat, NodeRow, Store, StoreError, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Activating,
    Active,
    Passivating,
    Passive,
    Offline,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Activating => "ACTIVATING",
            NodeState::Active => "ACTIVE",
            NodeState::Passivating => "PASSIVATING",
            NodeState::Passive => "PASSIVE",
            NodeState::Offline => "OFFLINE",
        }
    }

    fn parse(s: &str) -> NodeState {
        match s {
            "ACTIVATING" => NodeState::Activating,
            "ACTIVE" => NodeState::Active,
            "PASSIVATING" => NodeState::Passivating,
            "PASSIVE" => NodeState::Passive,
            _ => NodeState::Offline,
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This node's id; when not configured, one is generated once and kept in the data dir.
    pub node_id: Option<NodeId>,
    /// Cluster mode: PostgreSQL and `HERALD_CLUSTER=true`.
    pub enabled: bool,
    pub poll_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub adopt_after: Duration,
    pub retention: Duration,
}

/// One node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node_id: String,
    pub state: NodeState,
    pub heartbeat_at: i64,
    pub queue_size: i64,
    pub error_size: i64,
    /// OFFLINE because the node said so at a clean shutdown, not because it fell silent.
    pub stopped: bool,
}

/// One node as [`Cluster::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub node: NodeView,
    /// An operator asked the node to drain (it may not have followed yet).
    pub drain_requested: bool,
}

struct Local {
    state: NodeState,
    since: i64,
    /// Since when heartbeats have succeeded without a break (None after a failed one).
    connected_since: Option<i64>,
}

/// This node's membership. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    store: Store,
    node_id: NodeId,
    settings: ClusterSettings,
    started_at: i64,
    local: Arc<Mutex<Local>>,
    /// The live ACTIVE nodes as of the last heartbeat, by id (for sharing the integration sweep).
    live: Arc<Mutex<Vec<String>>>,
    /// Holds the node id's advisory lock (PostgreSQL) for as long as this process lives.
    identity: Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
    database_url: String,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Cluster {
    pub fn new(store: Store, node_id: NodeId, settings: ClusterSettings, database_url: String) -> Cluster {
        let now = now_ms();
        let state = if settings.enabled {
            NodeState::Activating
        } else {
            NodeState::Active
        };
        Cluster {
            store,
            node_id,
            settings,
            started_at: now,
            local: Arc::new(Mutex::new(Local {
                state,
                since: now,
                connected_since: None,
            })),
            live: Arc::new(Mutex::new(Vec::new())),
            identity: Arc::new(tokio::sync::Mutex::new(None)),
            database_url,
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> NodeState {
        self.lock().state
    }

    fn set_state(&self, state: NodeState) {
        let mut local = self.lock();
        if local.state != state {
            tracing::info!(node = %self.node_id, from = %local.state, to = %state, "node state changed");
            local.state = state;
            local.since = now_ms();
        }
    }

    /// Whether this node takes new mail (it does not while draining).
    pub fn accepts_work(&self) -> bool {
        matches!(self.state(), NodeState::Active | NodeState::Activating)
    }

    /// Takes this node id's advisory lock, so that two live nodes never share an id. A crashed
    /// process's lock goes with its connection, so a restart is not blocked.
    pub async fn claim_identity(&self) -> Result<(), String> {
        if !self.settings.enabled {
            return Ok(());
        }
        let mut conn = sqlx::PgConnection::connect(&self.database_url)
            .await
            .map_err(|e| format!("cannot connect to claim the node id: {e}"))?;
        let key = format!("herald-node:{}", self.node_id);
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(&key)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("cannot claim the node id: {e}"))?;
        if !got {
            return Err(format!(
                "another live node already uses the node id `{}`; give each node its own HERALD_NODE_ID",
                self.node_id
            ));
        }
        *self.identity.lock().await = Some(conn);
        Ok(())
    }

    /// Marks the node as serving and publishes that at once.
    pub async fn activate(&self) {
        if self.state() == NodeState::Activating {
            self.set_state(NodeState::Active);
        }
        if let Err(e) = self.heartbeat_once().await {
            tracing::warn!(error = %e, "cannot publish the node's heartbeat");
        }
    }

    /// One heartbeat: publish state and figures, follow drain requests, adopt the mail of dead
    /// nodes, forget long-gone ones.
    pub async fn heartbeat_once(&self) -> Result<(), StoreError> {
        if !self.settings.enabled {
            return Ok(());
        }
        self.keep_identity().await;
        let (queue_size, error_size) = self.store.mail_counts(self.node_id.as_str()).await?;
        let (state, since) = {
            let local = self.lock();
            (local.state, local.since)
        };
        let now = now_ms();
        let drain = self
            .store
            .publish_heartbeat(&Heartbeat {
                node_id: self.node_id.as_str(),
                state: state.as_str(),
                started_at: self.started_at,
                now,
                state_since: since,
                queue_size,
                error_size,
            })
            .await?;
        let connected_since = *self.lock().connected_since.get_or_insert(now);
        match (state, drain) {
            (NodeState::Active, true) => self.set_state(NodeState::Passivating),
            (NodeState::Passivating, true) if queue_size == 0 => self.set_state(NodeState::Passive),
            (NodeState::Passivating | NodeState::Passive, false) => self.set_state(NodeState::Active),
            _ => {}
        }
        // Adopt only after being connected for longer than a dead node may stay silent: after an
        // outage of the database itself every node looks silent, and the others need one heartbeat
        // to show they are alive.
        // Saturating: a duration configured absurdly long must not wrap into "everything is stale".
        let (timeout, adopt_after) = (ms(self.settings.heartbeat_timeout), ms(self.settings.adopt_after));
        let settled = now.saturating_sub(connected_since) > timeout.saturating_add(adopt_after);
        if self.state() == NodeState::Active && settled {
            let stale_before = now.saturating_sub(timeout).saturating_sub(adopt_after);
            let offline_before = now.saturating_sub(adopt_after);
            if let Some((dead, moved)) = self
                .store
                .adopt_dead_node_mail(self.node_id.as_str(), stale_before, offline_before, now)
                .await?
            {
                tracing::warn!(node = %dead, messages = moved, "adopted the mail of an offline node");
            }
        }
        self.store
            .prune_nodes(now.saturating_sub(ms(self.settings.retention)))
            .await?;
        // This node by its state now (it may have just changed, after the row was published); the
        // others by their rows.
        let own_active = self.state() == NodeState::Active;
        let live: Vec<String> = self
            .store
            .cluster_nodes()
            .await?
            .into_iter()
            .filter(|n| {
                if n.node_id == self.node_id.as_str() {
                    own_active
                } else {
                    n.state == NodeState::Active.as_str() && now - n.heartbeat_at <= timeout
                }
            })
            .map(|n| n.node_id)
            .collect();
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = live;
        Ok(())
    }

    /// This node's share of shared periodic work: `(rank among live ACTIVE nodes, how many)`.
    /// `(0, 1)` when not clustered; `(0, 0)`-like shares never happen: a node that is not ACTIVE
    /// (draining) or not yet listed takes no share.
    pub fn work_share(&self) -> Option<(usize, usize)> {
        if !self.settings.enabled {
            return Some((0, 1));
        }
        if self.state() != NodeState::Active {
            return None;
        }
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.iter().position(|id| id == self.node_id.as_str()) {
            Some(index) => Some((index, live.len())),
            // Not listed yet (first heartbeat pending): sweep everything rather than nothing.
            None => Some((0, 1)),
        }
    }

    /// Re-takes the identity lock after the database connection that held it was lost.
    async fn keep_identity(&self) {
        let mut guard = self.identity.lock().await;
        let alive = match guard.as_mut() {
            Some(conn) => conn.ping().await.is_ok(),
            None => false,
        };
        if alive {
            return;
        }
        *guard = None;
        drop(guard);
        if let Err(e) = self.claim_identity().await {
            tracing::error!(error = %e, "lost the node id lock");
        }
    }

    /// Heartbeats until `shutdown`; then publishes OFFLINE.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if !self.settings.enabled {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = self.heartbeat_once().await {
                self.lock().connected_since = None;
                tracing::warn!(error = %e, "cannot publish the node's heartbeat");
            }
        }
    }

    /// Publishes OFFLINE after a clean shutdown (after delivery stopped).
    pub async fn leave(&self) {
        if !self.settings.enabled {
            return;
        }
        self.set_state(NodeState::Offline);
        if let Err(e) = self.heartbeat_once().await {
            tracing::warn!(error = %e, "cannot publish the node's OFFLINE state");
        }
        *self.identity.lock().await = None;
    }

    /// Every known node, ordered by id: figures as last published, except this node's own, which
    /// are live. Empty when not clustered.
    pub async fn view(&self) -> Result<Vec<NodeView>, StoreError> {
        if !self.settings.enabled {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let rows = self.store.cluster_nodes().await?;
        let own = self.store.mail_counts(self.node_id.as_str()).await?;
        Ok(rows.into_iter().map(|row| self.present(row, now, own)).collect())
    }

    /// Every node the database knows, as its row shows it now, with whether a drain was asked of
    /// it: what a tool outside the cluster sees (no node's figures are live here), whether or not
    /// this process runs in cluster mode.
    pub async fn status(&self) -> Result<Vec<NodeStatus>, StoreError> {
        let now = now_ms();
        let rows = self.store.cluster_nodes().await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let drain_requested = row.drain_requested;
                NodeStatus {
                    node: NodeView::of_row(row, now, self.settings.heartbeat_timeout),
                    drain_requested,
                }
            })
            .collect())
    }

    /// Asks `node` to drain (deliver what it holds, take no new mail) or to take work again; the
    /// node follows at its next heartbeat. `false` when the database knows no such node.
    pub async fn set_drain(&self, node: &str, drain: bool) -> Result<bool, StoreError> {
        let found = self.store.request_drain(node, drain).await?;
        if found {
            tracing::info!(node, drain, "drain requested");
        }
        Ok(found)
    }

    fn present(&self, row: NodeRow, now: i64, own: (i64, i64)) -> NodeView {
        if row.node_id == self.node_id.as_str() {
            return NodeView {
                node_id: row.node_id,
                state: self.state(),
                heartbeat_at: row.heartbeat_at,
                queue_size: own.0,
                error_size: own.1,
                stopped: false,
            };
        }
        NodeView::of_row(row, now, self.settings.heartbeat_timeout)
    }
}

impl NodeView {
    /// Another node as its row shows it at `now`: OFFLINE once silent for `heartbeat_timeout`.
    pub fn of_row(row: NodeRow, now: i64, heartbeat_timeout: Duration) -> NodeView {
        let stale = now - row.heartbeat_at > ms(heartbeat_timeout);
        // Only `leave` publishes OFFLINE; a crashed node's row keeps the state it last had (and a
        // state this version does not know is not taken for a clean stop).
        let stopped = row.state == NodeState::Offline.as_str();
        let state = if stale {
            NodeState::Offline
        } else {
            NodeState::parse(&row.state)
        };
        // Once adopted, a dead node holds nothing.
        let (queue_size, error_size) = if row.adopted_by.is_some() {
            (0, 0)
        } else {
            (row.queue_size, row.error_size)
        };
        NodeView {
            node_id: row.node_id,
            state,
            heartbeat_at: row.heartbeat_at,
            queue_size,
            error_size,
            stopped,
        }
    }
}
