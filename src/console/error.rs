//! Console errors: an HTML page with the status and a sentence saying what happened and what to do,
//! or a redirect to the sign-in page. A domain error becomes a page in one place, by its kind
//! ([`Classified`]), so the console answers a failure with the API's status. A page may first
//! catch an error it presents in its own way (a form shown again with the reason, a refusal in the
//! page's words); whatever it does not catch comes here.

use askama::Template;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error_kind::{Classified, ErrorKind};

#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in (or the session ended): back to the sign-in page, then to `next`.
    SignIn {
        next: Option<String>,
    },
    NotFound(String),
    /// The change contradicts what is stored (a name already taken, a reused key).
    Conflict(String),
    /// Signed in, but the role does not allow this.
    Forbidden(String),
    /// The form's CSRF token is missing or not this session's.
    Csrf,
    /// A form post that does not come from a console page.
    CrossSite,
    BadRequest(String),
    /// Too many failed attempts: refused until `retry_after` has passed.
    Throttled {
        retry_after: Duration,
    },
    /// The database (or another part Herald depends on) did not answer; it may a moment later.
    Unavailable(String),
    /// A fault of Herald or of its stored data (a page that cannot be rendered, a row or secret
    /// that cannot be read): the log says which.
    Internal,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl ConsoleError {
    fn status_and_title(&self) -> (StatusCode, &'static str) {
        match self {
            ConsoleError::SignIn { .. } => (StatusCode::SEE_OTHER, "Sign in"),
            ConsoleError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            ConsoleError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ConsoleError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
            ConsoleError::Csrf | ConsoleError::CrossSite => (StatusCode::FORBIDDEN, "Form refused"),
            ConsoleError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            ConsoleError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
            ConsoleError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable"),
            ConsoleError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        }
    }

    fn message(&self) -> String {
        match self {
            ConsoleError::SignIn { .. } => "Sign in to continue.".to_owned(),
            ConsoleError::NotFound(m)
            | ConsoleError::Conflict(m)
            | ConsoleError::Forbidden(m)
            | ConsoleError::BadRequest(m)
            | ConsoleError::Unavailable(m) => m.clone(),
            ConsoleError::Csrf => "This form has expired or was not sent from this session's page (its CSRF token \
                                  does not match). Nothing was changed. Go back, reload the page and try again."
                .to_owned(),
            ConsoleError::CrossSite => "This form was sent from another site. Nothing was changed.".to_owned(),
            ConsoleError::Throttled { retry_after } => format!(
                "Too many failed attempts. Try again in {} s.",
                retry_after.as_secs().max(1)
            ),
            ConsoleError::Internal => "Herald could not build this page; the log says why.".to_owned(),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let ConsoleError::SignIn { next } = &self {
            let target = match next {
                Some(next) => format!("/console/sign-in?next={}", super::view::encode_component(next)),
                None => "/console/sign-in".to_owned(),
            };
            return Redirect::to(&target).into_response();
        }
        let (status, title) = self.status_and_title();
        let message = self.message();
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message: &message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {title}: {message}", status.as_u16()));
        let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
        if let ConsoleError::Throttled { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
        }
        response
    }
}

/// The one conversion of domain errors into pages: the kind chooses the status, the error's public
/// detail becomes the page's sentence. The cause of an outage or a fault goes to the log, not to
/// the page (which may be the sign-in page, seen by anyone).
impl<E: Classified> From<E> for ConsoleError {
    fn from(err: E) -> Self {
        let detail = err.public_detail();
        match err.kind() {
            ErrorKind::NotFound => ConsoleError::NotFound(match detail.strip_prefix("no ") {
                // Domain errors say `no user named `x``; a page says it as a sentence.
                Some(rest) => format!("There is no {rest}."),
                None => sentence(&detail),
            }),
            ErrorKind::Conflict => ConsoleError::Conflict(sentence(&detail)),
            ErrorKind::Invalid { .. } => ConsoleError::BadRequest(sentence(&detail)),
            ErrorKind::Unauthenticated => ConsoleError::SignIn { next: None },
            ErrorKind::Throttled { retry_after } => ConsoleError::Throttled { retry_after },
            ErrorKind::Unavailable => {
                tracing::warn!(error = %err, "console: unavailable");
                ConsoleError::Unavailable(sentence(&detail))
            }
            ErrorKind::Internal => {
                tracing::error!(error = %err, "console: internal error");
                ConsoleError::Internal
            }
        }
    }
}

/// A detail (`a user named `x` already exists`) as a sentence: capital first letter, final stop.
pub fn sentence(detail: &str) -> String {
    let mut chars = detail.trim().chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

/// A path segment that is not valid UTF-8 (or otherwise unreadable).
impl From<axum::extract::rejection::PathRejection> for ConsoleError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        ConsoleError::BadRequest(format!("This address cannot be read: {e}."))
    }
}

impl From<axum::extract::rejection::FormRejection> for ConsoleError {
    fn from(e: axum::extract::rejection::FormRejection) -> Self {
        ConsoleError::BadRequest(format!("The form could not be read: {e}."))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ConsoleError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ConsoleError::BadRequest(format!("This address's query cannot be read: {e}."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::IntegrationError;
    use crate::store::StoreError;

    fn page(err: impl Into<ConsoleError>) -> (StatusCode, String) {
        let err = err.into();
        (err.status_and_title().0, err.message())
    }

    #[test]
    fn pages_take_the_status_of_the_errors_kind() {
        assert_eq!(
            page(IntegrationError::NotFound("nope".into())),
            (StatusCode::NOT_FOUND, "There is no integration named `nope`.".into())
        );
        assert_eq!(
            page(IntegrationError::AlreadyExists("jira".into())),
            (
                StatusCode::CONFLICT,
                "An integration named `jira` already exists.".into()
            )
        );
        assert_eq!(
            page(StoreError::Unavailable(sqlx::Error::Protocol(
                "db.internal:5432".into()
            ))),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; try again shortly.".into()
            )
        );
    }

    #[test]
    fn corrupt_data_and_undecryptable_secrets_are_500_not_503() {
        for err in [
            ConsoleError::from(StoreError::Corrupt("session of ann: bad json".into())),
            ConsoleError::from(IntegrationError::Corrupt {
                name: "jira".into(),
                detail: "expected value".into(),
            }),
            ConsoleError::from(IntegrationError::Secrets {
                name: "jira".into(),
                source: crate::secret::SecretsError::Undecryptable,
            }),
        ] {
            assert_eq!(err.status_and_title().0, StatusCode::INTERNAL_SERVER_ERROR, "{err:?}");
            assert!(!err.message().contains("jira"), "no internals on the page");
        }
    }

    #[test]
    fn a_throttled_page_says_when_to_come_back() {
        let response = ConsoleError::from(crate::auth::AuthError::Throttled {
            retry_after: Duration::from_millis(2500),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn details_become_sentences() {
        assert_eq!(
            sentence("a user named `x` already exists"),
            "A user named `x` already exists."
        );
        assert_eq!(sentence("`url` is empty."), "`url` is empty.");
        assert_eq!(sentence(""), "");
    }
}
