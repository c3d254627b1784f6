//! API tokens: stored as SHA-256 hashes (the token itself is shown once, at creation).

use sqlx::FromRow;

use super::{Store, StoreError, on_pool, on_read_pool};
use crate::identity::{Role, Username};

#[derive(Debug, FromRow)]
struct TokenRow {
    id: String,
    username: String,
    role: String,
    name: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

/// A stored token, with the user it acts for.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TokenWithOwner {
    pub token: TokenRecord,
    pub username: Username,
    pub role: Role,
}

impl TryFrom<TokenRow> for TokenWithOwner {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(format!("token {}: {e}", row.id));
        Ok(TokenWithOwner {
            username: Username::try_from(row.username.as_str()).map_err(|e| corrupt(e.to_string()))?,
            role: row
                .role
                .parse()
                .map_err(|e: crate::identity::UnknownRole| corrupt(e.to_string()))?,
            token: TokenRecord {
                id: row.id,
                name: row.name,
                created_at: row.created_at,
                expires_at: row.expires_at,
                last_used_at: row.last_used_at,
            },
        })
    }
}

pub struct NewToken<'a> {
    pub id: &'a str,
    pub username: &'a Username,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub now: i64,
    pub expires_at: Option<i64>,
}

const TOKEN_SELECT: &str = "SELECT t.id, u.username, u.role, t.name, t.created_at, t.expires_at, t.last_used_at \
     FROM api_tokens t JOIN users u ON u.id = t.user_id";

impl Store {
    /// Stores a token for an existing user. Returns `None` when the user does not exist.
    pub async fn insert_token(&self, token: &NewToken<'_>) -> Result<Option<TokenWithOwner>, StoreError> {
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) \
                 SELECT $1, id, $2, $3, $4, $5 FROM users WHERE username = $6",
            )
            .bind(token.id)
            .bind(token.name)
            .bind(token.token_hash)
            .bind(token.now)
            .bind(token.expires_at)
            .bind(token.username.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_or(e, || "a token with this id".to_owned()))?;
        if inserted == 0 {
            return Ok(None);
        }
        self.token_by_id(token.id).await
    }

    pub async fn token_by_id(&self, id: &str) -> Result<Option<TokenWithOwner>, StoreError> {
        let sql = format!("{TOKEN_SELECT} WHERE t.id = $1");
        let row: Option<TokenRow> = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// Finds a token by the hash of its secret (expired tokens included: the caller decides).
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenWithOwner>, StoreError> {
        let sql = format!("{TOKEN_SELECT} WHERE t.token_hash = $1");
        let row: Option<TokenRow> = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// All tokens, or one user's, oldest first.
    pub async fn list_tokens(&self, username: Option<&str>) -> Result<Vec<TokenWithOwner>, StoreError> {
        let sql = format!("{TOKEN_SELECT} WHERE ($1 IS NULL OR u.username = $1) ORDER BY t.created_at, t.id");
        let rows: Vec<TokenRow> = on_read_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(username)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Deletes a token. Returns false when there was none with this id.
    pub async fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM api_tokens WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Records that a token was used. Called on credential-cache misses only, so at most once per
    /// cache lifetime per token rather than on every request.
    pub async fn touch_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
