//! `herald tickets …` (each problem's Jira issue, the error list, resend and delete) and
//! `herald events send` (an event from a script, stored durably like one posted to the API). Both
//! work on the database directly: a serving node's worker applies new events within a second.

use std::collections::BTreeMap;

use clap::Subcommand;

use crate::services::Services;
use crate::store::ProblemFilter;
use crate::ticket_delivery::Problem;
use crate::tickets::{EventStatus, EventSubmission, Origin};
use crate::timefmt::rfc3339_ms;

/// The states a problem can be listed by.
const STATES: [&str; 5] = ["error", "pending", "open", "resolved", "creating"];

#[derive(Subcommand)]
pub enum TicketsCommand {
    /// List problems with their issue, state, waiting events and last error.
    List {
        #[arg(long)]
        integration: Option<String>,
        /// error (the error list), pending, open, resolved or creating.
        #[arg(long, value_parser = STATES)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// With --after-key: the problems after this one (a full page ends with the flags for the next).
        #[arg(long, requires = "after_key")]
        after_integration: Option<String>,
        #[arg(long, requires = "after_integration")]
        after_key: Option<String>,
    },
    /// One problem: its issue and its events, with Jira's answer to the last failed attempt.
    Show { integration: String, dedup_key: String },
    /// Queue a problem's parked event again (or every parked event with --all).
    Resend {
        integration: Option<String>,
        dedup_key: Option<String>,
        /// Every parked event (of INTEGRATION, when given).
        #[arg(long, conflicts_with = "dedup_key")]
        all: bool,
    },
    /// Delete a problem's waiting and parked events.
    Delete {
        integration: String,
        dedup_key: String,
        /// Also forget its issue: the next event searches Jira and creates a new one if none is found.
        #[arg(long)]
        forget: bool,
    },
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Store an event for an integration, durably; prints its id. A serving node applies it to Jira.
    Send {
        #[arg(long)]
        integration: String,
        /// Names the problem: events with the same key update the same issue.
        #[arg(long)]
        dedup_key: String,
        #[arg(long, value_parser = ["firing", "resolved"], default_value = "firing")]
        status: String,
        /// One line about the problem.
        #[arg(long)]
        summary: String,
        /// The description; `-` reads it from standard input.
        #[arg(long)]
        description: Option<String>,
        /// A label as `name=value` (repeat for several).
        #[arg(long)]
        label: Vec<String>,
        /// An annotation as `name=value` (repeat for several).
        #[arg(long)]
        annotation: Vec<String>,
        #[arg(long)]
        url: Option<String>,
    },
}

pub async fn run(cmd: TicketsCommand, services: &Services) -> anyhow::Result<()> {
    let tickets = &services.ticket_delivery;
    match cmd {
        TicketsCommand::List {
            integration,
            state,
            limit,
            after_integration,
            after_key,
        } => {
            let state = state.and_then(|s| STATES.into_iter().find(|known| *known == s));
            let filter = ProblemFilter {
                integration,
                state,
                limit: limit.clamp(1, 100_000),
                after: after_integration.zip(after_key),
                ..ProblemFilter::default()
            };
            let problems = tickets.problems(&filter).await?;
            if problems.is_empty() {
                println!("no tickets");
            }
            for p in &problems {
                println!("{}", line(p));
            }
            if let Some(last) = problems.last().filter(|_| problems.len() as i64 == filter.limit) {
                println!(
                    "next page: --after-integration {} --after-key {}",
                    shell_quoted(&last.row.integration),
                    shell_quoted(&last.row.dedup_key)
                );
            }
        }
        TicketsCommand::Show { integration, dedup_key } => {
            let (problem, events) = tickets.problem(&integration, &dedup_key, 20).await?;
            let r = &problem.row;
            println!(
                "integration: {}\ndedup key: {}\nstate: {}",
                r.integration, r.dedup_key, r.state
            );
            if let Some(key) = &r.issue_key {
                println!("issue: {key} {}", r.issue_url.as_deref().unwrap_or(""));
            }
            if let Some(summary) = &r.summary {
                println!("summary: {summary}");
            }
            println!("waiting events: {}", r.pending);
            if let Some(error) = &problem.last_error {
                println!("last error: {}", serde_json::to_string_pretty(error)?);
            }
            for e in events {
                println!(
                    "event {} {} {} (attempts {}, accepted {})",
                    e.id,
                    e.status,
                    e.state,
                    e.attempts,
                    rfc3339_ms(e.created_at)
                );
            }
        }
        TicketsCommand::Resend {
            integration,
            dedup_key,
            all,
        } => {
            let n = match (integration, dedup_key, all) {
                (integration, None, true) => tickets.resend_all(integration.as_deref()).await?,
                (Some(integration), Some(key), false) => tickets.resend(&integration, &key).await?,
                _ => anyhow::bail!("name an integration and a dedup key to resend, or use --all"),
            };
            println!("resent {n} event(s)");
        }
        TicketsCommand::Delete {
            integration,
            dedup_key,
            forget,
        } => {
            let deleted = tickets.delete(&integration, &dedup_key, forget).await?;
            println!(
                "deleted {} event(s){}",
                deleted.events,
                if deleted.forgotten {
                    "; the issue is forgotten"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

pub async fn run_events(cmd: EventsCommand, services: &Services) -> anyhow::Result<()> {
    let EventsCommand::Send {
        integration,
        dedup_key,
        status,
        summary,
        description,
        label,
        annotation,
        url,
    } = cmd;
    let description = match description.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            Some(text)
        }
        _ => description,
    };
    let submission = EventSubmission {
        integration,
        dedup_key,
        status: if status == "resolved" {
            EventStatus::Resolved
        } else {
            EventStatus::Firing
        },
        summary,
        description: description.unwrap_or_default(),
        labels: pairs(&label, "--label")?,
        annotations: pairs(&annotation, "--annotation")?,
        url,
    };
    let event = submission.validate()?;
    let origin = Origin {
        user: "cli".to_owned(),
        idempotency_key: None,
    };
    let accepted = services.tickets.submit(vec![event], &origin).await?;
    for id in accepted.ids {
        println!("{id}");
    }
    Ok(())
}

/// `name=value` arguments as a map.
fn pairs(args: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => anyhow::bail!("{flag} `{a}` is not name=value"),
        })
        .collect()
}

/// `jira  scan/CVE-1  open  SEC-12  https://…/browse/SEC-12  (2 waiting)  last error: …`
fn line(p: &Problem) -> String {
    let r = &p.row;
    let mut out = format!(
        "{}  {}  {}  {}",
        r.integration,
        r.dedup_key,
        r.state,
        r.issue_key.as_deref().unwrap_or("-")
    );
    if let Some(url) = &r.issue_url {
        out.push_str(&format!("  {url}"));
    }
    if r.pending > 0 {
        out.push_str(&format!(
            "  ({} waiting, {} attempts)",
            r.pending,
            r.head_attempts.unwrap_or(0)
        ));
    }
    if let Some(error) = &p.last_error {
        let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
        out.push_str(&format!("  last error: {message}"));
    }
    out
}

/// `text` as one shell word, to paste back into a command line.
fn shell_quoted(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=+,".contains(&b))
    {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_for_the_shell_only_when_they_need_it() {
        assert_eq!(shell_quoted("cli/1"), "cli/1");
        assert_eq!(shell_quoted("disk full on db-1"), "'disk full on db-1'");
        assert_eq!(shell_quoted("it's"), "'it'\\''s'");
        assert_eq!(shell_quoted(""), "''");
    }
}
