//! The SMTP submission server: Jira, and any application that speaks SMTP, hands its mail to
//! Herald's durable queue (RFC 5321 ESMTP, with RFC 6409's submission rules where they apply).
//!
//! A face like `http`: it translates SMTP into calls of the services (the authenticator, the mail
//! queue, the cluster's drain state) and their answers into replies; no service imports it. The
//! promise it keeps is the queue's: `250` after the final dot means the message is committed and
//! survives a crash; anything not answered yet is the client's to retry.
//!
//! - [`listener`]: accept loops, the connection limit, shutdown.
//! - [`session`]: the state machine of one session (EHLO, STARTTLS, AUTH, order rules, errors);
//!   [`transaction`]: MAIL, RCPT, DATA and the commit.
//! - [`budget`]: the memory all sessions' messages may hold together.
//! - [`conn`]: the connection's bounded buffers and deadlines; [`data`]: reading DATA (dot-unstuffing,
//!   bare CR/LF, size and line limits); [`auth`]: PLAIN and LOGIN; [`tls`]: the certificate;
//!   [`trace`]: the `Received:` header; [`reply`]: reply codes and texts; [`intake`]: the queue call.
//!
//! Commands are parsed by Stalwart's `smtp-proto`, the parser of a production MTA; everything
//! around it (I/O, limits, the order rules) is here, on tokio and tokio-rustls.
//!
//! **A thread of its own.** The listeners and every session run on one current-thread runtime, on
//! the `herald-smtp` thread, not on the server's work-stealing runtime. A session is a lock-step
//! exchange of short lines with almost no computation between them; on the shared runtime, each
//! reply and each wake-up could hop between worker threads, and those hand-offs cost more than the
//! session's own work (measured with the commit skipped: 58 µs of CPU per message and 1.1 context
//! switches on the server's two worker threads, 42 µs and 0.02 on one; bench/README.md). What is slow or touches the
//! database leaves the thread: password checks run on the server's runtime (which hashes on its
//! blocking pool), and a message goes to the queue's committer over a channel, so the thread never
//! waits on anything but sockets.

mod auth;
mod budget;
mod conn;
mod data;
mod intake;
mod listener;
mod per_client;
mod reply;
mod session;
mod tls;
mod trace;
mod transaction;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::SmtpSettings;
use crate::state::AppState;

/// Why the submission server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("SMTP submission: {0}")]
    Tls(String),
}

/// What every session shares: the services, the settings, the TLS acceptor, the stop signal.
pub(crate) struct Shared {
    state: AppState,
    settings: SmtpSettings,
    /// The largest message (`HERALD_MAIL_MAX_SIZE`), as SIZE advertises it.
    max_size: usize,
    /// The name in the greeting, EHLO and trace headers.
    hostname: String,
    tls: Option<TlsAcceptor>,
    /// What the messages being received may hold in memory, all sessions together.
    memory: Arc<budget::MemoryBudget>,
    stop: watch::Receiver<bool>,
    /// The server's runtime, where the work that touches the database runs (AUTH's check).
    services: Handle,
}

/// The bound listeners, before they serve.
pub struct Listeners {
    plain: Option<TcpListener>,
    implicit: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
}

impl Listeners {
    /// Loads the certificate (when set) and binds the configured addresses (port 0 picks a free port).
    /// SMTPS without a certificate, or half a certificate, is refused here, at start-up.
    pub async fn bind(settings: &SmtpSettings) -> Result<Listeners, StartError> {
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(StartError::Tls)?),
            (None, None) => None,
            _ => {
                return Err(StartError::Tls(
                    "HERALD_SMTP_TLS_CERT and HERALD_SMTP_TLS_KEY must be set together".to_owned(),
                ));
            }
        };
        if settings.smtps_listen.is_some() && tls.is_none() {
            return Err(StartError::Tls(
                "HERALD_SMTPS_LISTEN needs a certificate: set HERALD_SMTP_TLS_CERT and HERALD_SMTP_TLS_KEY".to_owned(),
            ));
        }
        Ok(Listeners {
            plain: bind(settings.listen).await?,
            implicit: bind(settings.smtps_listen).await?,
            tls,
        })
    }

    /// The plain listener's address (STARTTLS), if it is on.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The implicit-TLS listener's address, if it is on.
    pub fn implicit_addr(&self) -> Option<SocketAddr> {
        self.implicit.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Starts accepting on the `herald-smtp` thread; the future completes once `stop` turned true and
    /// every session has ended (the caller bounds how long it waits). Called on the server's runtime.
    pub fn serve(self, state: AppState, stop: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
        let settings = state.settings.smtp.clone();
        let max_size = state.settings.mail.max_size;
        let max_connections = settings.max_connections;
        let memory = budget::MemoryBudget::new(
            data_memory(settings.data_memory, max_size),
            state.metrics.smtp.data_memory.clone(),
        );
        let shared = Arc::new(Shared {
            state,
            settings,
            max_size,
            hostname: hostname(),
            tls: self.tls,
            memory,
            stop: stop.clone(),
            services: Handle::current(),
        });
        // Off the server's runtime: the thread's runtime registers the sockets with its own driver.
        let listeners: Vec<(std::net::TcpListener, bool)> = [(self.plain, false), (self.implicit, true)]
            .into_iter()
            .filter_map(|(listener, implicit)| match listener?.into_std() {
                Ok(listener) => Some((listener, implicit)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot hand an SMTP listener to its thread");
                    None
                }
            })
            .collect();
        let (done, ended) = oneshot::channel::<()>();
        if listeners.is_empty() {
            // SMTP is off: no thread.
            drop(done);
        } else {
            spawn_thread(listeners, shared, max_connections, stop, done);
        }
        async move {
            // Ends when the thread is done (or could not start): the sender is dropped then.
            let _ = ended.await;
        }
    }
}

/// Starts the `herald-smtp` thread; `done` is dropped when it ends.
fn spawn_thread(
    listeners: Vec<(std::net::TcpListener, bool)>,
    shared: Arc<Shared>,
    max_connections: u32,
    stop: watch::Receiver<bool>,
    done: oneshot::Sender<()>,
) {
    let thread = std::thread::Builder::new()
        .name("herald-smtp".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the SMTP runtime; SMTP submission is off");
                    return;
                }
            };
            runtime.block_on(serve_on_this_thread(listeners, shared, max_connections, stop));
            drop(done);
        });
    if let Err(e) = thread {
        tracing::error!(error = %e, "cannot start the SMTP thread; SMTP submission is off");
    }
}

/// The accept loops and their sessions, until `stop` turned true and every session has ended.
async fn serve_on_this_thread(
    listeners: Vec<(std::net::TcpListener, bool)>,
    shared: Arc<Shared>,
    max_connections: u32,
    stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(
        usize::try_from(max_connections).unwrap_or(Semaphore::MAX_PERMITS),
    ));
    let per_client = per_client::PerClient::new(shared.settings.max_connections_per_client);
    let mut loops = Vec::new();
    for (listener, implicit) in listeners {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve an SMTP listener");
                continue;
            }
        };
        if let Ok(addr) = listener.local_addr() {
            let tls = if implicit {
                "implicit TLS"
            } else if shared.tls.is_some() {
                "STARTTLS"
            } else {
                "no TLS"
            };
            tracing::info!(%addr, tls, "SMTP submission listening");
        }
        loops.push(tokio::spawn(listener::accept_loop(
            listener,
            implicit,
            shared.clone(),
            slots.clone(),
            per_client.clone(),
            stop.clone(),
        )));
    }
    for accept_loop in loops {
        let _ = accept_loop.await;
    }
    drop(shared);
    // Every session holds a slot: all of them free means every session has ended.
    let _ = slots.acquire_many(max_connections).await;
}

/// The memory budget for messages: as configured, but never less than one message of the largest
/// size with its trace header (a message alone always fits, so none is refused for ever).
fn data_memory(configured: usize, max_size: usize) -> usize {
    let one_message = max_size.saturating_add(budget::CHUNK);
    if configured < one_message {
        tracing::info!(
            configured,
            raised_to = one_message,
            "HERALD_SMTP_DATA_MEMORY is below one HERALD_MAIL_MAX_SIZE message; raised to fit one"
        );
    }
    configured.max(one_message)
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr).await.map(Some).map_err(|e| StartError::Listen {
        addr,
        reason: e.to_string(),
    })
}

/// This machine's name, for the greeting and trace headers.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        })
        .unwrap_or_else(|| "localhost".to_owned())
}
