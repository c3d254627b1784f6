//! What one event does to its problem's issue, given what Herald's map records and what Jira says.
//!
//! - **Firing, no issue on record** (or a create whose answer was lost, `creating`): search Jira for
//!   the dedup label first; create only if nothing is found. The map is marked `creating` before the
//!   create is sent, so a crash or a lost answer is always followed by a search. On Cloud, whose
//!   search is eventually consistent, an empty search shortly after a lost create waits
//!   ([`super::TicketDeliverySettings::search_settle`]) before creating again.
//! - **Firing, issue open**: a repeat. If Jira says the issue was resolved (by a person) it is treated
//!   as resolved; if it was deleted, a new one is created; otherwise, with `comment_on_repeat`, the
//!   description is added as a comment unless it is the same as the last one Herald wrote.
//! - **Firing, issue resolved**: within `reopen_window` of the resolution and with a
//!   `reopen_transition`, the issue is reopened, unless it was resolved as `wont_fix_resolution`
//!   (then nothing happens); otherwise a new issue is created.
//! - **Resolved**: an open issue is moved through `resolve_transition` (none configured: Herald
//!   leaves it open); an issue already done in Jira is only recorded.
//!
//! A transition is found by its name (case-insensitive), its id, or the name of the status it
//! leads to, among those the issue offers now; none matching parks the event and names those offered.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::failure::Failure;
use super::targets::Target;
use crate::jira::{ApiFlavor, IssueState, NewIssue, Retry, TicketErrorKind, Transition, find_transition};
use crate::store::{Store, TicketEventRow, TicketRow};
use crate::tickets::{EventContext, EventStatus, RenderedIssue, render_issue};

/// What an event did in Jira.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Created,
    Commented,
    Reopened,
    Resolved,
    /// Herald found the issue (by search, or by reading it) and recorded it; nothing was written.
    Recorded,
    /// Nothing was needed.
    Nothing,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Commented => "commented",
            Action::Reopened => "reopened",
            Action::Resolved => "resolved",
            Action::Recorded => "recorded",
            Action::Nothing => "nothing",
        }
    }
}

/// An applied event: what it did and the problem's issue as it now is.
#[derive(Debug)]
pub(super) struct Applied {
    pub action: Action,
    pub ticket: Option<TicketRow>,
}

/// One event being applied.
pub(super) struct Job<'a> {
    pub target: &'a Target,
    pub store: &'a Store,
    pub event: &'a TicketEventRow,
    pub now: i64,
    pub search_settle: Duration,
    /// The lease this worker holds on the event; renewed before each write to Jira.
    pub lease: &'a Lease,
}

/// A worker's hold on a claimed event: who, until when, for how long a renewal lasts.
pub(super) struct Lease {
    pub worker: String,
    pub until: AtomicI64,
    pub length: Duration,
}

impl Job<'_> {
    /// Makes sure this worker still holds the event, for another lease length, before it writes to
    /// Jira: a worker that stalled past its lease (a long pause Jira asked for) must not write what
    /// the worker that took the event over writes too.
    async fn hold(&self) -> Result<(), Failure> {
        let current = self.lease.until.load(Ordering::SeqCst);
        let length = i64::try_from(self.lease.length.as_millis()).unwrap_or(i64::MAX / 2);
        let renewed = crate::store::now_ms().saturating_add(length);
        if self
            .store
            .renew_ticket_lease(&self.lease.worker, &self.event.id, current, renewed)
            .await?
        {
            self.lease.until.store(renewed, Ordering::SeqCst);
            Ok(())
        } else {
            Err(Failure::later(
                "lease_lost",
                "another worker took this event over (this one's lease ran out), or an admin deleted it".to_owned(),
            ))
        }
    }
}

impl Job<'_> {
    pub async fn run(&self) -> Result<Applied, Failure> {
        let context: EventContext = serde_json::from_str(&self.event.context)
            .map_err(|e| Failure::parked("corrupt", format!("the stored event cannot be read: {e}")))?;
        let issue = render_issue(
            &self.target.tickets,
            &context,
            &self.event.dedup_key,
            self.target.format(),
        )?;
        let ticket = self
            .store
            .ticket(&self.event.integration, &self.event.dedup_key)
            .await?;
        match context.status {
            EventStatus::Firing => match ticket {
                Some(row) if row.state == "open" => self.repeat(row, &issue).await,
                Some(row) if row.state == "resolved" => self.fire_after_resolution(row, &issue).await,
                other => self.find_or_create(other, &issue).await,
            },
            EventStatus::Resolved => match ticket {
                Some(row) if row.state == "open" => self.resolve_open(row).await,
                Some(row) if row.state == "resolved" => Ok(self.applied(Action::Nothing, self.touched(row))),
                other => self.resolve_unrecorded(other, &issue).await,
            },
        }
    }

    /// No issue on record: Jira may have one all the same (a create whose answer was lost, a map
    /// restored from an older backup). Search for the dedup label before creating.
    async fn find_or_create(&self, previous: Option<TicketRow>, issue: &RenderedIssue) -> Result<Applied, Failure> {
        if let Some(found) = self.search(previous.as_ref(), issue).await? {
            let row = self.found(previous, &found, issue);
            if row.state == "resolved" {
                return self.fire_after_resolution(row, issue).await;
            }
            return Ok(self.applied(Action::Recorded, row));
        }
        self.settle_after_lost_create(previous.as_ref())?;
        let replacing = previous.as_ref().and_then(|p| p.issue_key.clone());
        self.create(previous, issue, replacing).await
    }

    /// The issue carrying the dedup label, if Jira has one that is not the issue being replaced.
    async fn search(&self, previous: Option<&TicketRow>, issue: &RenderedIssue) -> Result<Option<IssueState>, Failure> {
        let project = self.project_key()?;
        let found = self.target.client.find_by_label(project, &issue.dedup_label).await?;
        let replaced = previous
            .filter(|p| p.state == "creating")
            .and_then(|p| p.issue_key.as_deref());
        Ok(found.filter(|f| Some(f.key.as_str()) != replaced))
    }

    /// After a create whose answer was lost, Cloud's search may not see the issue for a while:
    /// wait for it before deciding the create did not happen.
    fn settle_after_lost_create(&self, previous: Option<&TicketRow>) -> Result<(), Failure> {
        let Some(creating) = previous.filter(|p| p.state == "creating") else {
            return Ok(());
        };
        if self.target.client.flavor() != ApiFlavor::Cloud {
            return Ok(());
        }
        let settle = i64::try_from(self.search_settle.as_millis()).unwrap_or(i64::MAX);
        let waited = self.now.saturating_sub(creating.updated_at);
        if waited >= settle {
            return Ok(());
        }
        let wait = Duration::from_millis(u64::try_from(settle - waited).unwrap_or(0));
        Err(Failure {
            retry: Retry::After(wait),
            ..Failure::later(
                "awaiting_search",
                "a create was sent but its answer was lost, and Jira Cloud's search does not show the issue yet; \
                 searching again before creating"
                    .to_owned(),
            )
        })
    }

    async fn create(
        &self,
        previous: Option<TicketRow>,
        issue: &RenderedIssue,
        replacing: Option<String>,
    ) -> Result<Applied, Failure> {
        let before = previous.clone();
        let mut row = self.touched_or_new(previous);
        row.state = "creating".into();
        row.issue_key = replacing;
        row.issue_id = None;
        row.issue_url = None;
        row.summary = Some(issue.summary.clone());
        // Durable before the request: if its answer is lost, the next attempt searches first.
        self.store.save_ticket(&row).await?;
        self.hold().await?;
        let settings = &self.target.integration.settings;
        let mut fields = settings.fields.clone();
        fields.extend(issue.fields.clone());
        let mut new = NewIssue {
            project_key: self.project_key()?.to_owned(),
            issue_type: settings.issue_type.clone().unwrap_or_default(),
            summary: issue.summary.clone(),
            description: issue.description.clone(),
            labels: issue.labels.clone(),
            priority: issue.priority.clone(),
            fields,
        };
        let mut answer = self.target.client.create_issue(&new).await;
        if answer.as_ref().is_err_and(|e| e.rejects_field("labels")) {
            // The Labels field is not on the create screen (alertmanager#5230): create without
            // labels; the problem is then found through Herald's map alone.
            tracing::warn!(
                integration = %self.event.integration,
                "Jira refuses labels on its create screen; creating the issue without its dedup label"
            );
            new.labels.clear();
            answer = self.target.client.create_issue(&new).await;
        }
        let created = match answer {
            Ok(created) => created,
            Err(e) => {
                if !e.is_unknown_outcome() {
                    // Jira did not create it: the problem is as it was before this attempt (a
                    // `creating` mark from an earlier, lost create stays, since that one may exist).
                    match &before {
                        Some(previous) => self.store.save_ticket(previous).await?,
                        None => {
                            self.store
                                .forget_ticket(&self.event.integration, &self.event.dedup_key)
                                .await?
                        }
                    }
                }
                return Err(e.into());
            }
        };
        row.state = "open".into();
        row.issue_url = Some(self.target.client.browse_url(&created.key));
        row.issue_key = Some(created.key);
        row.issue_id = Some(created.id);
        row.resolution = None;
        row.resolved_at = None;
        // The description is what the issue already says: a repeat saying the same adds no comment.
        row.last_comment_hash = Some(comment_hash(&comment_body(issue)));
        Ok(self.applied(Action::Created, row))
    }

    /// A repeat of a problem whose issue is open.
    async fn repeat(&self, row: TicketRow, issue: &RenderedIssue) -> Result<Applied, Failure> {
        let Some(key) = row.issue_key.clone() else {
            return self.find_or_create(Some(row), issue).await;
        };
        let state = match self.target.client.get_issue(&key).await {
            Ok(state) => state,
            Err(e) if e.kind == TicketErrorKind::IssueNotFound => return self.create(Some(row), issue, None).await,
            Err(e) => return Err(e.into()),
        };
        if state.status_category.is_done() {
            let row = self.resolved_in_jira(row, &state);
            return self.fire_after_resolution(row, issue).await;
        }
        let mut row = self.touched(row);
        if !self.target.tickets.comment_on_repeat {
            return Ok(self.applied(Action::Nothing, row));
        }
        let body = comment_body(issue);
        let hash = comment_hash(&body);
        if row.last_comment_hash.as_deref() == Some(hash.as_str()) {
            return Ok(self.applied(Action::Nothing, row));
        }
        // Recorded before it is sent: a comment whose answer is lost is not posted a second time
        // (at most once); one Jira is known not to have taken is forgotten again.
        let before = row.last_comment_hash.replace(hash);
        self.store.save_ticket(&row).await?;
        self.hold().await?;
        if let Err(e) = self.target.client.add_comment(&key, &body).await {
            if !e.is_unknown_outcome() {
                row.last_comment_hash = before;
                self.store.save_ticket(&row).await?;
            }
            return Err(e.into());
        }
        Ok(self.applied(Action::Commented, row))
    }

    /// A new firing of a problem whose issue is resolved: reopen it within the window, else create.
    async fn fire_after_resolution(&self, row: TicketRow, issue: &RenderedIssue) -> Result<Applied, Failure> {
        let tickets = &self.target.tickets;
        let window = i64::try_from(tickets.reopen_window.as_millis()).unwrap_or(i64::MAX);
        let within = row.resolved_at.is_some_and(|at| self.now.saturating_sub(at) <= window);
        let (Some(reopen), true, Some(key)) = (&tickets.reopen_transition, within, row.issue_key.clone()) else {
            let replacing = row.issue_key.clone();
            return self.create(Some(row), issue, replacing).await;
        };
        let state = match self.target.client.get_issue(&key).await {
            Ok(state) => state,
            Err(e) if e.kind == TicketErrorKind::IssueNotFound => return self.create(Some(row), issue, None).await,
            Err(e) => return Err(e.into()),
        };
        let mut row = self.touched(row);
        if !state.status_category.is_done() {
            // Somebody reopened it already.
            row.state = "open".into();
            row.resolution = None;
            row.resolved_at = None;
            return Ok(self.applied(Action::Recorded, row));
        }
        let wont_fix = tickets.wont_fix_resolution.as_deref();
        if let (Some(wont_fix), Some(resolution)) = (wont_fix, state.resolution.as_deref()) {
            if wont_fix.eq_ignore_ascii_case(resolution) {
                row.resolution = Some(resolution.to_owned());
                return Ok(self.applied(Action::Nothing, row));
            }
        }
        let transition = self.transition_named(&key, reopen).await?;
        self.hold().await?;
        self.target.client.transition(&key, &transition.id, None).await?;
        row.state = "open".into();
        row.resolution = None;
        row.resolved_at = None;
        Ok(self.applied(Action::Reopened, row))
    }

    /// A resolution of a problem whose issue is open.
    async fn resolve_open(&self, row: TicketRow) -> Result<Applied, Failure> {
        let mut row = self.touched(row);
        let (Some(resolve), Some(key)) = (&self.target.tickets.resolve_transition, row.issue_key.clone()) else {
            // Without a resolve transition Herald leaves the issue to people.
            return Ok(self.applied(Action::Nothing, row));
        };
        let state = match self.target.client.get_issue(&key).await {
            Ok(state) => state,
            Err(e) if e.kind == TicketErrorKind::IssueNotFound => {
                row.state = "resolved".into();
                row.resolved_at = Some(self.now);
                return Ok(self.applied(Action::Recorded, row));
            }
            Err(e) => return Err(e.into()),
        };
        if state.status_category.is_done() {
            return Ok(self.applied(Action::Recorded, self.resolved_in_jira(row, &state)));
        }
        let transition = self.transition_named(&key, resolve).await?;
        self.hold().await?;
        self.target.client.transition(&key, &transition.id, None).await?;
        row.state = "resolved".into();
        row.resolved_at = Some(self.now);
        row.resolution = None;
        Ok(self.applied(Action::Resolved, row))
    }

    /// A resolution of a problem without an issue on record: resolve what a search finds, if anything.
    async fn resolve_unrecorded(&self, previous: Option<TicketRow>, issue: &RenderedIssue) -> Result<Applied, Failure> {
        if let Some(found) = self.search(previous.as_ref(), issue).await? {
            let row = self.found(previous, &found, issue);
            if row.state == "resolved" {
                return Ok(self.applied(Action::Recorded, row));
            }
            return self.resolve_open(row).await;
        }
        self.settle_after_lost_create(previous.as_ref())?;
        Ok(Applied {
            action: Action::Nothing,
            ticket: previous.map(|p| self.touched(p)),
        })
    }

    async fn transition_named(&self, key: &str, wanted: &str) -> Result<Transition, Failure> {
        let offered = self.target.client.transitions(key).await?;
        find_transition(&offered, wanted).cloned().ok_or_else(|| {
            let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
            Failure::parked(
                "transition_missing",
                format!(
                    "{key} does not offer the transition `{wanted}` now (it offers: {}); check the workflow of the \
                     project and issue type, and Herald's TRANSITION_ISSUES permission",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
    }

    fn project_key(&self) -> Result<&str, Failure> {
        self.target
            .integration
            .settings
            .project_key
            .as_deref()
            .ok_or_else(|| Failure::parked("integration_unusable", "the integration has no `project_key`".into()))
    }

    /// The row for an issue Jira has but the map did not record.
    fn found(&self, previous: Option<TicketRow>, found: &IssueState, issue: &RenderedIssue) -> TicketRow {
        let mut row = self.touched_or_new(previous);
        row.issue_key = Some(found.key.clone());
        row.issue_id = Some(found.id.clone());
        row.issue_url = Some(self.target.client.browse_url(&found.key));
        row.summary = row.summary.or_else(|| Some(issue.summary.clone()));
        if found.status_category.is_done() {
            self.resolved_in_jira(row, found)
        } else {
            row.state = "open".into();
            row.resolution = None;
            row.resolved_at = None;
            row
        }
    }

    fn resolved_in_jira(&self, mut row: TicketRow, state: &IssueState) -> TicketRow {
        row.state = "resolved".into();
        row.resolution = state.resolution.clone();
        row.resolved_at = Some(
            state
                .resolution_date
                .as_deref()
                .and_then(parse_jira_time)
                .unwrap_or(self.now),
        );
        row
    }

    /// The row with this event recorded as its last.
    fn touched(&self, mut row: TicketRow) -> TicketRow {
        row.last_event_id = Some(self.event.id.clone());
        row.last_event_at = Some(self.now);
        row.updated_at = self.now;
        row
    }

    fn touched_or_new(&self, previous: Option<TicketRow>) -> TicketRow {
        let row = previous.unwrap_or_else(|| TicketRow {
            integration: self.event.integration.clone(),
            dedup_key: self.event.dedup_key.clone(),
            issue_key: None,
            issue_id: None,
            state: "creating".into(),
            resolution: None,
            resolved_at: None,
            last_comment_hash: None,
            last_event_id: None,
            last_event_at: None,
            created_at: self.now,
            updated_at: self.now,
            summary: None,
            issue_url: None,
        });
        self.touched(row)
    }

    fn applied(&self, action: Action, row: TicketRow) -> Applied {
        Applied {
            action,
            ticket: Some(row),
        }
    }
}

/// What a repeat comments: the event's description (or its summary when it has none).
fn comment_body(issue: &RenderedIssue) -> Value {
    issue
        .description
        .clone()
        .unwrap_or_else(|| Value::String(issue.summary.clone()))
}

fn comment_hash(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Jira's timestamps (`2026-11-30T10:00:00.000+0000`, or RFC 3339) in ms since the epoch.
fn parse_jira_time(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let jira = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    let at = time::OffsetDateTime::parse(text, jira)
        .or_else(|_| time::OffsetDateTime::parse(text, &Rfc3339))
        .ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_times_are_read_in_both_forms() {
        assert_eq!(parse_jira_time("1970-01-01T00:00:01.500+0000"), Some(1_500));
        assert_eq!(parse_jira_time("1970-01-01T01:00:01.000+0100"), Some(1_000));
        assert_eq!(parse_jira_time("1970-01-01T00:00:02Z"), Some(2_000));
        assert_eq!(parse_jira_time("yesterday"), None);
    }

    #[test]
    fn the_same_comment_hashes_the_same() {
        let a = comment_hash(&Value::String("disk full".into()));
        assert_eq!(a, comment_hash(&Value::String("disk full".into())));
        assert_ne!(a, comment_hash(&Value::String("disk fuller".into())));
        assert_eq!(a.len(), 32);
    }
}
