//! Prometheus metrics: one registry per running application (no process-wide globals), rendered by
//! `GET /metrics` in the Prometheus text format, or OpenMetrics when asked (see `exposition`).

mod exposition;
mod relays;
mod smtp;
mod tickets;

pub use relays::RelayMetrics;
pub use smtp::{SmtpMetrics, SmtpRejection, SmtpTlsMode};
pub use tickets::{IntegrationFigures, TicketMetrics};

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template (`/api/v1/users/{username}`), never the raw path, to bound cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    auth_failures: Family<ReasonLabels, Counter>,
    auth_successes: Family<ReasonLabels, Counter>,
    pub http_open_connections: Gauge,
    pub database_up: Gauge,
    pub mail_queue_size: Gauge,
    pub mail_error_size: Gauge,
    pub mail_oldest_queued_seconds: Gauge,
    mail_deliveries: Family<ReasonLabels, Counter>,
    mail_delivery_latency: Histogram,
    mail_commit_duration: Histogram,
    mail_commit_batch: Histogram,
    integration_healthy: Family<IntegrationLabels, Gauge>,
    integration_check_duration: Family<CheckLabels, Histogram>,
    alerts_sent: Counter,
    pub alerts_firing: Gauge,
    pub loops: LoopMetrics,
    pub relays: RelayMetrics,
    pub smtp: SmtpMetrics,
    pub tickets: TicketMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntegrationLabels {
    pub integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `healthy` or `faulty`.
    pub outcome: String,
}

fn check_histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn http_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        registry.register(
            "build",
            "Herald version",
            Info::new(vec![("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", http_requests.clone());
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(http_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            http_duration.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Refused authentication attempts",
            auth_failures.clone(),
        );
        let auth_successes = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_successes",
            "Accepted credentials, by how they were verified: cache, or a full check (password hash or token lookup)",
            auth_successes.clone(),
        );
        let http_open_connections = Gauge::default();
        registry.register(
            "http_open_connections",
            "HTTP connections open now (at most HERALD_HTTP_MAX_CONNECTIONS)",
            http_open_connections.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "1 when the last readiness check reached the database",
            database_up.clone(),
        );
        let mail_queue_size = Gauge::default();
        registry.register(
            "mail_queue_size",
            "Messages of this node waiting or being sent",
            mail_queue_size.clone(),
        );
        let mail_error_size = Gauge::default();
        registry.register(
            "mail_error_queue_size",
            "Messages of this node in the error queue",
            mail_error_size.clone(),
        );
        let mail_oldest_queued_seconds = Gauge::default();
        registry.register(
            "mail_oldest_queued_age_seconds",
            "Age of this node's oldest message not yet delivered (0 when none)",
            mail_oldest_queued_seconds.clone(),
        );
        let mail_deliveries = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "mail_delivery_attempts",
            "Delivery attempts by outcome: delivered, retry (transient failure), error (moved to the error queue)",
            mail_deliveries.clone(),
        );
        // 10 ms .. ~5.8 h
        let mail_delivery_latency = Histogram::new(exponential_buckets(0.01, 2.0, 22));
        registry.register(
            "mail_delivery_latency_seconds",
            "Time from acceptance to delivery of delivered messages",
            mail_delivery_latency.clone(),
        );
        // 100 µs .. ~3.3 s
        let mail_commit_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "mail_commit_duration_seconds",
            "Time of one group commit of accepted mail (one transaction, however many messages it holds)",
            mail_commit_duration.clone(),
        );
        // 1 .. 1024
        let mail_commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "mail_commit_batch_size",
            "Messages stored by one group commit",
            mail_commit_batch.clone(),
        );
        let integration_healthy = Family::<IntegrationLabels, Gauge>::default();
        registry.register(
            "integration_healthy",
            "1 when the integration's last check found it healthy, 0 when faulty",
            integration_healthy.clone(),
        );
        let integration_check_duration =
            Family::<CheckLabels, Histogram>::new_with_constructor(check_histogram as fn() -> Histogram);
        registry.register(
            "integration_check_duration_seconds",
            "Time taken by integration checks against Jira",
            integration_check_duration.clone(),
        );
        let alerts_sent = Counter::default();
        registry.register(
            "alerts_sent",
            "Health alert mails queued (one per evaluation that found transitions)",
            alerts_sent.clone(),
        );
        let alerts_firing = Gauge::default();
        registry.register(
            "alerts_firing",
            "Alert conditions firing as of this node's last evaluation",
            alerts_firing.clone(),
        );
        let loops = LoopMetrics::register(&mut registry);
        let relays = RelayMetrics::register(&mut registry);
        let smtp = SmtpMetrics::register(&mut registry);
        let tickets = TicketMetrics::register(&mut registry);
        Self {
            tickets,
            smtp,
            loops,
            relays,
            alerts_sent,
            alerts_firing,
            mail_queue_size,
            mail_error_size,
            mail_oldest_queued_seconds,
            mail_deliveries,
            mail_delivery_latency,
            mail_commit_duration,
            mail_commit_batch,
            integration_healthy,
            integration_check_duration,
            registry,
            http_requests,
            http_duration,
            auth_failures,
            auth_successes,
            http_open_connections,
            database_up,
        }
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn auth_failure(&self, failure: AuthFailure) {
        let reason = match failure {
            AuthFailure::Invalid => "invalid",
            AuthFailure::Throttled => "throttled",
            AuthFailure::Database => "database",
        };
        self.auth_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn auth_success(&self, success: AuthSuccess) {
        let reason = match success {
            AuthSuccess::Cache => "cache",
            AuthSuccess::Checked => "checked",
        };
        self.auth_successes
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// One group commit of `messages` accepted messages took `took`.
    pub fn mail_committed(&self, messages: usize, took: Duration) {
        self.mail_commit_duration.observe(took.as_secs_f64());
        self.mail_commit_batch.observe(messages as f64);
    }

    pub fn mail_delivered(&self, latency: Duration) {
        self.mail_deliveries
            .get_or_create(&ReasonLabels {
                reason: "delivered".to_owned(),
            })
            .inc();
        self.mail_delivery_latency.observe(latency.as_secs_f64());
    }

    /// `outcome`: `retry` or `error`.
    pub fn mail_failed(&self, outcome: &str) {
        self.mail_deliveries
            .get_or_create(&ReasonLabels {
                reason: outcome.to_owned(),
            })
            .inc();
    }

    pub fn integration_checked(&self, integration: &str, healthy: bool, elapsed: Duration) {
        self.integration_healthy
            .get_or_create(&IntegrationLabels {
                integration: integration.to_owned(),
            })
            .set(i64::from(healthy));
        self.integration_check_duration
            .get_or_create(&CheckLabels {
                outcome: if healthy { "healthy" } else { "faulty" }.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn integration_removed(&self, integration: &str) {
        self.integration_healthy.remove(&IntegrationLabels {
            integration: integration.to_owned(),
        });
    }

    pub fn alert_mail_sent(&self) {
        self.alerts_sent.inc();
    }

    /// The registry as text in the format `exposition` names.
    pub fn render(&self, exposition: Exposition) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(match exposition {
            Exposition::OpenMetrics => out,
            Exposition::Prometheus => exposition::to_prometheus_text(&out),
        })
    }
}

/// Why an authentication attempt was refused: the `reason` of `herald_auth_failures_total`. The
/// metrics' own words, so that the authenticator records into the registry without the registry
/// knowing the authenticator's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Invalid,
    Throttled,
    /// The database could not be asked.
    Database,
}

/// How accepted credentials were verified: the `reason` of `herald_auth_successes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSuccess {
    /// From the credential cache.
    Cache,
    /// A full check against the database.
    Checked,
}

/// The text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0: `application/openmetrics-text; version=1.0.0; charset=utf-8`.
    OpenMetrics,
    /// The Prometheus text format: `text/plain; version=0.0.4; charset=utf-8`.
    Prometheus,
}

impl Exposition {
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

// Background loops (see `crate::supervisor`). The label set is fixed: every loop of the closed set
// `BackgroundLoop::ALL` has its series from the start, so a loop that never ran shows as 0, not absent.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoopLabels {
    pub r#loop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoopFailureLabels {
    pub r#loop: String,
    /// `panic` or `error`.
    pub kind: String,
}

/// The supervisor's view of the background loops.
pub struct LoopMetrics {
    up: Family<LoopLabels, Gauge>,
    last_round: Family<LoopLabels, Gauge>,
    failures: Family<LoopFailureLabels, Counter>,
}

impl LoopMetrics {
    const FAILURE_KINDS: [&'static str; 2] = ["panic", "error"];

    fn register(registry: &mut Registry) -> LoopMetrics {
        let up = Family::<LoopLabels, Gauge>::default();
        registry.register(
            "background_loop_up",
            "1 while the background loop runs on this node, 0 when it is switched off, stopped or died",
            up.clone(),
        );
        let last_round = Family::<LoopLabels, Gauge>::default();
        registry.register(
            "background_loop_last_round_timestamp_seconds",
            "When the background loop last completed a round (Unix time; 0 before the first)",
            last_round.clone(),
        );
        let failures = Family::<LoopFailureLabels, Counter>::default();
        registry.register(
            "background_loop_failures",
            "Items or rounds of a background loop that failed: kind=panic (caught, the loop goes on, or the \
             loop died) or kind=error",
            failures.clone(),
        );
        for name in crate::loops::BackgroundLoop::ALL {
            let labels = LoopLabels {
                r#loop: name.as_str().to_owned(),
            };
            up.get_or_create(&labels).set(0);
            last_round.get_or_create(&labels).set(0);
            for kind in Self::FAILURE_KINDS {
                failures
                    .get_or_create(&LoopFailureLabels {
                        r#loop: name.as_str().to_owned(),
                        kind: kind.to_owned(),
                    })
                    .inc_by(0);
            }
        }
        LoopMetrics {
            up,
            last_round,
            failures,
        }
    }

    fn labels(name: crate::loops::BackgroundLoop) -> LoopLabels {
        LoopLabels {
            r#loop: name.as_str().to_owned(),
        }
    }

    pub fn running(&self, name: crate::loops::BackgroundLoop, up: bool) {
        self.up.get_or_create(&Self::labels(name)).set(i64::from(up));
    }

    pub fn round_completed(&self, name: crate::loops::BackgroundLoop, at_ms: i64) {
        self.last_round.get_or_create(&Self::labels(name)).set(at_ms / 1000);
    }

    /// `kind`: `panic` or `error`; anything else is counted as `error` (the label set stays fixed).
    pub fn failed(&self, name: crate::loops::BackgroundLoop, kind: &str) {
        let kind = if kind == "panic" { "panic" } else { "error" };
        self.failures
            .get_or_create(&LoopFailureLabels {
                r#loop: name.as_str().to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
