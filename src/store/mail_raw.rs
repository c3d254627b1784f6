//! Large complete messages on SQLite. The batch insert carries its rows as JSON, where a message
//! travels hex-encoded; for a message of megabytes that meant a dozen copies of it at once (hex,
//! JSON value, JSON text, SQLite's JSON parse and `unhex`): about 50 times its size in memory while
//! it was committed, which no limit on the SMTP listener could bound. A message above
//! [`INLINE_RAW_MAX`] is inserted without its bytes and then bound as a BLOB, in the same
//! transaction.

use sqlx::{Sqlite, Transaction};

use super::mail::NewMail;

/// The largest message that travels inside the batch's JSON.
const INLINE_RAW_MAX: usize = 64 * 1024;

/// Whether `raw` travels inside the batch's JSON.
pub(super) fn inline(raw: &[u8]) -> bool {
    raw.len() <= INLINE_RAW_MAX
}

/// Stores the bytes of the rows' messages that did not travel inline.
pub(super) async fn attach_large(tx: &mut Transaction<'_, Sqlite>, rows: &[&NewMail]) -> Result<(), sqlx::Error> {
    for row in rows {
        if let Some(raw) = row.raw.as_deref().filter(|raw| !inline(raw)) {
            sqlx::query("UPDATE mail_messages SET raw = $1 WHERE id = $2")
                .bind(raw)
                .bind(&row.id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
