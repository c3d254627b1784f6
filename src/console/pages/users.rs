//! Users and API tokens, for admins: the console face of `/api/v1/users` and `/api/v1/tokens`.
//!
//! A new token's secret is shown once, in the answer to the form that created it. It is never
//! stored anywhere else, which is why that answer is a page and not a redirect (the one-time message
//! of a redirect lives in the session's database row).

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{AccountError, Role, Username};
use crate::console::error::ConsoleError;
use crate::console::session::{Change, CsrfForm, Session};
use crate::console::view::{Chrome, When, encode_component, html, html_with};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::StoreError;

const ROLES: [(&str, &str); 4] = [
    ("admin", "admin: sees and changes everything"),
    ("monitor", "monitor: sees everything, changes nothing"),
    ("mail", "mail: submits mail through the API only"),
    (
        "events",
        "events: posts events (Alertmanager, scripts) through the API only",
    ),
];

pub struct UserRow {
    pub username: String,
    pub href: String,
    pub role: &'static str,
    pub created: When,
    pub updated: When,
    pub tokens: usize,
    /// The signed-in admin's own row: their password is changed on the Account page.
    pub you: bool,
}

pub struct TokenRow {
    pub id: String,
    pub href: String,
    pub name: String,
    pub user: String,
    pub role: &'static str,
    pub created: When,
    pub expires: Option<When>,
    pub expired: bool,
    pub last_used: Option<When>,
}

/// What the forms on the page held when they were refused, to fill them again.
#[derive(Default)]
pub struct Drafts {
    pub user_error: Option<String>,
    pub username: String,
    pub role: String,
    pub token_error: Option<String>,
    pub token_name: String,
    pub token_user: String,
    pub expires_in: String,
}

/// A token just created: its secret, shown this once.
pub struct NewToken {
    pub name: String,
    pub user: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    page: Chrome,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    roles: [(&'static str, &'static str); 4],
    drafts: Drafts,
    created: Option<NewToken>,
}

/// Users and tokens are the admins' business, as in the API: a monitor is told so.
fn admins_only(session: &Session) -> Result<(), ConsoleError> {
    if session.is_admin() {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(format!(
            "Only admins see users and API tokens; `{}` has the {} role.",
            session.username, session.role
        )))
    }
}

async fn users_page(
    state: &AppState,
    session: &Session,
    drafts: Drafts,
    created: Option<NewToken>,
) -> Result<UsersPage, ConsoleError> {
    let now = state.clock.now_ms();
    let tokens = state.accounts.list_tokens(None).await?;
    let users = state
        .accounts
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            href: encode_component(u.username.as_str()),
            role: u.role.as_str(),
            created: When::at(u.created_at, now),
            updated: When::at(u.updated_at, now),
            tokens: tokens.iter().filter(|t| t.username == u.username).count(),
            you: u.username == session.username,
            username: u.username.to_string(),
        })
        .collect();
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            href: encode_component(&t.token.id),
            role: t.role.as_str(),
            created: When::at(t.token.created_at, now),
            expires: t.token.expires_at.map(|at| When::at(at, now)),
            expired: t.token.expires_at.is_some_and(|at| at <= now),
            last_used: t.token.last_used_at.map(|at| When::at(at, now)),
            user: t.username.to_string(),
            name: t.token.name,
            id: t.token.id,
        })
        .collect();
    Ok(UsersPage {
        page: Chrome::new(session, state.node_id.as_str(), "users", "Users and tokens"),
        users,
        tokens,
        roles: ROLES,
        drafts,
        created,
    })
}

pub async fn users(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    admins_only(&session)?;
    html(&users_page(&state, &session, Drafts::default(), None).await?)
}

#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    confirm: Secret,
}

crate::console::session::with_csrf!(NewUserForm);

pub async fn create_user(
    State(state): State<AppState>,
    Change { session, form }: Change<NewUserForm>,
) -> Result<Response, ConsoleError> {
    let refused = |message: String| Drafts {
        user_error: Some(message),
        username: form.username.clone(),
        role: form.role.clone(),
        ..Drafts::default()
    };
    let checked = (|| {
        let username = Username::try_from(form.username.trim()).map_err(|e| format!("User name: {e}."))?;
        let role: Role = form.role.parse().map_err(|e| format!("Role: {e}."))?;
        if form.password.expose() != form.confirm.expose() {
            return Err("The password and its confirmation differ.".to_owned());
        }
        Ok((username, role))
    })();
    let (username, role) = match checked {
        Ok(valid) => valid,
        Err(message) => return refuse(&state, &session, refused(message)).await,
    };
    match state.accounts.create_user(&username, &form.password, role).await {
        Ok(_) => {}
        Err(AccountError::Password(e)) => {
            return refuse(&state, &session, refused(format!("The password cannot be used: {e}."))).await;
        }
        Err(AccountError::Store(StoreError::Conflict(_))) => {
            return refuse(
                &state,
                &session,
                refused(format!("A user named `{username}` already exists.")),
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %username, role = %role, by = %session.username, "console: user created");
    Ok(session
        .done(&state, "/console/users", format!("User {username} ({role}) created."))
        .await)
}

/// The page again, with what a form held and why it was refused (422).
async fn refuse(state: &AppState, session: &Session, drafts: Drafts) -> Result<Response, ConsoleError> {
    html_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        &users_page(state, session, drafts, None).await?,
    )
}

#[derive(Deserialize)]
pub struct PasswordResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    confirm: Secret,
}

crate::console::session::with_csrf!(PasswordResetForm);

/// Sets another user's password; that user is signed out everywhere.
pub async fn set_password(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, form }: Change<PasswordResetForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    if name == session.username.as_str() {
        return Err(ConsoleError::BadRequest(
            "Change your own password on the Account page, which asks for the current one.".to_owned(),
        ));
    }
    let refused = |message: String| Drafts {
        user_error: Some(format!("{name}: {message}")),
        ..Drafts::default()
    };
    if form.password.expose() != form.confirm.expose() {
        let drafts = refused("the password and its confirmation differ.".to_owned());
        return refuse(&state, &session, drafts).await;
    }
    match state.accounts.set_password(&name, &form.password).await {
        Ok(()) => {}
        Err(AccountError::Password(e)) => {
            return refuse(&state, &session, refused(format!("the password cannot be used: {e}."))).await;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %name, by = %session.username, "console: password set");
    Ok(session
        .done(
            &state,
            "/console/users",
            format!("Password of {name} changed; their console sessions have ended."),
        )
        .await)
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

crate::console::session::with_csrf!(RoleForm);

/// Changes another user's role, effective at their next request.
pub async fn set_role(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, form }: Change<RoleForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    if name == session.username.as_str() {
        return Err(ConsoleError::BadRequest(
            "You cannot change your own role from the console; another admin can.".to_owned(),
        ));
    }
    let role: Role = form
        .role
        .parse()
        .map_err(|e| ConsoleError::BadRequest(format!("Role: {e}.")))?;
    match state.accounts.set_role(&name, role).await {
        Ok(_) => {}
        Err(AccountError::LastAdmin(_)) => {
            return Err(ConsoleError::BadRequest(format!(
                "`{name}` is the last admin; make another admin first."
            )));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %name, role = %role, by = %session.username, "console: role changed");
    Ok(session
        .done(&state, "/console/users", format!("{name} is now {role}."))
        .await)
}

pub async fn delete_user(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(name) = name?;
    if name == session.username.as_str() {
        return Err(ConsoleError::BadRequest(
            "You cannot delete yourself from the console; another admin can.".to_owned(),
        ));
    }
    match state.accounts.delete_user(&name).await {
        Ok(()) => {}
        Err(AccountError::LastAdmin(_)) => {
            return Err(ConsoleError::BadRequest(format!(
                "`{name}` is the last admin; make another admin first."
            )));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %name, by = %session.username, "console: user deleted");
    Ok(session
        .done(
            &state,
            "/console/users",
            format!("User {name} deleted, with their tokens and sessions."),
        )
        .await)
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    expires_in: String,
}

crate::console::session::with_csrf!(NewTokenForm);

/// Creates a token and answers with the page showing its secret, once.
pub async fn create_token(
    State(state): State<AppState>,
    Change { session, form }: Change<NewTokenForm>,
) -> Result<Response, ConsoleError> {
    let refused = |message: String| Drafts {
        token_error: Some(message),
        token_name: form.name.clone(),
        token_user: form.user.clone(),
        expires_in: form.expires_in.clone(),
        ..Drafts::default()
    };
    let checked = (|| {
        let user = Username::try_from(form.user.trim()).map_err(|e| format!("User: {e}."))?;
        let lifetime =
            match form.expires_in.trim() {
                "" => None,
                text => Some(humantime::parse_duration(text).map_err(|e| {
                    format!("Expires in: {e}; use a duration such as `90d` or `12h`, or leave it empty.")
                })?),
            };
        Ok::<_, String>((user, lifetime))
    })();
    let (user, lifetime) = match checked {
        Ok(valid) => valid,
        Err(message) => return refuse(&state, &session, refused(message)).await,
    };
    let created = match state.accounts.create_token(&user, form.name.trim(), lifetime).await {
        Ok(created) => created,
        Err(AccountError::UserNotFound(name)) => {
            return refuse(&state, &session, refused(format!("There is no user named `{name}`."))).await;
        }
        Err(AccountError::TokenName) => {
            let message = "Name: 1 to 128 printable characters, such as `grafana`.".to_owned();
            return refuse(&state, &session, refused(message)).await;
        }
        Err(AccountError::TokenLifetime) => {
            let message = "Expires in: between 1 minute and 10 years, or empty for no expiry.".to_owned();
            return refuse(&state, &session, refused(message)).await;
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(token = %created.token.token.id, user = %user, by = %session.username, "console: token created");
    let shown = NewToken {
        name: created.token.token.name.clone(),
        user: user.to_string(),
        secret: created.secret.expose().to_owned(),
    };
    html_with(
        StatusCode::CREATED,
        &users_page(&state, &session, Drafts::default(), Some(shown)).await?,
    )
}

pub async fn revoke_token(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let Path(id) = id?;
    state.accounts.revoke_token(&id).await?;
    tracing::info!(token = %id, by = %session.username, "console: token revoked");
    Ok(session
        .done(&state, "/console/users", format!("Token {id} revoked."))
        .await)
}
