//! The alert engine, without I/O: from the stored states and what is observed now, which states to
//! write, which to drop, and which transitions to mail.
//!
//! Each condition has a state: the one last mailed (`firing` or quiet), and possibly a change
//! waiting out the debounce (`pending_since`). A change is mailed once it has held for the whole
//! debounce; a change that reverts before that is forgotten without a mail. A condition whose
//! subject is gone (a deleted integration, a node dropped from the cluster view) is dropped
//! silently.

use std::collections::BTreeMap;

use crate::store::AlertState;

/// The families of conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Integration,
    Node,
    ErrorQueue,
    QueueAge,
    /// A background loop of the evaluating node that died or stopped completing rounds.
    Loop,
    /// A node's mail relay that has been down too long.
    Relay,
    /// An integration whose ticket events are parked in the error list or wait too long.
    Tickets,
}

/// The word for a condition that stopped firing.
pub const RESOLVED: &str = "RESOLVED";

impl Kind {
    /// The word for this kind of condition when it fires, as subjects and bodies show it.
    pub fn firing_word(self) -> &'static str {
        match self {
            Kind::Integration => "FAULTY",
            Kind::Node => "OFFLINE",
            Kind::ErrorQueue | Kind::QueueAge => "FIRING",
            Kind::Loop => "STALLED",
            Kind::Relay => "DOWN",
            Kind::Tickets => "FAILING",
        }
    }

    /// How a digest's subject names `count` transitions of this kind: `3 integrations`, `error queue`.
    pub fn group(self, count: usize) -> String {
        let plural = if count == 1 { "" } else { "s" };
        match self {
            Kind::Integration => format!("{count} integration{plural}"),
            Kind::Node => format!("{count} node{plural}"),
            Kind::ErrorQueue => "error queue".to_owned(),
            Kind::QueueAge => "queue age".to_owned(),
            Kind::Loop => format!("{count} background loop{plural}"),
            Kind::Relay => format!("{count} mail relay{plural}"),
            Kind::Tickets => format!("ticket delivery of {count} integration{plural}"),
        }
    }
}

/// What is seen of one condition now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// `integration:<name>`, `node:<id>`, `error-queue`, `queue-age`, `loop:<node>:<loop>`,
    /// `relay:<node>:<relay>`, `tickets:<integration>`.
    pub key: String,
    pub kind: Kind,
    /// What the condition is about, as a subject line names it: `integration jira-prod`.
    pub subject: String,
    pub firing: bool,
    /// One line, kept with the state (the console shows it for firing alerts).
    pub summary: String,
    /// Lines for the mail: reason, figures, node ids.
    pub details: Vec<String>,
    /// Tells a subject apart from an earlier one under the same key (an integration deleted and
    /// created again: its creation time), so that their transitions never share an idempotency key.
    pub incarnation: i64,
    /// The console page about the condition, relative to the public URL.
    pub console_path: String,
}

/// A change to mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The condition as seen now; its `firing` is the new state.
    pub observation: Observation,
    /// The condition's count of transitions, this one included.
    pub number: i64,
    /// When the new state was first seen.
    pub since: i64,
    /// When the previous state began.
    pub previous_since: i64,
}

impl Transition {
    /// `FAULTY`, `OFFLINE`, `FIRING` or `RESOLVED`.
    pub fn word(&self) -> &'static str {
        if self.observation.firing {
            self.observation.kind.firing_word()
        } else {
            RESOLVED
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// States to write (new or changed), by key.
    pub save: Vec<AlertState>,
    /// Keys whose state is dropped: their subject is gone.
    pub delete: Vec<String>,
    /// Transitions to mail, by key.
    pub transitions: Vec<Transition>,
    /// Conditions whose mailed state is firing after this evaluation.
    pub firing: usize,
    /// Conditions with a change waiting out the debounce.
    pub pending: usize,
}

/// Decides one evaluation at `now` (ms). `debounce_ms` is how long a change must hold before it is
/// mailed (0: at once). Observations are unique by key.
pub fn decide(now: i64, debounce_ms: i64, stored: &[AlertState], observed: &[Observation]) -> Decision {
    let stored: BTreeMap<&str, &AlertState> = stored.iter().map(|s| (s.key.as_str(), s)).collect();
    let observed: BTreeMap<&str, &Observation> = observed.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut decision = Decision {
        delete: stored
            .keys()
            .filter(|key| !observed.contains_key(*key))
            .map(|key| (*key).to_owned())
            .collect(),
        ..Decision::default()
    };
    for (key, observation) in observed {
        let old = stored.get(key).copied();
        let mut next = match old {
            Some(old) => AlertState {
                summary: observation.summary.clone(),
                updated_at: now,
                ..old.clone()
            },
            None => AlertState {
                key: key.to_owned(),
                firing: false,
                transitions: 0,
                since: now,
                pending_since: None,
                summary: observation.summary.clone(),
                updated_at: now,
            },
        };
        if observation.firing == next.firing {
            // Back to the state last mailed before the debounce ran out: a flap, forgotten.
            next.pending_since = None;
        } else {
            let started = next.pending_since.unwrap_or(now);
            if now.saturating_sub(started) >= debounce_ms {
                next.transitions += 1;
                decision.transitions.push(Transition {
                    observation: observation.clone(),
                    number: next.transitions,
                    since: started,
                    previous_since: next.since,
                });
                next.firing = observation.firing;
                next.since = started;
                next.pending_since = None;
            } else {
                next.pending_since = Some(started);
            }
        }
        decision.firing += usize::from(next.firing);
        decision.pending += usize::from(next.pending_since.is_some());
        if needs_saving(old, &next) {
            decision.save.push(next);
        }
    }
    decision
}

/// A quiet condition that never changed has no row; otherwise a row is written when its state
/// moved, or when the summary of a firing or changing condition did.
fn needs_saving(old: Option<&AlertState>, next: &AlertState) -> bool {
    let active = next.firing || next.pending_since.is_some();
    match old {
        None => active || next.transitions > 0,
        Some(old) => {
            (old.firing, old.transitions, old.since, old.pending_since)
                != (next.firing, next.transitions, next.since, next.pending_since)
                || (active && old.summary != next.summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const DEBOUNCE: i64 = 2 * MIN;
    const T0: i64 = 1_750_000_000_000;

    fn seen(key: &str, firing: bool) -> Observation {
        Observation {
            key: key.to_owned(),
            kind: Kind::Integration,
            subject: format!("integration {key}"),
            firing,
            summary: format!("{key} is {}", if firing { "faulty" } else { "healthy" }),
            details: vec![],
            incarnation: 0,
            console_path: crate::links::Link::Overview.path(),
        }
    }

    /// Runs evaluations one after another, keeping the store in memory.
    #[derive(Default)]
    struct Run {
        states: BTreeMap<String, AlertState>,
    }

    impl Run {
        fn at(&mut self, now: i64, observed: &[Observation]) -> Decision {
            self.with_debounce(now, DEBOUNCE, observed)
        }

        fn with_debounce(&mut self, now: i64, debounce: i64, observed: &[Observation]) -> Decision {
            let stored: Vec<AlertState> = self.states.values().cloned().collect();
            let decision = decide(now, debounce, &stored, observed);
            for state in &decision.save {
                self.states.insert(state.key.clone(), state.clone());
            }
            for key in &decision.delete {
                self.states.remove(key);
            }
            decision
        }

        fn mailed(decision: &Decision) -> Vec<(String, &'static str, i64)> {
            decision
                .transitions
                .iter()
                .map(|t| (t.observation.key.clone(), t.word(), t.number))
                .collect()
        }
    }

    #[test]
    fn a_quiet_condition_seen_for_the_first_time_stores_nothing() {
        let decision = decide(T0, DEBOUNCE, &[], &[seen("a", false)]);
        assert_eq!(decision, Decision::default());
    }

    #[test]
    fn a_firing_condition_is_mailed_only_once_it_held_for_the_debounce() {
        let mut run = Run::default();
        let first = run.at(T0, &[seen("a", true)]);
        assert!(first.transitions.is_empty());
        assert_eq!((first.firing, first.pending), (0, 1));
        assert_eq!(run.states["a"].pending_since, Some(T0));
        assert!(run.at(T0 + MIN, &[seen("a", true)]).transitions.is_empty());
        assert!(run.at(T0 + DEBOUNCE - 1, &[seen("a", true)]).transitions.is_empty());
        let fired = run.at(T0 + DEBOUNCE, &[seen("a", true)]);
        assert_eq!(Run::mailed(&fired), [("a".to_owned(), "FAULTY", 1)]);
        let t = &fired.transitions[0];
        assert_eq!((t.since, t.previous_since), (T0, T0));
        assert_eq!((fired.firing, fired.pending), (1, 0));
        let state = &run.states["a"];
        assert!(state.firing);
        assert_eq!((state.transitions, state.since, state.pending_since), (1, T0, None));
    }

    #[test]
    fn a_firing_condition_is_mailed_once_however_often_it_is_evaluated() {
        let mut run = Run::default();
        run.at(T0, &[seen("a", true)]);
        assert_eq!(run.at(T0 + DEBOUNCE, &[seen("a", true)]).transitions.len(), 1);
        for i in 1..20 {
            let again = run.at(T0 + DEBOUNCE + i * MIN, &[seen("a", true)]);
            assert!(again.transitions.is_empty());
            assert!(again.save.is_empty(), "nothing changed, nothing written");
        }
    }

    #[test]
    fn recovery_is_mailed_once_it_held_for_the_debounce() {
        let mut run = Run::default();
        run.at(T0, &[seen("a", true)]);
        run.at(T0 + DEBOUNCE, &[seen("a", true)]);
        let cleared = T0 + 10 * MIN;
        assert!(run.at(cleared, &[seen("a", false)]).transitions.is_empty());
        assert!(run.states["a"].firing, "still firing while the recovery is pending");
        assert!(
            run.at(cleared + DEBOUNCE - 1, &[seen("a", false)])
                .transitions
                .is_empty()
        );
        let resolved = run.at(cleared + DEBOUNCE, &[seen("a", false)]);
        assert_eq!(Run::mailed(&resolved), [("a".to_owned(), RESOLVED, 2)]);
        let t = &resolved.transitions[0];
        assert_eq!((t.since, t.previous_since), (cleared, T0));
        // The quiet state keeps its row, so the next transition gets the next number.
        let state = &run.states["a"];
        assert!(!state.firing);
        assert_eq!((state.transitions, state.since), (2, cleared));
        let again = T0 + 60 * MIN;
        run.at(again, &[seen("a", true)]);
        let refired = run.at(again + DEBOUNCE, &[seen("a", true)]);
        assert_eq!(Run::mailed(&refired), [("a".to_owned(), "FAULTY", 3)]);
    }

    #[test]
    fn a_flap_shorter_than_the_debounce_sends_nothing_on_either_edge() {
        let mut run = Run::default();
        run.at(T0, &[seen("a", true)]);
        let back = run.at(T0 + MIN, &[seen("a", false)]);
        assert!(back.transitions.is_empty());
        assert_eq!(back.pending, 0);
        assert_eq!(run.states["a"].pending_since, None);
        // A new change starts a new debounce.
        run.at(T0 + 2 * MIN, &[seen("a", true)]);
        assert!(run.at(T0 + 3 * MIN, &[seen("a", true)]).transitions.is_empty());
        assert_eq!(run.at(T0 + 4 * MIN, &[seen("a", true)]).transitions.len(), 1);
        // And the other way round: a short recovery is not mailed either.
        run.at(T0 + 10 * MIN, &[seen("a", false)]);
        assert!(run.at(T0 + 11 * MIN, &[seen("a", true)]).transitions.is_empty());
        assert!(run.at(T0 + 20 * MIN, &[seen("a", true)]).transitions.is_empty());
        assert!(run.states["a"].firing);
        assert_eq!(run.states["a"].transitions, 1);
    }

    #[test]
    fn without_debounce_the_first_evaluation_that_sees_a_change_mails_it() {
        let mut run = Run::default();
        let fired = run.with_debounce(T0, 0, &[seen("a", true)]);
        assert_eq!(Run::mailed(&fired), [("a".to_owned(), "FAULTY", 1)]);
        let resolved = run.with_debounce(T0 + 1, 0, &[seen("a", false)]);
        assert_eq!(Run::mailed(&resolved), [("a".to_owned(), RESOLVED, 2)]);
    }

    #[test]
    fn a_condition_whose_subject_is_gone_is_dropped_silently() {
        let mut run = Run::default();
        run.at(T0, &[seen("a", true), seen("b", true), seen("c", true)]);
        run.at(T0 + DEBOUNCE, &[seen("a", true), seen("b", true), seen("c", true)]);
        run.at(T0 + 3 * MIN, &[seen("a", true), seen("b", false), seen("c", true)]);
        let decision = run.at(T0 + 4 * MIN, &[seen("c", true)]);
        assert!(decision.transitions.is_empty());
        assert_eq!(decision.delete, ["a", "b"]);
        assert_eq!(run.states.keys().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn one_evaluation_gathers_every_transition_in_key_order() {
        let mut run = Run::default();
        let names: Vec<String> = (0..40).map(|i| format!("jira-{i:02}")).collect();
        let all = |firing: bool| names.iter().map(|n| seen(n, firing)).collect::<Vec<_>>();
        run.at(T0, &all(true));
        let fired = run.at(T0 + DEBOUNCE, &all(true));
        assert_eq!(fired.transitions.len(), 40);
        assert_eq!(fired.firing, 40);
        let keys: Vec<&str> = fired.transitions.iter().map(|t| t.observation.key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        // Mixed directions in one evaluation.
        let mut mixed = all(true);
        mixed[0].firing = false;
        mixed.push(seen("new", true));
        run.at(T0 + 10 * MIN, &mixed);
        let decision = run.at(T0 + 12 * MIN, &mixed);
        assert_eq!(
            Run::mailed(&decision),
            [("jira-00".to_owned(), RESOLVED, 2), ("new".to_owned(), "FAULTY", 1)]
        );
    }

    #[test]
    fn the_summary_of_a_firing_condition_follows_what_is_seen() {
        let mut run = Run::default();
        run.at(T0, &[seen("a", true)]);
        run.at(T0 + DEBOUNCE, &[seen("a", true)]);
        let mut changed = seen("a", true);
        changed.summary = "a is faulty differently".to_owned();
        let decision = run.at(T0 + 3 * MIN, &[changed]);
        assert!(decision.transitions.is_empty());
        assert_eq!(decision.save.len(), 1);
        assert_eq!(run.states["a"].summary, "a is faulty differently");
        assert_eq!(run.states["a"].since, T0, "the summary does not move the start");
    }

    #[test]
    fn a_lost_state_write_recomputes_the_same_transition() {
        // The mail is queued, then the process dies before the states are written: the next
        // evaluation starts from the same stored states and finds the same transitions.
        let mut run = Run::default();
        run.at(T0, &[seen("a", true)]);
        let stored: Vec<AlertState> = run.states.values().cloned().collect();
        let first = decide(T0 + DEBOUNCE, DEBOUNCE, &stored, &[seen("a", true)]);
        let retried = decide(T0 + DEBOUNCE + MIN, DEBOUNCE, &stored, &[seen("a", true)]);
        let numbers = |d: &Decision| {
            d.transitions
                .iter()
                .map(|t| (t.observation.key.clone(), t.number))
                .collect::<Vec<_>>()
        };
        assert_eq!(numbers(&first), numbers(&retried));
        assert_eq!(first.transitions[0].since, retried.transitions[0].since);
    }

    #[test]
    fn a_clock_that_goes_back_does_not_fire_early() {
        let mut run = Run::default();
        run.at(T0, &[seen("a", true)]);
        assert!(run.at(T0 - 10 * MIN, &[seen("a", true)]).transitions.is_empty());
        assert_eq!(run.states["a"].pending_since, Some(T0));
    }
}
