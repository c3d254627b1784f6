//! Handing a received message to the mail queue: the one place the submission server calls the
//! queue, and where the queue's answers become SMTP replies.
//!
//! The message is stored byte for byte (trace header first) with its envelope; `submit_raw`
//! answers only after the commit that holds it, so the `250` that follows is a durable promise.
//! A message the queue refuses as invalid is refused for good (`550 5.1.x` for an envelope address,
//! `554 5.6.0` for the content); a queue that cannot store (database down, shutting down) gets
//! `451 4.3.0`, so the client keeps the message and tries again.

use std::net::IpAddr;

use super::reply::{Reply, printable};
use crate::error_kind::Classified;
use crate::mail::{EnvelopeParams, InvalidMail, MailError, Origin, Protocol, RawMail};
use crate::metrics::SmtpRejection;
use crate::state::AppState;

/// The `user` of mail submitted without AUTH from a trusted network.
pub(super) const TRUSTED_NETWORK_USER: &str = "trusted-network";

/// A message as received: its envelope and its bytes (trace header first).
pub(super) struct Received {
    /// The reverse-path, `""` for `<>`.
    pub from: String,
    pub recipients: Vec<String>,
    pub body_8bit: bool,
    pub smtputf8: bool,
    /// The trace header and the message, un-dot-stuffed, CRLF line endings only.
    pub bytes: Vec<u8>,
    /// The length of the trace header at the start of `bytes` (not counted against the limit).
    pub trace_len: usize,
    /// Who handed it over: the authenticated user, or none (a trusted network).
    pub user: Option<String>,
    pub client: IpAddr,
}

/// Stores the message durably; `Ok(id)` only once it is committed.
pub(super) async fn submit(state: &AppState, mail: Received) -> Result<String, (Reply, SmtpRejection)> {
    let origin = Origin {
        protocol: Protocol::Smtp,
        user: mail.user.unwrap_or_else(|| TRUSTED_NETWORK_USER.to_owned()),
        client: Some(mail.client),
    };
    let params = EnvelopeParams {
        body_8bit: mail.body_8bit,
        smtputf8: mail.smtputf8,
    };
    let max_size = state.settings.mail.max_size + mail.trace_len;
    let raw = RawMail::new(mail.from, mail.recipients, params, mail.bytes, max_size)
        .map_err(|e| (invalid(&e), SmtpRejection::Invalid))?;
    match state.mail.submit_raw(raw, &origin, None).await {
        Ok(accepted) => Ok(accepted.id),
        Err(e) => {
            tracing::warn!(error = %e, client = %origin.client.map(|c| c.to_string()).unwrap_or_default(),
                "SMTP: cannot store a message; answered 451");
            let detail = match e {
                MailError::ShuttingDown => "the mail queue is shutting down".to_owned(),
                other => other.public_detail(),
            };
            Err((
                Reply::new(
                    451,
                    "4.3.0",
                    format!("Message not stored ({}); try again later", printable(&detail, 200)),
                ),
                SmtpRejection::Storage,
            ))
        }
    }
}

/// The reply to a message the queue refuses as invalid.
fn invalid(error: &InvalidMail) -> Reply {
    let text = format!("Message refused: {}", printable(&error.message, 300));
    if error.field == "envelope_from" {
        Reply::new(550, "5.1.7", text)
    } else if error.field.starts_with("recipients") {
        Reply::new(550, "5.1.3", text)
    } else {
        Reply::new(554, "5.6.0", text)
    }
}
