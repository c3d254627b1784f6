//! Where an event goes: its integration's Jira, spoken to in the right API, through the one limiter
//! of that integration.
//!
//! A [`Target`] is built once per integration revision (editing an integration makes the next event
//! build a new one). Which API to speak is settled here: Cloud (v3, ADF) or Data Center (v2, wiki
//! markup) as the integration says, and for `auto` as its check found (served from the check's cache;
//! a host under `atlassian.net` is Cloud without asking). The limiter is kept per integration name,
//! across revisions, so that a pause Jira asked for outlives an edit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::failure::Failure;
use crate::integrations::{InstallationType, Integration, IntegrationError, Integrations};
use crate::jira::{ApiFlavor, Limiter, LimiterSettings, TicketClient, TicketClientSettings};
use crate::tickets::{BodyFormat, TicketSettings};

/// One integration, ready to receive events.
pub(super) struct Target {
    pub integration: Integration,
    pub tickets: TicketSettings,
    pub client: TicketClient,
}

impl Target {
    pub fn format(&self) -> BodyFormat {
        match self.client.flavor() {
            ApiFlavor::Cloud => BodyFormat::Adf,
            ApiFlavor::DataCenter => BodyFormat::Wiki,
        }
    }
}

/// The targets of this node, by integration.
pub(super) struct Targets {
    integrations: Integrations,
    limiter: LimiterSettings,
    client: TicketClientSettings,
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    built: Mutex<HashMap<String, Arc<Target>>>,
}

/// At most this many integrations' targets are kept; beyond, the cache starts again.
const MAX_CACHED: usize = 1024;

impl Targets {
    pub fn new(integrations: Integrations, limiter: LimiterSettings, client: TicketClientSettings) -> Self {
        Self {
            integrations,
            limiter,
            client,
            limiters: Mutex::new(HashMap::new()),
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The integration's target as it is configured now. An integration deleted or with tickets
    /// turned off parks the event; one whose Jira kind cannot be told yet is tried again later.
    pub async fn get(&self, name: &str) -> Result<Arc<Target>, Failure> {
        let integration = match self.integrations.get(name).await {
            Ok(integration) => integration,
            Err(IntegrationError::NotFound(_)) => {
                return Err(Failure::parked(
                    "integration_missing",
                    format!("the integration `{name}` no longer exists"),
                ));
            }
            Err(e) => return Err(Failure::later("integration_unreadable", e.to_string())),
        };
        if let Some(target) = self.cached(name, integration.revision) {
            return Ok(target);
        }
        let tickets = match integration.settings.tickets.as_deref() {
            Some(t) if t.enabled => t.clone(),
            _ => {
                return Err(Failure::parked(
                    "tickets_disabled",
                    format!("the integration `{name}` does not have tickets enabled (`tickets.enabled`)"),
                ));
            }
        };
        let flavor = self.flavor(&integration).await?;
        let jira = self
            .integrations
            .jira_client(&integration.settings)
            .map_err(|e| Failure::parked("integration_unusable", e))?;
        let client = TicketClient::new(jira, flavor, self.limiter(name), self.client);
        let target = Arc::new(Target {
            integration,
            tickets,
            client,
        });
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if built.len() >= MAX_CACHED {
            built.clear();
        }
        built.insert(name.to_owned(), target.clone());
        Ok(target)
    }

    fn cached(&self, name: &str, revision: i64) -> Option<Arc<Target>> {
        let built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        built.get(name).filter(|t| t.integration.revision == revision).cloned()
    }

    fn limiter(&self, name: &str) -> Arc<Limiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        if limiters.len() >= MAX_CACHED && !limiters.contains_key(name) {
            limiters.clear();
        }
        limiters
            .entry(name.to_owned())
            .or_insert_with(|| Limiter::new(self.limiter))
            .clone()
    }

    async fn flavor(&self, integration: &Integration) -> Result<ApiFlavor, Failure> {
        match integration.settings.installation_type {
            InstallationType::Cloud => return Ok(ApiFlavor::Cloud),
            InstallationType::Server => return Ok(ApiFlavor::DataCenter),
            InstallationType::Auto => {}
        }
        let host = integration
            .settings
            .url
            .host()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host.ends_with(".atlassian.net") {
            return Ok(ApiFlavor::Cloud);
        }
        let verdict = self
            .integrations
            .status(integration.name.as_str())
            .await
            .map_err(|e| Failure::later("integration_unreadable", e.to_string()))?;
        match verdict.report.deployment_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("cloud") => Ok(ApiFlavor::Cloud),
            Some(_) => Ok(ApiFlavor::DataCenter),
            None => Err(Failure::later(
                "jira_kind_unknown",
                format!(
                    "cannot tell whether Jira is Cloud or Data Center (installation_type `auto`), since its check \
                     did not reach it: {}",
                    verdict.report.reason
                ),
            )),
        }
    }
}
