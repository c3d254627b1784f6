//! Ticket events: how many were accepted (by source: a fixed set), and per integration how many wait
//! and for how long. Integrations are created by admins only, so the integration label stays bounded;
//! the per-integration gauges are rebuilt from the database at each scrape, so a deleted
//! integration's series disappear.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `alertmanager` or `api`.
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntegrationLabels {
    pub integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub integration: String,
    /// `created`, `commented`, `reopened`, `resolved`, `recorded` or `nothing`: a fixed set.
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub integration: String,
    /// The failure's kind (`rejected`, `rate_limited`, `unknown_outcome`, …): a fixed set.
    pub kind: String,
}

/// What the figures of one integration say (see `store::TicketEventFigures`).
pub struct IntegrationFigures<'a> {
    pub integration: &'a str,
    pub queued: i64,
    pub errors: i64,
    pub oldest_age_seconds: i64,
}

pub struct TicketMetrics {
    accepted: Family<SourceLabels, Counter>,
    queued: Family<IntegrationLabels, Gauge>,
    errors: Family<IntegrationLabels, Gauge>,
    oldest: Family<IntegrationLabels, Gauge>,
    applied: Family<ActionLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    throttled: Family<IntegrationLabels, Counter>,
}

impl TicketMetrics {
    pub(super) fn register(registry: &mut Registry) -> TicketMetrics {
        let accepted = Family::<SourceLabels, Counter>::default();
        registry.register(
            "ticket_events_accepted",
            "Ticket events stored (answered 202), by source: alertmanager or api",
            accepted.clone(),
        );
        for source in ["alertmanager", "api"] {
            accepted
                .get_or_create(&SourceLabels {
                    source: source.to_owned(),
                })
                .inc_by(0);
        }
        let queued = Family::<IntegrationLabels, Gauge>::default();
        registry.register(
            "ticket_events_queued",
            "Ticket events waiting to be applied to Jira, or being applied, per integration (all nodes)",
            queued.clone(),
        );
        let errors = Family::<IntegrationLabels, Gauge>::default();
        registry.register(
            "ticket_events_errors",
            "Ticket events parked in the error list, per integration (all nodes)",
            errors.clone(),
        );
        let oldest = Family::<IntegrationLabels, Gauge>::default();
        registry.register(
            "ticket_events_oldest_queued_age_seconds",
            "Age of the oldest ticket event not yet applied, per integration (all nodes)",
            oldest.clone(),
        );
        let applied = Family::<ActionLabels, Counter>::default();
        registry.register(
            "ticket_events_applied",
            "Ticket events applied to Jira, per integration and what they did: created, commented, reopened, \
             resolved (an issue), recorded (an issue Jira already had, found and recorded) or nothing",
            applied.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "ticket_event_failures",
            "Failed attempts at applying a ticket event, per integration and kind (Jira's answers: rejected, \
             unauthorized, forbidden, rate_limited, server_error, unknown_outcome, timeout, unreachable, …; \
             Herald's: template, transition_missing, tickets_disabled, …)",
            failures.clone(),
        );
        let throttled = Family::<IntegrationLabels, Counter>::default();
        registry.register(
            "ticket_jira_throttled",
            "Answers 429 (or 503 with Retry-After) from an integration's Jira; Herald pauses that integration for \
             as long as Jira asks",
            throttled.clone(),
        );
        TicketMetrics {
            accepted,
            queued,
            errors,
            oldest,
            applied,
            failures,
            throttled,
        }
    }

    /// `n` events from `source` were committed.
    pub fn accepted(&self, source: &str, n: usize) {
        self.accepted
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// An event was applied to `integration`'s Jira.
    pub fn applied(&self, integration: &str, action: &str) {
        self.applied
            .get_or_create(&ActionLabels {
                integration: integration.to_owned(),
                action: action.to_owned(),
            })
            .inc();
    }

    /// An attempt at an event of `integration` failed.
    pub fn failed(&self, integration: &str, kind: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                integration: integration.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// `integration`'s Jira answered 429 `n` times.
    pub fn throttled(&self, integration: &str, n: u64) {
        self.throttled
            .get_or_create(&IntegrationLabels {
                integration: integration.to_owned(),
            })
            .inc_by(n);
    }

    /// Replaces the per-integration gauges with these figures.
    pub fn set_figures<'a>(&self, figures: impl IntoIterator<Item = IntegrationFigures<'a>>) {
        self.queued.clear();
        self.errors.clear();
        self.oldest.clear();
        for f in figures {
            let labels = IntegrationLabels {
                integration: f.integration.to_owned(),
            };
            self.queued.get_or_create(&labels).set(f.queued);
            self.errors.get_or_create(&labels).set(f.errors);
            self.oldest.get_or_create(&labels).set(f.oldest_age_seconds);
        }
    }
}
