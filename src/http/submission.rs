//! `POST /api/v1/mail` (admin or the `mail` role): a JSON submission that Herald renders, or a
//! complete message (`Content-Type: message/rfc822`) that Herald relays as it is, with its envelope in
//! the query string (`?to=a@example.com&to=b@example.com&from=bounces@example.com`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::RequireMailSender;
use super::error::ApiError;
use crate::client_addr::ClientAddr;
use crate::mail::rfc822::{self, Rfc822Error};
use crate::mail::{IdempotencyKey, MailSubmission, Origin, Protocol};
use crate::state::AppState;

/// The documented JSON body of `POST /api/v1/mail`: a `MailSubmission` with a recipient and a body.
pub struct MailBody;

impl utoipa::PartialSchema for MailBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::Type;
        super::openapi::requiring_one_of_each(
            "MailSubmission",
            &[
                &[("to", Type::Array), ("cc", Type::Array), ("bcc", Type::Array)],
                &[("text", Type::String), ("html", Type::String)],
            ],
        )
    }
}

impl utoipa::ToSchema for MailBody {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        schemas.push((
            "MailSubmission".to_owned(),
            <MailSubmission as utoipa::PartialSchema>::schema(),
        ));
        <MailSubmission as utoipa::ToSchema>::schemas(schemas);
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The message id (a UUIDv7).
    id: String,
    /// Always `queued`: the message is stored and will be delivered.
    status: &'static str,
}

/// The two forms of a submission.
pub enum MailRequest {
    Json(MailSubmission),
    /// A complete message and the envelope from the query string.
    Rfc822 {
        message: Bytes,
        to: Vec<String>,
        from: Option<String>,
    },
}

const MESSAGE_RFC822: &str = "message/rfc822";

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than HERALD_MAIL_MAX_SIZE",
    )
}

/// The envelope of a complete message: `to` (repeated, at least once) and `from` (at most once).
fn envelope(query: &str) -> Result<(Vec<String>, Option<String>), ApiError> {
    let mut to = Vec::new();
    let mut from = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "to" => to.push(value.into_owned()),
            "from" if from.is_none() => from = Some(value.into_owned()),
            "from" => {
                return Err(ApiError::bad_request("invalid_query", "`from` may be given once").with_field("from"));
            }
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter `{other}`: a complete message takes `to` and `from`"),
                )
                .with_field(other));
            }
        }
    }
    Ok((to, from))
}

impl<S: Send + Sync> FromRequest<S> for MailRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let rfc822 = essence == MESSAGE_RFC822;
        if !rfc822 {
            super::json::require_json(req.headers()).map_err(|_| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "the request body must be JSON (`Content-Type: application/json`) or a complete \
                     message (`Content-Type: message/rfc822`)",
                )
            })?;
        }
        let query = req.uri().query().unwrap_or_default().to_owned();
        if !rfc822 {
            if let Some((name, _)) = form_urlencoded::parse(query.as_bytes()).next() {
                let name: String = name.chars().take(40).collect();
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "a JSON submission takes no query parameters (`{name}`): its envelope is in the body; \
                         `to` and `from` are for complete messages (message/rfc822)"
                    ),
                )
                .with_field(name));
            }
        }
        let (to, from) = envelope(&query)?;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(
                    "unreadable_body",
                    format!("the request body could not be read: {}", rejection.body_text()),
                )
            }
        })?;
        if rfc822 {
            Ok(MailRequest::Rfc822 {
                message: bytes,
                to,
                from,
            })
        } else {
            super::json::parse(&bytes).map(MailRequest::Json)
        }
    }
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid_header", "the Idempotency-Key header must be visible ASCII"))?;
    IdempotencyKey::try_from(text)
        .map(Some)
        .map_err(|e| ApiError::bad_request("invalid_header", e))
}

/// Submits a message, answered 202 only once it is durably stored. With an `Idempotency-Key` header, a
/// retried submission returns the first one's id and queues nothing.
///
/// Two forms. **JSON** (`application/json`): Herald writes the message from the fields, with
/// attachments and inline images. **A complete message** (`message/rfc822`): the body is the message,
/// header block first; Herald stores and relays it as it is, except that every line break (LF, CR or
/// CRLF) becomes CRLF. Its envelope is in the query string: `to`, repeated for each recipient (at least
/// one; the message's To/Cc headers are not read), and `from`, the envelope sender (default: the
/// address in the message's `From:` header, else `HERALD_MAIL_FROM`). Either form may be at most
/// `HERALD_MAIL_MAX_SIZE` bytes (413 above).
#[utoipa::path(
    post, path = "/api/v1/mail", tag = "mail", security(("basic" = []), ("bearer" = [])),
    request_body(
        description = "A JSON submission, or a complete message (`message/rfc822`) with its envelope in the \
                       query string: `?to=a@example.com&to=b@example.com[&from=bounces@example.com]`",
        content((MailBody = "application/json"), (String = "message/rfc822"))
    ),
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$",
             description = "Makes retries safe: 1 to 255 visible ASCII characters")),
    responses(
        (status = 202, body = Submitted), (status = 400, body = super::error::Problem), (status = 401, body = super::error::Problem),
        (status = 403, body = super::error::Problem), (status = 409, description = "Idempotency-Key reused with a different message", body = super::error::Problem),
        (status = 413, body = super::error::Problem), (status = 503, body = super::error::Problem)
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    RequireMailSender(sender): RequireMailSender,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    request: MailRequest,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    if !state.cluster.accepts_work() {
        return Err(ApiError::unavailable(format!(
            "node `{}` is draining and takes no new mail; send it to another node",
            state.node_id
        )));
    }
    let origin = Origin {
        protocol: Protocol::Http,
        user: sender.username.to_string(),
        client: Some(client),
    };
    let settings = &state.settings.mail;
    let accepted = match request {
        MailRequest::Json(submission) => {
            let mail = submission.validate(&settings.from)?;
            if mail.content_size() > settings.max_size {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "the bodies and decoded attachments are {} bytes; at most {} are accepted (HERALD_MAIL_MAX_SIZE)",
                        mail.content_size(),
                        settings.max_size
                    ),
                )
                .with_field("attachments"));
            }
            state.mail.submit(&mail, &origin, key.as_ref()).await?
        }
        MailRequest::Rfc822 { message, to, from } => {
            let raw = rfc822::prepare(&message, to, from, &settings.from, settings.max_size).map_err(|e| match e {
                Rfc822Error::Invalid(invalid) => ApiError::from(invalid),
                too_large @ Rfc822Error::TooLarge { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    too_large.to_string(),
                ),
            })?;
            state.mail.submit_raw(raw, &origin, key.as_ref()).await?
        }
    };
    let location = format!("/api/v1/mail/{}", accepted.id);
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Submitted {
            id: accepted.id,
            status: "queued",
        }),
    )
        .into_response();
    if !accepted.created {
        response
            .headers_mut()
            .insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_read_from_the_query_and_strangers_are_named() {
        let (to, from) = envelope("to=a%40example.com&to=b@example.com&from=x@example.com").unwrap();
        assert_eq!(to, ["a@example.com", "b@example.com"]);
        assert_eq!(from.as_deref(), Some("x@example.com"));
        assert_eq!(envelope("").unwrap(), (vec![], None));
        let err = envelope("to=a@example.com&cc=b@example.com").unwrap_err();
        assert_eq!((err.code(), err.field()), ("invalid_query", Some("cc")));
        let err = envelope("from=a@example.com&from=b@example.com").unwrap_err();
        assert_eq!(err.field(), Some("from"));
    }
}
