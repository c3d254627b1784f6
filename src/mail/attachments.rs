//! Attachments of JSON submissions: files (`Content-Disposition: attachment`) and inline parts that the
//! HTML body shows with `<img src="cid:…">` (`Content-Disposition: inline`, with a `Content-ID`).
//!
//! They are stored as submitted, base64 and all, inside the message's JSON, and decoded each time the
//! message is rendered; the MIME boundaries come from the message's id, so every attempt sends the
//! same bytes.
//!
//! The message's structure (RFC 2046, RFC 2387):
//! ```text
//! multipart/mixed                      only with files attached
//! ├─ multipart/alternative             only with both text and html
//! │  ├─ text/plain
//! │  └─ multipart/related              only with inline parts
//! │     ├─ text/html
//! │     └─ image/png (inline, Content-ID)
//! └─ application/pdf (attachment)
//! ```

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, MultiPartKind, SinglePart};
use serde::{Deserialize, Serialize};

use super::message::InvalidMail;

/// Most attachments in one message.
pub const MAX_ATTACHMENTS: usize = 20;
/// Longest file name, in characters.
const MAX_FILENAME: usize = 255;
/// Longest content type and content id, in characters.
const MAX_TOKEN: usize = 255;

/// One attachment of a JSON submission, stored as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailAttachment {
    /// The file name shown to the recipient: 1 to 255 characters, one line, no control characters.
    /// Non-ASCII names are encoded per RFC 2231.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    pub filename: String,
    /// A MIME type such as `application/pdf` or `text/csv; charset=utf-8`; not `multipart/*`.
    #[schema(
        max_length = 255,
        pattern = r"^(?![Mm][Uu][Ll][Tt][Ii][Pp][Aa][Rr][Tt]/)[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(?:; ?[A-Za-z0-9!#$&^_.+-]{1,64}=[A-Za-z0-9!#$&^_.+-]{1,64})*$"
    )]
    pub content_type: String,
    /// The content in base64 (RFC 4648's standard alphabet, without line breaks; padding optional).
    #[schema(pattern = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}={0,2}|[A-Za-z0-9+/]{3}=?)?$")]
    pub content_base64: String,
    /// Makes this an inline part with this `Content-ID` (without angle brackets), which the HTML body
    /// shows with `<img src="cid:…">`; a file attachment when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,255}$")]
    pub content_id: Option<String>,
}

/// Base64 as the schema's `content_base64` pattern describes it: padding optional, and stray bits in the last symbol
/// ignored (some encoders leave them).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn invalid(field: String, message: impl Into<String>) -> InvalidMail {
    InvalidMail {
        field,
        message: message.into(),
    }
}

fn is_restricted_name(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.len() <= max
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
}

/// Whether `value` is a content type the schema's `content_type` pattern accepts.
fn is_content_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let Some((kind, subtype)) = parts.next().and_then(|t| t.split_once('/')) else {
        return false;
    };
    let params_ok = parts.all(|p| {
        let p = p.strip_prefix(' ').unwrap_or(p);
        p.split_once('=')
            .is_some_and(|(n, v)| is_restricted_name(n, 64) && is_restricted_name(v, 64))
    });
    is_restricted_name(kind, 127)
        && is_restricted_name(subtype, 127)
        && params_ok
        && !kind.eq_ignore_ascii_case("multipart")
        && value.parse::<ContentType>().is_ok()
}

impl MailAttachment {
    /// Checks one attachment (`index` names it in errors) and returns its decoded size.
    fn check(&self, index: usize) -> Result<usize, InvalidMail> {
        let field = |name: &str| format!("attachments[{index}].{name}");
        let name_len = self.filename.chars().count();
        if name_len == 0 || name_len > MAX_FILENAME || self.filename.chars().any(char::is_control) {
            return Err(invalid(
                field("filename"),
                format!("a file name is 1 to {MAX_FILENAME} characters on one line, without control characters"),
            ));
        }
        if self.content_type.len() > MAX_TOKEN || !is_content_type(&self.content_type) {
            return Err(invalid(
                field("content_type"),
                format!(
                    "`{}` is not a MIME type such as `application/pdf` (multipart types are not accepted)",
                    self.content_type.chars().take(80).collect::<String>()
                ),
            ));
        }
        if let Some(id) = &self.content_id {
            let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.@-".contains(c);
            if id.is_empty() || id.len() > MAX_TOKEN || !id.chars().all(atext) {
                return Err(invalid(
                    field("content_id"),
                    format!(
                        "a content id is 1 to {MAX_TOKEN} letters, digits and `.@-_` (and the other \
                         characters RFC 5322 allows in an atom), without angle brackets"
                    ),
                ));
            }
        }
        self.decode().map(|bytes| bytes.len()).map_err(|e| {
            invalid(
                field("content_base64"),
                format!("not valid base64 (standard alphabet, no line breaks): {e}"),
            )
        })
    }

    /// The decoded size, from the length of a checked `content_base64`.
    pub fn decoded_len(&self) -> usize {
        let digits = self.content_base64.trim_end_matches('=').len();
        digits / 4 * 3 + (digits % 4).saturating_sub(1)
    }

    fn decode(&self) -> Result<Vec<u8>, base64::DecodeError> {
        BASE64.decode(&self.content_base64)
    }

    /// The MIME part: an attachment, or an inline part with its Content-ID.
    fn part(&self) -> Result<SinglePart, String> {
        let content_type = self
            .content_type
            .parse::<ContentType>()
            .map_err(|e| format!("attachment `{}`: {e}", self.filename))?;
        let bytes = self
            .decode()
            .map_err(|e| format!("attachment `{}`: {e}", self.filename))?;
        let attachment = match &self.content_id {
            Some(id) => Attachment::new_inline_with_name(id.clone(), self.filename.clone()),
            None => Attachment::new(self.filename.clone()),
        };
        Ok(attachment.body(bytes, content_type))
    }
}

/// Checks every attachment; returns the total decoded size.
pub fn check_all(attachments: &[MailAttachment]) -> Result<usize, InvalidMail> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(invalid(
            "attachments".to_owned(),
            format!("at most {MAX_ATTACHMENTS} attachments are accepted in one message"),
        ));
    }
    let mut total = 0;
    for (i, attachment) in attachments.iter().enumerate() {
        total += attachment.check(i)?;
    }
    Ok(total)
}

/// A message body: one part, or several.
pub enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

impl Body {
    fn into_multipart(self, builder: MultiPart) -> MultiPart {
        match self {
            Body::Single(part) => builder.singlepart(part),
            Body::Multi(part) => builder.multipart(part),
        }
    }
}

/// A multipart of `kind` whose boundary is fixed by the message id, so that every rendering is the
/// same. The id is a UUIDv7 drawn when the message was accepted, so no submitted text can know it.
fn multipart(kind: MultiPartKind, message_id: &str, level: &str) -> MultiPart {
    MultiPart::builder()
        .kind(kind)
        .boundary(format!("=_herald-{level}-{message_id}"))
        .build()
}

/// The body of a message: its text and/or html (already CRLF), and its attachments, in the structure
/// the module's doc draws.
pub fn body(
    text: Option<String>,
    html: Option<String>,
    attachments: &[MailAttachment],
    message_id: &str,
) -> Result<Body, String> {
    let (inline, files): (Vec<&MailAttachment>, Vec<&MailAttachment>) =
        attachments.iter().partition(|a| a.content_id.is_some());
    // The part that inline parts belong with: the html when there is one, else the text.
    let with_inline = |part: SinglePart| -> Result<Body, String> {
        if inline.is_empty() {
            return Ok(Body::Single(part));
        }
        let mut related = multipart(MultiPartKind::Related, message_id, "related").singlepart(part);
        for a in &inline {
            related = related.singlepart(a.part()?);
        }
        Ok(Body::Multi(related))
    };
    let main = match (text, html) {
        (Some(text), Some(html)) => {
            let html = with_inline(SinglePart::html(html))?;
            let alternative =
                multipart(MultiPartKind::Alternative, message_id, "alternative").singlepart(SinglePart::plain(text));
            Body::Multi(html.into_multipart(alternative))
        }
        (Some(text), None) => with_inline(SinglePart::plain(text))?,
        (None, Some(html)) => with_inline(SinglePart::html(html))?,
        (None, None) => return Err("no body".to_owned()),
    };
    if files.is_empty() {
        return Ok(main);
    }
    let mut mixed = main.into_multipart(multipart(MultiPartKind::Mixed, message_id, "mixed"));
    for a in files {
        mixed = mixed.singlepart(a.part()?);
    }
    Ok(Body::Multi(mixed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(content_type: &str, content_base64: &str, content_id: Option<&str>) -> MailAttachment {
        MailAttachment {
            filename: "report.pdf".into(),
            content_type: content_type.into(),
            content_base64: content_base64.into(),
            content_id: content_id.map(str::to_owned),
        }
    }

    fn field_of(a: MailAttachment) -> String {
        check_all(&[a]).unwrap_err().field
    }

    #[test]
    fn good_attachments_pass_and_report_their_decoded_size() {
        let a = attachment("application/pdf", "JVBERi0xLjQK", None);
        let b = attachment("text/csv; charset=utf-8", "YQ", Some("logo@example.com"));
        assert_eq!(check_all(&[a, b]), Ok(10));
    }

    #[test]
    fn each_bad_field_is_named() {
        let ok = || attachment("application/pdf", "JVBERi0xLjQK", None);
        assert_eq!(
            field_of(MailAttachment {
                filename: "a\r\nb".into(),
                ..ok()
            }),
            "attachments[0].filename"
        );
        assert_eq!(
            field_of(MailAttachment {
                filename: "x".repeat(256),
                ..ok()
            }),
            "attachments[0].filename"
        );
        let every_allowed = "a!#$&^_.+-/b!#$&^_.+-; c!#$&^_.+-=d!#$&^_.+-;e=f";
        assert!(check_all(&[attachment(every_allowed, "YQ", None)]).is_ok());
        assert_eq!(
            field_of(MailAttachment {
                filename: "a\u{85}b".into(),
                ..ok()
            }),
            "attachments[0].filename",
            "C1 controls are control characters too"
        );
        for bad in ["pdf", "multipart/mixed", "text/plain; charset", "a/b\r\nBcc: x", "é/x"] {
            assert_eq!(
                field_of(attachment(bad, "YQ", None)),
                "attachments[0].content_type",
                "{bad}"
            );
        }
        for bad in ["Y", "YQ=x", "YQ==YQ==", "YQ\r\n", "#"] {
            assert_eq!(
                field_of(attachment("text/plain", bad, None)),
                "attachments[0].content_base64",
                "{bad}"
            );
        }
        for bad in ["", "<logo>", "a b", "x".repeat(256).as_str()] {
            assert_eq!(
                field_of(attachment("image/png", "YQ", Some(bad))),
                "attachments[0].content_id",
                "{bad}"
            );
        }
        let many = vec![ok(); MAX_ATTACHMENTS + 1];
        assert_eq!(check_all(&many).unwrap_err().field, "attachments");
    }

    #[test]
    fn base64_padding_is_optional_and_its_length_checked() {
        for s in ["", "YQ", "YQ=", "YQ==", "YWI", "YWI=", "YWJj", "JVBERi0xLjQK"] {
            assert!(attachment("a/b", s, None).check(0).is_ok(), "{s}");
        }
        assert_eq!(attachment("a/b", "YWI=", None).decode().unwrap(), b"ab");
        for s in ["", "YQ", "YQ==", "YWI", "YWJj", "JVBERi0xLjQK"] {
            let a = attachment("a/b", s, None);
            assert_eq!(a.decoded_len(), a.decode().unwrap().len(), "{s}");
        }
        for s in ["Y", "YQ=x", "YQ\n", "YQ===", "YWJjZ"] {
            assert!(attachment("a/b", s, None).check(0).is_err(), "{s}");
        }
    }

    #[test]
    fn inline_parts_go_with_the_html_and_files_around_everything() {
        let logo = attachment("image/png", "iVBORw0KGgo", Some("logo"));
        let pdf = attachment("application/pdf", "JVBERi0xLjQK", None);
        let Ok(Body::Multi(mixed)) = body(
            Some("t\r\n".into()),
            Some("<img src=\"cid:logo\">\r\n".into()),
            &[logo, pdf],
            "0190-abc",
        ) else {
            panic!("expected a multipart");
        };
        let text = String::from_utf8(mixed.formatted()).unwrap();
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("no {needle} in {text}"));
        assert!(at("multipart/mixed") < at("multipart/alternative"));
        assert!(at("multipart/alternative") < at("multipart/related"));
        assert!(at("multipart/related") < at("Content-ID: <logo>"));
        assert!(at("Content-ID: <logo>") < at("filename=\"report.pdf\""));
        assert!(text.contains("boundary=\"=_herald-mixed-0190-abc\""), "{text}");
        let again = body(Some("t\r\n".into()), None, &[], "0190-abc");
        assert!(matches!(again, Ok(Body::Single(_))));
    }
}
