//! Ticket delivery: the worker that applies accepted events to Jira, exactly once per problem.
//!
//! The intake (`tickets`) stores events durably; this module takes them from the store and does
//! what each says to its problem's issue (`apply`). It sits above `tickets`, `integrations` and
//! `jira` because it needs all three: an event, its integration's settings and credentials, and the
//! client that speaks to that integration's Jira.
//!
//! How exactly once holds:
//! - **One worker per problem.** Only the head of a problem (its oldest event not applied) is
//!   claimed, under a lease, by one node at a time (`store::ticket_work`). A later event of the same
//!   problem waits for it; a head in the error list holds its problem until an admin acts.
//! - **Herald's own map.** Each problem's issue key is recorded in the same transaction that marks its
//!   event applied. Before a create, the problem is marked `creating`, durably: after a crash, a
//!   timeout or a lost answer, the next attempt searches Jira for the dedup label before creating.
//! - **Retries** with backoff for passing faults; Jira's `Retry-After` pauses the whole integration
//!   (`jira::Limiter`); faults retrying cannot fix park the event with Jira's own words.
//!
//! - [`targets`]: an integration's client, API flavour and limiter;
//! - [`apply`]: what one event does;
//! - [`failure`]: why an attempt failed, as the error list shows it;
//! - [`problems`]: the ticket list and the admin's resend and delete.

mod apply;
mod failure;
mod problems;
mod settings;
mod targets;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

pub use problems::{Deleted, Problem, TicketsError, stored_error};
pub use settings::TicketDeliverySettings;

use self::apply::{Job, Lease};
use self::failure::Failure;
use self::targets::Targets;
use crate::cluster::NodeId;
use crate::integrations::Integrations;
use crate::jira::Retry;
use crate::mail::Next;
use crate::metrics::Metrics;
use crate::store::{EventOutcome, Store, TicketEventRow, now_ms};
use crate::supervisor::{BackgroundLoop, Supervisor};

/// How often the worker looks for due events when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// How often applied events past their keeping time are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The node's ticket worker. Cheap to clone.
#[derive(Clone)]
pub struct TicketDelivery {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    targets: Targets,
    metrics: Arc<Metrics>,
    settings: TicketDeliverySettings,
    worker: String,
    wake: Arc<Notify>,
}

impl TicketDelivery {
    /// `wake` is notified by the intake after each commit, so a new event is applied at once.
    pub fn new(
        settings: &TicketDeliverySettings,
        store: Store,
        integrations: Integrations,
        node_id: &NodeId,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> TicketDelivery {
        TicketDelivery {
            inner: Arc::new(Inner {
                store,
                targets: Targets::new(integrations, settings.limiter, settings.client),
                metrics,
                settings: settings.clone(),
                worker: node_id.as_str().to_owned(),
                wake,
            }),
        }
    }

    /// Applies due events until `stop` turns true, at most `workers` at once; then lets the events in
    /// hand finish (an event cut off is taken back at the next start). While `may_claim` says no (a
    /// draining node), it takes no new events and finishes those in hand.
    pub async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        supervisor: Supervisor,
        may_claim: impl Fn() -> bool + Send + 'static,
    ) {
        let inner = &self.inner;
        match inner.store.release_ticket_events(&inner.worker).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                events = n,
                "re-queued ticket events this node held when it last stopped"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot re-queue ticket events left in hand"),
        }
        tracing::info!(workers = inner.settings.workers, "ticket delivery started");
        let mut running: JoinSet<()> = JoinSet::new();
        let mut pruned_at = tokio::time::Instant::now();
        while !*stop.borrow() {
            let free = if may_claim() {
                inner.settings.workers.saturating_sub(running.len())
            } else {
                0
            };
            let claimed = if free > 0 { self.claim(free).await } else { Vec::new() };
            let full = claimed.len() == free && free > 0;
            for (event, lease_until) in claimed {
                let this = self.clone();
                let supervisor = supervisor.clone();
                running.spawn(async move {
                    let what = format!("ticket event {}", event.id);
                    let apply = this.apply(&event, lease_until);
                    if supervisor
                        .guard(BackgroundLoop::TicketDelivery, &what, apply)
                        .await
                        .is_none()
                    {
                        // A panic: the event stays `sending` until this node restarts or its lease runs out.
                        tracing::error!(event = %event.id, "applying a ticket event panicked");
                    }
                });
            }
            if pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = tokio::time::Instant::now();
                self.prune().await;
            }
            if full {
                // More may be due: claim again as soon as a slot frees.
                tokio::select! {
                    _ = running.join_next() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            tokio::select! {
                Some(_) = running.join_next(), if !running.is_empty() => {}
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
        while running.join_next().await.is_some() {}
        tracing::info!("ticket delivery stopped");
    }

    /// Claims up to `n` heads; each with the lease it holds.
    async fn claim(&self, n: usize) -> Vec<(TicketEventRow, i64)> {
        let inner = &self.inner;
        let now = now_ms();
        let lease_until = now + i64::try_from(inner.settings.lease.as_millis()).unwrap_or(i64::MAX / 2);
        let limit = i64::try_from(n).unwrap_or(1);
        match inner
            .store
            .claim_ticket_events(&inner.worker, now, lease_until, limit)
            .await
        {
            Ok(events) => events.into_iter().map(|e| (e, lease_until)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim ticket events");
                Vec::new()
            }
        }
    }

    /// Applies one claimed event and records the outcome.
    async fn apply(&self, event: &TicketEventRow, lease_until: i64) {
        let inner = &self.inner;
        let now = now_ms();
        let lease = Lease {
            worker: inner.worker.clone(),
            until: AtomicI64::new(lease_until),
            length: inner.settings.lease,
        };
        let result = match inner.targets.get(&event.integration).await {
            Ok(target) => {
                let job = Job {
                    target: &target,
                    store: &inner.store,
                    event,
                    now,
                    search_settle: inner.settings.search_settle,
                    lease: &lease,
                };
                let result = job.run().await;
                let throttled = target.client.limiter().take_throttled();
                if throttled > 0 {
                    inner.metrics.tickets.throttled(&event.integration, throttled);
                }
                result
            }
            Err(failure) => Err(failure),
        };
        let (outcome, ticket) = match result {
            Ok(applied) => {
                inner
                    .metrics
                    .tickets
                    .applied(&event.integration, applied.action.as_str());
                tracing::info!(
                    integration = %event.integration, dedup_key = %event.dedup_key, event = %event.id,
                    action = applied.action.as_str(),
                    issue = applied.ticket.as_ref().and_then(|t| t.issue_key.as_deref()).unwrap_or(""),
                    "ticket event applied"
                );
                (EventOutcome::Applied, applied.ticket)
            }
            Err(failure) => {
                inner.metrics.tickets.failed(&event.integration, failure.kind);
                (self.after_failure(event, &failure, now), None)
            }
        };
        let finished = inner
            .store
            .finish_ticket_event(
                &inner.worker,
                &event.id,
                lease.until.load(Ordering::SeqCst),
                &outcome,
                ticket.as_ref(),
                now_ms(),
            )
            .await;
        match finished {
            Ok(true) => {}
            Ok(false) => tracing::info!(
                event = %event.id,
                "a ticket event was deleted or taken over while it was applied; its outcome is not recorded"
            ),
            // The event stays `sending` under its lease; at the next claim after the lease (or at this
            // node's restart) it is applied again, and the map makes that safe.
            Err(e) => tracing::warn!(event = %event.id, error = %e, "cannot record what became of a ticket event"),
        }
    }

    /// Whether to try a failed event again, and when.
    fn after_failure(&self, event: &TicketEventRow, failure: &Failure, now: i64) -> EventOutcome {
        let attempts = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
        let error = failure.detail.to_string();
        let policy = &self.inner.settings.retry;
        let permanent = failure.retry == Retry::Never;
        let next = policy.after_failure(permanent, attempts, event.created_at, now, rand::random());
        let outcome = match (next, failure.retry) {
            (Next::Park, _) => EventOutcome::Parked { error },
            // Not before the time Jira asked for.
            (Next::RetryAt(_), Retry::After(wait)) => EventOutcome::RetryAt {
                at: now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2)),
                error,
            },
            (Next::RetryAt(at), _) => EventOutcome::RetryAt { at, error },
        };
        if matches!(outcome, EventOutcome::Parked { .. }) {
            tracing::warn!(
                integration = %event.integration, dedup_key = %event.dedup_key, event = %event.id,
                kind = failure.kind, error = %failure.message,
                "ticket event parked in the error list: resend it once the cause is fixed"
            );
        } else {
            tracing::info!(
                integration = %event.integration, dedup_key = %event.dedup_key, event = %event.id,
                kind = failure.kind, error = %failure.message, attempts, "ticket event will be tried again"
            );
        }
        outcome
    }

    async fn prune(&self) {
        let keep = i64::try_from(self.inner.settings.keep_done.as_millis()).unwrap_or(i64::MAX / 2);
        match self.inner.store.prune_done_ticket_events(now_ms() - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned applied ticket events"),
            Err(e) => tracing::warn!(error = %e, "cannot prune applied ticket events"),
        }
    }
}
