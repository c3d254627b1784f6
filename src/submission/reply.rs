//! The server's replies: a code, an enhanced status code (RFC 2034/3463) and a text, rendered in one
//! place so that every reply carries its enhanced code and no text can break the line (a client's
//! input echoed in a reply is sanitised first).
//!
//! Enhanced codes are sent on every reply except the greeting, the EHLO/HELO answer, `334` (AUTH
//! challenges) and `354` (go ahead with DATA), where RFC 2034 and 4954 have none.

use std::borrow::Cow;

/// One reply, possibly of several lines (EHLO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    pub code: u16,
    /// `"5.5.2"`, or empty for replies without an enhanced code.
    pub status: &'static str,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// A reply whose text has no enhanced code (greeting, 334, 354, EHLO lines).
    pub fn bare(code: u16, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::new(code, "", text)
    }

    /// Whether the reply refuses something (4xx or 5xx).
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// The reply on the wire: `code-text` for every line but the last, `code text` for the last.
    pub fn render(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(if i == last { b' ' } else { b'-' });
            if !self.status.is_empty() {
                out.extend_from_slice(self.status.as_bytes());
                out.push(b' ');
            }
            // Our own texts are single lines; this guards against a stray CR or LF all the same.
            out.extend(line.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.render(&mut out);
        out
    }
}

/// A client's word shown in a reply or log line: printable ASCII only, at most 64 characters.
pub(super) fn echo(text: &str) -> String {
    printable(text, 64)
}

/// `text` as printable ASCII, at most `max` characters: what a reply line may carry.
pub(super) fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

pub(super) fn ok() -> Reply {
    Reply::new(250, "2.0.0", "Ok")
}

pub(super) fn out_of_order(text: &'static str) -> Reply {
    Reply::new(503, "5.5.1", text)
}

pub(super) fn not_implemented(command: &str) -> Reply {
    Reply::new(502, "5.5.1", format!("{} is not implemented", echo(command)))
}

pub(super) fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Line too long (512 octets at most, 12288 for AUTH)")
}

pub(super) fn auth_required() -> Reply {
    Reply::new(530, "5.7.0", "Authentication required")
}

pub(super) fn encryption_required() -> Reply {
    Reply::new(
        538,
        "5.7.11",
        "Encryption required for requested authentication mechanism; send STARTTLS first",
    )
}

pub(super) fn timeout() -> Reply {
    Reply::new(421, "4.4.2", "Timeout exceeded; closing the connection")
}

pub(super) fn too_many_errors() -> Reply {
    Reply::new(421, "4.7.0", "Too many errors; closing the connection")
}

pub(super) fn too_many_connections() -> Reply {
    Reply::new(421, "4.3.2", "Too many connections; try again later")
}

pub(super) fn too_many_connections_from_client() -> Reply {
    Reply::new(421, "4.7.0", "Too many connections from your address; try again later")
}

pub(super) fn draining(node: &str) -> Reply {
    Reply::new(
        421,
        "4.3.2",
        format!("Node {node} is draining and takes no new mail; try another node"),
    )
}

pub(super) fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "Service shutting down; try again later")
}

pub(super) fn pregreet() -> Reply {
    Reply::new(554, "5.5.1", "Protocol error: the client spoke before the greeting")
}

pub(super) fn pipelining(after: &str) -> Reply {
    Reply::new(
        554,
        "5.5.0",
        format!("Protocol error: commands pipelined after {after}; closing the connection"),
    )
}

pub(super) fn too_large(max: usize) -> Reply {
    Reply::new(
        552,
        "5.3.4",
        format!("Message too large: at most {max} bytes are accepted"),
    )
}

pub(super) fn too_many_recipients(max: usize) -> Reply {
    Reply::new(452, "4.5.3", format!("Too many recipients: at most {max} per message"))
}

/// The listener's memory budget for messages (`HERALD_SMTP_DATA_MEMORY`) is spent (RFC 3463 4.3.1,
/// mail system full): temporary, the client keeps the message and tries again.
pub(super) fn insufficient_storage() -> Reply {
    Reply::new(452, "4.3.1", "Insufficient system storage, try again later")
}

pub(super) fn bare_line_ending() -> Reply {
    Reply::new(
        550,
        "5.6.2",
        "Message refused: it has a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)",
    )
}

pub(super) fn text_line_too_long() -> Reply {
    Reply::new(
        550,
        "5.6.0",
        "Message refused: a line is longer than 1000 octets with its CRLF (RFC 5321 4.5.3.1.6)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_renders_its_code_enhanced_status_and_text() {
        assert_eq!(
            Reply::new(530, "5.7.0", "Authentication required").to_bytes(),
            b"530 5.7.0 Authentication required\r\n"
        );
        assert_eq!(Reply::bare(354, "Go ahead").to_bytes(), b"354 Go ahead\r\n");
    }

    #[test]
    fn a_multi_line_reply_continues_with_a_dash() {
        let reply = Reply {
            code: 250,
            status: "",
            lines: vec!["mx Herald".into(), "PIPELINING".into(), "8BITMIME".into()],
        };
        assert_eq!(reply.to_bytes(), b"250-mx Herald\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    }

    #[test]
    fn no_text_can_break_the_reply_line() {
        let reply = Reply::new(501, "5.5.4", format!("bad {}", "x\r\n250 ok"));
        assert_eq!(reply.to_bytes(), b"501 5.5.4 bad x  250 ok\r\n");
        assert_eq!(echo("a\r\nb\u{7f}\u{e9}c"), "abc");
        assert_eq!(echo(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn errors_are_four_and_five_hundreds() {
        assert!(auth_required().is_error());
        assert!(too_many_recipients(5).is_error());
        assert!(!ok().is_error());
    }
}
