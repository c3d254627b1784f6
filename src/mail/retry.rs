//! When to try a failed delivery again, and when to give up.

use std::time::Duration;

/// Exponential backoff with jitter, bounded by attempts and by age.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
}

/// What to do with a message after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time (ms since the epoch).
    RetryAt(i64),
    /// Move it to the error queue.
    Park,
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`, before jitter: `initial * 2^(attempts-1)`, capped.
    pub fn base_delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        self.initial.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// Decides after a failure. `attempts` counts the attempt that just failed; `jitter` in [0, 1)
    /// spreads retries ("equal jitter": half the delay fixed, half random) so that a relay that
    /// comes back is not hit by every message at once.
    /// Whether a message accepted at `created_at` is older than the policy lets a message wait.
    pub fn expired(&self, created_at: i64, now: i64) -> bool {
        let max_age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        now.saturating_sub(created_at) > max_age
    }

    pub fn after_failure(&self, permanent: bool, attempts: u32, created_at: i64, now: i64, jitter: f64) -> Next {
        if permanent || attempts >= self.max_attempts {
            return Next::Park;
        }
        let base = self.base_delay(attempts);
        let delay = base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        let at = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        let max_age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        if at.saturating_sub(created_at) > max_age {
            return Next::Park;
        }
        Next::RetryAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            max_attempts: 10,
            max_age: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let p = policy();
        let secs: Vec<u64> = (1..=9).map(|a| p.base_delay(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_and_all_of_the_base() {
        let p = policy();
        assert_eq!(p.after_failure(false, 1, 0, 1_000, 0.0), Next::RetryAt(1_000 + 15_000));
        assert_eq!(
            p.after_failure(false, 1, 0, 1_000, 0.999_999),
            Next::RetryAt(1_000 + 29_999)
        );
        assert_eq!(p.after_failure(false, 2, 0, 1_000, 0.5), Next::RetryAt(1_000 + 45_000));
    }

    #[test]
    fn permanent_failures_the_last_attempt_and_old_messages_are_parked() {
        let p = policy();
        assert_eq!(p.after_failure(true, 1, 0, 0, 0.5), Next::Park);
        assert_eq!(p.after_failure(false, 10, 0, 0, 0.5), Next::Park);
        assert!(matches!(p.after_failure(false, 9, 0, 0, 0.5), Next::RetryAt(_)));
        let a_day_later = 86_400_000 - 1_000;
        assert_eq!(p.after_failure(false, 3, 0, a_day_later, 0.5), Next::Park);
    }
}
