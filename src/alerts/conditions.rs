//! The alert conditions, observed from figures already read: integration verdicts, the cluster's
//! error queue, the age of the oldest waiting message, node liveness, the nodes' mail relays, and
//! the evaluating node's background loops (each integration's ticket delivery: `ticket_conditions`).

use std::time::Duration;

use super::rules::{Kind, Observation};
use crate::cluster::{NodeState, NodeView};
use crate::links::Link;
use crate::mail::describe_relay;
use crate::store::{LatestCheck, NodeMailFigures, RelayRow};
use crate::supervisor::{LoopReport, LoopStatus};
use crate::timefmt::rfc3339_ms;

/// The verdict that makes an integration alert.
pub const FAULTY: &str = "FAULTY_CONFIGURATION";

pub const ERROR_QUEUE_KEY: &str = "error-queue";
pub const QUEUE_AGE_KEY: &str = "queue-age";

/// One condition per integration: firing while its newest recorded check is FAULTY_CONFIGURATION.
/// An integration never checked yet is not known to be faulty, so it does not fire.
pub fn integrations(checks: &[LatestCheck]) -> Vec<Observation> {
    checks
        .iter()
        .map(|check| {
            let firing = check.status.as_deref() == Some(FAULTY);
            let reason = check.reason.as_deref().unwrap_or("");
            let summary = match (&check.status, firing) {
                (None, _) => format!("Integration {} has not been checked yet", check.name),
                (Some(_), true) => format!("Integration {} is faulty: {reason}", check.name),
                (Some(status), false) => format!("Integration {} is {status}", check.name),
            };
            let mut details = Vec::new();
            if let Some(status) = &check.status {
                details.push(format!("Status: {status}"));
            }
            if !reason.is_empty() {
                details.push(format!("Reason: {reason}"));
            }
            if let Some(at) = check.checked_at {
                details.push(format!("Last check: {}", rfc3339_ms(at)));
            }
            Observation {
                key: format!("integration:{}", check.name),
                kind: Kind::Integration,
                subject: format!("integration {}", check.name),
                firing,
                summary,
                details,
                incarnation: check.created_at,
                console_path: Link::Integration(&check.name).path(),
            }
        })
        .collect()
}

fn per_node_lines(figures: &[NodeMailFigures], now: i64) -> Vec<String> {
    if figures.is_empty() {
        return vec!["No node holds any mail.".to_owned()];
    }
    figures
        .iter()
        .map(|f| {
            let oldest = f
                .oldest_queued_at
                .map(|at| format!(", oldest accepted {} ({} ago)", rfc3339_ms(at), age(now - at)))
                .unwrap_or_default();
            format!(
                "Node {}: {} waiting, {} in the error queue{oldest}",
                f.node_id, f.queue_size, f.error_size
            )
        })
        .collect()
}

/// The whole cluster's error queue holds more than `threshold` messages.
pub fn error_queue(figures: &[NodeMailFigures], threshold: i64, now: i64) -> Observation {
    let total: i64 = figures.iter().map(|f| f.error_size).sum();
    let firing = total > threshold;
    let mut details = vec![format!(
        "Error queue: {total} message{} in the whole cluster (alert above {threshold})",
        plural(total)
    )];
    details.extend(per_node_lines(figures, now));
    Observation {
        key: ERROR_QUEUE_KEY.to_owned(),
        kind: Kind::ErrorQueue,
        subject: format!("error queue over {threshold} message{}", plural(threshold)),
        firing,
        summary: format!(
            "The error queue holds {total} message{} (alert above {threshold})",
            plural(total)
        ),
        details,
        incarnation: 0,
        console_path: Link::Overview.path(),
    }
}

/// The oldest message waiting anywhere in the cluster (queued or being sent, not in the error
/// queue) was accepted longer than `max_age` ago.
pub fn queue_age(figures: &[NodeMailFigures], max_age: Duration, now: i64) -> Observation {
    let oldest = figures
        .iter()
        .filter_map(|f| f.oldest_queued_at.map(|at| (at, f.node_id.as_str())))
        .min();
    let limit = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let firing = oldest.is_some_and(|(at, _)| now.saturating_sub(at) > limit);
    let limit_text = humantime::format_duration(max_age).to_string();
    let (summary, mut details) = match oldest {
        Some((at, node)) => (
            format!(
                "The oldest waiting message has waited {} (alert above {limit_text}), on node {node}",
                age(now - at)
            ),
            vec![format!(
                "Oldest waiting message: accepted {} by node {node}",
                rfc3339_ms(at)
            )],
        ),
        None => ("No message is waiting".to_owned(), Vec::new()),
    };
    details.extend(per_node_lines(figures, now));
    Observation {
        key: QUEUE_AGE_KEY.to_owned(),
        kind: Kind::QueueAge,
        subject: format!("mail waiting over {limit_text}"),
        firing,
        summary,
        details,
        incarnation: 0,
        console_path: Link::Overview.path(),
    }
}

/// One condition per node of the cluster view (empty when not clustered): firing while OFFLINE,
/// except that a node stopped cleanly (a restart, an upgrade) fires only once it has stayed
/// stopped for `stopped_grace`.
pub fn nodes(view: &[NodeView], stopped_grace: Duration, now: i64) -> Vec<Observation> {
    let grace = i64::try_from(stopped_grace.as_millis()).unwrap_or(i64::MAX);
    view.iter()
        .map(|node| {
            let offline = node.state == NodeState::Offline;
            let firing = offline && (!node.stopped || now.saturating_sub(node.heartbeat_at) >= grace);
            let (summary, how) = if offline && node.stopped {
                (
                    format!(
                        "Node {} is {} (stopped cleanly at {})",
                        node.node_id,
                        node.state,
                        rfc3339_ms(node.heartbeat_at)
                    ),
                    "Stopped cleanly at",
                )
            } else {
                (
                    format!(
                        "Node {} is {} (last heartbeat {})",
                        node.node_id,
                        node.state,
                        rfc3339_ms(node.heartbeat_at)
                    ),
                    "Last heartbeat:",
                )
            };
            Observation {
                key: format!("node:{}", node.node_id),
                kind: Kind::Node,
                subject: format!("node {}", node.node_id),
                firing,
                summary,
                details: vec![
                    format!("State: {}", node.state),
                    format!("{how} {}", rfc3339_ms(node.heartbeat_at)),
                    format!(
                        "Mail: {} waiting, {} in the error queue (as last published)",
                        node.queue_size, node.error_size
                    ),
                ],
                incarnation: 0,
                console_path: Link::Overview.path(),
            }
        })
        .collect()
}

/// One condition per mail relay of each delivering node: firing once the relay has been down for
/// `limit` (a relay that comes back sooner, as most do, mails nothing).
pub fn relays(rows: &[RelayRow], limit: Duration, now: i64) -> Vec<Observation> {
    let limit = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
    rows.iter()
        .map(|row| {
            let firing = !row.up && now.saturating_sub(row.since) >= limit;
            let health = describe_relay(row, now);
            Observation {
                key: format!("relay:{}:{}", row.node_id, row.relay),
                kind: Kind::Relay,
                subject: format!("mail relay {} of node {}", row.relay, row.node_id),
                firing,
                summary: format!("Mail relay {} of node {} is {health}", row.relay, row.node_id),
                details: vec![
                    format!(
                        "Relay: {} (choice {} of the node's relays)",
                        row.relay,
                        row.position + 1
                    ),
                    format!("Node: {}", row.node_id),
                    format!("Health: {health}"),
                    "While a relay is down, its node sends its mail to its next relay that is up, or keeps it queued."
                        .to_owned(),
                ],
                incarnation: 0,
                console_path: Link::Overview.path(),
            }
        })
        .collect()
}

/// One condition per background loop started on this node (the evaluating one: loops live in a
/// node's memory): firing while the loop has died, or runs but has not completed a round within
/// [`LoopReport::stall_limit`]. A loop switched off by configuration is not observed.
pub fn loops(reports: &[LoopReport], node_id: &str, now: i64) -> Vec<Observation> {
    reports
        .iter()
        .filter(|r| r.status != LoopStatus::NotRunning)
        .map(|r| {
            let name = r.name.title();
            let stalled = r.stalled(now);
            let died = r.status == LoopStatus::Died;
            // No "… ago" here: the summary is stored, and should change only when the facts do.
            let last = r
                .last_round
                .map(|at| format!("last completed a round at {}", rfc3339_ms(at)))
                .unwrap_or_else(|| format!("completed no round since it started at {}", rfc3339_ms(r.started_at)));
            let summary = if died {
                let at = r.ended_at.map(rfc3339_ms).unwrap_or_default();
                format!("The {name} loop of node {node_id} died at {at} (it {last}); restart the node")
            } else if stalled {
                let limit = r.period.map(LoopReport::stall_limit).unwrap_or_default();
                format!(
                    "The {name} loop of node {node_id} is stalled: it {last} (alert after {} without one)",
                    humantime::format_duration(limit)
                )
            } else {
                format!("The {name} loop of node {node_id} runs (it {last})")
            };
            let mut details = vec![format!("Loop: {} on node {node_id}", r.name.as_str())];
            if let Some(at) = r.last_round {
                details.push(format!(
                    "Last completed round: {} ({} ago)",
                    rfc3339_ms(at),
                    age(now - at)
                ));
            }
            if let Some(period) = r.period {
                details.push(format!("Expected a round every {}", humantime::format_duration(period)));
            }
            details.push(format!("Failures since start (panics and errors): {}", r.failures));
            Observation {
                key: format!("loop:{node_id}:{}", r.name.as_str()),
                kind: Kind::Loop,
                subject: format!("{name} on node {node_id}"),
                firing: died || stalled,
                summary,
                details,
                incarnation: r.started_at,
                console_path: Link::Overview.path(),
            }
        })
        .collect()
}

pub(super) fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A duration in whole seconds, as `1h 2m 3s`.
pub(super) fn age(ms: i64) -> String {
    let secs = u64::try_from(ms.max(0) / 1000).unwrap_or(0);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000_000; // 2025-06-15T15:06:40Z
    const MIN: i64 = 60_000;

    fn check(name: &str, status: Option<&str>, reason: &str) -> LatestCheck {
        LatestCheck {
            config: String::new(),
            name: name.to_owned(),
            created_at: 42,
            status: status.map(str::to_owned),
            reason: status.map(|_| reason.to_owned()),
            checked_at: status.map(|_| NOW - MIN),
        }
    }

    fn figures(node: &str, queued: i64, errors: i64, oldest: Option<i64>) -> NodeMailFigures {
        NodeMailFigures {
            node_id: node.to_owned(),
            queue_size: queued,
            error_size: errors,
            oldest_queued_at: oldest,
        }
    }

    #[test]
    fn an_integration_fires_only_on_a_faulty_verdict() {
        let seen = integrations(&[
            check("jira prod/1", Some(FAULTY), "Authentication failed: no."),
            check(
                "ok",
                Some("HEALTHY_INTEGRATION"),
                "Integration is healthy and operational.",
            ),
            check("new", None, ""),
        ]);
        assert_eq!(seen.len(), 3);
        let faulty = &seen[0];
        assert_eq!(faulty.key, "integration:jira prod/1");
        assert_eq!(faulty.subject, "integration jira prod/1");
        assert!(faulty.firing);
        assert_eq!(
            faulty.summary,
            "Integration jira prod/1 is faulty: Authentication failed: no."
        );
        assert_eq!(
            faulty.details,
            [
                "Status: FAULTY_CONFIGURATION",
                "Reason: Authentication failed: no.",
                "Last check: 2025-06-15T15:05:40Z"
            ]
        );
        assert_eq!(faulty.console_path, "/console/integrations/jira%20prod%2F1");
        assert_eq!(faulty.incarnation, 42);
        assert!(!seen[1].firing);
        assert!(!seen[2].firing, "never checked is unknown, not faulty");
        assert_eq!(seen[2].summary, "Integration new has not been checked yet");
    }

    #[test]
    fn the_error_queue_fires_above_the_threshold_counting_every_node() {
        let two = [
            figures("node_1", 0, 6, None),
            figures("node_2", 3, 5, Some(NOW - 5 * MIN)),
        ];
        let over = error_queue(&two, 10, NOW);
        assert!(over.firing);
        assert_eq!(over.key, "error-queue");
        assert_eq!(over.subject, "error queue over 10 messages");
        assert_eq!(over.summary, "The error queue holds 11 messages (alert above 10)");
        assert_eq!(
            over.details,
            [
                "Error queue: 11 messages in the whole cluster (alert above 10)",
                "Node node_1: 0 waiting, 6 in the error queue",
                "Node node_2: 3 waiting, 5 in the error queue, oldest accepted 2025-06-15T15:01:40Z (5m ago)",
            ]
        );
        assert!(!error_queue(&two, 11, NOW).firing, "at the threshold is not over it");
        assert!(!error_queue(&[], 0, NOW).firing);
        assert_eq!(error_queue(&[], 0, NOW).details[1], "No node holds any mail.");
    }

    #[test]
    fn queue_age_fires_when_the_oldest_waiting_message_anywhere_is_too_old() {
        let max = Duration::from_secs(30 * 60);
        let young = [
            figures("node_1", 1, 0, Some(NOW - 29 * MIN)),
            figures("node_2", 0, 4, None),
        ];
        assert!(!queue_age(&young, max, NOW).firing);
        let old = [
            figures("node_1", 1, 0, Some(NOW - 29 * MIN)),
            figures("node_2", 2, 0, Some(NOW - 31 * MIN)),
        ];
        let seen = queue_age(&old, max, NOW);
        assert!(seen.firing);
        assert_eq!(seen.subject, "mail waiting over 30m");
        assert_eq!(
            seen.summary,
            "The oldest waiting message has waited 31m (alert above 30m), on node node_2"
        );
        assert_eq!(
            seen.details[0],
            "Oldest waiting message: accepted 2025-06-15T14:35:40Z by node node_2"
        );
        let none = queue_age(&[], max, NOW);
        assert!(!none.firing);
        assert_eq!(none.summary, "No message is waiting");
    }

    fn node(id: &str, state: NodeState, heartbeat_at: i64, stopped: bool) -> NodeView {
        NodeView {
            node_id: id.into(),
            state,
            heartbeat_at,
            queue_size: 4,
            error_size: 1,
            stopped,
        }
    }

    #[test]
    fn a_node_fires_while_offline() {
        let view = [
            node("node_1", NodeState::Active, NOW, false),
            node("node_2", NodeState::Offline, NOW - 10 * MIN, false),
        ];
        let seen = nodes(&view, Duration::from_secs(30 * 60), NOW);
        assert!(!seen[0].firing);
        assert!(seen[1].firing);
        assert_eq!(seen[1].key, "node:node_2");
        assert_eq!(seen[1].subject, "node node_2");
        assert_eq!(
            seen[1].summary,
            "Node node_2 is OFFLINE (last heartbeat 2025-06-15T14:56:40Z)"
        );
        assert_eq!(
            seen[1].details[2],
            "Mail: 4 waiting, 1 in the error queue (as last published)"
        );
        assert_eq!(seen[1].details[1], "Last heartbeat: 2025-06-15T14:56:40Z");
        assert!(nodes(&[], Duration::ZERO, NOW).is_empty());
    }

    #[test]
    fn a_node_stopped_cleanly_fires_only_once_it_has_stayed_stopped_past_the_grace() {
        let grace = Duration::from_secs(30 * 60);
        let restarting = nodes(&[node("node_2", NodeState::Offline, NOW - 10 * MIN, true)], grace, NOW);
        assert!(!restarting[0].firing);
        assert_eq!(
            restarting[0].summary,
            "Node node_2 is OFFLINE (stopped cleanly at 2025-06-15T14:56:40Z)"
        );
        assert_eq!(restarting[0].details[1], "Stopped cleanly at 2025-06-15T14:56:40Z");
        let gone = nodes(&[node("node_2", NodeState::Offline, NOW - 30 * MIN, true)], grace, NOW);
        assert!(gone[0].firing);
        let at_once = nodes(&[node("node_2", NodeState::Offline, NOW, true)], Duration::ZERO, NOW);
        assert!(at_once[0].firing);
        // Back and heartbeating: the stale OFFLINE row no longer counts.
        let back = nodes(&[node("node_2", NodeState::Active, NOW, false)], grace, NOW);
        assert!(!back[0].firing);
    }

    #[test]
    fn a_loop_fires_when_it_died_or_stalled_and_not_when_switched_off() {
        use crate::supervisor::BackgroundLoop;
        let report = |name, status, last_round: Option<i64>| LoopReport {
            name,
            status,
            started_at: NOW - 60 * MIN,
            last_round,
            period: Some(Duration::from_secs(300)),
            failures: 2,
            ended_at: (status == LoopStatus::Died).then_some(NOW - 5 * MIN),
        };
        let seen = loops(
            &[
                report(
                    BackgroundLoop::IntegrationSweep,
                    LoopStatus::Running,
                    Some(NOW - 16 * MIN),
                ),
                report(BackgroundLoop::MailDelivery, LoopStatus::NotRunning, None),
                report(BackgroundLoop::ClusterHeartbeat, LoopStatus::Died, None),
                report(BackgroundLoop::AlertEvaluation, LoopStatus::Running, Some(NOW - MIN)),
            ],
            "node_1",
            NOW,
        );
        let firing: Vec<(&str, bool)> = seen.iter().map(|o| (o.key.as_str(), o.firing)).collect();
        assert_eq!(
            firing,
            [
                ("loop:node_1:integration_sweep", true),
                ("loop:node_1:cluster_heartbeat", true),
                ("loop:node_1:alert_evaluation", false),
            ]
        );
        assert_eq!(
            seen[0].summary,
            "The integration sweep loop of node node_1 is stalled: it last completed a round at \
             2025-06-15T14:50:40Z (alert after 15m without one)"
        );
        assert!(
            seen[1].summary.contains("died at 2025-06-15T15:01:40Z"),
            "{}",
            seen[1].summary
        );
        assert_eq!(seen[0].kind.firing_word(), "STALLED");
    }

    #[test]
    fn a_relay_fires_once_it_has_been_down_for_the_limit() {
        let row = |up: bool, since: i64| RelayRow {
            node_id: "node_1".into(),
            relay: "smtp://relay:25".into(),
            position: 0,
            up,
            since,
            reason: (!up).then(|| "cannot connect to smtp://relay:25: Connection refused".to_owned()),
            probes: 2,
            next_probe_at: (!up).then_some(NOW + 20_000),
            updated_at: NOW,
        };
        let limit = Duration::from_secs(300);
        let rows = [
            row(false, NOW - 5 * MIN),
            row(false, NOW - 4 * MIN),
            row(true, NOW - 60 * MIN),
        ];
        let observed = relays(&rows, limit, NOW);
        let firing: Vec<bool> = observed.iter().map(|o| o.firing).collect();
        assert_eq!(firing, [true, false, false]);
        let down = &observed[0];
        assert_eq!(down.key, "relay:node_1:smtp://relay:25");
        assert_eq!(down.kind, Kind::Relay);
        assert_eq!(down.subject, "mail relay smtp://relay:25 of node node_1");
        assert!(
            down.summary.contains("is down since") && down.summary.contains("Connection refused"),
            "{}",
            down.summary
        );
    }
}
