//! Installation-wide facts.

use super::{Store, StoreError, on_pool};

impl Store {
    /// Stores `value` under `name` unless a value is there already; returns the stored value.
    pub async fn meta_insert_or_get(&self, name: &str, value: &str) -> Result<String, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("INSERT INTO herald_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(value)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        let stored: String = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT value FROM herald_meta WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
        })?;
        Ok(stored)
    }
}
