//! Whether a relay can be reached, and when to try it again.
//!
//! Postfix's lesson: when a destination fails to connect, trying every queued message against it
//! only repeats the failure and burns the queue's write capacity on retries. So a relay that fails
//! to connect, fails TLS or greets with 421 is marked *down*; while it is down no message is sent to
//! it, and one probe (a connection, no message) goes out at a bounded, jittered backoff. The first
//! success marks it up again. Messages that wait meanwhile are not charged an attempt: they did not
//! fail, the relay did.

use std::sync::Mutex;
use std::time::Duration;

/// How long a relay found down waits before the first probe, and the longest wait between probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeBackoff {
    pub initial: Duration,
    pub max: Duration,
}

impl ProbeBackoff {
    /// The wait after the `failed`-th failed probe (0: the failure that marked the relay down),
    /// doubled each time up to `max`, then scaled by `jitter` in `[0, 1)` to 80–120 %.
    fn wait(&self, failed: u32, jitter: f64) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32.checked_shl(failed.min(30)).unwrap_or(u32::MAX));
        doubled.min(self.max).mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }
}

/// A relay's health as the console, the metrics and the alerts show it. Times are ms since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayStatus {
    Up {
        since: i64,
    },
    Down {
        since: i64,
        /// The failure that marked it down, or the last failed probe's.
        reason: String,
        /// Probes sent since it went down, all failed.
        probes: u32,
        next_probe_at: i64,
    },
}

impl RelayStatus {
    pub fn is_up(&self) -> bool {
        matches!(self, RelayStatus::Up { .. })
    }
}

#[derive(Debug)]
struct State {
    status: RelayStatus,
    /// A probe is out: no second one starts until it reports.
    probing: bool,
}

/// The health of one relay, shared by the dispatcher and the workers.
#[derive(Debug)]
pub struct RelayHealth {
    backoff: ProbeBackoff,
    state: Mutex<State>,
}

impl RelayHealth {
    /// A relay believed up (since `now`) until a connection to it fails.
    pub fn new(backoff: ProbeBackoff, now: i64) -> RelayHealth {
        RelayHealth {
            backoff,
            state: Mutex::new(State {
                status: RelayStatus::Up { since: now },
                probing: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value updated whole; a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> RelayStatus {
        self.lock().status.clone()
    }

    pub fn is_up(&self) -> bool {
        self.lock().status.is_up()
    }

    /// A connection failed: a worker's (`probe` false) or the probe's. Returns true when this marked
    /// an up relay down.
    pub fn failed(&self, now: i64, reason: &str, jitter: f64, probe: bool) -> bool {
        let mut state = self.lock();
        let (since, probes, went_down) = match &state.status {
            RelayStatus::Up { .. } => (now, 0, true),
            // A worker that started before the relay went down reports the same outage again;
            // only the probe's answer moves the schedule.
            RelayStatus::Down { .. } if !probe => return false,
            RelayStatus::Down { since, probes, .. } => (*since, probes.saturating_add(1), false),
        };
        let wait = self.backoff.wait(probes, jitter);
        state.status = RelayStatus::Down {
            since,
            reason: reason.to_owned(),
            probes,
            next_probe_at: now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
        };
        state.probing = false;
        went_down
    }

    /// A connection succeeded. Returns true when this brought a down relay back.
    pub fn succeeded(&self, now: i64) -> bool {
        let mut state = self.lock();
        state.probing = false;
        match state.status {
            RelayStatus::Up { .. } => false,
            RelayStatus::Down { .. } => {
                state.status = RelayStatus::Up { since: now };
                true
            }
        }
    }

    /// Whether the caller should probe now: the relay is down, its probe is due and none is out.
    /// A true answer reserves the probe; report it with [`succeeded`](Self::succeeded) or
    /// [`failed`](Self::failed).
    pub fn take_probe(&self, now: i64) -> bool {
        let mut state = self.lock();
        match state.status {
            RelayStatus::Down { next_probe_at, .. } if !state.probing && now >= next_probe_at => {
                state.probing = true;
                true
            }
            _ => false,
        }
    }

    /// When the next probe is due, if the relay is down and no probe is out.
    pub fn next_probe_at(&self) -> Option<i64> {
        let state = self.lock();
        match state.status {
            RelayStatus::Down { next_probe_at, .. } if !state.probing => Some(next_probe_at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: ProbeBackoff = ProbeBackoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };

    #[test]
    fn the_wait_doubles_up_to_the_bound_and_is_jittered_within_a_fifth() {
        let waits: Vec<u64> = (0..6).map(|n| BACKOFF.wait(n, 0.5).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(BACKOFF.wait(0, 0.0), Duration::from_secs(4));
        assert_eq!(BACKOFF.wait(0, 0.999_999).as_secs(), 5);
        assert!(BACKOFF.wait(0, 0.999_999) < Duration::from_secs(6));
        assert_eq!(BACKOFF.wait(u32::MAX, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn a_failure_marks_it_down_and_one_probe_at_a_time_goes_out_when_due() {
        let health = RelayHealth::new(BACKOFF, 0);
        assert!(health.is_up());
        assert!(!health.take_probe(0), "an up relay is not probed");
        assert!(health.failed(1_000, "connection refused", 0.5, false));
        assert!(
            !health.failed(1_100, "connection refused", 0.5, false),
            "a second worker's failure counts once"
        );
        assert_eq!(health.next_probe_at(), Some(6_000));
        assert!(!health.take_probe(5_999));
        assert!(health.take_probe(6_000));
        assert!(!health.take_probe(6_001), "one probe at a time");
        assert_eq!(health.next_probe_at(), None);
        assert!(!health.failed(6_005, "a late worker", 0.5, false));
        assert_eq!(
            health.next_probe_at(),
            None,
            "a worker's report does not settle the probe"
        );
        assert!(!health.failed(6_010, "still refused", 0.5, true));
        assert_eq!(
            health.status(),
            RelayStatus::Down {
                since: 1_000,
                reason: "still refused".into(),
                probes: 1,
                next_probe_at: 16_010,
            }
        );
        assert!(health.take_probe(16_010));
        assert!(health.succeeded(16_020));
        assert_eq!(health.status(), RelayStatus::Up { since: 16_020 });
        assert!(!health.succeeded(16_030), "already up");
    }
}
