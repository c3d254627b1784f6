//! Users: who may sign in, with which role.

use sqlx::FromRow;

use super::{Db, Store, StoreError, on_pool, on_read_pool};
use crate::identity::{Role, Username};

#[derive(Debug, FromRow)]
struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    created_at: i64,
    updated_at: i64,
}

/// A stored user. `password_hash` is an Argon2id PHC string and never leaves the auth layer.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i64,
    pub username: Username,
    pub password_hash: String,
    pub role: Role,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(UserRecord {
            id: row.id,
            username: Username::try_from(row.username.as_str())
                .map_err(|e| StoreError::Corrupt(format!("user {}: {e}", row.id)))?,
            password_hash: row.password_hash,
            role: row
                .role
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("user {}: {e}", row.id)))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

pub struct NewUser<'a> {
    pub username: &'a Username,
    pub password_hash: &'a str,
    pub role: Role,
    pub now: i64,
}

/// The outcome of a change that must leave Herald with an admin (deleting a user, changing a role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGuarded {
    Done,
    NotFound,
    /// Refused: the user is the last admin, and nobody could administer Herald after.
    LastAdmin,
}

/// Runs a statement guarded by "an admin is left" (a `WHERE` that counts the admins) and returns the
/// rows it changed. Safe under concurrency: SQLite runs it as one write (writes are serialised);
/// PostgreSQL first locks every admin row, so two sessions removing the last two admins cannot both
/// see "one other admin left".
macro_rules! admin_guarded {
    ($store:expr, $query:expr) => {
        match &$store.db {
            Db::Sqlite { write: pool, .. } => $query.execute(pool).await?.rows_affected(),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT id FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE")
                    .execute(&mut *tx)
                    .await?;
                let n = $query.execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                n
            }
        }
    };
}

const USER_COLUMNS: &str = "id, username, password_hash, role, created_at, updated_at";

impl Store {
    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<UserRecord, StoreError> {
        let row: UserRow = on_pool!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO users (username, password_hash, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 RETURNING id, username, password_hash, role, created_at, updated_at",
            )
            .bind(user.username.as_str())
            .bind(user.password_hash)
            .bind(user.role.as_str())
            .bind(user.now)
            .fetch_one(pool)
            .await
        })
        .map_err(|e| StoreError::conflict_or(e, || format!("a user named `{}`", user.username)))?;
        row.try_into()
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        let row: Option<UserRow> = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(username)
                .fetch_optional(pool)
                .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        let rows: Vec<UserRow> = on_read_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let n: i64 = on_read_pool!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(pool)
            .await)?;
        Ok(n)
    }

    /// Replaces a user's password hash. Returns false when there is no such user.
    pub async fn set_password_hash(&self, username: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3")
                .bind(hash)
                .bind(now)
                .bind(username)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Deletes a user and their tokens, unless that would leave Herald without an admin.
    pub async fn delete_user(&self, username: &str) -> Result<AdminGuarded, StoreError> {
        let deleted = admin_guarded!(
            self,
            sqlx::query(
                "DELETE FROM users WHERE username = $1 \
                 AND (role <> 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)"
            )
            .bind(username)
        );
        self.guarded_outcome(deleted, username).await
    }

    /// Changes a user's role, unless that would leave Herald without an admin.
    pub async fn set_role(&self, username: &str, role: Role, now: i64) -> Result<AdminGuarded, StoreError> {
        let changed = admin_guarded!(
            self,
            sqlx::query(
                "UPDATE users SET role = $1, updated_at = $2 WHERE username = $3 \
                 AND ($1 = 'admin' OR role <> 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)"
            )
            .bind(role.as_str())
            .bind(now)
            .bind(username)
        );
        self.guarded_outcome(changed, username).await
    }

    /// Why a guarded statement changed nothing: no such user, or the last admin.
    async fn guarded_outcome(&self, affected: u64, username: &str) -> Result<AdminGuarded, StoreError> {
        if affected == 1 {
            return Ok(AdminGuarded::Done);
        }
        Ok(match self.user_by_name(username).await? {
            None => AdminGuarded::NotFound,
            Some(_) => AdminGuarded::LastAdmin,
        })
    }
}
