//! Mail as submitted (`MailSubmission`), validated once at the edge (`ValidMail`), stored as JSON and
//! rendered to RFC 5322 bytes at delivery time.
//!
//! Line endings are made CRLF when a body is stored and again when it is rendered: SMTP ends a line
//! only with CRLF, and relays disagree about a bare CR or LF. One that takes `\r.\r\n` for the end of
//! data would let a body smuggle a second transaction (`MAIL FROM:…`) into the session. With every line
//! break CRLF, the DATA writer's dot-stuffing sees every line a relay could see.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::{Address, address::Envelope};
use serde::{Deserialize, Serialize};

use super::attachments::{self, MailAttachment};

/// The JSON body of `POST /api/v1/mail`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailSubmission {
    /// Sender; `HERALD_MAIL_FROM` when omitted. `Name <addr@example.com>` or `addr@example.com`.
    #[schema(format = Email)]
    pub from: Option<String>,
    /// Recipients: at least one in `to`, `cc` or `bcc`, at most 500 in all.
    #[serde(default)]
    #[schema(value_type = Vec<MailAddress>)]
    pub to: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<MailAddress>)]
    pub cc: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<MailAddress>)]
    pub bcc: Vec<String>,
    #[schema(format = Email)]
    pub reply_to: Option<String>,
    /// One line: no line breaks or NUL, at most 998 bytes.
    #[schema(pattern = r"^[^\r\n\x00]*$")]
    pub subject: String,
    /// Plain-text body; `text` and/or `html` is required. No NUL characters.
    #[schema(pattern = r"^[^\x00]*$")]
    pub text: Option<String>,
    #[schema(pattern = r"^[^\x00]*$")]
    pub html: Option<String>,
    /// Extra headers, e.g. `{"X-Ticket": "SEC-12"}`.
    #[serde(default)]
    #[schema(schema_with = headers_schema)]
    pub headers: BTreeMap<String, String>,
    /// Files, and inline parts for the HTML body (`content_id`): at most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub attachments: Vec<MailAttachment>,
}

/// `headers`' schema, the rule `validate` applies: at most [`MAX_HEADERS`] names of 1 to 76 visible
/// ASCII characters without `:`, none of [`RESERVED_HEADERS`] in any case, each with a one-line value.
fn headers_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let reserved: Vec<String> = RESERVED_HEADERS
        .iter()
        .map(|name| {
            name.chars()
                .map(|c| match c {
                    'a'..='z' => format!("[{}{c}]", c.to_ascii_uppercase()),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let name = format!("^(?!({})$)[!-9;-~]{{1,76}}$", reserved.join("|"));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Extra headers, e.g. `{{\"X-Ticket\": \"SEC-12\"}}`: at most {MAX_HEADERS}; a name is 1 to 76 visible \
             ASCII characters without `:` and not one Herald sets itself ({}); a value is one line of at most \
             {MAX_LINE} bytes.",
            RESERVED_HEADERS.join(", ")
        )))
        .max_properties(Some(MAX_HEADERS))
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(name))))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[^\r\n\x00]*$")),
        ))
        .build()
}

/// An address in the API (for its schema): `addr@example.com` or `Name <addr@example.com>`.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Email)]
#[allow(dead_code)] // only its schema is used
pub struct MailAddress(String);

/// A submission that passed validation, in the form that is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidMail {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Kept as submitted (base64), so that every attempt renders the same message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<MailAttachment>,
}

/// What is wrong with a submission, and in which field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct InvalidMail {
    pub field: String,
    pub message: String,
}

impl crate::error_kind::Classified for InvalidMail {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        crate::error_kind::ErrorKind::Invalid {
            field: self.field.clone(),
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidMail {
    InvalidMail {
        field: field.into(),
        message: message.into(),
    }
}

/// Most recipients accepted in one message (to + cc + bcc).
pub const MAX_RECIPIENTS: usize = 500;
const MAX_HEADERS: usize = 50;
/// RFC 5322 line length limit, also applied to the subject and header values.
const MAX_LINE: usize = 998;

/// Headers Herald writes itself; a submission may not set them through `headers`.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "sender",
    "return-path",
];

/// Parses one address (`addr@host` or `Name <addr@host>`), with an IDN domain turned into its ASCII
/// form so that relays without SMTPUTF8 accept it.
fn parse_mailbox(field: &str, value: &str) -> Result<Mailbox, InvalidMail> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(invalid(field, "an address must not contain line breaks"));
    }
    if value.len() > 320 {
        return Err(invalid(field, "an address must be at most 320 characters long"));
    }
    let mailbox: Mailbox = value
        .trim()
        .parse()
        .map_err(|e| invalid(field, format!("`{value}` is not a valid email address ({e})")))?;
    let domain = mailbox.email.domain();
    if domain.is_ascii() {
        return Ok(mailbox);
    }
    let ascii = idna::domain_to_ascii(domain)
        .map_err(|_| invalid(field, format!("`{value}` has an invalid international domain name")))?;
    let email = Address::new(mailbox.email.user(), ascii)
        .map_err(|e| invalid(field, format!("`{value}` is not a valid email address ({e})")))?;
    Ok(Mailbox::new(mailbox.name, email))
}

/// `text` with every line break (CRLF, a bare CR or a bare LF) written as CRLF.
pub fn to_crlf(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let bare = |i: usize| match bytes[i] {
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        _ => false,
    };
    if !(0..bytes.len()).any(bare) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' | b'\n' => {
                out.push_str(&text[start..i]);
                out.push_str("\r\n");
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[start..]);
    Cow::Owned(out)
}

/// The lines of `text`, each without its line break, where CRLF, a bare CR and a bare LF all end a
/// line. A break at the very end does not start another (empty) line.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(i) = rest.find(['\r', '\n']) else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..i];
        let width = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + width..];
        Some(line)
    })
}

fn check_text_line(field: &str, value: &str) -> Result<(), InvalidMail> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(invalid(field, "must not contain line breaks or NUL"));
    }
    if value.len() > MAX_LINE {
        return Err(invalid(field, format!("must be at most {MAX_LINE} bytes long")));
    }
    Ok(())
}

impl MailSubmission {
    /// Validates every field; the error names the first field at fault.
    pub fn validate(self, default_from: &str) -> Result<ValidMail, InvalidMail> {
        let from = parse_mailbox("from", self.from.as_deref().unwrap_or(default_from))?.to_string();
        let mut lists = Vec::new();
        for (name, list) in [("to", self.to), ("cc", self.cc), ("bcc", self.bcc)] {
            let mut parsed = Vec::with_capacity(list.len());
            for (i, value) in list.iter().enumerate() {
                parsed.push(parse_mailbox(&format!("{name}[{i}]"), value)?.to_string());
            }
            lists.push(parsed);
        }
        let [to, cc, bcc]: [Vec<String>; 3] = lists.try_into().map_err(|_| invalid("to", "internal"))?;
        let recipients = to.len() + cc.len() + bcc.len();
        if recipients == 0 {
            return Err(invalid(
                "to",
                "at least one recipient is required in `to`, `cc` or `bcc`",
            ));
        }
        if recipients > MAX_RECIPIENTS {
            return Err(invalid(
                "to",
                format!("at most {MAX_RECIPIENTS} recipients are accepted in one message"),
            ));
        }
        let reply_to = self
            .reply_to
            .as_deref()
            .map(|v| parse_mailbox("reply_to", v))
            .transpose()?;
        check_text_line("subject", &self.subject)?;
        if self.text.is_none() && self.html.is_none() {
            return Err(invalid("text", "a body is required: `text`, `html` or both"));
        }
        for (field, body) in [("text", &self.text), ("html", &self.html)] {
            if body.as_deref().is_some_and(|b| b.contains('\0')) {
                return Err(invalid(field, "must not contain NUL characters"));
            }
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(invalid(
                "headers",
                format!("at most {MAX_HEADERS} extra headers are accepted"),
            ));
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let valid_name =
                !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !valid_name {
                return Err(invalid(
                    field,
                    "a header name must be 1 to 76 visible ASCII characters without `:`",
                ));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    field,
                    format!("`{name}` is set by Herald; use the field of the same name"),
                ));
            }
            check_text_line(&field, value)?;
        }
        attachments::check_all(&self.attachments)?;
        Ok(ValidMail {
            from,
            to,
            cc,
            bcc,
            reply_to: reply_to.map(|m| m.to_string()),
            subject: self.subject,
            // Stored as submitted, so the API gives back what it was given; rendering turns every
            // line break into CRLF, and the SMTP writer does again.
            text: self.text,
            html: self.html,
            headers: self.headers,
            attachments: self.attachments,
        })
    }
}

/// Why a stored message could not be turned into SMTP input (a permanent failure).
#[derive(Debug, thiserror::Error)]
#[error("the message cannot be built: {0}")]
pub struct RenderError(String);

impl ValidMail {
    /// What the message carries, in bytes: its bodies and its attachments decoded. This is what
    /// `HERALD_MAIL_MAX_SIZE` bounds, besides the request that brought it.
    pub fn content_size(&self) -> usize {
        let bodies = self.text.as_ref().map_or(0, String::len) + self.html.as_ref().map_or(0, String::len);
        bodies + self.attachments.iter().map(MailAttachment::decoded_len).sum::<usize>()
    }

    /// Every envelope recipient: to, cc and bcc.
    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().chain(&self.cc).chain(&self.bcc).cloned().collect()
    }

    /// The SMTP envelope sender (the bare address of `from`).
    pub fn envelope_from(&self) -> String {
        self.from
            .parse::<Mailbox>()
            .map(|m| m.email.to_string())
            .unwrap_or_else(|_| self.from.clone())
    }

    /// The message as RFC 5322 bytes, and its envelope. `message_id` and `created_at_ms` keep the
    /// `Message-ID` and `Date` headers identical on every attempt.
    ///
    /// A stored message is checked again: header values must still be single lines and body line
    /// breaks become CRLF, whatever wrote the row.
    pub fn render(&self, message_id: &str, created_at_ms: i64) -> Result<(Envelope, Vec<u8>), RenderError> {
        let mailbox = |v: &str| v.parse::<Mailbox>().map_err(|e| RenderError(format!("{v}: {e}")));
        check_text_line("subject", &self.subject).map_err(|e| RenderError(e.to_string()))?;
        for (name, value) in &self.headers {
            check_text_line(name, value).map_err(|e| RenderError(e.to_string()))?;
        }
        let text = self.text.as_deref().map(|t| to_crlf(t).into_owned());
        let html = self.html.as_deref().map(|h| to_crlf(h).into_owned());
        let mut builder = Message::builder()
            .from(mailbox(&self.from)?)
            .subject(self.subject.clone());
        for to in &self.to {
            builder = builder.to(mailbox(to)?);
        }
        for cc in &self.cc {
            builder = builder.cc(mailbox(cc)?);
        }
        for bcc in &self.bcc {
            builder = builder.bcc(mailbox(bcc)?);
        }
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(mailbox(reply_to)?);
        }
        let created = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(created_at_ms).unwrap_or(0));
        builder = builder.date(created).message_id(Some(format!("<{message_id}@herald>")));
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone()).map_err(|e| RenderError(e.to_string()))?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        let message = match attachments::body(text, html, &self.attachments, message_id).map_err(RenderError)? {
            attachments::Body::Single(part) => builder.singlepart(part),
            attachments::Body::Multi(parts) => builder.multipart(parts),
        }
        .map_err(|e| RenderError(e.to_string()))?;
        Ok((message.envelope().clone(), message.formatted()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(json: serde_json::Value) -> MailSubmission {
        serde_json::from_value(json).unwrap()
    }

    fn reject(json: serde_json::Value) -> InvalidMail {
        submission(json).validate("herald@localhost").unwrap_err()
    }

    #[test]
    fn a_full_submission_validates_and_renders() {
        let mail = submission(serde_json::json!({
            "from": "Ops <ops@example.com>", "to": ["a@example.com"], "cc": ["b@example.com"],
            "bcc": ["hidden@example.com"], "reply_to": "help@example.com", "subject": "Disk full",
            "text": "plain", "html": "<p>html</p>", "headers": {"X-Ticket": "SEC-12"}
        }))
        .validate("herald@localhost")
        .unwrap();
        assert_eq!(
            mail.recipients(),
            ["a@example.com", "b@example.com", "hidden@example.com"]
        );
        assert_eq!(mail.envelope_from(), "ops@example.com");
        let (envelope, bytes) = mail.render("0190-abc", 1_700_000_000_000).unwrap();
        assert_eq!(envelope.to().len(), 3);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("From: Ops <ops@example.com>\r\n"), "{text}");
        assert!(text.contains("X-Ticket: SEC-12\r\n"));
        assert!(text.contains("Message-ID: <0190-abc@herald>\r\n"));
        assert!(text.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"), "{text}");
        assert!(!text.contains("hidden@example.com"), "Bcc is not in the headers");
        assert!(text.contains("multipart/alternative"));
    }

    #[test]
    fn every_line_break_becomes_crlf() {
        assert!(matches!(to_crlf("a\r\nb\r\n"), Cow::Borrowed(_)));
        assert_eq!(to_crlf("a\rb\nc\r\nd\r"), "a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(to_crlf("\n\r\r\n\n\r"), "\r\n\r\n\r\n\r\n\r\n");
        assert_eq!(to_crlf("é\rü"), "é\r\nü");
        assert_eq!(lines("a\rb\nc\r\n\r\nd").collect::<Vec<_>>(), ["a", "b", "c", "", "d"]);
        assert_eq!(lines("a\r\n").collect::<Vec<_>>(), ["a"]);
        assert_eq!(lines("").count(), 0);
    }

    #[test]
    fn bodies_are_stored_as_given_and_rendered_with_crlf_only() {
        let mail = submission(serde_json::json!({
            "to": ["a@example.com"], "subject": "s",
            "text": "line1\r.\r\nMAIL FROM:<x@y>\nend", "html": "<p>\r</p>"
        }))
        .validate("herald@localhost")
        .unwrap();
        assert_eq!(mail.text.as_deref(), Some("line1\r.\r\nMAIL FROM:<x@y>\nend"));
        let (_, bytes) = mail.render("0190-abc", 0).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("line1\r\n.\r\nMAIL FROM:<x@y>\r\nend"), "{text:?}");
        assert!(text.contains("<p>\r\n</p>"), "{text:?}");
        assert!(!text.replace("\r\n", "").contains(['\r', '\n']), "{text:?}");
    }

    #[test]
    fn a_stored_header_with_a_line_break_is_not_rendered() {
        let mail = submission(serde_json::json!({"to": ["a@example.com"], "subject": "s", "text": "t"}))
            .validate("herald@localhost")
            .unwrap();
        let bad_subject = ValidMail {
            subject: "hi\rBcc: evil@example.com".into(),
            ..mail.clone()
        };
        assert!(bad_subject.render("id", 0).is_err());
        let mut bad_header = mail;
        bad_header
            .headers
            .insert("X-A".into(), "v\nBcc: evil@example.com".into());
        assert!(bad_header.render("id", 0).is_err());
    }

    #[test]
    fn from_defaults_and_idn_domains_become_ascii() {
        let mail = submission(serde_json::json!({"to": ["user@bücher.example"], "subject": "s", "text": "t"}))
            .validate("Herald <herald@localhost>")
            .unwrap();
        assert_eq!(mail.from, "Herald <herald@localhost>");
        assert_eq!(mail.to, ["user@xn--bcher-kva.example"]);
    }

    #[test]
    fn bad_submissions_name_the_field() {
        let base = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"to": ["a@example.com"], "subject": "s", "text": "t"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(
            reject(base(serde_json::json!({"to": ["not-an-address"]}))).field,
            "to[0]"
        );
        assert_eq!(
            reject(base(serde_json::json!({"to": [], "cc": [], "bcc": []}))).field,
            "to"
        );
        assert_eq!(
            reject(base(serde_json::json!({"cc": ["ok@example.com", "x@"]}))).field,
            "cc[1]"
        );
        assert_eq!(
            reject(base(
                serde_json::json!({"from": "a@example.com\r\nBcc: evil@example.com"})
            ))
            .field,
            "from"
        );
        assert_eq!(
            reject(base(serde_json::json!({"subject": "hi\r\nBcc: evil@example.com"}))).field,
            "subject"
        );
        assert_eq!(reject(base(serde_json::json!({"text": null}))).field, "text");
        let err = reject(base(
            serde_json::json!({"headers": {"X-Evil": "v\r\nBcc: evil@example.com"}}),
        ));
        assert_eq!(err.field, "headers.X-Evil");
        assert_eq!(
            reject(base(serde_json::json!({"headers": {"Bad Name": "v"}}))).field,
            "headers.Bad Name"
        );
        let err = reject(base(serde_json::json!({"headers": {"bcc": "evil@example.com"}})));
        assert!(err.message.contains("set by Herald"), "{err}");
        let many: Vec<String> = (0..501).map(|i| format!("u{i}@example.com")).collect();
        assert!(
            reject(base(serde_json::json!({"to": many})))
                .message
                .contains("at most 500")
        );
    }
}
