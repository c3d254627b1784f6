//! Opening the services of one installation: the data dir, the database and its migrations, the
//! secrets key checked against the database, the node id, and every service on top of them.
//!
//! `serve` and every command of the command line open their services here, through
//! [`Services::open`], so they all run the same start-up checks and stop with the same one-line
//! errors: a command cannot, say, seal a credential with a key the server does not have. What only a
//! serving node does (the bootstrap admin, claiming the node id in the cluster, the listener, the
//! background loops) is `app`'s, on top of what this returns.

use std::path::Path;
use std::sync::Arc;

use crate::alerts::Alerts;
use crate::auth::{Accounts, Authenticator, PasswordHashing, Throttle};
use crate::clock::{self, SharedClock};
use crate::cluster::{Cluster, NodeId};
use crate::config::Settings;
use crate::integrations::Integrations;
use crate::mail::{Delivery, MailQueue};
use crate::metrics::Metrics;
use crate::secret::{SecretBox, SecretsError};
use crate::store::{ConnectOptions, SECRET_KEY_CHECK, Store, StoreError};
use crate::supervisor::Supervisor;
use crate::ticket_delivery::TicketDelivery;
use crate::tickets::TicketEvents;

/// Why Herald could not start. Each message is one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("the data directory {path} is not usable: {reason}")]
    DataDir { path: String, reason: String },
    #[error("{0}")]
    Database(#[from] StoreError),
    #[error(transparent)]
    Bootstrap(#[from] crate::auth::BootstrapError),
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
    Listen { addr: std::net::SocketAddr, reason: String },
    #[error("SMTP submission: {0}")]
    Submission(String),
    #[error("{0}")]
    Secrets(#[from] SecretsError),
}

/// The services of one node (or of one command), opened once.
pub struct Services {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub authenticator: Authenticator,
    pub accounts: Accounts,
    pub metrics: Arc<Metrics>,
    pub node_id: NodeId,
    pub mail: MailQueue,
    /// Accepts ticket events durably (group commit).
    pub tickets: TicketEvents,
    /// Applies accepted ticket events to Jira (also when the background worker is off).
    pub ticket_delivery: TicketDelivery,
    /// The delivery engine (also when the background workers are off, so tools can drive it).
    pub delivery: Delivery,
    pub cluster: Cluster,
    pub integrations: Integrations,
    /// Health alerts mailed through the queue.
    pub alerts: Alerts,
    /// The clock of time-driven rules (alerts); everything else reads the system clock.
    pub clock: SharedClock,
    /// Watches the background loops (metrics, alerts).
    pub supervisor: Supervisor,
}

impl Services {
    /// Opens everything `settings` describe, with the system clock. `new_key` says what to do when
    /// there is no secrets key yet (see [`NewKey`]).
    pub async fn open(settings: &Settings, new_key: NewKey) -> Result<Services, StartupError> {
        Self::open_with_clock(settings, new_key, clock::system()).await
    }

    /// Like [`Services::open`], with the clock the alert rules read (tests move it by hand).
    pub async fn open_with_clock(
        settings: &Settings,
        new_key: NewKey,
        clock: SharedClock,
    ) -> Result<Services, StartupError> {
        let store = open_store(settings).await?;
        let metrics = Arc::new(Metrics::new());
        let hashing = password_hashing();
        let authenticator = Authenticator::new(
            store.clone(),
            hashing.clone(),
            settings.auth.cache_ttl,
            Throttle::new(settings.auth.max_failures, settings.auth.lockout),
            metrics.clone(),
        );
        let accounts = Accounts::new(store.clone(), hashing, authenticator.clone())
            .with_initial_password_in(&settings.database.data_dir);
        let node_id = NodeId::load_or_create(settings.cluster.node_id.as_ref(), &settings.database.data_dir)
            .map_err(StartupError::NodeId)?;
        let mail = MailQueue::start(store.clone(), node_id.clone(), metrics.clone());
        let tickets = TicketEvents::start(store.clone(), node_id.clone(), metrics.clone());
        let delivery = Delivery::new(
            &settings.mail,
            store.clone(),
            node_id.clone(),
            mail.wake.clone(),
            metrics.clone(),
        )
        .map_err(StartupError::Smtp)?;
        let cluster = cluster(settings, &store, &node_id)?;
        let secrets = open_secrets(settings, &store, new_key).await?;
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
        let ticket_delivery = TicketDelivery::new(
            &settings.tickets,
            store.clone(),
            integrations.clone(),
            &node_id,
            tickets.wake.clone(),
            metrics.clone(),
        );
        Ok(Services {
            settings: Arc::new(settings.clone()),
            store,
            authenticator,
            accounts,
            metrics,
            node_id,
            mail,
            tickets,
            ticket_delivery,
            delivery,
            cluster,
            integrations,
            alerts,
            clock,
            supervisor,
        })
    }

    /// Writes what is still buffered (check history) and closes the database: the end of a command.
    pub async fn close(&self) {
        self.integrations.flush_history().await;
        self.store.close().await;
    }
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

/// What [`open_secrets`] does when there is no key yet (no `HERALD_SECRET_KEY`, no key file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKey {
    /// While the database holds nothing sealed, create the data dir's key file and make it the
    /// installation's key (serve; commands that store a secret).
    Persist,
    /// While the database holds nothing sealed, use a throwaway key and write nothing: a command
    /// that only reads has nothing to decrypt, and must not tie the database to a key file that
    /// happens to be beside it.
    Ephemeral,
    /// The command seals and opens no secret (users, tokens, mail, cluster, migrate): with no key
    /// there is nothing to check, whatever the database holds, and a throwaway key stands in (such
    /// a command never reaches the integrations). A key that is there is still checked.
    Unused,
}

/// The key that seals stored credentials, checked against the database. A new key is made only
/// while the database holds nothing sealed (otherwise another key sealed it, and a new one would
/// write credentials no server can read); an existing key must open the database's key check value,
/// or this stops with [`StartupError::SecretKeyMismatch`].
pub async fn open_secrets(settings: &Settings, store: &Store, new_key: NewKey) -> Result<SecretBox, StartupError> {
    let secrets = match SecretBox::load_existing(settings.database.secret_key.as_ref(), &settings.database.data_dir)? {
        Some(secrets) => secrets,
        None if new_key == NewKey::Unused => return Ok(SecretBox::generate()),
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

/// This node's membership, not yet claimed (a serving node claims its id; a command never does).
/// Cluster mode is on when `HERALD_CLUSTER=true` and the database is PostgreSQL; asking for it on
/// SQLite is a start-up error (an embedded database cannot be shared).
fn cluster(settings: &Settings, store: &Store, node_id: &NodeId) -> Result<Cluster, StartupError> {
    if settings.cluster.enabled && !settings.database.uses_postgres() {
        return Err(StartupError::Cluster(
            "HERALD_CLUSTER=true needs a PostgreSQL database (HERALD_DATABASE_URL=postgres://…); \
             SQLite runs a single node"
                .to_owned(),
        ));
    }
    Ok(Cluster::new(
        store.clone(),
        node_id.clone(),
        settings.cluster.clone(),
        settings.database.url.clone(),
    ))
}
