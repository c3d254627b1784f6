//! The signed-in user's own account: who they are, and changing their password (admins and
//! monitors alike). A new password ends every session of the user, this one included, and signs this
//! browser in again with a fresh session.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::{AccountError, AuthError, OwnPasswordError};
use crate::client_addr::ClientAddr;
use crate::console::error::ConsoleError;
use crate::console::session::{Session, start_session};
use crate::console::view::{Chrome, When, html, html_with};
use crate::secret::Secret;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    page: Chrome,
    started: When,
    generated_password: bool,
    error: Option<String>,
}

/// Whether `admin` still signs in with the generated first-start password (its file still exists).
pub fn uses_generated_password(state: &AppState, session: &Session) -> bool {
    state.accounts.uses_initial_password(&session.username)
}

fn account_page(state: &AppState, session: &Session, error: Option<String>) -> AccountPage {
    AccountPage {
        page: Chrome::new(session, state.node_id.as_str(), "account", "Account"),
        started: When::at(session.started_at, state.clock.now_ms()),
        generated_password: uses_generated_password(state, session),
        error,
    }
}

pub async fn account(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    html(&account_page(&state, &session, None))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: Secret,
    #[serde(default)]
    new: Secret,
    #[serde(default)]
    confirm: Secret,
}

pub async fn change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    session: Session,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let Form(form) = form?;
    session.check_csrf(&form.csrf)?;
    let refuse = |status: StatusCode, message: &str| {
        html_with(status, &account_page(&state, &session, Some(message.to_owned())))
    };
    if form.new.expose() != form.confirm.expose() {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The new password and its confirmation differ.",
        );
    }
    let changed = match state
        .accounts
        .change_own_password(client, &session.username, &form.current, &form.new)
        .await
    {
        Ok(changed) => changed,
        Err(OwnPasswordError::Current(AuthError::Invalid)) => {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, "The current password is wrong.");
        }
        Err(OwnPasswordError::Current(AuthError::Throttled { retry_after })) => {
            let seconds = retry_after.as_secs().max(1);
            let mut response = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many wrong passwords. Try again in {seconds} s."),
            )?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(response);
        }
        Err(OwnPasswordError::Current(AuthError::Store(e)) | OwnPasswordError::New(AccountError::Store(e))) => {
            return Err(e.into());
        }
        Err(OwnPasswordError::New(AccountError::Password(e))) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("The new password cannot be used: {e}."),
            );
        }
        Err(OwnPasswordError::New(other)) => return Err(other.into()),
    };
    tracing::info!(user = %session.username, "console: password changed");
    let mut message = "Password changed. Every other session of yours has been signed out.".to_owned();
    if let Some(file) = changed.deleted_initial_password_file {
        message.push_str(&format!(" The generated password file {} is deleted.", file.display()));
    }
    // The new password ended this session too: carry on in a fresh one.
    let Some(cookie) = start_session(&state, &headers, session.username.as_str(), Some(&message)).await? else {
        return Err(ConsoleError::SignIn { next: None });
    };
    let mut response = Redirect::to("/console/account").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}
