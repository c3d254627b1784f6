//! Complete messages, as SMTP clients and `message/rfc822` submissions hand them over, and where a
//! message came from.
//!
//! A complete message is stored and relayed byte for byte: Herald never re-renders it, so a DKIM
//! signature made upstream stays valid. What Herald needs to know about it (the subject and
//! Message-ID to show admins) is read from its headers with `mail-parser`, never written back.
//!
//! Every line must end with CRLF. A bare CR or LF is refused here rather than passed on: relays
//! disagree about what it means, and one that takes `\n.\n` or `\r.\r\n` for the end of data would let
//! a message smuggle a second transaction into the relay's session.

use std::net::IpAddr;

use lettre::Address;

use super::message::{InvalidMail, MAX_RECIPIENTS};

/// The ESMTP parameters of an envelope that must travel with the message to the relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvelopeParams {
    /// `BODY=8BITMIME`: the content has octets above 127.
    pub body_8bit: bool,
    /// `SMTPUTF8`: addresses or headers are UTF-8 (RFC 6531).
    pub smtputf8: bool,
}

impl EnvelopeParams {
    /// The stored form: `8BITMIME` and/or `SMTPUTF8`, space-separated.
    pub fn to_column(self) -> String {
        let mut words = Vec::new();
        if self.body_8bit {
            words.push("8BITMIME");
        }
        if self.smtputf8 {
            words.push("SMTPUTF8");
        }
        words.join(" ")
    }

    pub fn from_column(column: &str) -> EnvelopeParams {
        EnvelopeParams {
            body_8bit: column.split_whitespace().any(|w| w == "8BITMIME"),
            smtputf8: column.split_whitespace().any(|w| w == "SMTPUTF8"),
        }
    }
}

/// How a message reached the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /api/v1/mail`.
    Http,
    /// Herald's SMTP submission listener.
    Smtp,
    /// Herald itself: health alerts, and `herald mail send` on the node.
    Internal,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Smtp => "smtp",
            Protocol::Internal => "internal",
        }
    }
}

/// Who submitted a message, how, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub protocol: Protocol,
    /// The Herald user (or `trusted-network` for SMTP without AUTH, `alerts`, `cli`).
    pub user: String,
    pub client: Option<IpAddr>,
}

impl Origin {
    /// Mail that Herald writes itself (`user` says which part).
    pub fn internal(user: &str) -> Origin {
        Origin {
            protocol: Protocol::Internal,
            user: user.to_owned(),
            client: None,
        }
    }
}

/// A complete message with its envelope, checked once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMail {
    envelope_from: String,
    recipients: Vec<String>,
    params: EnvelopeParams,
    bytes: Vec<u8>,
    subject: String,
    message_id: Option<String>,
}

/// Where the first bare CR or LF (one not part of CRLF) is, if any.
pub fn bare_line_break(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' | b'\n' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `bytes` with every bare CR or LF written as CRLF, and a CRLF added at the end if missing: for
/// complete messages from clients that write files with Unix line endings (`message/rfc822` over
/// HTTP). SMTP does not use it: there a bare line break is refused.
pub fn normalize_line_breaks(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32 + 2);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidMail {
    InvalidMail {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks one envelope address: a bare `local@domain` of at most 320 characters, ASCII unless the
/// envelope says SMTPUTF8. The error says what is wrong, for a reply or a problem detail.
pub fn check_envelope_address(address: &str, smtputf8: bool) -> Result<(), String> {
    if address.len() > 320 {
        return Err("an address must be at most 320 characters long".to_owned());
    }
    if !smtputf8 && !address.is_ascii() {
        return Err(format!("`{address}` is not ASCII; a UTF-8 address needs SMTPUTF8"));
    }
    address
        .parse::<Address>()
        .map(|_| ())
        .map_err(|e| format!("`{address}` is not a valid email address ({e})"))
}

fn check_address(field: &str, address: &str, smtputf8: bool) -> Result<(), InvalidMail> {
    check_envelope_address(address, smtputf8).map_err(|message| invalid(field, message))
}

impl RawMail {
    /// Checks a complete message and its envelope: addresses, the number of recipients, the size
    /// (`max_size` bytes) and CRLF-only line breaks. `envelope_from` is empty for the null
    /// reverse-path `<>` (bounces). Content with octets above 127 is marked 8BITMIME whatever the
    /// client declared (RFC 6409 §8: a submission server may fix what it can).
    pub fn new(
        envelope_from: String,
        recipients: Vec<String>,
        params: EnvelopeParams,
        bytes: Vec<u8>,
        max_size: usize,
    ) -> Result<RawMail, InvalidMail> {
        if !envelope_from.is_empty() {
            check_address("envelope_from", &envelope_from, params.smtputf8)?;
        }
        if recipients.is_empty() {
            return Err(invalid("recipients", "at least one recipient is required"));
        }
        if recipients.len() > MAX_RECIPIENTS {
            return Err(invalid(
                "recipients",
                format!("at most {MAX_RECIPIENTS} recipients are accepted in one message"),
            ));
        }
        for (i, rcpt) in recipients.iter().enumerate() {
            check_address(&format!("recipients[{i}]"), rcpt, params.smtputf8)?;
        }
        if bytes.len() > max_size {
            return Err(invalid(
                "message",
                format!("the message is {} bytes; at most {max_size} are accepted", bytes.len()),
            ));
        }
        if bytes.is_empty() || !bytes.ends_with(b"\r\n") {
            return Err(invalid("message", "the message must end with CRLF"));
        }
        if let Some(at) = bare_line_break(&bytes) {
            return Err(invalid(
                "message",
                format!("bare CR or LF at byte {at}: every line must end with CRLF"),
            ));
        }
        let (subject, message_id) = read_headers(&bytes);
        let params = EnvelopeParams {
            body_8bit: params.body_8bit || !bytes.is_ascii(),
            ..params
        };
        Ok(RawMail {
            envelope_from,
            recipients,
            params,
            bytes,
            subject,
            message_id,
        })
    }

    pub fn envelope_from(&self) -> &str {
        &self.envelope_from
    }

    pub fn recipients(&self) -> &[String] {
        &self.recipients
    }

    pub fn params(&self) -> EnvelopeParams {
        self.params
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The decoded Subject header (one line, at most 998 bytes), or empty.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The Message-ID header without its angle brackets, if the message has one.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The subject (decoded, made one line and cut to 998 bytes) and Message-ID of a message, from its
/// header block only.
fn read_headers(bytes: &[u8]) -> (String, Option<String>) {
    let Some(message) = mail_parser::MessageParser::new().parse_headers(bytes) else {
        return (String::new(), None);
    };
    let subject: String = message
        .subject()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut end = subject.len().min(998);
    while !subject.is_char_boundary(end) {
        end -= 1;
    }
    let message_id = message
        .message_id()
        .map(|id| id.chars().filter(|c| !c.is_control()).take(998).collect::<String>())
        .filter(|id| !id.is_empty());
    (subject[..end].trim().to_owned(), message_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bytes: &[u8]) -> Result<RawMail, InvalidMail> {
        RawMail::new(
            "a@example.com".into(),
            vec!["b@example.com".into()],
            EnvelopeParams::default(),
            bytes.to_vec(),
            1 << 20,
        )
    }

    #[test]
    fn headers_are_read_and_the_bytes_kept() {
        let bytes = b"Subject: =?utf-8?q?Caf=C3=A9?= report\r\nMessage-ID: <abc@host>\r\n\r\nbody\r\n";
        let mail = raw(bytes).unwrap();
        assert_eq!(mail.subject(), "Caf\u{e9} report");
        assert_eq!(mail.message_id(), Some("abc@host"));
        assert_eq!(mail.bytes(), bytes);
        assert!(!mail.params().body_8bit);
        let eight = raw("Subject: x\r\n\r\nd\u{e9}j\u{e0}\r\n".as_bytes()).unwrap();
        assert!(eight.params().body_8bit, "octets above 127 are 8BITMIME");
        let bare = raw(b"Subject: x\r\n\r\n").unwrap();
        assert_eq!(bare.message_id(), None);
    }

    #[test]
    fn bare_line_breaks_are_refused_and_normalised_only_on_request() {
        assert_eq!(bare_line_break(b"a\r\nb\r\n"), None);
        assert_eq!(bare_line_break(b"a\nb"), Some(1));
        assert_eq!(bare_line_break(b"a\r\n.\r"), Some(4));
        let err = raw(b"Subject: x\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\n").unwrap_err();
        assert_eq!(err.field, "message");
        assert!(err.message.contains("bare CR or LF at byte 18"), "{err}");
        assert_eq!(normalize_line_breaks(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(normalize_line_breaks(b"a\r\n"), b"a\r\n");
        assert!(raw(b"no final line break").is_err());
    }

    #[test]
    fn envelopes_are_checked() {
        let with = |from: &str, to: Vec<String>, params: EnvelopeParams| {
            RawMail::new(from.into(), to, params, b"\r\n".to_vec(), 100)
        };
        let one = || vec!["b@example.com".to_owned()];
        assert!(with("", one(), EnvelopeParams::default()).is_ok(), "null reverse-path");
        assert_eq!(
            with("nope", one(), EnvelopeParams::default()).unwrap_err().field,
            "envelope_from"
        );
        assert_eq!(
            with("a@example.com", vec![], EnvelopeParams::default())
                .unwrap_err()
                .field,
            "recipients"
        );
        let utf8 = vec!["j\u{f6}rg@example.com".to_owned()];
        assert_eq!(
            with("a@example.com", utf8.clone(), EnvelopeParams::default())
                .unwrap_err()
                .field,
            "recipients[0]"
        );
        let smtputf8 = EnvelopeParams {
            smtputf8: true,
            ..EnvelopeParams::default()
        };
        assert!(with("a@example.com", utf8, smtputf8).is_ok());
        let many = (0..=MAX_RECIPIENTS).map(|i| format!("u{i}@example.com")).collect();
        assert!(with("a@example.com", many, EnvelopeParams::default()).is_err());
        let big = RawMail::new(
            "a@example.com".into(),
            one(),
            EnvelopeParams::default(),
            vec![b'x'; 101],
            100,
        );
        assert!(big.unwrap_err().message.contains("at most 100"));
    }

    #[test]
    fn params_round_trip_through_their_column() {
        for (body_8bit, smtputf8) in [(false, false), (true, false), (false, true), (true, true)] {
            let params = EnvelopeParams { body_8bit, smtputf8 };
            assert_eq!(EnvelopeParams::from_column(&params.to_column()), params);
        }
    }
}
