//! The admin console: server-rendered pages under `/console`, for admins (read and act) and monitors
//! (read only).
//!
//! Pages are askama templates compiled into the binary; the stylesheet and a little script are served
//! from the binary too, so the console works without internet access and without a front-end build.
//! Sign-in starts a server-side session (cookie `herald_session`, HttpOnly, SameSite=Lax; over TLS
//! `__Host-herald_session`, Secure); every form carries the session's CSRF token, and cross-site form
//! posts are refused.

mod access;
mod account;
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
use axum::routing::{get, post};

use crate::state::AppState;
use error::ConsoleError;

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// The console's routes, with their security headers.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::overview))
        .route("/console/sign-in", get(session::sign_in_form).post(session::sign_in))
        .route("/console/sign-out", post(session::sign_out))
        .route(
            "/console/integrations",
            get(pages::integrations).post(pages::create_integration),
        )
        .route("/console/add-integration", get(pages::new_integration))
        .route("/console/check-integrations", post(pages::check_listed))
        .route("/console/integrations/{name}", get(pages::integration))
        .route(
            "/console/integrations/{name}/edit",
            get(pages::edit_integration).post(pages::update_integration),
        )
        .route("/console/integrations/{name}/check", post(pages::check_integration))
        .route("/console/integrations/{name}/delete", post(pages::delete_integration))
        .route("/console/alerts/test", post(pages::test_alert))
        .route("/console/mail", get(pages::mail))
        .route("/console/mail/flush", post(pages::flush_mail))
        .route("/console/mail/errors/resend", post(pages::resend_all_mail))
        .route("/console/mail/errors/delete", post(pages::delete_all_errors))
        .route("/console/mail/{id}/resend", post(pages::resend_mail))
        .route("/console/mail/{id}/delete", post(pages::delete_mail))
        .route("/console/account", get(account::account))
        .route("/console/account/password", post(account::change_password))
        .route("/console/users", get(access::users).post(access::create_user))
        .route("/console/users/{name}/password", post(access::set_password))
        .route("/console/users/{name}/role", post(access::set_role))
        .route("/console/users/{name}/delete", post(access::delete_user))
        .route("/console/tokens", post(access::create_token))
        .route("/console/tokens/{id}/revoke", post(access::revoke_token))
        .route("/console/cluster", get(pages::cluster))
        .route("/console/cluster/{node}/drain", post(pages::drain_node))
        .route("/console/cluster/{node}/activate", post(pages::activate_node))
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
        )
        .layer(middleware::from_fn_with_state(state, guard))
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
        if let Err(refusal) = same_origin(&req, state.settings.public_url.as_deref()) {
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
