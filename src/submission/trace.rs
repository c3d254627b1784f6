//! The `Received:` trace header Herald puts at the top of each message it accepts (RFC 5321 §4.4),
//! the only change made to the message: it says which client handed it over, when, and how
//! (RFC 3848's `with` keywords: ESMTP, ESMTPS with TLS, ESMTPA with AUTH, ESMTPSA with both).
//!
//! Herald looks up no reverse DNS (a lookup per session would cost a resolver round trip and prove
//! nothing), so the client is its EHLO name and its address literal.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// What the trace header records of a session and its transaction.
pub(super) struct Trace<'a> {
    /// The EHLO or HELO argument.
    pub helo: &'a str,
    pub client: IpAddr,
    pub hostname: &'a str,
    pub esmtp: bool,
    pub tls: bool,
    pub authenticated: bool,
    /// The session's transaction id (also in the logs).
    pub id: &'a str,
    /// The only recipient, when there is one (several are not listed: that would disclose Bcc).
    pub recipient: Option<&'a str>,
    pub at: OffsetDateTime,
}

impl Trace<'_> {
    pub fn header(&self) -> Vec<u8> {
        let with = match (self.esmtp, self.tls, self.authenticated) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let literal = match self.client.to_canonical() {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        let date = self
            .at
            .format(&Rfc2822)
            .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_owned());
        let mut header = format!(
            "Received: from {} ({literal})\r\n\tby {} (Herald) with {with} id {}",
            domain_or_unknown(self.helo),
            domain_or_unknown(self.hostname),
            self.id
        );
        if let Some(recipient) = self
            .recipient
            .filter(|r| r.is_ascii() && !r.contains(['<', '>', '\r', '\n']))
        {
            header.push_str(&format!("\r\n\tfor <{recipient}>"));
        }
        header.push_str(&format!(";\r\n\t{date}\r\n"));
        header.into_bytes()
    }
}

/// The name as a client gave it when it looks like a domain or an address literal, else `unknown`:
/// the client's text must not be able to add a header line or comment to the trace.
fn domain_or_unknown(name: &str) -> &str {
    let plausible = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
    if plausible { name } else { "unknown" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace<'a>(helo: &'a str, recipient: Option<&'a str>) -> Trace<'a> {
        Trace {
            helo,
            client: IpAddr::from([192, 0, 2, 7]),
            hostname: "herald.example.com",
            esmtp: true,
            tls: true,
            authenticated: true,
            id: "s1t2",
            recipient,
            at: time::macros::datetime!(2026-11-30 09:45:00 UTC),
        }
    }

    #[test]
    fn the_header_names_client_server_protocol_recipient_and_date() {
        let header = String::from_utf8(trace("jira.example.com", Some("ops@example.com")).header()).unwrap();
        assert_eq!(
            header,
            "Received: from jira.example.com ([192.0.2.7])\r\n\tby herald.example.com (Herald) with ESMTPSA id s1t2\r\n\
             \tfor <ops@example.com>;\r\n\tMon, 30 Nov 2026 09:45:00 +0000\r\n"
        );
    }

    #[test]
    fn a_hostile_helo_cannot_shape_the_header() {
        let header = String::from_utf8(trace("x)\r\nBcc: victim@example.com", None).header()).unwrap();
        assert!(header.starts_with("Received: from unknown ([192.0.2.7])"), "{header}");
        assert!(!header.contains("Bcc"));
        assert!(!header.contains("for <"));
    }

    #[test]
    fn protocol_words_follow_rfc_3848() {
        let mut t = trace("a", None);
        t.tls = false;
        t.authenticated = false;
        assert!(String::from_utf8(t.header()).unwrap().contains("with ESMTP id"));
        t.esmtp = false;
        assert!(String::from_utf8(t.header()).unwrap().contains("with SMTP id"));
        t.client = "2001:db8::1".parse().unwrap();
        assert!(String::from_utf8(t.header()).unwrap().contains("([IPv6:2001:db8::1])"));
    }
}
