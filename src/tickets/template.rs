//! Ticket templates: Jinja syntax rendered by `minijinja`, checked when saved, bounded when run.
//!
//! # The template context (the contract with the event intake)
//!
//! A template sees one event, [`EventContext`], serialized with these keys (every key is always
//! present, so a template behaves the same for both sources):
//!
//! | key | value |
//! |---|---|
//! | `status` | `"firing"` or `"resolved"` |
//! | `dedup_key` | the event's dedup key (Alertmanager: the `groupKey`, or an alert's fingerprint per alert) |
//! | `summary`, `description` | strings, `""` when the event has none |
//! | `labels`, `annotations` | maps of strings (Alertmanager groups: the common labels and annotations) |
//! | `url` | a link back to the source, or `null` |
//! | `starts_at`, `ends_at` | RFC 3339 strings, or `null` |
//! | `integration` | the integration's name |
//! | `source` | `"alertmanager"` or `"api"` |
//! | `alerts` | Alertmanager: the group's alerts, each `{status, labels, annotations, starts_at, ends_at, url, fingerprint}` (`url` is the `generatorURL`); `[]` otherwise |
//! | `group_labels`, `common_labels`, `common_annotations` | Alertmanager's maps; `{}` otherwise |
//! | `external_url`, `receiver` | Alertmanager's; `null` otherwise |
//!
//! # Undefined values: semi-strict, on purpose
//!
//! Printing or iterating something that is not there (`{{ labels.tema }}`, a typo, or a label this
//! alert lacks) is an error, never an empty string: a ticket whose summary silently lost its subject
//! is worse than an event parked with "undefined value (in tickets.summary:1)". Asking is allowed:
//! `{% if labels.team %}`, `labels.team is defined` and `labels.team | default("ops")` work, so a
//! template says what to do when a value may be missing. `null` values print as nothing.
//!
//! # Bounds
//!
//! Templates are written by admins but run on what alerts send. Each render has [`FUEL`]
//! instructions (a loop that never ends runs out, an error) and its output stops at
//! [`MAX_OUTPUT_BYTES`] (what is past it is dropped; Jira's limits are far below). Templates cannot
//! include, import or extend others (there is no loader), and macros recurse at most 100 deep.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// Instructions one render may run: ample for a description over a large alert group, far from forever.
pub const FUEL: u64 = 500_000;

/// Where a render's output stops, in bytes. The longest Jira field (a description) is 32,767
/// characters, so whatever is past this would be truncated anyway.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// The longest template source accepted, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 32_767;

/// An event as a template sees it. Serialized, it is the documented context (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventContext {
    pub status: EventStatus,
    pub dedup_key: String,
    pub summary: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub url: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub integration: String,
    pub source: EventSource,
    pub alerts: Vec<AlertContext>,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub external_url: Option<String>,
    pub receiver: Option<String>,
}

/// One alert of an Alertmanager group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertContext {
    pub status: EventStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    /// Alertmanager's `generatorURL`.
    pub url: Option<String>,
    pub fingerprint: String,
}

/// Whether the problem an event describes is going on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    #[default]
    Firing,
    Resolved,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Firing => "firing",
            EventStatus::Resolved => "resolved",
        }
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// `POST /api/v1/alertmanager/{integration}`.
    Alertmanager,
    /// `POST /api/v1/events`.
    #[default]
    Api,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Alertmanager => "alertmanager",
            EventSource::Api => "api",
        }
    }
}

/// A template that compiles, with the setting it belongs to (`tickets.summary`), which names it in
/// errors. Equal when the sources are.
#[derive(Clone)]
pub struct Template {
    field: Arc<str>,
    source: Arc<str>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({}: {:?})", self.field, self.source)
    }
}

/// Why a template was refused or could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateFailure {
    /// It does not compile, or names a filter or test that does not exist (found when saved).
    Invalid,
    /// Rendering failed on this event (an undefined value, a filter given the wrong type…).
    Render,
    /// Rendering ran out of fuel: the template loops too long.
    OutOfFuel,
}

/// A template that cannot be used, naming its setting; `message` is minijinja's, with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct TemplateError {
    pub field: String,
    pub message: String,
    pub line: Option<usize>,
    pub failure: TemplateFailure,
}

impl TemplateError {
    fn from_minijinja(field: &str, failure: TemplateFailure, err: &minijinja::Error) -> Self {
        let failure = if err.kind() == ErrorKind::OutOfFuel {
            TemplateFailure::OutOfFuel
        } else {
            failure
        };
        let what = match failure {
            TemplateFailure::Invalid => "is not a valid template",
            TemplateFailure::Render | TemplateFailure::OutOfFuel => "failed to render",
        };
        Self {
            field: field.to_owned(),
            message: format!("{what}: {err}"),
            line: err.line(),
            failure,
        }
    }
}

impl Template {
    /// Compiles `source` for the setting `field`. Refuses syntax errors and unknown filters or tests
    /// (which minijinja would otherwise find only when a render reaches them).
    pub fn parse(field: &str, source: &str) -> Result<Self, TemplateError> {
        let invalid = |message: String, line: Option<usize>| TemplateError {
            field: field.to_owned(),
            message,
            line,
            failure: TemplateFailure::Invalid,
        };
        if source.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(invalid(
                format!("must be at most {MAX_TEMPLATE_CHARS} characters"),
                None,
            ));
        }
        let env = environment();
        env.template_from_named_str(field, source)
            .map_err(|e| TemplateError::from_minijinja(field, TemplateFailure::Invalid, &e))?;
        for (name, test, offset) in named_filters_and_tests(source) {
            let probe = if test {
                format!("{{{{ 0 is {name} }}}}")
            } else {
                format!("{{{{ 0 | {name} }}}}")
            };
            let unknown = match env.render_str(&probe, ()) {
                Err(e) => matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest),
                Ok(_) => false,
            };
            if unknown {
                let line = source[..offset].matches('\n').count() + 1;
                let kind = if test { "test" } else { "filter" };
                return Err(invalid(
                    format!("is not a valid template: unknown {kind}: {kind} {name} is unknown (in {field}:{line})"),
                    Some(line),
                ));
            }
        }
        Ok(Self {
            field: field.into(),
            source: source.into(),
        })
    }

    /// The setting this template belongs to, such as `tickets.summary`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The template as the admin wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template for one event, within [`FUEL`]; output past [`MAX_OUTPUT_BYTES`] is
    /// dropped (at a character boundary).
    pub fn render(&self, event: &EventContext) -> Result<String, TemplateError> {
        self.render_value(Value::from(minijinja::value::Serde(event)))
    }

    /// Renders with a context of the caller's making (tests, previews).
    pub fn render_value(&self, context: Value) -> Result<String, TemplateError> {
        let mut env = environment();
        env.set_fuel(Some(FUEL));
        let failed = |e: minijinja::Error| TemplateError::from_minijinja(&self.field, TemplateFailure::Render, &e);
        let template = env.template_from_named_str(&self.field, &self.source).map_err(failed)?;
        let mut out = Bounded::default();
        match template.render_captured_to(context, &mut out) {
            Ok(_) => {}
            // The writer refused more: the output is complete up to the bound.
            Err(_) if out.full => {}
            Err(e) => return Err(failed(e)),
        }
        Ok(out.into_string())
    }
}

/// The environment every ticket template runs in: built-in filters and tests, no loader, no
/// auto-escaping (Herald escapes for each output format itself), semi-strict undefined values,
/// `null` printed as nothing.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_recursion_limit(100);
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

/// Output that stops at [`MAX_OUTPUT_BYTES`], at a character boundary.
#[derive(Default)]
struct Bounded {
    bytes: Vec<u8>,
    full: bool,
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = MAX_OUTPUT_BYTES - self.bytes.len();
        if buf.len() <= room {
            self.bytes.extend_from_slice(buf);
            return Ok(buf.len());
        }
        // minijinja writes whole strings, so `buf` is valid UTF-8: cut at a boundary within the room.
        let text = String::from_utf8_lossy(buf);
        let mut cut = room.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.bytes.extend_from_slice(&text.as_bytes()[..cut]);
        self.full = true;
        Err(io::Error::other("the template's output reached its limit"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Bounded {
    fn into_string(self) -> String {
        String::from_utf8(self.bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// The filters and tests a template names, with the byte offset of each: `(name, is_test, offset)`.
/// Runs on a template that compiled, so its tags are well formed; comments and `raw` blocks are
/// skipped, string literals inside tags too.
fn named_filters_and_tests(source: &str) -> Vec<(String, bool, usize)> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(start) = source[i..].find('{').map(|p| p + i) {
        let next = bytes.get(start + 1).copied();
        match next {
            Some(b'#') => {
                i = source[start..].find("#}").map_or(bytes.len(), |p| start + p + 2);
            }
            Some(b'{') | Some(b'%') => {
                let close = if next == Some(b'{') { "}}" } else { "%}" };
                let (tokens, end) = tag_tokens(source, start + 2, close);
                let words: Vec<&str> = tokens.iter().map(|(t, _)| t.as_str()).collect();
                if next == Some(b'%') && words.first() == Some(&"raw") {
                    i = find_endraw(source, end);
                    continue;
                }
                for (k, (token, offset)) in tokens.iter().enumerate() {
                    let previous = k.checked_sub(1).map(|p| words[p]);
                    let is_name = token.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
                    if !is_name {
                        continue;
                    }
                    let block_filter = next == Some(b'%') && k == 1 && words[0] == "filter";
                    if previous == Some("|") || block_filter {
                        found.push((token.clone(), false, *offset));
                    } else if (previous == Some("is") || (previous == Some("not") && k >= 2 && words[k - 2] == "is"))
                        && token != "not"
                    {
                        found.push((token.clone(), true, *offset));
                    }
                }
                i = end;
            }
            _ => i = start + 1,
        }
    }
    found
}

/// The words and punctuation of one tag from `from` up to `close`, skipping string literals, and
/// the offset just past `close`.
fn tag_tokens(source: &str, from: usize, close: &str) -> (Vec<(String, usize)>, usize) {
    let mut tokens = Vec::new();
    let mut chars = source[from..].char_indices().map(|(o, c)| (o + from, c)).peekable();
    while let Some((offset, c)) = chars.next() {
        if source[offset..].starts_with(close) {
            return (tokens, offset + close.len());
        }
        if c == '"' || c == '\'' {
            while let Some((_, s)) = chars.next() {
                if s == '\\' {
                    chars.next();
                } else if s == c {
                    break;
                }
            }
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::from(c);
            while let Some(&(_, n)) = chars.peek() {
                if !(n.is_alphanumeric() || n == '_') {
                    break;
                }
                word.push(n);
                chars.next();
            }
            tokens.push((word, offset));
        } else if !c.is_whitespace() && c != '-' && c != '+' {
            tokens.push((c.to_string(), offset));
        }
    }
    (tokens, source.len())
}

/// The offset past the `{% endraw %}` that closes a raw block.
fn find_endraw(source: &str, from: usize) -> usize {
    let mut i = from;
    while let Some(start) = source[i..].find("{%").map(|p| p + i) {
        let (tokens, end) = tag_tokens(source, start + 2, "%}");
        if tokens.first().is_some_and(|(t, _)| t == "endraw") {
            return end;
        }
        i = end;
    }
    source.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert_group() -> EventContext {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        EventContext {
            status: EventStatus::Firing,
            dedup_key: "{}:{alertname=\"DiskFull\"}".into(),
            labels: map(&[("alertname", "DiskFull"), ("severity", "critical")]),
            annotations: map(&[("summary", "Disk almost full on db-1")]),
            starts_at: Some("2026-05-01T10:00:00Z".into()),
            integration: "jira-prod".into(),
            source: EventSource::Alertmanager,
            alerts: vec![AlertContext {
                status: EventStatus::Firing,
                labels: map(&[("alertname", "DiskFull"), ("instance", "db-1")]),
                fingerprint: "a1b2c3".into(),
                url: Some("http://prometheus/graph".into()),
                ..Default::default()
            }],
            receiver: Some("jira".into()),
            ..Default::default()
        }
    }

    #[test]
    fn renders_the_event_context() {
        let t = Template::parse(
            "tickets.summary",
            "[{{ status | upper }}] {{ labels.alertname }}: {{ annotations.summary }} \
             ({{ alerts | length }} alert{% for a in alerts %}, {{ a.labels.instance }} {{ a.fingerprint }}{% endfor %}) \
             via {{ receiver }} from {{ source }} for {{ integration }}{{ url }}",
        )
        .unwrap();
        assert_eq!(
            t.render(&alert_group()).unwrap(),
            "[FIRING] DiskFull: Disk almost full on db-1 (1 alert, db-1 a1b2c3) via jira from alertmanager for jira-prod"
        );
    }

    #[test]
    fn a_syntax_error_names_the_field_and_the_line() {
        let err = Template::parse("tickets.description", "fine\n{{ labels.x }\n").unwrap_err();
        assert_eq!(err.field, "tickets.description");
        assert_eq!(err.failure, TemplateFailure::Invalid);
        assert_eq!(err.line, Some(2));
        assert!(
            err.message.starts_with("is not a valid template: syntax error"),
            "{}",
            err.message
        );
        assert!(err.message.contains("tickets.description:2"), "{}", err.message);
    }

    #[test]
    fn unknown_filters_and_tests_are_refused_when_saved() {
        let err = Template::parse("tickets.labels[1]", "ok\n{{ labels.team | shout }}").unwrap_err();
        assert_eq!((err.field.as_str(), err.line), ("tickets.labels[1]", Some(2)));
        assert!(err.message.contains("unknown filter"), "{}", err.message);
        let err = Template::parse("tickets.dedup", "{% if status is loud %}x{% endif %}").unwrap_err();
        assert!(err.message.contains("unknown test"), "{}", err.message);
        let err = Template::parse("tickets.dedup", "{% filter shout %}x{% endfilter %}").unwrap_err();
        assert!(err.message.contains("unknown filter"), "{}", err.message);
        // Known ones, and names inside strings, comments and raw blocks, are fine.
        for ok in [
            "{{ labels.team | default('ops') | upper }}{% if x is defined and y is not none %}{% endif %}",
            "{{ '| shout' }}{# {{ x | shout }} #}{% raw %}{{ x | shout }}{% endraw %}",
            "{{ labels | dictsort | map('join', '=') | join(', ') }}",
        ] {
            Template::parse("tickets.summary", ok).unwrap();
        }
    }

    #[test]
    fn undefined_values_fail_when_printed_but_can_be_tested() {
        let ctx = alert_group();
        let printed = Template::parse("tickets.summary", "{{ labels.team }}").unwrap();
        let err = printed.render(&ctx).unwrap_err();
        assert_eq!(err.failure, TemplateFailure::Render);
        assert!(err.message.contains("undefined"), "{}", err.message);
        let asked = Template::parse(
            "tickets.summary",
            "{% if labels.team %}{{ labels.team }}{% else %}{{ labels.team | default('ops') }}{% endif %}",
        )
        .unwrap();
        assert_eq!(asked.render(&ctx).unwrap(), "ops");
        // `null` prints as nothing.
        let url = Template::parse("tickets.summary", "<{{ url }}{{ ends_at }}>").unwrap();
        assert_eq!(url.render(&ctx).unwrap(), "<>");
    }

    #[test]
    fn an_endless_template_runs_out_of_fuel() {
        let t = Template::parse(
            "tickets.description",
            "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}",
        )
        .unwrap();
        let err = t.render(&alert_group()).unwrap_err();
        assert_eq!(err.failure, TemplateFailure::OutOfFuel);
        assert!(err.message.contains("fuel"), "{}", err.message);
        let recursive = Template::parse(
            "tickets.description",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        )
        .unwrap();
        assert!(recursive.render(&alert_group()).is_err());
    }

    #[test]
    fn output_stops_at_its_bound() {
        let t = Template::parse("tickets.description", "{{ 'é' * 200000 }}").unwrap();
        let out = t.render(&alert_group()).unwrap();
        assert!(
            out.len() <= MAX_OUTPUT_BYTES && out.len() > MAX_OUTPUT_BYTES - 4,
            "{}",
            out.len()
        );
        assert!(out.chars().all(|c| c == 'é'));
    }

    #[test]
    fn overlong_templates_are_refused() {
        let err = Template::parse("tickets.summary", &"x".repeat(MAX_TEMPLATE_CHARS + 1)).unwrap_err();
        assert!(err.message.contains("at most"), "{}", err.message);
        assert!(Template::parse("tickets.summary", &"x".repeat(MAX_TEMPLATE_CHARS)).is_ok());
    }

    #[test]
    fn the_context_has_every_documented_key() {
        let value = serde_json::to_value(EventContext::default()).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "status",
            "dedup_key",
            "summary",
            "description",
            "labels",
            "annotations",
            "url",
            "starts_at",
            "ends_at",
            "integration",
            "source",
            "alerts",
            "group_labels",
            "common_labels",
            "common_annotations",
            "external_url",
            "receiver",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        assert_eq!(value["status"], "firing");
        assert_eq!(value["source"], "api");
    }
}
