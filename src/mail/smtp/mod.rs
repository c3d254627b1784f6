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

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::relay::{SmtpTarget, TlsMode};

mod transaction;

pub use transaction::{Outgoing, Sent};

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
    /// The relay's SIZE (RFC 1870): `Some(0)` when it announces no limit, `None` without SIZE.
    size: Option<usize>,
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
                let size = ehlo.message().find_map(announced_size);
                Ok(Connection {
                    inner: conn,
                    pipelining,
                    size,
                })
            })
            .await;
        opened.map_err(|e| match e {
            SendError::Transient(text) => SendError::Unreachable(text),
            other => other,
        })
    }

    /// Sends several messages over `conn` (opening one when needed), back to back with pipelining
    /// when the relay offers it. Returns one result per message, in order: what the relay said about
    /// each recipient, or why the message as a whole was not taken. After a failure that leaves the
    /// connection unusable it is replaced, and the remaining messages go on over a new one.
    pub async fn send_many(
        &self,
        conn: &mut Option<Connection>,
        messages: &[&Outgoing],
    ) -> Vec<Result<Sent, SendError>> {
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
            match transaction::run(&mut connection, &messages[start..], &mut results, self.timeout).await {
                Ok(()) => *conn = Some(connection),
                Err(error) => {
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

/// The limit in an EHLO line `SIZE <n>` (`SIZE` alone: no limit announced).
fn announced_size(line: &str) -> Option<usize> {
    let mut words = line.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("SIZE") {
        return None;
    }
    Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0))
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

    #[test]
    fn size_is_read_from_the_ehlo_reply() {
        assert_eq!(announced_size("SIZE 10240000"), Some(10_240_000));
        assert_eq!(announced_size("size"), Some(0));
        assert_eq!(announced_size("PIPELINING"), None);
        assert_eq!(announced_size(""), None);
    }
}
