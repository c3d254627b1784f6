//! Tickets: Herald turns alerts and events into Jira issues through its integrations, durably and
//! exactly once per problem.
//!
//! An event (from Alertmanager's webhook or Herald's own event API) names an integration; the
//! integration's ticket settings say what the issue looks like and how it is followed up: a new
//! problem creates an issue, a repeat may comment, a resolution transitions it, a new firing soon
//! after reopens it. Herald keeps its own map of dedup key → issue, and writes a dedup label on the
//! issue so that a search can find an issue whose creation answer was lost.
//!
//! The intake stores each accepted event durably before answering:
//! - [`event`]: Herald's own event and the template context every event carries;
//! - [`alertmanager`]: Alertmanager's webhook payload and the events it becomes;
//! - `queue`: group commit, like the mail queue's.
//!
//! What an issue looks like:
//! - [`settings`]: the `"tickets"` object of an integration and its validation.
//! - [`template`]: Jinja templates (minijinja) and the event context they see: the contract
//!   between the intake, which builds [`EventContext`], and the settings.
//! - [`render`]: settings + event → summary, description, labels, priority, fields and dedup key,
//!   within Jira's limits; [`body`]: plain text as ADF (Cloud) or wiki markup (Data Center).
//!
//! `settings`, `template`, `render` and `body` name no other Herald module, so the integration model can
//! hold ticket settings.

pub mod alertmanager;
pub mod body;
pub mod event;
mod queue;
pub mod render;
pub mod settings;
pub mod template;

pub use alertmanager::{Grouping, Notification};
pub use body::BodyFormat;
pub use event::{AlertGroup, Event, EventSubmission, InvalidEvent};
pub use queue::{Accepted, EventError, Origin, TicketEvents, tickets_enabled};
pub use render::{RenderedIssue, dedup_label, render_issue};
pub use settings::{FieldTemplate, InvalidTicketSettings, TicketSettings, TicketSettingsSpec};
pub use template::{AlertContext, EventContext, EventSource, EventStatus, Template, TemplateError, TemplateFailure};
