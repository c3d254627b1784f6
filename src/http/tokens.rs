//! `/api/v1/tokens`: API tokens. Admin only. A token's secret is returned once, at creation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::RequireAdmin;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiQuery};
use super::users::parse_username;
use crate::auth::Role;
use crate::state::AppState;
use crate::store::TokenWithOwner;
use crate::timefmt::rfc3339_ms;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Token {
    id: String,
    name: String,
    /// The user the token acts as; it has that user's role.
    user: String,
    role: Role,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
}

impl From<TokenWithOwner> for Token {
    fn from(t: TokenWithOwner) -> Self {
        Token {
            id: t.token.id,
            name: t.token.name,
            user: t.username.to_string(),
            role: t.role,
            created_at: rfc3339_ms(t.token.created_at),
            expires_at: t.token.expires_at.map(rfc3339_ms),
            last_used_at: t.token.last_used_at.map(rfc3339_ms),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    info: Token,
    /// The token itself. Shown only in this response: store it now.
    token: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. `grafana`: 1 to 128 characters, no control characters.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: String,
    /// The user the token acts as; the caller when omitted.
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    user: Option<String>,
    /// Lifetime from 1 minute to 10 years, such as `90d`, `12h` or `30m`; no expiry when omitted.
    #[schema(pattern = r"^([1-9][0-9]{0,4}m|[1-9][0-9]{0,3}h|[1-9][0-9]{0,2}d)$")]
    expires_in: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenFilter {
    /// Only this user's tokens.
    user: Option<String>,
}

/// All tokens (never their secrets).
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens", security(("basic" = []), ("bearer" = [])), params(TokenFilter),
    responses((status = 200, body = [Token]), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    ApiQuery(filter): ApiQuery<TokenFilter>,
) -> Result<Json<Vec<Token>>, ApiError> {
    let tokens = state.accounts.list_tokens(filter.user.as_deref()).await?;
    Ok(Json(tokens.into_iter().map(Token::from).collect()))
}

/// Creates a token; the response carries the secret, once.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens", security(("basic" = []), ("bearer" = [])), request_body = NewToken,
    responses(
        (status = 201, body = CreatedToken), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, description = "No such user", body = Problem)
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<Response, ApiError> {
    let owner = match &body.user {
        Some(name) => parse_username(name, "user")?,
        None => admin.username.clone(),
    };
    let lifetime = body
        .expires_in
        .as_deref()
        .map(|s| {
            humantime::parse_duration(s).map_err(|e| {
                ApiError::bad_request(
                    "invalid_field",
                    format!("`expires_in`: {e}; use a duration such as `90d` or `12h`"),
                )
                .with_field("expires_in")
            })
        })
        .transpose()?;
    let created = state.accounts.create_token(&owner, &body.name, lifetime).await?;
    tracing::info!(token = %created.token.token.id, user = %owner, by = %admin.username, "token created");
    let location = format!("/api/v1/tokens/{}", created.token.token.id);
    let body = CreatedToken {
        info: created.token.into(),
        token: created.secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// Revokes a token at once.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("basic" = []), ("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.revoke_token(&id).await?;
    tracing::info!(token = %id, by = %admin.username, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
