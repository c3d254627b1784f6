//! Tickets: events about problems become Jira issues through an integration.
//!
//! The intake (this part) stores each accepted event durably before answering: `event` (Herald's own
//! event and the template context every event carries), `alertmanager` (Alertmanager's webhook
//! payload and the events it becomes) and `queue` (group commit, like the mail queue's).

pub mod alertmanager;
pub mod event;
mod queue;

pub use alertmanager::{Grouping, Notification};
// `EventStatus`, `EventSource` and `AlertContext` stay under `event::`: the ticket templates define the
// context's types of the same names, with the same JSON.
pub use event::{AlertGroup, Event, EventSubmission, InvalidEvent};
pub use queue::{Accepted, EventError, Origin, TicketEvents, tickets_enabled};
