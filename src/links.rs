//! The console's addresses, typed: the pages other modules point people to.
//!
//! Alert mails link to console pages, and the console links to the same pages; both build the path here, so a
//! page that moves moves once, and the alerts need not know the console (the console is a face and the alerts a
//! service below it). A name becomes one percent-encoded path segment: `a/b` stays one segment, `?` and `#`
//! cannot end the path.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a path segment or query value keeps as is: RFC 3986's unreserved characters. Everything else, UTF-8
/// bytes included, becomes `%XX`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes `s` for one path segment or one query value.
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A console page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link<'a> {
    /// The overview, the console's first page.
    Overview,
    /// One integration's page.
    Integration(&'a str),
    /// The form that edits one integration.
    IntegrationEdit(&'a str),
    /// One integration's tickets: its problems, their issues and the error list.
    Tickets(&'a str),
}

impl Link<'_> {
    /// The page's path, absolute from the site root (prefix the public URL for a mail).
    pub fn path(&self) -> String {
        match self {
            Link::Overview => "/console/".to_owned(),
            Link::Integration(name) => format!("/console/integrations/{}", encode_component(name)),
            Link::IntegrationEdit(name) => format!("/console/integrations/{}/edit", encode_component(name)),
            Link::Tickets(name) => format!("/console/integrations/{}/tickets", encode_component(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_keep_unreserved_characters_and_encode_the_rest() {
        assert_eq!(encode_component("jira-prod_1.x~"), "jira-prod_1.x~");
        assert_eq!(encode_component("a/b c?d#é%"), "a%2Fb%20c%3Fd%23%C3%A9%25");
    }

    #[test]
    fn an_integration_name_is_one_path_segment() {
        assert_eq!(Link::Overview.path(), "/console/");
        assert_eq!(
            Link::Integration("jira prod/1").path(),
            "/console/integrations/jira%20prod%2F1"
        );
        assert_eq!(Link::IntegrationEdit("a?b").path(), "/console/integrations/a%3Fb/edit");
        assert_eq!(Link::Tickets("a b").path(), "/console/integrations/a%20b/tickets");
    }
}
