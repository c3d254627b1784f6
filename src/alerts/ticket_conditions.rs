//! The ticket delivery condition of each integration: its events parked in the error list, or
//! waiting too long to be applied.

use std::time::Duration;

use super::conditions::{age, plural};
use super::rules::{Kind, Observation};
use crate::links::Link;
use crate::store::{LatestCheck, TicketEventFigures};
use crate::timefmt::rfc3339_ms;

/// One condition per integration: firing while ticket events of it are parked in the error list
/// (Jira refused them; they wait for an admin), or while its oldest event still to apply was
/// accepted longer than `max_age` ago (Jira down, throttling, a worker stuck). Every integration is
/// observed, so that a condition whose events were all applied resolves instead of vanishing.
pub fn tickets(
    checks: &[LatestCheck],
    figures: &[TicketEventFigures],
    max_age: Duration,
    now: i64,
) -> Vec<Observation> {
    let limit = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let limit_text = humantime::format_duration(max_age).to_string();
    checks
        .iter()
        .map(|check| {
            let name = check.name.as_str();
            let f = figures.iter().find(|f| f.integration == name);
            let (queued, errors) = f.map_or((0, 0), |f| (f.queued, f.errors));
            let oldest = f.and_then(|f| f.oldest_queued_at);
            let waited_too_long = oldest.is_some_and(|at| now.saturating_sub(at) > limit);
            let summary = if errors > 0 {
                format!(
                    "{errors} ticket event{} of integration {name} {} parked in the error list: Jira refused {}",
                    plural(errors),
                    if errors == 1 { "is" } else { "are" },
                    if errors == 1 { "it" } else { "them" }
                )
            } else if let Some(at) = oldest.filter(|_| waited_too_long) {
                format!(
                    "The oldest ticket event of integration {name} has waited {} to be applied (alert above \
                     {limit_text})",
                    age(now - at)
                )
            } else {
                format!("Ticket delivery of integration {name} is keeping up")
            };
            let mut details = vec![
                format!("Integration: {name}"),
                format!("Events waiting: {queued}; parked in the error list: {errors}"),
            ];
            if let Some(at) = oldest {
                details.push(format!("Oldest waiting event: accepted {}", rfc3339_ms(at)));
            }
            details.push(
                "See the integration's Tickets page (or `herald tickets list --state error`) for Jira's answer; \
                 resend the events once the cause is fixed."
                    .to_owned(),
            );
            Observation {
                key: format!("tickets:{name}"),
                kind: Kind::Tickets,
                subject: format!("ticket delivery of integration {name}"),
                firing: errors > 0 || waited_too_long,
                summary,
                details,
                incarnation: check.created_at,
                console_path: Link::Tickets(name).path(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> LatestCheck {
        LatestCheck {
            name: name.to_owned(),
            created_at: 1,
            config: "{}".to_owned(),
            status: None,
            reason: None,
            checked_at: None,
        }
    }

    #[test]
    fn ticket_delivery_fires_on_parked_events_or_old_ones_and_resolves_when_all_are_applied() {
        let checks = [check("jira"), check("other")];
        let figures = |queued, errors, oldest| TicketEventFigures {
            integration: "jira".into(),
            queued,
            errors,
            oldest_queued_at: oldest,
        };
        let max = Duration::from_secs(1800);
        let now = 10_000_000;
        let quiet = tickets(&checks, &[], max, now);
        assert_eq!(quiet.len(), 2);
        assert!(quiet.iter().all(|o| !o.firing && o.kind == Kind::Tickets));
        assert_eq!(quiet[0].key, "tickets:jira");
        assert_eq!(quiet[0].console_path, "/console/integrations/jira/tickets");
        let parked = tickets(&checks, &[figures(1, 2, Some(now - 1000))], max, now);
        assert!(parked[0].firing);
        assert!(
            parked[0]
                .summary
                .contains("2 ticket events of integration jira are parked"),
            "{}",
            parked[0].summary
        );
        assert!(!parked[1].firing);
        let young = tickets(&checks, &[figures(5, 0, Some(now - 1_799_000))], max, now);
        assert!(!young[0].firing);
        let old = tickets(&checks, &[figures(5, 0, Some(now - 1_801_000))], max, now);
        assert!(old[0].firing);
        assert!(old[0].summary.contains("has waited 30m"), "{}", old[0].summary);
    }
}
