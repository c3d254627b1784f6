//! Sign-in, sign-out and the session behind every console page.
//!
//! - The session id is 32 random bytes in the `herald_session` cookie (HttpOnly, SameSite=Lax, path
//!   `/console`); when Herald is reached over https, in `__Host-herald_session` (Secure, path `/`).
//!   The database keeps only its SHA-256.
//! - Sign-in takes a password, checked against the database (never the credential cache); API tokens
//!   cannot start a session, which would outlive their revocation.
//! - Every sign-in mints a new id and ends the session the browser came with, so a session id planted
//!   before sign-in (session fixation) is never the one that gets signed in.
//! - Every form carries the session's CSRF token; the sign-in form, which has no session yet, carries a
//!   token that must equal the `herald_signin` cookie set with the form (double submit).
//! - Sessions end after `HERALD_SESSION_IDLE_TIMEOUT` without a request, `HERALD_SESSION_LIFETIME` after
//!   sign-in, at sign-out, and when the user's password changes or the user is deleted.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ConsoleError;
use super::view::html_with;
use crate::auth::{AuthError, Role, Username};
use crate::client_addr::ClientAddr;
use crate::secret::Secret;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "herald_session";
const SIGN_IN_COOKIE: &str = "herald_signin";

/// The cookies' names and path. Over TLS they carry the `__Host-` prefix, which makes the browser
/// insist on `Secure`, `Path=/` and no `Domain`: a sibling subdomain cannot plant or shadow them.
struct CookieNames {
    session: &'static str,
    sign_in: &'static str,
    secure: bool,
}

impl CookieNames {
    fn for_request(headers: &HeaderMap, state: &AppState) -> CookieNames {
        if over_tls(headers, state) {
            CookieNames {
                session: "__Host-herald_session",
                sign_in: "__Host-herald_signin",
                secure: true,
            }
        } else {
            CookieNames {
                session: SESSION_COOKIE,
                sign_in: SIGN_IN_COOKIE,
                secure: false,
            }
        }
    }

    fn session_path(&self) -> &'static str {
        if self.secure { "/" } else { "/console" }
    }

    fn sign_in_path(&self) -> &'static str {
        if self.secure { "/" } else { "/console/sign-in" }
    }

    fn session(&self, value: &str, max_age: Option<i64>) -> HeaderValue {
        set_cookie(self.session, value, self.session_path(), max_age, self.secure, "Lax")
    }

    fn sign_in(&self, value: &str, max_age: Option<i64>) -> HeaderValue {
        set_cookie(self.sign_in, value, self.sign_in_path(), max_age, self.secure, "Strict")
    }
}
/// Activity is written back at most this often (or at half the idle timeout, if shorter), so reading
/// pages costs no write.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The signed-in user of a console request.
pub struct Session {
    id_hash: String,
    pub username: Username,
    pub role: Role,
    pub csrf: String,
    /// The one-time message set by the previous action (already cleared in the database).
    pub flash: Option<String>,
    /// When the session started (sign-in), ms since the epoch.
    pub started_at: i64,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Admins only: monitors see the console read-only.
    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(format!(
                "`{}` has the {} role, which can see the console but not change anything. Ask an admin.",
                self.username, self.role
            )))
        }
    }

    /// Checks a form's CSRF token against the session's (constant time).
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        if !token.is_empty() && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }

    /// For a form post by an admin: the role and the CSRF token.
    pub fn authorize_change(&self, csrf: &str) -> Result<(), ConsoleError> {
        self.check_csrf(csrf)?;
        self.require_admin()
    }

    /// Redirects (303) after an action, with a message for the next page.
    pub async fn done(&self, state: &AppState, location: &str, message: impl Into<String>) -> Response {
        let message = message.into();
        if let Err(e) = state
            .store
            .touch_session(&self.id_hash, state.clock.now_ms(), Some(&message))
            .await
        {
            tracing::warn!(error = %e, "console: cannot store the message for the next page");
        }
        Redirect::to(location).into_response()
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Session, ConsoleError> {
        let sign_in = || ConsoleError::SignIn {
            next: (parts.method == axum::http::Method::GET)
                .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
                .flatten(),
        };
        let names = CookieNames::for_request(&parts.headers, state);
        let Some(id) = cookie(&parts.headers, names.session) else {
            return Err(sign_in());
        };
        let id_hash = digest(id);
        let Some(record) = state.store.session(&id_hash).await? else {
            return Err(sign_in());
        };
        let now = state.clock.now_ms();
        let idle = ms(state.settings.console.session_idle_timeout);
        // The role is read with the session: a user changed to `mail` or `events`, which cannot use
        // the console, is signed out at their next request.
        if record.expires_at <= now || now - record.last_seen_at > idle || record.role.api_only() {
            state.store.delete_session(&id_hash).await?;
            return Err(sign_in());
        }
        if record.flash.is_some() || now - record.last_seen_at >= TOUCH_EVERY_MS.min(idle / 2) {
            state.store.touch_session(&id_hash, now, None).await?;
        }
        Ok(Session {
            id_hash,
            username: record.username,
            role: record.role,
            csrf: record.csrf_token,
            flash: record.flash,
            started_at: record.created_at,
        })
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The value of a cookie (the first one of that name).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn digest(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether the browser reached Herald over https (directly per `HERALD_PUBLIC_URL`, or through a
/// proxy that says so), so cookies must be `Secure`.
fn over_tls(headers: &HeaderMap, state: &AppState) -> bool {
    let public_https = state
        .settings
        .console
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let x_forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    // RFC 7239: `Forwarded: for=…;proto=https`, possibly several hops; the first is the client's.
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|hop| {
            hop.split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .any(|(k, v)| k.eq_ignore_ascii_case("proto") && v.trim_matches('"').eq_ignore_ascii_case("https"))
        });
    public_https || x_forwarded || forwarded
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: Option<i64>, secure: bool, same_site: &str) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Only a path inside the console is a valid place to return to after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/console/sign-")
                && n.len() <= 2048
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/console/",
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// Renders the sign-in form with a fresh double-submit token.
fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Response, ConsoleError> {
    let token = random_token();
    let page = SignInPage {
        csrf: &token,
        next,
        username,
        error,
        notice,
    };
    let mut response = html_with(status, &page)?;
    let names = CookieNames::for_request(headers, state);
    response
        .headers_mut()
        .append(header::SET_COOKIE, names.sign_in(&token, Some(3600)));
    Ok(response)
}

pub async fn sign_in_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SignInQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let query = query.map(|Query(q)| q).unwrap_or(SignInQuery {
        next: None,
        signed_out: None,
    });
    let next = safe_next(query.next.as_deref());
    let notice = query.signed_out.is_some().then_some("You are signed out.");
    sign_in_page(&state, &headers, StatusCode::OK, next, "", None, notice)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let Form(form) = form.map_err(|e| ConsoleError::BadRequest(format!("The sign-in form could not be read: {e}.")))?;
    let next = safe_next(form.next.as_deref());
    let names = CookieNames::for_request(&headers, &state);
    let expected = cookie(&headers, names.sign_in).unwrap_or("");
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return sign_in_page(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            next,
            &form.username,
            Some("The sign-in form expired or did not come from this page. Please sign in again."),
            None,
        );
    }
    let retry =
        |status, message: &str| sign_in_page(&state, &headers, status, next, &form.username, Some(message), None);
    if form.username.is_empty() || form.password.is_empty() {
        return retry(StatusCode::UNPROCESSABLE_ENTITY, "Enter your user name and password.");
    }
    let principal = match state
        .authenticator
        .authenticate_password(client, &form.username, &form.password)
        .await
    {
        Ok(principal) => principal,
        Err(AuthError::Invalid) => {
            return retry(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Wrong user name or password. (API tokens cannot sign in to the console.)",
            );
        }
        Err(AuthError::Throttled { retry_after }) => {
            let message = format!(
                "Too many failed sign-ins. Try again in {} s.",
                retry_after.as_secs().max(1)
            );
            let mut response = retry(StatusCode::TOO_MANY_REQUESTS, &message)?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            return Ok(response);
        }
        Err(AuthError::Store(e)) => return Err(e.into()),
    };
    if principal.role.api_only() {
        let may = match principal.role {
            Role::Events => "post events",
            _ => "submit mail",
        };
        return retry(
            StatusCode::FORBIDDEN,
            &format!(
                "This user has the {} role, which may only {may}. The console is for admin and monitor users.",
                principal.role
            ),
        );
    }
    // A new id at every sign-in; the one the browser came with (possibly planted) ends here.
    for name in [SESSION_COOKIE, "__Host-herald_session"] {
        if let Some(old) = cookie(&headers, name) {
            state.store.delete_session(&digest(old)).await?;
        }
    }
    let Some(cookie) = start_session(&state, &headers, principal.username.as_str(), None).await? else {
        // The user was deleted between the password check and now.
        return retry(StatusCode::UNPROCESSABLE_ENTITY, "Wrong user name or password.");
    };
    tracing::info!(user = %principal.username, "console: signed in");
    let mut response = Redirect::to(next).into_response();
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, cookie);
    cookies.append(header::SET_COOKIE, names.sign_in("", Some(0)));
    Ok(response)
}

/// Starts a session for `username` (with a first one-time message, if any) and returns its cookie;
/// None when the user does not exist. Ended sessions of everyone are cleared on the way.
pub async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    username: &str,
    flash: Option<&str>,
) -> Result<Option<HeaderValue>, ConsoleError> {
    let id = random_token();
    let now = state.clock.now_ms();
    let expires_at = now.saturating_add(ms(state.settings.console.session_lifetime));
    let id_hash = digest(&id);
    if !state
        .store
        .create_session(&id_hash, username, &random_token(), now, expires_at)
        .await?
    {
        return Ok(None);
    }
    if let Some(flash) = flash {
        state.store.touch_session(&id_hash, now, Some(flash)).await?;
    }
    let idle_before = now - ms(state.settings.console.session_idle_timeout);
    if let Err(e) = state.store.prune_sessions(now, idle_before).await {
        tracing::warn!(error = %e, "console: cannot remove ended sessions");
    }
    Ok(Some(CookieNames::for_request(headers, state).session(&id, None)))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A form that carries the CSRF token.
pub trait WithCsrf {
    fn csrf(&self) -> &str;
}

/// Implements `WithCsrf` for form structs whose token is in a `csrf: String` field.
macro_rules! with_csrf {
    ($($form:ty),+ $(,)?) => {
        $(impl $crate::console::session::WithCsrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })+
    };
}
pub(crate) use with_csrf;

with_csrf!(CsrfForm);

/// A form post that changes something: the session, and the form whose CSRF token was checked, from
/// an admin. Every state-changing console route takes it as its last argument, so none can forget the
/// checks.
pub struct Change<T> {
    pub session: Session,
    pub form: T,
}

impl<T: WithCsrf + serde::de::DeserializeOwned + Send> axum::extract::FromRequest<AppState> for Change<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let Form(form) = Form::<T>::from_request(axum::extract::Request::from_parts(parts, body), state).await?;
        session.authorize_change(form.csrf())?;
        Ok(Change { session, form })
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let Form(form) = form.map_err(|e| ConsoleError::BadRequest(format!("The form could not be read: {e}.")))?;
    session.check_csrf(&form.csrf)?;
    state.store.delete_session(&session.id_hash).await?;
    tracing::info!(user = %session.username, "console: signed out");
    let mut response = Redirect::to("/console/sign-in?signed_out=1").into_response();
    let names = CookieNames::for_request(&headers, &state);
    response
        .headers_mut()
        .append(header::SET_COOKIE, names.session("", Some(0)));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_returned_to() {
        assert_eq!(
            safe_next(Some("/console/mail?view=errors")),
            "/console/mail?view=errors"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/console/");
        assert_eq!(safe_next(Some("//evil.example/console/")), "/console/");
        assert_eq!(safe_next(Some("/console/\\evil")), "/console/");
        assert_eq!(safe_next(Some("/console/sign-out")), "/console/");
        assert_eq!(safe_next(None), "/console/");
    }

    #[test]
    fn next_must_be_printable() {
        assert_eq!(safe_next(Some("/console/\n")), "/console/");
        assert_eq!(safe_next(Some("/console/a b")), "/console/");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x_herald_session=a; herald_session=b; c=d"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("b"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
