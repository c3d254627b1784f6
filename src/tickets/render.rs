//! From ticket settings and one event to the pieces of a Jira create request, within Jira's limits.
//!
//! - **Summary:** one line (line breaks and runs of white space become one space), at most 255
//!   characters (cut with `…`, never inside a character). Blank: the dedup key.
//! - **Labels:** white space becomes `_`, control characters are dropped, at most 255 characters,
//!   empty ones left out, duplicates removed; the dedup label comes last.
//! - **Description (and comments):** the template writes plain text; Herald turns it into the body
//!   each API wants: Atlassian Document Format for Cloud (REST v3) or wiki markup for Data Center
//!   (REST v2), at most 32,767 characters (for ADF, the document as JSON), cut with `…`. Blank
//!   lines separate paragraphs, single line breaks are kept, text between two lines of ```` ``` ````
//!   is a code block, `http(s)://` links are links. In wiki markup every character that would
//!   format (`*`, `_`, `{`, `[`, `|`, …) is escaped, so alert text is shown as written.
//! - **Priority:** one line; blank means Jira's default.
//! - **Fields:** a template's result is used as JSON when it parses as JSON, else as a string; a
//!   blank result leaves the field out; literal JSON is sent as is.
//! - **Dedup:** the `dedup` template's result, or (blank or unset) the event's `dedup_key`. The
//!   label written on the issue is [`dedup_label`].

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use super::body::{BodyFormat, MAX_DESCRIPTION_CHARS, body, truncate};
use super::settings::{DEFAULT_DESCRIPTION, DEFAULT_SUMMARY, FieldTemplate, TicketSettings};
use super::template::{EventContext, Template, TemplateError};

pub const MAX_SUMMARY_CHARS: usize = 255;
pub const MAX_LABEL_CHARS: usize = 255;

/// The pieces of a Jira create request an event's ticket settings make.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedIssue {
    pub summary: String,
    /// ADF (an object) or wiki markup (a string); `None` when the description rendered blank.
    pub description: Option<Value>,
    /// The rendered labels, then the dedup label.
    pub labels: Vec<String>,
    pub priority: Option<String>,
    /// `tickets.fields`, rendered (to be set over the integration's own `fields`).
    pub fields: BTreeMap<String, Value>,
    pub dedup_key: String,
    pub dedup_label: String,
}

/// Renders every piece of the issue for one event of the problem `dedup_key` (what [`dedup_key`]
/// made of the event when it was accepted). An error names the template that failed.
pub fn render_issue(
    settings: &TicketSettings,
    event: &EventContext,
    dedup_key: &str,
    format: BodyFormat,
) -> Result<RenderedIssue, TemplateError> {
    let dedup_key = dedup_key.to_owned();
    let dedup_label = dedup_label(&event.integration, &dedup_key);
    let summary = or_default(&settings.summary, "tickets.summary", DEFAULT_SUMMARY)?.render(event)?;
    let summary = summary_line(&summary).unwrap_or_else(|| summary_line(&dedup_key).unwrap_or_default());
    let description = or_default(&settings.description, "tickets.description", DEFAULT_DESCRIPTION)?.render(event)?;
    let description = (!description.trim().is_empty()).then(|| body(&description, format));
    let mut labels = Vec::new();
    for template in &settings.labels {
        if let Some(label) = label(&template.render(event)?) {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
    }
    labels.retain(|l| *l != dedup_label);
    labels.push(dedup_label.clone());
    let priority = match &settings.priority {
        Some(t) => summary_line(&t.render(event)?),
        None => None,
    };
    let mut fields = BTreeMap::new();
    for (id, value) in &settings.fields {
        let value = match value {
            FieldTemplate::Literal(v) => v.clone(),
            FieldTemplate::Template(t) => {
                let text = t.render(event)?;
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
            }
        };
        fields.insert(id.clone(), value);
    }
    Ok(RenderedIssue {
        summary,
        description,
        labels,
        priority,
        fields,
        dedup_key,
        dedup_label,
    })
}

/// The event's dedup key: the `dedup` template's result (trimmed) or, unset or blank, the event's own.
pub fn dedup_key(settings: &TicketSettings, event: &EventContext) -> Result<String, TemplateError> {
    if let Some(template) = &settings.dedup {
        let key = template.render(event)?;
        let key = key.trim();
        if !key.is_empty() {
            return Ok(key.to_owned());
        }
    }
    Ok(event.dedup_key.clone())
}

/// The label Herald writes on an issue to find it by search: `herald-` and the first 16 hex
/// digits of SHA-256 over the integration's name, a zero byte and the dedup key. Short, free of
/// anything Jira labels refuse, and stable across Herald versions.
pub fn dedup_label(integration: &str, dedup_key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(integration.as_bytes());
    hash.update([0u8]);
    hash.update(dedup_key.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("herald-{hex}")
}

/// Text as a summary (or any one-line value): white space and control characters folded into
/// single spaces, trimmed, at most 255 characters. `None` when blank.
pub fn summary_line(text: &str) -> Option<String> {
    let folded = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!folded.is_empty()).then(|| truncate(&folded, MAX_SUMMARY_CHARS))
}

/// Text as a Jira label: white space runs become `_`, control characters are dropped, at most 255
/// characters. `None` when nothing is left.
pub fn label(text: &str) -> Option<String> {
    let mut out = String::new();
    for word in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push('_');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
    }
    let out: String = out.chars().take(MAX_LABEL_CHARS).collect();
    (!out.is_empty()).then_some(out)
}

fn or_default<'a>(
    template: &'a Option<Template>,
    field: &str,
    default: &str,
) -> Result<std::borrow::Cow<'a, Template>, TemplateError> {
    match template {
        Some(t) => Ok(std::borrow::Cow::Borrowed(t)),
        None => Template::parse(field, default).map(std::borrow::Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::body::tests::{assert_valid_adf, text_of};
    use crate::tickets::settings::TicketSettingsSpec;
    use crate::tickets::template::{AlertContext, EventSource, EventStatus};
    use serde_json::json;

    fn settings(json: serde_json::Value) -> TicketSettings {
        serde_json::from_value::<TicketSettingsSpec>(json)
            .unwrap()
            .validate(Some("OPS"), Some("Bug"))
            .unwrap()
    }

    fn event() -> EventContext {
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EventContext {
            status: EventStatus::Firing,
            dedup_key: "group-1".into(),
            labels: map(&[
                ("alertname", "DiskFull"),
                ("team", "Site Reliability"),
                ("severity", "High"),
            ]),
            annotations: map(&[("summary", "Disk almost full"), ("description", "Only 2% left on /var")]),
            starts_at: Some("2026-05-01T10:00:00Z".into()),
            url: Some("http://prometheus.example/graph?g0.expr=up".into()),
            integration: "jira-prod".into(),
            source: EventSource::Alertmanager,
            alerts: vec![AlertContext {
                labels: map(&[("alertname", "DiskFull"), ("instance", "db-1")]),
                fingerprint: "f1".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Renders with the dedup key the intake would have given the event.
    fn render_issue(
        settings: &TicketSettings,
        event: &EventContext,
        format: BodyFormat,
    ) -> Result<RenderedIssue, TemplateError> {
        let key = dedup_key(settings, event)?;
        super::render_issue(settings, event, &key, format)
    }

    #[test]
    fn the_defaults_make_a_useful_issue() {
        let issue = render_issue(
            &settings(serde_json::json!({"enabled": true})),
            &event(),
            BodyFormat::Adf,
        )
        .unwrap();
        assert_eq!(issue.summary, "DiskFull: Disk almost full");
        assert_eq!(issue.dedup_key, "group-1");
        assert_eq!(issue.labels, vec![issue.dedup_label.clone()]);
        let description = issue.description.unwrap();
        assert_valid_adf(&description);
        let text = text_of(&description);
        assert!(text.contains("Only 2% left on /var"), "{text}");
        assert!(text.contains("team=Site Reliability"), "{text}");
        assert_eq!(issue.priority, None);
        // An event from the API, without labels: its own summary.
        let own = EventContext {
            summary: "Nightly backup failed".into(),
            dedup_key: "backup".into(),
            ..Default::default()
        };
        let issue = render_issue(&settings(serde_json::json!({"enabled": true})), &own, BodyFormat::Wiki).unwrap();
        assert_eq!(issue.summary, "Nightly backup failed");
    }

    #[test]
    fn a_300_character_summary_is_cut_to_255_with_an_ellipsis() {
        let s = settings(serde_json::json!({"enabled": true, "summary": "{{ 'x' * 300 }}\nsecond line"}));
        let issue = render_issue(&s, &event(), BodyFormat::Adf).unwrap();
        assert_eq!(issue.summary.chars().count(), 255);
        assert!(issue.summary.ends_with("x…"));
        let folded = settings(serde_json::json!({"enabled": true, "summary": " a\n\tb  c "}));
        assert_eq!(
            render_issue(&folded, &event(), BodyFormat::Adf).unwrap().summary,
            "a b c"
        );
        let blank = settings(serde_json::json!({"enabled": true, "summary": "{{ '' }}"}));
        assert_eq!(
            render_issue(&blank, &event(), BodyFormat::Adf).unwrap().summary,
            "group-1"
        );
    }

    #[test]
    fn unicode_is_never_cut_inside_a_character() {
        let long = "é🚨".repeat(200);
        let cut = summary_line(&long).unwrap();
        assert_eq!(cut.chars().count(), 255);
        assert!(cut.ends_with('…'));
        assert!(long.starts_with(cut.trim_end_matches('…')));
        assert_eq!(truncate("ab", 2), "ab");
        assert_eq!(truncate("abc", 2), "a…");
    }

    #[test]
    fn labels_lose_their_spaces_and_duplicates() {
        let s = settings(serde_json::json!({"enabled": true,
            "labels": ["{{ labels.team }}", "team {{ labels.team }}", "{{ labels.team }}", "", "{{ 'y' * 300 }}"]}));
        let issue = render_issue(&s, &event(), BodyFormat::Adf).unwrap();
        assert_eq!(issue.labels[0], "Site_Reliability");
        assert_eq!(issue.labels[1], "team_Site_Reliability");
        assert_eq!(issue.labels[2].chars().count(), 255);
        assert_eq!(issue.labels.len(), 4);
        assert_eq!(issue.labels[3], issue.dedup_label);
        assert!(issue.labels.iter().all(|l| !l.contains(' ') && !l.is_empty()));
        assert_eq!(label(" a \n b\u{7} "), Some("a_b".into()));
        assert_eq!(label(" \t"), None);
    }

    #[test]
    fn a_40000_character_description_fits_both_formats() {
        let s = settings(serde_json::json!({"enabled": true, "description": "{{ 'word ' * 8000 }}"}));
        let adf = render_issue(&s, &event(), BodyFormat::Adf)
            .unwrap()
            .description
            .unwrap();
        assert_valid_adf(&adf);
        assert!(adf.to_string().chars().count() <= MAX_DESCRIPTION_CHARS);
        assert!(text_of(&adf).ends_with('…'));
        let wiki = render_issue(&s, &event(), BodyFormat::Wiki)
            .unwrap()
            .description
            .unwrap();
        let wiki = wiki.as_str().unwrap();
        assert!(wiki.chars().count() <= MAX_DESCRIPTION_CHARS && wiki.chars().count() > 32_000);
        // Markup-heavy text (every character escaped) still fits.
        let heavy = body(&"*[".repeat(20_000), BodyFormat::Wiki);
        assert!(heavy.as_str().unwrap().chars().count() <= MAX_DESCRIPTION_CHARS);
        let lines = body(&"a\n".repeat(20_000), BodyFormat::Adf);
        assert!(lines.to_string().chars().count() <= MAX_DESCRIPTION_CHARS);
        assert_valid_adf(&lines);
    }

    #[test]
    fn fields_are_json_when_they_parse_and_strings_otherwise() {
        let s = settings(serde_json::json!({"enabled": true, "fields": {
            "customfield_1": "{{ labels.alertname }}",
            "customfield_2": "{\"value\": \"{{ labels.severity }}\"}",
            "customfield_3": "42",
            "customfield_4": {"name": "literal {{ not rendered }}"},
            "customfield_5": "{% if labels.nothing %}x{% endif %}",
            "customfield_6": null}}));
        let fields = render_issue(&s, &event(), BodyFormat::Adf).unwrap().fields;
        assert_eq!(fields["customfield_1"], "DiskFull");
        assert_eq!(fields["customfield_2"], json!({"value": "High"}));
        assert_eq!(fields["customfield_3"], json!(42));
        assert_eq!(fields["customfield_4"], json!({"name": "literal {{ not rendered }}"}));
        assert!(!fields.contains_key("customfield_5"));
        assert_eq!(fields["customfield_6"], Value::Null);
    }

    #[test]
    fn priority_and_dedup_come_from_their_templates() {
        let s = settings(
            serde_json::json!({"enabled": true, "priority": " {{ labels.severity }}\n",
            "dedup": "{{ labels.alertname }}/{{ labels.team }}"}),
        );
        let issue = render_issue(&s, &event(), BodyFormat::Adf).unwrap();
        assert_eq!(issue.priority.as_deref(), Some("High"));
        assert_eq!(issue.dedup_key, "DiskFull/Site Reliability");
        assert_eq!(issue.dedup_label, dedup_label("jira-prod", "DiskFull/Site Reliability"));
        let blank = settings(serde_json::json!({"enabled": true, "dedup": "{{ '' }}"}));
        assert_eq!(dedup_key(&blank, &event()).unwrap(), "group-1");
    }

    #[test]
    fn dedup_labels_are_short_stable_and_distinct() {
        let l = dedup_label("jira-prod", "group-1");
        assert_eq!(l.len(), "herald-".len() + 16);
        assert!(l.starts_with("herald-") && l[7..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(l, dedup_label("jira-prod", "group-1"));
        // The separator keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(dedup_label("ab", "c"), dedup_label("a", "bc"));
        assert_ne!(l, dedup_label("jira-test", "group-1"));
        // Pinned: the label is written on issues, so it must never change between versions.
        assert_eq!(dedup_label("jira-prod", "group-1"), "herald-9832b1f719b1349d");
    }

    #[test]
    fn a_template_that_fails_names_its_field() {
        let s = settings(serde_json::json!({"enabled": true, "labels": ["ok", "{{ labels.missing }}"]}));
        let err = render_issue(&s, &event(), BodyFormat::Adf).unwrap_err();
        assert_eq!(err.field, "tickets.labels[1]");
    }
}
