//! The admin console: server-rendered pages under `/console`, for admins (read and act) and monitors
//! (read only).
//!
//! Pages are askama templates compiled into the binary; the stylesheet and a little script are served
//! from the binary too, so the console works without internet access and without a front-end build.
//! Sign-in starts a server-side session (cookie `herald_session`, HttpOnly, SameSite=Lax; over TLS
//! `__Host-herald_session`, Secure); every form carries the session's CSRF token, and cross-site form
//! posts are refused.

mod chart;
mod error;
mod forms;
mod pages;
mod session;
mod view;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};

use crate::state::AppState;
use error::ConsoleError;
use pages::{account, cluster, integration, integration_form, integrations, mail, overview, tickets, users};

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// The console's routes, with their security headers. Every POST route comes from
/// [`state_changing_routes`], so that list is complete by construction.
pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(overview::overview))
        .route("/console/sign-in", get(session::sign_in_form))
        .route("/console/integrations", get(integrations::integrations))
        .route("/console/add-integration", get(integration_form::new_integration))
        .route("/console/integrations/{name}", get(integration::integration))
        .route(
            "/console/integrations/{name}/edit",
            get(integration_form::edit_integration),
        )
        .route("/console/integrations/{name}/tickets", get(tickets::tickets))
        .route("/console/mail", get(mail::mail))
        .route("/console/account", get(account::account))
        .route("/console/users", get(users::users))
        .route("/console/cluster", get(cluster::cluster))
        .route(
            "/console/assets/console.css",
            get(|| asset("text/css; charset=utf-8", STYLESHEET)),
        )
        .route(
            "/console/assets/console.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/console/{*rest}",
            get(|| async { ConsoleError::NotFound("There is no console page at this address.".to_owned()) }),
        );
    // A path that also has a page gets its POST merged into the same route.
    state_changing()
        .into_iter()
        .fold(pages, |router, (path, _, handler)| router.route(path, handler))
        .layer(middleware::from_fn_with_state(state, guard))
}

/// Who may post to a state-changing console route. Every post must also come from the console's own
/// origin (see [`guard`]) and carry a CSRF token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Anyone: signing in, whose token is bound to a pre-session cookie instead of a session.
    Anyone,
    /// Any signed-in user (monitors too), with the session's CSRF token: signing out, one's own password.
    SignedIn,
    /// Admins, with the session's CSRF token (the [`session::Change`] extractor).
    Admins,
}

/// Every state-changing (POST) route of the console, as axum path patterns, and who may use it: the
/// list the router is built from, exposed so the security tests cover each route without keeping a
/// list of their own.
pub fn state_changing_routes() -> Vec<(&'static str, Allowed)> {
    state_changing()
        .into_iter()
        .map(|(path, allowed, _)| (path, allowed))
        .collect()
}

fn state_changing() -> Vec<(&'static str, Allowed, MethodRouter<AppState>)> {
    use Allowed::{Admins, Anyone, SignedIn};
    vec![
        ("/console/sign-in", Anyone, post(session::sign_in)),
        ("/console/sign-out", SignedIn, post(session::sign_out)),
        ("/console/account/password", SignedIn, post(account::change_password)),
        (
            "/console/integrations",
            Admins,
            post(integration_form::create_integration),
        ),
        ("/console/check-integrations", Admins, post(integrations::check_listed)),
        (
            "/console/integrations/{name}/edit",
            Admins,
            post(integration_form::update_integration),
        ),
        (
            "/console/integrations/{name}/check",
            Admins,
            post(integration::check_integration),
        ),
        (
            "/console/integrations/{name}/delete",
            Admins,
            post(integration::delete_integration),
        ),
        (
            "/console/integrations/{name}/tickets/resend",
            Admins,
            post(tickets::resend_problem),
        ),
        (
            "/console/integrations/{name}/tickets/resend-all",
            Admins,
            post(tickets::resend_all_problems),
        ),
        (
            "/console/integrations/{name}/tickets/delete",
            Admins,
            post(tickets::delete_problem),
        ),
        (
            "/console/integrations/{name}/tickets/test",
            Admins,
            post(tickets::send_test_event),
        ),
        ("/console/alerts/test", Admins, post(overview::test_alert)),
        ("/console/mail/flush", Admins, post(mail::flush_mail)),
        ("/console/mail/errors/resend", Admins, post(mail::resend_all_mail)),
        ("/console/mail/errors/delete", Admins, post(mail::delete_all_errors)),
        ("/console/mail/{id}/resend", Admins, post(mail::resend_mail)),
        ("/console/mail/{id}/delete", Admins, post(mail::delete_mail)),
        ("/console/users", Admins, post(users::create_user)),
        ("/console/users/{name}/password", Admins, post(users::set_password)),
        ("/console/users/{name}/role", Admins, post(users::set_role)),
        ("/console/users/{name}/delete", Admins, post(users::delete_user)),
        ("/console/tokens", Admins, post(users::create_token)),
        ("/console/tokens/{id}/revoke", Admins, post(users::revoke_token)),
        ("/console/cluster/{node}/drain", Admins, post(cluster::drain_node)),
        ("/console/cluster/{node}/activate", Admins, post(cluster::activate_node)),
    ]
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The content security policy: nothing but the console's own stylesheet and script, no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Refuses form posts from other sites (defence in depth beside the CSRF token), then adds the
/// security headers to every console response.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        if let Err(refusal) = same_origin(&req, state.settings.console.public_url.as_deref()) {
            return refusal.into_response();
        }
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A post must come from a console page: `Sec-Fetch-Site` (sent by every current browser) must not
/// say cross-site, and an `Origin` header, when present, must name this host (as the request's `Host`
/// header, or `HERALD_PUBLIC_URL` behind a proxy that rewrites it).
fn same_origin(req: &Request, public_url: Option<&str>) -> Result<(), ConsoleError> {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(ConsoleError::CrossSite);
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let Some(origin) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        return Err(ConsoleError::CrossSite);
    };
    if public_url
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|public| public.origin() == origin.origin())
    {
        return Ok(());
    }
    // The authority the browser addressed: `Host`, or the request target's (HTTP/2).
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let addressed = authority.and_then(|a| url::Url::parse(&format!("{}://{a}", origin.scheme())).ok());
    match addressed {
        // Same host and port, a default port written or not (`herald:443` is `https://herald`).
        Some(addressed)
            if addressed.host_str().is_some_and(|h| Some(h) == origin.host_str())
                && addressed.port_or_known_default() == origin.port_or_known_default() =>
        {
            Ok(())
        }
        _ => Err(ConsoleError::CrossSite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn post(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::post("/console/mail/flush");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn posts_from_the_console_origin_pass_and_others_do_not() {
        let ok = |h: &[(&str, &str)], public: Option<&str>| same_origin(&post(h), public).is_ok();
        assert!(ok(
            &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")],
            None
        ));
        assert!(ok(
            &[
                ("host", "herald.example.com:443"),
                ("origin", "https://herald.example.com")
            ],
            None
        ));
        assert!(ok(&[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")], None));
        assert!(
            ok(&[("host", "herald.example.com")], None),
            "no Origin: the CSRF token decides"
        );
        assert!(ok(
            &[("host", "10.0.0.5:8080"), ("origin", "https://herald.example.com")],
            Some("https://herald.example.com")
        ));
        assert!(ok(&[("sec-fetch-site", "same-origin")], None));
        assert!(!ok(
            &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9090")],
            None
        ));
        assert!(!ok(
            &[
                ("host", "herald.example.com"),
                ("origin", "https://herald.example.com.evil.test")
            ],
            None
        ));
        assert!(!ok(&[("host", "herald.example.com"), ("origin", "null")], None));
        assert!(
            !ok(&[("origin", "http://127.0.0.1:8080")], None),
            "nothing to compare with"
        );
        assert!(!ok(&[("sec-fetch-site", "same-site")], None));
        assert!(!ok(&[("sec-fetch-site", "cross-site")], None));
    }
}
