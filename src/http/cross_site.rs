//! Refuses API requests that a browser makes on behalf of another site.
//!
//! The API authenticates with HTTP Basic, and a browser that once answered Herald's Basic challenge
//! sends those credentials with every later request to Herald, including requests a foreign page
//! triggers (a form post, an image, a `fetch` in `no-cors` mode). The console has its own CSRF tokens;
//! the API instead looks at what the browser says about the request's origin:
//!
//! - `Sec-Fetch-Site` (every current browser): `same-origin` and `none` (typed, bookmarked) pass;
//!   `cross-site` and `same-site` (a sibling host is another origin) are refused, except a top-level
//!   navigation with a safe method, whose answer the foreign page cannot read.
//! - Without it (older browsers), an `Origin` header naming another host than `Host` is refused for
//!   methods that change state.
//!
//! Clients that are not browsers (curl, Jira, Prometheus, scripts) send neither header and are not
//! affected.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub async fn refuse_cross_site(req: Request, next: Next) -> Response {
    match verdict(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(why) => ApiError::new(StatusCode::FORBIDDEN, "cross_site_request", why).into_response(),
    }
}

fn verdict(method: &Method, headers: &HeaderMap) -> Result<(), String> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(site) = text("sec-fetch-site") {
        return match site.as_str() {
            "same-origin" | "none" => Ok(()),
            _ if safe && text("sec-fetch-mode").as_deref() == Some("navigate") => Ok(()),
            _ => Err(format!(
                "the browser says this request comes from another site (Sec-Fetch-Site: {site}); \
                 the API accepts requests only from Herald's own pages and from clients that are not browsers"
            )),
        };
    }
    if safe {
        return Ok(());
    }
    match (text("origin"), headers.get(header::HOST).and_then(|v| v.to_str().ok())) {
        (None, _) => Ok(()),
        (Some(origin), Some(host)) if origin_host(&origin).is_some_and(|o| o.eq_ignore_ascii_case(host)) => Ok(()),
        (Some(origin), _) => Err(format!(
            "the request comes from the page of another origin ({origin}); the API accepts requests only \
             from Herald's own pages and from clients that are not browsers"
        )),
    }
}

/// `https://herald.example:8443` → `herald.example:8443`; `null` and anything without a scheme → None.
fn origin_host(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn clients_that_are_not_browsers_pass() {
        assert!(verdict(&Method::POST, &HeaderMap::new()).is_ok());
        assert!(verdict(&Method::DELETE, &headers(&[("host", "h:1")])).is_ok());
    }

    #[test]
    fn a_browser_on_herald_s_own_pages_passes() {
        for site in ["same-origin", "none"] {
            assert!(verdict(&Method::POST, &headers(&[("sec-fetch-site", site)])).is_ok());
        }
        let same = headers(&[("origin", "http://herald.local:8080"), ("host", "herald.local:8080")]);
        assert!(verdict(&Method::POST, &same).is_ok());
    }

    #[test]
    fn cross_site_and_same_site_requests_are_refused() {
        for site in ["cross-site", "same-site", "CROSS-SITE"] {
            let h = headers(&[("sec-fetch-site", site), ("sec-fetch-mode", "no-cors")]);
            assert!(verdict(&Method::POST, &h).is_err(), "{site}");
            assert!(verdict(&Method::GET, &h).is_err(), "{site}");
        }
    }

    #[test]
    fn a_cross_site_navigation_may_read_but_not_change() {
        let h = headers(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")]);
        assert!(verdict(&Method::GET, &h).is_ok());
        assert!(verdict(&Method::POST, &h).is_err());
    }

    #[test]
    fn without_fetch_metadata_a_foreign_origin_cannot_change_state() {
        let foreign = headers(&[("origin", "https://evil.example"), ("host", "herald.local:8080")]);
        assert!(verdict(&Method::POST, &foreign).is_err());
        assert!(verdict(&Method::GET, &foreign).is_ok());
        let null = headers(&[("origin", "null"), ("host", "herald.local:8080")]);
        assert!(verdict(&Method::PUT, &null).is_err());
    }
}
