//! The integration model: names, URLs, auth and the rest, parsed once at the edge.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::spec_schema::WHITE_SPACE_CLASS;
use super::spec_schema::{auth_spec_schema, ca_cert_pem_schema, field_map_schema};
pub use crate::jira::{Auth, JiraUrl};
use crate::secret::Secret;
use crate::tickets::{TicketSettings, TicketSettingsSpec};

pub use crate::identity::{IntegrationName, InvalidIntegrationName};

impl From<InvalidIntegrationName> for InvalidIntegration {
    fn from(e: InvalidIntegrationName) -> Self {
        InvalidIntegration::new("name", e.0)
    }
}

/// Which kind of Jira the admin says this is; `auto` trusts the server's own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstallationType {
    Cloud,
    /// Jira Server or Data Center (both report `deploymentType: Server`).
    Server,
    Auto,
}

impl InstallationType {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallationType::Cloud => "cloud",
            InstallationType::Server => "server",
            InstallationType::Auto => "auto",
        }
    }
}

/// A Jira URL in the integration model: a rejected one names the `url` field.
impl TryFrom<&str> for JiraUrl {
    type Error = InvalidIntegration;
    fn try_from(s: &str) -> Result<Self, InvalidIntegration> {
        JiraUrl::parse(s).map_err(|why| InvalidIntegration::new("url", &why))
    }
}

/// A registered integration with its credentials (decrypted).
#[derive(Debug, Clone)]
pub struct Integration {
    pub name: IntegrationName,
    pub settings: IntegrationSettings,
    /// Increases with every change; a cached check result belongs to one revision.
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Everything about an integration except its name and bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationSettings {
    pub url: JiraUrl,
    pub installation_type: InstallationType,
    pub auth: Auth,
    pub project_key: Option<String>,
    pub issue_type: Option<String>,
    pub fields: BTreeMap<String, serde_json::Value>,
    pub ca_cert_pem: Option<String>,
    pub skip_proxy: bool,
    /// The check's overall budget; `HERALD_CHECK_TIMEOUT` when not set.
    pub timeout: Option<Duration>,
    /// What tickets Herald creates through this integration, if any (boxed: most have none).
    pub tickets: Option<Box<TicketSettings>>,
}

/// A value the admin sent that cannot be used, naming the field.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct InvalidIntegration {
    pub field: String,
    pub message: String,
}

impl InvalidIntegration {
    pub fn new(field: &str, message: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// The JSON body of Herald's API for creating or replacing an integration.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSpec {
    /// 1–128 printable characters, unique, case-sensitive. Optional on PUT (must match the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?!\.\.?$)[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub name: Option<String>,
    /// Jira's base URL, http or https, with its context path if any (`https://jira.example.com/jira`).
    #[schema(pattern = r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$")]
    pub url: String,
    /// `cloud`, `server` (Server or Data Center) or `auto` (the default).
    #[serde(default = "auto")]
    pub installation_type: InstallationType,
    #[schema(schema_with = auth_spec_schema)]
    pub auth: AuthSpec,
    /// The project tickets are created in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255, pattern = r"^([A-Za-z][A-Za-z0-9_]*)?$")]
    pub project_key: Option<String>,
    /// The issue type of created tickets: a name (`Bug`) or an id (`10004`); needs `project_key`.
    /// Blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub issue_type: Option<String>,
    /// Extra fields set on every ticket: field id → value as Jira expects it; needs `project_key`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = field_map_schema)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// PEM CA certificate(s) for a Jira with a private CA; when set, only these are trusted.
    /// Blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = ca_cert_pem_schema)]
    pub ca_cert_pem: Option<String>,
    /// Connect directly even when a proxy is configured in the environment.
    #[serde(default)]
    pub skip_proxy: bool,
    /// The check's overall budget, e.g. `10s` (100ms to 5m); HERALD_CHECK_TIMEOUT when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^([1-9][0-9]{2,4}ms|([1-9]|[1-9][0-9]|[12][0-9]{2}|300)s|[1-5]m)$")]
    pub timeout: Option<String>,
    /// The issues Herald creates from events sent to this integration (docs/tickets.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tickets: Option<TicketSettingsSpec>,
}

fn auto() -> InstallationType {
    InstallationType::Auto
}

/// Credentials in the API. Secrets are write-only: omit them on update to keep the stored one.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthSpec {
    Basic {
        /// A user name or e-mail address, without `:` or control characters.
        #[schema(pattern = r"^[^:\x00-\x1f\x7f-\x9f]*[^:\s\x00-\x1f\x7f-\x9f][^:\x00-\x1f\x7f-\x9f]*$")]
        username: String,
        /// Password or API token (Jira Cloud: an API token, with the account's e-mail as username).
        /// Required, unless an update keeps the stored one (same Jira origin and user name).
        #[serde(default, skip_serializing_if = "crate::secret::write_only")]
        #[schema(value_type = String, write_only, required = true, min_length = 1)]
        password: Option<Secret>,
    },
    Bearer {
        /// A personal access token (Jira Data Center 8.14+), without white space. Required, unless an
        /// update keeps the stored one (same Jira origin).
        #[serde(default, skip_serializing_if = "crate::secret::write_only")]
        #[schema(value_type = String, write_only, required = true, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$")]
        token: Option<Secret>,
    },
}

impl IntegrationSpec {
    /// Validates every field. On an update, `stored` (the current settings) supplies the secret when
    /// the spec omits it, but only for the same auth type, the same Jira origin (scheme, host, port),
    /// the same trusted CA certificates and proxy choice and, for Basic, the same user: a stored secret
    /// is never sent to another server or as another user, so an admin cannot redirect it to a host of
    /// their own. A new CA could vouch for another server under the same name, and going through a
    /// proxy (or no longer) changes who can answer for it, so those count as another server too.
    pub fn validate(self, stored: Option<&IntegrationSettings>) -> Result<IntegrationSettings, InvalidIntegration> {
        let url = JiraUrl::try_from(self.url.as_str())?;
        let ca_cert_pem = self.ca_cert_pem.filter(|p| !p.trim().is_empty());
        let stored = stored
            .filter(|current| {
                current.url.origin() == url.origin()
                    && current.ca_cert_pem == ca_cert_pem
                    && current.skip_proxy == self.skip_proxy
            })
            .map(|current| &current.auth);
        let auth = match self.auth {
            AuthSpec::Basic { username, password } => {
                if username.trim().is_empty() || username.chars().any(char::is_control) || username.contains(':') {
                    return Err(InvalidIntegration::new(
                        "auth.username",
                        "must be a non-empty user name or e-mail without `:` or control characters",
                    ));
                }
                let password = match (password, stored) {
                    (Some(p), _) => p,
                    (
                        None,
                        Some(Auth::Basic {
                            username: user,
                            password,
                        }),
                    ) if *user == username => password.clone(),
                    (None, _) => {
                        return Err(InvalidIntegration::new(
                            "auth.password",
                            "is required (a password or API token); a stored one is kept only while the Jira \
                             URL's scheme, host and port, the CA certificates, the proxy choice and the user \
                             name stay the same",
                        ));
                    }
                };
                if password.is_empty() {
                    return Err(InvalidIntegration::new("auth.password", "must not be empty"));
                }
                Auth::Basic { username, password }
            }
            AuthSpec::Bearer { token } => {
                let token = match (token, stored) {
                    (Some(t), _) => t,
                    (None, Some(Auth::Bearer { token })) => token.clone(),
                    (None, _) => {
                        return Err(InvalidIntegration::new(
                            "auth.token",
                            "is required (a personal access token); a stored one is kept only while the Jira \
                             URL's scheme, host and port, the CA certificates and the proxy choice stay the same",
                        ));
                    }
                };
                if token.is_empty() || token.expose().chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(InvalidIntegration::new(
                        "auth.token",
                        "must be a non-empty token without white space",
                    ));
                }
                Auth::Bearer { token }
            }
        };
        let project_key = self.project_key.filter(|k| !k.is_empty());
        if let Some(key) = &project_key {
            let ok = key.len() <= 255
                && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(InvalidIntegration::new(
                    "project_key",
                    "must be a Jira project key such as `SEC` (a letter, then letters, digits or `_`)",
                ));
            }
        }
        let issue_type = self.issue_type.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if issue_type.is_some() && project_key.is_none() {
            return Err(InvalidIntegration::new(
                "issue_type",
                "needs `project_key`: issue types are checked within a project",
            ));
        }
        if issue_type.as_ref().is_some_and(|t| t.chars().count() > 255) {
            return Err(InvalidIntegration::new("issue_type", "must be at most 255 characters"));
        }
        if !self.fields.is_empty() && project_key.is_none() {
            return Err(InvalidIntegration::new(
                "fields",
                "needs `project_key`: fields are checked against the project's create screen",
            ));
        }
        for id in self.fields.keys() {
            if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(InvalidIntegration::new(
                    &format!("fields.{id}"),
                    "is not a Jira field id (such as `components` or `customfield_10010`)",
                ));
            }
        }
        if let Some(pem) = &ca_cert_pem {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(InvalidIntegration::new(
                    "ca_cert_pem",
                    "must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
                ));
            }
            let parsed = reqwest::Certificate::from_pem_bundle(pem.as_bytes());
            if parsed.as_ref().map_or(true, Vec::is_empty) {
                return Err(InvalidIntegration::new(
                    "ca_cert_pem",
                    "is not a readable PEM certificate",
                ));
            }
        }
        let timeout = self
            .timeout
            .as_deref()
            .map(|t| {
                humantime::parse_duration(t.trim())
                    .ok()
                    .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(300)).contains(d))
                    .ok_or_else(|| {
                        InvalidIntegration::new("timeout", "must be a duration from 100ms to 5m, such as `10s`")
                    })
            })
            .transpose()?;
        let tickets = (self.tickets)
            .map(|t| t.validate(project_key.as_deref(), issue_type.as_deref()).map(Box::new))
            .transpose()
            .map_err(|e| InvalidIntegration::new(&e.field, &e.message))?;
        Ok(IntegrationSettings {
            url,
            installation_type: self.installation_type,
            auth,
            project_key,
            issue_type,
            fields: self.fields,
            ca_cert_pem,
            skip_proxy: self.skip_proxy,
            timeout,
            tickets,
        })
    }
}

impl IntegrationSettings {
    /// The settings as the API shows them: every secret left out.
    pub fn to_spec(&self) -> IntegrationSpec {
        IntegrationSpec {
            name: None,
            url: self.url.as_str().to_owned(),
            installation_type: self.installation_type,
            auth: match &self.auth {
                Auth::Basic { username, .. } => AuthSpec::Basic {
                    username: username.clone(),
                    password: None,
                },
                Auth::Bearer { .. } => AuthSpec::Bearer { token: None },
            },
            project_key: self.project_key.clone(),
            issue_type: self.issue_type.clone(),
            fields: self.fields.clone(),
            ca_cert_pem: self.ca_cert_pem.clone(),
            skip_proxy: self.skip_proxy,
            timeout: self.timeout.map(|d| humantime::format_duration(d).to_string()),
            tickets: self.tickets.as_deref().map(TicketSettings::to_spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::spec_schema::CA_CERT_PEM_PATTERN;

    fn spec(json: serde_json::Value) -> IntegrationSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn names_are_printable_and_bounded() {
        assert!(IntegrationName::try_from("jira-prod").is_ok());
        assert!(IntegrationName::try_from("Jira Prod ü").is_ok());
        assert!(IntegrationName::try_from("").is_err());
        assert!(IntegrationName::try_from("a\tb").is_err());
        assert!(IntegrationName::try_from("a\u{7}b").is_err());
        assert!(IntegrationName::try_from(" padded").is_err());
        assert!(IntegrationName::try_from("x".repeat(128).as_str()).is_ok());
        assert!(IntegrationName::try_from("x".repeat(129).as_str()).is_err());
    }

    #[test]
    fn urls_keep_their_context_path_and_refuse_credentials() {
        let url = JiraUrl::try_from("https://jira.example.com/jira/").unwrap();
        assert_eq!(
            url.join("/rest/api/2/myself"),
            "https://jira.example.com/jira/rest/api/2/myself"
        );
        assert!(JiraUrl::try_from("ftp://jira.example.com").is_err());
        assert!(JiraUrl::try_from("https://u:p@jira.example.com").is_err());
        assert!(JiraUrl::try_from("jira.example.com").is_err());
        assert!(JiraUrl::try_from("http://127.0.0.1:8080").unwrap().is_loopback());
    }

    #[test]
    fn an_update_keeps_the_stored_secret_only_for_the_same_server_user_and_auth_type() {
        let stored = spec(serde_json::json!({"url": "https://j.example.com/jira",
            "auth": {"type": "basic", "username": "svc", "password": "old"}}))
        .validate(None)
        .unwrap();
        let update = |url: &str, auth: serde_json::Value| {
            spec(serde_json::json!({"url": url, "auth": auth})).validate(Some(&stored))
        };
        let same = update(
            "https://j.example.com:443/other",
            serde_json::json!({"type": "basic", "username": "svc"}),
        );
        assert_eq!(same.unwrap().auth.secret().expose(), "old");
        for (url, auth, field) in [
            (
                "https://evil.example.com/jira",
                serde_json::json!({"type": "basic", "username": "svc"}),
                "auth.password",
            ),
            (
                "http://j.example.com/jira",
                serde_json::json!({"type": "basic", "username": "svc"}),
                "auth.password",
            ),
            (
                "https://j.example.com:8443/jira",
                serde_json::json!({"type": "basic", "username": "svc"}),
                "auth.password",
            ),
            (
                "https://j.example.com/jira",
                serde_json::json!({"type": "basic", "username": "svc2"}),
                "auth.password",
            ),
            (
                "https://j.example.com/jira",
                serde_json::json!({"type": "bearer"}),
                "auth.token",
            ),
        ] {
            let err = update(url, auth).unwrap_err();
            assert_eq!(err.field, field, "{url}");
            assert!(err.message.contains("kept only while"), "{}", err.message);
        }
        let given = update(
            "https://evil.example.com",
            serde_json::json!({"type": "basic", "username": "x", "password": "new"}),
        );
        assert_eq!(given.unwrap().auth.secret().expose(), "new");
    }

    #[test]
    fn a_new_ca_or_proxy_choice_needs_the_secret_again() {
        let pem = || {
            rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()])
                .unwrap()
                .cert
                .pem()
        };
        let (ca, other_ca) = (pem(), pem());
        for auth in [
            serde_json::json!({"type": "basic", "username": "svc", "password": "old"}),
            serde_json::json!({"type": "bearer", "token": "old"}),
        ] {
            let mut stored = spec(serde_json::json!({"url": "https://j.example.com", "auth": auth}))
                .validate(None)
                .unwrap();
            stored.ca_cert_pem = Some(ca.clone());
            let field = if stored.auth.kind() == "basic" {
                "auth.password"
            } else {
                "auth.token"
            };
            let mut omitted = auth.clone();
            omitted
                .as_object_mut()
                .unwrap()
                .retain(|k, _| k == "type" || k == "username");
            let update = |extra: serde_json::Value| {
                let mut doc = serde_json::json!({"url": "https://j.example.com", "auth": omitted.clone()});
                doc.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                spec(doc).validate(Some(&stored))
            };
            let kept = update(serde_json::json!({"ca_cert_pem": ca})).unwrap();
            assert_eq!(kept.auth.secret().expose(), "old");
            for change in [
                serde_json::json!({"ca_cert_pem": other_ca}),
                serde_json::json!({}),
                serde_json::json!({"ca_cert_pem": " "}),
                serde_json::json!({"ca_cert_pem": ca, "skip_proxy": true}),
            ] {
                let err = update(change.clone()).unwrap_err();
                assert_eq!(err.field, field, "{change}");
                assert!(err.message.contains("kept only while"), "{}", err.message);
            }
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let auth = Auth::Basic {
            username: "svc".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let s =
            spec(serde_json::json!({"url": "https://j.example.com", "auth": {"type": "bearer", "token": "tok-123"}}));
        assert!(!format!("{s:?}").contains("tok-123"));
        assert!(!serde_json::to_string(&s).unwrap().contains("tok-123"));
    }

    #[test]
    fn issue_type_and_fields_need_a_project_and_timeouts_are_bounded() {
        let base = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"url": "https://j.example.com", "auth": {"type": "bearer", "token": "t"}});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            spec(v).validate(None)
        };
        assert_eq!(
            base(serde_json::json!({"issue_type": "Bug"})).unwrap_err().field,
            "issue_type"
        );
        assert_eq!(base(serde_json::json!({"timeout": "1h"})).unwrap_err().field, "timeout");
        assert_eq!(
            base(serde_json::json!({"project_key": "1X"})).unwrap_err().field,
            "project_key"
        );
        assert_eq!(
            base(serde_json::json!({"ca_cert_pem": "nope"})).unwrap_err().field,
            "ca_cert_pem"
        );
        let ok = base(serde_json::json!({"project_key": "SEC", "issue_type": "Bug", "timeout": "2s"})).unwrap();
        assert_eq!(ok.timeout, Some(Duration::from_secs(2)));
    }

    /// What the document's `ca_cert_pem` pattern and blank rules accept, the server accepts: blank
    /// text means none, and PEM blocks of canonical base64 are read (whether they hold a usable
    /// certificate is the check's business).
    #[test]
    fn what_the_documented_ca_cert_rules_accept_is_accepted() {
        let base = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"url": "https://j.example.com", "auth": {"type": "bearer", "token": "t"}});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            spec(v).validate(None)
        };
        let block = |b64: &str| format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----");
        for pem in [
            " \u{3000}\t".to_owned(),
            block("AAAA"),
            block("AAAAAB=="),
            format!("{}\r\n{}\n", block("AAE="), block("QUJD")),
        ] {
            let settings = base(serde_json::json!({ "ca_cert_pem": pem })).unwrap();
            assert_eq!(settings.ca_cert_pem.is_some(), pem.contains("BEGIN"), "{pem:?}");
        }
        // Blank issue types mean none, so they need no project.
        assert_eq!(
            base(serde_json::json!({"issue_type": " \u{a0}"})).unwrap().issue_type,
            None
        );
        // `.` and `..` are refused as names, as the document's pattern says.
        for name in [".", ".."] {
            assert!(IntegrationName::try_from(name).is_err());
        }
        assert!(CA_CERT_PEM_PATTERN.starts_with(&format!("^({WHITE_SPACE_CLASS}*|")));
    }
}
