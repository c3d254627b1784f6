//! Verdicts: cached per integration revision for `HERALD_CHECK_MAX_AGE`, with concurrent requests for
//! the same integration sharing one run of the check (moka's `get_with` coalesces initialisations).

use std::sync::Arc;
use std::time::Duration;

use super::checker::{self, CheckReport};
use super::model::{Integration, IntegrationSettings};
use super::sweep::HistoryMessage;
use super::{IntegrationError, Integrations};
use crate::jira::JiraClient;
use crate::store::{CheckRecord, now_ms};

/// A check result and when it was verified.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub integration_name: String,
    pub revision: i64,
    pub report: CheckReport,
    /// Milliseconds since the epoch at which the check finished.
    pub verified_at: i64,
}

impl Verdict {
    pub fn status(&self) -> &'static str {
        if self.report.healthy {
            "HEALTHY_INTEGRATION"
        } else {
            "FAULTY_CONFIGURATION"
        }
    }
}

impl Integrations {
    /// The integration's verdict: cached if younger than the max age, otherwise checked now (once, however
    /// many callers ask at the same time).
    pub async fn status(&self, name: &str) -> Result<Arc<Verdict>, IntegrationError> {
        let integration = self.record_for_status(name).await?;
        let key = (integration.name.to_string(), integration.revision);
        let this = self.clone();
        Ok(self
            .inner
            .results
            .get_with(key, async move { this.run_check(&integration).await })
            .await)
    }

    /// The integration from the short-lived record cache, or the database; concurrent misses share one read.
    /// Shared errors lose their type: anything but "not found" becomes `Unreadable`.
    async fn record_for_status(&self, name: &str) -> Result<Arc<Integration>, IntegrationError> {
        let this = self.clone();
        let key = name.to_owned();
        self.inner
            .records
            .try_get_with(key.clone(), async move { this.get(&key).await.map(Arc::new) })
            .await
            .map_err(|shared| match &*shared {
                IntegrationError::NotFound(n) => IntegrationError::NotFound(n.clone()),
                other => IntegrationError::Unreadable(other.to_string()),
            })
    }

    /// A fresh verdict, whatever the cache holds; joins a check of the same revision already running.
    pub async fn check_now(&self, name: &str) -> Result<Arc<Verdict>, IntegrationError> {
        let integration = Arc::new(self.get(name).await?);
        self.inner.records.insert(name.to_owned(), integration.clone()).await;
        Ok(self.check_fresh(integration).await)
    }

    pub(super) async fn check_fresh(&self, integration: Arc<Integration>) -> Arc<Verdict> {
        let key = (integration.name.to_string(), integration.revision);
        self.inner.results.invalidate(&key).await;
        let this = self.clone();
        self.inner
            .results
            .get_with(key, async move { this.run_check(&integration).await })
            .await
    }

    /// The cached verdict, if any, without checking.
    pub async fn cached(&self, integration: &Integration) -> Option<Arc<Verdict>> {
        self.inner
            .results
            .get(&(integration.name.to_string(), integration.revision))
            .await
    }

    /// Checks settings that are not stored (yet): used to verify before saving.
    pub async fn check_settings(&self, settings: &IntegrationSettings) -> CheckReport {
        self.run_report(settings).await
    }

    async fn run_report(&self, settings: &IntegrationSettings) -> CheckReport {
        let budget = settings.timeout.unwrap_or(self.inner.default_timeout);
        let client = match self.client_for(settings) {
            Ok(client) => client,
            Err(detail) => return setup_failure(detail),
        };
        let jira = JiraClient::new(client, settings.url.clone(), settings.auth.clone());
        // The checker keeps to the budget itself; this is the backstop.
        match tokio::time::timeout(
            budget + Duration::from_secs(1),
            checker::check_integration(&jira, settings, budget),
        )
        .await
        {
            Ok(report) => report,
            Err(_) => setup_failure(format!("no verdict within {}", humantime::format_duration(budget))),
        }
    }

    async fn run_check(&self, integration: &Integration) -> Arc<Verdict> {
        let report = self.run_report(&integration.settings).await;
        let verdict = Arc::new(Verdict {
            integration_name: integration.name.to_string(),
            revision: integration.revision,
            report,
            verified_at: now_ms(),
        });
        self.observe(&verdict).await;
        verdict
    }

    /// Metrics, transition log and history for one verdict.
    async fn observe(&self, verdict: &Verdict) {
        let name = &verdict.integration_name;
        let healthy = verdict.report.healthy;
        self.inner
            .metrics
            .integration_checked(name, healthy, verdict.report.duration);
        let previous = {
            let mut last = self.inner.last_healthy.lock().unwrap_or_else(|e| e.into_inner());
            last.insert(name.clone(), (healthy, verdict.report.reason.clone()))
        };
        // Every change of verdict is logged: of status, and of reason while faulty (one fault
        // replaced by another is news to whoever fixes it).
        let from = match &previous {
            Some((true, _)) => "HEALTHY_INTEGRATION",
            Some((false, _)) => "FAULTY_CONFIGURATION",
            None => "unknown",
        };
        match previous {
            Some((was, reason)) if was == healthy && reason == verdict.report.reason => {}
            Some((true, _)) | Some((false, _)) | None if healthy => {
                tracing::info!(integration = %name, from, to = verdict.status(), "integration status changed");
            }
            Some((false, previous_reason)) => {
                tracing::warn!(
                    integration = %name, from, to = verdict.status(),
                    step = verdict.report.failed_step.map(|s| s.as_str()),
                    reason = %verdict.report.reason,
                    previous_reason = %previous_reason,
                    "integration status changed"
                );
            }
            Some((true, _)) | None => {
                tracing::warn!(
                    integration = %name, from, to = verdict.status(),
                    step = verdict.report.failed_step.map(|s| s.as_str()),
                    reason = %verdict.report.reason,
                    "integration status changed"
                );
            }
        }
        let record = CheckRecord {
            integration_name: name.clone(),
            status: verdict.status().to_owned(),
            failed_step: verdict.report.failed_step.map(|s| s.as_str().to_owned()),
            reason: verdict.report.reason.clone(),
            checked_at: verdict.verified_at,
            duration_ms: i64::try_from(verdict.report.duration.as_millis()).unwrap_or(i64::MAX),
            report: serde_json::to_string(&verdict.report).ok(),
        };
        if self.inner.history.send(HistoryMessage::Record(record)).await.is_err() {
            tracing::warn!(integration = %name, "check history writer has stopped; result not recorded");
        }
    }

    /// Drops every cached verdict and record (tests and benchmarks start from a cold cache).
    pub fn invalidate_cache_for_tests(&self) {
        self.inner.results.invalidate_all();
        self.inner.records.invalidate_all();
    }

    /// Forgets this node's state for a deleted integration.
    pub(super) fn forget(&self, name: &str) {
        self.inner
            .last_healthy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.inner.metrics.integration_removed(name);
        let name = name.to_owned();
        // A re-created integration starts again at revision 1: its predecessor's verdicts must go.
        let _ = self.inner.results.invalidate_entries_if(move |key, _| key.0 == name);
    }
}

fn setup_failure(detail: String) -> CheckReport {
    CheckReport {
        healthy: false,
        failed_step: Some(checker::Step::Connectivity),
        reason: format!("{} Connectivity: {detail}.", checker::UNREACHABLE),
        ..CheckReport::default()
    }
}
