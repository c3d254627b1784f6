//! The integration form: what the browser posts, turned into the API's `IntegrationSpec` (so the
//! console and the API validate with the same rules), and back for editing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::integrations::{Auth, AuthSpec, InstallationType, Integration, IntegrationSpec, InvalidIntegration};
use crate::secret::Secret;

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
        }
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
    fn an_empty_secret_keeps_the_stored_one() {
        let form = IntegrationForm {
            auth_type: "bearer".into(),
            ..IntegrationForm::default()
        };
        assert!(matches!(form.to_spec().unwrap().auth, AuthSpec::Bearer { token: None }));
    }
}
