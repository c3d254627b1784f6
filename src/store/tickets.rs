//! Ticket events (the durable intake; see migrations/*/0011_tickets.sql for the design) and the map
//! from each problem's dedup key to its Jira issue.

use sqlx::FromRow;

use sqlx::Connection;

use super::writer::{Writer, WriterConn};
use super::{Store, StoreError, bulk, on_pool, on_read_pool};

/// One event to store, already validated; its context serialised.
#[derive(Debug, Clone)]
pub struct NewTicketEvent {
    pub id: String,
    pub integration: String,
    pub dedup_key: String,
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// `alertmanager` or `api`.
    pub source: &'static str,
    pub context: String,
}

/// One post (one HTTP request): its events are stored together, or not at all.
#[derive(Debug, Clone)]
pub struct NewEventPost {
    pub node_id: String,
    pub submitted_by: String,
    pub now: i64,
    /// `(key, hash of the request)` when the client sent `Idempotency-Key`.
    pub idempotency: Option<(String, String)>,
    pub events: Vec<NewTicketEvent>,
}

/// What became of one post of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Stored,
    /// The key was used before for the same request: the ids the first post was given.
    Duplicate(Vec<String>),
    /// The key was used before for a different request.
    KeyConflict,
}

/// An event as stored.
#[derive(Debug, Clone, FromRow)]
pub struct TicketEventRow {
    pub id: String,
    pub integration: String,
    pub dedup_key: String,
    pub status: String,
    pub source: String,
    pub context: String,
    pub state: String,
    pub node_id: String,
    pub submitted_by: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const EVENT_COLUMNS: &str = "id, integration, dedup_key, status, source, context, state, node_id, submitted_by, \
     attempts, next_attempt_at, lease_until, last_error, created_at, updated_at";

/// Which events to list, in id order.
#[derive(Debug, Clone, Default)]
pub struct TicketEventFilter {
    pub integration: Option<String>,
    pub dedup_key: Option<String>,
    /// Fixed state names (`queued`, `sending`, `error`, `done`); every state when empty.
    pub states: Vec<&'static str>,
    /// Only ids after this one (paging).
    pub after: Option<String>,
    pub limit: i64,
}

/// The events of one integration still to be applied, for metrics and alerts.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TicketEventFigures {
    pub integration: String,
    /// Queued or being sent.
    pub queued: i64,
    pub errors: i64,
    /// When the oldest queued (or sending) event was accepted.
    pub oldest_queued_at: Option<i64>,
}

/// One problem's Jira issue.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TicketRow {
    pub integration: String,
    pub dedup_key: String,
    pub issue_key: Option<String>,
    pub issue_id: Option<String>,
    /// `creating`, `open` or `resolved`.
    pub state: String,
    pub resolution: Option<String>,
    pub resolved_at: Option<i64>,
    pub last_comment_hash: Option<String>,
    pub last_event_id: Option<String>,
    pub last_event_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The summary the issue was created with.
    pub summary: Option<String>,
    /// The issue's page for people (`<base>/browse/KEY`).
    pub issue_url: Option<String>,
}

const TICKET_COLUMNS: &str = "integration, dedup_key, issue_key, issue_id, state, resolution, resolved_at, \
     last_comment_hash, last_event_id, last_event_at, created_at, updated_at, summary, issue_url";

const INSERT_KEY: &str = "INSERT INTO ticket_event_idempotency (principal, key, event_ids, request_hash, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal, key) DO NOTHING";

const FIND_KEY: &str = "SELECT event_ids, request_hash FROM ticket_event_idempotency WHERE principal = $1 AND key = $2";

/// Records the idempotency keys of a batch inside its transaction; returns each post's outcome and
/// the events to store (those of posts without a key, and of posts whose key is new).
macro_rules! claim_keys_in {
    ($tx:expr, $batch:expr) => {{
        let mut outcomes = Vec::with_capacity($batch.len());
        let mut to_store: Vec<(&NewEventPost, &NewTicketEvent)> = Vec::new();
        for post in $batch {
            if let Some((key, hash)) = &post.idempotency {
                let ids: Vec<&str> = post.events.iter().map(|e| e.id.as_str()).collect();
                let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let inserted = sqlx::query(INSERT_KEY)
                    .bind(&post.submitted_by)
                    .bind(key)
                    .bind(ids)
                    .bind(hash)
                    .bind(post.now)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                if inserted == 0 {
                    let (existing, existing_hash): (String, String) = sqlx::query_as(FIND_KEY)
                        .bind(&post.submitted_by)
                        .bind(key)
                        .fetch_one(&mut *$tx)
                        .await?;
                    outcomes.push(if &existing_hash == hash {
                        let ids: Vec<String> =
                            serde_json::from_str(&existing).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        PostOutcome::Duplicate(ids)
                    } else {
                        PostOutcome::KeyConflict
                    });
                    continue;
                }
            }
            to_store.extend(post.events.iter().map(|event| (post, event)));
            outcomes.push(PostOutcome::Stored);
        }
        (outcomes, to_store)
    }};
}

/// On SQLite, a batch is one multi-row `INSERT … VALUES` per chunk (see [`bulk`]).
const SQLITE_INSERT: &str = "INSERT INTO ticket_events (id, integration, dedup_key, status, source, context, state, \
     node_id, submitted_by, attempts, next_attempt_at, created_at, updated_at) VALUES ";
const SQLITE_ROW: &str = "(?, ?, ?, ?, ?, ?, 'queued', ?, ?, 0, ?, ?, ?)";

const POSTGRES_BULK_INSERT: &str = "INSERT INTO ticket_events (id, integration, dedup_key, status, source, context, \
     state, node_id, submitted_by, attempts, next_attempt_at, created_at, updated_at) \
     SELECT id, integration, dedup_key, status, source, context, 'queued', node_id, submitted_by, 0, now, now, now \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::int8[]) AS t(id, integration, dedup_key, status, source, context, node_id, submitted_by, now)";

/// Inserts or replaces a ticket row (`created_at` is kept), on a pool or in a transaction.
macro_rules! upsert_ticket {
    ($executor:expr, $ticket:expr) => {{
        let ticket: &$crate::store::TicketRow = $ticket;
        sqlx::query(sqlx::AssertSqlSafe($crate::store::tickets::UPSERT_TICKET))
            .bind(&ticket.integration)
            .bind(&ticket.dedup_key)
            .bind(ticket.issue_key.as_deref())
            .bind(ticket.issue_id.as_deref())
            .bind(&ticket.state)
            .bind(ticket.resolution.as_deref())
            .bind(ticket.resolved_at)
            .bind(ticket.last_comment_hash.as_deref())
            .bind(ticket.last_event_id.as_deref())
            .bind(ticket.last_event_at)
            .bind(ticket.created_at)
            .bind(ticket.updated_at)
            .bind(ticket.summary.as_deref())
            .bind(ticket.issue_url.as_deref())
            .execute($executor)
            .await
            .map(|_| ())
    }};
}
pub(crate) use upsert_ticket;

pub(crate) const UPSERT_TICKET: &str = "INSERT INTO tickets (integration, dedup_key, issue_key, issue_id, state, \
     resolution, resolved_at, last_comment_hash, last_event_id, last_event_at, created_at, updated_at, summary, \
     issue_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
     ON CONFLICT (integration, dedup_key) DO UPDATE SET issue_key = EXCLUDED.issue_key, \
     issue_id = EXCLUDED.issue_id, state = EXCLUDED.state, resolution = EXCLUDED.resolution, \
     resolved_at = EXCLUDED.resolved_at, last_comment_hash = EXCLUDED.last_comment_hash, \
     last_event_id = EXCLUDED.last_event_id, last_event_at = EXCLUDED.last_event_at, \
     updated_at = EXCLUDED.updated_at, summary = EXCLUDED.summary, issue_url = EXCLUDED.issue_url";

impl Writer {
    /// Stores a batch of posts in one transaction: every event is durable when this returns Ok.
    /// After an error, drop the writer: its connection may be in any state.
    pub async fn insert_ticket_events(&mut self, batch: &[NewEventPost]) -> Result<Vec<PostOutcome>, StoreError> {
        match &mut self.0 {
            WriterConn::Sqlite(conn) => {
                let mut tx = conn.begin().await?;
                let (outcomes, to_store) = claim_keys_in!(tx, batch);
                for chunk in bulk::sqlite_chunks(&to_store) {
                    let sql = bulk::values_insert(SQLITE_INSERT, SQLITE_ROW, chunk.len());
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (post, e) in chunk {
                        query = query
                            .bind(e.id.as_str())
                            .bind(e.integration.as_str())
                            .bind(e.dedup_key.as_str())
                            .bind(e.status)
                            .bind(e.source)
                            .bind(e.context.as_str())
                            .bind(post.node_id.as_str())
                            .bind(post.submitted_by.as_str())
                            .bind(post.now)
                            .bind(post.now)
                            .bind(post.now);
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }
            WriterConn::Postgres(conn) => {
                let mut tx = conn.begin().await?;
                let (outcomes, to_store) = claim_keys_in!(tx, batch);
                if !to_store.is_empty() {
                    type Row<'a> = (&'a NewEventPost, &'a NewTicketEvent);
                    let column = |f: fn(&Row) -> String| to_store.iter().map(f).collect::<Vec<String>>();
                    sqlx::query(POSTGRES_BULK_INSERT)
                        .bind(column(|(_, e)| e.id.clone()))
                        .bind(column(|(_, e)| e.integration.clone()))
                        .bind(column(|(_, e)| e.dedup_key.clone()))
                        .bind(column(|(_, e)| e.status.to_owned()))
                        .bind(column(|(_, e)| e.source.to_owned()))
                        .bind(column(|(_, e)| e.context.clone()))
                        .bind(column(|(p, _)| p.node_id.clone()))
                        .bind(column(|(p, _)| p.submitted_by.clone()))
                        .bind(to_store.iter().map(|(p, _)| p.now).collect::<Vec<i64>>())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }
        }
    }
}

impl Store {
    /// Stores a batch of posts in one transaction: every event is durable when this returns Ok. For
    /// one batch; the intake's committer holds a [`Writer`] instead.
    pub async fn insert_ticket_events(&self, batch: &[NewEventPost]) -> Result<Vec<PostOutcome>, StoreError> {
        self.writer().await?.insert_ticket_events(batch).await
    }

    pub async fn ticket_event(&self, id: &str) -> Result<Option<TicketEventRow>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM ticket_events WHERE id = $1");
        let row = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// Events in id order (for one key: the order they are applied in).
    pub async fn ticket_events(&self, filter: &TicketEventFilter) -> Result<Vec<TicketEventRow>, StoreError> {
        // `states` holds only the fixed names of TicketEventFilter::states, never client text.
        let states = if filter.states.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = filter.states.iter().map(|s| format!("'{s}'")).collect();
            format!("AND state IN ({}) ", names.join(", "))
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ($1 IS NULL OR integration = $1) \
             AND ($2 IS NULL OR dedup_key = $2) AND ($3 IS NULL OR id > $3) {states}ORDER BY id LIMIT $4"
        );
        let rows = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(filter.integration.as_deref())
                .bind(filter.dedup_key.as_deref())
                .bind(filter.after.as_deref())
                .bind(filter.limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// The newest `limit` events of one problem, oldest first.
    pub async fn latest_ticket_events(
        &self,
        integration: &str,
        dedup_key: &str,
        limit: i64,
    ) -> Result<Vec<TicketEventRow>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE integration = $1 AND dedup_key = $2 \
             ORDER BY id DESC LIMIT $3"
        );
        let mut rows: Vec<TicketEventRow> = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(integration)
                .bind(dedup_key)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// Per integration with events still to apply: how many are queued, in error, and the oldest's age.
    pub async fn ticket_event_figures(&self) -> Result<Vec<TicketEventFigures>, StoreError> {
        let sql = "SELECT integration, \
                   SUM(CASE WHEN state IN ('queued', 'sending') THEN 1 ELSE 0 END) AS queued, \
                   SUM(CASE WHEN state = 'error' THEN 1 ELSE 0 END) AS errors, \
                   MIN(CASE WHEN state IN ('queued', 'sending') THEN created_at END) AS oldest_queued_at \
                   FROM ticket_events WHERE state <> 'done' GROUP BY integration ORDER BY integration";
        let rows = on_read_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Forgets event idempotency keys older than `before`.
    pub async fn prune_ticket_event_keys(&self, before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM ticket_event_idempotency WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// The issue of one problem, if Herald has one on record.
    pub async fn ticket(&self, integration: &str, dedup_key: &str) -> Result<Option<TicketRow>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE integration = $1 AND dedup_key = $2");
        let row = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(integration)
                .bind(dedup_key)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// Forgets Herald's record of a problem's issue.
    pub async fn forget_ticket(&self, integration: &str, dedup_key: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM tickets WHERE integration = $1 AND dedup_key = $2")
                .bind(integration)
                .bind(dedup_key)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Records a problem's issue (inserted, or replacing what was recorded; `created_at` is kept).
    pub async fn save_ticket(&self, ticket: &TicketRow) -> Result<(), StoreError> {
        on_pool!(self, |pool| upsert_ticket!(pool, ticket))?;
        Ok(())
    }
}
