//! Builds the application: data dir, database, bootstrap admin, services, router, listener, background
//! tasks. `main` only parses the command line, starts logging and runs what this returns. Nothing but the
//! binary imports this module: handlers reach the services through [`crate::state::AppState`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::alerts::Alerts;
use crate::auth::{Accounts, Authenticator, BootstrapError, BootstrapPassword, PasswordHashing, Throttle};
use crate::clock::{self, SharedClock};
use crate::cluster::{Cluster, NodeId};
use crate::config::Settings;
use crate::http::server::ConnectionLimits;
use crate::integrations::Integrations;
use crate::integrations::SweepShare;
use crate::mail::{Delivery, MailQueue};
use crate::metrics::Metrics;
use crate::secret::{SecretBox, SecretsError};
use crate::state::{AppState, Services};
use crate::store::{ConnectOptions, SECRET_KEY_CHECK, Store, StoreError, redact_url};
use crate::supervisor::{BackgroundLoop, Supervisor};

/// Why Herald could not start. Each message is one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("the data directory {path} is not usable: {reason}")]
    DataDir { path: String, reason: String },
    #[error("{0}")]
    Database(#[from] StoreError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("invalid node id: {0}")]
    NodeId(String),
    #[error("cannot use the SMTP relay: {0}")]
    Smtp(String),
    #[error("cluster mode: {0}")]
    Cluster(String),
    #[error(
        "this node's secrets key (HERALD_SECRET_KEY, or secret.key in the data dir) is not the one the \
         database's secrets were encrypted with; every node sharing a database needs the same HERALD_SECRET_KEY"
    )]
    SecretKeyMismatch,
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Secrets(#[from] SecretsError),
}

/// Makes sure the data dir exists, is private to Herald's user, and can be written to (by writing
/// and removing a probe file).
///
/// The data dir holds mail bodies and recipients, password hashes and the secrets key, so the
/// directory and every file in it lose their group and other permissions. (The store creates a new
/// SQLite database 0600, and SQLite gives its `-wal` and `-shm` files the database file's mode.)
pub fn prepare_data_dir(dir: &Path) -> Result<(), StartupError> {
    let fail = |reason: String| StartupError::DataDir {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    make_private(dir).map_err(|e| fail(format!("cannot make it private to Herald's user: {e}")))?;
    let probe = dir.join(".herald-write-probe");
    std::fs::write(&probe, b"probe").map_err(|e| fail(format!("cannot write to it: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| fail(format!("cannot remove a file from it: {e}")))?;
    Ok(())
}

/// Takes group and other permissions off `dir` and the files directly in it.
#[cfg(unix)]
fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let tighten = |path: &Path| -> std::io::Result<()> {
        let metadata = std::fs::metadata(path)?;
        let current = metadata.permissions().mode() & 0o777;
        if current & 0o077 != 0 && metadata.uid() != me {
            // Only the owner may change the mode (a volume mounted for a group, say): say so and go on.
            tracing::warn!(
                path = %path.display(),
                "readable by others (mode {current:o}) and not owned by Herald's user, so left as it is"
            );
            return Ok(());
        }
        if current & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & 0o700))?;
            tracing::info!(path = %path.display(), "made private to Herald's user (was {current:o})");
        }
        Ok(())
    };
    tighten(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            tighten(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Opens and migrates the configured database (the data dir is prepared first).
pub async fn open_store(settings: &Settings) -> Result<Store, StartupError> {
    prepare_data_dir(&settings.database.data_dir)?;
    let store = Store::connect(&ConnectOptions {
        url: settings.database.url.clone(),
        max_connections: settings.database.max_connections,
        timeout: settings.database.timeout,
    })
    .await?;
    store.migrate().await?;
    Ok(store)
}

/// Password hashing shared by authentication and account management.
pub fn password_hashing() -> PasswordHashing {
    PasswordHashing::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Prepares everything and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Self::build_with_clock(settings, clock::system()).await
    }

    /// Like [`Application::build`], with the clock the alert rules read (tests move it by hand).
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> Result<Application, StartupError> {
        let store = open_store(&settings).await?;
        let hashing = password_hashing();
        let authenticator = Authenticator::new(
            store.clone(),
            hashing.clone(),
            settings.auth.cache_ttl,
            Throttle::new(settings.auth.max_failures, settings.auth.lockout),
        );
        let accounts = Accounts::new(store.clone(), hashing, Some(authenticator.clone()));
        match accounts
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
        let node_id = NodeId::load_or_create(settings.cluster.node_id.as_ref(), &settings.database.data_dir)
            .map_err(StartupError::NodeId)?;
        let metrics = Arc::new(Metrics::new());
        let mail = MailQueue::start(store.clone(), node_id.clone());
        let delivery = Delivery::new(
            &settings.mail,
            store.clone(),
            node_id.clone(),
            mail.wake.clone(),
            metrics.clone(),
        )
        .map_err(StartupError::Smtp)?;
        let cluster = join_cluster(&settings, &store, &node_id).await?;
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .map_err(|e| StartupError::Listen {
                addr: settings.http.listen,
                reason: e.to_string(),
            })?;
        tracing::info!(
            database = %redact_url(&settings.database.url),
            backend = store.backend().name(),
            node = %node_id,
            "database ready"
        );
        let secrets = open_secrets(&settings, &store, NewKey::Persist).await?;
        let integrations = Integrations::new(store.clone(), secrets, metrics.clone(), &settings.checks);
        // Loops tick in real time: their supervisor reads the system clock, whatever the alerts read.
        let supervisor = Supervisor::new(clock::system(), metrics.clone());
        let alerts = Alerts::new(
            &settings.alerts,
            &settings.mail.from,
            settings.console.public_url.as_deref(),
            store.clone(),
            mail.clone(),
            integrations.clone(),
            cluster.clone(),
            clock.clone(),
            metrics.clone(),
            supervisor.clone(),
        );
        let state = AppState::new(Services {
            settings: Arc::new(settings),
            store,
            authenticator,
            accounts,
            metrics,
            node_id,
            mail,
            delivery,
            cluster,
            integrations,
            alerts,
            clock,
            supervisor,
        });
        Ok(Application { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for up to
    /// `HERALD_SHUTDOWN_TIMEOUT` and closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Application { listener, state } = self;
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
        let _ = stop_workers.send(true);
        if let Some(alerts) = alerts {
            let _ = alerts.await;
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

/// What [`open_secrets`] does when there is no key yet (no `HERALD_SECRET_KEY`, no key file) and the
/// database holds nothing sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKey {
    /// Create the data dir's key file and make it the installation's key (serve; commands that store
    /// a secret).
    Persist,
    /// Use a throwaway key and write nothing: a command that only reads has nothing to decrypt, and
    /// must not tie the database to a key file that happens to be beside it.
    Ephemeral,
}

/// The key that seals stored credentials, checked against the database. `serve` and every command
/// that reads or writes secrets come through here, so they follow one rule: a new key is made only
/// while the database holds nothing sealed (otherwise another key sealed it, and a new one would
/// write credentials no server can read); an existing key must open the database's key check value,
/// or this stops with [`StartupError::SecretKeyMismatch`].
pub async fn open_secrets(settings: &Settings, store: &Store, new_key: NewKey) -> Result<SecretBox, StartupError> {
    let secrets = match SecretBox::load_existing(settings.database.secret_key.as_ref(), &settings.database.data_dir)? {
        Some(secrets) => secrets,
        None if store.holds_sealed_secrets().await? => return Err(StartupError::SecretKeyMismatch),
        None if new_key == NewKey::Ephemeral => return Ok(SecretBox::generate()),
        None => SecretBox::create(&settings.database.data_dir)?,
    };
    check_secret_key(store, &secrets).await?;
    Ok(secrets)
}

/// Stops a node whose secrets key differs from the one the database's secrets were sealed with: it
/// could read none of them, and would write secrets that no other node can read.
async fn check_secret_key(store: &Store, secrets: &SecretBox) -> Result<(), StartupError> {
    const CONTEXT: &str = "herald:secret-key-check";
    let stored = store
        .meta_insert_or_get(SECRET_KEY_CHECK, &secrets.seal(CONTEXT, "herald"))
        .await?;
    secrets
        .open(CONTEXT, &stored)
        .map(|_| ())
        .map_err(|_| StartupError::SecretKeyMismatch)
}

/// Cluster mode is on when `HERALD_CLUSTER=true` and the database is PostgreSQL; asking for it on
/// SQLite is a start-up error (an embedded database cannot be shared).
async fn join_cluster(settings: &Settings, store: &Store, node_id: &NodeId) -> Result<Cluster, StartupError> {
    if settings.cluster.enabled && !settings.database.uses_postgres() {
        return Err(StartupError::Cluster(
            "HERALD_CLUSTER=true needs a PostgreSQL database (HERALD_DATABASE_URL=postgres://…); \
             SQLite runs a single node"
                .to_owned(),
        ));
    }
    let cluster = Cluster::new(
        store.clone(),
        node_id.clone(),
        settings.cluster.clone(),
        settings.database.url.clone(),
    );
    cluster.claim_identity().await.map_err(StartupError::Cluster)?;
    if let Err(e) = cluster.heartbeat_once().await {
        tracing::warn!(error = %e, "cannot publish the node's first heartbeat");
    }
    Ok(cluster)
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
