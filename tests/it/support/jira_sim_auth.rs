//! The simulator's sign-in: who is calling, and every way Jira refuses credentials (Seraph headers,
//! CAPTCHA, Cloud's refusal of passwords, a login page), plus the anonymous `serverInfo`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::{
    API_TOKEN, Flavour, PASSWORD, PAT, SERVER_INFO_CLOUD, SERVER_INFO_DC, SimConfig, SimState, USER, errors, fixture,
    json_response,
};

pub(super) enum Caller {
    Anonymous,
    User,
    /// Credentials Jira refuses, with how it says so.
    Refused(Response),
}

pub(super) fn login_page() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        "<!DOCTYPE html><html><head><title>Log in - Jira</title></head><body><form id=\"login-form\" \
         action=\"/login.jsp\"></form></body></html>",
    )
        .into_response()
}

pub(super) fn captcha(state: &SimState) -> Response {
    let base = state.base.lock().unwrap().clone();
    let mut r = errors(StatusCode::FORBIDDEN, "CAPTCHA_CHALLENGE");
    r.headers_mut().insert(
        "x-authentication-denied-reason",
        HeaderValue::from_str(&format!("CAPTCHA_CHALLENGE; login-url={base}/login.jsp")).unwrap(),
    );
    r.headers_mut().insert(
        "x-seraph-loginreason",
        HeaderValue::from_static("AUTHENTICATION_DENIED"),
    );
    r
}

pub(super) fn server_info(state: &SimState, config: &SimConfig) -> Response {
    let base = state.base.lock().unwrap().clone();
    let mut info = match config.flavour {
        Flavour::Cloud => {
            let mut v = fixture(SERVER_INFO_CLOUD);
            v["deploymentType"] = json!("Cloud");
            v
        }
        Flavour::DataCenter => fixture(SERVER_INFO_DC),
        Flavour::Legacy => {
            let mut v = fixture(SERVER_INFO_DC);
            v["version"] = json!("8.0.2");
            v["versionNumbers"] = json!([8, 0, 2]);
            v
        }
    };
    info["baseUrl"] = json!(config.reported_base_url.clone().unwrap_or(base));
    if config.omit_deployment_type {
        info.as_object_mut().unwrap().remove("deploymentType");
    }
    json_response(StatusCode::OK, info)
}

fn refused_dc(state: &SimState, config: &SimConfig) -> Caller {
    let mut failures = state.failed_logins.lock().unwrap();
    *failures += 1;
    if config.captcha_after > 0 && *failures > config.captcha_after {
        drop(failures);
        return Caller::Refused(captcha(state));
    }
    let mut r = errors(StatusCode::UNAUTHORIZED, "");
    r.headers_mut()
        .insert("x-seraph-loginreason", HeaderValue::from_static("AUTHENTICATED_FAILED"));
    Caller::Refused(r)
}

pub(super) fn authenticate(state: &SimState, config: &SimConfig, headers: &HeaderMap) -> Caller {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Caller::Anonymous;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return match config.flavour {
            Flavour::DataCenter if token == PAT => Caller::User,
            Flavour::DataCenter => refused_dc(state, config),
            // Cloud takes OAuth bearer tokens only; an API token there is simply not authenticated.
            Flavour::Cloud | Flavour::Legacy => Caller::Refused(errors(
                StatusCode::UNAUTHORIZED,
                "Client must be authenticated to access this resource.",
            )),
        };
    }
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return Caller::Anonymous;
    };
    let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap_or_default()).unwrap_or_default();
    let (user, secret) = decoded.split_once(':').unwrap_or(("", ""));
    match config.flavour {
        Flavour::Cloud => {
            if user == USER && secret == API_TOKEN {
                Caller::User
            } else if user == USER && secret == PASSWORD {
                Caller::Refused(
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::CONTENT_TYPE, "text/plain")],
                        "Basic authentication with passwords is deprecated.  For more information, see: \
                         https://developer.atlassian.com/cloud/confluence/deprecation-notice-basic-auth/",
                    )
                        .into_response(),
                )
            } else {
                Caller::Refused(errors(
                    StatusCode::UNAUTHORIZED,
                    "Client must be authenticated to access this resource.",
                ))
            }
        }
        Flavour::DataCenter | Flavour::Legacy => {
            if user == USER && secret == PASSWORD {
                Caller::User
            } else {
                refused_dc(state, config)
            }
        }
    }
}
