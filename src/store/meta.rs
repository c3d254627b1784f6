//! Installation-wide facts.

use super::{Store, StoreError, on_pool, on_read_pool};

/// The `herald_meta` row holding a value sealed with the installation's secrets key, which proves a
/// node's key right or wrong.
pub const SECRET_KEY_CHECK: &str = "secret_key_check";

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

    /// Whether anything sealed with a secrets key is stored: the key check value or an integration
    /// (whose secret is sealed). A key created now could open none of it.
    pub async fn holds_sealed_secrets(&self) -> Result<bool, StoreError> {
        let found = on_read_pool!(self, |pool| {
            sqlx::query("SELECT 1 FROM herald_meta WHERE name = $1 UNION ALL SELECT 1 FROM integrations LIMIT 1")
                .bind(SECRET_KEY_CHECK)
                .fetch_optional(pool)
                .await
                .map(|row| row.is_some())
        })?;
        Ok(found)
    }
}
