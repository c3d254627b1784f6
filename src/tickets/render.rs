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

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::settings::{DEFAULT_DESCRIPTION, DEFAULT_SUMMARY, FieldTemplate, TicketSettings};
use super::template::{EventContext, Template, TemplateError};

pub const MAX_SUMMARY_CHARS: usize = 255;
pub const MAX_LABEL_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 32_767;

/// Which body format the Jira at the other end takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Jira Cloud, REST API v3: Atlassian Document Format.
    Adf,
    /// Jira Data Center / Server, REST API v2: wiki markup.
    Wiki,
}

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

/// Renders every piece of the issue for one event. An error names the template that failed.
pub fn render_issue(
    settings: &TicketSettings,
    event: &EventContext,
    format: BodyFormat,
) -> Result<RenderedIssue, TemplateError> {
    let dedup_key = dedup_key(settings, event)?;
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

/// `text` cut to at most `max` characters, ending with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Plain text as a Jira body (a description or a comment) in `format`, within 32,767 characters.
pub fn body(text: &str, format: BodyFormat) -> Value {
    let text = clean(text);
    let build = |t: &str| match format {
        BodyFormat::Adf => adf(t),
        BodyFormat::Wiki => Value::String(wiki(t)),
    };
    let size = |v: &Value| match v {
        Value::String(s) => s.chars().count(),
        other => other.to_string().chars().count(),
    };
    let mut keep = text.chars().count().min(MAX_DESCRIPTION_CHARS);
    loop {
        let candidate = truncate(&text, keep);
        let value = build(&candidate);
        let over = size(&value).saturating_sub(MAX_DESCRIPTION_CHARS);
        if over == 0 || keep == 0 {
            return value;
        }
        // Markup makes the body longer than its text: cut the text by the excess and try again.
        keep = keep.saturating_sub(over.max(16));
    }
}

/// Line breaks as `\n`; control characters other than line breaks and tabs dropped.
fn clean(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// A body's blocks: paragraphs (lines) and fenced code (language, text).
enum Block<'a> {
    Paragraph(Vec<&'a str>),
    Code(&'a str, String),
}

fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut lines = text.split('\n');
    let mut paragraph: Vec<&str> = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(language) = line.trim_start().strip_prefix("```") {
            if !paragraph.is_empty() {
                out.push(Block::Paragraph(std::mem::take(&mut paragraph)));
            }
            let mut code = Vec::new();
            for inner in lines.by_ref() {
                if inner.trim() == "```" {
                    break;
                }
                code.push(inner);
            }
            out.push(Block::Code(language.trim(), code.join("\n")));
        } else if line.trim().is_empty() {
            if !paragraph.is_empty() {
                out.push(Block::Paragraph(std::mem::take(&mut paragraph)));
            }
        } else {
            paragraph.push(line);
        }
    }
    if !paragraph.is_empty() {
        out.push(Block::Paragraph(paragraph));
    }
    out
}

/// Atlassian Document Format: `{"type":"doc","version":1,"content":[…]}` of paragraphs (lines
/// joined by hard breaks, links marked) and code blocks.
fn adf(text: &str) -> Value {
    let content: Vec<Value> = blocks(text)
        .into_iter()
        .map(|block| match block {
            Block::Paragraph(lines) => {
                let mut inline = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    if i > 0 {
                        inline.push(json!({"type": "hardBreak"}));
                    }
                    inline.extend(adf_text(line));
                }
                json!({"type": "paragraph", "content": inline})
            }
            Block::Code(language, code) => {
                let mut block = json!({"type": "codeBlock"});
                if !language.is_empty() {
                    block["attrs"] = json!({"language": language});
                }
                if !code.is_empty() {
                    block["content"] = json!([{"type": "text", "text": code}]);
                }
                block
            }
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": content})
}

/// One line as ADF text nodes (never empty ones), `http(s)://` links marked as links.
fn adf_text(line: &str) -> Vec<Value> {
    let mut nodes = Vec::new();
    for (piece, is_link) in split_links(line) {
        if piece.is_empty() {
            continue;
        }
        if is_link {
            nodes.push(json!({"type": "text", "text": piece, "marks": [{"type": "link", "attrs": {"href": piece}}]}));
        } else {
            nodes.push(json!({"type": "text", "text": piece}));
        }
    }
    nodes
}

/// A line cut into text and links (`http://` or `https://` up to white space).
fn split_links(line: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = [rest.find("https://"), rest.find("http://")]
        .into_iter()
        .flatten()
        .min()
    {
        let end = rest[start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |e| start + e);
        // A link does not end with the punctuation that closes its sentence.
        let trimmed = rest[start..end].trim_end_matches(['.', ',', ';', ':', ')', '!', '?', '"', '\'']);
        let end = start + trimmed.len();
        if trimmed.len() <= "https://".len() {
            out.push((&rest[..end.max(start + 1)], false));
            rest = &rest[end.max(start + 1)..];
            continue;
        }
        out.push((&rest[..start], false));
        out.push((&rest[start..end], true));
        rest = &rest[end..];
    }
    out.push((rest, false));
    out
}

/// Wiki markup: paragraphs separated by a blank line, line breaks kept, code in `{noformat}`,
/// every formatting character escaped.
fn wiki(text: &str) -> String {
    let mut out = Vec::new();
    for block in blocks(text) {
        match block {
            Block::Paragraph(lines) => {
                out.push(lines.iter().map(|l| wiki_line(l)).collect::<Vec<_>>().join("\n"));
            }
            Block::Code(_, code) => {
                // Nothing inside {noformat} is markup but its own end.
                out.push(format!(
                    "{{noformat}}\n{}\n{{noformat}}",
                    code.replace("{noformat}", "{noformat\u{200b}}")
                ));
            }
        }
    }
    out.join("\n\n")
}

/// One line of text as wiki markup that shows it as written.
fn wiki_line(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    for (i, &c) in chars.iter().enumerate() {
        let inside_word = |k: Option<usize>| k.and_then(|k| chars.get(k)).is_some_and(|c| c.is_alphanumeric());
        match c {
            '\\' => out.push_str("&#92;"),
            '&' => out.push_str("&amp;"),
            '{' | '}' | '[' | ']' | '|' | '!' => {
                out.push('\\');
                out.push(c);
            }
            // Emphasis, lists, headings' friends: they format only at a word's edge.
            '*' | '_' | '-' | '+' | '^' | '~' | '?' | '#'
                if !(inside_word(i.checked_sub(1)) && inside_word(Some(i + 1))) =>
            {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    // `h1. ` … `h6. ` and `bq. ` at the start of a line make headings and quotes.
    for prefix in ["h1.", "h2.", "h3.", "h4.", "h5.", "h6.", "bq."] {
        if let Some(rest) = out.strip_prefix(prefix) {
            return format!("{}&#46;{rest}", &prefix[..prefix.len() - 1]);
        }
    }
    out
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
    use crate::tickets::settings::TicketSettingsSpec;
    use crate::tickets::template::{AlertContext, EventSource, EventStatus};

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

    fn text_of(adf: &Value) -> String {
        match adf {
            Value::Object(o) => {
                let own = o.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
                own + &o.get("content").map(text_of).unwrap_or_default()
            }
            Value::Array(items) => items.iter().map(text_of).collect(),
            _ => String::new(),
        }
    }

    /// Checks the ADF rules Jira enforces on what Herald makes: a versioned doc of paragraphs and
    /// code blocks; paragraphs hold text (never empty), hard breaks; marks are links with an href.
    fn assert_valid_adf(doc: &Value) {
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        for block in doc["content"].as_array().unwrap() {
            match block["type"].as_str().unwrap() {
                "paragraph" => {
                    let inline = block["content"].as_array().unwrap();
                    assert!(!inline.is_empty(), "{block}");
                    for node in inline {
                        match node["type"].as_str().unwrap() {
                            "hardBreak" => assert_eq!(node.as_object().unwrap().len(), 1),
                            "text" => {
                                assert!(!node["text"].as_str().unwrap().is_empty(), "{node}");
                                for mark in node["marks"].as_array().into_iter().flatten() {
                                    assert_eq!(mark["type"], "link");
                                    assert!(mark["attrs"]["href"].as_str().unwrap().starts_with("http"));
                                }
                            }
                            other => panic!("unexpected inline node {other}"),
                        }
                    }
                }
                "codeBlock" => {
                    for node in block["content"].as_array().into_iter().flatten() {
                        assert_eq!(node["type"], "text");
                        assert!(node.get("marks").is_none());
                        assert!(!node["text"].as_str().unwrap().is_empty());
                    }
                }
                other => panic!("unexpected block {other}"),
            }
        }
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
    fn adf_has_paragraphs_breaks_code_and_links() {
        let doc = body(
            "First line\nsecond line\n\n\nSee https://grafana.example/d/1, then act.\n```sh\ndf -h\n\n```\n```\n```",
            BodyFormat::Adf,
        );
        assert_valid_adf(&doc);
        let content = doc["content"].as_array().unwrap();
        assert_eq!(content.len(), 4, "{doc}");
        assert_eq!(content[0]["content"][1], json!({"type": "hardBreak"}));
        assert_eq!(
            content[1]["content"][1]["marks"][0]["attrs"]["href"],
            "https://grafana.example/d/1"
        );
        assert_eq!(content[1]["content"][2]["text"], ", then act.");
        assert_eq!(
            content[2],
            json!({"type": "codeBlock", "attrs": {"language": "sh"},
            "content": [{"type": "text", "text": "df -h\n"}]})
        );
        assert_eq!(content[3], json!({"type": "codeBlock"}));
        assert_eq!(
            body("", BodyFormat::Adf),
            json!({"type": "doc", "version": 1, "content": []})
        );
    }

    #[test]
    fn wiki_markup_shows_text_as_written() {
        let wiki = body(
            "*bold* _it_ {code} [link] a|b !img! \\\\ AT&T\nweb-01 snake_case -strike-\nh1. not a heading\n\n```\n{noformat} *raw*\n```",
            BodyFormat::Wiki,
        );
        assert_eq!(
            wiki.as_str().unwrap(),
            "\\*bold\\* \\_it\\_ \\{code\\} \\[link\\] a\\|b \\!img\\! &#92;&#92; AT&amp;T\n\
             web-01 snake_case \\-strike\\-\nh1&#46; not a heading\n\n\
             {noformat}\n{noformat\u{200b}} *raw*\n{noformat}"
        );
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
