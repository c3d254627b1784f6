//! The integration form: what the browser posts, turned into the API's `IntegrationSpec` (so the
//! console and the API validate with the same rules), and back for editing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::integrations::{Auth, AuthSpec, InstallationType, Integration, IntegrationSpec, InvalidIntegration};
use crate::secret::Secret;
use crate::tickets::TicketSettingsSpec;

/// The form's fields, as posted (every field optional: a missing one is reported, not a 400).
/// No `Debug`: it holds the secret as typed.
#[derive(Default, Clone, Deserialize)]
#[serde(default)]
pub struct IntegrationForm {
    pub csrf: String,
    pub name: String,
    pub url: String,
    pub installation_type: String,
    /// `basic` or `bearer`.
    pub auth_type: String,
    pub username: String,
    /// Password, API token or personal access token; empty keeps the stored one on edit.
    pub secret: String,
    pub project_key: String,
    pub issue_type: String,
    /// A JSON object of field id → value.
    pub fields: String,
    pub ca_cert_pem: String,
    pub skip_proxy: Option<String>,
    pub timeout: String,
    /// The "Tickets" fieldset: `tickets.*` of the spec, the labels one per line, the fields as JSON.
    pub tickets_enabled: Option<String>,
    pub tickets_summary: String,
    pub tickets_description: String,
    pub tickets_labels: String,
    pub tickets_priority: String,
    pub tickets_fields: String,
    pub tickets_dedup: String,
    pub tickets_reopen_transition: String,
    pub tickets_reopen_window: String,
    pub tickets_resolve_transition: String,
    pub tickets_wont_fix_resolution: String,
    pub tickets_comment_on_repeat: Option<String>,
}

super::session::with_csrf!(IntegrationForm);

fn optional(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl IntegrationForm {
    /// The form of a stored integration (no secret: the field stays empty and means "keep").
    pub fn of(integration: &Integration) -> IntegrationForm {
        let spec = integration.settings.to_spec();
        let (auth_type, username) = match &integration.settings.auth {
            Auth::Basic { username, .. } => ("basic", username.clone()),
            Auth::Bearer { .. } => ("bearer", String::new()),
        };
        IntegrationForm {
            csrf: String::new(),
            name: integration.name.to_string(),
            url: spec.url,
            installation_type: spec.installation_type.as_str().to_owned(),
            auth_type: auth_type.to_owned(),
            username,
            secret: String::new(),
            project_key: spec.project_key.unwrap_or_default(),
            issue_type: spec.issue_type.unwrap_or_default(),
            fields: if spec.fields.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&spec.fields).unwrap_or_default()
            },
            ca_cert_pem: spec.ca_cert_pem.unwrap_or_default(),
            skip_proxy: spec.skip_proxy.then(|| "on".to_owned()),
            timeout: spec.timeout.unwrap_or_default(),
            ..IntegrationForm::default()
        }
        .with_tickets(spec.tickets.unwrap_or_default())
    }

    fn with_tickets(self, t: TicketSettingsSpec) -> IntegrationForm {
        let on = |b: bool| b.then(|| "on".to_owned());
        IntegrationForm {
            tickets_enabled: on(t.enabled),
            tickets_summary: t.summary.unwrap_or_default(),
            tickets_description: t.description.unwrap_or_default(),
            tickets_labels: t.labels.join("\n"),
            tickets_priority: t.priority.unwrap_or_default(),
            tickets_fields: if t.fields.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&t.fields).unwrap_or_default()
            },
            tickets_dedup: t.dedup.unwrap_or_default(),
            tickets_reopen_transition: t.reopen_transition.unwrap_or_default(),
            tickets_reopen_window: t.reopen_window.unwrap_or_default(),
            tickets_resolve_transition: t.resolve_transition.unwrap_or_default(),
            tickets_wont_fix_resolution: t.wont_fix_resolution.unwrap_or_default(),
            tickets_comment_on_repeat: on(t.comment_on_repeat),
            ..self
        }
    }

    /// The `tickets` object of the spec; none when the fieldset is untouched (off and empty).
    fn tickets(&self) -> Result<Option<TicketSettingsSpec>, InvalidIntegration> {
        let fields = match optional(&self.tickets_fields) {
            None => BTreeMap::new(),
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                InvalidIntegration::new(
                    "tickets.fields",
                    &format!("must be a JSON object of field id to template or value, such as {{\"customfield_10010\": \"{{{{ labels.service }}}}\"}} ({e})"),
                )
            })?,
        };
        let spec = TicketSettingsSpec {
            enabled: self.tickets_enabled.is_some(),
            summary: optional(&self.tickets_summary),
            description: optional(&self.tickets_description),
            labels: self.tickets_labels.lines().filter_map(optional).collect(),
            priority: optional(&self.tickets_priority),
            fields,
            dedup: optional(&self.tickets_dedup),
            reopen_transition: optional(&self.tickets_reopen_transition),
            reopen_window: optional(&self.tickets_reopen_window),
            resolve_transition: optional(&self.tickets_resolve_transition),
            wont_fix_resolution: optional(&self.tickets_wont_fix_resolution),
            comment_on_repeat: self.tickets_comment_on_repeat.is_some(),
        };
        Ok((spec != TicketSettingsSpec::default()).then_some(spec))
    }

    /// The API's spec for these fields. The secret is left out when empty, which keeps the stored one.
    pub fn to_spec(&self) -> Result<IntegrationSpec, InvalidIntegration> {
        let installation_type = match self.installation_type.as_str() {
            "" | "auto" => InstallationType::Auto,
            "cloud" => InstallationType::Cloud,
            "server" => InstallationType::Server,
            _ => {
                return Err(InvalidIntegration::new(
                    "installation_type",
                    "must be auto, cloud or server",
                ));
            }
        };
        let secret = (!self.secret.is_empty()).then(|| Secret::new(self.secret.as_str()));
        let auth = match self.auth_type.as_str() {
            "" | "basic" => AuthSpec::Basic {
                username: self.username.trim().to_owned(),
                password: secret,
            },
            "bearer" => AuthSpec::Bearer { token: secret },
            _ => return Err(InvalidIntegration::new("auth.type", "must be basic or bearer")),
        };
        let fields: BTreeMap<String, serde_json::Value> = match optional(&self.fields) {
            None => BTreeMap::new(),
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                InvalidIntegration::new(
                    "fields",
                    &format!("must be a JSON object of field id to value, such as {{\"components\": [{{\"name\": \"Security\"}}]}} ({e})"),
                )
            })?,
        };
        Ok(IntegrationSpec {
            name: optional(&self.name),
            url: self.url.trim().to_owned(),
            installation_type,
            auth,
            project_key: optional(&self.project_key),
            issue_type: optional(&self.issue_type),
            fields,
            ca_cert_pem: optional(&self.ca_cert_pem),
            skip_proxy: self.skip_proxy.is_some(),
            timeout: optional(&self.timeout),
            tickets: self.tickets()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_the_api_spec() {
        let form = IntegrationForm {
            name: "jira-prod".into(),
            url: " https://jira.example.com ".into(),
            installation_type: "server".into(),
            auth_type: "basic".into(),
            username: "svc-herald".into(),
            secret: "s3cret".into(),
            project_key: "SEC".into(),
            fields: r#"{"components": [{"name": "Security"}]}"#.into(),
            skip_proxy: Some("on".into()),
            ..IntegrationForm::default()
        };
        let spec = form.to_spec().unwrap();
        assert_eq!(spec.url, "https://jira.example.com");
        assert_eq!(spec.installation_type, InstallationType::Server);
        assert!(
            matches!(&spec.auth, AuthSpec::Basic { username, password: Some(p) } if username == "svc-herald" && p.expose() == "s3cret")
        );
        assert_eq!(spec.fields.len(), 1);
        assert!(spec.skip_proxy);
        assert_eq!(spec.issue_type, None);
    }

    #[test]
    fn bad_fields_are_named() {
        let form = IntegrationForm {
            fields: "{not json".into(),
            ..IntegrationForm::default()
        };
        assert_eq!(form.to_spec().unwrap_err().field, "fields");
        let form = IntegrationForm {
            auth_type: "digest".into(),
            ..IntegrationForm::default()
        };
        assert_eq!(form.to_spec().unwrap_err().field, "auth.type");
    }

    #[test]
    fn the_tickets_fieldset_becomes_the_tickets_object() {
        let form = IntegrationForm {
            tickets_enabled: Some("on".into()),
            tickets_summary: "{{ labels.alertname }}".into(),
            tickets_labels: "prometheus\r\n\r\nteam-{{ labels.team }}\n".into(),
            tickets_fields: r#"{"customfield_10010": "{{ labels.service }}"}"#.into(),
            tickets_reopen_window: " 2d ".into(),
            tickets_comment_on_repeat: Some("on".into()),
            ..IntegrationForm::default()
        };
        let tickets = form.to_spec().unwrap().tickets.unwrap();
        assert!(tickets.enabled && tickets.comment_on_repeat);
        assert_eq!(tickets.labels, ["prometheus", "team-{{ labels.team }}"]);
        assert_eq!(tickets.reopen_window.as_deref(), Some("2d"));
        assert_eq!(tickets.fields["customfield_10010"], "{{ labels.service }}");
        assert_eq!(tickets.description, None);
        // Untouched, the fieldset sets nothing; bad JSON names the field.
        assert_eq!(IntegrationForm::default().to_spec().unwrap().tickets, None);
        let bad = IntegrationForm {
            tickets_fields: "[1]".into(),
            ..IntegrationForm::default()
        };
        assert_eq!(bad.to_spec().unwrap_err().field, "tickets.fields");
    }

    #[test]
    fn an_empty_secret_keeps_the_stored_one() {
        let form = IntegrationForm {
            auth_type: "bearer".into(),
            ..IntegrationForm::default()
        };
        assert!(matches!(form.to_spec().unwrap().auth, AuthSpec::Bearer { token: None }));
    }
}
