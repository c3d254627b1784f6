//! Step 3's part for tickets: when an integration has tickets enabled, the check also verifies what
//! ticket delivery needs beyond creating issues.
//!
//! - The permissions its settings use: `ADD_COMMENTS` with `comment_on_repeat`, `TRANSITION_ISSUES`
//!   with a resolve or reopen transition (asked for with the others, in [`Run::configuration`]).
//! - The ticket settings' `fields` are on the create screen, like the integration's own.
//! - The Labels field is on the create screen; without it Herald cannot write its dedup label, and
//!   finds its issues through its own map alone: said in the step's detail, not a failure.
//! - The named transitions exist: Jira lists the transitions an issue offers from its status, and
//!   reading a workflow needs Jira admin rights Herald should not have, so the check reads them on the
//!   newest issue of the project and type that is open (for the resolve transition) or done (for the
//!   reopen transition). With no such issue yet, the detail says the transition is not verified.

use super::*;
use crate::jira::{SearchWire, Transition, TransitionsWire, find_transition, jql_quote};

impl Run<'_> {
    /// The ticket settings, when tickets are enabled.
    fn tickets(&self) -> Option<&crate::tickets::TicketSettings> {
        self.settings.tickets.as_deref().filter(|t| t.enabled)
    }

    /// Permissions the ticket settings need beyond browsing and creating.
    pub(super) fn ticket_permissions(&self) -> Vec<&'static str> {
        let Some(tickets) = self.tickets() else {
            return Vec::new();
        };
        let mut needed = Vec::new();
        if tickets.comment_on_repeat {
            needed.push("ADD_COMMENTS");
        }
        if tickets.resolve_transition.is_some() || tickets.reopen_transition.is_some() {
            needed.push("TRANSITION_ISSUES");
        }
        needed
    }

    /// What ticket delivery needs of the create screen and the workflow; notes for the detail.
    pub(super) async fn ticket_needs(
        &mut self,
        key: &str,
        issue_type: &IssueType,
        fields: &[FieldMeta],
    ) -> StepResult<Vec<String>> {
        let Some(tickets) = self.tickets().cloned() else {
            return Ok(Vec::new());
        };
        let on_screen = |id: &str| {
            fields
                .iter()
                .any(|f| f.field_id.as_deref() == Some(id) || f.key.as_deref() == Some(id))
        };
        let mut notes = Vec::new();
        if !fields.is_empty() {
            let unknown: Vec<String> = tickets
                .fields
                .keys()
                .filter(|id| !on_screen(id))
                .map(|id| format!("`{id}`"))
                .collect();
            if !unknown.is_empty() {
                return Err(configuration(format!(
                    "`tickets.fields` sets {} which the create screen of issue type `{}` in project `{key}` does \
                     not have; Jira would refuse the tickets",
                    unknown.join(", "),
                    issue_type.name
                )));
            }
            if !on_screen("labels") {
                notes.push(format!(
                    "the Labels field is not on the create screen of `{}`, so Herald cannot label its issues: it \
                     finds them through its own map alone (add Labels to the screen so that a lost create answer \
                     can be found by search)",
                    issue_type.name
                ));
            }
        }
        let wanted = [
            (tickets.resolve_transition.as_deref(), false, "resolve_transition"),
            (tickets.reopen_transition.as_deref(), true, "reopen_transition"),
        ];
        for (name, from_done, setting) in wanted {
            if let Some(name) = name {
                notes.extend(
                    self.transition_exists(key, issue_type, name, from_done, setting)
                        .await?,
                );
            }
        }
        Ok(notes)
    }

    /// Checks `name` among the transitions of the newest issue that is done (`from_done`) or not.
    async fn transition_exists(
        &mut self,
        key: &str,
        issue_type: &IssueType,
        name: &str,
        from_done: bool,
        setting: &str,
    ) -> StepResult<Option<String>> {
        let jql = format!(
            "project = {} AND issuetype = {} AND statusCategory {} Done ORDER BY updated DESC",
            jql_quote(key),
            jql_quote(&issue_type.name),
            if from_done { "=" } else { "!=" }
        );
        let cloud = self
            .report
            .deployment_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("cloud"));
        let search = if cloud {
            "/rest/api/3/search/jql"
        } else {
            "/rest/api/2/search"
        };
        let query = serde_urlencoded::to_string([("jql", jql.as_str()), ("maxResults", "1"), ("fields", "status")])
            .unwrap_or_default();
        self.wave(1);
        let answer = self.get(&format!("{search}?{query}"), Credentials::Configured).await;
        let answer = self.expect_ok(answer, "issues to read transitions from")?;
        let found: SearchWire = self.parse(&answer, "issues to read transitions from")?;
        let which = if from_done { "done" } else { "open" };
        let Some(issue) = found.issues.into_iter().next() else {
            return Ok(Some(format!(
                "`{setting}` `{name}` is not verified yet: project `{key}` has no {which} `{}` to read transitions \
                 from",
                issue_type.name
            )));
        };
        self.wave(1);
        let path = format!("/rest/api/2/issue/{}/transitions", issue.key);
        let answer = self.get(&path, Credentials::Configured).await;
        let answer = self.expect_ok(answer, "transitions")?;
        let offered: TransitionsWire = self.parse(&answer, "transitions")?;
        let offered: Vec<Transition> = offered.transitions.into_iter().map(Transition::from).collect();
        if find_transition(&offered, name).is_some() {
            return Ok(None);
        }
        let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
        Err(configuration(format!(
            "`{setting}` names `{name}`, but {} ({which} `{}` in project `{key}`) offers no such transition (it \
             offers: {}); name one of the workflow's transitions, or check Herald's TRANSITION_ISSUES permission",
            issue.key,
            issue_type.name,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )))
    }
}
