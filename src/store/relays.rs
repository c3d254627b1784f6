//! Each delivering node's mail relays and their health, as `herald mail status`, the console and the
//! health alerts read them (the delivery engine keeps the live state in memory and writes it here
//! when it changes).

use sqlx::FromRow;

use super::{Db, Store, StoreError, on_pool, on_read_pool};

/// One relay of one node, as last written.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RelayRow {
    pub node_id: String,
    /// The relay's URL without its password.
    pub relay: String,
    /// Order of preference, 0 first.
    pub position: i32,
    pub up: bool,
    /// Up, or down, since (ms since the epoch).
    pub since: i64,
    /// Why it is down.
    pub reason: Option<String>,
    /// Failed probes since it went down.
    pub probes: i32,
    pub next_probe_at: Option<i64>,
    pub updated_at: i64,
}

macro_rules! replace_in {
    ($tx:expr, $node_id:expr, $rows:expr) => {{
        sqlx::query("DELETE FROM mail_relays WHERE node_id = $1")
            .bind($node_id)
            .execute(&mut *$tx)
            .await?;
        for row in $rows {
            sqlx::query(
                "INSERT INTO mail_relays (node_id, relay, position, up, since, reason, probes, next_probe_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&row.node_id)
            .bind(&row.relay)
            .bind(row.position)
            .bind(row.up)
            .bind(row.since)
            .bind(&row.reason)
            .bind(row.probes)
            .bind(row.next_probe_at)
            .bind(row.updated_at)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

impl Store {
    /// Replaces a node's relays (its delivery started; none: it stopped).
    pub async fn replace_mail_relays(&self, node_id: &str, rows: &[RelayRow]) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite { write: pool, .. } => {
                let mut tx = pool.begin().await?;
                replace_in!(tx, node_id, rows);
                tx.commit().await?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                replace_in!(tx, node_id, rows);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Records one relay's health (a relay the node no longer lists is left alone).
    pub async fn update_mail_relay(&self, row: &RelayRow) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE mail_relays SET up = $1, since = $2, reason = $3, probes = $4, next_probe_at = $5, \
                 updated_at = $6 WHERE node_id = $7 AND relay = $8",
            )
            .bind(row.up)
            .bind(row.since)
            .bind(&row.reason)
            .bind(row.probes)
            .bind(row.next_probe_at)
            .bind(row.updated_at)
            .bind(&row.node_id)
            .bind(&row.relay)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Every node's relays, by node and order of preference.
    pub async fn mail_relays(&self) -> Result<Vec<RelayRow>, StoreError> {
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT node_id, relay, position, up, since, reason, probes, next_probe_at, updated_at \
                 FROM mail_relays ORDER BY node_id, position",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
