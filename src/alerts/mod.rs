//! Health alerts, mailed through Herald's own queue: an integration turning faulty or healthy
//! again, the cluster's error queue over its threshold, mail waiting too long, a node going
//! offline, a background loop of the evaluating node dead or stalled.
//!
//! One node evaluates the rules every `HERALD_ALERT_INTERVAL`: it observes the conditions, decides
//! the transitions ([`rules`]), queues one digest mail for them with an idempotency key derived from
//! the transitions ([`digest`]), and only then writes the new states. A crash between the two makes
//! the next evaluation find the same transitions, whose mail the queue recognises as already queued.

pub mod conditions;
pub mod digest;
pub mod rules;
mod ticket_conditions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::error_kind::{Classified, ErrorKind};
use crate::integrations::Integrations;
use crate::links::Link;
use crate::mail::{IdempotencyKey, InvalidMail, MailError, MailQueue, MailSubmission, Origin, ValidMail};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::supervisor::{BackgroundLoop, Supervisor};
use crate::timefmt::rfc3339_ms;

/// The `submitted_by` of alert mail in the queue (and the owner of its idempotency keys).
pub const SUBMITTED_BY: &str = "herald-alerts";

/// An alert whose last mailed state is firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringAlert {
    /// `integration:<name>`, `node:<id>`, `error-queue`, `queue-age`, `loop:<node>:<loop>`.
    pub key: String,
    pub summary: String,
    /// When it began to hold (ms since the epoch).
    pub since: i64,
}

/// What one evaluation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluationSummary {
    /// Conditions observed.
    pub observed: usize,
    /// Conditions firing (as last mailed) after the evaluation.
    pub firing: usize,
    /// Conditions whose change is waiting out the debounce.
    pub pending: usize,
    /// Transitions in this evaluation's mail.
    pub transitions: usize,
    /// The mail of those transitions, when there were some.
    pub mail_id: Option<String>,
    /// The mail had been queued already (by an evaluation whose state write was lost).
    pub already_queued: bool,
    /// Another node was evaluating (PostgreSQL): this one left the round to it.
    pub skipped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot queue the alert mail: {0}")]
    Mail(#[from] MailError),
    #[error("the alert mail is not valid: {0}")]
    InvalidMail(#[from] InvalidMail),
    #[error("alerts are off: set HERALD_ALERT_EMAILS to the addresses that should receive them")]
    Off,
}

/// The alerts section of the settings.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Who receives health alerts; alerts are off when empty.
    pub recipients: Vec<String>,
    /// How often the alert rules are evaluated.
    pub interval: Duration,
    /// How long a condition (or its clearing) must last before a mail is sent.
    pub debounce: Duration,
    /// The error queue (whole cluster) alerts when it holds more messages than this.
    pub error_queue: i64,
    /// The queue alerts when its oldest message has waited longer than this.
    pub queue_age: Duration,
    /// A node that stopped cleanly alerts only once it has stayed stopped this long (a node that
    /// falls silent alerts at once).
    pub stopped_node: Duration,
    /// A mail relay alerts once it has been down this long.
    pub relay_down: Duration,
}

impl Classified for AlertError {
    fn kind(&self) -> ErrorKind {
        match self {
            AlertError::Store(e) => e.kind(),
            AlertError::Mail(e) => e.kind(),
            // The alert mail is Herald's own: if it is not valid, Herald is at fault.
            AlertError::InvalidMail(_) => ErrorKind::Internal,
            AlertError::Off => ErrorKind::Conflict,
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            AlertError::Store(e) => e.code(),
            AlertError::Mail(e) => e.code(),
            AlertError::InvalidMail(_) => None,
            AlertError::Off => Some("alerts_off"),
        }
    }

    fn public_detail(&self) -> String {
        match self {
            AlertError::Store(e) => e.public_detail(),
            AlertError::Mail(e) => e.public_detail(),
            other => other.to_string(),
        }
    }
}

struct Config {
    recipients: Vec<String>,
    from: String,
    interval: Duration,
    debounce: Duration,
    error_queue: i64,
    queue_age: Duration,
    stopped_node: Duration,
    public_url: Option<String>,
    relay_down: Duration,
}

struct Inner {
    config: Config,
    store: Store,
    mail: MailQueue,
    integrations: Integrations,
    cluster: Cluster,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    /// This node's background loops, observed by the `loop:` conditions.
    supervisor: Supervisor,
    /// One evaluation at a time in this process.
    evaluating: tokio::sync::Mutex<()>,
}

/// The alerts service. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl Alerts {
    /// Wiring: the section, the mail's sender and the console's address, then each service the rules read.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &AlertSettings,
        from: &str,
        public_url: Option<&str>,
        store: Store,
        mail: MailQueue,
        integrations: Integrations,
        cluster: Cluster,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        supervisor: Supervisor,
    ) -> Alerts {
        Alerts {
            inner: Arc::new(Inner {
                config: Config {
                    recipients: settings.recipients.clone(),
                    from: from.to_owned(),
                    interval: settings.interval,
                    debounce: settings.debounce,
                    error_queue: settings.error_queue,
                    queue_age: settings.queue_age,
                    stopped_node: settings.stopped_node,
                    relay_down: settings.relay_down,
                    public_url: public_url.map(str::to_owned),
                },
                store,
                mail,
                integrations,
                cluster,
                clock,
                metrics,
                supervisor,
                evaluating: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Alerts are on when they have recipients (`HERALD_ALERT_EMAILS`).
    pub fn enabled(&self) -> bool {
        !self.inner.config.recipients.is_empty()
    }

    pub fn recipients(&self) -> &[String] {
        &self.inner.config.recipients
    }

    /// The alerts whose last mailed state is firing, oldest first; none when alerts are off.
    pub async fn firing(&self) -> Result<Vec<FiringAlert>, StoreError> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        Ok(self
            .inner
            .store
            .firing_alert_states()
            .await?
            .into_iter()
            .map(|s| FiringAlert {
                key: s.key,
                summary: s.summary,
                since: s.since,
            })
            .collect())
    }

    /// One evaluation: observe every condition, decide, queue the mail of the transitions, then
    /// store the new states. Does nothing when alerts are off.
    pub async fn evaluate_once(&self) -> Result<EvaluationSummary, AlertError> {
        if !self.enabled() {
            return Ok(EvaluationSummary::default());
        }
        let _one_at_a_time = self.inner.evaluating.lock().await;
        let inner = &self.inner;
        // One node at a time across the cluster (during a change of membership two may think
        // they are the evaluator): the second leaves the round to the first.
        let Some(lock) = inner.store.try_lock_alerts().await? else {
            return Ok(EvaluationSummary {
                skipped: true,
                ..EvaluationSummary::default()
            });
        };
        let now = inner.clock.now_ms();
        let observed = self.observe(now).await?;
        let stored = inner.store.alert_states().await?;
        let debounce = i64::try_from(inner.config.debounce.as_millis()).unwrap_or(i64::MAX);
        let decision = rules::decide(now, debounce, &stored, &observed);
        let mut summary = EvaluationSummary {
            observed: observed.len(),
            firing: decision.firing,
            pending: decision.pending,
            transitions: decision.transitions.len(),
            ..EvaluationSummary::default()
        };
        if !decision.transitions.is_empty() {
            let (id, created) = self.queue_mail(&decision.transitions, now).await?;
            summary.mail_id = Some(id);
            summary.already_queued = !created;
        }
        inner.store.save_alert_states(&decision.save, &decision.delete).await?;
        lock.release().await;
        inner
            .metrics
            .alerts_firing
            .set(i64::try_from(decision.firing).unwrap_or(i64::MAX));
        Ok(summary)
    }

    /// Every condition as it is now, cluster-wide.
    async fn observe(&self, now: i64) -> Result<Vec<rules::Observation>, StoreError> {
        let inner = &self.inner;
        // Checks of this node still waiting in the history writer count too.
        inner.integrations.flush_history().await;
        let checks = inner.store.latest_integration_checks().await?;
        let figures = inner.store.mail_figures_by_node().await?;
        let view = inner.cluster.view().await?;
        let mut observed = conditions::integrations(&checks);
        observed.push(conditions::error_queue(&figures, inner.config.error_queue, now));
        observed.push(conditions::queue_age(&figures, inner.config.queue_age, now));
        let ticket_figures = inner.store.ticket_event_figures().await?;
        observed.extend(ticket_conditions::tickets(
            &checks,
            &ticket_figures,
            inner.config.queue_age,
            now,
        ));
        observed.extend(conditions::nodes(&view, inner.config.stopped_node, now));
        let relays = inner.store.mail_relays().await?;
        observed.extend(conditions::relays(&relays, inner.config.relay_down, now));
        let node_id = inner.mail.node_id().to_string();
        // Judged by the loops' own (real-time) clock: they do not move with an injected one.
        let loops_now = inner.supervisor.now_ms();
        observed.extend(conditions::loops(&inner.supervisor.reports(), &node_id, loops_now));
        Ok(observed)
    }

    /// An alert mail to the recipients, from `HERALD_MAIL_FROM`.
    fn submission(&self, subject: String, text: String) -> Result<ValidMail, AlertError> {
        let config = &self.inner.config;
        Ok(MailSubmission {
            from: Some(config.from.clone()),
            to: config.recipients.clone(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: None,
            subject,
            text: Some(text),
            html: None,
            // RFC 3834: machine-made mail, not to be answered by vacation responders.
            headers: BTreeMap::from([("Auto-Submitted".to_owned(), "auto-generated".to_owned())]),
            attachments: Vec::new(),
        }
        .validate(&config.from)?)
    }

    /// Queues a test alert to the recipients, so that an admin can see alert mail arrive; returns the
    /// message id. It goes through the mail queue like any alert.
    pub async fn send_test(&self, requested_by: &str) -> Result<String, AlertError> {
        if !self.enabled() {
            return Err(AlertError::Off);
        }
        let inner = &self.inner;
        let node_id = inner.mail.node_id().to_string();
        let now = inner.clock.now_ms();
        let mut text = format!(
            "This is a test of Herald's health alerts, asked for by {requested_by} on node {node_id} at {}.\n\n\
             Herald mails these addresses when an integration turns faulty, the error queue grows past \
             its threshold, mail waits too long or a cluster node goes offline:\n",
            rfc3339_ms(now)
        );
        for recipient in &inner.config.recipients {
            text.push_str(&format!("  {recipient}\n"));
        }
        text.push_str("\nIf this reached you, alert mail flows. Nothing needs to be done.\n");
        if let Some(url) = &inner.config.public_url {
            text.push_str(&format!("\nConsole: {url}{}\n", Link::Overview.path()));
        }
        let valid = self.submission(format!("[Herald] Test alert from node {node_id}"), text)?;
        let accepted = inner.mail.submit(&valid, &Origin::internal(SUBMITTED_BY), None).await?;
        tracing::info!(mail = %accepted.id, by = requested_by, "test alert queued");
        Ok(accepted.id)
    }

    /// Queues the digest of `transitions`; returns its id and whether this call queued it.
    async fn queue_mail(&self, transitions: &[rules::Transition], now: i64) -> Result<(String, bool), AlertError> {
        let inner = &self.inner;
        let node_id = inner.mail.node_id().to_string();
        let mail = digest::compose(
            transitions,
            &digest::Context {
                evaluated_at: now,
                node_id: &node_id,
                public_url: inner.config.public_url.as_deref(),
                debounce: inner.config.debounce,
            },
        );
        let valid = self.submission(mail.subject.clone(), mail.text)?;
        let key = digest::idempotency_key(transitions);
        let key = IdempotencyKey::try_from(key.as_str()).map_err(|e| {
            AlertError::InvalidMail(InvalidMail {
                field: "Idempotency-Key".to_owned(),
                message: e.to_owned(),
            })
        })?;
        match inner
            .mail
            .submit(&valid, &Origin::internal(SUBMITTED_BY), Some(&key))
            .await
        {
            Ok(accepted) if accepted.created => {
                inner.metrics.alert_mail_sent();
                tracing::info!(
                    mail = %accepted.id,
                    transitions = transitions.len(),
                    subject = %mail.subject,
                    recipients = inner.config.recipients.len(),
                    "alert mail queued"
                );
                Ok((accepted.id, true))
            }
            Ok(accepted) => {
                tracing::info!(mail = %accepted.id, subject = %mail.subject, "alert mail was already queued");
                Ok((accepted.id, false))
            }
            // The same transitions, described differently (figures moved since): already mailed.
            Err(MailError::KeyConflict(id)) => {
                tracing::info!(mail = %id, subject = %mail.subject, "alert mail was already queued");
                Ok((id, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Evaluates every `HERALD_ALERT_INTERVAL` (the first time one interval after start) while
    /// `should_evaluate` says this node is the one to, until `stop` turns true. Failures (an error or a
    /// panic) are logged, counted and retried at the next interval; each tick that did its work is a
    /// completed round of the supervised loop.
    pub async fn run(self, mut stop: watch::Receiver<bool>, should_evaluate: impl Fn() -> bool + Send) {
        if !self.enabled() {
            tracing::debug!("health alerts are off: no recipients in HERALD_ALERT_EMAILS");
            return;
        }
        let period = self.inner.config.interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
            let supervisor = &self.inner.supervisor;
            let name = BackgroundLoop::AlertEvaluation;
            if !should_evaluate() {
                supervisor.round_completed(name);
                continue;
            }
            tokio::select! {
                result = supervisor.guard(name, "evaluation", self.evaluate_once()) => match result {
                    Some(Ok(summary)) => {
                        supervisor.round_completed(name);
                        tracing::debug!(
                            firing = summary.firing,
                            pending = summary.pending,
                            transitions = summary.transitions,
                            "health alerts evaluated"
                        );
                    }
                    Some(Err(e)) => {
                        supervisor.count_failures(name, "error", 1);
                        tracing::warn!(error = %e, "cannot evaluate health alerts; trying again at the next interval");
                    }
                    None => {}
                },
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        tracing::debug!("health alerts stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_errors_pass_on_the_kind_of_what_failed() {
        assert_eq!(
            (AlertError::Off.kind(), AlertError::Off.code()),
            (ErrorKind::Conflict, Some("alerts_off"))
        );
        let reused = AlertError::Mail(MailError::KeyConflict("0190".into()));
        assert_eq!(
            (reused.kind(), reused.code()),
            (ErrorKind::Conflict, Some("idempotency_key_reused"))
        );
        let outage = AlertError::Mail(MailError::Store(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
        assert_eq!(outage.kind(), ErrorKind::Unavailable);
        assert_eq!(outage.public_detail(), "the database is unavailable; try again shortly");
        let own = AlertError::InvalidMail(InvalidMail {
            field: "to".into(),
            message: "is empty".into(),
        });
        assert_eq!(own.kind(), ErrorKind::Internal, "Herald's own mail, not the caller's");
    }
}
