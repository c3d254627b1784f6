//! The HTTP face: router assembly and the middleware stack.

mod alerts;
pub mod auth;
mod cross_site;
pub mod error;
mod events;
mod integrations;
pub mod json;
mod mail;
mod mailqueue;
pub mod negotiate;
mod openapi;
mod paging;
pub mod server;
mod submission;
mod system;
mod ticketing;
mod tickets;
mod tokens;
mod users;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Jira integration health checks and a durable outgoing mail queue, with JFrog Xray- and \
                       Jira-compatible status APIs. Every endpoint except /livez and /readyz needs credentials, \
                       this document (/openapi.json) too: HTTP Basic (password, or an API token as the \
                       password) or Bearer (API token). Errors are RFC 9457 problem details \
                       (application/problem+json)."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "system", description = "Health, metrics and this document"),
        (name = "users", description = "Users and roles (admin only)"),
        (name = "tokens", description = "API tokens (admin only)"),
        (name = "mail", description = "Submitting mail, and the queue's admin operations"),
        (name = "mail queue (Jira-compatible)", description = "Jira's /rest/mailqueue/1.0 API: JSON or XML by Accept"),
        (name = "integrations", description = "Ticketing integrations and their checks (admin only)"),
        (name = "ticketing", description = "JFrog Xray-compatible ticketing endpoints (admin only)"),
        (name = "alerts", description = "Health alerts mailed through the queue: what fires, and a test mail"),
        (name = "events", description = "Events that open, update and resolve Jira issues: Herald's own format and \
                                          Alertmanager's webhook (the events role or admin)"),
        (name = "tickets", description = "Each problem's Jira issue, its waiting events and the error list: resend \
                                           and delete (admin only)"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Every route with its OpenAPI description. `mail_body_limit` bounds mail submissions, which may be
/// larger than other requests.
fn api(mail_body_limit: usize) -> OpenApiRouter<AppState> {
    let submission = OpenApiRouter::new()
        .routes(routes!(submission::submit))
        .layer(axum::extract::DefaultBodyLimit::max(mail_body_limit));
    let alertmanager = OpenApiRouter::new()
        .routes(routes!(events::post_alertmanager))
        .layer(axum::extract::DefaultBodyLimit::max(events::ALERTMANAGER_BODY_LIMIT));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::livez))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::whoami))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user, users::delete_user))
        .routes(routes!(users::set_password))
        .routes(routes!(users::set_role))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .merge(submission)
        .routes(routes!(mail::list_queue))
        .routes(routes!(mail::delete_queued))
        .routes(routes!(mail::list_errors, mail::delete_all_errors))
        .routes(routes!(mail::delete_error))
        .routes(routes!(mail::resend_one))
        .routes(routes!(mail::resend_all))
        .routes(routes!(mail::flush))
        .routes(routes!(mail::get_mail))
        .routes(routes!(mailqueue::status))
        .routes(routes!(mailqueue::cluster_status))
        .routes(routes!(
            integrations::list_integrations,
            integrations::create_integration
        ))
        .routes(routes!(
            integrations::get_integration,
            integrations::replace_integration,
            integrations::patch_integration,
            integrations::delete_integration
        ))
        .routes(routes!(integrations::check_integration))
        .routes(routes!(integrations::integration_history))
        .routes(routes!(ticketing::integration_status))
        .routes(routes!(ticketing::create_jira_integration))
        .routes(routes!(
            ticketing::update_jira_integration,
            ticketing::delete_jira_integration
        ))
        .routes(routes!(ticketing::jira_integration_details))
        .routes(routes!(alerts::overview))
        .routes(routes!(alerts::send_test))
        .routes(routes!(events::post_event))
        .routes(routes!(tickets::list_tickets))
        .routes(routes!(tickets::resend_all_tickets))
        .routes(routes!(tickets::get_ticket, tickets::delete_ticket))
        .routes(routes!(tickets::resend_ticket))
        .merge(alertmanager)
}

/// The OpenAPI document of every endpoint, as served by `/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    document(api(0).split_for_parts().1)
}

fn document(generated: utoipa::openapi::OpenApi) -> serde_json::Value {
    match serde_json::to_value(generated) {
        Ok(doc) => openapi::complete(doc),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}

/// Builds the application router with its middleware stack.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api(state.settings.mail.max_size).split_for_parts();
    let openapi_json =
        serde_json::to_string_pretty(&document(openapi)).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let request_id = HeaderName::from_static("x-request-id");
    let body_limit = state.settings.http.body_limit;
    let request_limit = state.settings.http.request_timeout;
    let trusted_proxies = std::sync::Arc::new(state.settings.http.trusted_proxies.clone());
    routes
        .layer(middleware::from_fn(cross_site::refuse_cross_site))
        .route(
            "/openapi.json",
            // Like every API, the description is for signed-in users only (any role).
            axum::routing::get(move |_who: auth::Authenticated| async move {
                ([(header::CONTENT_TYPE, "application/json")], openapi_json)
            }),
        )
        .merge(crate::console::routes(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |req, next| {
            request_timeout(request_limit, req, next)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                ]))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(middleware::from_fn(move |req, next| {
                    crate::client_addr::middleware(trusted_proxies.clone(), req, next)
                }))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            let client = req.extensions().get::<crate::client_addr::ClientAddr>();
                            tracing::info_span!("request", id, client = client.map(tracing::field::display), method = %req.method(), path = %req.uri().path())
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::internal(&"a request handler panicked").into_response()
                })),
        )
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no resource at `{}`", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{method}` is not allowed on `{}`", uri.path()),
    )
}

/// Answers 503 with a problem body when a request takes longer than `HERALD_REQUEST_TIMEOUT`.
async fn request_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} to answer",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let elapsed: Duration = started.elapsed();
    state
        .metrics
        .http_request(method, &route, response.status().as_u16(), elapsed);
    response
}

/// The method as a metrics label, from a fixed set: a method is any token a client sends, and every
/// new label value would add a counter and a histogram for the life of the process.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_request_slower_than_the_limit_gets_503_with_a_problem() {
        let limit = Duration::from_secs(30);
        let app: Router = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| tokio::time::sleep(Duration::from_secs(3600))),
            )
            .route("/fast", axum::routing::get(|| async { "ok" }))
            .layer(middleware::from_fn(move |req, next| request_timeout(limit, req, next)));
        let slow = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(slow.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(slow.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("longer than 30s"));
        let fast = app
            .oneshot(Request::get("/fast").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
    }
}
