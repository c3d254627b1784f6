//! `/api/v1/users`: users and roles. Admin only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::RequireAdmin;
use super::error::{ApiError, Problem};
use super::json::ApiJson;
use crate::auth::{Role, Username};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::UserRecord;
use crate::timefmt::rfc3339_ms;

#[derive(Serialize, utoipa::ToSchema)]
pub struct User {
    username: String,
    role: Role,
    /// RFC 3339, UTC.
    created_at: String,
    updated_at: String,
}

impl From<UserRecord> for User {
    fn from(user: UserRecord) -> Self {
        User {
            username: user.username.to_string(),
            role: user.role,
            created_at: rfc3339_ms(user.created_at),
            updated_at: rfc3339_ms(user.updated_at),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `@`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    username: String,
    /// At least 8 characters and at most 1024 bytes (after Unicode NFKC normalisation), no control
    /// characters (tab and newline included), not starting with `hrld_` (an API token's prefix).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024,
             pattern = r"^(?!hrld_)[^\x00-\x1f\x7f-\x9f]*$")]
    password: Secret,
    role: Role,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// At least 8 characters and at most 1024 bytes (after Unicode NFKC normalisation), no control
    /// characters (tab and newline included), not starting with `hrld_` (an API token's prefix).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024,
             pattern = r"^(?!hrld_)[^\x00-\x1f\x7f-\x9f]*$")]
    password: Secret,
}

pub(super) fn parse_username(name: &str, field: &str) -> Result<Username, ApiError> {
    Username::try_from(name).map_err(|e| ApiError::bad_request("invalid_field", e.to_string()).with_field(field))
}

/// All users, by name.
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users", security(("basic" = []), ("bearer" = [])),
    responses((status = 200, body = [User]), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn list_users(State(state): State<AppState>, _admin: RequireAdmin) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(
        state.accounts.list_users().await?.into_iter().map(User::from).collect(),
    ))
}

/// Creates a user.
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users", security(("basic" = []), ("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, body = User), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, description = "The user name is taken", body = Problem)
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    let username = parse_username(&body.username, "username")?;
    let user = state.accounts.create_user(&username, &body.password, body.role).await?;
    tracing::info!(user = %username, role = %body.role, "user created");
    let location = format!("/api/v1/users/{username}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(User::from(user)),
    )
        .into_response())
}

/// One user.
#[utoipa::path(
    get, path = "/api/v1/users/{username}", tag = "users", security(("basic" = []), ("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn get_user(
    State(state): State<AppState>,
    _admin: RequireAdmin,
    Path(username): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.accounts.user(&username).await?.into()))
}

/// Deletes a user and their tokens. The last admin cannot be deleted (409).
#[utoipa::path(
    delete, path = "/api/v1/users/{username}", tag = "users", security(("basic" = []), ("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The user is the last admin", body = Problem)
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_user(&username).await?;
    tracing::info!(user = %username, by = %admin.username, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's password.
#[utoipa::path(
    put, path = "/api/v1/users/{username}/password", tag = "users", security(("basic" = []), ("bearer" = [])),
    params(("username" = String, Path)), request_body = NewPassword,
    responses(
        (status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
pub async fn set_password(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<StatusCode, ApiError> {
    state.accounts.set_password(&username, &body.password).await?;
    tracing::info!(user = %username, by = %admin.username, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    role: Role,
}

/// Changes a user's role, effective at their next request (their tokens too). The last admin cannot
/// be demoted (409).
#[utoipa::path(
    put, path = "/api/v1/users/{username}/role", tag = "users", security(("basic" = []), ("bearer" = [])),
    params(("username" = String, Path)), request_body = NewRole,
    responses(
        (status = 200, body = User), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The user is the last admin", body = Problem)
    )
)]
pub async fn set_role(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<NewRole>,
) -> Result<Json<User>, ApiError> {
    let user = state.accounts.set_role(&username, body.role).await?;
    tracing::info!(user = %username, role = %body.role, by = %admin.username, "role changed");
    Ok(Json(User::from(user)))
}
