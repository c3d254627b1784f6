//! The admin console: server-rendered pages under `/console`, for admins (read and act) and monitors
//! (read only).
//!
//! Pages are askama templates compiled into the binary; the stylesheet and a little script are served
//! from the binary too, so the console works without internet access and without a front-end build.
//! Sign-in starts a server-side session (cookie `herald_session`, HttpOnly, SameSite=Lax, Secure over
//! TLS); every form carries the session's CSRF token, and cross-site form posts are refused.

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

use crate::app::AppState;
pub use error::ConsoleError;
pub use session::SESSION_COOKIE;

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
        .route("/console/integrations/{name}", get(pages::integration))
        .route(
            "/console/integrations/{name}/edit",
            get(pages::edit_integration).post(pages::update_integration),
        )
        .route("/console/integrations/{name}/check", post(pages::check_integration))
        .route("/console/integrations/{name}/delete", post(pages::delete_integration))
        .route("/console/mail", get(pages::mail))
        .route("/console/mail/flush", post(pages::flush_mail))
        .route("/console/mail/errors/resend", post(pages::resend_all_mail))
        .route("/console/mail/errors/delete", post(pages::delete_all_errors))
        .route("/console/mail/{id}/resend", post(pages::resend_mail))
        .route("/console/mail/{id}/delete", post(pages::delete_mail))
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
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .and_then(|u| u.host_str().map(|h| (h.to_owned(), u.port())));
        let public_origin = public_url.and_then(|u| url::Url::parse(u).ok()).map(|u| u.origin());
        let origin_url = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok());
        if public_origin.is_some() && origin_url.map(|u| u.origin()) == public_origin {
            return Ok(());
        }
        let matches = match (host, origin_host) {
            (Some(host), Some((origin_host, port))) => {
                let expected = match port {
                    Some(p) => format!("{origin_host}:{p}"),
                    None => origin_host,
                };
                host.eq_ignore_ascii_case(&expected)
            }
            _ => false,
        };
        if !matches {
            return Err(ConsoleError::CrossSite);
        }
    }
    Ok(())
}
