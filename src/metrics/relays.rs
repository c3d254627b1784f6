//! The mail relays' health (see `mail::relay_health`). The label set is the configured relays, fixed
//! at start-up, so it cannot grow.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayLabels {
    /// The relay's URL without its password (`smtp://relay.example.com:25`).
    pub relay: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub relay: String,
    /// `up` or `down`: what the probe found.
    pub result: String,
}

pub struct RelayMetrics {
    up: Family<RelayLabels, Gauge>,
    since: Family<RelayLabels, Gauge>,
    probes: Family<ProbeLabels, Counter>,
}

impl RelayMetrics {
    pub(super) fn register(registry: &mut Registry) -> RelayMetrics {
        let up = Family::<RelayLabels, Gauge>::default();
        registry.register(
            "mail_relay_up",
            "1 while the mail relay is reachable, 0 while it is down (no mail is sent to it, probes go out)",
            up.clone(),
        );
        let since = Family::<RelayLabels, Gauge>::default();
        registry.register(
            "mail_relay_state_since_timestamp_seconds",
            "Since when the mail relay has been up, or down (Unix time)",
            since.clone(),
        );
        let probes = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "mail_relay_probes",
            "Connections made to a down mail relay to see whether it is back, by what they found",
            probes.clone(),
        );
        RelayMetrics { up, since, probes }
    }

    fn labels(relay: &str) -> RelayLabels {
        RelayLabels {
            relay: relay.to_owned(),
        }
    }

    /// The relay's state changed (or is first known): up or down since `since_ms`.
    pub fn state(&self, relay: &str, up: bool, since_ms: i64) {
        self.up.get_or_create(&Self::labels(relay)).set(i64::from(up));
        self.since.get_or_create(&Self::labels(relay)).set(since_ms / 1000);
        for result in ["up", "down"] {
            self.probes
                .get_or_create(&ProbeLabels {
                    relay: relay.to_owned(),
                    result: result.to_owned(),
                })
                .inc_by(0);
        }
    }

    pub fn probed(&self, relay: &str, up: bool) {
        self.probes
            .get_or_create(&ProbeLabels {
                relay: relay.to_owned(),
                result: if up { "up" } else { "down" }.to_owned(),
            })
            .inc();
    }
}
