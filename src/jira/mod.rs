//! A thin Jira REST client: one GET with a deadline, Jira's failure signals mapped to typed errors.
//!
//! Redirects are followed only within the same host and port, so credentials never travel to
//! another server. 429 and 503 are retried after `Retry-After` when that fits in the deadline.
//! `Retry-After` is Jira's (or anyone's) number: it is read saturating and honoured up to
//! [`MAX_RETRY_AFTER`], so a hostile value can neither overflow the clock nor park a check.

mod endpoint;
mod limiter;
mod signals;
mod ticket_error;
mod ticket_types;
pub mod tickets;
pub mod types;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use tokio::time::Instant;

pub use endpoint::{Auth, JiraUrl};
pub use limiter::{Limiter, LimiterSettings, Permit};
pub use signals::{AuthDenial, auth_denial, looks_like_dc_personal_access_token};
pub use ticket_error::{RateLimitHeaders, Retry, TicketError, TicketErrorKind};
pub use ticket_types::{
    CreatedIssue, FoundIssue, IssueState, StatusCategory, Transition, adf_from_text, find_transition, jql_quote,
    label_jql,
};
pub(crate) use ticket_types::{SearchWire, TransitionsWire};
pub use tickets::{ApiFlavor, NewIssue, TicketClient, TicketClientSettings};

/// The largest answer Herald reads from Jira; a bigger one is not a Jira REST answer we need.
pub const MAX_BODY: usize = 4 << 20;
const MAX_REDIRECTS: usize = 5;
/// The longest `Retry-After` Herald honours; a longer one is reported as such, never added to the clock.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How an HTTP client for one integration must be built; equal options share a client (and its pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientOptions {
    pub ca_cert_pem: Option<String>,
    /// No proxy: asked for by the integration, or the host is loopback.
    pub direct: bool,
}

/// Builds an HTTP client: no automatic proxy when `direct`, only the given CA when one is set, and a
/// redirect policy that stays on the original host.
pub fn build_client(options: &ClientOptions) -> Result<reqwest::Client, String> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_none_or(|first| {
            first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(policy)
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64);
    if options.direct {
        builder = builder.no_proxy();
    }
    if let Some(pem) = &options.ca_cert_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("the CA certificate cannot be read: {e}"))?;
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| format!("cannot set up HTTPS: {e}"))
}

/// An answer from Jira, read in full (up to [`MAX_BODY`]).
#[derive(Debug)]
pub struct JiraResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl JiraResponse {
    pub fn is_json(&self) -> bool {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"))
    }

    pub fn is_html(&self) -> bool {
        let declared = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"));
        let head = String::from_utf8_lossy(&self.body[..self.body.len().min(512)]).to_ascii_lowercase();
        declared || head.trim_start().starts_with("<!doctype html") || head.trim_start().starts_with("<html")
    }

    /// Jira's `errorMessages` and `errors`, or the start of the body, for a reason string: one line of
    /// at most [`EXCERPT`] characters, empty when the body says nothing.
    pub fn error_summary(&self) -> String {
        if let Ok(err) = serde_json::from_slice::<types::ErrorCollection>(&self.body) {
            // A JSON object: its messages, or nothing (its other fields say nothing to a person).
            return excerpt(err.messages().join("; ").trim_end_matches('.'), EXCERPT);
        }
        if self.is_html() {
            return "an HTML page".to_owned();
        }
        excerpt(
            &String::from_utf8_lossy(&self.body[..self.body.len().min(4 * EXCERPT)]),
            EXCERPT,
        )
    }

    /// The body as `T`; the error is one bounded line (serde's message can quote a whole value).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| excerpt(&e.to_string(), EXCERPT))
    }
}

/// The longest excerpt of an answer quoted in a reason.
pub const EXCERPT: usize = 160;

/// `text` on one line (whitespace runs collapsed), cut to `max` characters with an ellipsis.
pub fn excerpt(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>().trim_end())
    } else {
        line
    }
}

/// Why a request to Jira got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JiraError {
    #[error("the host name `{host}` cannot be resolved (DNS: {detail})")]
    Dns { host: String, detail: String },
    #[error("the connection to {addr} was refused (nothing listens there, or a firewall rejects it)")]
    Refused { addr: String },
    #[error("the TLS handshake with {addr} failed: {detail}")]
    Tls { addr: String, detail: String },
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error("no answer to GET {url} within {}", humantime::format_duration(Duration::from_millis(after.as_nanos().div_ceil(1_000_000) as u64)))]
    Timeout { url: String, after: Duration },
    #[error(
        "GET {url} redirects to another host ({location}); Herald does not follow redirects to another host so \
         that credentials cannot leak: set `url` to Jira's final address"
    )]
    OffHostRedirect { url: String, location: String },
    #[error("GET {url} failed: {detail}")]
    Redirects { url: String, detail: String },
    #[error(
        "Jira is rate-limiting Herald (HTTP {status} with Retry-After {} s{}, beyond the check's budget); \
         try again later",
        retry_after.asked_secs,
        if retry_after.is_capped() {
            format!(", more than the {} s Herald waits at most", MAX_RETRY_AFTER.as_secs())
        } else {
            String::new()
        }
    )]
    RateLimited { status: u16, retry_after: RetryAfter },
    #[error("the answer to GET {url} is larger than {} MiB, which no Jira answer to it should be", MAX_BODY >> 20)]
    TooLarge { url: String },
    #[error("GET {url} failed: {detail}")]
    Other { url: String, detail: String },
}

impl JiraError {
    /// Whether Jira was never reached (DNS, TCP, TLS, timeout): the connectivity class.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            JiraError::Dns { .. }
                | JiraError::Refused { .. }
                | JiraError::Tls { .. }
                | JiraError::Connect { .. }
                | JiraError::Timeout { .. }
        )
    }

    fn classify(err: &reqwest::Error, url: &reqwest::Url, after: Duration) -> JiraError {
        let host = url.host_str().unwrap_or("").to_owned();
        let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        let mut chain = Vec::new();
        let mut refused = false;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            }
            chain.push(e.to_string());
            source = e.source();
        }
        let text = chain.join(": ");
        let lower = text.to_ascii_lowercase();
        if err.is_timeout() {
            return JiraError::Timeout {
                url: url.to_string(),
                after,
            };
        }
        if lower.contains("dns error") || lower.contains("failed to lookup address") {
            let detail = chain.last().cloned().unwrap_or_default();
            return JiraError::Dns { host, detail };
        }
        if refused || lower.contains("connection refused") {
            return JiraError::Refused { addr };
        }
        if let Some(detail) = tls_detail(&lower, &host) {
            return JiraError::Tls { addr, detail };
        }
        if err.is_redirect() {
            return JiraError::Redirects {
                url: url.to_string(),
                detail: chain.last().cloned().unwrap_or_default(),
            };
        }
        if err.is_connect() {
            return JiraError::Connect {
                addr,
                detail: chain.last().cloned().unwrap_or(text),
            };
        }
        JiraError::Other {
            url: url.to_string(),
            detail: chain.last().cloned().unwrap_or(text),
        }
    }
}

/// Names the certificate or handshake problem in an error chain, if it is one.
fn tls_detail(lower: &str, host: &str) -> Option<String> {
    if !(lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")) {
        return None;
    }
    let detail = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        "the server's certificate is not signed by a trusted CA (for a private CA, set `ca_cert_pem`)".to_owned()
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        format!("the server's certificate is not valid for the host name `{host}`")
    } else if lower.contains("expired") {
        "the server's certificate has expired".to_owned()
    } else if lower.contains("notvalidyet") || lower.contains("not valid yet") {
        "the server's certificate is not valid yet (check the clocks)".to_owned()
    } else if lower.contains("revoked") {
        "the server's certificate has been revoked".to_owned()
    } else if lower.contains("badsignature") || lower.contains("bad signature") {
        "the server's certificate has a bad signature".to_owned()
    } else if lower.contains("corrupt message") || lower.contains("invalidcontenttype") || lower.contains("record") {
        "the server does not speak TLS on this port (is the URL http:// rather than https://?)".to_owned()
    } else {
        let tail = lower.rsplit(": ").next().unwrap_or(lower);
        format!("certificate or handshake error ({tail})")
    };
    Some(detail)
}

/// A client for one integration's Jira: base URL, credentials and the shared HTTP client.
#[derive(Clone)]
pub struct JiraClient {
    http: reqwest::Client,
    base: JiraUrl,
    auth: Auth,
}

/// Whether a request carries the integration's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Configured,
}

impl JiraClient {
    pub fn new(http: reqwest::Client, base: JiraUrl, auth: Auth) -> Self {
        Self { http, base, auth }
    }

    pub fn base(&self) -> &JiraUrl {
        &self.base
    }

    /// GET a REST path (`/rest/api/2/...`, query included) with a deadline for the whole exchange.
    /// 429/503 with `Retry-After` are waited out and retried while the deadline allows.
    pub async fn get(
        &self,
        path: &str,
        credentials: Credentials,
        deadline: Instant,
    ) -> Result<JiraResponse, JiraError> {
        let url_text = self.base.join(path);
        let url = reqwest::Url::parse(&url_text).map_err(|e| JiraError::Other {
            url: url_text.clone(),
            detail: e.to_string(),
        })?;
        let started = Instant::now();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timed_out = || JiraError::Timeout {
                url: url.to_string(),
                after: deadline.saturating_duration_since(started),
            };
            if remaining.is_zero() {
                return Err(timed_out());
            }
            let mut request = self
                .http
                .get(url.clone())
                .header(header::ACCEPT, "application/json")
                .timeout(remaining);
            if credentials == Credentials::Configured {
                request = match &self.auth {
                    Auth::Basic { username, password } => request.basic_auth(username, Some(password.expose())),
                    Auth::Bearer { token } => request.bearer_auth(token.expose()),
                };
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(JiraError::classify(
                        &e,
                        &url,
                        deadline.saturating_duration_since(started),
                    ));
                }
            };
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                return Err(JiraError::OffHostRedirect {
                    url: url.to_string(),
                    location,
                });
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
                if let Some(asked) = retry_after(response.headers()) {
                    let wait = asked.wait();
                    if !asked.is_capped() && Instant::now().checked_add(wait).is_some_and(|at| at < deadline) {
                        tracing::debug!(%url, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "Jira asked to retry later");
                        drop(response);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(JiraError::RateLimited {
                        status: status.as_u16(),
                        retry_after: asked,
                    });
                }
            }
            let headers = response.headers().clone();
            let body = match tokio::time::timeout_at(deadline, read_capped(response, &url)).await {
                Ok(body) => body?,
                Err(_) => return Err(timed_out()),
            };
            return Ok(JiraResponse { status, headers, body });
        }
    }
}

async fn read_capped(mut response: reqwest::Response, url: &reqwest::Url) -> Result<Bytes, JiraError> {
    if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(JiraError::TooLarge { url: url.to_string() });
    }
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(JiraError::TooLarge { url: url.to_string() });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => return Err(JiraError::classify(&e, url, Duration::ZERO)),
        }
    }
}

/// A `Retry-After` as Jira sent it (in whole seconds, saturating at `u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub asked_secs: u64,
}

impl RetryAfter {
    /// Whether Jira asked for more than Herald ever waits.
    pub fn is_capped(&self) -> bool {
        self.asked_secs > MAX_RETRY_AFTER.as_secs()
    }

    /// The wait Herald would honour: what was asked, at most [`MAX_RETRY_AFTER`].
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.asked_secs).min(MAX_RETRY_AFTER)
    }
}

/// `Retry-After` as seconds or an HTTP date. A number too large for `u64` saturates.
fn retry_after(headers: &HeaderMap) -> Option<RetryAfter> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let asked_secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(RetryAfter { asked_secs });
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(value, &format).ok()?;
    let wait = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(RetryAfter {
        asked_secs: u64::try_from(wait).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers).map(|r| r.wait()), Some(Duration::from_secs(3)));
        headers.insert(header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers).map(|r| r.wait()), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn a_huge_retry_after_saturates_and_is_capped() {
        let mut headers = HeaderMap::new();
        for (value, asked) in [
            ("18446744073709551615", u64::MAX),
            ("99999999999999999999999", u64::MAX),
            ("3601", 3601),
        ] {
            headers.insert(header::RETRY_AFTER, value.parse().unwrap());
            let r = retry_after(&headers).unwrap();
            assert_eq!(r.asked_secs, asked);
            assert!(r.is_capped());
            assert_eq!(r.wait(), MAX_RETRY_AFTER);
            // What overflowed before: the deadline arithmetic stays in range.
            assert!(Instant::now().checked_add(r.wait()).is_some());
        }
        headers.insert(header::RETRY_AFTER, "Fri, 31 Dec 9999 23:59:59 GMT".parse().unwrap());
        assert!(retry_after(&headers).unwrap().is_capped());
        let text = JiraError::RateLimited {
            status: 429,
            retry_after: RetryAfter { asked_secs: u64::MAX },
        }
        .to_string();
        assert_eq!(
            text,
            "Jira is rate-limiting Herald (HTTP 429 with Retry-After 18446744073709551615 s, more than the 3600 s \
             Herald waits at most, beyond the check's budget); try again later"
        );
    }

    #[test]
    fn summaries_and_parser_errors_are_short_single_lines() {
        let answer = |body: String| JiraResponse {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: Bytes::from(body),
        };
        let long = format!("\"{}\"", "x".repeat(600));
        let error = answer(long.clone()).json::<u64>().unwrap_err();
        assert!(error.chars().count() <= EXCERPT + 1, "{error}");
        assert!(error.starts_with("invalid type: string \"xxx"), "{error}");
        assert!(error.ends_with('…'));
        let summary = answer(format!(r#"{{"errorMessages":[{long}]}}"#)).error_summary();
        assert_eq!(summary.chars().count(), EXCERPT + 1);
        assert_eq!(answer(String::new()).error_summary(), "");
        assert_eq!(answer(r#"{"status":500}"#.to_owned()).error_summary(), "");
        assert_eq!(
            answer(r#"{"errorMessages":[],"errors":{"project":"No such project."}}"#.to_owned()).error_summary(),
            "project: No such project"
        );
        assert_eq!(excerpt("a\n  b\tc", 10), "a b c");
    }

    #[test]
    fn certificate_problems_are_named() {
        let d = tls_detail("invalid peer certificate: unknownissuer", "jira").unwrap();
        assert!(d.contains("not signed by a trusted CA"));
        let d = tls_detail("invalid peer certificate: notvalidforname", "jira.example.com").unwrap();
        assert!(d.contains("`jira.example.com`"));
        assert!(tls_detail("connection reset by peer", "x").is_none());
    }
}
