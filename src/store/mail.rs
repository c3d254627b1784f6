//! The mail queue's tables: messages, idempotency keys and live counts.
//!
//! Writes come in batches (group commit on submission, batched completions on delivery) so that one
//! transaction, and one fsync, covers many messages.

use sqlx::FromRow;

use super::{Db, Store, StoreError, on_pool, on_read_pool};

/// A message taken for delivery.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedMail {
    pub id: String,
    pub content: String,
    pub raw: Option<Vec<u8>>,
    pub envelope_from: String,
    pub recipients: String,
    pub envelope_params: String,
    pub created_at: i64,
    pub attempts: i32,
}

/// The result of one delivery attempt, to record.
#[derive(Debug, Clone)]
pub enum Completion {
    Delivered {
        id: String,
    },
    Retry {
        id: String,
        attempts: i32,
        next_attempt_at: i64,
        error: String,
        /// The recipients' new states (`recipients` column), when the attempt changed them.
        recipients: Option<String>,
    },
    Park {
        id: String,
        attempts: i32,
        error: String,
        recipients: Option<String>,
    },
    /// Back to the queue as it was, uncharged: it was not tried (its relay could not be reached).
    Release {
        id: String,
        error: String,
    },
}

/// A message as listed to admins.
#[derive(Debug, Clone, FromRow)]
pub struct MailSummary {
    pub id: String,
    pub node_id: String,
    pub state: String,
    pub envelope_from: String,
    pub recipients: String,
    pub subject: String,
    pub size_bytes: i64,
    pub submitted_by: String,
    pub protocol: String,
    pub client_addr: Option<String>,
    pub message_id: Option<String>,
    pub envelope_params: String,
    pub attempts: i32,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct MailFilter {
    /// `queued` / `sending` / `error`; several allowed.
    pub states: Vec<&'static str>,
    pub node_id: Option<String>,
    /// Only messages whose id sorts after this one (paging).
    pub after: Option<String>,
    pub limit: i64,
}

const SUMMARY_COLUMNS: &str = "id, node_id, state, envelope_from, recipients, subject, size_bytes, submitted_by, \
     protocol, client_addr, message_id, envelope_params, attempts, created_at, next_attempt_at, last_error";

/// Applies completions inside one transaction on either backend; delivered messages are deleted
/// by the caller with one statement.
macro_rules! complete_in {
    ($tx:expr, $completions:expr, $now:expr) => {{
        for completion in $completions {
            match completion {
                Completion::Delivered { .. } => {}
                Completion::Retry {
                    id,
                    attempts,
                    next_attempt_at,
                    error,
                    recipients,
                } => {
                    sqlx::query(
                        "UPDATE mail_messages SET state = 'queued', attempts = $1, next_attempt_at = $2, \
                         last_error = $3, lease_until = NULL, updated_at = $4, recipients = COALESCE($6, recipients) \
                         WHERE id = $5 AND state = 'sending'",
                    )
                    .bind(attempts)
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind($now)
                    .bind(id)
                    .bind(recipients)
                    .execute(&mut *$tx)
                    .await?;
                }
                Completion::Release { id, error } => {
                    sqlx::query(
                        "UPDATE mail_messages SET state = 'queued', last_error = $1, lease_until = NULL, \
                         updated_at = $2 WHERE id = $3 AND state = 'sending'",
                    )
                    .bind(error)
                    .bind($now)
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?;
                }
                Completion::Park {
                    id,
                    attempts,
                    error,
                    recipients,
                } => {
                    sqlx::query(
                        "UPDATE mail_messages SET state = 'error', attempts = $1, last_error = $2, \
                         lease_until = NULL, updated_at = $3, recipients = COALESCE($5, recipients) \
                         WHERE id = $4 AND state = 'sending'",
                    )
                    .bind(attempts)
                    .bind(error)
                    .bind($now)
                    .bind(id)
                    .bind(recipients)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
        }
    }};
}

impl Store {
    /// Takes up to `limit` due messages of this node for delivery, marking them `sending` until
    /// `lease_until`. On PostgreSQL, rows locked by another transaction are skipped.
    pub async fn claim_due_mail(
        &self,
        node_id: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let rows = match &self.db {
            Db::Sqlite { write: pool, .. } => {
                sqlx::query_as(
                    "UPDATE mail_messages SET state = 'sending', lease_until = $1, updated_at = $2 \
                     WHERE id IN (SELECT id FROM mail_messages WHERE node_id = $3 AND state = 'queued' \
                     AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $4) \
                     RETURNING id, content, raw, envelope_from, recipients, envelope_params, created_at, attempts",
                )
                .bind(lease_until)
                .bind(now)
                .bind(node_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "UPDATE mail_messages SET state = 'sending', lease_until = $1, updated_at = $2 \
                     WHERE id IN (SELECT id FROM mail_messages WHERE node_id = $3 AND state = 'queued' \
                     AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, content, raw, envelope_from, recipients, envelope_params, created_at, attempts",
                )
                .bind(lease_until)
                .bind(now)
                .bind(node_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows)
    }

    /// Records delivery outcomes in one transaction. Only rows still `sending` are touched, so an
    /// admin's delete during delivery wins.
    pub async fn complete_mail(&self, completions: &[Completion], now: i64) -> Result<(), StoreError> {
        let delivered: Vec<String> = completions
            .iter()
            .filter_map(|c| match c {
                Completion::Delivered { id } => Some(id.clone()),
                _ => None,
            })
            .collect();
        match &self.db {
            Db::Sqlite { write: pool, .. } => {
                let mut tx = pool.begin().await?;
                if !delivered.is_empty() {
                    sqlx::query(
                        "DELETE FROM mail_messages WHERE state = 'sending' AND id IN (SELECT value FROM json_each($1))",
                    )
                    .bind(serde_json::Value::from(delivered).to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                complete_in!(tx, completions, now);
                tx.commit().await?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                if !delivered.is_empty() {
                    sqlx::query("DELETE FROM mail_messages WHERE state = 'sending' AND id = ANY($1)")
                        .bind(delivered)
                        .execute(&mut *tx)
                        .await?;
                }
                complete_in!(tx, completions, now);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Puts this node's `sending` messages back in the queue: called at start-up (whatever was in
    /// flight when the process died is sent again) and for leases that ran out.
    pub async fn release_sending_mail(
        &self,
        node_id: &str,
        lease_expired_before: Option<i64>,
    ) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE mail_messages SET state = 'queued', lease_until = NULL \
                 WHERE node_id = $1 AND state = 'sending' AND ($2 IS NULL OR lease_until < $2)",
            )
            .bind(node_id)
            .bind(lease_expired_before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// `(size, errorSize)` of a node: messages waiting or being sent, and messages in the error queue.
    /// Reads the trigger-maintained counts, so it costs the same with a million messages queued.
    pub async fn mail_counts(&self, node_id: &str) -> Result<(i64, i64), StoreError> {
        let rows: Vec<(String, i64)> = on_read_pool!(self, |pool| {
            sqlx::query_as("SELECT state, n FROM mail_queue_counts WHERE node_id = $1")
                .bind(node_id)
                .fetch_all(pool)
                .await
        })?;
        let count = |states: &[&str]| {
            rows.iter()
                .filter(|(s, _)| states.contains(&s.as_str()))
                .map(|(_, n)| n)
                .sum()
        };
        Ok((count(&["queued", "sending"]), count(&["error"])))
    }

    /// Acceptance time of this node's oldest message not yet delivered (queued or sending).
    pub async fn oldest_queued_mail(&self, node_id: &str) -> Result<Option<i64>, StoreError> {
        let oldest: Option<i64> = on_read_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT MIN(created_at) FROM mail_messages WHERE node_id = $1 AND state IN ('queued', 'sending')",
            )
            .bind(node_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(oldest)
    }

    /// When this node's next queued message is due, if any.
    pub async fn next_mail_due(&self, node_id: &str) -> Result<Option<i64>, StoreError> {
        let next: Option<i64> = on_read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM mail_messages WHERE node_id = $1 AND state = 'queued'")
                .bind(node_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(next)
    }

    pub async fn list_mail(&self, filter: &MailFilter) -> Result<Vec<MailSummary>, StoreError> {
        let states = filter
            .states
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        // `states` holds only the fixed names of MailFilter::states, never client text.
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM mail_messages WHERE state IN ({states}) \
             AND ($1 IS NULL OR node_id = $1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(filter.node_id.as_deref())
                .bind(filter.after.as_deref())
                .bind(filter.limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    pub async fn mail_by_id(&self, id: &str) -> Result<Option<MailSummary>, StoreError> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM mail_messages WHERE id = $1");
        let row = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// A message's content as accepted (the submission's JSON).
    pub async fn mail_content(&self, id: &str) -> Result<Option<String>, StoreError> {
        let content = on_read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT content FROM mail_messages WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(content)
    }

    /// Moves errored messages (one, or all) back to the queue of `node_id`, due now, attempts reset.
    pub async fn resend_mail(&self, id: Option<&str>, node_id: &str, now: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE mail_messages SET state = 'queued', node_id = $1, attempts = 0, next_attempt_at = $2, \
                 updated_at = $2 WHERE state = 'error' AND ($3 IS NULL OR id = $3)",
            )
            .bind(node_id)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Deletes messages in the given state (one by id, or all).
    pub async fn delete_mail(&self, state: &'static str, id: Option<&str>) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM mail_messages WHERE state = $1 AND ($2 IS NULL OR id = $2)")
                .bind(state)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Makes every queued message due now (skipping its backoff): one node's, or every node's.
    pub async fn flush_mail(&self, node_id: Option<&str>, now: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE mail_messages SET next_attempt_at = $1 WHERE state = 'queued' AND next_attempt_at > $1 \
                 AND ($2 IS NULL OR node_id = $2)",
            )
            .bind(now)
            .bind(node_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Moves a node's queued messages accepted before `created_before` to the error queue with `error`
    /// (they waited longer than the queue lets mail wait, with no relay to try them on).
    pub async fn park_expired_mail(
        &self,
        node_id: &str,
        created_before: i64,
        error: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE mail_messages SET state = 'error', last_error = $1, updated_at = $2 \
                 WHERE node_id = $3 AND state = 'queued' AND created_at < $4",
            )
            .bind(error)
            .bind(now)
            .bind(node_id)
            .bind(created_before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Forgets idempotency keys older than `before`.
    pub async fn prune_idempotency_keys(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM mail_idempotency WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }
}
