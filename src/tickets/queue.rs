//! Accepting events durably: like the mail queue, concurrent posts share one transaction (group
//! commit) and each caller is answered only after the commit that holds its events.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};

use super::event::{Event, InvalidEvent, check_dedup_key};
use super::template::{EventContext, Template};
use crate::cluster::NodeId;
use crate::error_kind::{Classified, ErrorKind};
use crate::mail::IdempotencyKey;
use crate::metrics::{IntegrationFigures, Metrics};
use crate::store::{
    HeldWriter, NewEventPost, NewTicketEvent, PostOutcome, Store, StoreError, TicketEventFigures, now_ms,
};
use crate::timefmt::rfc3339_ms;

/// Largest number of posts committed in one transaction.
const MAX_BATCH: usize = 256;
/// How long an `Idempotency-Key` is remembered.
const KEY_LIFETIME_MS: i64 = 24 * 3600 * 1000;
/// How often the committer forgets expired keys.
const PRUNE_EVERY_MS: i64 = 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("no integration named `{0}`")]
    IntegrationNotFound(String),
    #[error(
        "the integration `{0}` does not have tickets enabled: set `tickets.enabled` to true in its settings \
         to accept events for it"
    )]
    TicketsDisabled(String),
    #[error("the Idempotency-Key was already used for a different request")]
    KeyConflict,
    #[error("the event intake is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classified for EventError {
    fn kind(&self) -> ErrorKind {
        match self {
            EventError::IntegrationNotFound(_) => ErrorKind::NotFound,
            EventError::TicketsDisabled(_) | EventError::KeyConflict => ErrorKind::Conflict,
            EventError::ShuttingDown => ErrorKind::Unavailable,
            EventError::Invalid(e) => e.kind(),
            EventError::Store(e) => e.kind(),
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            EventError::TicketsDisabled(_) => Some("tickets_disabled"),
            EventError::KeyConflict => Some("idempotency_key_reused"),
            EventError::Store(e) => e.code(),
            _ => None,
        }
    }

    fn public_detail(&self) -> String {
        match self {
            EventError::Store(e) => e.public_detail(),
            other => other.to_string(),
        }
    }
}

/// The answer to a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The events' ids (UUIDv7), in the order of the post.
    pub ids: Vec<String>,
    /// False when an `Idempotency-Key` matched an earlier, identical post: nothing new was stored.
    pub created: bool,
}

/// Who posted, and how the post may be retried.
#[derive(Debug, Clone)]
pub struct Origin {
    pub user: String,
    pub idempotency_key: Option<IdempotencyKey>,
}

struct Pending {
    post: NewEventPost,
    reply: oneshot::Sender<Result<(PostOutcome, Vec<String>), String>>,
}

/// The node's event intake. Cheap to clone.
#[derive(Clone)]
pub struct TicketEvents {
    store: Store,
    node_id: NodeId,
    metrics: Arc<Metrics>,
    posts: mpsc::Sender<Pending>,
    /// Notified after each commit: the ticket worker applies new events at once.
    pub wake: Arc<Notify>,
}

/// Whether an integration's stored configuration turns tickets on (`tickets.enabled`).
///
/// Read from the stored JSON rather than the integration model, so that the intake does not depend
/// on how the ticket settings are typed: `{"spec": {…, "tickets": {"enabled": true, …}}}`.
pub fn tickets_enabled(config: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(config).is_ok_and(|c| enabled_in(&c))
}

fn enabled_in(config: &serde_json::Value) -> bool {
    ticket_setting(config, "enabled").and_then(serde_json::Value::as_bool) == Some(true)
}

/// One key of the stored configuration's `tickets` object.
fn ticket_setting<'a>(config: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    let tickets = config.pointer("/spec/tickets").or_else(|| config.get("tickets"))?;
    tickets.get(key)
}

impl TicketEvents {
    /// Creates the intake and starts its committer task, which ends when every clone is dropped.
    pub fn start(store: Store, node_id: NodeId, metrics: Arc<Metrics>) -> TicketEvents {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let wake = Arc::new(Notify::new());
        tokio::spawn(commit_loop(store.clone(), rx, wake.clone(), metrics.clone()));
        TicketEvents {
            store,
            node_id,
            metrics,
            posts: tx,
            wake,
        }
    }

    /// Refuses an integration that does not exist (not found) or does not have tickets enabled
    /// (conflict).
    pub async fn check_integration(&self, name: &str) -> Result<(), EventError> {
        self.dedup_template(name).await.map(drop)
    }

    /// The integration's `tickets.dedup` template, if it has one; refuses an integration that does
    /// not exist or does not have tickets enabled.
    async fn dedup_template(&self, name: &str) -> Result<Option<Template>, EventError> {
        let stored = self
            .store
            .integration(name)
            .await?
            .ok_or_else(|| EventError::IntegrationNotFound(name.to_owned()))?;
        let config: serde_json::Value = serde_json::from_str(&stored.config).unwrap_or_default();
        if !enabled_in(&config) {
            return Err(EventError::TicketsDisabled(name.to_owned()));
        }
        let source = ticket_setting(&config, "dedup")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.trim().is_empty());
        // Checked when the integration was saved; a stored template that no longer parses is
        // treated like one that fails (see `problem_key`).
        Ok(
            source.and_then(|source| match Template::parse("tickets.dedup", source) {
                Ok(template) => Some(template),
                Err(e) => {
                    tracing::warn!(integration = %name, error = %e,
                    "the integration's tickets.dedup template does not compile; using events' own dedup keys");
                    None
                }
            }),
        )
    }

    /// Stores the events of one post durably, all or none, and returns their ids. Concurrent posts
    /// share one transaction (group commit); each caller is answered after the commit that holds its
    /// events. Every integration named must exist and have tickets enabled.
    pub async fn submit(&self, mut events: Vec<Event>, origin: &Origin) -> Result<Accepted, EventError> {
        if events.is_empty() {
            return Err(InvalidEvent::new("", "a post must carry at least one event").into());
        }
        let mut integrations: Vec<&str> = events.iter().map(|e| e.integration.as_str()).collect();
        integrations.sort_unstable();
        integrations.dedup();
        let mut templates = std::collections::HashMap::new();
        for name in integrations {
            templates.insert(name.to_owned(), self.dedup_template(name).await?);
        }
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        // The request as sent, before Herald stamps its times on it: a retry hashes the same.
        let idempotency = match &origin.idempotency_key {
            Some(key) => {
                let sent = serde_json::to_vec(&events).map_err(corrupt)?;
                let hash: String = Sha256::digest(&sent).iter().map(|b| format!("{b:02x}")).collect();
                Some((key.as_str().to_owned(), hash))
            }
            None => None,
        };
        let now = now_ms();
        let accepted_at = rfc3339_ms(now);
        let mut rows = Vec::with_capacity(events.len());
        for event in &mut events {
            event.stamp(&accepted_at);
            // The problem is named once, at acceptance: the worker applies each problem's events in
            // order, so a later edit of the template does not split a problem's events.
            let dedup_key = match templates.get(&event.integration).and_then(Option::as_ref) {
                Some(template) => problem_key(template, event),
                None => event.dedup_key.clone(),
            };
            rows.push(NewTicketEvent {
                // Assigned by the committer, in commit order.
                id: String::new(),
                integration: event.integration.clone(),
                dedup_key,
                status: event.status.as_str(),
                source: event.source.as_str(),
                context: serde_json::to_string(&event).map_err(corrupt)?,
            });
        }
        let post = NewEventPost {
            node_id: self.node_id.to_string(),
            submitted_by: origin.user.clone(),
            now,
            idempotency,
            events: rows,
        };
        let (reply, answer) = oneshot::channel();
        self.posts
            .send(Pending { post, reply })
            .await
            .map_err(|_| EventError::ShuttingDown)?;
        match answer.await.map_err(|_| EventError::ShuttingDown)? {
            Ok((PostOutcome::Stored, ids)) => Ok(Accepted { ids, created: true }),
            Ok((PostOutcome::Duplicate(ids), _)) => Ok(Accepted { ids, created: false }),
            Ok((PostOutcome::KeyConflict, _)) => Err(EventError::KeyConflict),
            Err(unavailable) => Err(EventError::Store(StoreError::Unavailable(sqlx::Error::Protocol(
                unavailable,
            )))),
        }
    }

    /// Per integration with events still to apply (every node's): queued, in error, the oldest.
    pub async fn figures(&self) -> Result<Vec<TicketEventFigures>, EventError> {
        Ok(self.store.ticket_event_figures().await?)
    }

    /// Reads the figures into the metrics' gauges.
    pub async fn update_metrics(&self) -> Result<(), EventError> {
        let figures = self.figures().await?;
        let now = now_ms();
        self.metrics
            .tickets
            .set_figures(figures.iter().map(|f| IntegrationFigures {
                integration: &f.integration,
                queued: f.queued,
                errors: f.errors,
                oldest_age_seconds: f.oldest_queued_at.map_or(0, |at| (now - at).max(0) / 1000),
            }));
        Ok(())
    }
}

/// The problem an event belongs to by the integration's `tickets.dedup` template: its result,
/// trimmed, or the event's own key when it renders blank. A template that fails for this event (or
/// makes a key that is too long or not printable) falls back to the event's own key, with a
/// warning: refusing the post would lose it (Alertmanager does not retry a 400), and a sender
/// cannot fix an integration's template.
fn problem_key(template: &Template, event: &Event) -> String {
    let context = EventContext::from(event.clone());
    let key = match template.render(&context) {
        Ok(rendered) => rendered.trim().to_owned(),
        Err(e) => {
            tracing::warn!(integration = %event.integration, error = %e,
                "the integration's tickets.dedup template failed for an event; using the event's own dedup key");
            return event.dedup_key.clone();
        }
    };
    if key.is_empty() {
        return event.dedup_key.clone();
    }
    if let Err(e) = check_dedup_key(&key, "tickets.dedup") {
        tracing::warn!(integration = %event.integration, error = %e,
            "the integration's tickets.dedup template made an unusable key; using the event's own dedup key");
        return event.dedup_key.clone();
    }
    key
}

/// Group commit: takes every post waiting, gives their events ids in commit order, stores them in
/// one transaction, answers each.
async fn commit_loop(store: Store, mut rx: mpsc::Receiver<Pending>, wake: Arc<Notify>, metrics: Arc<Metrics>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut pruned_at = 0;
    let mut writer = HeldWriter::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // UUIDv7s from one generator are increasing: on this node, id order is commit order, the
        // order in which the events of one key are applied.
        for pending in &mut batch {
            for event in &mut pending.post.events {
                event.id = uuid::Uuid::now_v7().to_string();
            }
        }
        let posts: Vec<NewEventPost> = batch.iter().map(|p| p.post.clone()).collect();
        let result = async { writer.get(&store).await?.insert_ticket_events(&posts).await }.await;
        writer.after_batch(result.is_ok(), !rx.is_empty());
        match result {
            Ok(outcomes) => {
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    // Counted here, not by the request: a client gone before its answer had its
                    // events stored all the same.
                    if outcome == PostOutcome::Stored {
                        for event in &pending.post.events {
                            metrics.tickets.accepted(event.source, 1);
                        }
                    }
                    let ids = pending.post.events.into_iter().map(|e| e.id).collect();
                    let _ = pending.reply.send(Ok((outcome, ids)));
                }
                wake.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, posts = batch.len(), "cannot store ticket events");
                let text = e.to_string();
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(text.clone()));
                }
                // Do not spin on a database that is down.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let now = now_ms();
        if now - pruned_at >= PRUNE_EVERY_MS {
            pruned_at = now;
            writer.release();
            if let Err(e) = store.prune_ticket_event_keys(now - KEY_LIFETIME_MS).await {
                tracing::warn!(error = %e, "cannot forget expired event idempotency keys");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_enabled_only_by_a_true_setting() {
        assert!(tickets_enabled(
            r#"{"spec": {"url": "x", "tickets": {"enabled": true}}}"#
        ));
        assert!(!tickets_enabled(
            r#"{"spec": {"url": "x", "tickets": {"enabled": false}}}"#
        ));
        assert!(!tickets_enabled(r#"{"spec": {"url": "x"}}"#));
        assert!(!tickets_enabled(r#"{"spec": {"tickets": {"enabled": "yes"}}}"#));
        assert!(!tickets_enabled("not json"));
    }

    #[test]
    fn the_dedup_template_names_the_problem_or_falls_back_to_the_events_key() {
        let event: Event = serde_json::from_value::<super::super::EventSubmission>(serde_json::json!({
            "integration": "jira", "dedup_key": "own", "status": "firing", "summary": "s",
            "labels": {"alertname": "DiskFull"}}))
        .unwrap()
        .validate()
        .unwrap();
        let key = |source: &str| problem_key(&Template::parse("tickets.dedup", source).unwrap(), &event);
        assert_eq!(key(" {{ labels.alertname }} "), "DiskFull");
        assert_eq!(key("{{ labels.missing }}"), "own");
        assert_eq!(key("{{ 'x' * 300 }}"), "own");
        assert_eq!(key("{{ 1 / 0 }}"), "own");
    }

    #[test]
    fn event_errors_say_their_kind() {
        let disabled = EventError::TicketsDisabled("jira".into());
        assert_eq!(
            (disabled.kind(), disabled.code()),
            (ErrorKind::Conflict, Some("tickets_disabled"))
        );
        assert!(disabled.to_string().contains("tickets.enabled"));
        assert_eq!(EventError::IntegrationNotFound("x".into()).kind(), ErrorKind::NotFound);
        assert_eq!(EventError::ShuttingDown.kind(), ErrorKind::Unavailable);
        let invalid = EventError::from(InvalidEvent::new("dedup_key", "is empty"));
        assert_eq!(
            invalid.kind(),
            ErrorKind::Invalid {
                field: "dedup_key".into()
            }
        );
    }
}
