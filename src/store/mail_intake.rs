//! Storing accepted mail: a batch of submissions (the queue's group commit) in one transaction, with
//! their idempotency keys.

use sqlx::Connection;

use super::writer::{Writer, WriterConn};
use super::{Store, StoreError, bulk};

/// A message to store, already validated and serialised.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub id: String,
    pub node_id: String,
    pub envelope_from: String,
    pub recipients_json: String,
    pub subject: String,
    pub content_json: String,
    pub size_bytes: i64,
    pub submitted_by: String,
    /// The complete message, for SMTP and `message/rfc822` submissions (`content_json` is then empty).
    pub raw: Option<Vec<u8>>,
    /// ESMTP parameters to relay with it (`EnvelopeParams::to_column`).
    pub envelope_params: String,
    /// `http`, `smtp` or `internal`.
    pub protocol: &'static str,
    pub client_addr: Option<String>,
    /// The Message-ID header, without angle brackets.
    pub message_id: Option<String>,
    pub now: i64,
    /// `(key, hash of the request)` when the client sent `Idempotency-Key`.
    pub idempotency: Option<(String, String)>,
}

/// What became of one submission of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    Stored,
    /// The key was used before for the same request: the earlier message's id.
    Duplicate(String),
    /// The key was used before for a different request.
    KeyConflict(String),
}

const INSERT_KEY: &str = "INSERT INTO mail_idempotency (principal, key, message_id, request_hash, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal, key) DO NOTHING";

const FIND_KEY: &str = "SELECT message_id, request_hash FROM mail_idempotency WHERE principal = $1 AND key = $2";

/// Records the idempotency keys of a batch inside its transaction; returns each submission's outcome
/// and the submissions to store (those without a key, and those whose key is new).
macro_rules! claim_keys_in {
    ($tx:expr, $batch:expr) => {{
        let mut outcomes = Vec::with_capacity($batch.len());
        let mut to_store: Vec<&NewMail> = Vec::with_capacity($batch.len());
        for mail in $batch {
            if let Some((key, hash)) = &mail.idempotency {
                let inserted = sqlx::query(INSERT_KEY)
                    .bind(&mail.submitted_by)
                    .bind(key)
                    .bind(&mail.id)
                    .bind(hash)
                    .bind(mail.now)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                if inserted == 0 {
                    let (existing, existing_hash): (String, String) = sqlx::query_as(FIND_KEY)
                        .bind(&mail.submitted_by)
                        .bind(key)
                        .fetch_one(&mut *$tx)
                        .await?;
                    outcomes.push(if &existing_hash == hash {
                        EnqueueOutcome::Duplicate(existing)
                    } else {
                        EnqueueOutcome::KeyConflict(existing)
                    });
                    continue;
                }
            }
            to_store.push(mail);
            outcomes.push(EnqueueOutcome::Stored);
        }
        (outcomes, to_store)
    }};
}

/// A batch is stored with as few round trips as possible: every statement is one (to SQLite's worker
/// thread, or to PostgreSQL), and at the acceptance rates SMTP reaches, the round trips cost more than
/// the rows. A batch without idempotency keys that fits one statement is that statement alone, in
/// autocommit (one statement is atomic, and durable once it returns); anything else is a transaction.
///
/// On SQLite, one multi-row `INSERT … VALUES` per chunk, every value bound (the message as a BLOB).
/// Chunks as [`bulk::sqlite_chunks`] cuts them, so that few statement texts exist and each stays
/// prepared in the connection's cache. (A batch passed as one JSON document, as before, cost more than
/// the SQL: the JSON, the message in hex, and SQLite parsing both back.) This is the statement before
/// its rows; [`SQLITE_ROW`] binds 16 values per row.
const SQLITE_INSERT: &str = "INSERT INTO mail_messages (id, node_id, state, envelope_from, recipients, subject, \
     content, size_bytes, submitted_by, attempts, created_at, next_attempt_at, updated_at, raw, envelope_params, \
     protocol, client_addr, message_id) VALUES ";
const SQLITE_ROW: &str = "(?, ?, 'queued', ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Runs the INSERT of one chunk on a transaction or, for a single-statement batch, on the connection.
async fn sqlite_insert_chunk<'c, E>(executor: E, chunk: &[&NewMail]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let sql = bulk::values_insert(SQLITE_INSERT, SQLITE_ROW, chunk.len());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for m in chunk {
        query = query
            .bind(m.id.as_str())
            .bind(m.node_id.as_str())
            .bind(m.envelope_from.as_str())
            .bind(m.recipients_json.as_str())
            .bind(m.subject.as_str())
            .bind(m.content_json.as_str())
            .bind(m.size_bytes)
            .bind(m.submitted_by.as_str())
            .bind(m.now)
            .bind(m.now)
            .bind(m.now)
            .bind(m.raw.as_deref())
            .bind(m.envelope_params.as_str())
            .bind(m.protocol)
            .bind(m.client_addr.as_deref())
            .bind(m.message_id.as_deref());
    }
    query.execute(executor).await.map(drop)
}

const POSTGRES_BULK_INSERT: &str = "INSERT INTO mail_messages (id, node_id, state, envelope_from, recipients, subject, \
     content, size_bytes, submitted_by, attempts, created_at, next_attempt_at, updated_at, raw, envelope_params, \
     protocol, client_addr, message_id) \
     SELECT id, node_id, 'queued', envelope_from, recipients, subject, content, size_bytes, submitted_by, 0, now, now, now, \
     raw, envelope_params, protocol, client_addr, message_id \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::int8[], \
     $10::bytea[], $11::text[], $12::text[], $13::text[], $14::text[]) \
     AS t(id, node_id, envelope_from, recipients, subject, content, size_bytes, submitted_by, now, raw, envelope_params, \
     protocol, client_addr, message_id)";

/// Runs the one INSERT of a batch on PostgreSQL (the arrays borrow the rows: no message is copied).
async fn postgres_insert<'c, E>(executor: E, rows: &[&NewMail]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    fn column<'a, T: ?Sized>(rows: &[&'a NewMail], f: impl Fn(&'a NewMail) -> &'a T) -> Vec<&'a T> {
        rows.iter().map(|m| f(m)).collect()
    }
    sqlx::query(POSTGRES_BULK_INSERT)
        .bind(column(rows, |m| m.id.as_str()))
        .bind(column(rows, |m| m.node_id.as_str()))
        .bind(column(rows, |m| m.envelope_from.as_str()))
        .bind(column(rows, |m| m.recipients_json.as_str()))
        .bind(column(rows, |m| m.subject.as_str()))
        .bind(column(rows, |m| m.content_json.as_str()))
        .bind(rows.iter().map(|m| m.size_bytes).collect::<Vec<i64>>())
        .bind(column(rows, |m| m.submitted_by.as_str()))
        .bind(rows.iter().map(|m| m.now).collect::<Vec<i64>>())
        .bind(rows.iter().map(|m| m.raw.as_deref()).collect::<Vec<Option<&[u8]>>>())
        .bind(column(rows, |m| m.envelope_params.as_str()))
        .bind(rows.iter().map(|m| m.protocol).collect::<Vec<&str>>())
        .bind(
            rows.iter()
                .map(|m| m.client_addr.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(
            rows.iter()
                .map(|m| m.message_id.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .execute(executor)
        .await
        .map(drop)
}

impl Store {
    /// Stores a batch of submissions atomically: all are durable when this returns Ok. For one
    /// batch; the mail queue's committer holds a [`Writer`] instead.
    pub async fn enqueue_mail(&self, batch: &[NewMail]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        self.writer().await?.enqueue_mail(batch).await
    }
}

impl Writer {
    /// Stores a batch of submissions atomically: all are durable when this returns Ok. After an
    /// error, drop the writer: its connection may be in any state.
    pub async fn enqueue_mail(&mut self, batch: &[NewMail]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        let keyless = batch.iter().all(|m| m.idempotency.is_none());
        match &mut self.0 {
            WriterConn::Sqlite(conn) => {
                if keyless && batch.len() <= bulk::SQLITE_EXACT {
                    let rows: Vec<&NewMail> = batch.iter().collect();
                    if !rows.is_empty() {
                        sqlite_insert_chunk(&mut **conn, &rows).await?;
                    }
                    return Ok(vec![EnqueueOutcome::Stored; batch.len()]);
                }
                let mut tx = conn.begin().await?;
                let (outcomes, to_store) = claim_keys_in!(tx, batch);
                for chunk in bulk::sqlite_chunks(&to_store) {
                    sqlite_insert_chunk(&mut *tx, chunk).await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }
            WriterConn::Postgres(conn) => {
                if keyless {
                    let rows: Vec<&NewMail> = batch.iter().collect();
                    if !rows.is_empty() {
                        postgres_insert(&mut **conn, &rows).await?;
                    }
                    return Ok(vec![EnqueueOutcome::Stored; batch.len()]);
                }
                let mut tx = conn.begin().await?;
                let (outcomes, to_store) = claim_keys_in!(tx, batch);
                if !to_store.is_empty() {
                    postgres_insert(&mut *tx, &to_store).await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_binds_each_column_but_the_constant_ones() {
        let sql = bulk::values_insert(SQLITE_INSERT, SQLITE_ROW, 2);
        assert_eq!(sql.matches("'queued'").count(), 2);
        assert_eq!(SQLITE_ROW.matches('?').count(), 16);
    }
}
