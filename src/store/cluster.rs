//! Cluster membership rows, and the adoption of a dead node's mail.

use sqlx::FromRow;

use super::{Db, Store, StoreError, on_pool, on_read_pool};

/// A node's row as published.
#[derive(Debug, Clone, FromRow)]
pub struct NodeRow {
    pub node_id: String,
    pub state: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub state_since: i64,
    pub queue_size: i64,
    pub error_size: i64,
    pub drain_requested: bool,
    pub adopted_by: Option<String>,
}

/// What a node publishes on each heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat<'a> {
    pub node_id: &'a str,
    pub state: &'a str,
    pub started_at: i64,
    pub now: i64,
    pub state_since: i64,
    pub queue_size: i64,
    pub error_size: i64,
}

impl Store {
    /// Publishes a heartbeat (inserting the row on the first one). Returns whether an admin asked
    /// this node to drain.
    pub async fn publish_heartbeat(&self, beat: &Heartbeat<'_>) -> Result<bool, StoreError> {
        let drain: bool = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO cluster_nodes (node_id, state, started_at, heartbeat_at, state_since, queue_size, error_size) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (node_id) DO UPDATE SET state = EXCLUDED.state, started_at = EXCLUDED.started_at, \
                 heartbeat_at = EXCLUDED.heartbeat_at, state_since = EXCLUDED.state_since, \
                 queue_size = EXCLUDED.queue_size, error_size = EXCLUDED.error_size, \
                 adopted_by = NULL, adopted_at = NULL \
                 RETURNING drain_requested",
            )
            .bind(beat.node_id)
            .bind(beat.state)
            .bind(beat.started_at)
            .bind(beat.now)
            .bind(beat.state_since)
            .bind(beat.queue_size)
            .bind(beat.error_size)
            .fetch_one(pool)
            .await
        })?;
        Ok(drain)
    }

    /// Every known node, by id.
    pub async fn cluster_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT node_id, state, started_at, heartbeat_at, state_since, queue_size, error_size, \
                 drain_requested, adopted_by FROM cluster_nodes ORDER BY node_id",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Asks a node to drain (or to take work again). Returns false when the node is unknown.
    pub async fn request_drain(&self, node_id: &str, drain: bool) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("UPDATE cluster_nodes SET drain_requested = $1 WHERE node_id = $2")
                .bind(drain)
                .bind(node_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Forgets nodes that have been silent since before `before`.
    pub async fn prune_nodes(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM cluster_nodes WHERE heartbeat_at < $1 AND node_id NOT IN (SELECT DISTINCT node_id FROM mail_messages)")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Takes over the mail of one node that is offline since before `offline_before` (its last
    /// heartbeat, or its clean shutdown): its queued, in-flight and errored messages move to `adopter`.
    ///
    /// Exactly one adopter wins even when several race: the dead node's row is locked
    /// (`FOR UPDATE SKIP LOCKED`) and re-checked inside the transaction. Returns the adopted node and
    /// how many messages moved.
    pub async fn adopt_dead_node_mail(
        &self,
        adopter: &str,
        stale_before: i64,
        offline_before: i64,
        now: i64,
    ) -> Result<Option<(String, u64)>, StoreError> {
        // Which node, if any: silent for long enough, or cleanly offline for long enough, with mail left.
        const CANDIDATE: &str = "node_id <> $1 AND adopted_by IS NULL \
             AND ((state <> 'OFFLINE' AND heartbeat_at < $2) OR (state = 'OFFLINE' AND state_since < $3)) \
             AND EXISTS (SELECT 1 FROM mail_messages m WHERE m.node_id = cluster_nodes.node_id)";
        macro_rules! adopt_in {
            ($tx:expr, $lock:expr) => {{
                let sql = format!("SELECT node_id FROM cluster_nodes WHERE {CANDIDATE} ORDER BY node_id LIMIT 1{}", $lock);
                let dead: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(adopter)
                    .bind(stale_before)
                    .bind(offline_before)
                    .fetch_optional(&mut *$tx)
                    .await?;
                match dead {
                    None => None,
                    Some(dead) => {
                        let moved = sqlx::query(
                            "UPDATE mail_messages SET node_id = $1, lease_until = NULL, updated_at = $2, \
                             state = CASE WHEN state = 'sending' THEN 'queued' ELSE state END WHERE node_id = $3",
                        )
                        .bind(adopter)
                        .bind(now)
                        .bind(&dead)
                        .execute(&mut *$tx)
                        .await?
                        .rows_affected();
                        sqlx::query("UPDATE cluster_nodes SET adopted_by = $1, adopted_at = $2 WHERE node_id = $3")
                            .bind(adopter)
                            .bind(now)
                            .bind(&dead)
                            .execute(&mut *$tx)
                            .await?;
                        Some((dead, moved))
                    }
                }
            }};
        }
        let adopted = match &self.db {
            Db::Sqlite { write, .. } => {
                let mut tx = write.begin().await?;
                let adopted = adopt_in!(tx, "");
                tx.commit().await?;
                adopted
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let adopted = adopt_in!(tx, " FOR UPDATE SKIP LOCKED");
                tx.commit().await?;
                adopted
            }
        };
        Ok(adopted)
    }
}
