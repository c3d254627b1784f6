//! Complete messages handed over HTTP (`POST /api/v1/mail` with `Content-Type: message/rfc822`).
//!
//! Unlike SMTP, which refuses a bare CR or LF, HTTP takes files as they are written on disk: every
//! line break (CRLF, bare CR, bare LF) becomes CRLF, and a final CRLF is added when missing. Nothing
//! else is changed: the message is then stored and relayed byte for byte like one received over SMTP.
//! The envelope comes with the request: recipients (`to`) and sender (`from`); without `from`, the
//! sender is the address of the message's `From:` header, else `HERALD_MAIL_FROM`.

use lettre::message::Mailbox;

use super::message::InvalidMail;
use super::raw::{EnvelopeParams, RawMail, normalize_line_breaks};

/// Why a complete message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc822Error {
    #[error(transparent)]
    Invalid(#[from] InvalidMail),
    /// Larger than `HERALD_MAIL_MAX_SIZE` once its line breaks are CRLF.
    #[error("the message is {size} bytes with CRLF line breaks; at most {max} are accepted (HERALD_MAIL_MAX_SIZE)")]
    TooLarge { size: usize, max: usize },
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidMail {
    InvalidMail {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks that `bytes` (CRLF only) start with a header block: header fields (`Name: value`, a name
/// of visible ASCII without `:`) and their folded continuation lines, up to an empty line or the end.
pub fn check_header_block(bytes: &[u8]) -> Result<(), InvalidMail> {
    let mut fields = 0;
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let folded = line[0] == b' ' || line[0] == b'\t';
        let name_len = line.iter().position(|&b| b == b':');
        let is_field = name_len.is_some_and(|len| len > 0 && line[..len].iter().all(|&b| b.is_ascii_graphic()));
        if is_field {
            fields += 1;
        } else if !(folded && fields > 0) {
            let what = if n == 0 {
                "the message does not start with a header field (`Name: value`)".to_owned()
            } else {
                format!("line {} is neither a header field nor a folded continuation", n + 1)
            };
            return Err(invalid(
                "message",
                format!("{what}: a message is a header block, an empty line, then the body"),
            ));
        }
    }
    if fields == 0 {
        return Err(invalid("message", "the message has no header block"));
    }
    Ok(())
}

/// The bare address of the message's first `From:` mailbox, if it has one.
fn from_header(bytes: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::new().parse_headers(bytes)?;
    let address = message.from()?.first()?.address()?;
    Some(address.to_owned())
}

/// Names the envelope's fields as the request does: `to` and `from`, not `recipients` and
/// `envelope_from`.
fn as_request_field(mut err: InvalidMail) -> InvalidMail {
    if let Some(rest) = err.field.strip_prefix("recipients") {
        err.field = format!("to{rest}");
    } else if err.field == "envelope_from" {
        err.field = "from".to_owned();
    }
    err
}

/// Makes a complete message submitted over HTTP ready for the queue: line breaks made CRLF, header
/// block and size checked, the envelope completed. A UTF-8 address in the envelope asks the relay for
/// SMTPUTF8.
pub fn prepare(
    bytes: &[u8],
    to: Vec<String>,
    from: Option<String>,
    default_from: &str,
    max_size: usize,
) -> Result<RawMail, Rfc822Error> {
    if to.is_empty() {
        return Err(invalid(
            "to",
            "at least one recipient is required: `?to=a@example.com&to=b@example.com`",
        )
        .into());
    }
    let bytes = normalize_line_breaks(bytes);
    if bytes.len() > max_size {
        return Err(Rfc822Error::TooLarge {
            size: bytes.len(),
            max: max_size,
        });
    }
    check_header_block(&bytes)?;
    let envelope_from = match from {
        Some(from) => from,
        None => match from_header(&bytes) {
            Some(address) => address,
            None => default_from
                .parse::<Mailbox>()
                .map(|m| m.email.to_string())
                .map_err(|e| {
                    invalid(
                        "from",
                        format!("HERALD_MAIL_FROM is not an address ({e}); give `?from=`"),
                    )
                })?,
        },
    };
    let params = EnvelopeParams {
        smtputf8: !envelope_from.is_ascii() || to.iter().any(|a| !a.is_ascii()),
        ..EnvelopeParams::default()
    };
    RawMail::new(envelope_from, to, params, bytes, max_size)
        .map_err(as_request_field)
        .map_err(Rfc822Error::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(bytes: &[u8], to: &[&str], from: Option<&str>) -> Result<RawMail, Rfc822Error> {
        prepare(
            bytes,
            to.iter().map(|s| (*s).to_owned()).collect(),
            from.map(str::to_owned),
            "Herald <herald@localhost>",
            1024,
        )
    }

    fn field(result: Result<RawMail, Rfc822Error>) -> String {
        match result {
            Err(Rfc822Error::Invalid(e)) => e.field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn line_breaks_become_crlf_and_the_sender_comes_from_the_from_header() {
        let mail = prepared(
            "From: Ops <ops@example.com>\nSubject: hi\n\nd\u{e9}j\u{e0}\rvu".as_bytes(),
            &["dev@example.com"],
            None,
        )
        .unwrap();
        assert_eq!(
            mail.bytes(),
            "From: Ops <ops@example.com>\r\nSubject: hi\r\n\r\nd\u{e9}j\u{e0}\r\nvu\r\n".as_bytes()
        );
        assert_eq!(mail.envelope_from(), "ops@example.com");
        assert!(mail.params().body_8bit);
        assert!(!mail.params().smtputf8);
        let given = prepared(b"From: a@example.com\n\nx", &["dev@example.com"], Some("b@example.com")).unwrap();
        assert_eq!(given.envelope_from(), "b@example.com");
        let fallback = prepared(b"Subject: x\n\nx", &["dev@example.com"], None).unwrap();
        assert_eq!(fallback.envelope_from(), "herald@localhost");
    }

    #[test]
    fn envelope_faults_name_the_request_fields() {
        let ok = b"Subject: x\r\n\r\nbody\r\n";
        assert_eq!(field(prepared(ok, &[], None)), "to");
        assert_eq!(field(prepared(ok, &["dev@example.com", "nope"], None)), "to[1]");
        assert_eq!(field(prepared(ok, &["dev@example.com"], Some("x@@y"))), "from");
        let utf8 = prepared(ok, &["j\u{f6}rg@example.com"], None).unwrap();
        assert!(utf8.params().smtputf8);
    }

    #[test]
    fn a_message_without_a_header_block_is_refused() {
        for bad in [
            &b"just a body\n"[..],
            b"\nbody after an empty line\n",
            b" folded first: no\n\nx",
            b"Subject: x\nnot a header\n\nx",
            b": no name\n\nx",
            b"From sender@example.com Mon Jan 1 00:00:00 2024\nSubject: mbox\n\nx",
        ] {
            let err = field(prepared(bad, &["dev@example.com"], None));
            assert_eq!(err, "message", "{}", String::from_utf8_lossy(bad));
        }
        assert!(prepared(b"Subject: x\n\tfolded\nX-A: 1", &["dev@example.com"], None).is_ok());
    }

    #[test]
    fn the_size_counts_the_crlf_form() {
        let body = format!("Subject: x\n\n{}", "a\n".repeat(400));
        assert!(body.len() < 1024);
        assert!(matches!(
            prepared(body.as_bytes(), &["dev@example.com"], None),
            Err(Rfc822Error::TooLarge { max: 1024, .. })
        ));
    }
}
