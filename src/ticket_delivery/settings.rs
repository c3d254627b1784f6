//! How the ticket worker presses Jira and how long it keeps trying.

use std::time::Duration;

use crate::jira::{LimiterSettings, TicketClientSettings};
use crate::mail::RetryPolicy;

/// The `tickets` section of the configuration.
#[derive(Debug, Clone)]
pub struct TicketDeliverySettings {
    /// Whether this node applies events to Jira (it accepts them either way).
    pub delivery: bool,
    /// Events this node works on at once (across integrations; one per problem at a time).
    pub workers: usize,
    /// Per integration: requests in flight, requests a second, and the burst after a quiet spell.
    pub limiter: LimiterSettings,
    /// Per request: the time limit; how many 429s one operation waits out.
    pub client: TicketClientSettings,
    /// When to try a failed event again, and when to park it in the error list.
    pub retry: RetryPolicy,
    /// How long a node holds an event it works on before another node may take it over.
    pub lease: Duration,
    /// How long applied events stay listed before they are pruned (each problem keeps its last).
    pub keep_done: Duration,
    /// After a create whose answer was lost, how long Jira Cloud's search is given to see the issue
    /// before Herald decides it was not created (Cloud's search is eventually consistent).
    pub search_settle: Duration,
}

impl Default for TicketDeliverySettings {
    fn default() -> Self {
        Self {
            delivery: true,
            workers: 16,
            limiter: LimiterSettings::default(),
            client: TicketClientSettings::default(),
            retry: RetryPolicy {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(600),
                max_attempts: 1000,
                max_age: Duration::from_secs(3 * 24 * 3600),
            },
            lease: Duration::from_secs(600),
            keep_done: Duration::from_secs(7 * 24 * 3600),
            search_settle: Duration::from_secs(30),
        }
    }
}
