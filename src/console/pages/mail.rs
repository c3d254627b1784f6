//! The mail queue and the error queue, per node: the lists, and resending, deleting and flushing.

use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{NodeFigures, node_figures};
use crate::console::error::ConsoleError;
use crate::console::session::{Change, CsrfForm, Session};
use crate::console::view::{Chrome, When, encode_component, html};
use crate::mail::recipients::{self, Recipient, RecipientState};
use crate::state::AppState;
use crate::store::{MailFilter, MailSummary, now_ms};

/// Messages per page of the mail lists.
const PAGE_SIZE: i64 = 50;

pub struct MailRow {
    pub id: String,
    pub href: String,
    pub subject: String,
    pub from: String,
    pub recipients: Vec<RecipientLine>,
    /// `HTTP`, `SMTP` or `internal`.
    pub protocol: &'static str,
    pub submitted_by: String,
    pub client_addr: Option<String>,
    pub message_id: Option<String>,
    pub node_id: String,
    pub attempts: i32,
    pub created: When,
    pub next_attempt: Option<When>,
    pub sending: bool,
    pub last_error: String,
}

/// One recipient of a message and where it stands: `dev@example.com ✓ delivered`.
pub struct RecipientLine {
    pub address: String,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    /// `✓`, `✗` or `…`.
    pub mark: &'static str,
    /// `ok-text`, `bad-text` or `muted`.
    pub class: &'static str,
    /// The relay's last reply about this recipient, or empty.
    pub reply: String,
}

fn recipient_line(r: Recipient) -> RecipientLine {
    let (mark, class) = match r.state {
        RecipientState::Delivered => ("\u{2713}", "ok-text"),
        RecipientState::Failed => ("\u{2717}", "bad-text"),
        RecipientState::Pending => ("\u{2026}", "muted"),
    };
    RecipientLine {
        address: r.address,
        state: r.state.as_str(),
        mark,
        class,
        reply: r.reply.unwrap_or_default(),
    }
}

fn protocol_label(protocol: &str) -> &'static str {
    match protocol {
        "http" => "HTTP",
        "smtp" => "SMTP",
        _ => "internal",
    }
}

fn mail_row(m: MailSummary, now: i64) -> MailRow {
    let recipients = match recipients::parse(&m.recipients) {
        Ok(all) => all.into_iter().map(recipient_line).collect(),
        // A column this version cannot read is shown as it is rather than hidden.
        Err(_) => vec![RecipientLine {
            address: m.recipients,
            state: "unknown",
            mark: "?",
            class: "muted",
            reply: String::new(),
        }],
    };
    MailRow {
        href: encode_component(&m.id),
        subject: if m.subject.is_empty() {
            "(no subject)".to_owned()
        } else {
            m.subject
        },
        from: m.envelope_from,
        recipients,
        protocol: protocol_label(&m.protocol),
        submitted_by: m.submitted_by,
        client_addr: m.client_addr,
        message_id: m.message_id,
        attempts: m.attempts,
        created: When::at(m.created_at, now),
        next_attempt: (m.state == "queued").then(|| When::at(m.next_attempt_at, now)),
        sending: m.state == "sending",
        last_error: m.last_error.unwrap_or_default(),
        node_id: m.node_id,
        id: m.id,
    }
}

#[derive(Deserialize)]
pub struct MailQuery {
    view: Option<String>,
    after: Option<String>,
    /// Only this node's messages.
    node: Option<String>,
}

#[derive(Template)]
#[template(path = "console/mail.html")]
struct MailPage {
    page: Chrome,
    errors_view: bool,
    rows: Vec<MailRow>,
    queue_total: i64,
    errors_total: i64,
    first_page: bool,
    next_page: Option<String>,
    page_size: i64,
    /// The node the lists are limited to, if any.
    node: Option<String>,
    /// `&node=…` for the page's own links, or empty.
    node_query: String,
    relays: Vec<super::RelayLine>,
    clustered: bool,
}

pub async fn mail(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<MailQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(query) = query?;
    let errors_view = match query.view.as_deref() {
        None | Some("queue") => false,
        Some("errors") => true,
        Some(other) => {
            return Err(ConsoleError::BadRequest(format!(
                "There is no mail view `{}`: use `queue` or `errors`.",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let now = now_ms();
    let nodes = node_figures(&state, now).await?;
    let filter = MailFilter {
        states: if errors_view {
            vec!["error"]
        } else {
            vec!["queued", "sending"]
        },
        node_id: query.node.clone().filter(|n| !n.is_empty()),
        after: query.after.clone().filter(|a| !a.is_empty()),
        limit: PAGE_SIZE + 1,
    };
    let mut rows: Vec<MailRow> = state
        .mail
        .list(&filter)
        .await?
        .into_iter()
        .map(|m| mail_row(m, now))
        .collect();
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    let view = if errors_view { "errors" } else { "queue" };
    let node_query = filter
        .node_id
        .as_deref()
        .map_or_else(String::new, |n| format!("&node={}", encode_component(n)));
    let next_page = more
        .then(|| {
            rows.last().map(|r| {
                format!(
                    "/console/mail?view={view}{node_query}&after={}",
                    encode_component(&r.id)
                )
            })
        })
        .flatten();
    // The tabs count what they list: one node's messages, or every node's.
    let shown: Vec<&NodeFigures> = nodes
        .iter()
        .filter(|n| filter.node_id.as_deref().is_none_or(|only| only == n.node_id))
        .collect();
    let page = MailPage {
        page: Chrome::new(
            &session,
            state.node_id.as_str(),
            "mail",
            if errors_view { "Error queue" } else { "Mail queue" },
        ),
        errors_view,
        rows,
        queue_total: shown.iter().map(|n| n.queue).sum(),
        errors_total: shown.iter().map(|n| n.errors).sum(),
        first_page: filter.after.is_none(),
        node: filter.node_id.clone(),
        node_query,
        next_page,
        page_size: PAGE_SIZE,
        relays: super::relay_lines(&state, now).await?,
        clustered: state.cluster.enabled(),
    };
    html(&page)
}

#[derive(Deserialize)]
pub struct MailActionForm {
    #[serde(default)]
    csrf: String,
    /// Which list the message is in: `queue` or `errors` (where to return, and what delete means).
    #[serde(default)]
    view: String,
}

crate::console::session::with_csrf!(MailActionForm);

fn mail_list(view: &str) -> &'static str {
    if view == "queue" {
        "/console/mail?view=queue"
    } else {
        "/console/mail?view=errors"
    }
}

pub async fn resend_mail(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Change { session, .. }: Change<MailActionForm>,
) -> Result<Response, ConsoleError> {
    let Path(id) = id?;
    state.mail.resend(Some(&id)).await?;
    Ok(session
        .done(
            &state,
            "/console/mail?view=errors",
            format!("Message {id} is queued again for delivery."),
        )
        .await)
}

pub async fn delete_mail(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Change { session, form }: Change<MailActionForm>,
) -> Result<Response, ConsoleError> {
    let Path(id) = id?;
    if form.view == "queue" {
        state.mail.delete_queued(&id).await?;
    } else {
        state.mail.delete_errors(Some(&id)).await?;
    }
    Ok(session
        .done(&state, mail_list(&form.view), format!("Message {id} deleted."))
        .await)
}

fn messages(n: u64) -> String {
    if n == 1 {
        "1 message".to_owned()
    } else {
        format!("{n} messages")
    }
}

pub async fn resend_all_mail(
    State(state): State<AppState>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let n = state.mail.resend(None).await?;
    Ok(session
        .done(
            &state,
            "/console/mail?view=errors",
            format!("{} queued again for delivery.", messages(n)),
        )
        .await)
}

pub async fn delete_all_errors(
    State(state): State<AppState>,
    Change { session, .. }: Change<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let n = state.mail.delete_errors(None).await?;
    Ok(session
        .done(
            &state,
            "/console/mail?view=errors",
            format!("{} deleted from the error queue.", messages(n)),
        )
        .await)
}

#[derive(Deserialize)]
pub struct FlushForm {
    #[serde(default)]
    csrf: String,
    /// Only this node's queue; every node's when empty.
    #[serde(default)]
    node: String,
}

crate::console::session::with_csrf!(FlushForm);

pub async fn flush_mail(
    State(state): State<AppState>,
    Change { session, form }: Change<FlushForm>,
) -> Result<Response, ConsoleError> {
    let node = Some(form.node.as_str()).filter(|n| !n.is_empty());
    let n = state.mail.flush(node).await?;
    let (back, whose) = match node {
        Some(node) => (
            format!("/console/mail?view=queue&node={}", encode_component(node)),
            format!("node {node}"),
        ),
        None if state.cluster.enabled() => ("/console/mail?view=queue".to_owned(), "every node".to_owned()),
        None => ("/console/mail?view=queue".to_owned(), "the queue".to_owned()),
    };
    Ok(session
        .done(&state, &back, format!("Flushed: {} of {whose} due now.", messages(n)))
        .await)
}
