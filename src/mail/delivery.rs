//! Delivery: a dispatcher claims due messages in batches, a pool of SMTP workers (one connection
//! each) sends them, and a completer records the outcomes in batched transactions.
//!
//! The workers send to the preferred relay that is up (see `relays`). While no relay is up the
//! dispatcher claims nothing: it probes the down relays when their probes are due and waits, so a
//! relay outage costs no write per message and leaves the queue's writer to the submissions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, mpsc, watch};

use super::MailSettings;
use super::attempt::{Attempt, Outcome, Prepared, outcome, prepare};
use super::relays::Relays;
use super::retry::{Next, RetryPolicy};
use super::smtp::{Connection, Outgoing, SendError, SmtpClient};
use crate::cluster::NodeId;
use crate::metrics::Metrics;
use crate::store::{ClaimedMail, Completion, Store, StoreError, now_ms};

/// How long a claimed message stays reserved for this node before it may be claimed again.
const LEASE: Duration = Duration::from_secs(600);
/// Longest sleep of an idle dispatcher (it also wakes on new mail and at the next due time).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Idle SMTP connections are closed after this long.
const CONNECTION_IDLE: Duration = Duration::from_secs(30);
const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(86_400);
/// Most messages a worker sends back to back before reporting their outcomes.
const PIPELINE_RUN: usize = 16;

#[derive(Clone)]
pub struct Delivery {
    store: Store,
    node_id: NodeId,
    relays: Relays,
    policy: RetryPolicy,
    workers: usize,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

/// How long to sleep until `at` (ms since the epoch): at least 5 ms, at most [`IDLE_POLL`].
fn until(at: i64) -> Duration {
    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).max(5)).min(IDLE_POLL)
}

/// Counts of one [`Delivery::deliver_due_batch`] step.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub delivered: usize,
    pub retried: usize,
    pub parked: usize,
    /// Put back in the queue uncharged: no relay could be reached.
    pub released: usize,
}

impl Delivery {
    /// The delivery engine of the mail section's relays, retry policy and connection count, or why a
    /// relay cannot be used (its URL, its CA file).
    pub fn new(
        settings: &MailSettings,
        store: Store,
        node_id: NodeId,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let relays = Relays::new(settings, store.clone(), node_id.clone(), metrics.clone())?;
        Ok(Self {
            store,
            node_id,
            relays,
            policy: settings.retry.clone(),
            workers: usize::try_from(settings.smtp_connections).map_or(1, |n| n.max(1)),
            wake,
            metrics,
        })
    }

    fn decide(&self, attempt: Attempt, now: i64, jitter: f64) -> Completion {
        let outcome = outcome(&attempt);
        let claimed = attempt.claimed;
        let attempts = claimed.attempts.saturating_add(1);
        let result = match outcome {
            Outcome::Delivered => Ok(()),
            Outcome::Failed(e) => Err((e, None)),
            Outcome::Deferred { recipients, error } => Err((SendError::Transient(error), Some(recipients))),
            Outcome::Refused { recipients, error } => Err((SendError::Permanent(error), Some(recipients))),
        };
        match result {
            Ok(()) => {
                let latency = Duration::from_millis(u64::try_from(now - claimed.created_at).unwrap_or(0));
                self.metrics.mail_delivered(latency);
                Completion::Delivered { id: claimed.id }
            }
            // The relay's fault, not the message's: back to the queue uncharged, unless it is too old.
            Err((SendError::Unreachable(error), _)) if !self.policy.expired(claimed.created_at, now) => {
                Completion::Release { id: claimed.id, error }
            }
            Err((SendError::Unreachable(error), _)) => {
                self.metrics.mail_failed("error");
                tracing::warn!(id = %claimed.id, error, "not delivered within HERALD_MAIL_MAX_AGE; moved to the error queue");
                Completion::Park {
                    id: claimed.id,
                    attempts: claimed.attempts,
                    error: format!(
                        "not delivered within HERALD_MAIL_MAX_AGE (the relay could not be reached: {error})"
                    ),
                    recipients: None,
                }
            }
            Err((err, recipients)) => {
                let permanent = matches!(err, SendError::Permanent(_));
                let attempts_u32 = u32::try_from(attempts).unwrap_or(u32::MAX);
                match self
                    .policy
                    .after_failure(permanent, attempts_u32, claimed.created_at, now, jitter)
                {
                    Next::RetryAt(at) => {
                        self.metrics.mail_failed("retry");
                        tracing::info!(id = %claimed.id, attempts, error = err.text(), "delivery failed; will retry");
                        Completion::Retry {
                            id: claimed.id,
                            attempts,
                            next_attempt_at: at,
                            error: err.text().to_owned(),
                            recipients,
                        }
                    }
                    Next::Park => {
                        self.metrics.mail_failed("error");
                        tracing::warn!(id = %claimed.id, attempts, error = err.text(), "delivery failed; moved to the error queue");
                        Completion::Park {
                            id: claimed.id,
                            attempts,
                            error: err.text().to_owned(),
                            recipients,
                        }
                    }
                }
            }
        }
    }

    /// Sends claimed messages to the preferred relay that is up, back to back over `conn` (pipelined
    /// when the relay allows it), and reports to the relay's health what the connection found. With no
    /// relay up, nothing is tried. `conn` is kept across calls, with the index of its relay: a worker
    /// whose relay is no longer the preferred one closes it and connects to the one that is.
    async fn attempt_run(&self, conn: &mut Option<(usize, Connection)>, claimed: Vec<ClaimedMail>) -> Vec<Attempt> {
        let Some((index, relay)) = self.relays.preferred() else {
            let reason = "no relay can be reached".to_owned();
            return claimed
                .into_iter()
                .map(|claimed| Attempt {
                    claimed,
                    recipients: Vec::new(),
                    sending: Vec::new(),
                    result: Err(SendError::Unreachable(reason.clone())),
                })
                .collect();
        };
        let mut current = match conn.take() {
            Some((i, c)) if i == index => Some(c),
            Some((i, c)) => {
                if let Some(previous) = self.relays.get(i) {
                    previous.client.close(c).await;
                }
                None
            }
            None => None,
        };
        let attempts = self.attempt_all(&relay.client, &mut current, claimed).await;
        *conn = current.map(|c| (index, c));
        let unreachable = attempts.iter().find_map(|a| match &a.result {
            Err(SendError::Unreachable(reason)) => Some(reason.as_str()),
            _ => None,
        });
        match unreachable {
            Some(reason) => self.relays.failed(index, reason, false).await,
            None if !attempts.is_empty() => self.relays.succeeded(index).await,
            None => {}
        }
        attempts
    }

    /// Sends claimed messages back to back over `conn` to `client`'s relay.
    async fn attempt_all(
        &self,
        client: &SmtpClient,
        conn: &mut Option<Connection>,
        mut claimed: Vec<ClaimedMail>,
    ) -> Vec<Attempt> {
        let prepared: Vec<Result<Prepared, SendError>> = claimed.iter_mut().map(prepare).collect();
        let sendable: Vec<&Outgoing> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|p| &p.outgoing)
            .collect();
        let mut sent = client.send_many(conn, &sendable).await.into_iter();
        claimed
            .into_iter()
            .zip(prepared)
            .map(|(claimed, prepared)| match prepared {
                Ok(Prepared {
                    recipients, sending, ..
                }) => Attempt {
                    claimed,
                    recipients,
                    sending,
                    result: sent
                        .next()
                        .unwrap_or_else(|| Err(SendError::Transient("not sent".into()))),
                },
                Err(e) => Attempt {
                    claimed,
                    recipients: Vec::new(),
                    sending: Vec::new(),
                    result: Err(e),
                },
            })
            .collect()
    }

    /// One deterministic step, for tests and tools: claims up to `limit` due messages, sends them
    /// one after another over one connection, records the outcomes.
    pub async fn deliver_due_batch(&self, limit: i64) -> Result<BatchReport, StoreError> {
        let now = now_ms();
        let lease_until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let claimed = self
            .store
            .claim_due_mail(self.node_id.as_str(), now, lease_until, limit)
            .await?;
        let mut conn = None;
        let attempts = self.attempt_run(&mut conn, claimed).await;
        let completions: Vec<Completion> = attempts
            .into_iter()
            .map(|a| self.decide(a, now_ms(), rand::rng().random()))
            .collect();
        self.close(conn).await;
        self.store.complete_mail(&completions, now_ms()).await?;
        let mut report = BatchReport::default();
        for c in &completions {
            match c {
                Completion::Delivered { .. } => report.delivered += 1,
                Completion::Retry { .. } => report.retried += 1,
                Completion::Park { .. } => report.parked += 1,
                Completion::Release { .. } => report.released += 1,
            }
        }
        Ok(report)
    }

    /// Runs until `shutdown` turns true. Messages claimed but not sent by then go back to the queue.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let node = self.node_id.as_str().to_owned();
        match self.store.release_sending_mail(&node, None).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                messages = n,
                "re-queued mail that was being sent when this node last stopped"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot re-queue mail left in flight"),
        }
        let relays: Vec<&str> = self.relays.all().iter().map(|r| r.name.as_str()).collect();
        tracing::info!(relays = ?relays, connections = self.workers, "mail delivery started");
        self.relays.publish_all(true).await;
        let capacity = self.workers * 32;
        let (jobs_tx, jobs_rx) = async_channel::bounded::<ClaimedMail>(capacity);
        let (done_tx, done_rx) = mpsc::channel::<Attempt>(capacity * 2);
        // Workers signal it when the job channel is half empty, so the dispatcher claims more at once.
        let space = Arc::new(Notify::new());
        let mut workers = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            workers.push(tokio::spawn(self.clone().work(
                jobs_rx.clone(),
                done_tx.clone(),
                space.clone(),
                capacity / 2,
                shutdown.clone(),
            )));
        }
        drop(done_tx);
        let completer = tokio::spawn(self.clone().complete(done_rx));

        let mut last_maintenance = Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_maintenance.elapsed() > Duration::from_secs(60) {
                self.maintain().await;
                last_maintenance = Instant::now();
            }
            if self.relays.next_probe_at().is_some_and(|at| at <= now_ms()) {
                // Probes run beside the dispatch; a relay that comes back wakes the dispatcher.
                let relays = self.relays.clone();
                let wake = self.wake.clone();
                tokio::spawn(async move {
                    if relays.probe_due().await {
                        wake.notify_one();
                    }
                });
            }
            if self.relays.preferred().is_none() {
                // Nothing can be sent: claim nothing, and wait for the next probe (or a relay back).
                let wait = self.relays.next_probe_at().map_or(IDLE_POLL, until);
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let room = capacity.saturating_sub(jobs_tx.len());
            if room < capacity / 2 {
                // The workers have plenty to do: wait until they have taken half of it.
                tokio::select! {
                    () = space.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let claimed = {
                let now = now_ms();
                let lease_until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
                let limit = i64::try_from(room).unwrap_or(256);
                match self.store.claim_due_mail(&node, now, lease_until, limit).await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim mail for delivery");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            };
            let got = claimed.len();
            for mail in claimed {
                if jobs_tx.send(mail).await.is_err() {
                    break;
                }
            }
            if got > 0 {
                continue;
            }
            // Nothing due: sleep until new mail, the next due time or probe, or a worker frees room.
            let wait = match self.store.next_mail_due(&node).await {
                Ok(Some(due)) => until(due),
                Ok(None) => IDLE_POLL,
                Err(_) => Duration::from_secs(1),
            };
            let wait = self.relays.next_probe_at().map_or(wait, |at| wait.min(until(at)));
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        jobs_tx.close();
        for worker in workers {
            let _ = worker.await;
        }
        let _ = completer.await;
        if let Err(e) = self.store.release_sending_mail(&node, None).await {
            tracing::warn!(error = %e, "cannot re-queue unsent mail at shutdown; it is re-queued at the next start");
        }
        self.relays.publish_all(false).await;
        tracing::info!("mail delivery stopped");
    }

    async fn work(
        self,
        jobs: async_channel::Receiver<ClaimedMail>,
        done: mpsc::Sender<Attempt>,
        space: Arc<Notify>,
        low_water: usize,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut conn: Option<(usize, Connection)> = None;
        loop {
            let job = tokio::select! {
                job = jobs.recv() => job,
                () = tokio::time::sleep(CONNECTION_IDLE), if conn.is_some() => {
                    self.close(conn.take()).await;
                    continue;
                }
            };
            let Ok(job) = job else { break };
            // Take what else is waiting (up to a small run) to send it back to back.
            let mut run = vec![job];
            while run.len() < PIPELINE_RUN {
                match jobs.try_recv() {
                    Ok(job) => run.push(job),
                    Err(_) => break,
                }
            }
            if jobs.len() <= low_water {
                space.notify_one();
            }
            if *shutdown.borrow() {
                break;
            }
            let mut stopped = false;
            for attempt in self.attempt_run(&mut conn, run).await {
                stopped |= done.send(attempt).await.is_err();
            }
            if stopped {
                break;
            }
        }
        self.close(conn.take()).await;
    }

    /// Closes a worker's connection politely (QUIT), if it has one.
    async fn close(&self, conn: Option<(usize, Connection)>) {
        if let Some((index, c)) = conn {
            if let Some(relay) = self.relays.get(index) {
                relay.client.close(c).await;
            }
        }
    }

    async fn complete(self, mut done: mpsc::Receiver<Attempt>) {
        let mut batch = Vec::with_capacity(256);
        while done.recv_many(&mut batch, 256).await > 0 {
            let now = now_ms();
            let completions: Vec<Completion> = {
                let mut rng = rand::rng();
                batch.drain(..).map(|a| self.decide(a, now, rng.random())).collect()
            };
            // Retry a failed write a few times: the messages were sent, and recording that keeps
            // them from being sent again after their lease runs out.
            for wait in [0u64, 200, 1000, 5000] {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                match self.store.complete_mail(&completions, now_ms()).await {
                    Ok(()) => {
                        // Released messages are due again at once (on the next relay up, or when one
                        // comes back): the dispatcher, which may be idle, claims them now.
                        if completions.iter().any(|c| matches!(c, Completion::Release { .. })) {
                            self.wake.notify_one();
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, messages = completions.len(), "cannot record delivery results")
                    }
                }
            }
        }
    }

    /// Periodic housekeeping: leases that ran out, old idempotency keys, and, while no relay is up,
    /// mail that has waited longer than `HERALD_MAIL_MAX_AGE` (its age counts while it waits for a
    /// relay, though no attempt is charged).
    async fn maintain(&self) {
        let now = now_ms();
        if self.relays.preferred().is_none() {
            let max_age = i64::try_from(self.policy.max_age.as_millis()).unwrap_or(i64::MAX);
            let error = "not delivered within HERALD_MAIL_MAX_AGE: no relay could be reached";
            match self
                .store
                .park_expired_mail(self.node_id.as_str(), now.saturating_sub(max_age), error, now)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(messages = n, "{error}; moved to the error queue");
                    for _ in 0..n {
                        self.metrics.mail_failed("error");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot move expired mail to the error queue"),
            }
        }
        if let Err(e) = self.store.release_sending_mail(self.node_id.as_str(), Some(now)).await {
            tracing::warn!(error = %e, "cannot release expired mail leases");
        }
        let before = now - i64::try_from(IDEMPOTENCY_RETENTION.as_millis()).unwrap_or(0);
        if let Err(e) = self.store.prune_idempotency_keys(before).await {
            tracing::warn!(error = %e, "cannot prune idempotency keys");
        }
    }
}
