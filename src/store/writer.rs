//! The writer connection a group committer (the mail queue's, the ticket events') holds across
//! back-to-back batches.
//!
//! **Why.** Giving a connection back to its pool costs a round trip (sqlx pings every connection
//! before it is reused) and taking it again a wake-up. On SQLite, whose one writer connection every
//! batch needs, those two came between every two commits: under `smtp-source -s 10` they were a
//! sixth of the mean commit (0.40 → 0.33 ms once held; bench/README.md, `smtp_submission`). The
//! committer gives the connection back as soon as no batch is waiting, and after [`HOLD_FOR`] at
//! most, so the other writers wait no longer than that behind a stream of batches.

use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;

use super::{Db, Store, StoreError};

/// The longest a committer keeps the writer while batches keep coming.
pub const HOLD_FOR: Duration = Duration::from_millis(5);

/// A writer connection (on SQLite, the only one).
pub struct Writer(pub(super) WriterConn);

pub(super) enum WriterConn {
    Sqlite(PoolConnection<sqlx::Sqlite>),
    Postgres(PoolConnection<sqlx::Postgres>),
}

impl Store {
    /// Takes a writer connection (on SQLite, waits for the one there is).
    pub async fn writer(&self) -> Result<Writer, StoreError> {
        Ok(Writer(match &self.db {
            Db::Sqlite { write, .. } => WriterConn::Sqlite(write.acquire().await?),
            Db::Postgres(pool) => WriterConn::Postgres(pool.acquire().await?),
        }))
    }
}

/// A committer's hold on the writer: taken for a batch, kept for the next while batches keep
/// coming, given back when none waits, after [`HOLD_FOR`], or after an error (the connection may
/// then be in any state).
#[derive(Default)]
pub struct HeldWriter {
    held: Option<(Writer, Instant)>,
}

impl HeldWriter {
    /// The writer, taken from the store if it is not held.
    pub async fn get(&mut self, store: &Store) -> Result<&mut Writer, StoreError> {
        let held = match self.held.take() {
            Some(held) => held,
            None => (store.writer().await?, Instant::now()),
        };
        Ok(&mut self.held.insert(held).0)
    }

    /// After a batch: keeps the writer only if it worked, another batch is waiting and it has not
    /// been held for [`HOLD_FOR`] yet.
    pub fn after_batch(&mut self, succeeded: bool, batch_waiting: bool) {
        let fresh = self.held.as_ref().is_some_and(|(_, since)| since.elapsed() < HOLD_FOR);
        if !(succeeded && batch_waiting && fresh) {
            self.held = None;
        }
    }

    /// Gives the writer back, before any other write through the store: holding the writer while
    /// waiting for the store's pool would wait for itself (on SQLite, until the pool's timeout).
    pub fn release(&mut self) {
        self.held = None;
    }

    #[cfg(test)]
    fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_is_kept_only_while_batches_keep_coming_and_not_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::ConnectOptions {
            url: format!("sqlite://{}", dir.path().join("herald.db").display()),
            max_connections: 2,
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let mut hold = HeldWriter::default();
        hold.get(&store).await.unwrap();
        hold.after_batch(true, true);
        assert!(hold.is_held(), "another batch waits: kept");
        hold.after_batch(true, false);
        assert!(!hold.is_held(), "no batch waits: given back");
        hold.get(&store).await.unwrap();
        hold.after_batch(false, true);
        assert!(!hold.is_held(), "after an error: given back");
        hold.get(&store).await.unwrap();
        if let Some((_, since)) = hold.held.as_mut() {
            *since -= HOLD_FOR;
        }
        hold.after_batch(true, true);
        assert!(!hold.is_held(), "held for HOLD_FOR: given back");
        // Given back means another writer can take it (SQLite has one; it would time out otherwise).
        store.writer().await.unwrap();
    }
}
