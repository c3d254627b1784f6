//! The ticket settings of an integration: what Herald writes on the issues it creates and how it
//! follows them up. [`TicketSettingsSpec`] is the `"tickets"` object of the integration JSON (API,
//! CLI, console); [`TicketSettingsSpec::validate`] turns it into [`TicketSettings`], with every
//! template compiled, or names the field that is wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, Array, ArrayBuilder, Object, ObjectBuilder, Schema, SchemaType, Type,
};

use super::template::{MAX_TEMPLATE_CHARS, Template, TemplateError};

/// The summary when `tickets.summary` is not set: the alert's name and summary, or the event's.
pub const DEFAULT_SUMMARY: &str = "{% if labels.alertname %}{{ labels.alertname }}\
{% if annotations.summary %}: {{ annotations.summary }}{% elif summary %}: {{ summary }}{% endif %}\
{% else %}{{ summary or dedup_key }}{% endif %}";

/// The description when `tickets.description` is not set: what the event says, when it started,
/// where it came from, its labels and, for an Alertmanager group, each alert. (The start only for
/// Alertmanager, whose alerts keep theirs across notifications: an event of Herald's own format
/// starts when it is accepted, so with the time in it every repeat would read as new and comment.)
pub const DEFAULT_DESCRIPTION: &str = "{% if description %}{{ description }}\n\n{% endif %}\
{% if annotations.description %}{{ annotations.description }}\n\n{% endif %}\
Status: {{ status }}{% if starts_at and source == 'alertmanager' %} since {{ starts_at }}{% endif %}\n\
{% if url %}Source: {{ url }}\n{% endif %}\
{% if external_url %}Alertmanager: {{ external_url }}\n{% endif %}\
{% if labels %}\nLabels:\n{% for k, v in labels | dictsort %}{{ k }}={{ v }}\n{% endfor %}{% endif %}\
{% if alerts | length > 1 %}\nAlerts ({{ alerts | length }}):\n\
{% for a in alerts %}{{ a.status }}: {% for k, v in a.labels | dictsort %}{{ k }}={{ v }} {% endfor %}\
{% if a.url %}{{ a.url }}{% endif %}\n{% endfor %}{% endif %}";

/// How long after its resolution a new firing reopens an issue rather than creating one.
pub const DEFAULT_REOPEN_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
const MIN_REOPEN_WINDOW: Duration = Duration::from_secs(60);
const MAX_REOPEN_WINDOW: Duration = Duration::from_secs(365 * 24 * 3600);

/// At most this many label templates and extra fields, and the longest templates of each kind (in
/// characters; a description's is [`MAX_TEMPLATE_CHARS`]). Together they keep the largest settings
/// well within the API's 1 MiB body limit.
pub const MAX_LABELS: usize = 20;
pub const MAX_FIELDS: usize = 20;
pub const MAX_LINE_TEMPLATE_CHARS: usize = 4096;
pub const MAX_LABEL_TEMPLATE_CHARS: usize = 1024;
pub const MAX_FIELD_TEMPLATE_CHARS: usize = 2048;
pub const MAX_FIELD_ID_CHARS: usize = 255;
/// Transition and resolution names: one line, at most this many characters.
pub const MAX_NAME_CHARS: usize = 255;

/// Field ids Herald sets itself from the settings above (or the integration), so `fields` may not.
pub const RESERVED_FIELDS: [&str; 6] = ["summary", "description", "labels", "priority", "project", "issuetype"];

/// The `"tickets"` object of an integration, as given and shown (all optional but `enabled`).
/// Templates are strings in Jinja syntax (see docs/tickets.md for the context they see).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TicketSettings)]
pub struct TicketSettingsSpec {
    /// Whether events sent to this integration become Jira issues; needs `project_key` and `issue_type`.
    pub enabled: bool,
    /// The issue's summary (one line, cut at 255 characters). Blank: the default (docs/tickets.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub summary: Option<String>,
    /// The issue's description, plain text (ADF on Cloud, wiki markup on Data Center). Blank: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 32767)]
    pub description: Option<String>,
    /// Label templates; white space becomes `_`, empty results are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = labels_schema)]
    pub labels: Vec<String>,
    /// The priority's name; blank or rendering blank: Jira's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub priority: Option<String>,
    /// Extra fields: field id → a template (a string; its result is used as JSON when it parses as
    /// JSON) or any other JSON value, sent as is. Set over the integration's own `fields`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = ticket_fields_schema)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The dedup key; blank: the event's own `dedup_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub dedup: Option<String>,
    /// The transition that reopens a resolved issue when its problem fires again within `reopen_window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub reopen_transition: Option<String>,
    /// How long after its resolution an issue is reopened rather than a new one created, `1m` to
    /// `365d` (default `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^(([1-9][0-9]{0,4}|[1-4][0-9]{5}|5[01][0-9]{4}|52[0-4][0-9]{3}|525[0-5][0-9]{2}|525600)m|([1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-5][0-9]|8760)h|([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-5])d)$"
    )]
    pub reopen_window: Option<String>,
    /// The transition run when the problem is resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub resolve_transition: Option<String>,
    /// An issue resolved with this resolution is never reopened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub wont_fix_resolution: Option<String>,
    /// Whether a repeat of an open problem adds a comment to its issue.
    #[serde(default)]
    pub comment_on_repeat: bool,
}

/// Ticket settings that passed validation: templates compiled, names trimmed, the window parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketSettings {
    pub enabled: bool,
    pub summary: Option<Template>,
    pub description: Option<Template>,
    pub labels: Vec<Template>,
    pub priority: Option<Template>,
    pub fields: BTreeMap<String, FieldTemplate>,
    pub dedup: Option<Template>,
    pub reopen_transition: Option<String>,
    pub reopen_window: Duration,
    pub resolve_transition: Option<String>,
    pub wont_fix_resolution: Option<String>,
    pub comment_on_repeat: bool,
}

/// One value of `tickets.fields`.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldTemplate {
    /// A string: rendered, then used as JSON when it parses as JSON, else as a string.
    Template(Template),
    /// Any other JSON value, sent as is.
    Literal(serde_json::Value),
}

/// A ticket setting that cannot be used: the field (`tickets.labels[1]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct InvalidTicketSettings {
    pub field: String,
    pub message: String,
}

impl InvalidTicketSettings {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<TemplateError> for InvalidTicketSettings {
    fn from(e: TemplateError) -> Self {
        Self {
            field: e.field,
            message: e.message,
        }
    }
}

impl TicketSettingsSpec {
    /// Validates every setting. `project_key` and `issue_type` are the integration's (already
    /// validated, `None` when blank): enabled tickets need both.
    pub fn validate(
        self,
        project_key: Option<&str>,
        issue_type: Option<&str>,
    ) -> Result<TicketSettings, InvalidTicketSettings> {
        if self.enabled {
            if project_key.is_none() {
                return Err(InvalidTicketSettings::new(
                    "project_key",
                    "is required when tickets are enabled: it says which project issues are created in",
                ));
            }
            if issue_type.is_none() {
                return Err(InvalidTicketSettings::new(
                    "issue_type",
                    "is required when tickets are enabled: it says what type of issue is created",
                ));
            }
        }
        // Measured before blank counts as unset, as the schema's `maxLength` measures it.
        let template = |field: &str, source: Option<String>, max: usize| match source {
            Some(s) if s.chars().count() > max => Err(InvalidTicketSettings::new(
                field,
                format!("must be at most {max} characters"),
            )),
            Some(s) if !s.trim().is_empty() => bounded(field, &s, max).map(Some),
            _ => Ok(None),
        };
        if self.labels.len() > MAX_LABELS {
            return Err(InvalidTicketSettings::new(
                "tickets.labels",
                format!("must have at most {MAX_LABELS} entries"),
            ));
        }
        let labels = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, source)| bounded(&format!("tickets.labels[{i}]"), source, MAX_LABEL_TEMPLATE_CHARS))
            .collect::<Result<Vec<_>, _>>()?;
        if self.fields.len() > MAX_FIELDS {
            return Err(InvalidTicketSettings::new(
                "tickets.fields",
                format!("must have at most {MAX_FIELDS} entries"),
            ));
        }
        let mut fields = BTreeMap::new();
        for (id, value) in self.fields {
            let field = format!("tickets.fields.{id}");
            if id.is_empty()
                || id.chars().count() > MAX_FIELD_ID_CHARS
                || id.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(InvalidTicketSettings::new(
                    &field,
                    "is not a Jira field id (such as `components` or `customfield_10010`, at most 255 characters)",
                ));
            }
            if RESERVED_FIELDS.contains(&id.as_str()) {
                return Err(InvalidTicketSettings::new(
                    &field,
                    "is set by Herald itself: use the ticket setting (or the integration's) of that name",
                ));
            }
            let value = match value {
                serde_json::Value::String(source) => {
                    FieldTemplate::Template(bounded(&field, &source, MAX_FIELD_TEMPLATE_CHARS)?)
                }
                other => FieldTemplate::Literal(other),
            };
            fields.insert(id, value);
        }
        let reopen_window = match self.reopen_window.as_deref() {
            None => DEFAULT_REOPEN_WINDOW,
            Some(text) => humantime::parse_duration(text)
                .ok()
                .filter(|d| (MIN_REOPEN_WINDOW..=MAX_REOPEN_WINDOW).contains(d))
                .ok_or_else(|| {
                    InvalidTicketSettings::new(
                        "tickets.reopen_window",
                        "must be a duration from 1m to 365d, such as `7d` or `12h`",
                    )
                })?,
        };
        Ok(TicketSettings {
            enabled: self.enabled,
            summary: template("tickets.summary", self.summary, MAX_LINE_TEMPLATE_CHARS)?,
            description: template("tickets.description", self.description, MAX_TEMPLATE_CHARS)?,
            labels,
            priority: template("tickets.priority", self.priority, MAX_LINE_TEMPLATE_CHARS)?,
            fields,
            dedup: template("tickets.dedup", self.dedup, MAX_LINE_TEMPLATE_CHARS)?,
            reopen_transition: one_line("tickets.reopen_transition", self.reopen_transition)?,
            reopen_window,
            resolve_transition: one_line("tickets.resolve_transition", self.resolve_transition)?,
            wont_fix_resolution: one_line("tickets.wont_fix_resolution", self.wont_fix_resolution)?,
            comment_on_repeat: self.comment_on_repeat,
        })
    }
}

/// A template of at most `max` characters.
fn bounded(field: &str, source: &str, max: usize) -> Result<Template, InvalidTicketSettings> {
    if source.chars().count() > max {
        return Err(InvalidTicketSettings::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(Template::parse(field, source)?)
}

/// A transition or resolution name: one line of at most 255 characters; blank means none.
fn one_line(field: &str, value: Option<String>) -> Result<Option<String>, InvalidTicketSettings> {
    let Some(value) = value else { return Ok(None) };
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(InvalidTicketSettings::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(InvalidTicketSettings::new(
            field,
            "must be one line, without control characters",
        ));
    }
    let trimmed = value.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

impl TicketSettings {
    /// The settings as the API shows them (and as they are stored).
    pub fn to_spec(&self) -> TicketSettingsSpec {
        let source = |t: &Option<Template>| t.as_ref().map(|t| t.source().to_owned());
        TicketSettingsSpec {
            enabled: self.enabled,
            summary: source(&self.summary),
            description: source(&self.description),
            labels: self.labels.iter().map(|t| t.source().to_owned()).collect(),
            priority: source(&self.priority),
            fields: self
                .fields
                .iter()
                .map(|(id, value)| {
                    let value = match value {
                        FieldTemplate::Template(t) => serde_json::Value::String(t.source().to_owned()),
                        FieldTemplate::Literal(v) => v.clone(),
                    };
                    (id.clone(), value)
                })
                .collect(),
            dedup: source(&self.dedup),
            reopen_transition: self.reopen_transition.clone(),
            reopen_window: (self.reopen_window != DEFAULT_REOPEN_WINDOW).then(|| format_window(self.reopen_window)),
            resolve_transition: self.resolve_transition.clone(),
            wont_fix_resolution: self.wont_fix_resolution.clone(),
            comment_on_repeat: self.comment_on_repeat,
        }
    }
}

/// A window in the largest whole unit (`7d`, `36h`, `90m`), as the schema's pattern writes it;
/// a window of seconds (set through a humantime form such as `90s`) stays in seconds.
pub fn format_window(window: Duration) -> String {
    let secs = window.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => humantime::format_duration(Duration::from_secs(s)).to_string(),
    }
}

/// The characters Rust's `char::is_whitespace` matches (Unicode White_Space) as the inside of a
/// regular expression class: written out because `\s` differs between regex dialects. (The same
/// class as the integration's own field ids; kept here so the tickets module names no other.)
const WHITE_SPACE_CHARS: &str = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// `labels`' schema: at most [`MAX_LABELS`] templates.
fn labels_schema() -> Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_LABEL_TEMPLATE_CHARS)),
        )
        .max_items(Some(MAX_LABELS))
        .description(Some(
            "Label templates; white space becomes `_`, empty results are left out.",
        ))
        .build()
}

/// `fields`' schema: Jira field ids (not those Herald sets) → a template (a string of at most
/// 2,048 characters) or any other JSON value.
fn ticket_fields_schema() -> Object {
    let id = format!(
        r"^(?!({})$)[^{WHITE_SPACE_CHARS}\x00-\x1f\x7f-\x9f]+$",
        RESERVED_FIELDS.join("|")
    );
    let value = ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .max_length(Some(MAX_FIELD_TEMPLATE_CHARS))
        .build();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Extra fields: field id → a template (a string; used as JSON when its result parses as JSON) \
             or any other JSON value, sent as is.",
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_FIELD_ID_CHARS))
                .pattern(Some(id)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(value)))))
        .max_properties(Some(MAX_FIELDS))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> TicketSettingsSpec {
        serde_json::from_value(json).unwrap()
    }

    fn validate(json: serde_json::Value) -> Result<TicketSettings, InvalidTicketSettings> {
        spec(json).validate(Some("OPS"), Some("Bug"))
    }

    #[test]
    fn the_issue_example_is_accepted_and_shown_back_as_given() {
        let given = serde_json::json!({"enabled": true, "summary": "{{ labels.alertname }}",
            "description": "{{ annotations.description }}", "labels": ["team-{{ labels.team }}", "prometheus"],
            "priority": "{{ labels.severity | default('Medium') }}",
            "fields": {"customfield_10010": "{{ labels.service }}", "components": [{"name": "Ops"}]},
            "dedup": "{{ labels.alertname }}", "reopen_transition": "Reopen", "reopen_window": "7d",
            "resolve_transition": "Done", "wont_fix_resolution": "Won't Do", "comment_on_repeat": true});
        let settings = validate(given.clone()).unwrap();
        assert_eq!(settings.reopen_window, DEFAULT_REOPEN_WINDOW);
        assert!(matches!(settings.fields["components"], FieldTemplate::Literal(_)));
        assert!(matches!(
            settings.fields["customfield_10010"],
            FieldTemplate::Template(_)
        ));
        let mut shown = serde_json::to_value(settings.to_spec()).unwrap();
        // The default window is not repeated back.
        shown["reopen_window"] = "7d".into();
        assert_eq!(shown, given);
    }

    #[test]
    fn only_enabled_is_required_and_blank_means_unset() {
        assert!(serde_json::from_value::<TicketSettingsSpec>(serde_json::json!({})).is_err());
        let settings =
            validate(serde_json::json!({"enabled": false, "summary": "  ", "reopen_transition": " "})).unwrap();
        assert_eq!((settings.summary, settings.reopen_transition), (None, None));
        assert!(
            serde_json::from_value::<TicketSettingsSpec>(serde_json::json!({"enabled": true, "sumary": "x"})).is_err()
        );
    }

    #[test]
    fn enabled_tickets_need_a_project_and_an_issue_type() {
        let on = || spec(serde_json::json!({"enabled": true}));
        assert_eq!(on().validate(None, Some("Bug")).unwrap_err().field, "project_key");
        assert_eq!(on().validate(Some("OPS"), None).unwrap_err().field, "issue_type");
        assert!(spec(serde_json::json!({"enabled": false})).validate(None, None).is_ok());
    }

    #[test]
    fn each_error_names_its_field() {
        for (json, field) in [
            (serde_json::json!({"summary": "{{ oops"}), "tickets.summary"),
            (serde_json::json!({"description": "{% if %}"}), "tickets.description"),
            (
                serde_json::json!({"labels": ["ok", "{{ x | nope }}"]}),
                "tickets.labels[1]",
            ),
            (serde_json::json!({"priority": "{% endif %}"}), "tickets.priority"),
            (serde_json::json!({"dedup": "{{ }}"}), "tickets.dedup"),
            (
                serde_json::json!({"fields": {"customfield_10010": "{{"}}),
                "tickets.fields.customfield_10010",
            ),
            (
                serde_json::json!({"fields": {"summary": "x"}}),
                "tickets.fields.summary",
            ),
            (serde_json::json!({"fields": {"bad id": "x"}}), "tickets.fields.bad id"),
            (
                serde_json::json!({"reopen_transition": "a\nb"}),
                "tickets.reopen_transition",
            ),
            (
                serde_json::json!({"resolve_transition": "x".repeat(256)}),
                "tickets.resolve_transition",
            ),
            (
                serde_json::json!({"wont_fix_resolution": "a\u{2028}b"}),
                "tickets.wont_fix_resolution",
            ),
            (serde_json::json!({"reopen_window": "30s"}), "tickets.reopen_window"),
            (serde_json::json!({"reopen_window": "366d"}), "tickets.reopen_window"),
            (serde_json::json!({"reopen_window": "soon"}), "tickets.reopen_window"),
            (
                serde_json::json!({"labels": vec!["x"; MAX_LABELS + 1]}),
                "tickets.labels",
            ),
        ] {
            let mut json = json;
            json["enabled"] = true.into();
            let err = validate(json.clone()).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        let err = validate(serde_json::json!({"enabled": true, "summary": "a\n{{ x }"})).unwrap_err();
        assert!(
            err.message.contains("syntax error") && err.message.contains(":2)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn windows_are_bounded_and_shown_in_their_largest_unit() {
        let window = |w: &str| validate(serde_json::json!({"enabled": true, "reopen_window": w}));
        assert_eq!(window("1m").unwrap().reopen_window, MIN_REOPEN_WINDOW);
        assert_eq!(window("365d").unwrap().reopen_window, MAX_REOPEN_WINDOW);
        assert_eq!(format_window(window("36h").unwrap().reopen_window), "36h");
        assert_eq!(format_window(window("90m").unwrap().reopen_window), "90m");
        assert_eq!(format_window(window("2d").unwrap().reopen_window), "2d");
        assert_eq!(format_window(window("90s").unwrap().reopen_window), "1m 30s");
    }

    /// The pattern the schema documents for `reopen_window` accepts exactly the bounds' forms.
    #[test]
    fn the_documented_window_forms_are_accepted() {
        for w in ["1m", "525600m", "8760h", "365d", "7d", "99999m", "8759h"] {
            let ok = validate(serde_json::json!({"enabled": true, "reopen_window": w}));
            assert!(ok.is_ok(), "{w}");
        }
    }

    #[test]
    fn the_default_templates_compile() {
        Template::parse("tickets.summary", DEFAULT_SUMMARY).unwrap();
        Template::parse("tickets.description", DEFAULT_DESCRIPTION).unwrap();
    }
}
