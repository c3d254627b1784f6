//! Storing accepted mail: a batch of submissions (the queue's group commit) in one transaction, with
//! their idempotency keys.

use super::{Db, Store, StoreError};

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

/// One statement stores a whole batch: every statement is a round trip (to SQLite's worker thread,
/// or to PostgreSQL), so a statement per message would cost more than the messages themselves.
/// A complete message of up to [`INLINE_RAW_MAX`] travels in the JSON as hex (`unhex` turns it back
/// into a BLOB); a larger one is bound as a BLOB by [`attach_large_raws`].
const SQLITE_BULK_INSERT: &str = "INSERT INTO mail_messages (id, node_id, state, envelope_from, recipients, subject, \
     content, size_bytes, submitted_by, attempts, created_at, next_attempt_at, updated_at, raw, envelope_params, \
     protocol, client_addr, message_id) \
     SELECT value ->> 0, value ->> 1, 'queued', value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
     value ->> 7, 0, value ->> 8, value ->> 8, value ->> 8, unhex(value ->> 9), value ->> 10, value ->> 11, \
     value ->> 12, value ->> 13 FROM json_each($1)";

const POSTGRES_BULK_INSERT: &str = "INSERT INTO mail_messages (id, node_id, state, envelope_from, recipients, subject, \
     content, size_bytes, submitted_by, attempts, created_at, next_attempt_at, updated_at, raw, envelope_params, \
     protocol, client_addr, message_id) \
     SELECT id, node_id, 'queued', envelope_from, recipients, subject, content, size_bytes, submitted_by, 0, now, now, now, \
     raw, envelope_params, protocol, client_addr, message_id \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::int8[], \
     $10::bytea[], $11::text[], $12::text[], $13::text[], $14::text[]) \
     AS t(id, node_id, envelope_from, recipients, subject, content, size_bytes, submitted_by, now, raw, envelope_params, \
     protocol, client_addr, message_id)";

/// The largest message that travels inside the batch's JSON. A message of megabytes there meant a
/// dozen copies of it at once (hex, JSON value, JSON text, SQLite's JSON parse, `unhex`): a 9 MiB
/// message peaked at 490 MB while committed, which no limit of the SMTP listener could bound.
const INLINE_RAW_MAX: usize = 64 * 1024;

/// Stores the bytes of the messages that did not travel inline: one statement each, in the batch's
/// transaction, the bytes bound as they are.
async fn attach_large_raws(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, rows: &[&NewMail]) -> Result<(), sqlx::Error> {
    for row in rows {
        if let Some(raw) = row.raw.as_deref().filter(|raw| raw.len() > INLINE_RAW_MAX) {
            sqlx::query("UPDATE mail_messages SET raw = $1 WHERE id = $2")
                .bind(raw)
                .bind(&row.id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    String::from_utf8(out).unwrap_or_default()
}

fn sqlite_rows_json(rows: &[&NewMail]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|m| {
            serde_json::json!([
                m.id,
                m.node_id,
                m.envelope_from,
                m.recipients_json,
                m.subject,
                m.content_json,
                m.size_bytes,
                m.submitted_by,
                m.now,
                m.raw.as_deref().filter(|raw| raw.len() <= INLINE_RAW_MAX).map(hex),
                m.envelope_params,
                m.protocol,
                m.client_addr,
                m.message_id
            ])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

impl Store {
    /// Stores a batch of submissions in one transaction: all are durable when this returns Ok.
    pub async fn enqueue_mail(&self, batch: &[NewMail]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        match &self.db {
            Db::Sqlite { write: pool, .. } => {
                let mut tx = pool.begin().await?;
                let (outcomes, to_store) = claim_keys_in!(tx, batch);
                if !to_store.is_empty() {
                    sqlx::query(SQLITE_BULK_INSERT)
                        .bind(sqlite_rows_json(&to_store))
                        .execute(&mut *tx)
                        .await?;
                    attach_large_raws(&mut tx, &to_store).await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let (outcomes, to_store) = claim_keys_in!(tx, batch);
                if !to_store.is_empty() {
                    let column = |f: fn(&NewMail) -> String| to_store.iter().map(|m| f(m)).collect::<Vec<String>>();
                    sqlx::query(POSTGRES_BULK_INSERT)
                        .bind(column(|m| m.id.clone()))
                        .bind(column(|m| m.node_id.clone()))
                        .bind(column(|m| m.envelope_from.clone()))
                        .bind(column(|m| m.recipients_json.clone()))
                        .bind(column(|m| m.subject.clone()))
                        .bind(column(|m| m.content_json.clone()))
                        .bind(to_store.iter().map(|m| m.size_bytes).collect::<Vec<i64>>())
                        .bind(column(|m| m.submitted_by.clone()))
                        .bind(to_store.iter().map(|m| m.now).collect::<Vec<i64>>())
                        .bind(to_store.iter().map(|m| m.raw.clone()).collect::<Vec<Option<Vec<u8>>>>())
                        .bind(column(|m| m.envelope_params.clone()))
                        .bind(column(|m| m.protocol.to_owned()))
                        .bind(
                            to_store
                                .iter()
                                .map(|m| m.client_addr.clone())
                                .collect::<Vec<Option<String>>>(),
                        )
                        .bind(
                            to_store
                                .iter()
                                .map(|m| m.message_id.clone())
                                .collect::<Vec<Option<String>>>(),
                        )
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }
        }
    }
}
