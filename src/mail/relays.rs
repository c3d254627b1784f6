//! The relays mail is handed to, in order of preference, each with its own health.
//!
//! `HERALD_SMTP_URL` may name several relays, comma-separated. The first one that is up takes the
//! mail; when it goes down the next one up takes over; when a preferred relay comes back (its probe
//! succeeds) the workers return to it with their next message. A message is never split between
//! relays: a worker that finds its relay unreachable puts the messages it had not sent back in the
//! queue, uncharged, and they go to whichever relay is preferred when they are claimed again.

use std::sync::Arc;

use rand::Rng;

use super::MailSettings;
use super::relay::SmtpTarget;
use super::relay_health::{ProbeBackoff, RelayHealth, RelayStatus};
use super::smtp::SmtpClient;
use crate::clock::now_ms;
use crate::metrics::Metrics;

/// One relay: how to reach it and whether it can be reached.
pub struct Relay {
    pub client: SmtpClient,
    pub health: RelayHealth,
    /// The URL without its password, as logs and metrics name the relay.
    pub name: String,
}

/// The configured relays in order of preference. Cheap to clone.
#[derive(Clone)]
pub struct Relays {
    relays: Arc<Vec<Relay>>,
    metrics: Arc<Metrics>,
}

/// The relay URLs of a `HERALD_SMTP_URL` value: comma-separated, in order of preference (a comma in a
/// password is written `%2C`).
pub fn parse_relay_list(raw: &str) -> Result<Vec<SmtpTarget>, String> {
    let urls: Vec<&str> = raw.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if urls.is_empty() {
        return Err("no relay URL".to_owned());
    }
    urls.iter()
        .enumerate()
        .map(|(i, url)| SmtpTarget::parse(url).map_err(|e| format!("relay {}: {e}", i + 1)))
        .collect()
}

impl Relays {
    /// The mail section's relays, each believed up until a connection to it fails.
    pub fn new(settings: &MailSettings, metrics: Arc<Metrics>) -> Result<Relays, String> {
        let backoff = ProbeBackoff {
            initial: settings.probe_initial,
            max: settings.probe_max,
        };
        let now = now_ms();
        let mut relays = Vec::new();
        for target in parse_relay_list(settings.smtp_url.expose())? {
            let name = target.to_string();
            let client = SmtpClient::new(target, settings.smtp_ca_file.as_deref(), settings.smtp_timeout)?;
            metrics.relays.state(&name, true, now);
            relays.push(Relay {
                client,
                health: RelayHealth::new(backoff, now),
                name,
            });
        }
        Ok(Relays {
            relays: Arc::new(relays),
            metrics,
        })
    }

    /// The relays in order of preference.
    pub fn all(&self) -> &[Relay] {
        &self.relays
    }

    /// The first relay that is up.
    pub fn preferred(&self) -> Option<usize> {
        self.relays.iter().position(|r| r.health.is_up())
    }

    pub fn get(&self, index: usize) -> Option<&Relay> {
        self.relays.get(index)
    }

    /// The earliest due time of a probe (ms since the epoch), if a relay is down and none of its probes is out.
    pub fn next_probe_at(&self) -> Option<i64> {
        self.relays.iter().filter_map(|r| r.health.next_probe_at()).min()
    }

    /// A connection to relay `index` failed with `reason`; marks it down (logged once, when it goes down).
    pub fn failed(&self, index: usize, reason: &str) {
        let Some(relay) = self.relays.get(index) else { return };
        let jitter: f64 = rand::rng().random();
        if relay.health.failed(now_ms(), reason, jitter) {
            tracing::warn!(relay = %relay.name, error = reason, "mail relay is down; probing it until it answers");
            self.publish(relay);
        }
    }

    /// A connection to relay `index` succeeded; marks it up (logged once, when it comes back).
    pub fn succeeded(&self, index: usize) {
        let Some(relay) = self.relays.get(index) else { return };
        if relay.health.succeeded(now_ms()) {
            tracing::info!(relay = %relay.name, "mail relay is up again");
            self.publish(relay);
        }
    }

    fn publish(&self, relay: &Relay) {
        let (up, since) = match relay.health.status() {
            RelayStatus::Up { since } => (true, since),
            RelayStatus::Down { since, .. } => (false, since),
        };
        self.metrics.relays.state(&relay.name, up, since);
    }

    /// Probes every down relay whose probe is due: a connection and QUIT, no message. Returns whether
    /// any relay came back.
    pub async fn probe_due(&self) -> bool {
        let now = now_ms();
        let due: Vec<usize> = (0..self.relays.len())
            .filter(|&i| self.relays[i].health.take_probe(now))
            .collect();
        let mut back = false;
        for index in due {
            let relay = &self.relays[index];
            match relay.client.connect().await {
                Ok(conn) => {
                    relay.client.close(conn).await;
                    self.metrics.relays.probed(&relay.name, true);
                    self.succeeded(index);
                    back = true;
                }
                Err(e) => {
                    self.metrics.relays.probed(&relay.name, false);
                    self.failed(index, e.text());
                }
            }
        }
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_relays_are_comma_separated_in_order() {
        let relays = parse_relay_list("smtp://a.example, smtps://u:p%2Cq@b.example ,").unwrap();
        let names: Vec<String> = relays.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["smtp://a.example:25", "smtps://u:<redacted>@b.example:465"]);
        assert_eq!(relays[1].credentials.as_ref().unwrap().1.expose(), "p,q");
        assert_eq!(parse_relay_list(" , ").unwrap_err(), "no relay URL");
        assert!(
            parse_relay_list("smtp://a, http://b")
                .unwrap_err()
                .starts_with("relay 2: unknown scheme")
        );
    }
}
