//! `ApiJson<T>`: a JSON body extractor whose rejections are precise problem details: 415 for a
//! wrong content type, 413 for an oversized body, 400 naming the field for anything else.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

/// `ApiQuery<T>`: a query string extractor whose rejection is a problem detail (400, code
/// `invalid_query`) naming what is wrong, like `ApiJson`'s, rather than axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let field = err.path().to_string();
                let detail = format!("the query string is not valid: {}", err.into_inner());
                let problem = ApiError::bad_request("invalid_query", detail);
                if field.is_empty() || field == "." {
                    problem
                } else {
                    problem.with_field(field)
                }
            })
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the configured limit (HERALD_BODY_LIMIT)",
                )
            } else {
                ApiError::bad_request(
                    "unreadable_body",
                    format!("the request body could not be read: {}", rejection.body_text()),
                )
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Refuses a body not declared as JSON (415). Besides precision, this is a defence: a cross-site page
/// can only send a body as `text/plain`, a form or multipart without the browser asking first, so a
/// JSON-only API cannot be driven by a foreign page's form.
pub fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON, sent with `Content-Type: application/json`",
        ))
    }
}

/// Deserializes JSON, reporting the path of the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        let code = if inner.is_syntax() || inner.is_eof() {
            "invalid_json"
        } else {
            "invalid_field"
        };
        let field = path;
        let detail = if inner.is_syntax() || inner.is_eof() {
            format!("the request body is not valid JSON: {message}")
        } else if field.is_empty() || field == "." {
            format!("the request body does not match the expected shape: {message}")
        } else {
            format!("`{field}`: {message}")
        };
        ApiError::bad_request(code, detail).with_field(field)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    fn reject(json: &str) -> ApiError {
        parse::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = reject(r#"{"name": 5, "count": 1}"#);
        assert_eq!(err.field(), Some("name"));
        assert_eq!(
            err.detail(),
            "`name`: invalid type: integer `5`, expected a string at line 1 column 10"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = reject(r#"{"name": "x", "count": 1, "colour": "red"}"#);
        assert_eq!(err.field(), Some("colour"));
        assert!(err.detail().contains("unknown field `colour`"), "{}", err.detail());
    }

    #[test]
    fn missing_fields_and_bad_syntax_are_explained() {
        let err = reject(r#"{"name": "x"}"#);
        assert!(err.detail().contains("missing field `count`"), "{}", err.detail());
        assert_eq!(reject(r#"{"name": "#).code(), "invalid_json");
        assert_eq!(reject("[1]").code(), "invalid_field");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Filter {
        node: Option<String>,
        limit: Option<i64>,
    }

    async fn query(uri: &str) -> Result<Filter, ApiError> {
        let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
        ApiQuery::<Filter>::from_request_parts(&mut parts, &())
            .await
            .map(|q| q.0)
    }

    #[tokio::test]
    async fn query_strings_are_read_and_their_faults_are_problems_naming_the_field() {
        let ok = query("/x?node=node%5F2&limit=5").await.unwrap();
        assert_eq!((ok.node.as_deref(), ok.limit), (Some("node_2"), Some(5)));
        let none = query("/x").await.unwrap();
        assert_eq!((none.node, none.limit), (None, None));
        let err = query("/x?limit=many").await.unwrap_err();
        assert_eq!((err.code(), err.field()), ("invalid_query", Some("limit")));
        assert!(err.detail().contains("invalid digit"), "{}", err.detail());
        let err = query("/x?scope=all").await.unwrap_err();
        assert_eq!(err.code(), "invalid_query");
        assert!(err.detail().contains("unknown field `scope`"), "{}", err.detail());
    }
}
