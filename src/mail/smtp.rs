//! The SMTP side: connections to the relay (its URL is parsed in `relay.rs`), and sending one message with its outcome classified.
//!
//! Connections are made here rather than by lettre's transport: lettre 0.11 never sets `TCP_NODELAY`
//! and writes the message body and the closing `.` separately, so on a pooled connection every
//! message waits for the peer's delayed ACK (~40 ms). With `TCP_NODELAY` set on our own socket, lettre's
//! `AsyncSmtpConnection` speaks the protocol without that stall.
//!
//! lettre also sends MAIL, each RCPT and DATA one round trip at a time and does not record whether
//! the relay offers PIPELINING (RFC 2920). Herald asks (a second EHLO on a new connection) and, when
//! it is offered, sends the envelope commands in one write and reads their replies afterwards: two
//! round trips per message instead of three plus one per recipient.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::message::lines;
use super::relay::{SmtpTarget, TlsMode};

/// How a failed attempt is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// 5xx, or a message the relay can never take: straight to the error queue.
    Permanent(String),
    /// 4xx, network errors, timeouts: try again later.
    Transient(String),
    /// The relay could not be reached, or refused service before any message (connection refused, TLS,
    /// a 421 greeting, no answer): nothing was tried, and the relay is marked down.
    Unreachable(String),
}

impl SendError {
    pub fn text(&self) -> &str {
        match self {
            SendError::Permanent(t) | SendError::Transient(t) | SendError::Unreachable(t) => t,
        }
    }
}

fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let text = err.to_string();
    if err.is_permanent() || err.is_client() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}

/// A TLS stream lettre can drive (implicit TLS, `smtps://`).
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// An open connection to the relay.
pub struct Connection {
    inner: AsyncSmtpConnection,
    pipelining: bool,
}

/// MAIL, every RCPT and DATA, written at once (RFC 2920 pipelining).
struct Pipelined<'a> {
    mail: Mail,
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

/// Opens connections to the relay and sends messages over them.
#[derive(Clone)]
pub struct SmtpClient {
    target: SmtpTarget,
    timeout: Duration,
    hello: ClientId,
    starttls: Option<TlsParameters>,
    implicit: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
}

impl SmtpClient {
    /// Prepares TLS settings once. `ca_file` adds trusted CA certificates (PEM) to the system's.
    pub fn new(target: SmtpTarget, ca_file: Option<&Path>, timeout: Duration) -> Result<SmtpClient, String> {
        let extra_ca = match ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?),
            None => None,
        };
        let hello = ClientId::Domain(target.helo.clone().unwrap_or_else(local_hostname));
        let mut starttls = None;
        let mut implicit = None;
        match target.tls {
            TlsMode::None => {}
            TlsMode::StartTls => {
                let mut builder = TlsParameters::builder(target.host.clone());
                if let Some(pem) = &extra_ca {
                    let cert = Certificate::from_pem(pem).map_err(|e| format!("invalid CA certificate: {e}"))?;
                    builder = builder.add_root_certificate(cert);
                }
                starttls = Some(builder.build_rustls().map_err(|e| format!("TLS set-up failed: {e}"))?);
            }
            TlsMode::Implicit => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if let Some(pem) = &extra_ca {
                    use rustls::pki_types::pem::PemObject;
                    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                        let cert = cert.map_err(|e| format!("invalid CA certificate: {e}"))?;
                        roots.add(cert).map_err(|e| format!("invalid CA certificate: {e}"))?;
                    }
                }
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|e| format!("invalid TLS server name {}: {e}", target.host))?;
                implicit = Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name));
            }
        }
        Ok(SmtpClient {
            target,
            timeout,
            hello,
            starttls,
            implicit,
        })
    }

    pub fn target(&self) -> &SmtpTarget {
        &self.target
    }

    async fn within<T>(&self, what: &str, future: impl Future<Output = Result<T, SendError>>) -> Result<T, SendError> {
        tokio::time::timeout(self.timeout, future).await.unwrap_or_else(|_| {
            Err(SendError::Transient(format!(
                "{what}: no answer from {} within {}",
                self.target,
                humantime::format_duration(self.timeout)
            )))
        })
    }

    /// Connects, greets, upgrades to TLS and authenticates as configured.
    /// Opens a connection, ready for a message. A transient failure on the way (the connection, TLS, a
    /// 4xx greeting or EHLO, no answer) is [`SendError::Unreachable`]: the relay's fault, not a message's.
    pub async fn connect(&self) -> Result<Connection, SendError> {
        let opened = self
            .within("connect", async {
                let addr = (self.target.host.as_str(), self.target.port);
                let tcp = TcpStream::connect(addr)
                    .await
                    .map_err(|e| SendError::Transient(format!("cannot connect to {}: {e}", self.target)))?;
                tcp.set_nodelay(true).map_err(|e| SendError::Transient(e.to_string()))?;
                let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
                    Some((connector, name)) => {
                        let tls = connector
                            .connect(name.clone(), tcp)
                            .await
                            .map_err(|e| SendError::Transient(format!("TLS with {} failed: {e}", self.target)))?;
                        Box::new(TlsStream(tls))
                    }
                    None => Box::new(tcp),
                };
                let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
                    .await
                    .map_err(|e| classify(&e))?;
                if let Some(params) = &self.starttls {
                    conn.starttls(params.clone(), &self.hello)
                        .await
                        .map_err(|e| SendError::Transient(format!("STARTTLS with {} failed: {e}", self.target)))?;
                }
                if let Some((user, password)) = &self.target.credentials {
                    let credentials = Credentials::new(user.clone(), password.expose().to_owned());
                    conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                        .await
                        .map_err(|e| {
                            SendError::Permanent(format!("authentication with {} failed: {e}", self.target))
                        })?;
                }
                let ehlo = conn
                    .command(Ehlo::new(self.hello.clone()))
                    .await
                    .map_err(|e| classify(&e))?;
                let pipelining = ehlo
                    .message()
                    .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
                Ok(Connection {
                    inner: conn,
                    pipelining,
                })
            })
            .await;
        opened.map_err(|e| match e {
            SendError::Transient(text) => SendError::Unreachable(text),
            other => other,
        })
    }

    /// Sends several messages over `conn` (opening one when needed), back to back with pipelining
    /// when the relay offers it. Returns one result per message, in order. After a failure the
    /// connection is replaced and the remaining messages go on over a new one.
    pub async fn send_many(
        &self,
        conn: &mut Option<Connection>,
        messages: &[(&Envelope, &[u8])],
    ) -> Vec<Result<(), SendError>> {
        let mut results = Vec::with_capacity(messages.len());
        while results.len() < messages.len() {
            let start = results.len();
            if conn.as_ref().is_some_and(|c| c.inner.has_broken()) {
                *conn = None;
            }
            let mut connection = match conn.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        // The relay cannot be reached: the same answer holds for every message left.
                        results.extend(std::iter::repeat_n(Err(e), messages.len() - start));
                        break;
                    }
                },
            };
            let outcome = if connection.pipelining {
                pipelined_run(&mut connection, &messages[start..], &mut results, self.timeout).await
            } else {
                let (envelope, body) = messages[start];
                match self.within("send", transaction(&mut connection, envelope, body)).await {
                    Ok(()) => {
                        results.push(Ok(()));
                        Ok(())
                    }
                    Err(e) => Err((0, e)),
                }
            };
            match outcome {
                Ok(()) => *conn = Some(connection),
                Err((failed_at, error)) => {
                    results.truncate(start + failed_at);
                    results.push(Err(error));
                    // Whatever the relay still has to say is dropped with the connection; closing
                    // politely is best effort, the relay may already have gone.
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection.inner.abort()).await;
                }
            }
        }
        results
    }

    /// Ends a connection with QUIT.
    pub async fn close(&self, mut conn: Connection) {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.inner.quit()).await;
    }
}

/// The envelope commands of one message, after checking what the relay supports.
fn envelope_commands(conn: &Connection, envelope: &Envelope, message: &[u8]) -> Result<(Mail, Vec<Rcpt>), SendError> {
    let info = conn.inner.server_info();
    let mut parameters = Vec::new();
    let non_ascii = envelope.from().is_some_and(|a| !a.to_string().is_ascii())
        || envelope.to().iter().any(|a| !a.to_string().is_ascii());
    if non_ascii {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Permanent(
                "an address is not ASCII and the relay does not support SMTPUTF8".into(),
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(SendError::Permanent(
                "the message is not ASCII and the relay does not support 8BITMIME".into(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let rcpts = envelope.to().iter().map(|to| Rcpt::new(to.clone(), vec![])).collect();
    Ok((Mail::new(envelope.from().cloned(), parameters), rcpts))
}

/// Message content (dot-stuffed, ended by `.`), then optionally the next message's envelope: one
/// write, as RFC 2920 allows (the end of data may be followed by the next transaction's commands).
///
/// This is the only writer of message content. It does not trust the message to end its lines with
/// CRLF: a bare CR or LF also ends a line here and is written as CRLF, so every line a relay could
/// see is dot-stuffed and no body can end the data early and smuggle in commands.
struct DataThenNext<'a> {
    body: &'a str,
    next: Option<&'a Pipelined<'a>>,
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
        if let Some(next) = self.next {
            write!(f, "{next}")?;
        }
        Ok(())
    }
}

/// Reads the replies to the RCPT and DATA commands of an envelope whose MAIL reply was read.
async fn read_envelope_replies(conn: &mut Connection, rcpts: usize) -> Result<(), SendError> {
    for _ in 0..rcpts {
        conn.inner.read_response().await.map_err(|e| classify(&e))?;
    }
    conn.inner.read_response().await.map_err(|e| classify(&e))?; // 354 for DATA
    Ok(())
}

fn timed_out(what: &str, timeout: Duration) -> SendError {
    SendError::Transient(format!(
        "{what}: no answer within {}",
        humantime::format_duration(timeout)
    ))
}

/// Sends messages back to back over one pipelining connection: the end of each message and the next
/// envelope share one write, so a message costs one round trip. On the first failure it stops and
/// returns the index of the message that failed; the results of the messages before it are pushed.
async fn pipelined_run(
    conn: &mut Connection,
    messages: &[(&Envelope, &[u8])],
    results: &mut Vec<Result<(), SendError>>,
    timeout: Duration,
) -> Result<(), (usize, SendError)> {
    let mut envelopes = Vec::with_capacity(messages.len());
    for (i, (envelope, body)) in messages.iter().enumerate() {
        match envelope_commands(conn, envelope, body) {
            Ok(commands) => envelopes.push(commands),
            Err(e) if i == 0 => return Err((0, e)),
            // Send up to the one that cannot be sent; the caller goes on from it.
            Err(_) => break,
        }
    }
    let first = Pipelined {
        mail: envelopes[0].0.clone(),
        rcpts: &envelopes[0].1,
    };
    let rcpts = envelopes[0].1.len();
    let sent = tokio::time::timeout(timeout, async {
        conn.inner.command(first).await.map_err(|e| classify(&e))?;
        read_envelope_replies(conn, rcpts).await
    })
    .await;
    sent.unwrap_or_else(|_| Err(timed_out("envelope", timeout)))
        .map_err(|e| (0, e))?;
    // `k` also names the next envelope and the failed message's position.
    #[allow(clippy::needless_range_loop)]
    for k in 0..envelopes.len() {
        let body = std::str::from_utf8(messages[k].1)
            .map_err(|_| (k, SendError::Permanent("the message is not valid UTF-8".into())))?;
        let next = envelopes.get(k + 1).map(|(mail, rcpts)| Pipelined {
            mail: mail.clone(),
            rcpts,
        });
        let data = DataThenNext {
            body,
            next: next.as_ref(),
        };
        let done = tokio::time::timeout(timeout, conn.inner.command(data)).await;
        match done {
            Ok(Ok(_)) => results.push(Ok(())),
            Ok(Err(e)) => return Err((k, classify(&e))),
            Err(_) => return Err((k, timed_out("message", timeout))),
        }
        if let Some(next) = &next {
            let replies = tokio::time::timeout(timeout, async {
                conn.inner.read_response().await.map_err(|e| classify(&e))?; // MAIL
                read_envelope_replies(conn, next.rcpts.len()).await
            })
            .await;
            replies
                .unwrap_or_else(|_| Err(timed_out("envelope", timeout)))
                .map_err(|e| (k + 1, e))?;
        }
    }
    Ok(())
}

/// One mail transaction without pipelining (the relay does not offer it): a command at a time, and
/// the content through the same writer as the pipelined path (lettre's own would pass a bare CR on).
async fn transaction(conn: &mut Connection, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
    let body =
        std::str::from_utf8(message).map_err(|_| SendError::Permanent("the message is not valid UTF-8".into()))?;
    let (mail, rcpts) = envelope_commands(conn, envelope, message)?;
    conn.inner.command(mail).await.map_err(|e| classify(&e))?;
    for rcpt in rcpts {
        conn.inner.command(rcpt).await.map_err(|e| classify(&e))?;
    }
    conn.inner.command(Data).await.map_err(|e| classify(&e))?;
    conn.inner
        .command(DataThenNext { body, next: None })
        .await
        .map(|_| ())
        .map_err(|e| classify(&e))
}

fn local_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or_else(|| "localhost".to_owned())
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
