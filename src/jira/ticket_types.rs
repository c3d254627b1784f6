//! The shapes of Jira's ticket answers that Herald reads, JQL quoting and the smallest Atlassian
//! Document Format Herald writes. Read leniently like [`super::types`]: only what a decision rests on
//! (an issue's key, a transition's id) is required.

use serde::Deserialize;
use serde_json::{Value, json};

/// The category of an issue's status: Jira's three, whatever the workflow names its statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusCategory {
    /// `new` ("To Do").
    ToDo,
    /// `indeterminate` ("In Progress"; old servers say `in-flight`).
    InProgress,
    /// `done`: the issue is resolved or closed.
    Done,
    /// Another key, or none.
    Other(String),
}

impl StatusCategory {
    pub fn from_key(key: &str) -> Self {
        match key {
            "new" => StatusCategory::ToDo,
            "indeterminate" | "in-flight" => StatusCategory::InProgress,
            "done" => StatusCategory::Done,
            other => StatusCategory::Other(other.to_owned()),
        }
    }

    pub fn is_done(&self) -> bool {
        *self == StatusCategory::Done
    }
}

/// What `POST /rest/api/{2,3}/issue` answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedIssue {
    pub id: String,
    pub key: String,
    #[serde(rename = "self", default)]
    pub self_url: String,
}

/// An issue's state as far as reopening and resolving need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueState {
    pub id: String,
    pub key: String,
    pub status: Option<String>,
    pub status_category: StatusCategory,
    /// The resolution's name (`Done`, `Won't Do`, …); `None` while unresolved.
    pub resolution: Option<String>,
    /// When it was resolved, as Jira wrote it (`2026-11-30T10:00:00.000+0000`).
    pub resolution_date: Option<String>,
}

/// The newest issue carrying a label, as a search found it.
pub type FoundIssue = IssueState;

/// A transition the issue offers now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: String,
    /// Localised: Jira names transitions in its user's language.
    pub name: String,
    pub to_status: Option<String>,
    pub to_status_category: Option<StatusCategory>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IssueWire {
    pub id: String,
    pub key: String,
    #[serde(default)]
    pub fields: FieldsWire,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FieldsWire {
    #[serde(default)]
    status: Option<StatusWire>,
    #[serde(default)]
    resolution: Option<NamedWire>,
    #[serde(default, rename = "resolutiondate")]
    resolution_date: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusWire {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    status_category: Option<CategoryWire>,
}

#[derive(Debug, Default, Deserialize)]
struct CategoryWire {
    #[serde(default)]
    key: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct NamedWire {
    #[serde(default)]
    name: Option<Value>,
}

fn text(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        _ => None,
    }
}

fn category(status: Option<StatusWire>) -> (Option<String>, Option<StatusCategory>) {
    let Some(status) = status else {
        return (None, None);
    };
    let key = status.status_category.and_then(|c| text(c.key));
    (text(status.name), key.map(|k| StatusCategory::from_key(&k)))
}

impl From<IssueWire> for IssueState {
    fn from(wire: IssueWire) -> Self {
        let (status, status_category) = category(wire.fields.status);
        IssueState {
            id: wire.id,
            key: wire.key,
            status,
            status_category: status_category.unwrap_or(StatusCategory::Other(String::new())),
            resolution: wire.fields.resolution.and_then(|r| text(r.name)),
            resolution_date: text(wire.fields.resolution_date),
        }
    }
}

/// `POST /rest/api/3/search/jql` (`isLast`, `nextPageToken`) and `/rest/api/2/search` (`total`).
#[derive(Debug, Deserialize)]
pub(crate) struct SearchWire {
    #[serde(default)]
    pub issues: Vec<IssueWire>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TransitionsWire {
    #[serde(default)]
    pub transitions: Vec<TransitionWire>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TransitionWire {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    to: Option<StatusWire>,
}

impl From<TransitionWire> for Transition {
    fn from(wire: TransitionWire) -> Self {
        let (to_status, to_status_category) = category(wire.to);
        Transition {
            id: wire.id,
            name: wire.name,
            to_status,
            to_status_category,
        }
    }
}

/// A transition by name (case-insensitive), by id, or by the name of the status it leads to.
pub fn find_transition<'t>(offered: &'t [Transition], wanted: &str) -> Option<&'t Transition> {
    let wanted = wanted.trim();
    offered
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(wanted))
        .or_else(|| offered.iter().find(|t| t.id == wanted))
        .or_else(|| {
            offered
                .iter()
                .find(|t| t.to_status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(wanted)))
        })
}

/// A JQL string literal: double quotes, with `"` and `\` escaped. Quoting (not Go's `%q`, which
/// writes `\u00e9` escapes JQL does not read) keeps reserved words and characters (`AND`, `=`, `~`)
/// from being read as JQL.
pub fn jql_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The JQL that finds the newest issue of a project carrying a label.
pub fn label_jql(project_key: &str, label: &str) -> String {
    format!(
        "project = {} AND labels = {} ORDER BY created DESC",
        jql_quote(project_key),
        jql_quote(label)
    )
}

/// Plain text as an Atlassian Document: one paragraph per blank-line-separated block, line breaks
/// kept as `hardBreak`s. What Cloud's v3 API needs where Data Center takes the text itself.
pub fn adf_from_text(text: &str) -> Value {
    let normalised = text.replace("\r\n", "\n");
    let paragraphs: Vec<Value> = normalised
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut content = Vec::new();
            for (i, line) in block.split('\n').enumerate() {
                if i > 0 {
                    content.push(json!({"type": "hardBreak"}));
                }
                if !line.is_empty() {
                    content.push(json!({"type": "text", "text": line}));
                }
            }
            json!({"type": "paragraph", "content": content})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(id: &str, name: &str, to: &str) -> Transition {
        Transition {
            id: id.into(),
            name: name.into(),
            to_status: Some(to.into()),
            to_status_category: None,
        }
    }

    #[test]
    fn transitions_are_found_by_name_id_or_target_status() {
        let offered = [
            transition("11", "Start Progress", "In Progress"),
            transition("31", "Done", "Closed"),
        ];
        assert_eq!(find_transition(&offered, "done").map(|t| t.id.as_str()), Some("31"));
        assert_eq!(find_transition(&offered, " 11 ").map(|t| t.id.as_str()), Some("11"));
        assert_eq!(find_transition(&offered, "closed").map(|t| t.id.as_str()), Some("31"));
        assert!(find_transition(&offered, "Reopen").is_none());
    }

    #[test]
    fn jql_literals_escape_quotes_and_backslashes() {
        assert_eq!(jql_quote("herald-abc123"), r#""herald-abc123""#);
        assert_eq!(jql_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(jql_quote("é AND x"), "\"é AND x\"");
        assert_eq!(
            label_jql("SEC", "dedup_1"),
            r#"project = "SEC" AND labels = "dedup_1" ORDER BY created DESC"#
        );
    }

    #[test]
    fn text_becomes_paragraphs_with_hard_breaks() {
        let doc = adf_from_text("one\ntwo\n\nthree");
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(doc["content"][0]["content"][1]["type"], "hardBreak");
        assert_eq!(doc["content"][1]["content"][0]["text"], "three");
    }

    #[test]
    fn issues_and_transitions_read_from_jira_shapes() {
        let issue: IssueWire = serde_json::from_str(
            r#"{"id":"10005","key":"SEC-4","fields":{"status":{"name":"Done","statusCategory":{"key":"done"}},
                "resolution":{"name":"Won't Do"},"resolutiondate":"2026-11-30T10:00:00.000+0000"}}"#,
        )
        .unwrap();
        let state = IssueState::from(issue);
        assert!(state.status_category.is_done());
        assert_eq!(state.resolution.as_deref(), Some("Won't Do"));
        let fixture = include_str!("../../tests/fixtures/jira/jira-ruby__issue_10002_transitions.json");
        let wire: TransitionsWire = serde_json::from_str(fixture).unwrap();
        let transitions: Vec<Transition> = wire.transitions.into_iter().map(Transition::from).collect();
        assert_eq!(transitions.len(), 4);
        assert_eq!(transitions[3].name, "Resolve");
        assert_eq!(transitions[3].to_status.as_deref(), Some("Resolved"));
        // This capture predates status categories.
        assert_eq!(transitions[3].to_status_category, None);
        let unresolved: IssueWire =
            serde_json::from_str(r#"{"id":"1","key":"A-1","fields":{"resolution":null}}"#).unwrap();
        assert_eq!(IssueState::from(unresolved).resolution, None);
    }
}
