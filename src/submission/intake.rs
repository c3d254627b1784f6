//! Handing a received message to the mail queue: the one place the submission server calls the
//! queue, and where the queue's answers become SMTP replies.

use std::net::IpAddr;

use super::reply::Reply;
use crate::metrics::SmtpRejection;
use crate::state::AppState;

/// A message as received: its envelope and its bytes (trace header first).
pub(super) struct Received {
    /// The reverse-path, `""` for `<>`.
    pub from: String,
    pub recipients: Vec<String>,
    pub body_8bit: bool,
    pub smtputf8: bool,
    /// The trace header and the message, un-dot-stuffed, CRLF line endings only.
    pub bytes: Vec<u8>,
    /// The length of the trace header at the start of `bytes`.
    pub trace_len: usize,
    /// Who handed it over: the authenticated user, or none (a trusted network).
    pub user: Option<String>,
    pub client: IpAddr,
}

/// Stores the message durably; `Ok(id)` only once it is committed.
pub(super) async fn submit(state: &AppState, mail: Received) -> Result<String, (Reply, SmtpRejection)> {
    let _ = (state, mail);
    Err((
        Reply::new(451, "4.3.0", "Mail intake is not available yet; try again later"),
        SmtpRejection::Storage,
    ))
}
