//! A mail transaction: MAIL FROM, RCPT TO, DATA, and the reply after the final dot, which is `250`
//! only once the message is committed to the queue (durable before 250).
//!
//! - **Who may send.** A session authenticated by a user who may submit mail, or a client in
//!   `HERALD_SMTP_TRUSTED_NETWORKS`; anyone else gets `530 5.7.0` at MAIL.
//! - **The envelope is kept as given**: the reverse-path (`<>` too), each recipient once, BODY=8BITMIME
//!   and SMTPUTF8. Parameters Herald does not offer (DSN's RET, ENVID, NOTIFY, ORCPT; BINARYMIME;
//!   REQUIRETLS; …) are refused `555 5.5.4` rather than silently dropped. A non-ASCII address needs
//!   SMTPUTF8 on MAIL (`553 5.6.7`, RFC 6531).
//! - **Time.** Each line of the message must arrive within `HERALD_SMTP_DATA_TIMEOUT`, so a client
//!   that trickles bytes cannot hold its session (and its connection slot) for ever.
//! - **Size** is checked twice: SIZE= on MAIL above `HERALD_MAIL_MAX_SIZE` is refused at once, and
//!   the DATA reader stops keeping bytes at the limit (`552 5.3.4` after the final dot).

use smtp_proto::{MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_SMTPUTF8, MailFrom, RcptTo};
use tokio::time::Instant;

use super::budget::Reservation;
use super::conn::ReadError;
use super::data::{DataReader, Refusal};
use super::intake::{self, Received};
use super::reply::{self, Reply};
use super::session::{Flow, Session};
use super::trace::Trace;
use crate::mail::check_envelope_address;
use crate::metrics::SmtpRejection;

/// The envelope of the transaction in progress.
pub(super) struct Transaction {
    pub from: String,
    pub body_8bit: bool,
    pub smtputf8: bool,
    pub recipients: Vec<String>,
}

/// MAIL FROM parameters Herald takes: BODY=7BIT or 8BITMIME, SMTPUTF8 (SIZE and AUTH= are fields).
const MAIL_FLAGS: u64 = MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8;

impl Session {
    pub(super) fn mail(&mut self, from: MailFrom<String>) -> Flow {
        let Some(esmtp) = self.helo.as_ref().map(|helo| helo.esmtp) else {
            return self.respond(
                reply::out_of_order("Send EHLO or HELO first"),
                Some(SmtpRejection::Syntax),
            );
        };
        if self.tx.is_some() {
            return self.respond(reply::out_of_order("Nested MAIL command"), Some(SmtpRejection::Syntax));
        }
        let trusted = self.shared.settings.trusted_networks.contains(self.client);
        if self.principal.is_none() && !trusted {
            return self.respond(reply::auth_required(), Some(SmtpRejection::AuthRequired));
        }
        if !self.shared.state.cluster.accepts_work() {
            self.shared.state.metrics.smtp.rejected(SmtpRejection::Draining);
            self.conn.queue(&reply::draining(self.shared.state.node_id.as_str()));
            return Flow::Close;
        }
        let unsupported = from.flags & !MAIL_FLAGS != 0
            || from.env_id.is_some()
            || from.trans_id.is_some()
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mtrk.is_some()
            || from.solicit.is_some();
        if unsupported || (!esmtp && (from.flags != 0 || from.size != 0)) {
            return self.respond(
                Reply::new(
                    555,
                    "5.5.4",
                    "MAIL parameter not supported (BODY, SIZE and SMTPUTF8 are, after EHLO)",
                ),
                Some(SmtpRejection::Syntax),
            );
        }
        if from.size > self.shared.max_size {
            return self.respond(reply::too_large(self.shared.max_size), Some(SmtpRejection::TooLarge));
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            return self.respond(non_ascii(), Some(SmtpRejection::Invalid));
        }
        if !from.address.is_empty() {
            if let Err(why) = check_envelope_address(&from.address, smtputf8) {
                let reply = Reply::new(
                    553,
                    "5.1.7",
                    format!("Bad sender address: {}", reply::printable(&why, 300)),
                );
                return self.respond(reply, Some(SmtpRejection::Invalid));
            }
        }
        self.tx = Some(Transaction {
            from: from.address,
            body_8bit: from.flags & MAIL_BODY_8BITMIME != 0,
            smtputf8,
            recipients: Vec::new(),
        });
        self.transactions += 1;
        self.respond(Reply::new(250, "2.1.0", "Sender ok"), None)
    }

    pub(super) fn rcpt(&mut self, to: RcptTo<String>) -> Flow {
        let max = self.shared.settings.max_recipients;
        let Some(tx) = self.tx.as_mut() else {
            return self.respond(
                reply::out_of_order("Need MAIL before RCPT"),
                Some(SmtpRejection::Syntax),
            );
        };
        let refusal = if to.address.is_empty() {
            Some((
                Reply::new(501, "5.1.3", "Bad recipient address: a user@domain address is needed"),
                SmtpRejection::Syntax,
            ))
        } else if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
            Some((
                Reply::new(555, "5.5.4", "RCPT parameters are not supported"),
                SmtpRejection::Syntax,
            ))
        } else if !tx.smtputf8 && !to.address.is_ascii() {
            Some((non_ascii(), SmtpRejection::Invalid))
        } else if let Err(why) = check_envelope_address(&to.address, tx.smtputf8) {
            let reply = Reply::new(
                553,
                "5.1.3",
                format!("Bad recipient address: {}", reply::printable(&why, 300)),
            );
            Some((reply, SmtpRejection::Invalid))
        } else if tx.recipients.len() >= max && !tx.recipients.contains(&to.address) {
            Some((reply::too_many_recipients(max), SmtpRejection::TooManyRecipients))
        } else {
            if !tx.recipients.contains(&to.address) {
                tx.recipients.push(to.address);
            }
            None
        };
        match refusal {
            Some((reply, reason)) => self.respond(reply, Some(reason)),
            None => self.respond(Reply::new(250, "2.1.5", "Recipient ok"), None),
        }
    }

    pub(super) async fn data(&mut self) -> Flow {
        match &self.tx {
            None => {
                return self.respond(
                    reply::out_of_order("Need MAIL before DATA"),
                    Some(SmtpRejection::Syntax),
                );
            }
            Some(tx) if tx.recipients.is_empty() => {
                return self.respond(
                    Reply::new(554, "5.5.1", "No valid recipients"),
                    Some(SmtpRejection::Syntax),
                );
            }
            Some(_) => {}
        }
        if let Some(flow) = self.pipelined_after("DATA") {
            return flow;
        }
        let Some(tx) = self.tx.take() else {
            return Flow::Continue;
        };
        let txn_id = format!("{}.{}", self.id, self.transactions);
        let helo = self.helo.as_ref().map_or("", |helo| helo.name.as_str());
        let header = Trace {
            helo,
            client: self.client,
            hostname: &self.shared.hostname,
            esmtp: self.helo.as_ref().is_some_and(|helo| helo.esmtp),
            tls: self.conn.is_tls(),
            authenticated: self.principal.is_some(),
            id: &txn_id,
            recipient: (tx.recipients.len() == 1).then(|| tx.recipients[0].as_str()),
            at: time::OffsetDateTime::now_utc(),
        }
        .header();
        let trace_len = header.len();
        self.conn.queue(&Reply::bare(354, "End data with <CR><LF>.<CR><LF>"));
        let reservation = Reservation::new(self.shared.memory.clone());
        let mut reader = DataReader::new(header, self.shared.max_size, reservation);
        // Each line of the message must arrive within the data timeout (Postfix's per-record
        // deadline): a client that trickles a byte now and then cannot hold the session for ever.
        let data_timeout = self.shared.settings.data_timeout;
        let mut line_deadline = Instant::now() + data_timeout;
        loop {
            let input = self.conn.input();
            let used = reader.feed(input);
            if input[..used].contains(&b'\n') {
                line_deadline = Instant::now() + data_timeout;
            }
            self.conn.consume(used);
            if reader.is_done() {
                break;
            }
            let left = line_deadline.saturating_duration_since(Instant::now());
            match self.conn.read_more(left).await {
                Ok(()) => {}
                Err(ReadError::Timeout) => {
                    self.shared.state.metrics.smtp.rejected(SmtpRejection::Timeout);
                    self.conn.queue(&reply::timeout());
                    return Flow::Close;
                }
                Err(ReadError::Closed) => return Flow::Close,
            }
        }
        // The reservation pays for `bytes` until they are stored (or refused), whatever happens.
        let (verdict, _reservation) = reader.finish();
        let bytes = match verdict {
            Ok(bytes) => bytes,
            Err(Refusal::NoMemory) => {
                tracing::info!(client = %self.client, transaction = %txn_id,
                    "SMTP: the memory budget for messages is spent; answered 452");
                return self.respond(reply::insufficient_storage(), Some(SmtpRejection::Memory));
            }
            Err(Refusal::TooLarge) => {
                return self.respond(reply::too_large(self.shared.max_size), Some(SmtpRejection::TooLarge));
            }
            Err(Refusal::BareLineEnding) => {
                return self.respond(reply::bare_line_ending(), Some(SmtpRejection::BareLineEnding));
            }
            Err(Refusal::LineTooLong) => {
                return self.respond(reply::text_line_too_long(), Some(SmtpRejection::LineTooLong));
            }
        };
        if !self.shared.state.cluster.accepts_work() {
            self.shared.state.metrics.smtp.rejected(SmtpRejection::Draining);
            self.conn.queue(&reply::draining(self.shared.state.node_id.as_str()));
            return Flow::Close;
        }
        let size = bytes.len() - trace_len;
        let received = Received {
            from: tx.from,
            recipients: tx.recipients,
            body_8bit: tx.body_8bit,
            smtputf8: tx.smtputf8,
            bytes,
            trace_len,
            user: self.principal.as_ref().map(|p| p.username.to_string()),
            client: self.client,
        };
        match intake::submit(&self.shared.state, received).await {
            Ok(id) => {
                self.shared.state.metrics.smtp.message_accepted(size);
                tracing::debug!(client = %self.client, transaction = %txn_id, id = %id, size, "SMTP message queued");
                self.respond(Reply::new(250, "2.0.0", format!("Ok: queued as {id}")), None)
            }
            Err((reply, reason)) => self.respond(reply, Some(reason)),
        }
    }
}

fn non_ascii() -> Reply {
    Reply::new(
        553,
        "5.6.7",
        "Non-ASCII addresses need the SMTPUTF8 parameter on MAIL FROM",
    )
}
