//! Ticketing integrations: the model, their storage with encrypted secrets, the check, the result
//! cache with request coalescing, the history and the periodic sweep.

pub mod checker;
pub mod model;
mod saving;
mod spec_schema;
mod status;
mod sweep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

pub use checker::{CheckReport, HEALTHY_REASON, Step, StepOutcome, StepReport, UNREACHABLE};
pub use model::{
    Auth, AuthSpec, InstallationType, Integration, IntegrationName, IntegrationSettings, IntegrationSpec,
    InvalidIntegration, WHITE_SPACE_CLASS,
};
pub use saving::{Change, Saved, UNTIL_DONE, Verified};
pub use status::Verdict;
pub use sweep::{SweepShare, SweepSummary};

use crate::error_kind::{Classified, ErrorKind};
use crate::jira::{ClientOptions, JiraClient};
use crate::metrics::Metrics;
use crate::secret::{SecretBox, SecretsError};
use crate::store::{CheckRecord, LatestCheck, Store, StoreError, StoredIntegration};

/// How many results per integration the history keeps.
pub const HISTORY_LENGTH: i64 = 50;

/// What can go wrong managing or checking integrations, in domain words.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("no integration named `{0}`")]
    NotFound(String),
    #[error("an integration named `{0}` already exists")]
    AlreadyExists(String),
    #[error(transparent)]
    Invalid(#[from] InvalidIntegration),
    #[error("integration `{name}`: {source}")]
    Secrets { name: String, source: SecretsError },
    #[error("integration `{name}` is stored in a form this Herald cannot read: {detail}")]
    Corrupt { name: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the integration failed (the cause was logged where it happened).
    #[error("the integration cannot be read: {0}")]
    Unreadable(String),
}

impl From<model::InvalidIntegrationName> for IntegrationError {
    fn from(e: model::InvalidIntegrationName) -> Self {
        IntegrationError::Invalid(e.into())
    }
}

impl Classified for IntegrationError {
    fn kind(&self) -> ErrorKind {
        match self {
            IntegrationError::NotFound(_) => ErrorKind::NotFound,
            IntegrationError::AlreadyExists(_) => ErrorKind::Conflict,
            IntegrationError::Invalid(invalid) => invalid.kind(),
            // Secrets that do not decrypt and rows that do not parse stay so until an operator acts.
            IntegrationError::Secrets { source, .. } => source.kind(),
            IntegrationError::Corrupt { .. } | IntegrationError::Unreadable(_) => ErrorKind::Internal,
            IntegrationError::Store(e) => e.kind(),
        }
    }

    fn public_detail(&self) -> String {
        match self {
            IntegrationError::Store(e) => e.public_detail(),
            other => other.to_string(),
        }
    }
}

impl Classified for InvalidIntegration {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid {
            field: self.field.clone(),
        }
    }
}

/// The integrations service. Cheap to clone.
#[derive(Clone)]
pub struct Integrations {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: SecretBox,
    metrics: Arc<Metrics>,
    max_age: Duration,
    interval: Duration,
    concurrency: usize,
    default_timeout: Duration,
    /// Integrations as last read, so a cached status costs no database round trip.
    records: moka::future::Cache<String, Arc<Integration>>,
    /// Verdicts by (name, revision): an update makes a new key, so a stale verdict is never served.
    results: moka::future::Cache<(String, i64), Arc<Verdict>>,
    clients: Mutex<HashMap<ClientOptions, reqwest::Client>>,
    /// Last verdict per integration (healthy or not, and the reason), for change logs and the gauge.
    last_healthy: Mutex<HashMap<String, (bool, String)>>,
    history: mpsc::Sender<sweep::HistoryMessage>,
    /// When this node's last sweep finished (ms since the epoch), and what it found.
    last_sweep: Mutex<Option<(i64, SweepSummary)>>,
    /// A batch of checks asked for by an admin is running (one at a time).
    batch_running: std::sync::atomic::AtomicBool,
}

/// The checks section of the settings.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// How long a check result is served from the cache before Jira is asked again.
    pub max_age: Duration,
    /// How often the background sweep re-verifies every integration.
    pub interval: Duration,
    /// How many integrations the sweep checks at once.
    pub concurrency: usize,
    /// The default overall budget of one check (an integration's own `timeout` overrides it).
    pub timeout: Duration,
}

/// The non-secret part of an integration as stored in the `config` column.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredConfig {
    spec: IntegrationSpec,
}

impl Integrations {
    /// Builds the service and starts its history writer (needs a Tokio runtime).
    pub fn new(store: Store, secrets: SecretBox, metrics: Arc<Metrics>, settings: &CheckSettings) -> Self {
        let (history, receiver) = mpsc::channel(4096);
        tokio::spawn(sweep::write_history(store.clone(), receiver));
        let ttl = settings.max_age;
        Self {
            inner: Arc::new(Inner {
                store,
                secrets,
                metrics,
                max_age: ttl,
                interval: settings.interval,
                concurrency: settings.concurrency,
                default_timeout: settings.timeout,
                records: moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build(),
                results: moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .support_invalidation_closures()
                    .build(),
                clients: Mutex::new(HashMap::new()),
                last_healthy: Mutex::new(HashMap::new()),
                history,
                last_sweep: Mutex::new(None),
                batch_running: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    pub fn max_age(&self) -> Duration {
        self.inner.max_age
    }

    /// One integration, read from the database.
    pub async fn get(&self, name: &str) -> Result<Integration, IntegrationError> {
        let stored = self
            .inner
            .store
            .integration(name)
            .await?
            .ok_or_else(|| IntegrationError::NotFound(name.to_owned()))?;
        self.open(stored)
    }

    pub async fn list(&self) -> Result<Vec<Integration>, IntegrationError> {
        let rows = self.inner.store.list_integrations().await?;
        rows.into_iter().map(|row| self.open(row)).collect()
    }

    pub async fn delete(&self, name: &str) -> Result<(), IntegrationError> {
        if !self.inner.store.delete_integration(name).await? {
            return Err(IntegrationError::NotFound(name.to_owned()));
        }
        self.inner.records.invalidate(name).await;
        self.forget(name);
        tracing::info!(integration = %name, "integration deleted");
        Ok(())
    }

    /// When this node's last sweep finished, and its summary.
    pub fn last_sweep(&self) -> Option<(i64, SweepSummary)> {
        self.inner.last_sweep.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every integration, by name, with its settings (no secret, not decrypted) and its newest check
    /// cluster-wide (this node's pending results included): one query, for listing many at once.
    pub async fn list_with_latest_checks(&self) -> Result<Vec<(IntegrationSpec, LatestCheck)>, IntegrationError> {
        self.flush_history().await;
        let rows = self.inner.store.latest_integration_checks().await?;
        rows.into_iter()
            .map(|row| {
                let stored: StoredConfig =
                    serde_json::from_str(&row.config).map_err(|e| IntegrationError::Corrupt {
                        name: row.name.clone(),
                        detail: e.to_string(),
                    })?;
                Ok((stored.spec, row))
            })
            .collect()
    }

    /// The newest results of one integration, newest first (this node's pending results included).
    pub async fn history(&self, name: &str, limit: i64) -> Result<Vec<CheckRecord>, IntegrationError> {
        self.get(name).await?;
        self.flush_history().await;
        Ok(self
            .inner
            .store
            .check_history(name, limit.clamp(1, HISTORY_LENGTH))
            .await?)
    }

    fn seal(
        &self,
        name: &IntegrationName,
        settings: &IntegrationSettings,
    ) -> Result<(String, String), IntegrationError> {
        let config = serde_json::to_string(&StoredConfig {
            spec: settings.to_spec(),
        })
        .map_err(|e| IntegrationError::Corrupt {
            name: name.to_string(),
            detail: e.to_string(),
        })?;
        let secret = self
            .inner
            .secrets
            .seal(&secret_context(name.as_str()), settings.auth.secret().expose());
        Ok((config, secret))
    }

    fn open(&self, row: StoredIntegration) -> Result<Integration, IntegrationError> {
        let corrupt = |detail: String| IntegrationError::Corrupt {
            name: row.name.clone(),
            detail,
        };
        let name = IntegrationName::try_from(row.name.as_str()).map_err(|e| corrupt(e.to_string()))?;
        let stored: StoredConfig = serde_json::from_str(&row.config).map_err(|e| corrupt(e.to_string()))?;
        let secret = self
            .inner
            .secrets
            .open(&secret_context(&row.name), &row.secret)
            .map_err(|source| IntegrationError::Secrets {
                name: row.name.clone(),
                source,
            })?;
        let mut spec = stored.spec;
        match &mut spec.auth {
            AuthSpec::Basic { password, .. } => *password = Some(secret),
            AuthSpec::Bearer { token } => *token = Some(secret),
        }
        let settings = spec.validate(None).map_err(|e| corrupt(e.to_string()))?;
        Ok(Integration {
            name,
            settings,
            revision: row.revision,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// The HTTP client for these settings, shared by every integration with the same TLS and proxy needs.
    /// A client for the integration's Jira (its TLS and proxy settings, its credentials), sharing the
    /// connection pools of the checks.
    pub fn jira_client(&self, settings: &IntegrationSettings) -> Result<JiraClient, String> {
        let http = self.client_for(settings)?;
        Ok(JiraClient::new(http, settings.url.clone(), settings.auth.clone()))
    }

    fn client_for(&self, settings: &IntegrationSettings) -> Result<reqwest::Client, String> {
        let options = ClientOptions {
            ca_cert_pem: settings.ca_cert_pem.clone(),
            direct: settings.skip_proxy || settings.url.is_loopback(),
        };
        let mut clients = self.inner.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&options) {
            return Ok(client.clone());
        }
        let client = crate::jira::build_client(&options)?;
        if clients.len() >= 256 {
            clients.clear();
        }
        clients.insert(options, client.clone());
        Ok(client)
    }
}

/// Associated data binding a sealed secret to its integration.
fn secret_context(name: &str) -> String {
    format!("herald:integration:{name}")
}

fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match patch {
        serde_json::Value::Object(entries) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(Default::default());
            }
            if let serde_json::Value::Object(map) = target {
                for (key, value) in entries {
                    if value.is_null() {
                        map.remove(key);
                    } else {
                        merge_patch(map.entry(key.clone()).or_insert(serde_json::Value::Null), value);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_errors_say_their_kind() {
        let invalid = InvalidIntegration::new("url", "must be http or https");
        let named = |n: &str| n.to_owned();
        for (err, kind) in [
            (IntegrationError::NotFound(named("jira")), ErrorKind::NotFound),
            (IntegrationError::AlreadyExists(named("jira")), ErrorKind::Conflict),
            (
                IntegrationError::Invalid(invalid.clone()),
                ErrorKind::Invalid { field: "url".into() },
            ),
            (
                IntegrationError::Secrets {
                    name: named("jira"),
                    source: SecretsError::Undecryptable,
                },
                ErrorKind::Internal,
            ),
            (
                IntegrationError::Corrupt {
                    name: named("jira"),
                    detail: "expected value".into(),
                },
                ErrorKind::Internal,
            ),
            (IntegrationError::Unreadable("shared".into()), ErrorKind::Internal),
            (
                IntegrationError::Store(StoreError::Unavailable(sqlx::Error::PoolClosed)),
                ErrorKind::Unavailable,
            ),
            (
                IntegrationError::Store(StoreError::Corrupt("config".into())),
                ErrorKind::Internal,
            ),
        ] {
            assert_eq!(err.kind(), kind, "{err}");
        }
        assert_eq!(
            IntegrationError::Invalid(invalid).public_detail(),
            "`url` must be http or https"
        );
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut doc, &serde_json::json!({"a": null, "b": {"c": 9}, "e": [1]}));
        assert_eq!(doc, serde_json::json!({"b": {"c": 9, "d": 3}, "e": [1]}));
    }
}
