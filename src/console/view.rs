//! What every page shares: the layout's data, rendering, and small formatting helpers.

use askama::Template;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ConsoleError;
use super::session::Session;
use crate::timefmt::rfc3339_ms;

/// The layout's data: who is signed in, which section is open, the one-time message.
pub struct Chrome {
    pub title: String,
    /// `overview`, `integrations`, `mail`, `cluster`, `users` or `account`.
    pub section: &'static str,
    pub username: String,
    pub role: &'static str,
    /// May change things (admin); monitors see every page read-only.
    pub admin: bool,
    pub csrf: String,
    pub flash: Option<String>,
    pub node_id: String,
    pub version: &'static str,
}

impl Chrome {
    pub fn new(session: &Session, node_id: &str, section: &'static str, title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            username: session.username.to_string(),
            role: session.role.as_str(),
            admin: session.is_admin(),
            csrf: session.csrf.clone(),
            flash: session.flash.clone(),
            node_id: node_id.to_owned(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// `aria-current="page"` for the open section's link.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section { "page" } else { "false" }
    }
}

/// Renders a page as an HTML response.
pub fn html<T: Template>(page: &T) -> Result<Response, ConsoleError> {
    html_with(axum::http::StatusCode::OK, page)
}

pub fn html_with<T: Template>(status: axum::http::StatusCode, page: &T) -> Result<Response, ConsoleError> {
    let body = page.render().map_err(|e| {
        tracing::error!(error = %e, "console: a page failed to render");
        ConsoleError::Internal
    })?;
    Ok((status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response())
}

/// A moment both ways: relative for reading (`3 min ago`) and exact for the tooltip and `<time>`.
#[derive(Debug, Clone)]
pub struct When {
    pub iso: String,
    pub ago: String,
}

impl When {
    pub fn at(ms: i64, now: i64) -> When {
        When {
            iso: rfc3339_ms(ms),
            ago: ago(now - ms),
        }
    }
}

/// `just now`, `42 s ago`, `3 min ago`, `5 h ago`, `2 d ago` (and `in …` for the future).
pub fn ago(elapsed_ms: i64) -> String {
    if elapsed_ms < 0 {
        return format!("in {}", span(-elapsed_ms));
    }
    if elapsed_ms < 1_000 {
        return "just now".to_owned();
    }
    format!("{} ago", span(elapsed_ms))
}

/// A duration in its largest whole unit: `42 s`, `3 min`, `5 h`, `2 d`.
pub fn span(ms: i64) -> String {
    let s = ms / 1_000;
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min", s / 60),
        3_600..86_400 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

/// One encoding for every path segment and query value the console writes (the alerts' links use it too).
pub use crate::links::encode_component;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(500), "just now");
        assert_eq!(ago(42_000), "42 s ago");
        assert_eq!(ago(3 * 60_000 + 5), "3 min ago");
        assert_eq!(ago(5 * 3_600_000), "5 h ago");
        assert_eq!(ago(2 * 86_400_000), "2 d ago");
        assert_eq!(ago(-120_000), "in 2 min");
    }

    #[test]
    fn components_are_encoded_for_paths() {
        assert_eq!(encode_component("jira-prod_1.x~"), "jira-prod_1.x~");
        assert_eq!(encode_component("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }
}
