//! Integrations (configuration JSON + sealed secret) and their check history.

use sqlx::FromRow;

use super::{Store, StoreError, on_pool, on_read_pool};

/// An integration as stored: the service parses `config` and opens `secret`.
#[derive(Debug, Clone, FromRow)]
pub struct StoredIntegration {
    pub name: String,
    pub revision: i64,
    pub config: String,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One check result in the history.
#[derive(Debug, Clone, FromRow)]
pub struct CheckRecord {
    pub integration_name: String,
    pub status: String,
    pub failed_step: Option<String>,
    pub reason: String,
    pub checked_at: i64,
    pub duration_ms: i64,
    /// The check's full report as JSON (steps included); None for checks recorded before it was kept.
    pub report: Option<String>,
}

const SELECT: &str = "SELECT name, revision, config, secret, created_at, updated_at FROM integrations";

impl Store {
    /// Stores a new integration (revision 1).
    pub async fn insert_integration(
        &self,
        name: &str,
        config: &str,
        secret: &str,
        now: i64,
    ) -> Result<StoredIntegration, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO integrations (name, revision, config, secret, created_at, updated_at) \
                 VALUES ($1, 1, $2, $3, $4, $4)",
            )
            .bind(name)
            .bind(config)
            .bind(secret)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|e| StoreError::conflict_or(e, || format!("an integration named `{name}`")))?;
        Ok(StoredIntegration {
            name: name.to_owned(),
            revision: 1,
            config: config.to_owned(),
            secret: secret.to_owned(),
            created_at: now,
            updated_at: now,
        })
    }

    /// Replaces an integration's configuration and secret; `None` when there is none with this name.
    pub async fn update_integration(
        &self,
        name: &str,
        config: &str,
        secret: &str,
        now: i64,
    ) -> Result<Option<StoredIntegration>, StoreError> {
        let sql = "UPDATE integrations SET config = $1, secret = $2, updated_at = $3, revision = revision + 1 \
                   WHERE name = $4 RETURNING name, revision, config, secret, created_at, updated_at";
        let row: Option<StoredIntegration> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(config)
                .bind(secret)
                .bind(now)
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    pub async fn integration(&self, name: &str) -> Result<Option<StoredIntegration>, StoreError> {
        let sql = format!("{SELECT} WHERE name = $1");
        // On SQLite a reader: every event post reads its integration, and on the one writer
        // connection it would queue behind (and hold up) the group commits.
        let row: Option<StoredIntegration> = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// Every integration, by name.
    pub async fn list_integrations(&self) -> Result<Vec<StoredIntegration>, StoreError> {
        let sql = format!("{SELECT} ORDER BY name");
        let rows: Vec<StoredIntegration> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Deletes an integration and its history. Returns false when there was none with this name.
    pub async fn delete_integration(&self, name: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM integrations WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Appends check results in one transaction; results of integrations deleted meanwhile are dropped.
    pub async fn record_checks(&self, records: &[CheckRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let sql = "INSERT INTO integration_checks \
                   (integration_name, status, failed_step, reason, checked_at, duration_ms, report) \
                   SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM integrations WHERE name = $1)";
        on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                for r in records {
                    sqlx::query(sql)
                        .bind(&r.integration_name)
                        .bind(&r.status)
                        .bind(&r.failed_step)
                        .bind(&r.reason)
                        .bind(r.checked_at)
                        .bind(r.duration_ms)
                        .bind(&r.report)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await
        })?;
        Ok(())
    }

    /// The newest `limit` results of one integration, newest first.
    pub async fn check_history(&self, name: &str, limit: i64) -> Result<Vec<CheckRecord>, StoreError> {
        let sql = "SELECT integration_name, status, failed_step, reason, checked_at, duration_ms, report \
                   FROM integration_checks WHERE integration_name = $1 ORDER BY id DESC LIMIT $2";
        let rows: Vec<CheckRecord> = on_pool!(self, |pool| {
            sqlx::query_as(sql).bind(name).bind(limit).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Keeps only the newest `keep` results of each integration; returns how many were removed.
    pub async fn prune_check_history(&self, keep: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM integration_checks WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
                   (PARTITION BY integration_name ORDER BY id DESC) AS rn FROM integration_checks) ranked \
                   WHERE rn > $1)";
        let n = on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(keep)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }
}
