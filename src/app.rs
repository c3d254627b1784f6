//! Builds the application on top of the services (opened by [`crate::services`], like every command's):
//! bootstrap admin, the node's place in the cluster, router, listener, background tasks. `main` only parses the command line, starts logging and runs what this returns. Nothing but the
//! binary imports this module: handlers reach the services through [`crate::state::AppState`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::BootstrapPassword;
use crate::clock::{self, SharedClock};
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::http::server::ConnectionLimits;
use crate::integrations::SweepShare;
use crate::services::{NewKey, Services};
pub use crate::services::{StartupError, open_store};
use crate::state::AppState;
use crate::store::redact_url;
use crate::supervisor::BackgroundLoop;

pub struct Application {
    listener: TcpListener,
    /// The SMTP submission server's listeners (none when both are off).
    smtp: crate::submission::Listeners,
    state: AppState,
}

impl Application {
    /// Prepares everything and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Self::build_with_clock(settings, clock::system()).await
    }

    /// Like [`Application::build`], with the clock the alert rules read (tests move it by hand).
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> Result<Application, StartupError> {
        let services = Services::open_with_clock(&settings, NewKey::Persist, clock).await?;
        match services
            .accounts
            .bootstrap_admin(settings.auth.admin_password.as_ref(), &settings.database.data_dir)
            .await?
        {
            Some(BootstrapPassword::FromConfiguration) => {
                tracing::info!("created user `admin` with the password from HERALD_ADMIN_PASSWORD");
            }
            Some(BootstrapPassword::Generated(path)) => {
                tracing::warn!(
                    file = %path.display(),
                    "created user `admin` with a random password written to {}; sign in and change it",
                    path.display()
                );
            }
            None => {}
        }
        join_cluster(&services.cluster).await?;
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .map_err(|e| StartupError::Listen {
                addr: settings.http.listen,
                reason: e.to_string(),
            })?;
        let smtp = crate::submission::Listeners::bind(&settings.smtp)
            .await
            .map_err(|e| match e {
                crate::submission::StartError::Listen { addr, reason } => StartupError::Listen { addr, reason },
                crate::submission::StartError::Tls(reason) => StartupError::Submission(reason),
            })?;
        tracing::info!(
            database = %redact_url(&settings.database.url),
            backend = services.store.backend().name(),
            node = %services.node_id,
            "database ready"
        );
        Ok(Application {
            listener,
            smtp,
            state: AppState::new(services),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The SMTP submission listener's address (plain, with STARTTLS when configured), if it is on.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.plain_addr()
    }

    /// The SMTPS (implicit TLS) listener's address, if it is on.
    pub fn smtps_addr(&self) -> Option<SocketAddr> {
        self.smtp.implicit_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for up to
    /// `HERALD_SHUTDOWN_TIMEOUT` and closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Application { listener, smtp, state } = self;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        let grace = state.settings.http.shutdown_timeout;
        let store = state.store.clone();
        let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
        // Every loop runs under the supervisor, which sees it die or stall (loops switched off by
        // configuration are not started, so they never look dead).
        let supervisor = state.supervisor.clone();
        let delivery = state.settings.mail.delivery.then(|| {
            let run = state.delivery.clone().run(workers_stopped.clone());
            supervisor.spawn(BackgroundLoop::MailDelivery, None, workers_stopped.clone(), run)
        });
        let ticket_delivery = state.settings.tickets.delivery.then(|| {
            // Any node applies any problem's events; a draining node takes no new ones.
            let cluster = state.cluster.clone();
            let run = state
                .ticket_delivery
                .clone()
                .run(workers_stopped.clone(), supervisor.clone(), move || {
                    cluster.accepts_work()
                });
            supervisor.spawn(BackgroundLoop::TicketDelivery, None, workers_stopped.clone(), run)
        });
        let cluster = state.cluster.clone();
        cluster.activate().await;
        let heartbeats = cluster.enabled().then(|| {
            let run = cluster.clone().run(workers_stopped.clone());
            supervisor.spawn(BackgroundLoop::ClusterHeartbeat, None, workers_stopped.clone(), run)
        });
        let integrations = state.integrations.clone();
        let (stop_sweeps, sweeps_stopped) = tokio::sync::watch::channel(false);
        let sharing = state.cluster.clone();
        let run = state.integrations.clone().run_sweeps(
            sweeps_stopped.clone(),
            move || {
                // A draining node sweeps nothing; the live nodes split the integrations between them.
                sharing
                    .work_share()
                    .map_or(SweepShare::NONE, |(index, of)| SweepShare { index, of })
            },
            supervisor.clone(),
        );
        let period = Some(state.settings.checks.interval);
        let sweeps = supervisor.spawn(BackgroundLoop::IntegrationSweep, period, sweeps_stopped, run);
        let evaluator = state.cluster.clone();
        let alerts = state.alerts.enabled().then(|| {
            let run = state.alerts.clone().run(workers_stopped.clone(), move || {
                // One node evaluates the alert rules: the first of the live nodes (or the only one).
                evaluator.work_share().is_some_and(|(rank, _)| rank == 0)
            });
            let period = Some(state.settings.alerts.interval);
            supervisor.spawn(BackgroundLoop::AlertEvaluation, period, workers_stopped.clone(), run)
        });
        // The SMTP listeners stop with the HTTP server; their sessions get the same grace.
        let (stop_smtp, smtp_stopped) = tokio::sync::watch::channel(false);
        let smtp = tokio::spawn(smtp.serve(state.clone(), smtp_stopped));
        let stopping = Arc::new(tokio::sync::Notify::new());
        let notify = stopping.clone();
        let limits = ConnectionLimits {
            header_timeout: state.settings.http.header_timeout,
            max_connections: state.settings.http.max_connections,
        };
        let metrics = state.metrics.clone();
        let router = crate::http::router(state);
        let server = async move {
            let drained = crate::http::server::serve(listener, router, limits, metrics, async move {
                shutdown.await;
                tracing::info!("shutting down: finishing requests in flight");
                let _ = stop_smtp.send(true);
                notify.notify_one();
            })
            .await;
            drained.await;
        };
        tokio::select! {
            () = server => {},
            () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("requests still in flight after {}; stopping anyway", humantime::format_duration(grace));
            }
        }
        if tokio::time::timeout(grace, smtp).await.is_err() {
            tracing::warn!(
                "SMTP sessions still open after {}; stopping anyway",
                humantime::format_duration(grace)
            );
        }
        let _ = stop_workers.send(true);
        if let Some(alerts) = alerts {
            let _ = alerts.await;
        }
        if let Some(worker) = ticket_delivery {
            if tokio::time::timeout(grace, worker).await.is_err() {
                tracing::warn!("ticket delivery did not stop in time; events in hand are re-queued at the next start");
            }
        }
        if let Some(delivery) = delivery {
            if tokio::time::timeout(grace, delivery).await.is_err() {
                tracing::warn!("mail delivery did not stop in time; unsent mail is re-queued at the next start");
            }
        }
        if let Some(heartbeats) = heartbeats {
            let _ = heartbeats.await;
        }
        cluster.leave().await;
        let _ = stop_sweeps.send(true);
        let _ = sweeps.await;
        integrations.flush_history().await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Claims this node's id in the cluster (two live nodes never share one) and publishes its first
/// heartbeat; nothing to do when not clustered.
async fn join_cluster(cluster: &Cluster) -> Result<(), StartupError> {
    cluster.claim_identity().await.map_err(StartupError::Cluster)?;
    if let Err(e) = cluster.heartbeat_once().await {
        tracing::warn!(error = %e, "cannot publish the node's first heartbeat");
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are registered when this is called, not when the
/// future is first polled, so a signal that arrives as soon as the server answers is not missed
/// (which would let the default action kill the process without a clean shutdown).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {},
                        _ = terminate.recv() => {},
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGINT/SIGTERM; stop Herald with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
