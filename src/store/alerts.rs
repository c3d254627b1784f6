//! Health alerts: the state of each alert condition, and the cluster-wide figures the rules read.

use sqlx::FromRow;

use super::{Db, Store, StoreError, on_pool, on_read_pool};

/// The PostgreSQL advisory lock of alert evaluation, one per database (tests share a server).
const LOCK_ALERTS: &str = "SELECT pg_try_advisory_lock(hashtextextended('herald-alerts:' || current_database(), 0))";
const UNLOCK_ALERTS: &str = "SELECT pg_advisory_unlock(hashtextextended('herald-alerts:' || current_database(), 0))";

/// Held while this process evaluates the alert rules, so that nodes evaluate one at a time and
/// each sees the states the previous one saved. Release it with `release`; if it is dropped
/// instead (an error on the way), its connection is closed, which releases the lock too.
pub struct AlertsLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
}

impl AlertsLock {
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query(UNLOCK_ALERTS).execute(&mut *conn).await;
            if unlocked.is_err() {
                drop(conn.detach());
            }
        }
    }
}

impl Drop for AlertsLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Back in the pool it would keep the lock: closed, it lets it go.
            drop(conn.detach());
        }
    }
}

/// One alert condition's state, as stored in `alert_state`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AlertState {
    pub key: String,
    /// The state last mailed.
    pub firing: bool,
    /// How many transitions have been mailed for this condition.
    pub transitions: i64,
    /// When the state last mailed began to hold (ms).
    pub since: i64,
    /// When the opposite state was first seen, while it waits out the debounce (ms).
    pub pending_since: Option<i64>,
    pub summary: String,
    pub updated_at: i64,
}

/// An integration and its newest recorded check (none when it was never checked).
#[derive(Debug, Clone, FromRow)]
pub struct LatestCheck {
    pub name: String,
    pub created_at: i64,
    /// The integration's stored configuration (JSON, no secret), for listing it.
    pub config: String,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub checked_at: Option<i64>,
}

/// One node's mail figures, counted live from the queue (not as published by its heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct NodeMailFigures {
    pub node_id: String,
    /// Messages waiting or being sent.
    pub queue_size: i64,
    /// Messages in the error queue.
    pub error_size: i64,
    /// Acceptance time of the oldest message waiting or being sent.
    pub oldest_queued_at: Option<i64>,
}

const STATE_COLUMNS: &str = "key, firing, transitions, since, pending_since, summary, updated_at";

const UPSERT_STATE: &str = "INSERT INTO alert_state (key, firing, transitions, since, pending_since, summary, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO UPDATE SET firing = EXCLUDED.firing, \
     transitions = EXCLUDED.transitions, since = EXCLUDED.since, pending_since = EXCLUDED.pending_since, \
     summary = EXCLUDED.summary, updated_at = EXCLUDED.updated_at";

/// Writes states and removes others inside one transaction, on either backend.
macro_rules! save_states_in {
    ($tx:expr, $upserts:expr, $deletes:expr) => {{
        for state in $upserts {
            sqlx::query(UPSERT_STATE)
                .bind(&state.key)
                .bind(state.firing)
                .bind(state.transitions)
                .bind(state.since)
                .bind(state.pending_since)
                .bind(&state.summary)
                .bind(state.updated_at)
                .execute(&mut *$tx)
                .await?;
        }
        for key in $deletes {
            sqlx::query("DELETE FROM alert_state WHERE key = $1")
                .bind(key)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

impl Store {
    /// Takes the cluster-wide alert evaluation lock, or None when another node holds it. On SQLite
    /// (a single node) it is always granted.
    pub async fn try_lock_alerts(&self) -> Result<Option<AlertsLock>, StoreError> {
        match &self.db {
            Db::Sqlite { .. } => Ok(Some(AlertsLock { conn: None })),
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let got: bool = sqlx::query_scalar(LOCK_ALERTS).fetch_one(&mut *conn).await?;
                Ok(got.then_some(AlertsLock { conn: Some(conn) }))
            }
        }
    }

    /// Every stored alert condition, by key.
    pub async fn alert_states(&self) -> Result<Vec<AlertState>, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM alert_state ORDER BY key");
        let rows = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// The alert conditions whose last mailed state is firing, oldest first.
    pub async fn firing_alert_states(&self) -> Result<Vec<AlertState>, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM alert_state WHERE firing = $1 ORDER BY since, key");
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(true)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Writes `upserts` and deletes the states of `deletes` in one transaction.
    pub async fn save_alert_states(&self, upserts: &[AlertState], deletes: &[String]) -> Result<(), StoreError> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        match &self.db {
            Db::Sqlite { write: pool, .. } => {
                let mut tx = pool.begin().await?;
                save_states_in!(tx, upserts, deletes);
                tx.commit().await?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                save_states_in!(tx, upserts, deletes);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Every integration with its newest recorded check, by name. "Newest" is the last one written
    /// (the history's order), whichever node ran it.
    pub async fn latest_integration_checks(&self) -> Result<Vec<LatestCheck>, StoreError> {
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT i.name, i.created_at, i.config, c.status, c.reason, c.checked_at FROM integrations i \
                 LEFT JOIN integration_checks c ON c.id = \
                 (SELECT MAX(l.id) FROM integration_checks l WHERE l.integration_name = i.name) \
                 ORDER BY i.name",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// The mail figures of every node that holds mail, by node id: sizes from the trigger-kept
    /// counts, and the oldest waiting message found through the `(node_id, state, created_at)` index.
    pub async fn mail_figures_by_node(&self) -> Result<Vec<NodeMailFigures>, StoreError> {
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT c.node_id, \
                 CAST(SUM(CASE WHEN c.state IN ('queued', 'sending') THEN c.n ELSE 0 END) AS BIGINT) AS queue_size, \
                 CAST(SUM(CASE WHEN c.state = 'error' THEN c.n ELSE 0 END) AS BIGINT) AS error_size, \
                 MIN(CASE WHEN c.state IN ('queued', 'sending') AND c.n > 0 THEN \
                     (SELECT MIN(m.created_at) FROM mail_messages m WHERE m.node_id = c.node_id AND m.state = c.state) \
                 END) AS oldest_queued_at \
                 FROM mail_queue_counts c GROUP BY c.node_id HAVING SUM(c.n) > 0 ORDER BY c.node_id",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
