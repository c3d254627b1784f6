//! Where a Jira is and how Herald signs in to it: what the client needs to reach one Jira.
//!
//! They are part of the integration model too (`integrations` re-exports them), but the client needs them and
//! `integrations` needs the client, so they live here, below both.

use std::fmt;

use crate::secret::Secret;

/// How Herald signs in to Jira.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// User name (or e-mail on Cloud) and password or API token, sent as HTTP Basic.
    Basic { username: String, password: Secret },
    /// A personal access token, sent as `Authorization: Bearer`.
    Bearer { token: Secret },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Auth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Auth {
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "basic",
            Auth::Bearer { .. } => "bearer",
        }
    }

    pub fn username(&self) -> Option<&str> {
        match self {
            Auth::Basic { username, .. } => Some(username),
            Auth::Bearer { .. } => None,
        }
    }

    pub fn secret(&self) -> &Secret {
        match self {
            Auth::Basic { password, .. } => password,
            Auth::Bearer { token } => token,
        }
    }
}

/// A validated Jira base URL without a trailing slash; may carry a context path such as `/jira`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraUrl(reqwest::Url);

impl JiraUrl {
    /// Parses a Jira base URL; the error says why it cannot be one, in words fit for the admin who typed it.
    pub fn parse(s: &str) -> Result<JiraUrl, String> {
        let url = reqwest::Url::parse(s.trim())
            .map_err(|e| format!("is not a valid URL ({e}); use e.g. https://jira.example.com/jira"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must start with http:// or https://".to_owned());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials; put them in `auth`".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment; give Jira's base URL".to_owned());
        }
        Ok(Self(url))
    }

    /// Scheme, host and port: where a credential sent to this URL goes.
    pub fn origin(&self) -> url::Origin {
        self.0.origin()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or("")
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.0
    }

    /// The URL of a REST path such as `/rest/api/2/myself`, under the context path.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.as_str())
    }

    /// Whether the host is this machine (never sent through a proxy).
    pub fn is_loopback(&self) -> bool {
        match self.0.host() {
            Some(::url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(::url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(::url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
    }
}
