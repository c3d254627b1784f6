//! The ticket worker's statements: claiming the head event of a problem, recording what became of
//! it (with the problem's issue, in the same transaction), and the admin's resend and delete.
//!
//! A key's *head* is its oldest event that is not `done`; only a head is ever claimed, so the events
//! of one problem are applied in order, and a head in `error` holds the key until an admin resends
//! or deletes it. Any node may claim any head: `claimed_by` and `lease_until` say who works on it and
//! until when, and a lease that ran out (its node died) makes the head claimable again.

use super::tickets::{TicketEventRow, TicketRow, upsert_ticket};
use super::{Db, Store, StoreError, on_pool, on_read_pool};

/// What became of a claimed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Applied to Jira (or nothing was needed): `done`.
    Applied,
    /// A passing fault: `queued` again, due at this time (ms since the epoch).
    RetryAt { at: i64, error: String },
    /// A fault retrying cannot fix: `error`, until an admin resends or deletes it.
    Parked { error: String },
}

/// Columns of a claimed event, as [`TicketEventRow`] reads them.
const RETURNING: &str = "RETURNING id, integration, dedup_key, status, source, context, state, node_id, \
     submitted_by, attempts, next_attempt_at, lease_until, last_error, created_at, updated_at";

/// The heads that may be claimed now: due and queued, or sending under a lease that ran out; with no
/// earlier event of their key still to apply, and none of their key held by a worker (an event
/// accepted by a node whose clock is behind may sort before a head already being applied).
const CLAIMABLE: &str = "((e.state = 'queued' AND e.next_attempt_at <= $2) OR (e.state = 'sending' AND e.lease_until < $2)) \
     AND NOT EXISTS (SELECT 1 FROM ticket_events p WHERE p.integration = e.integration \
     AND p.dedup_key = e.dedup_key AND p.state <> 'done' AND p.id < e.id) \
     AND NOT EXISTS (SELECT 1 FROM ticket_events s WHERE s.integration = e.integration \
     AND s.dedup_key = e.dedup_key AND s.state = 'sending' AND s.id <> e.id AND s.lease_until >= $2)";

impl Store {
    /// Claims up to `limit` heads for `worker` until `lease_until`, oldest due first. The claim
    /// re-checks each row's state, so two nodes never hold the same event.
    pub async fn claim_ticket_events(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<TicketEventRow>, StoreError> {
        // PostgreSQL: rows another node is claiming are skipped; the outer condition is evaluated
        // again on the row as it is once locked, so a head claimed meanwhile is not taken twice.
        let lock = match self.db {
            Db::Sqlite { .. } => "",
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE ticket_events SET state = 'sending', claimed_by = $1, lease_until = $3, updated_at = $2 \
             WHERE id IN (SELECT e.id FROM ticket_events e WHERE {CLAIMABLE} \
             ORDER BY e.next_attempt_at, e.id LIMIT $4{lock}) \
             AND (state = 'queued' OR (state = 'sending' AND lease_until < $2)) {RETURNING}"
        );
        let mut rows: Vec<TicketEventRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(worker)
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    /// Extends `worker`'s lease on an event before a write to Jira; false when the lease is no longer
    /// its own (it ran out and another worker took the event, or an admin deleted it).
    pub async fn renew_ticket_lease(
        &self,
        worker: &str,
        id: &str,
        lease_until: i64,
        new_lease_until: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE ticket_events SET lease_until = $1 WHERE id = $2 AND state = 'sending' AND claimed_by = $3 \
                 AND lease_until = $4",
            )
            .bind(new_lease_until)
            .bind(id)
            .bind(worker)
            .bind(lease_until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Puts back the events `worker` holds: at start-up, what a node held when it stopped.
    pub async fn release_ticket_events(&self, worker: &str) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE ticket_events SET state = 'queued', lease_until = NULL, claimed_by = NULL \
                 WHERE state = 'sending' AND claimed_by = $1",
            )
            .bind(worker)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Records what became of a claimed event and, in the same transaction, its problem's issue.
    /// The event is updated only while `worker` still holds it under `lease_until` (an admin may have
    /// deleted it, or its lease run out); the issue is recorded in any case, since it says what Jira
    /// now holds. Returns whether the event was still held.
    pub async fn finish_ticket_event(
        &self,
        worker: &str,
        id: &str,
        lease_until: i64,
        outcome: &EventOutcome,
        ticket: Option<&TicketRow>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (state, next_at, error) = match outcome {
            EventOutcome::Applied => ("done", None, None),
            EventOutcome::RetryAt { at, error } => ("queued", Some(*at), Some(error.as_str())),
            EventOutcome::Parked { error } => ("error", None, Some(error.as_str())),
        };
        let held = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                if let Some(ticket) = ticket {
                    upsert_ticket!(&mut *tx, ticket)?;
                }
                let held = sqlx::query(
                    "UPDATE ticket_events SET state = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
                     last_error = $3, attempts = attempts + 1, lease_until = NULL, claimed_by = NULL, \
                     updated_at = $4 WHERE id = $5 AND state = 'sending' AND claimed_by = $6 AND lease_until = $7",
                )
                .bind(state)
                .bind(next_at)
                .bind(error)
                .bind(now)
                .bind(id)
                .bind(worker)
                .bind(lease_until)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                tx.commit().await?;
                Ok::<bool, sqlx::Error>(held)
            }
            .await
        })?;
        Ok(held)
    }

    /// Sends a problem's parked events again: `error` → `queued`, due now. Returns how many.
    pub async fn resend_ticket_events(&self, integration: &str, dedup_key: &str, now: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE ticket_events SET state = 'queued', next_attempt_at = $3, updated_at = $3 \
                 WHERE integration = $1 AND dedup_key = $2 AND state = 'error'",
            )
            .bind(integration)
            .bind(dedup_key)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Deletes a problem's events not yet applied (queued or parked; one being sent is left to
    /// finish). With `forget`, also Herald's record of its issue, so that the next event searches
    /// Jira and, finding nothing, creates a new one. Returns (events deleted, issue forgotten).
    pub async fn delete_ticket_events(
        &self,
        integration: &str,
        dedup_key: &str,
        forget: bool,
    ) -> Result<(u64, bool), StoreError> {
        let result = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let events = sqlx::query(
                    "DELETE FROM ticket_events WHERE integration = $1 AND dedup_key = $2 \
                     AND state IN ('queued', 'error')",
                )
                .bind(integration)
                .bind(dedup_key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let forgotten = if forget {
                    sqlx::query("DELETE FROM tickets WHERE integration = $1 AND dedup_key = $2")
                        .bind(integration)
                        .bind(dedup_key)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        > 0
                } else {
                    false
                };
                tx.commit().await?;
                Ok::<(u64, bool), sqlx::Error>((events, forgotten))
            }
            .await
        })?;
        Ok(result)
    }

    /// Deletes applied events last updated before `before` (the ticket map keeps each key's last).
    pub async fn prune_done_ticket_events(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM ticket_events WHERE state = 'done' AND updated_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }
}

/// One problem as the ticket list shows it: Herald's record of its issue (if any) and its oldest
/// event still to apply (if any).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProblemRow {
    pub integration: String,
    pub dedup_key: String,
    /// `error` (its head is parked), `pending` (events wait), or the issue's `open`, `resolved`,
    /// `creating`.
    pub state: String,
    pub issue_key: Option<String>,
    pub issue_url: Option<String>,
    pub summary: Option<String>,
    /// `creating`, `open` or `resolved`; `None` before Herald knows an issue.
    pub issue_state: Option<String>,
    pub resolved_at: Option<i64>,
    pub last_event_id: Option<String>,
    pub last_event_at: Option<i64>,
    /// Events not yet applied.
    pub pending: i64,
    pub head_id: Option<String>,
    pub head_status: Option<String>,
    pub head_attempts: Option<i32>,
    pub head_next_attempt_at: Option<i64>,
    pub head_last_error: Option<String>,
}

/// Which problems to list, ordered by integration and dedup key.
#[derive(Debug, Clone, Default)]
pub struct ProblemFilter {
    pub integration: Option<String>,
    pub dedup_key: Option<String>,
    /// One of [`ProblemRow::state`]'s values; every state when `None`.
    pub state: Option<&'static str>,
    /// Every state but this one (the console lists the error list apart from the rest).
    pub except_state: Option<&'static str>,
    /// Only problems after this (integration, dedup key) (paging).
    pub after: Option<(String, String)>,
    pub limit: i64,
}

/// Every problem with its state: Herald's issues and the keys with events still to apply.
macro_rules! problems_cte {
    () => {
        "WITH pending AS (SELECT integration, dedup_key, COUNT(*) AS pending, MIN(id) AS head_id \
         FROM ticket_events WHERE state <> 'done' GROUP BY integration, dedup_key), \
         problem_keys AS (SELECT integration, dedup_key FROM tickets UNION SELECT integration, dedup_key FROM pending), \
         problems AS (SELECT k.integration, k.dedup_key, \
           CASE WHEN h.state = 'error' THEN 'error' WHEN p.pending > 0 THEN 'pending' ELSE t.state END AS state, \
           t.issue_key, t.issue_url, t.summary, t.state AS issue_state, t.resolved_at, t.last_event_id, t.last_event_at, \
           COALESCE(p.pending, 0) AS pending, h.id AS head_id, h.status AS head_status, h.attempts AS head_attempts, \
           h.next_attempt_at AS head_next_attempt_at, h.last_error AS head_last_error \
         FROM problem_keys k LEFT JOIN tickets t ON t.integration = k.integration AND t.dedup_key = k.dedup_key \
         LEFT JOIN pending p ON p.integration = k.integration AND p.dedup_key = k.dedup_key \
         LEFT JOIN ticket_events h ON h.id = p.head_id)"
    };
}

const PROBLEMS: &str = concat!(
    problems_cte!(),
    " SELECT * FROM problems WHERE ($1 IS NULL OR integration = $1) AND ($2 IS NULL OR dedup_key = $2) \
     AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR integration > $4 OR (integration = $4 AND dedup_key > $5)) \
     AND ($7 IS NULL OR state <> $7) ORDER BY integration, dedup_key LIMIT $6"
);

const PROBLEM_COUNTS: &str = concat!(
    problems_cte!(),
    " SELECT state, COUNT(*) AS problems FROM problems WHERE integration = $1 GROUP BY state ORDER BY state"
);

impl Store {
    /// Problems with their issue and their oldest event still to apply.
    pub async fn ticket_problems(&self, filter: &ProblemFilter) -> Result<Vec<ProblemRow>, StoreError> {
        let (after_integration, after_key) = match &filter.after {
            Some((i, k)) => (Some(i.as_str()), Some(k.as_str())),
            None => (None, None),
        };
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(PROBLEMS)
                .bind(filter.integration.as_deref())
                .bind(filter.dedup_key.as_deref())
                .bind(filter.state)
                .bind(after_integration)
                .bind(after_key)
                .bind(filter.limit)
                .bind(filter.except_state)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// How many problems an integration has in each state ([`ProblemRow::state`]'s values).
    pub async fn ticket_problem_counts(&self, integration: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let counts = on_read_pool!(self, |pool| {
            sqlx::query_as(PROBLEM_COUNTS).bind(integration).fetch_all(pool).await
        })?;
        Ok(counts)
    }
}
