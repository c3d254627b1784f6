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
use crate::cluster::NodeId;
use crate::metrics::Metrics;
use crate::store::{RelayRow, Store};

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
    /// Where the health is written for readers in other processes and on other nodes.
    store: Store,
    node_id: NodeId,
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
    pub fn new(
        settings: &MailSettings,
        store: Store,
        node_id: NodeId,
        metrics: Arc<Metrics>,
    ) -> Result<Relays, String> {
        let backoff = ProbeBackoff {
            initial: settings.probe_initial,
            max: settings.probe_max,
        };
        let now = now_ms();
        let mut relays = Vec::new();
        for target in parse_relay_list(settings.smtp_url.expose())? {
            let name = target.to_string();
            let client = SmtpClient::new(target, settings.smtp_ca_file.as_deref(), settings.smtp_timeout)?;
            relays.push(Relay {
                client,
                health: RelayHealth::new(backoff, now),
                name,
            });
        }
        Ok(Relays {
            relays: Arc::new(relays),
            metrics,
            store,
            node_id,
        })
    }

    /// Writes this node's relays and shows them in the metrics (delivery starts), or removes them
    /// (`listed` false: delivery stopped). A node that does not deliver has no relay to show.
    pub async fn publish_all(&self, listed: bool) {
        let rows: Vec<RelayRow> = if listed {
            self.relays.iter().enumerate().map(|(i, r)| self.row(i, r)).collect()
        } else {
            Vec::new()
        };
        for row in &rows {
            self.metrics.relays.state(&row.relay, row.up, row.since);
        }
        if let Err(e) = self.store.replace_mail_relays(self.node_id.as_str(), &rows).await {
            tracing::warn!(error = %e, "cannot record the mail relays' health");
        }
    }

    fn row(&self, position: usize, relay: &Relay) -> RelayRow {
        let (up, since, reason, probes, next_probe_at) = match relay.health.status() {
            RelayStatus::Up { since } => (true, since, None, 0, None),
            RelayStatus::Down {
                since,
                reason,
                probes,
                next_probe_at,
            } => (false, since, Some(reason), probes, Some(next_probe_at)),
        };
        RelayRow {
            node_id: self.node_id.as_str().to_owned(),
            relay: relay.name.clone(),
            position: i32::try_from(position).unwrap_or(i32::MAX),
            up,
            since,
            reason,
            probes: i32::try_from(probes).unwrap_or(i32::MAX),
            next_probe_at,
            updated_at: now_ms(),
        }
    }

    /// The relays in order of preference.
    pub fn all(&self) -> &[Relay] {
        &self.relays
    }

    /// The first relay that is up, with its index.
    pub fn preferred(&self) -> Option<(usize, &Relay)> {
        self.relays.iter().enumerate().find(|(_, r)| r.health.is_up())
    }

    pub fn get(&self, index: usize) -> Option<&Relay> {
        self.relays.get(index)
    }

    /// The earliest due time of a probe (ms since the epoch), if a relay is down and none of its probes is out.
    pub fn next_probe_at(&self) -> Option<i64> {
        self.relays.iter().filter_map(|r| r.health.next_probe_at()).min()
    }

    /// A connection to relay `index` failed with `reason`; marks it down (logged once, when it goes
    /// down) and, when its health changed (down, or a probe failed), publishes it.
    pub async fn failed(&self, index: usize, reason: &str, probe: bool) {
        let Some(relay) = self.relays.get(index) else { return };
        let jitter: f64 = rand::rng().random();
        let went_down = relay.health.failed(now_ms(), reason, jitter, probe);
        if went_down {
            tracing::warn!(relay = %relay.name, error = reason, "mail relay is down; probing it until it answers");
        }
        if went_down || probe {
            self.publish(index, relay).await;
        }
    }

    /// A connection to relay `index` succeeded; marks it up (logged once, when it comes back).
    pub async fn succeeded(&self, index: usize) {
        let Some(relay) = self.relays.get(index) else { return };
        if relay.health.succeeded(now_ms()) {
            tracing::info!(relay = %relay.name, "mail relay is up again");
            self.publish(index, relay).await;
        }
    }

    /// Shows a relay's health in the metrics and writes it for other readers.
    async fn publish(&self, index: usize, relay: &Relay) {
        let row = self.row(index, relay);
        self.metrics.relays.state(&relay.name, row.up, row.since);
        if let Err(e) = self.store.update_mail_relay(&row).await {
            tracing::warn!(relay = %relay.name, error = %e, "cannot record the mail relay's health");
        }
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
                    self.succeeded(index).await;
                    back = true;
                }
                Err(e) => {
                    self.metrics.relays.probed(&relay.name, false);
                    self.failed(index, e.text(), true).await;
                }
            }
        }
        back
    }
}

/// A relay's health in one line, as `herald mail status`, the console and the alerts word it:
/// "up since 2026-11-30T10:42:00Z", or "down since 2026-11-30T10:42:00Z (4m 10s): cannot connect …;
/// 3 probes failed, next in 20s".
pub fn describe(row: &RelayRow, now: i64) -> String {
    let since = crate::timefmt::rfc3339_ms(row.since);
    if row.up {
        return format!("up since {since}");
    }
    let reason = row.reason.as_deref().unwrap_or("unreachable");
    let next = row
        .next_probe_at
        .map(|at| format!(", next in {}", seconds(at - now)))
        .unwrap_or_default();
    format!(
        "down since {since} ({}): {reason}; {} probes failed{next}",
        seconds(now - row.since),
        row.probes
    )
}

fn seconds(ms: i64) -> String {
    let secs = u64::try_from(ms.max(0) / 1000).unwrap_or(0);
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relays_health_reads_as_one_line() {
        let mut row = RelayRow {
            node_id: "n1".into(),
            relay: "smtp://relay:25".into(),
            position: 0,
            up: true,
            since: 1_750_000_000_000,
            reason: None,
            probes: 0,
            next_probe_at: None,
            updated_at: 1_750_000_000_000,
        };
        assert_eq!(describe(&row, 1_750_000_060_000), "up since 2025-06-15T15:06:40Z");
        row.up = false;
        row.reason = Some("cannot connect to smtp://relay:25: Connection refused".into());
        row.probes = 3;
        row.next_probe_at = Some(1_750_000_270_000);
        assert_eq!(
            describe(&row, 1_750_000_250_000),
            "down since 2025-06-15T15:06:40Z (4m 10s): cannot connect to smtp://relay:25: Connection refused; \
             3 probes failed, next in 20s"
        );
    }

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
