//! `ApiError`: the one place where errors become status codes and RFC 9457 problem details.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::{AccountError, AuthError};
use crate::store::StoreError;

/// An error of Herald's own API, rendered as `application/problem+json`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// Stable machine-readable code; also the last part of the problem `type` URI.
    code: &'static str,
    detail: String,
    field: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The problem details body (RFC 9457), with two extension members: `code` and `field`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:herald:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    /// The request field at fault, as a path such as `role` or `fields.components[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

pub const WWW_AUTHENTICATE_CHALLENGES: [&str; 2] =
    ["Basic realm=\"herald\", charset=\"UTF-8\"", "Bearer realm=\"herald\""];

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into()).filter(|f: &String| !f.is_empty() && f != ".");
        self
    }

    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401 with a challenge for each scheme Herald accepts.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        for challenge in WWW_AUTHENTICATE_CHALLENGES {
            err = err.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        err
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn too_many_requests(retry_after: Duration, detail: impl Into<String>) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// A fault of Herald itself: logged in full, answered without internals.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Herald hit an internal error; the log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("urn:herald:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            field: self.field,
        };
        let mut response = (self.status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("the database is unavailable; try again shortly")
            }
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            other => ApiError::internal(&other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Invalid => ApiError::unauthorized("the user name, password or token is not valid"),
            AuthError::Throttled { retry_after } => ApiError::too_many_requests(
                retry_after,
                format!(
                    "too many failed sign-in attempts; try again in {} s",
                    retry_after.as_secs().max(1)
                ),
            ),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::UserNotFound(_) | AccountError::TokenNotFound(_) => ApiError::not_found(err.to_string()),
            AccountError::LastAdmin(_) => ApiError::conflict(err.to_string()),
            AccountError::Password(crate::auth::password::PasswordError::Hash(_)) => ApiError::internal(&err),
            AccountError::Password(_) => {
                ApiError::bad_request("invalid_password", err.to_string()).with_field("password")
            }
            AccountError::TokenName => ApiError::bad_request("invalid_field", err.to_string()).with_field("name"),
            AccountError::TokenLifetime => {
                ApiError::bad_request("invalid_field", err.to_string()).with_field("expires_in")
            }
            AccountError::Store(e) => e.into(),
        }
    }
}

impl From<crate::integrations::IntegrationError> for ApiError {
    fn from(err: crate::integrations::IntegrationError) -> Self {
        use crate::integrations::IntegrationError;
        match err {
            IntegrationError::NotFound(_) => ApiError::not_found(err.to_string()),
            IntegrationError::AlreadyExists(_) => ApiError::conflict(err.to_string()),
            IntegrationError::Invalid(invalid) => {
                ApiError::bad_request("invalid_field", invalid.to_string()).with_field(invalid.field)
            }
            IntegrationError::Store(e) => e.into(),
            IntegrationError::Secrets { .. } | IntegrationError::Corrupt { .. } | IntegrationError::Unreadable(_) => {
                ApiError::internal(&err)
            }
        }
    }
}
