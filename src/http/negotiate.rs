//! Content negotiation: `Accept` -> JSON or XML, with q-values honoured.
//!
//! JSON when `Accept` is absent, empty or `*/*`; XML for `application/xml` or `text/xml`; 406 when
//! neither is acceptable. On a tie, JSON wins (it is the server's preferred format).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

/// The declaration that starts every XML body, as in Jira's own responses.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;

/// The quality (0..=1000) the Accept header gives a concrete media type: that of the most specific
/// matching range, or 0 when none matches.
fn quality(accept: &str, media_type: &str) -> u16 {
    let (ty, subty) = media_type.split_once('/').unwrap_or((media_type, ""));
    let mut best: Option<(u8, u16)> = None; // (specificity, q)
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let range_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if range_type.is_empty() {
            continue;
        }
        let mut q = 1000;
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(value.trim()).unwrap_or(0);
                }
            }
        }
        let (r_type, r_subty) = range_type.split_once('/').unwrap_or((range_type.as_str(), ""));
        let specificity = match (r_type, r_subty) {
            ("*", "*") => 1,
            (t, "*") if t == ty => 2,
            (t, s) if t == ty && s == subty => 3,
            _ => continue,
        };
        if best.is_none_or(|(spec, _)| specificity > spec) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// `q` as thousandths: "1", "0.5", "0.125". Malformed values count as 0 (not acceptable).
fn parse_q(value: &str) -> Option<u16> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac_value: u16 = format!("{frac:0<3}").parse().ok()?;
    match whole {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `accept` names `media_type` itself (not through a wildcard) and prefers it at least as
/// much as `other`: how `/metrics` tells an OpenMetrics scraper from everyone else.
pub fn asks_for(accept: &str, media_type: &str, other: &str) -> bool {
    let named = accept.split(',').any(|range| {
        let range_type = range.split(';').next().unwrap_or("").trim();
        range_type.eq_ignore_ascii_case(media_type)
    });
    let wanted = quality(accept, media_type);
    named && wanted > 0 && wanted >= quality(accept, other)
}

/// Chooses the response format for an `Accept` header value.
pub fn negotiate(accept: Option<&HeaderValue>) -> Result<Format, ApiError> {
    let Some(accept) = accept else {
        return Ok(Format::Json);
    };
    let accept = accept.to_str().map_err(|_| {
        ApiError::bad_request(
            "invalid_header",
            "the Accept header must contain only visible ASCII characters",
        )
    })?;
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    let json = quality(accept, "application/json");
    let xml = quality(accept, "application/xml").max(quality(accept, "text/xml"));
    match (json, xml) {
        (0, 0) => Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!("this resource is available as application/json or application/xml, not as `{accept}`"),
        )),
        (j, x) if j >= x => Ok(Format::Json),
        _ => Ok(Format::Xml),
    }
}

/// Extractor: the negotiated format of the response.
impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        negotiate(parts.headers.get(header::ACCEPT))
    }
}

/// Renders one wire type as JSON or as XML under `root`, from the same `Serialize` impl.
pub fn render<T: Serialize>(format: Format, root: &str, value: &T) -> Response {
    let rendered = match format {
        Format::Json => serde_json::to_vec(value)
            .map(|body| ("application/json", body))
            .map_err(|e| e.to_string()),
        Format::Xml => quick_xml::se::to_string_with_root(root, value)
            .map(|xml| {
                (
                    "application/xml; charset=utf-8",
                    format!("{XML_DECLARATION}{xml}").into_bytes(),
                )
            })
            .map_err(|e| e.to_string()),
    };
    match rendered {
        Ok((content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::VARY, HeaderValue::from_static("Accept")),
            ],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> Result<Format, StatusCode> {
        negotiate(Some(&HeaderValue::from_str(accept).unwrap())).map_err(|e| e.status())
    }

    #[test]
    fn json_when_absent_empty_or_anything() {
        assert_eq!(negotiate(None).unwrap(), Format::Json);
        assert_eq!(pick(""), Ok(Format::Json));
        assert_eq!(pick("*/*"), Ok(Format::Json));
        assert_eq!(pick("application/*"), Ok(Format::Json));
    }

    #[test]
    fn xml_when_asked_for() {
        assert_eq!(pick("application/xml"), Ok(Format::Xml));
        assert_eq!(pick("text/xml"), Ok(Format::Xml));
        assert_eq!(pick("APPLICATION/XML; charset=utf-8"), Ok(Format::Xml));
    }

    #[test]
    fn q_values_are_honoured() {
        assert_eq!(pick("application/json;q=0.5, application/xml"), Ok(Format::Xml));
        assert_eq!(pick("application/xml;q=0.9, application/json;q=0.95"), Ok(Format::Json));
        assert_eq!(pick("application/xml, application/json"), Ok(Format::Json));
        assert_eq!(pick("*/*;q=0.1, application/xml"), Ok(Format::Xml));
        // The most specific range wins: json is excluded even though */* allows it.
        assert_eq!(pick("application/json;q=0, */*"), Ok(Format::Xml));
    }

    #[test]
    fn not_acceptable_when_neither_format_is() {
        assert_eq!(pick("text/html"), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(
            pick("application/json;q=0, application/xml;q=0"),
            Err(StatusCode::NOT_ACCEPTABLE)
        );
        assert_eq!(pick("application/json;q=2"), Err(StatusCode::NOT_ACCEPTABLE));
        assert_eq!(pick("image/*"), Err(StatusCode::NOT_ACCEPTABLE));
    }

    #[test]
    fn a_media_type_is_asked_for_only_by_name_and_with_a_preference() {
        let om = "application/openmetrics-text";
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(asks_for(prometheus, om, "text/plain"));
        assert!(asks_for("Application/OpenMetrics-Text", om, "text/plain"));
        assert!(!asks_for("*/*", om, "text/plain"));
        assert!(!asks_for("text/plain", om, "text/plain"));
        assert!(!asks_for("application/openmetrics-text;q=0", om, "text/plain"));
        assert!(!asks_for(
            "application/openmetrics-text;q=0.5, text/plain",
            om,
            "text/plain"
        ));
    }

    #[test]
    fn q_parsing_follows_rfc_9110() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("abc"), None);
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        size: u64,
        error_size: u64,
    }

    #[tokio::test]
    async fn one_struct_renders_as_json_and_as_xml() {
        let sample = Sample {
            size: 26,
            error_size: 2,
        };
        let json = render(Format::Json, "mailQueue", &sample);
        assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(json.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"size":26,"errorSize":2}"#);
        let xml = render(Format::Xml, "mailQueue", &sample);
        assert_eq!(xml.headers()[header::CONTENT_TYPE], "application/xml; charset=utf-8");
        let body = axum::body::to_bytes(xml.into_body(), 1024).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><mailQueue><size>26</size><errorSize>2</errorSize></mailQueue>"#
        );
    }
}
