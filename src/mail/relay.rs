//! The relay's URL: `smtp://[user:password@]host[:port][?tls=starttls][&helo=name]` or `smtps://…`,
//! parsed once at start-up into the target every connection is made to. Its `Display` never shows the
//! password.

use std::fmt;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP (`smtp://`, the default for port 25 relays on a trusted network).
    None,
    /// `smtp://…?tls=starttls`: STARTTLS is required; a relay that does not offer it is an error.
    StartTls,
    /// `smtps://`: TLS from the first byte (port 465).
    Implicit,
}

/// The relay named by `HERALD_SMTP_URL`.
#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<(String, Secret)>,
    /// The name sent in EHLO (`?helo=`); the machine's host name by default.
    pub helo: Option<String>,
}

impl fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for SmtpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls == TlsMode::Implicit { "smtps" } else { "smtp" };
        let user = self
            .credentials
            .as_ref()
            .map(|(u, _)| format!("{u}:<redacted>@"))
            .unwrap_or_default();
        let tls = if self.tls == TlsMode::StartTls {
            "?tls=starttls"
        } else {
            ""
        };
        write!(f, "{scheme}://{user}{}:{}{tls}", self.host, self.port)
    }
}

impl SmtpTarget {
    pub fn parse(raw: &str) -> Result<SmtpTarget, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        let (mut tls, default_port) = match url.scheme() {
            "smtp" => (TlsMode::None, 25),
            "smtps" => (TlsMode::Implicit, 465),
            other => return Err(format!("unknown scheme `{other}`: use smtp or smtps")),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "the user name or password is not valid percent-encoding".to_owned())
        };
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((
                decode(url.username())?,
                Secret::new(decode(url.password().unwrap_or(""))?),
            ))
        };
        let mut helo = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "starttls") if tls == TlsMode::None => tls = TlsMode::StartTls,
                ("tls", "none") if tls == TlsMode::None => {}
                ("tls", other) => return Err(format!("unknown tls mode `{other}`: use tls=starttls (or smtps://)")),
                ("helo", name) if !name.is_empty() => helo = Some(name.to_owned()),
                (other, _) => return Err(format!("unknown parameter `{other}`: known are tls and helo")),
            }
        }
        Ok(SmtpTarget {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            credentials,
            helo,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_are_parsed() {
        let t = SmtpTarget::parse("smtp://relay.example.com").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("relay.example.com", 25, TlsMode::None)
        );
        let t = SmtpTarget::parse("smtp://u%40x:p%3Ass@relay:587?tls=starttls&helo=herald.example").unwrap();
        assert_eq!((t.port, t.tls), (587, TlsMode::StartTls));
        let (user, password) = t.credentials.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("u@x", "p:ss"));
        assert_eq!(t.helo.as_deref(), Some("herald.example"));
        assert_eq!(t.to_string(), "smtp://u@x:<redacted>@relay:587?tls=starttls");
        let t = SmtpTarget::parse("smtps://relay").unwrap();
        assert_eq!((t.port, t.tls), (465, TlsMode::Implicit));
    }

    #[test]
    fn bad_relay_urls_say_why() {
        assert!(
            SmtpTarget::parse("http://relay")
                .unwrap_err()
                .contains("unknown scheme")
        );
        assert!(
            SmtpTarget::parse("smtp://relay?tls=maybe")
                .unwrap_err()
                .contains("unknown tls mode")
        );
        assert!(
            SmtpTarget::parse("smtp://relay?pool=3")
                .unwrap_err()
                .contains("unknown parameter")
        );
        assert!(SmtpTarget::parse("nonsense").is_err());
    }
}
