//! The accept loops: one per listener (plain with STARTTLS, and implicit TLS), sharing one
//! connection limit.
//!
//! - **Connection limit.** `HERALD_SMTP_MAX_CONNECTIONS` sessions at once. A client beyond it is told
//!   `421 4.3.2` at once (on the plain listener: written without waiting, into the new socket's empty
//!   send buffer) and closed; it costs no task. Unlike HTTP, an SMTP client that finds the server
//!   busy should hear so and try again later, not hang in the listen backlog.
//! - **Per client.** One address outside the trusted networks may hold at most
//!   `HERALD_SMTP_MAX_CONNECTIONS_PER_CLIENT` of them (`421 4.7.0` beyond), so one client cannot take
//!   every slot (see `per_client`).
//! - **One session's failure is its own.** Each session is a task; an error, or a panic, ends that
//!   task only, and its connection slot and the active-sessions gauge are given back on the way out
//!   (a drop guard). The accept loop pauses a second only on errors that persist (out of file
//!   descriptors), as the HTTP listener does.
//! - **Shutdown.** When `stop` turns true the loops stop accepting and drop their sockets; idle
//!   sessions answer `421 4.3.2` and close, sessions inside DATA or a commit finish first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::Shared;
use super::conn::Conn;
use super::per_client::PerClient;
use super::reply;
use super::session::Session;
use crate::metrics::{Metrics, SmtpRejection, SmtpTlsMode};

/// Accepts connections until `stop` turns true.
pub(super) async fn accept_loop(
    listener: TcpListener,
    implicit_tls: bool,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = super::stopped(&mut stop) => break,
        };
        let metrics = &shared.state.metrics;
        metrics.smtp.session_opened();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.smtp.rejected(SmtpRejection::TooManyConnections);
            if !implicit_tls {
                let _ = stream.try_write(&reply::too_many_connections().to_bytes());
            }
            continue;
        };
        let client = if shared.settings.trusted_networks.contains(peer.ip()) {
            None
        } else {
            match per_client.take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    metrics.smtp.rejected(SmtpRejection::TooManyConnections);
                    if !implicit_tls {
                        let _ = stream.try_write(&reply::too_many_connections_from_client().to_bytes());
                    }
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = Slot::take(permit, shared.state.metrics.clone());
            let _client = client;
            serve_connection(stream, peer, implicit_tls, shared).await;
        });
    }
}

/// A session's connection slot and its place in `herald_smtp_sessions_active`, given back when the
/// session ends, however it ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Slot {
        metrics.smtp.sessions_active.inc();
        Slot {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.smtp.sessions_active.dec();
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, implicit_tls: bool, shared: Arc<Shared>) {
    let timeout = shared.settings.command_timeout;
    let conn = if implicit_tls {
        let Some(acceptor) = shared.tls.clone() else {
            return;
        };
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                shared.state.metrics.smtp.tls_established(SmtpTlsMode::Implicit);
                Conn::tls(tls, timeout)
            }
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, error = %e, "SMTPS handshake failed");
                return;
            }
            Err(_) => {
                shared.state.metrics.smtp.rejected(SmtpRejection::Timeout);
                return;
            }
        }
    } else {
        Conn::plain(stream, timeout)
    };
    Session::new(conn, shared, peer.ip()).run().await;
}

/// Per-connection errors (the peer reset before we accepted) are nothing to wait on; anything else
/// (out of file descriptors) gets a pause, so the loop does not spin on an error that persists.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %error, "cannot accept an SMTP connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
