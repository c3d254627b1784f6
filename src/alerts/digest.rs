//! The alert mail: one plain-text message per evaluation listing every transition it found, and the
//! idempotency key that makes it exactly-once.

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::rules::{Kind, Transition};
use crate::links::Link;
use crate::timefmt::rfc3339_ms;

/// Transitions described in full in one mail; any further ones get a line each.
const DETAILED: usize = 100;

/// Where and when the transitions were found, for the mail's text.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub evaluated_at: i64,
    pub node_id: &'a str,
    /// `https://herald.example.com`, without a trailing slash.
    pub public_url: Option<&'a str>,
    pub debounce: Duration,
}

/// The mail of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMail {
    pub subject: String,
    pub text: String,
}

/// The `Idempotency-Key` of the mail for these transitions: the same set of transitions always gives
/// the same key, whatever the order, the time or the node, so a mail queued by an evaluation whose
/// state write was lost is not queued again by the next one.
pub fn idempotency_key(transitions: &[Transition]) -> String {
    let mut ids: Vec<(&str, i64, i64)> = transitions
        .iter()
        .map(|t| (t.observation.key.as_str(), t.observation.incarnation, t.number))
        .collect();
    ids.sort_unstable();
    // JSON keeps the parts apart whatever characters a key holds.
    let canonical = serde_json::to_string(&ids).unwrap_or_default();
    let digest: String = Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("herald-alerts-{digest}")
}

/// The subject: the transition itself when there is one, else a count per kind and direction.
pub fn subject(transitions: &[Transition]) -> String {
    if let [only] = transitions {
        return clean_line(&format!("[Herald] {}: {}", only.word(), only.observation.subject));
    }
    let mut groups: BTreeMap<(Kind, bool), usize> = BTreeMap::new();
    for t in transitions {
        // Firing before resolved within a kind.
        *groups.entry((t.observation.kind, !t.observation.firing)).or_default() += 1;
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|((kind, resolved), count)| {
            let word = if resolved {
                super::rules::RESOLVED
            } else {
                kind.firing_word()
            };
            format!("{} {word}", kind.group(count))
        })
        .collect();
    format!("[Herald] {} alerts: {}", transitions.len(), parts.join(", "))
}

/// The whole mail.
pub fn compose(transitions: &[Transition], context: &Context<'_>) -> AlertMail {
    let mut text = String::new();
    let seen = format!(
        "seen by node {} at {}",
        context.node_id,
        rfc3339_ms(context.evaluated_at)
    );
    if transitions.len() == 1 {
        text.push_str(&format!("Herald health alert, {seen}.\n"));
    } else {
        text.push_str(&format!(
            "Herald health alerts: {} changes, {seen}.\n",
            transitions.len()
        ));
    }
    for t in transitions.iter().take(DETAILED) {
        text.push('\n');
        describe(&mut text, t, context);
    }
    if transitions.len() > DETAILED {
        text.push_str(&format!("\n{} more:\n", transitions.len() - DETAILED));
        for t in &transitions[DETAILED..] {
            text.push_str(&format!(
                "{}: {} - {}\n",
                t.word(),
                t.observation.subject,
                t.observation.summary
            ));
        }
    }
    let debounce = if context.debounce.is_zero() {
        "A change is mailed at the first evaluation that sees it.".to_owned()
    } else {
        format!(
            "A change is mailed once it has held for {}.",
            humantime::format_duration(context.debounce)
        )
    };
    text.push_str(&format!(
        "\n-- \nHerald mails its health alerts to HERALD_ALERT_EMAILS. {debounce} \
         Times are UTC.\n"
    ));
    if let Some(url) = context.public_url {
        text.push_str(&format!("Console: {url}{}\n", Link::Overview.path()));
    }
    AlertMail {
        subject: subject(transitions),
        text: text.replace('\0', "\u{fffd}"),
    }
}

fn describe(text: &mut String, t: &Transition, context: &Context<'_>) {
    let o = &t.observation;
    text.push_str(&format!("{}: {}\n", t.word(), o.subject));
    text.push_str(&format!("  Since: {}\n", rfc3339_ms(t.since)));
    if !o.firing {
        text.push_str(&format!(
            "  {} since: {}\n",
            capitalised(o.kind.firing_word()),
            rfc3339_ms(t.previous_since)
        ));
    }
    text.push_str(&format!("  Now: {}\n", o.summary));
    for line in &o.details {
        text.push_str(&format!("  {line}\n"));
    }
    if let Some(url) = context.public_url {
        text.push_str(&format!("  Console: {url}{}\n", o.console_path));
    }
}

fn capitalised(word: &str) -> String {
    let lower = word.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A subject is one header line: control characters become spaces.
fn clean_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::Observation;

    const T0: i64 = 1_750_000_000_000; // 2025-06-15T15:06:40Z

    fn transition(kind: Kind, key: &str, subject: &str, firing: bool, number: i64) -> Transition {
        Transition {
            observation: Observation {
                key: key.to_owned(),
                kind,
                subject: subject.to_owned(),
                firing,
                summary: format!("{subject} summary"),
                details: vec![format!("Detail: about {subject}")],
                incarnation: 7,
                console_path: format!("/console/{key}"),
            },
            number,
            since: T0,
            previous_since: T0 - 3_600_000,
        }
    }

    fn faulty(name: &str) -> Transition {
        transition(
            Kind::Integration,
            &format!("integration:{name}"),
            &format!("integration {name}"),
            true,
            1,
        )
    }

    fn context(public_url: Option<&str>) -> Context<'_> {
        Context {
            evaluated_at: T0 + 120_000,
            node_id: "node_1",
            public_url,
            debounce: Duration::from_secs(120),
        }
    }

    #[test]
    fn one_transition_is_named_in_the_subject() {
        assert_eq!(
            subject(&[faulty("jira-prod")]),
            "[Herald] FAULTY: integration jira-prod"
        );
        let mut resolved = faulty("jira-prod");
        resolved.observation.firing = false;
        assert_eq!(subject(&[resolved]), "[Herald] RESOLVED: integration jira-prod");
        let node = transition(Kind::Node, "node:node_2", "node node_2", true, 1);
        assert_eq!(subject(&[node]), "[Herald] OFFLINE: node node_2");
        let queue = transition(Kind::ErrorQueue, "error-queue", "error queue over 10 messages", true, 1);
        assert_eq!(subject(&[queue]), "[Herald] FIRING: error queue over 10 messages");
    }

    #[test]
    fn several_transitions_are_counted_per_kind_and_direction() {
        let many: Vec<Transition> = (0..40).map(|i| faulty(&format!("jira-{i}"))).collect();
        assert_eq!(subject(&many), "[Herald] 40 alerts: 40 integrations FAULTY");
        let mut mixed = vec![
            transition(Kind::QueueAge, "queue-age", "mail waiting over 30m", false, 2),
            transition(Kind::Node, "node:b", "node b", true, 1),
            faulty("x"),
            faulty("y"),
            transition(Kind::ErrorQueue, "error-queue", "error queue over 10 messages", true, 3),
        ];
        let mut fixed = faulty("z");
        fixed.observation.firing = false;
        mixed.push(fixed);
        assert_eq!(
            subject(&mixed),
            "[Herald] 6 alerts: 2 integrations FAULTY, 1 integration RESOLVED, 1 node OFFLINE, \
             error queue FIRING, queue age RESOLVED"
        );
    }

    #[test]
    fn the_body_says_what_since_when_why_where_and_links_to_the_console() {
        let mut resolved = faulty("jira-test");
        resolved.observation.firing = false;
        let mail = compose(
            &[faulty("jira-prod"), resolved],
            &context(Some("https://herald.example.com")),
        );
        let text = &mail.text;
        assert!(
            text.starts_with("Herald health alerts: 2 changes, seen by node node_1 at 2025-06-15T15:08:40Z.\n"),
            "{text}"
        );
        assert!(
            text.contains("\nFAULTY: integration jira-prod\n  Since: 2025-06-15T15:06:40Z\n"),
            "{text}"
        );
        assert!(text.contains("  Now: integration jira-prod summary\n  Detail: about integration jira-prod\n"));
        assert!(text.contains("  Console: https://herald.example.com/console/integration:jira-prod\n"));
        assert!(text.contains("\nRESOLVED: integration jira-test\n  Since: 2025-06-15T15:06:40Z\n  Faulty since: 2025-06-15T14:06:40Z\n"), "{text}");
        assert!(text.contains("once it has held for 2m"), "{text}");
        assert!(text.contains("Console: https://herald.example.com/console/\n"));
        let bare = compose(&[faulty("jira-prod")], &context(None));
        assert!(bare.text.starts_with("Herald health alert, seen by node node_1"));
        assert!(!bare.text.contains("Console:"), "no link without a public URL");
    }

    #[test]
    fn a_huge_digest_details_the_first_hundred_and_lists_the_rest() {
        let many: Vec<Transition> = (0..150).map(|i| faulty(&format!("jira-{i:03}"))).collect();
        let mail = compose(&many, &context(None));
        assert_eq!(mail.text.matches("  Since: ").count(), 100);
        assert!(
            mail.text
                .contains("\n50 more:\nFAULTY: integration jira-100 - integration jira-100 summary\n")
        );
        assert!(mail.text.contains("FAULTY: integration jira-149 -"));
    }

    #[test]
    fn control_characters_never_reach_the_subject_or_the_body() {
        let mut odd = faulty("jira");
        odd.observation.subject = "integration a\r\nBcc: x".to_owned();
        odd.observation.summary = "nul\0here".to_owned();
        let mail = compose(&[odd], &context(None));
        assert_eq!(mail.subject, "[Herald] FAULTY: integration a  Bcc: x");
        assert!(!mail.text.contains('\0'));
    }

    #[test]
    fn the_idempotency_key_depends_only_on_which_transitions() {
        let a = faulty("a");
        let b = faulty("b");
        let key = idempotency_key(&[a.clone(), b.clone()]);
        assert!(key.starts_with("herald-alerts-") && key.len() == 14 + 64, "{key}");
        assert!(crate::mail::IdempotencyKey::try_from(key.as_str()).is_ok());
        // Order, times, summaries and details do not matter.
        let mut b_later = b.clone();
        b_later.since += 60_000;
        b_later.observation.summary = "other words".to_owned();
        assert_eq!(idempotency_key(&[b_later, a.clone()]), key);
        // The transition number, the set and the subject's incarnation do.
        let mut a_next = a.clone();
        a_next.number = 2;
        assert_ne!(idempotency_key(&[a_next, b.clone()]), key);
        assert_ne!(idempotency_key(std::slice::from_ref(&a)), key);
        let mut a_recreated = a.clone();
        a_recreated.observation.incarnation += 1;
        assert_ne!(idempotency_key(&[a_recreated, b.clone()]), key);
        // Keys that would collide if simply joined do not.
        let mut x = faulty("x");
        x.observation.key = "k#1".to_owned();
        x.number = 1;
        let mut y = faulty("y");
        y.observation.key = "k".to_owned();
        y.number = 11;
        assert_ne!(idempotency_key(&[x]), idempotency_key(&[y]));
        // Stable across versions (mail queued before an upgrade is still recognised after it):
        // SHA-256 of `[["integration:jira-prod",7,1]]`.
        assert_eq!(
            idempotency_key(&[faulty("jira-prod")]),
            "herald-alerts-a66c20861594db2aa4b7cf058b228a89800ae95ece07e47cea58986a30608ef2"
        );
    }
}
