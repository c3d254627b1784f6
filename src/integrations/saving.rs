//! Saving an integration, and the check that goes with a save.
//!
//! Every face saves through here: the REST API, the console and the command line save and then check
//! ([`Integrations::save_and_check`]), each waiting for the verdict as long as its caller can (a
//! console request cannot outlast `HERALD_REQUEST_TIMEOUT`, so a slow Jira's check goes on in the
//! background there); the Xray-compatible routes check first and save only a connection that works
//! ([`Integrations::verify_and_save`]), as Xray does.

use std::sync::Arc;
use std::time::Duration;

use super::{
    CheckReport, Integration, IntegrationError, IntegrationName, IntegrationSettings, IntegrationSpec, Integrations,
    InvalidIntegration, Step, Verdict, merge_patch,
};
use crate::store::{StoreError, now_ms};

/// A change to save.
pub enum Change {
    /// A new integration; the spec names it.
    Create(IntegrationSpec),
    /// New settings for `name`; secrets omitted from `spec` are kept.
    Replace { name: String, spec: IntegrationSpec },
    /// A JSON merge patch (RFC 7396) of `name`'s settings.
    Patch { name: String, patch: serde_json::Value },
}

/// The check that followed a save.
#[derive(Debug)]
pub enum Saved {
    /// The check finished within the wait: its verdict.
    Checked(Arc<Verdict>),
    /// Jira is slower than the wait: the check goes on in the background and records its verdict.
    StillRunning,
    /// The saved integration could not be checked (deleted meanwhile, the database failed).
    NotChecked(IntegrationError),
    /// The check stopped unexpectedly (the log says why).
    CheckStopped,
}

/// What [`Integrations::verify_and_save`] did.
#[derive(Debug)]
pub enum Verified {
    Saved(Integration),
    /// Jira cannot be reached or refused the credentials: nothing was saved. The report says why.
    Refused(CheckReport),
}

/// A wait for [`Integrations::save_and_check`] that lasts as long as the check does (which keeps to
/// the integration's own budget); the check then runs in the caller's task.
pub const UNTIL_DONE: Duration = Duration::MAX;

/// A validated change, ready to be stored.
struct Prepared {
    name: IntegrationName,
    settings: IntegrationSettings,
    new: bool,
}

impl Integrations {
    /// Registers a new integration.
    pub async fn create(&self, spec: IntegrationSpec) -> Result<Integration, IntegrationError> {
        self.save(Change::Create(spec)).await
    }

    /// Replaces an integration's settings; secrets omitted from `spec` are kept.
    pub async fn replace(&self, name: &str, spec: IntegrationSpec) -> Result<Integration, IntegrationError> {
        let name = name.to_owned();
        self.save(Change::Replace { name, spec }).await
    }

    /// Applies a JSON merge patch (RFC 7396) to an integration's settings.
    pub async fn patch(&self, name: &str, patch: serde_json::Value) -> Result<Integration, IntegrationError> {
        let name = name.to_owned();
        self.save(Change::Patch { name, patch }).await
    }

    /// Saves a change, without checking it.
    pub async fn save(&self, change: Change) -> Result<Integration, IntegrationError> {
        let prepared = self.prepare(change).await?;
        self.store_prepared(prepared).await
    }

    /// Saves a change, then checks the saved integration against Jira, waiting for the verdict up to
    /// `wait` ([`UNTIL_DONE`]: as long as the check takes). A check that outlasts the wait goes on
    /// in the background and records its verdict. An error is a save that failed.
    pub async fn save_and_check(
        &self,
        change: Change,
        wait: Duration,
    ) -> Result<(Integration, Saved), IntegrationError> {
        let integration = self.save(change).await?;
        let check = self.check_within(integration.name.as_str(), wait).await;
        Ok((integration, check))
    }

    /// Checks an integration now, waiting for the verdict up to `wait` ([`UNTIL_DONE`]: as long as
    /// the check takes); a check that outlasts the wait goes on and records its verdict.
    pub async fn check_within(&self, name: &str, wait: Duration) -> Saved {
        if wait == UNTIL_DONE {
            return match self.check_now(name).await {
                Ok(verdict) => Saved::Checked(verdict),
                Err(e) => Saved::NotChecked(e),
            };
        }
        let this = self.clone();
        let owned = name.to_owned();
        let check = tokio::spawn(async move { this.check_now(&owned).await });
        match tokio::time::timeout(wait, check).await {
            Ok(Ok(Ok(verdict))) => Saved::Checked(verdict),
            Ok(Ok(Err(e))) => Saved::NotChecked(e),
            Ok(Err(e)) => {
                tracing::error!(integration = name, error = %e, "the check task failed");
                Saved::CheckStopped
            }
            Err(_) => Saved::StillRunning,
        }
    }

    /// Checks the settings of a change before saving it, and saves only when Jira can be reached
    /// and accepts the credentials (other faults, such as a missing project, do not stop the save).
    /// A new name already taken is refused before Jira is asked.
    pub async fn verify_and_save(&self, change: Change) -> Result<Verified, IntegrationError> {
        if let Change::Create(spec) = &change {
            let name = IntegrationName::try_from(spec.name.as_deref().unwrap_or(""))?;
            spec.clone().validate(None)?;
            // Checked before Jira is asked; a database that cannot say is an error, not a free name.
            match self.get(name.as_str()).await {
                Ok(_) => return Err(IntegrationError::AlreadyExists(name.to_string())),
                Err(IntegrationError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let prepared = self.prepare(change).await?;
        let report = self.check_settings(&prepared.settings).await;
        if matches!(report.failed_step, Some(Step::Connectivity | Step::Authentication)) {
            return Ok(Verified::Refused(report));
        }
        Ok(Verified::Saved(self.store_prepared(prepared).await?))
    }

    /// Validates a change against what is stored.
    async fn prepare(&self, change: Change) -> Result<Prepared, IntegrationError> {
        match change {
            Change::Create(spec) => {
                let name = IntegrationName::try_from(spec.name.as_deref().unwrap_or(""))?;
                let settings = spec.validate(None)?;
                Ok(Prepared {
                    name,
                    settings,
                    new: true,
                })
            }
            Change::Replace { name, spec } => {
                if spec.name.as_deref().is_some_and(|n| n != name) {
                    return Err(InvalidIntegration::new(
                        "name",
                        "must match the name in the path (integrations cannot be renamed)",
                    )
                    .into());
                }
                let current = self.get(&name).await?;
                let settings = spec.validate(Some(&current.settings))?;
                Ok(Prepared {
                    name: current.name,
                    settings,
                    new: false,
                })
            }
            Change::Patch { name, patch } => {
                let current = self.get(&name).await?;
                let corrupt = |detail: String| IntegrationError::Corrupt {
                    name: name.clone(),
                    detail,
                };
                let mut doc = serde_json::to_value(current.settings.to_spec()).map_err(|e| corrupt(e.to_string()))?;
                // A different auth type replaces the auth object rather than merging into it.
                if let (Some(new_auth), Some(old_auth)) = (patch.get("auth"), doc.get("auth")) {
                    if new_auth.get("type").is_some_and(|t| Some(t) != old_auth.get("type")) {
                        doc["auth"] = serde_json::Value::Null;
                    }
                }
                merge_patch(&mut doc, &patch);
                let spec: IntegrationSpec = serde_path_to_error::deserialize(&doc).map_err(|e| {
                    let field = e.path().to_string();
                    IntegrationError::Invalid(InvalidIntegration::new(&field, &format!("is not valid: {}", e.inner())))
                })?;
                if spec.name.as_deref().is_some_and(|n| n != name) {
                    return Err(
                        InvalidIntegration::new("name", "cannot be changed (integrations cannot be renamed)").into(),
                    );
                }
                let settings = spec.validate(Some(&current.settings))?;
                Ok(Prepared {
                    name: current.name,
                    settings,
                    new: false,
                })
            }
        }
    }

    async fn store_prepared(&self, prepared: Prepared) -> Result<Integration, IntegrationError> {
        let Prepared { name, settings, new } = prepared;
        let (config, secret) = self.seal(&name, &settings)?;
        let store = &self.inner.store;
        let stored = if new {
            let stored = store
                .insert_integration(name.as_str(), &config, &secret, now_ms())
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => IntegrationError::AlreadyExists(name.to_string()),
                    other => other.into(),
                })?;
            tracing::info!(integration = %name, url = %settings.url.as_str(), "integration created");
            stored
        } else {
            let stored = store
                .update_integration(name.as_str(), &config, &secret, now_ms())
                .await?
                .ok_or_else(|| IntegrationError::NotFound(name.to_string()))?;
            tracing::info!(integration = %name, revision = stored.revision, "integration updated");
            stored
        };
        self.inner.records.invalidate(name.as_str()).await;
        self.open(stored)
    }
}
