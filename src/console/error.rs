//! Console errors: an HTML page with the status and a sentence saying what happened and what to do,
//! or a redirect to the sign-in page.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::alerts::AlertError;
use crate::integrations::IntegrationError;
use crate::mail::MailError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in (or the session ended): back to the sign-in page, then to `next`.
    SignIn {
        next: Option<String>,
    },
    NotFound(String),
    /// Signed in, but the role does not allow this.
    Forbidden(String),
    /// The form's CSRF token is missing or not this session's.
    Csrf,
    /// A form post that does not come from a console page.
    CrossSite,
    BadRequest(String),
    /// The database (or another part Herald depends on) failed.
    Unavailable(String),
    /// A defect in Herald (a page that cannot be rendered).
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
            ConsoleError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
            ConsoleError::Csrf | ConsoleError::CrossSite => (StatusCode::FORBIDDEN, "Form refused"),
            ConsoleError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            ConsoleError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable"),
            ConsoleError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        }
    }

    fn message(&self) -> String {
        match self {
            ConsoleError::SignIn { .. } => "Sign in to continue.".to_owned(),
            ConsoleError::NotFound(m) | ConsoleError::Forbidden(m) | ConsoleError::BadRequest(m) => m.clone(),
            ConsoleError::Csrf => "This form has expired or was not sent from this session's page (its CSRF token \
                                  does not match). Nothing was changed. Go back, reload the page and try again."
                .to_owned(),
            ConsoleError::CrossSite => "This form was sent from another site. Nothing was changed.".to_owned(),
            ConsoleError::Unavailable(m) => format!("{m} Try again in a moment."),
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
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        // The cause goes to the log, not to the page (which may be the sign-in page, seen by anyone).
        tracing::warn!(error = %e, "console: database error");
        ConsoleError::Unavailable("The database did not answer.".to_owned())
    }
}

impl From<MailError> for ConsoleError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::NotFound(id) => ConsoleError::NotFound(format!(
                "There is no message `{id}` in that queue any more (it may have been sent, resent or deleted)."
            )),
            MailError::Store(e) => e.into(),
            other => ConsoleError::Unavailable(format!("The mail queue refused: {other}.")),
        }
    }
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

impl From<AlertError> for ConsoleError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::Off => ConsoleError::BadRequest(
                "Alerts are off: set HERALD_ALERT_EMAILS to the addresses that should receive them, then restart."
                    .to_owned(),
            ),
            AlertError::Store(e) => e.into(),
            AlertError::Mail(e) => e.into(),
            other => ConsoleError::Unavailable(format!("The alert mail was not queued: {other}.")),
        }
    }
}

impl From<IntegrationError> for ConsoleError {
    fn from(e: IntegrationError) -> Self {
        match e {
            IntegrationError::NotFound(name) => {
                ConsoleError::NotFound(format!("There is no integration named `{name}`."))
            }
            IntegrationError::Store(e) => e.into(),
            other => ConsoleError::Unavailable(format!("The integration cannot be used: {other}.")),
        }
    }
}
