//! Mail transactions on an open connection: the envelope (with the parameters the message needs), a
//! reply per recipient, and the content.
//!
//! Recipients are answered one by one: a relay that refuses one recipient of several (a 5xx or 4xx
//! to its RCPT) still takes the message for the others, and the caller records who has it, so a retry
//! never sends it to them twice. When every recipient is refused no content is sent at all.
//!
//! With PIPELINING (RFC 2920) the envelope goes in one write, and the end of each message's content
//! shares a write with the next envelope: one round trip per message. Content that is not UTF-8 (an
//! 8-bit message in another charset) is written by lettre's byte writer instead, which ends the run
//! of shared writes; it is checked first to have no bare CR or LF, which that writer would pass on.

use std::fmt;
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};

use super::{Connection, SendError, classify};
use crate::mail::message::lines;
use crate::mail::raw::{EnvelopeParams, bare_line_break};

/// One message to send: its envelope and its content as RFC 5322 bytes (CRLF line breaks).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `None` for the null reverse-path `<>`.
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub params: EnvelopeParams,
    pub bytes: Vec<u8>,
}

/// The relay took the message: for the recipients it accepted, and not for those in `refused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Refused recipients by index in [`Outgoing::to`], with the reply: [`SendError::Permanent`] for a
    /// 5xx, [`SendError::Transient`] for a 4xx.
    pub refused: Vec<(usize, SendError)>,
}

/// MAIL, every RCPT and DATA, written at once (RFC 2920 pipelining).
struct Pipelined<'a> {
    mail: &'a Mail,
    rcpts: &'a [Rcpt],
}

impl fmt::Display for Pipelined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mail)?;
        for rcpt in self.rcpts {
            write!(f, "{rcpt}")?;
        }
        write!(f, "{Data}")
    }
}

/// Message content (dot-stuffed, ended by `.`), then optionally the next message's envelope: one
/// write, as RFC 2920 allows (the end of data may be followed by the next transaction's commands).
///
/// It does not trust the message to end its lines with CRLF: a bare CR or LF also ends a line here
/// and is written as CRLF, so every line a relay could see is dot-stuffed and no body can end the
/// data early and smuggle in commands.
struct DataThenNext<'a> {
    body: &'a str,
    next: Option<Pipelined<'a>>,
}

impl fmt::Display for DataThenNext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in lines(self.body) {
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")?;
        if let Some(next) = &self.next {
            write!(f, "{next}")?;
        }
        Ok(())
    }
}

/// The envelope commands of one message, after checking that the relay can take it.
fn envelope_commands(conn: &Connection, message: &Outgoing) -> Result<(Mail, Vec<Rcpt>), SendError> {
    let info = conn.inner.server_info();
    let mut parameters = Vec::new();
    let non_ascii = message
        .from
        .as_ref()
        .is_some_and(|a| !AsRef::<str>::as_ref(a).is_ascii())
        || message.to.iter().any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if message.params.smtputf8 || non_ascii {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Permanent(
                "the message needs SMTPUTF8 (UTF-8 addresses or headers) and the relay does not support it".into(),
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if message.params.body_8bit || !message.bytes.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(SendError::Permanent(
                "the message is 8-bit and the relay does not support 8BITMIME".into(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    match conn.size {
        Some(max) if max > 0 && message.bytes.len() > max => {
            return Err(SendError::Permanent(format!(
                "the message is {} bytes and the relay takes at most {max} (its SIZE)",
                message.bytes.len()
            )));
        }
        Some(_) => parameters.push(MailParameter::Size(message.bytes.len())),
        None => {}
    }
    let rcpts = message.to.iter().map(|to| Rcpt::new(to.clone(), vec![])).collect();
    Ok((Mail::new(message.from.clone(), parameters), rcpts))
}

/// The content as UTF-8 for the shared-write path, when it is UTF-8.
fn utf8(message: &Outgoing) -> Option<&str> {
    std::str::from_utf8(&message.bytes).ok()
}

/// What the relay answered to an envelope's RCPTs and DATA.
struct EnvelopeAnswer {
    refused: Vec<(usize, SendError)>,
    /// DATA was answered 354: content must follow.
    data_open: bool,
}

/// Reads the replies to one envelope's RCPT commands and DATA, after its MAIL reply. A reply that is
/// not an SMTP reply (the connection failed) fails the whole message.
async fn read_envelope_replies(conn: &mut Connection, rcpts: usize) -> Result<EnvelopeAnswer, SendError> {
    let mut refused = Vec::new();
    for i in 0..rcpts {
        if let Err(e) = conn.inner.read_response().await {
            refused.push((i, recipient_refusal(&e)?));
        }
    }
    let data = conn.inner.read_response().await;
    data_answer(data, rcpts, refused)
}

/// A refused recipient, or the connection's failure.
fn recipient_refusal(e: &lettre::transport::smtp::Error) -> Result<SendError, SendError> {
    if e.is_permanent() {
        Ok(SendError::Permanent(e.to_string()))
    } else if e.is_transient() {
        Ok(SendError::Transient(e.to_string()))
    } else {
        Err(classify(e))
    }
}

fn data_answer(
    data: Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error>,
    rcpts: usize,
    refused: Vec<(usize, SendError)>,
) -> Result<EnvelopeAnswer, SendError> {
    let all_refused = refused.len() == rcpts;
    match data {
        Ok(_) => Ok(EnvelopeAnswer {
            refused,
            data_open: true,
        }),
        // With no recipient, DATA is refused (503/554): expected, and the session goes on.
        Err(e) if all_refused && (e.is_permanent() || e.is_transient()) => Ok(EnvelopeAnswer {
            refused,
            data_open: false,
        }),
        Err(e) => Err(classify(&e)),
    }
}

/// Sends messages back to back over one connection. Results are pushed in order; a message that
/// cannot go to this relay at all (it needs an extension the relay lacks) gets its error and the run
/// goes on. On a failure that leaves the session in doubt it stops and returns that message's error.
pub(super) async fn run(
    conn: &mut Connection,
    messages: &[&Outgoing],
    results: &mut Vec<Result<Sent, SendError>>,
    timeout: Duration,
) -> Result<(), SendError> {
    // The envelope of the message at hand, already written after the previous message's content.
    let mut written: Option<usize> = None;
    let mut k = 0;
    while k < messages.len() {
        let (mail, rcpts) = match envelope_commands(conn, messages[k]) {
            Ok(commands) => commands,
            Err(e) => {
                results.push(Err(e));
                k += 1;
                continue;
            }
        };
        let next = next_envelope(conn, messages, k);
        let step = one(conn, messages[k], &mail, &rcpts, written == Some(k), next.as_ref());
        let sent_next = match tokio::time::timeout(timeout, step).await {
            Ok(Ok((sent, sent_next))) => {
                results.push(Ok(sent));
                sent_next
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(SendError::Transient(format!(
                    "message: no answer within {}",
                    humantime::format_duration(timeout)
                )));
            }
        };
        written = sent_next.then_some(k + 1);
        k += 1;
    }
    Ok(())
}

/// The next message's envelope, to write after this message's content: only with pipelining, only
/// when the next message can go to this relay, and only when this one's content is UTF-8.
fn next_envelope(conn: &Connection, messages: &[&Outgoing], k: usize) -> Option<(Mail, Vec<Rcpt>)> {
    if !conn.pipelining || utf8(messages[k]).is_none() {
        return None;
    }
    envelope_commands(conn, messages.get(k + 1)?).ok()
}

/// One transaction. Returns what the relay said, and whether `next` was written after the content.
async fn one(
    conn: &mut Connection,
    message: &Outgoing,
    mail: &Mail,
    rcpts: &[Rcpt],
    already_written: bool,
    next: Option<&(Mail, Vec<Rcpt>)>,
) -> Result<(Sent, bool), SendError> {
    let answer = if conn.pipelining {
        let mail_reply = if already_written {
            conn.inner.read_response().await
        } else {
            conn.inner.command(Pipelined { mail, rcpts }).await
        };
        mail_reply.map_err(|e| classify(&e))?;
        read_envelope_replies(conn, rcpts.len()).await?
    } else {
        conn.inner.command(mail).await.map_err(|e| classify(&e))?;
        let mut refused = Vec::new();
        for (i, rcpt) in rcpts.iter().enumerate() {
            if let Err(e) = conn.inner.command(rcpt).await {
                refused.push((i, recipient_refusal(&e)?));
            }
        }
        if refused.len() == rcpts.len() {
            EnvelopeAnswer {
                refused,
                data_open: false,
            }
        } else {
            data_answer(conn.inner.command(Data).await, rcpts.len(), refused)?
        }
    };
    let EnvelopeAnswer { refused, data_open } = answer;
    if !data_open {
        // Nobody to send to: end the transaction without content. Relays differ on whether a refused
        // DATA ends it (aiosmtpd keeps the sender), so RSET says it for certain.
        conn.inner.command(Rset).await.map_err(|e| classify(&e))?;
        return Ok((Sent { refused }, false));
    }
    let written_next = match utf8(message) {
        Some(body) => {
            let next = next.map(|(mail, rcpts)| Pipelined { mail, rcpts });
            let written_next = next.is_some();
            conn.inner
                .command(DataThenNext { body, next })
                .await
                .map_err(|e| classify(&e))?;
            written_next
        }
        None => {
            if let Some(at) = bare_line_break(&message.bytes) {
                return Err(SendError::Permanent(format!(
                    "the message has a bare CR or LF at byte {at}"
                )));
            }
            // lettre's writer dot-stuffs and adds CRLF . CRLF; the content's own final CRLF is that one.
            let content = message.bytes.strip_suffix(b"\r\n").unwrap_or(&message.bytes);
            conn.inner.message(content).await.map_err(|e| classify(&e))?;
            false
        }
    };
    // Should a relay out of step answer DATA 354 with every recipient refused, the content went
    // nowhere and `refused` still says that nobody has the message.
    Ok((Sent { refused }, written_next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(body: &str) -> String {
        DataThenNext { body, next: None }.to_string()
    }

    #[test]
    fn content_is_dot_stuffed_and_ended_by_a_lone_dot() {
        assert_eq!(data("a\r\n.b\r\n..c\r\n"), "a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(data(".first\r\nlast"), "..first\r\nlast\r\n.\r\n");
        assert_eq!(data("a\r\n\r\nb\r\n"), "a\r\n\r\nb\r\n.\r\n");
    }

    #[test]
    fn bare_cr_and_lf_end_lines_as_crlf_so_no_body_ends_the_data_early() {
        let smuggled = "line1\r.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@y>\r\nDATA\r\nevil\r\n.\r\n";
        assert_eq!(
            data(smuggled),
            "line1\r\n..\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@y>\r\nDATA\r\nevil\r\n..\r\n.\r\n"
        );
        assert_eq!(data("a\n.\nMAIL FROM:<x@y>\n"), "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n");
        assert_eq!(data("a\r\r\n.\r"), "a\r\n\r\n..\r\n.\r\n");
        let written = data("x\r.\ry\n.\n\r\n.");
        assert!(
            !written.replace("\r\n", "").contains(['\r', '\n']),
            "only CRLF line breaks: {written:?}"
        );
        assert_eq!(written.matches("\r\n.\r\n").count(), 1, "one end of data: {written:?}");
    }
}
