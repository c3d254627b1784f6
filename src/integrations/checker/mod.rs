//! The check: connectivity → authentication → configuration, inside one time budget.
//!
//! Requests that do not depend on each other go out together: `serverInfo` (anonymous) with `myself`,
//! then `project`, `mypermissions` and the project's issue types, then the chosen issue type's fields.
//! A healthy check of a fully configured integration is therefore three round trips.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::model::{Auth, InstallationType, IntegrationSettings, JiraUrl};
use crate::jira::types::{
    FieldMeta, FieldPage, IssueType, IssueTypePage, LegacyCreateMeta, MyPermissions, Myself, Page, Project, ServerInfo,
};
use crate::jira::{AuthDenial, Credentials, EXCERPT, JiraClient, JiraError, JiraResponse, auth_denial, excerpt};

mod configuration;
mod tickets;
pub use configuration::{MAX_PAGES, PAGE_SIZE};

/// The seed's reason for a healthy integration.
pub const HEALTHY_REASON: &str = "Integration is healthy and operational.";
/// The seed's reason for an unreachable Jira; every connectivity reason starts with it.
pub const UNREACHABLE: &str = "The system is unable to connect to Jira.";
/// Fields Herald sets on every ticket it creates.
pub const FIELDS_HERALD_SETS: [&str; 5] = ["project", "issuetype", "summary", "description", "reporter"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Connectivity,
    Authentication,
    Configuration,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Connectivity => "connectivity",
            Step::Authentication => "authentication",
            Step::Configuration => "configuration",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepReport {
    pub step: Step,
    pub outcome: StepOutcome,
    pub detail: String,
}

/// What one check found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub healthy: bool,
    /// The step that failed, if any.
    pub failed_step: Option<Step>,
    pub reason: String,
    /// `Cloud` or `Server` as Jira reports it, when reached.
    pub deployment_type: Option<String>,
    pub server_version: Option<String>,
    /// The Jira user Herald acts as.
    pub user: Option<String>,
    pub steps: Vec<StepReport>,
    /// Sequential waves of requests (requests in one wave run concurrently).
    pub round_trips: u32,
    pub requests: u32,
    #[serde(skip)]
    pub duration: Duration,
}

/// Whether Jira is Cloud or Data Center (Server), and what says so. `deploymentType` is the word
/// of serverInfo, but Atlassian's own Cloud example omits it; then Cloud is still recognised by its
/// host (`*.atlassian.net`, the configured URL or serverInfo's `baseUrl`) or by a user Jira names by
/// accountId only (Cloud has no user names or keys).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Deployment {
    /// `deploymentType` as serverInfo reports it.
    Reported(String),
    /// Cloud without `deploymentType`, and why Herald knows.
    CloudBy(&'static str),
    Unknown,
}

/// Jira Cloud's sites live under `atlassian.net`.
fn is_cloud_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host.ends_with(".atlassian.net")
}

impl Deployment {
    fn recognise(info: Option<&ServerInfo>, base: &JiraUrl, me: Option<&Myself>) -> Deployment {
        if let Some(reported) = info.and_then(|i| i.deployment_type.clone()) {
            return Deployment::Reported(excerpt(&reported, 40));
        }
        let reported_host = info
            .and_then(|i| i.base_url.as_deref())
            .and_then(|u| reqwest::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        if is_cloud_host(base.host()) {
            Deployment::CloudBy("its host name is under atlassian.net")
        } else if reported_host.is_some_and(|h| is_cloud_host(&h)) {
            Deployment::CloudBy("serverInfo's baseUrl is under atlassian.net")
        } else if me.is_some_and(Myself::is_account_id_only) {
            Deployment::CloudBy("it names the user by accountId only, without a user name or key")
        } else {
            Deployment::Unknown
        }
    }

    fn is_cloud(&self) -> bool {
        match self {
            Deployment::Reported(t) => t.eq_ignore_ascii_case("cloud"),
            Deployment::CloudBy(_) => true,
            Deployment::Unknown => false,
        }
    }

    fn is_server(&self) -> bool {
        matches!(self, Deployment::Reported(_)) && !self.is_cloud()
    }

    /// `Cloud` or `Server` for the report.
    fn name(&self) -> Option<&str> {
        match self {
            Deployment::Reported(t) => Some(t),
            Deployment::CloudBy(_) => Some("Cloud"),
            Deployment::Unknown => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Deployment::Reported(t) => t.clone(),
            Deployment::CloudBy(how) => format!("Cloud: no deploymentType, but {how}"),
            Deployment::Unknown => "deployment type not reported".to_owned(),
        }
    }

    /// Why the deployment contradicts `installation_type`, after the URL.
    fn evidence(&self, info: Option<&ServerInfo>) -> String {
        let version = info
            .and_then(|i| i.version.as_deref())
            .map(|v| format!(" (Jira {})", excerpt(v, 40)))
            .unwrap_or_default();
        match self {
            Deployment::Reported(t) => format!("reports deploymentType `{t}`{version}"),
            Deployment::CloudBy(how) => format!("is Jira Cloud{version}: {how}"),
            Deployment::Unknown => "does not say what it is".to_owned(),
        }
    }
}

struct Run<'a> {
    jira: &'a JiraClient,
    settings: &'a IntegrationSettings,
    deadline: Instant,
    report: CheckReport,
}

/// Runs the whole check within `budget`.
pub async fn check_integration(jira: &JiraClient, settings: &IntegrationSettings, budget: Duration) -> CheckReport {
    let started = Instant::now();
    let mut run = Run {
        jira,
        settings,
        deadline: started + budget,
        report: CheckReport::default(),
    };
    let outcome = run.all_steps().await;
    let mut report = run.report;
    match outcome {
        Ok(()) => {
            report.healthy = true;
            report.reason = HEALTHY_REASON.to_owned();
        }
        Err((step, reason)) => {
            report.failed_step = Some(step);
            report.reason = reason;
            let done: Vec<Step> = report.steps.iter().map(|s| s.step).collect();
            for later in [Step::Connectivity, Step::Authentication, Step::Configuration] {
                if !done.contains(&later) {
                    report.steps.push(StepReport {
                        step: later,
                        outcome: StepOutcome::Skipped,
                        detail: format!("not checked: the {} step failed", step.as_str()),
                    });
                }
            }
        }
    }
    report.duration = started.elapsed();
    report
}

type StepResult<T> = Result<T, (Step, String)>;

/// Ends a reason with exactly one full stop (or the question mark it already has).
fn sentence(detail: impl std::fmt::Display) -> String {
    let text = detail.to_string();
    if text.ends_with(['.', '?', '!']) {
        text
    } else {
        format!("{text}.")
    }
}

fn connectivity(detail: impl std::fmt::Display) -> (Step, String) {
    (
        Step::Connectivity,
        format!("{UNREACHABLE} Connectivity: {}", sentence(detail)),
    )
}

fn authentication(detail: impl std::fmt::Display) -> (Step, String) {
    (
        Step::Authentication,
        format!("Authentication failed: {}", sentence(detail)),
    )
}

fn configuration(detail: impl std::fmt::Display) -> (Step, String) {
    (
        Step::Configuration,
        format!("Configuration problem: {}", sentence(detail)),
    )
}

impl Run<'_> {
    async fn get(&self, path: &str, credentials: Credentials) -> Result<JiraResponse, JiraError> {
        self.jira.get(path, credentials, self.deadline).await
    }

    fn passed(&mut self, step: Step, detail: String) {
        self.report.steps.push(StepReport {
            step,
            outcome: StepOutcome::Passed,
            detail,
        });
    }

    fn failed<T>(&mut self, failure: (Step, String)) -> StepResult<T> {
        self.report.steps.push(StepReport {
            step: failure.0,
            outcome: StepOutcome::Failed,
            detail: failure.1.clone(),
        });
        Err(failure)
    }

    fn wave(&mut self, requests: u32) {
        self.report.round_trips += 1;
        self.report.requests += requests;
    }

    async fn all_steps(&mut self) -> StepResult<()> {
        self.wave(2);
        let (server, me) = tokio::join!(
            self.get("/rest/api/2/serverInfo", Credentials::Anonymous),
            self.get("/rest/api/2/myself", Credentials::Configured),
        );
        let info = match self.connectivity(server) {
            Ok(info) => info,
            Err(e) => return self.failed(e),
        };
        // `myself` is read once, here; its accountId is also a sign of Cloud.
        let me = me.map(|response| {
            if auth_denial(&response).is_none() && response.status.is_success() {
                if let Ok(me) = response.json::<Myself>() {
                    return Ok(me);
                }
            }
            Err(Box::new(response))
        });
        let user = me.as_ref().ok().and_then(|m| m.as_ref().ok());
        let deployment = Deployment::recognise(info.as_ref(), self.jira.base(), user);
        self.report.deployment_type = deployment.name().map(str::to_owned);
        self.report.server_version = info.as_ref().and_then(|i| i.version.clone());
        self.passed(Step::Connectivity, self.reached(info.as_ref(), &deployment));
        let contradiction = match self.settings.installation_type {
            InstallationType::Cloud if deployment.is_server() => Some("cloud"),
            InstallationType::Server if deployment.is_cloud() => Some("server"),
            _ => None,
        };
        if let Some(said) = contradiction {
            let failure = configuration(format!(
                "`installation_type` is `{said}` but {} {}; set it to `{}` or `auto`",
                self.jira.base().as_str(),
                deployment.evidence(info.as_ref()),
                if deployment.is_cloud() { "cloud" } else { "server" }
            ));
            return self.failed(failure);
        }
        let user = match self.authentication(me, deployment.is_cloud()) {
            Ok(user) => user,
            Err(e) => return self.failed(e),
        };
        self.passed(Step::Authentication, format!("signed in as `{user}`"));
        self.report.user = Some(user.clone());
        match self.configuration(&user).await {
            Ok(detail) => {
                self.passed(Step::Configuration, detail);
                Ok(())
            }
            Err(e) => self.failed(e),
        }
    }

    /// The connectivity step's detail: what answered, and how the deployment was recognised.
    fn reached(&self, info: Option<&ServerInfo>, deployment: &Deployment) -> String {
        let Some(info) = info else {
            return format!(
                "reached {}; it refuses serverInfo without credentials ({})",
                self.jira.base().as_str(),
                deployment.describe()
            );
        };
        let title = info
            .server_title
            .as_deref()
            .map(|t| format!(" \"{}\"", excerpt(t, 80)))
            .unwrap_or_default();
        let version = info
            .version
            .as_deref()
            .map(|v| format!(" {}", excerpt(v, 40)))
            .unwrap_or_default();
        format!("reached Jira{title}{version} ({})", deployment.describe())
    }

    /// Step 1: Jira answers `serverInfo` with its JSON. `None` when Jira answers but refuses it
    /// without credentials (anonymous access off, or a proxy demanding sign-in): reachable, and
    /// the authentication step says whether Herald's credentials get in.
    fn connectivity(&self, answer: Result<JiraResponse, JiraError>) -> StepResult<Option<ServerInfo>> {
        let url = self.jira.base().join("/rest/api/2/serverInfo");
        let response = answer.map_err(connectivity)?;
        if matches!(response.status.as_u16(), 401 | 403) {
            return Ok(None);
        }
        if !response.status.is_success() {
            let hint = if response.status.as_u16() == 404 {
                "; there is no Jira REST API at this URL: check the base URL and its context path (e.g. /jira)"
            } else {
                ""
            };
            return Err(connectivity(format!(
                "GET {url} answered {}{hint}",
                http_answer(&response)
            )));
        }
        response.json::<ServerInfo>().map(Some).map_err(|e| {
            connectivity(format!(
                "GET {url} did not answer with Jira's serverInfo JSON ({e}); is `url` Jira's base URL?"
            ))
        })
    }

    /// Step 2: `myself` with the configured credentials, every refusal recognised. `answer` is the
    /// user Jira answered with, or the answer that is not one. Returns how reasons name the user.
    fn authentication(
        &self,
        answer: Result<Result<Myself, Box<JiraResponse>>, JiraError>,
        is_cloud: bool,
    ) -> StepResult<String> {
        let answer = answer.map_err(|e| match e {
            e if e.is_unreachable() => connectivity(e),
            other => authentication(format!("GET /rest/api/2/myself failed: {other}")),
        })?;
        let who = match &self.settings.auth {
            Auth::Basic { username, .. } => format!("user `{username}`"),
            Auth::Bearer { .. } => "the bearer token".to_owned(),
        };
        let response = match answer {
            Ok(me) => {
                if me.active == Some(false) {
                    return Err(authentication(format!("the Jira account of {who} is deactivated")));
                }
                return Ok(self.identity(&me));
            }
            Err(response) => *response,
        };
        if let Some(denial) = auth_denial(&response) {
            let mut detail = match denial {
                AuthDenial::AuthenticatedFailed => format!(
                    "Jira rejected the credentials of {who} (X-Seraph-LoginReason: AUTHENTICATED_FAILED, HTTP {}): \
                     the user name or password is wrong",
                    response.status.as_u16()
                ),
                AuthDenial::AuthenticationDenied => format!(
                    "Jira denies sign-in to {who} (X-Seraph-LoginReason: AUTHENTICATION_DENIED, HTTP {}): the \
                     account is locked after failed logins (CAPTCHA) or not allowed to sign in; sign in once in a \
                     browser or ask a Jira admin",
                    response.status.as_u16()
                ),
                AuthDenial::CaptchaChallenge { login_url } => format!(
                    "Jira demands a CAPTCHA for {who} after repeated failed logins (HTTP 403, \
                     X-Authentication-Denied-Reason: CAPTCHA_CHALLENGE); sign in once in a browser{} to clear it, \
                     then fix the password",
                    login_url
                        .map(|u| format!(" at {}", excerpt(&u, EXCERPT)))
                        .unwrap_or_default()
                ),
                AuthDenial::CloudPasswordDeprecated => format!(
                    "Jira Cloud refuses the account password of {who}: basic authentication with passwords is \
                     deprecated; create an API token and use it as the password (with the account's e-mail as \
                     username)"
                ),
                AuthDenial::HtmlLoginPage => format!(
                    "Jira answered GET /rest/api/2/myself for {who} with an HTML login page instead of JSON (HTTP {}): \
                     the credentials were not accepted, or a single sign-on proxy intercepts REST calls",
                    response.status.as_u16()
                ),
                AuthDenial::Unauthorized { detail } => {
                    format!("Jira rejected the credentials of {who} (HTTP 401{})", colon(&detail))
                }
                AuthDenial::Forbidden { detail } => format!(
                    "Jira refuses {who} (HTTP 403{}): the account may lack access to Jira",
                    colon(&detail)
                ),
            };
            detail.push_str(&self.credential_hint(is_cloud));
            return Err(authentication(detail));
        }
        if !response.status.is_success() {
            return Err(authentication(format!(
                "GET /rest/api/2/myself answered {}",
                http_answer(&response)
            )));
        }
        let error = response.json::<Myself>().err().unwrap_or_default();
        Err(authentication(format!(
            "GET /rest/api/2/myself did not answer with a Jira user{}",
            parenthesised(&error)
        )))
    }

    /// How reasons name the Jira user Herald acts as: the configured user name (the account's e-mail
    /// on Cloud), or for a bearer token the login name, e-mail or accountId Jira answered with. Never
    /// the display name, which is not unique (and `name` is empty on Cloud).
    fn identity(&self, me: &Myself) -> String {
        let configured = match &self.settings.auth {
            Auth::Basic { username, .. } => Some(username.clone()),
            Auth::Bearer { .. } => None,
        };
        let name = configured
            .or_else(|| me.name.clone())
            .or_else(|| me.email_address.clone());
        name.or_else(|| me.account_id.clone())
            .map_or_else(|| "unknown".to_owned(), |n| excerpt(&n, 80))
    }

    /// A hint when the credential's kind does not suit the deployment.
    fn credential_hint(&self, is_cloud: bool) -> String {
        match &self.settings.auth {
            Auth::Basic { password, .. }
                if !is_cloud && crate::jira::looks_like_dc_personal_access_token(password.expose()) =>
            {
                "; the password looks like a personal access token, which Jira Data Center accepts only as a \
                 Bearer token: set auth.type to `bearer`"
                    .to_owned()
            }
            Auth::Bearer { .. } if is_cloud => "; Jira Cloud does not accept API tokens as Bearer: use auth.type \
                 `basic` with the account's e-mail and the API token"
                .to_owned(),
            _ => String::new(),
        }
    }
}

/// `HTTP 500 Internal Server Error (Jira's message)`, without empty parentheses.
fn http_answer(response: &JiraResponse) -> String {
    format!("HTTP {}{}", response.status, parenthesised(&response.error_summary()))
}

/// ` (detail)`, or nothing for an empty detail.
fn parenthesised(detail: &str) -> String {
    if detail.trim().is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// `: detail`, or nothing for an empty detail.
fn colon(detail: &str) -> String {
    if detail.trim().is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// `, detail`, or nothing for an empty detail.
fn comma(detail: &str) -> String {
    if detail.trim().is_empty() {
        String::new()
    } else {
        format!(", {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> JiraUrl {
        JiraUrl::try_from(text).unwrap()
    }

    #[test]
    fn cloud_is_recognised_without_deployment_type() {
        let info = |json: &str| serde_json::from_str::<ServerInfo>(json).unwrap();
        let example = info(include_str!(
            "../../../tests/fixtures/jira/spec-example__serverInfo.cloud.200.json"
        ));
        assert_eq!(example.deployment_type, None, "Atlassian's own example omits it");
        let on_prem = url("https://jira.example.com");
        let site = Deployment::recognise(None, &url("https://acme.atlassian.net"), None);
        assert!(site.is_cloud() && !site.is_server());
        assert!(is_cloud_host("ACME.Atlassian.NET."));
        assert!(!is_cloud_host("atlassian.net.example.com"));
        assert!(!is_cloud_host("jira.example.com"));
        // The example's baseUrl is a Cloud site.
        assert!(Deployment::recognise(Some(&example), &on_prem, None).is_cloud());
        let me: Myself = serde_json::from_str(include_str!(
            "../../../tests/fixtures/jira/spec-example__myself.cloud.200.json"
        ))
        .unwrap();
        let bare = info(r#"{"version":"1001.0.0"}"#);
        let by_user = Deployment::recognise(Some(&bare), &on_prem, Some(&me));
        assert_eq!(by_user.name(), Some("Cloud"));
        assert!(by_user.describe().contains("accountId only"));
        let dc_user: Myself = serde_json::from_str(r#"{"name":"svc","key":"JIRAUSER1","accountId":"x"}"#).unwrap();
        assert_eq!(
            Deployment::recognise(Some(&bare), &on_prem, Some(&dc_user)),
            Deployment::Unknown
        );
        let server = info(r#"{"version":"9.12.0","deploymentType":"Server"}"#);
        let reported = Deployment::recognise(Some(&server), &url("https://acme.atlassian.net"), Some(&me));
        assert!(reported.is_server(), "what Jira reports wins");
    }

    #[test]
    fn empty_details_leave_no_empty_punctuation() {
        assert_eq!(parenthesised(""), "");
        assert_eq!(parenthesised("No."), " (No.)");
        assert_eq!(colon(" "), "");
        assert_eq!(comma(""), "");
        assert_eq!(comma("gone"), ", gone");
    }
}
