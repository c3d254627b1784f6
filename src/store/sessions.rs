//! Console sessions: the cookie's random id is looked up by its SHA-256, never stored as is.

use sqlx::FromRow;

use super::{Store, StoreError, on_pool, on_read_pool};
use crate::identity::{Role, Username};

#[derive(Debug, FromRow)]
struct SessionRow {
    username: String,
    role: String,
    csrf_token: String,
    flash: Option<String>,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

/// A session with its user, as read for a request.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub username: Username,
    pub role: Role,
    pub csrf_token: String,
    /// A one-time message for the next page (set by an action, shown once).
    pub flash: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// Starts a session for `username`; false when no such user exists.
    pub async fn create_session(
        &self,
        id_hash: &str,
        username: &str,
        csrf_token: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO console_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) \
                 SELECT $1, id, $2, $3, $3, $4 FROM users WHERE username = $5",
            )
            .bind(id_hash)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .bind(username)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<SessionRow> = on_read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT u.username, u.role, s.csrf_token, s.flash, s.created_at, s.last_seen_at, s.expires_at \
                 FROM console_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
            )
            .bind(id_hash)
            .fetch_optional(pool)
            .await
        })?;
        row.map(|row| {
            let corrupt = |e: String| StoreError::Corrupt(format!("session of {}: {e}", row.username));
            Ok(SessionRecord {
                username: Username::try_from(row.username.as_str()).map_err(|e| corrupt(e.to_string()))?,
                role: row
                    .role
                    .parse()
                    .map_err(|e: crate::identity::UnknownRole| corrupt(e.to_string()))?,
                csrf_token: row.csrf_token,
                flash: row.flash,
                created_at: row.created_at,
                last_seen_at: row.last_seen_at,
                expires_at: row.expires_at,
            })
        })
        .transpose()
    }

    /// Records activity, and replaces the one-time message (None clears it).
    pub async fn touch_session(&self, id_hash: &str, now: i64, flash: Option<&str>) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE console_sessions SET last_seen_at = $1, flash = $2 WHERE id_hash = $3")
                .bind(now)
                .bind(flash)
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Ends every session of a user (after a password change).
    pub async fn delete_user_sessions(&self, username: &str) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM console_sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)")
                .bind(username)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Removes sessions that ended: past their lifetime, or idle since before `idle_before`.
    pub async fn prune_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
                .bind(now)
                .bind(idle_before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }
}
