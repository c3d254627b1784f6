//! The HTTP listener loop: accepts connections and serves the router on each, with the limits that
//! `axum::serve` does not offer.
//!
//! - **HTTP/1.1 only.** Herald serves plain HTTP behind a TLS-terminating proxy, and clients speak
//!   HTTP/1.1 to it. Serving cleartext HTTP/2 too (hyper-util's `auto` builder) would first read the
//!   connection's opening bytes to tell the two apart with no time limit, so a client sending nothing
//!   would hold its connection slot for ever; and an HTTP/2 connection that answers pings is never idle.
//! - **Header-read timeout.** A client has `HERALD_HTTP_HEADER_TIMEOUT` to send a request's complete
//!   headers, counted from the connection's opening (a client that sends nothing is closed too) and
//!   again from the end of each response on a kept-alive connection, so the same limit closes idle
//!   connections. Without it, a client sending one header byte every few seconds (slowloris) holds a
//!   connection, and its task, for ever.
//!   A slow *body* is bounded by `HERALD_REQUEST_TIMEOUT`, which runs around the handler that reads it.
//! - **Connection limit.** At most `HERALD_HTTP_MAX_CONNECTIONS` connections are served at once;
//!   further clients wait in the kernel's listen backlog until one closes, instead of each costing
//!   a task and buffers.
//! - **Graceful shutdown.** When `shutdown` completes the listener is closed, idle connections are
//!   closed, and requests in flight may finish; the caller bounds how long that may take.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// What the listener enforces on every connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: u32,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and returns a
/// future that completes when every connection has closed (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let builder = builder(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(
        usize::try_from(limits.max_connections).unwrap_or(usize::MAX >> 3),
    ));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_full_at: Option<tokio::time::Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Log once a minute at most: a flood must not become a flood of log lines.
                if warned_full_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    warned_full_at = Some(tokio::time::Instant::now());
                    tracing::warn!(
                        limit = limits.max_connections,
                        "every HTTP connection slot is taken (HERALD_HTTP_MAX_CONNECTIONS); new clients wait"
                    );
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses go out at once rather than waiting for more data (Nagle).
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone().map_request(move |request: http::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        }));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        metrics.http_open_connections.inc();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            metrics.http_open_connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    async move { graceful.shutdown().await }
}

fn builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder
}

/// Per-connection errors (the peer reset before we accepted) are nothing to wait on; anything else
/// (out of file descriptors) gets a pause, so the loop does not spin on an error that persists.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %error, "cannot accept an HTTP connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
