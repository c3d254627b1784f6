//! The periodic sweep that re-verifies every integration, and the writer that batches history rows.
//!
//! One integration's check failing inside Herald (a panic on a hostile answer) must not end the sweep,
//! nor the loop: each check is caught, logged and counted, and the loop reports its rounds and
//! failures to the [`Supervisor`], which puts a stalled or dead sweep in `/metrics` and the alerts.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::{HISTORY_LENGTH, Integrations};
use crate::store::{CheckRecord, Store};
use crate::supervisor::{BackgroundLoop, Supervisor, panic_text};

pub(super) enum HistoryMessage {
    Record(CheckRecord),
    /// Answered once every record sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// Writes history rows in batches (one transaction per batch), so a sweep of thousands of integrations
/// costs a handful of commits rather than one per check.
pub(super) async fn write_history(store: Store, mut receiver: mpsc::Receiver<HistoryMessage>) {
    let mut messages = Vec::with_capacity(1024);
    while receiver.recv_many(&mut messages, 1024).await > 0 {
        let mut records = Vec::with_capacity(messages.len());
        let mut flushes = Vec::new();
        for message in messages.drain(..) {
            match message {
                HistoryMessage::Record(r) => records.push(r),
                HistoryMessage::Flush(done) => flushes.push(done),
            }
        }
        if let Err(e) = store.record_checks(&records).await {
            tracing::warn!(error = %e, lost = records.len(), "cannot record integration check history");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The part of the integrations one node sweeps: those whose stable hash of the name, modulo
/// `of`, is `index`. In a cluster, `of` is the number of live nodes and `index` this node's rank
/// among them, so each integration is checked by one node per interval, not by all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepShare {
    pub index: usize,
    pub of: usize,
}

impl SweepShare {
    pub const ALL: SweepShare = SweepShare { index: 0, of: 1 };
    /// No integration: a draining node sweeps nothing.
    pub const NONE: SweepShare = SweepShare { index: 0, of: 0 };

    pub fn includes(&self, name: &str) -> bool {
        // FNV-1a: the same on every node and every version, unlike the standard library's hasher.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        match self.of {
            0 => false,
            1 => true,
            of => (hash % of as u64) as usize == self.index % of,
        }
    }
}

/// Why one integration of a sweep has no verdict.
enum ItemFailure {
    Unreadable,
    Panicked,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SweepSummary {
    pub checked: usize,
    pub healthy: usize,
    pub faulty: usize,
    /// Integrations that could not be read (e.g. undecryptable secrets).
    pub unreadable: usize,
    /// Checks that failed inside Herald (a panic, logged); the sweep went on without their verdict.
    pub failed: usize,
    pub duration: Duration,
}

impl Integrations {
    /// Waits until every history record sent so far is written.
    pub async fn flush_history(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.history.send(HistoryMessage::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Checks `names` again now, in the background, `HERALD_CHECK_CONCURRENCY` at a time; each verdict
    /// is recorded as a sweep's is. Starts nothing and returns false while an earlier batch still runs.
    pub fn check_in_background(&self, names: Vec<String>) -> bool {
        /// Clears the running flag however the batch ends.
        struct Running(Integrations);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.inner.batch_running.store(false, Ordering::Release);
            }
        }
        if self.inner.batch_running.swap(true, Ordering::AcqRel) {
            return false;
        }
        let running = Running(self.clone());
        tokio::spawn(async move {
            let this = &running.0;
            let count = names.len();
            futures::stream::iter(names)
                .for_each_concurrent(this.inner.concurrency, |name| async move {
                    if let Err(e) = this.check_now(&name).await {
                        tracing::warn!(integration = %name, error = %e, "batch check: cannot check");
                    }
                })
                .await;
            this.flush_history().await;
            tracing::info!(count, "batch check finished");
        });
        true
    }

    /// Whether a batch of checks started by `check_in_background` is still running.
    pub fn batch_running(&self) -> bool {
        self.inner.batch_running.load(Ordering::Acquire)
    }

    /// Re-verifies every integration once, `HERALD_CHECK_CONCURRENCY` at a time, then trims the history.
    pub async fn sweep_once(&self) -> Result<SweepSummary, super::IntegrationError> {
        self.sweep_share(SweepShare::ALL).await
    }

    /// Re-verifies this node's share of the integrations once.
    pub async fn sweep_share(&self, share: SweepShare) -> Result<SweepSummary, super::IntegrationError> {
        if share.of == 0 {
            // A draining node sweeps nothing, and its last sweep stays the last real one.
            return Ok(SweepSummary::default());
        }
        let started = Instant::now();
        let mut rows = self.inner.store.list_integrations().await?;
        let mut summary = SweepSummary::default();
        let names: HashSet<String> = rows.iter().map(|r| r.name.clone()).collect();
        rows.retain(|row| share.includes(&row.name));
        let verdicts: Vec<Result<bool, ItemFailure>> = futures::stream::iter(rows)
            .map(|row| async move {
                let name = row.name.clone();
                let item = async move {
                    match self.open(row) {
                        Ok(integration) => {
                            let integration = Arc::new(integration);
                            self.inner
                                .records
                                .insert(integration.name.to_string(), integration.clone())
                                .await;
                            Ok(self.check_fresh(integration).await.report.healthy)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "sweep: cannot read integration");
                            Err(ItemFailure::Unreadable)
                        }
                    }
                };
                std::panic::AssertUnwindSafe(item)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| {
                        tracing::error!(
                            integration = %name,
                            panic = %panic_text(&panic),
                            "sweep: the check failed inside Herald; the sweep goes on"
                        );
                        Err(ItemFailure::Panicked)
                    })
            })
            .buffer_unordered(self.inner.concurrency)
            .collect()
            .await;
        for verdict in verdicts {
            match verdict {
                Ok(true) => summary.healthy += 1,
                Ok(false) => summary.faulty += 1,
                Err(ItemFailure::Unreadable) => summary.unreadable += 1,
                Err(ItemFailure::Panicked) => summary.failed += 1,
            }
        }
        summary.checked = summary.healthy + summary.faulty;
        // Integrations deleted on another node: drop their gauges here too.
        let gone: Vec<String> = {
            let last = self.inner.last_healthy.lock().unwrap_or_else(|e| e.into_inner());
            last.keys().filter(|n| !names.contains(*n)).cloned().collect()
        };
        for name in gone {
            self.forget(&name);
        }
        self.flush_history().await;
        if let Err(e) = self.inner.store.prune_check_history(HISTORY_LENGTH).await {
            tracing::warn!(error = %e, "cannot trim integration check history");
        }
        summary.duration = started.elapsed();
        *self.inner.last_sweep.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((crate::store::now_ms(), summary.clone()));
        tracing::info!(
            share = %format!("{}/{}", share.index, share.of),
            checked = summary.checked,
            healthy = summary.healthy,
            faulty = summary.faulty,
            unreadable = summary.unreadable,
            failed = summary.failed,
            ms = summary.duration.as_millis() as u64,
            "integration sweep finished"
        );
        Ok(summary)
    }

    /// Sweeps every `HERALD_CHECK_INTERVAL` (the first one interval after start) until `stop` turns true.
    /// Each finished sweep is a completed round for `supervisor`; failed checks and failed sweeps are
    /// counted there, and the loop goes on.
    pub async fn run_sweeps(
        self,
        mut stop: watch::Receiver<bool>,
        share: impl Fn() -> SweepShare + Send,
        supervisor: Supervisor,
    ) {
        let name = BackgroundLoop::IntegrationSweep;
        let period = self.inner.interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
            tokio::select! {
                result = supervisor.guard(name, "sweep", self.sweep_share(share())) => match result {
                    Some(Ok(summary)) => {
                        supervisor.count_failures(name, "panic", summary.failed as u64);
                        supervisor.round_completed(name);
                    }
                    Some(Err(e)) => {
                        supervisor.count_failures(name, "error", 1);
                        tracing::warn!(error = %e, "integration sweep failed");
                    }
                    None => {}
                },
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        tracing::debug!("integration sweep stopped");
    }
}

#[cfg(test)]
mod share_tests {
    use super::SweepShare;

    #[test]
    fn every_name_is_in_exactly_one_share() {
        for of in 1..=5 {
            for i in 0..200 {
                let name = format!("jira-{i}");
                let owners = (0..of)
                    .filter(|&index| SweepShare { index, of }.includes(&name))
                    .count();
                assert_eq!(owners, 1, "{name} with {of} nodes");
            }
        }
        assert!(SweepShare::ALL.includes("anything"));
        assert!(!SweepShare::NONE.includes("anything"));
    }

    #[test]
    fn shares_are_roughly_even() {
        let of = 3;
        let counts: Vec<usize> = (0..of)
            .map(|index| {
                (0..3000)
                    .filter(|i| SweepShare { index, of }.includes(&format!("integration-{i}")))
                    .count()
            })
            .collect();
        assert!(counts.iter().all(|&c| (800..=1200).contains(&c)), "{counts:?}");
    }
}
