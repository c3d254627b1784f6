//! `ApiError`: the one place where errors become status codes and RFC 9457 problem details. Domain
//! errors say what kind they are ([`Classified`]); one conversion below turns any of them into a
//! problem, so a failure has the same status on every route.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error_kind::{Classified, ErrorKind};

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

/// The one conversion of domain errors: the kind chooses the status and the default `code`; the
/// error may name a finer code; the detail is what the error says may be shown.
impl<E: Classified> From<E> for ApiError {
    fn from(err: E) -> Self {
        let detail = err.public_detail();
        let answer = match err.kind() {
            ErrorKind::NotFound => ApiError::not_found(detail),
            ErrorKind::Conflict => ApiError::conflict(detail),
            ErrorKind::Invalid { field } => ApiError::bad_request("invalid_field", detail).with_field(field),
            ErrorKind::Unauthenticated => ApiError::unauthorized(detail),
            ErrorKind::Throttled { retry_after } => ApiError::too_many_requests(retry_after, detail),
            ErrorKind::Unavailable => {
                tracing::warn!(error = %err, "unavailable");
                ApiError::unavailable(detail)
            }
            ErrorKind::Internal => return ApiError::internal(&err),
        };
        match err.code() {
            Some(code) => ApiError { code, ..answer },
            None => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AccountError, AuthError};
    use crate::integrations::{IntegrationError, InvalidIntegration};
    use crate::mail::MailError;
    use crate::store::StoreError;

    fn answer(err: impl Into<ApiError>) -> (u16, &'static str, String, Option<String>) {
        let err = err.into();
        (
            err.status().as_u16(),
            err.code(),
            err.detail().to_owned(),
            err.field().map(str::to_owned),
        )
    }

    #[test]
    fn each_kind_has_its_status_and_code() {
        assert_eq!(
            answer(AccountError::UserNotFound("ghost".into())),
            (404, "not_found", "no user named `ghost`".into(), None)
        );
        assert_eq!(
            answer(IntegrationError::AlreadyExists("jira".into())),
            (
                409,
                "conflict",
                "an integration named `jira` already exists".into(),
                None
            )
        );
        assert_eq!(
            answer(IntegrationError::Invalid(InvalidIntegration::new("url", "is empty"))),
            (400, "invalid_field", "`url` is empty".into(), Some("url".into()))
        );
        assert_eq!(answer(AuthError::Invalid).0, 401);
        let throttled = ApiError::from(AuthError::Throttled {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(
            (throttled.status().as_u16(), throttled.code()),
            (429, "too_many_requests")
        );
        assert!(
            throttled
                .headers
                .iter()
                .any(|(n, v)| n == header::RETRY_AFTER && v == "2")
        );
        assert_eq!(
            answer(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
            (
                503,
                "unavailable",
                "the database is unavailable; try again shortly".into(),
                None
            )
        );
    }

    #[test]
    fn a_finer_code_replaces_the_kinds() {
        assert_eq!(
            answer(MailError::KeyConflict("0190".into())).1,
            "idempotency_key_reused"
        );
        assert_eq!(
            answer(AccountError::Password(crate::auth::password::PasswordError::TooShort)).1,
            "invalid_password"
        );
    }

    #[test]
    fn corrupt_data_and_undecryptable_secrets_are_500_without_internals() {
        for err in [
            ApiError::from(StoreError::Corrupt("user 7: unknown role `root`".into())),
            ApiError::from(IntegrationError::Secrets {
                name: "jira".into(),
                source: crate::secret::SecretsError::Undecryptable,
            }),
        ] {
            assert_eq!((err.status().as_u16(), err.code()), (500, "internal"));
            assert_eq!(err.detail(), "Herald hit an internal error; the log has the details");
        }
    }
}
