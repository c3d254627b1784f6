//! `herald mail …`: queue a message and manage the mail queue, on the database directly (the node's
//! delivery workers pick new mail up within seconds).

use std::io::Read;

use clap::Subcommand;

use crate::mail::Origin;
use crate::services::Services;
use crate::timefmt::rfc3339_ms;

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum MailCommand {
    /// Queue a message, durably; prints its id.
    Send {
        /// Recipient (repeat for several).
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long)]
        cc: Vec<String>,
        #[arg(long)]
        bcc: Vec<String>,
        /// Sender; HERALD_MAIL_FROM when omitted.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        reply_to: Option<String>,
        #[arg(long)]
        subject: String,
        /// Plain-text body; `-` reads it from standard input.
        #[arg(long)]
        text: Option<String>,
        /// HTML body.
        #[arg(long)]
        html: Option<String>,
        /// Extra header as `Name: value` (repeat for several).
        #[arg(long)]
        header: Vec<String>,
        /// Makes a retried command safe: the same key returns the first message's id.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// This node's queue figures: size and errorSize.
    Status,
    /// List queued messages (oldest first).
    Queue {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        node: Option<String>,
    },
    /// List the error queue with each message's last error.
    Errors {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One message in the queue or the error queue: its envelope, how it arrived, each recipient's state.
    Show { id: String },
    /// Put errored mail back in this node's queue: one by id, or --all.
    Resend {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Delete errored mail: one by id, or --all.
    Delete {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Make every queued message due now (every node's, or one node's with --node).
    Flush {
        /// Only this node's messages.
        #[arg(long)]
        node: Option<String>,
    },
}
/// `via HTTP by admin from 127.0.0.1, Message-ID <…>`: how a message arrived.
fn arrival(m: &crate::store::MailSummary) -> String {
    let mut line = format!("via {} by {}", m.protocol.to_ascii_uppercase(), m.submitted_by);
    if let Some(client) = &m.client_addr {
        line.push_str(&format!(" from {client}"));
    }
    if let Some(id) = &m.message_id {
        line.push_str(&format!(", Message-ID <{id}>"));
    }
    line
}

/// `dev@example.com ✓ delivered, ops@example.com ✗ failed: 550 …`: where each recipient stands.
fn recipient_states(column: &str) -> String {
    use crate::mail::recipients::{self, RecipientState};
    let Ok(all) = recipients::parse(column) else {
        return column.to_owned();
    };
    all.iter()
        .map(|r| {
            let mark = match r.state {
                RecipientState::Delivered => '\u{2713}',
                RecipientState::Failed => '\u{2717}',
                RecipientState::Pending => '\u{2026}',
            };
            match &r.reply {
                Some(reply) => format!("{} {mark} {}: {reply}", r.address, r.state.as_str()),
                None => format!("{} {mark} {}", r.address, r.state.as_str()),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_or_all(id: Option<String>, all: bool, verb: &str) -> anyhow::Result<Option<String>> {
    match (id, all) {
        (Some(id), false) => Ok(Some(id)),
        (None, true) => Ok(None),
        _ => anyhow::bail!("name a message id to {verb}, or use --all"),
    }
}
pub async fn run(cmd: MailCommand, services: &Services) -> anyhow::Result<()> {
    use crate::mail::{IdempotencyKey, MailSubmission};
    use crate::store::MailFilter;

    let (queue, settings) = (&services.mail, &services.settings);
    let print_list = |items: Vec<crate::store::MailSummary>| {
        println!(
            "{:<36} {:<8} {:>8} {:<20} {:<30} ERROR",
            "ID", "STATE", "ATTEMPTS", "CREATED", "SUBJECT"
        );
        for m in items {
            let subject: String = m.subject.chars().take(30).collect();
            let error: String = m.last_error.as_deref().unwrap_or_default().chars().take(60).collect();
            println!(
                "{:<36} {:<8} {:>8} {:<20} {:<30} {}",
                m.id,
                m.state,
                m.attempts,
                rfc3339_ms(m.created_at),
                subject,
                error
            );
            println!("    {}", arrival(&m));
            println!("    {}", recipient_states(&m.recipients));
        }
    };
    match cmd {
        MailCommand::Send {
            to,
            cc,
            bcc,
            from,
            reply_to,
            subject,
            text,
            html,
            header,
            idempotency_key,
        } => {
            let text = match text.as_deref() {
                Some("-") => {
                    let mut input = String::new();
                    std::io::stdin().read_to_string(&mut input)?;
                    Some(input)
                }
                _ => text,
            };
            let mut headers = std::collections::BTreeMap::new();
            for h in header {
                let (name, value) = h
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--header must be `Name: value`, got `{h}`"))?;
                headers.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            let submission = MailSubmission {
                from,
                to,
                cc,
                bcc,
                reply_to,
                subject,
                text,
                html,
                headers,
                attachments: Vec::new(),
            };
            let valid = submission.validate(&settings.mail.from)?;
            let key = idempotency_key
                .as_deref()
                .map(IdempotencyKey::try_from)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            let accepted = queue.submit(&valid, &Origin::internal("cli"), key.as_ref()).await?;
            println!("{}", accepted.id);
        }
        MailCommand::Status => {
            let (size, errors) = queue.counts().await?;
            println!("size: {size}\nerrorSize: {errors}");
            let now = crate::clock::now_ms();
            for row in services.store.mail_relays().await? {
                println!(
                    "relay {} (node {}): {}",
                    row.relay,
                    row.node_id,
                    crate::mail::describe_relay(&row, now)
                );
            }
        }
        MailCommand::Queue { limit, node } => {
            let filter = MailFilter {
                states: vec!["queued", "sending"],
                node_id: node,
                after: None,
                limit,
            };
            print_list(queue.list(&filter).await?);
        }
        MailCommand::Errors { limit } => {
            let filter = MailFilter {
                states: vec!["error"],
                node_id: None,
                after: None,
                limit,
            };
            print_list(queue.list(&filter).await?);
        }
        MailCommand::Show { id } => {
            let m = queue.get(&id).await?;
            println!("id: {}\nstate: {}\nnode: {}", m.id, m.state, m.node_id);
            println!("subject: {}\nfrom: <{}>", m.subject, m.envelope_from);
            println!("recipients: {}", recipient_states(&m.recipients));
            println!("arrived: {}", arrival(&m));
            println!("size: {} bytes\nattempts: {}", m.size_bytes, m.attempts);
            println!("created: {}", rfc3339_ms(m.created_at));
            if let Some(error) = &m.last_error {
                println!("last error: {error}");
            }
        }
        MailCommand::Resend { id, all } => {
            let n = queue.resend(one_or_all(id, all, "resend")?.as_deref()).await?;
            println!("resent {n} message(s)");
        }
        MailCommand::Delete { id, all } => {
            let n = queue.delete_errors(one_or_all(id, all, "delete")?.as_deref()).await?;
            println!("deleted {n} message(s)");
        }
        MailCommand::Flush { node } => {
            let n = queue.flush(node.as_deref()).await?;
            println!("{n} message(s) due now");
        }
    }
    Ok(())
}
