//! Supervision of the background loops (integration sweep, mail delivery, cluster heartbeat, alert
//! evaluation).
//!
//! A loop that dies or stalls stops a node's periodic work silently: nothing answers an HTTP request
//! for it. So every loop is spawned through [`Supervisor::spawn`], which notices its end (a panic is
//! a death, logged and counted), and loops that know their rounds report each completed one. What
//! the supervisor knows is visible in `/metrics` (`herald_background_loop_*`, one series per loop of
//! the closed set [`BackgroundLoop::ALL`]) and in the health alerts (the `loop:` condition).
//! One failing item inside a round (a panicking check, a hostile answer) is caught by
//! [`Supervisor::guard`] where the loop handles it: logged and counted, and the loop goes on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;

use crate::clock::SharedClock;
pub use crate::loops::BackgroundLoop;
use crate::metrics::Metrics;

/// Where a loop is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopStatus {
    /// Never started on this node (switched off: no alert recipients, no cluster, delivery off).
    NotRunning,
    Running,
    /// Ended because the node is stopping.
    Stopped,
    /// Ended by a panic, or returned while the node was not stopping.
    Died,
}

/// One loop as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopReport {
    pub name: BackgroundLoop,
    pub status: LoopStatus,
    /// When it was started (ms since the epoch).
    pub started_at: i64,
    /// When it last completed a round (ms since the epoch), for loops that report rounds.
    pub last_round: Option<i64>,
    /// How often it should complete a round, for loops that report rounds.
    pub period: Option<Duration>,
    /// Items and rounds that failed (panics and errors) since start.
    pub failures: u64,
    /// When it ended (ms since the epoch), for a loop that is no longer running.
    pub ended_at: Option<i64>,
}

impl LoopReport {
    /// How long a loop may go without completing a round before it counts as stalled: three
    /// periods, and at least ten minutes (a sweep of many slow integrations takes a while).
    pub fn stall_limit(period: Duration) -> Duration {
        period
            .saturating_mul(3)
            .max(period.saturating_add(Duration::from_secs(600)))
    }

    /// Whether a running loop that reports rounds has not completed one for too long at `now`.
    pub fn stalled(&self, now: i64) -> bool {
        let Some(period) = self.period else {
            return false;
        };
        let limit = i64::try_from(Self::stall_limit(period).as_millis()).unwrap_or(i64::MAX);
        self.status == LoopStatus::Running && now.saturating_sub(self.last_round.unwrap_or(self.started_at)) > limit
    }
}

/// The supervisor of one node's loops. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    clock: SharedClock,
    metrics: Arc<Metrics>,
    loops: Mutex<Vec<LoopReport>>,
}

impl Supervisor {
    pub fn new(clock: SharedClock, metrics: Arc<Metrics>) -> Supervisor {
        let loops = BackgroundLoop::ALL
            .iter()
            .map(|&name| LoopReport {
                name,
                status: LoopStatus::NotRunning,
                started_at: 0,
                last_round: None,
                period: None,
                failures: 0,
                ended_at: None,
            })
            .collect();
        Supervisor {
            inner: Arc::new(Inner {
                clock,
                metrics,
                loops: Mutex::new(loops),
            }),
        }
    }

    fn update(&self, name: BackgroundLoop, change: impl FnOnce(&mut LoopReport)) {
        let mut loops = self.inner.loops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(report) = loops.get_mut(name.index()) {
            change(report);
        }
    }

    /// Spawns `task` as the loop `name`. `period` is how often it completes a round, for a loop that
    /// reports them ([`Supervisor::round_completed`]). Its end is recorded: after `stop` turned true a
    /// clean stop; a panic, or a return without being asked to stop, a death (logged, counted, alerted).
    /// A loop switched off by configuration is not spawned at all.
    pub fn spawn<F>(
        &self,
        name: BackgroundLoop,
        period: Option<Duration>,
        stop: watch::Receiver<bool>,
        task: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let now = self.inner.clock.now_ms();
        self.update(name, |r| {
            r.status = LoopStatus::Running;
            r.started_at = now;
            r.period = period;
            r.ended_at = None;
        });
        self.inner.metrics.loops.running(name, true);
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = AssertUnwindSafe(task).catch_unwind().await;
            let now = this.inner.clock.now_ms();
            let stopping = *stop.borrow();
            let (status, failed) = match outcome {
                Err(panic) => {
                    tracing::error!(
                        background_loop = name.as_str(),
                        panic = %panic_text(&panic),
                        "background loop died; its work is no longer done on this node until a restart"
                    );
                    (LoopStatus::Died, true)
                }
                Ok(()) if stopping => (LoopStatus::Stopped, false),
                Ok(()) => {
                    tracing::error!(background_loop = name.as_str(), "background loop ended unexpectedly");
                    (LoopStatus::Died, true)
                }
            };
            if failed {
                this.inner.metrics.loops.failed(name, "panic");
            }
            this.update(name, |r| {
                r.status = status;
                r.ended_at = Some(now);
                r.failures += u64::from(failed);
            });
            this.inner.metrics.loops.running(name, false);
        })
    }

    /// Runs one item (or one round) of the loop `name`, catching a panic: it is logged with `what`
    /// and counted, and `None` comes back so the loop can go on.
    pub async fn guard<T>(&self, name: BackgroundLoop, what: &str, work: impl Future<Output = T>) -> Option<T> {
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(value) => Some(value),
            Err(panic) => {
                tracing::error!(
                    background_loop = name.as_str(),
                    item = what,
                    panic = %panic_text(&panic),
                    "background work failed; the loop goes on"
                );
                self.count_failures(name, "panic", 1);
                None
            }
        }
    }

    /// Counts `count` failures of kind `panic` or `error` (already logged by the caller).
    pub fn count_failures(&self, name: BackgroundLoop, kind: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        for _ in 0..count {
            self.inner.metrics.loops.failed(name, kind);
        }
        self.update(name, |r| r.failures = r.failures.saturating_add(count));
    }

    /// The supervisor's clock. Loops tick in real time, so the node runs it with the system clock (not
    /// the alerts' injectable one, which tests move without the loops moving with it).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Records that the loop `name` completed a round now.
    pub fn round_completed(&self, name: BackgroundLoop) {
        let now = self.inner.clock.now_ms();
        self.update(name, |r| r.last_round = Some(now));
        self.inner.metrics.loops.round_completed(name, now);
    }

    pub fn report(&self, name: BackgroundLoop) -> LoopReport {
        let loops = self.inner.loops.lock().unwrap_or_else(|e| e.into_inner());
        loops[name.index()].clone()
    }

    /// Every loop, in the order of [`BackgroundLoop::ALL`].
    pub fn reports(&self) -> Vec<LoopReport> {
        self.inner.loops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The message of a panic payload.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const T0: i64 = 1_750_000_000_000;

    fn supervisor() -> (Supervisor, Arc<ManualClock>, Arc<Metrics>) {
        let clock = ManualClock::starting_at(T0);
        let metrics = Arc::new(Metrics::new());
        (Supervisor::new(clock.clone(), metrics.clone()), clock, metrics)
    }

    #[tokio::test]
    async fn a_panicking_item_is_counted_and_the_loop_goes_on() {
        let (supervisor, _, metrics) = supervisor();
        let sweep = BackgroundLoop::IntegrationSweep;
        let mut done = Vec::new();
        for i in 0..3 {
            let result = supervisor
                .guard(sweep, "check", async move {
                    if i == 1 {
                        panic!("hostile answer");
                    }
                    i
                })
                .await;
            done.extend(result);
        }
        assert_eq!(done, [0, 2]);
        assert_eq!(supervisor.report(sweep).failures, 1);
        let text = metrics.render(crate::metrics::Exposition::OpenMetrics).unwrap();
        assert!(
            text.contains(r#"herald_background_loop_failures_total{loop="integration_sweep",kind="panic"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_loop_that_panics_is_dead_and_one_that_is_told_to_stop_is_stopped() {
        let (supervisor, _, metrics) = supervisor();
        let (stop, stopped) = watch::channel(false);
        let heartbeat = BackgroundLoop::ClusterHeartbeat;
        let dying = supervisor.spawn(heartbeat, Some(Duration::from_secs(60)), stopped.clone(), async {
            panic!("overflow");
        });
        dying.await.unwrap();
        let report = supervisor.report(heartbeat);
        assert_eq!(report.status, LoopStatus::Died);
        assert_eq!(report.failures, 1);
        assert!(
            metrics
                .render(crate::metrics::Exposition::OpenMetrics)
                .unwrap()
                .contains(r#"herald_background_loop_up{loop="cluster_heartbeat"} 0"#)
        );

        let sweep = BackgroundLoop::IntegrationSweep;
        let mut waiting = stopped.clone();
        let this = supervisor.clone();
        let running = supervisor.spawn(sweep, Some(Duration::from_secs(60)), stopped.clone(), async move {
            this.round_completed(BackgroundLoop::IntegrationSweep);
            let _ = waiting.wait_for(|s| *s).await;
        });
        let text = metrics.render(crate::metrics::Exposition::OpenMetrics).unwrap();
        assert!(
            text.contains(r#"herald_background_loop_up{loop="integration_sweep"} 1"#),
            "{text}"
        );
        stop.send(true).unwrap();
        running.await.unwrap();
        assert_eq!(supervisor.report(sweep).status, LoopStatus::Stopped);
        assert_eq!(supervisor.report(sweep).last_round, Some(T0));
    }

    #[tokio::test]
    async fn a_loop_that_returns_without_being_told_to_stop_died() {
        let (supervisor, _, _) = supervisor();
        let (_stop, stopped) = watch::channel(false);
        let alerts = BackgroundLoop::AlertEvaluation;
        assert_eq!(supervisor.report(alerts).status, LoopStatus::NotRunning);
        supervisor.spawn(alerts, None, stopped, async {}).await.unwrap();
        assert_eq!(supervisor.report(alerts).status, LoopStatus::Died);
    }

    #[test]
    fn a_loop_stalls_after_three_periods_and_at_least_ten_minutes() {
        let minute = 60_000;
        let report = LoopReport {
            name: BackgroundLoop::IntegrationSweep,
            status: LoopStatus::Running,
            started_at: T0,
            last_round: Some(T0),
            period: Some(Duration::from_secs(300)),
            failures: 0,
            ended_at: None,
        };
        assert!(!report.stalled(T0 + 15 * minute));
        assert!(report.stalled(T0 + 15 * minute + 1));
        let fast = LoopReport {
            period: Some(Duration::from_secs(30)),
            ..report.clone()
        };
        assert!(!fast.stalled(T0 + 10 * minute));
        assert!(fast.stalled(T0 + 11 * minute));
        let untracked = LoopReport { period: None, ..report };
        assert!(!untracked.stalled(i64::MAX));
    }
}
