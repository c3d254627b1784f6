//! A Jira simulator: an axum server on 127.0.0.1:0 that answers the REST calls of Herald's check with
//! Jira's own bodies (tests/fixtures/jira), as Jira Cloud, Data Center, or a pre-8.4 server would, and
//! with every fault Herald must recognise. Counts requests per path so tests can prove coalescing.
//! Sign-in is in `jira_sim_auth.rs`; tickets (issues, searches, transitions, faults) in `jira_sim_ticket*.rs`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::jira_sim_tickets::Tickets;
#[path = "jira_sim_auth.rs"]
mod auth;
use auth::{Caller, authenticate, captcha, login_page, server_info};

const SERVER_INFO_CLOUD: &str = include_str!("../../fixtures/jira/spec-example__serverInfo.cloud.200.json");
const SERVER_INFO_DC: &str =
    include_str!("../../fixtures/jira/scanapi-readme__serverInfo.datacenter.issues.redhat.com.json");
const MYSELF_CLOUD: &str = include_str!("../../fixtures/jira/spec-example__myself.cloud.200.json");
const MYSELF_DC: &str = include_str!("../../fixtures/jira/jira-ruby__user_accountId.json");
const PROJECT_CLOUD: &str = include_str!("../../fixtures/jira/spec-example__project.cloud.200.json");
const PROJECT_DC: &str = include_str!("../../fixtures/jira/jira-ruby__project_SAMPLEPROJECT.json");
const MYPERMISSIONS: &str = include_str!("../../fixtures/jira/spec-example__mypermissions.cloud.200.json");
const ISSUETYPES_CLOUD: &str = include_str!("../../fixtures/jira/spec-example__createmeta_issuetypes.cloud.200.json");
const FIELDS_CLOUD: &str = include_str!("../../fixtures/jira/spec-example__createmeta_fields.cloud.200.json");
const LEGACY_CREATEMETA: &str = include_str!("../../fixtures/jira/jiraffe__issue_createmeta.expanded.json");

pub const USER: &str = "svc-herald";
pub const PASSWORD: &str = "s3cret-password";
pub const API_TOKEN: &str = "ATATT3xFfGF0-cloud-api-token";
/// A Data Center personal access token: base64 of `<id>:<random>`, 44 characters.
pub const PAT: &str = "MTIzNDU2Nzg5MDEyOmFiY2RlZmdoaWowMTIzNDU2Nzg5";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Jira Cloud: Basic with e-mail + API token; passwords over Basic are refused.
    Cloud,
    /// Jira Data Center 9.12: Basic with user + password, or Bearer with a personal access token.
    DataCenter,
    /// Jira Server 8.0: Basic; no `createmeta/{project}/issuetypes`, only the old `createmeta`.
    Legacy,
}

/// A fault injected on one path (or on every path, for `*`).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Any status with a body.
    Status(u16, String),
    /// 429 with `Retry-After: secs`, for the first `times` requests.
    RateLimited { retry_after: u64, times: usize },
    /// 503 with `Retry-After: secs`, for the first `times` requests.
    Unavailable { retry_after: u64, times: usize },
    /// Answers normally after this delay.
    Slow(Duration),
    /// Never answers.
    Hang,
    /// 200 with JSON cut off in the middle.
    MalformedJson,
    /// 200 with a JSON body of this many bytes.
    Oversized(usize),
    /// 302 to another URL.
    Redirect(String),
    /// 200 with an HTML login page (what an SSO proxy or a failed session looks like).
    HtmlLoginPage,
    /// The given `X-Seraph-LoginReason` on a 200 with an anonymous body.
    SeraphOn200(&'static str),
    /// 403 with `X-Authentication-Denied-Reason: CAPTCHA_CHALLENGE`.
    Captcha,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub flavour: Flavour,
    pub context_path: String,
    pub project_key: String,
    /// (id, name) of the issue types of the project.
    pub issue_types: Vec<(String, String)>,
    /// (field id, name) required without default, beyond the ones Herald sets.
    pub required_fields: Vec<(String, String)>,
    /// Optional fields on the create screen.
    pub optional_fields: Vec<String>,
    pub browse: bool,
    pub create: bool,
    /// ADD_COMMENTS and TRANSITION_ISSUES, when asked for.
    pub comment: bool,
    pub transition: bool,
    /// Latency added to every answer.
    pub latency: Duration,
    /// Failed logins after which Data Center demands a CAPTCHA (0 = never).
    pub captcha_after: usize,
    /// serverInfo without `deploymentType`, as Atlassian's own Cloud example answers.
    pub omit_deployment_type: bool,
    /// serverInfo's `baseUrl`, instead of the simulator's own address (e.g. a Cloud site).
    pub reported_base_url: Option<String>,
    /// The most items a createmeta page holds, whatever `maxResults` asks (Cloud caps at 50).
    pub page_size: usize,
    /// Optional fields `customfield_2xxxx` added to the create screen before the required ones.
    pub extra_fields: usize,
    /// `total` in createmeta pages, instead of the real count (a schema-valid int64 may be anything).
    pub reported_total: Option<i64>,
}

impl SimConfig {
    pub fn new(flavour: Flavour) -> Self {
        Self {
            flavour,
            context_path: String::new(),
            project_key: "SEC".into(),
            issue_types: vec![("1".into(), "Bug".into()), ("10001".into(), "Story".into())],
            required_fields: Vec::new(),
            optional_fields: vec!["components".into(), "labels".into(), "priority".into()],
            browse: true,
            create: true,
            comment: true,
            transition: true,
            latency: Duration::ZERO,
            captcha_after: 0,
            omit_deployment_type: false,
            reported_base_url: None,
            page_size: 50,
            extra_fields: 0,
            reported_total: None,
        }
    }
}

struct SimState {
    config: Mutex<SimConfig>,
    faults: Mutex<HashMap<String, (Fault, usize)>>,
    counts: Mutex<HashMap<String, usize>>,
    failed_logins: Mutex<usize>,
    base: Mutex<String>,
    tickets: Tickets,
}

/// A running simulator. Dropping it stops the server.
pub struct JiraSim {
    pub addr: SocketAddr,
    /// The base URL to register in Herald (scheme, host, port, context path).
    pub url: String,
    /// The CA that signed the TLS certificate, when serving HTTPS.
    pub ca_pem: Option<String>,
    state: Arc<SimState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JiraSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(state: Arc<SimState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn new_state(config: SimConfig) -> Arc<SimState> {
    Arc::new(SimState {
        config: Mutex::new(config),
        faults: Mutex::new(HashMap::new()),
        counts: Mutex::new(HashMap::new()),
        failed_logins: Mutex::new(0),
        base: Mutex::new(String::new()),
        tickets: Tickets::default(),
    })
}

impl JiraSim {
    pub async fn start(flavour: Flavour) -> JiraSim {
        Self::start_with(SimConfig::new(flavour)).await
    }

    pub async fn start_with(config: SimConfig) -> JiraSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}{}", config.context_path);
        let state = new_state(config);
        *state.base.lock().unwrap() = url.clone();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JiraSim {
            addr,
            url,
            ca_pem: None,
            state,
            task,
        }
    }

    /// Serves HTTPS with a certificate for `names` signed by a fresh test CA (returned in `ca_pem`).
    pub async fn start_tls(config: SimConfig, names: &[&str]) -> JiraSim {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Herald Test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
            leaf.pem().into_bytes(),
            leaf_key.serialize_pem().into_bytes(),
        )
        .await
        .expect("TLS config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("https://localhost:{}{}", addr.port(), config.context_path);
        let state = new_state(config);
        *state.base.lock().unwrap() = url.clone();
        let app = router(state.clone());
        let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
        let task = tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        JiraSim {
            addr,
            url,
            ca_pem: Some(ca.pem()),
            state,
            task,
        }
    }

    pub fn configure(&self, change: impl FnOnce(&mut SimConfig)) {
        change(&mut self.state.config.lock().unwrap());
    }

    /// Injects a fault on a path such as `/rest/api/2/myself` (without the context path), or `*`.
    pub fn fault(&self, path: &str, fault: Fault) {
        self.state.faults.lock().unwrap().insert(path.to_owned(), (fault, 0));
    }

    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Requests received on a path (without context path and query).
    pub fn count(&self, path: &str) -> usize {
        self.state.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.state.counts.lock().unwrap().values().sum()
    }

    /// The issues, the ticket knobs (429s, rate limit, field errors, lost answers) and counters.
    pub fn tickets(&self) -> &Tickets {
        &self.state.tickets
    }

    pub fn reset_counts(&self) {
        self.state.counts.lock().unwrap().clear();
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn errors(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({"errorMessages": [message], "errors": {}}))
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

async fn handle(State(state): State<Arc<SimState>>, request: Request<Body>) -> Response {
    let config = state.config.lock().unwrap().clone();
    let full_path = request.uri().path().to_owned();
    let Some(path) = full_path.strip_prefix(&config.context_path).map(str::to_owned) else {
        return errors(StatusCode::NOT_FOUND, "not under the context path");
    };
    let query = request.uri().query().unwrap_or("").to_owned();
    *state.counts.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
    let method = request.method().clone();
    if let Some(throttled) = state.tickets.admit(&method, &path) {
        return throttled;
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20).await.unwrap_or_default();
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
    let fault = {
        let mut faults = state.faults.lock().unwrap();
        let entry = if faults.contains_key(&path) {
            faults.get_mut(&path)
        } else {
            faults.get_mut("*")
        };
        entry.map(|(fault, hits)| {
            *hits += 1;
            (fault.clone(), *hits)
        })
    };
    if let Some((fault, hits)) = fault {
        match fault {
            Fault::Status(code, body) => {
                return (
                    StatusCode::from_u16(code).unwrap(),
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
            }
            Fault::RateLimited { retry_after, times } if hits <= times => {
                let mut r = errors(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.");
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return r;
            }
            Fault::Unavailable { retry_after, times } if hits <= times => {
                let mut r = (StatusCode::SERVICE_UNAVAILABLE, "Jira is restarting").into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return r;
            }
            Fault::RateLimited { .. } | Fault::Unavailable { .. } => {}
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::Hang => std::future::pending::<()>().await,
            Fault::MalformedJson => {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"baseUrl\":\"https://jira.example.com\",\"version\":",
                )
                    .into_response();
            }
            Fault::Oversized(size) => {
                let mut body = String::with_capacity(size + 16);
                body.push_str("{\"padding\":\"");
                body.push_str(&"x".repeat(size));
                body.push_str("\"}");
                return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            }
            Fault::Redirect(location) => {
                return (StatusCode::FOUND, [(header::LOCATION, location)], "").into_response();
            }
            Fault::HtmlLoginPage => return login_page(),
            Fault::SeraphOn200(reason) => {
                let mut r = json_response(
                    StatusCode::OK,
                    json!({"self": "anonymous", "name": "", "active": false}),
                );
                r.headers_mut()
                    .insert("x-seraph-loginreason", HeaderValue::from_static(reason));
                return r;
            }
            Fault::Captcha => return captcha(&state),
        }
    }
    if path == "/rest/api/2/serverInfo" {
        return server_info(&state, &config);
    }
    if !path.starts_with("/rest/") {
        return login_page();
    }
    match authenticate(&state, &config, &parts.headers) {
        Caller::Refused(response) => return response,
        Caller::Anonymous => {
            let mut r = errors(
                StatusCode::UNAUTHORIZED,
                "You are not authenticated. Authentication required to perform this operation.",
            );
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("OAuth realm=\"jira\""));
            return r;
        }
        Caller::User => {}
    }
    let base = state.base.lock().unwrap().clone();
    if let Some(answer) = state.tickets.route(&config, &base, &method, &path, &query, &body).await {
        return answer;
    }
    route(&config, &path, &query)
}

fn issue_type_json(config: &SimConfig, id: &str, name: &str) -> Value {
    let base = format!("https://jira.example.com{}", config.context_path);
    json!({
        "self": format!("{base}/rest/api/2/issuetype/{id}"),
        "id": id, "name": name, "description": "", "subtask": false,
        "iconUrl": format!("{base}/images/icons/issuetypes/bug.png"),
    })
}

fn field_list(config: &SimConfig) -> Vec<Value> {
    let template = fixture(FIELDS_CLOUD)["fields"][0].clone();
    let field = |id: &str, name: &str, required: bool, default: bool| {
        let mut f = template.clone();
        f["fieldId"] = json!(id);
        f["key"] = json!(id);
        f["name"] = json!(name);
        f["required"] = json!(required);
        f["hasDefaultValue"] = json!(default);
        f
    };
    let mut fields = vec![
        field("summary", "Summary", true, false),
        field("issuetype", "Issue Type", true, false),
        field("project", "Project", true, false),
        field("reporter", "Reporter", true, true),
        field("description", "Description", false, false),
    ];
    for id in &config.optional_fields {
        fields.push(field(id, id, false, false));
    }
    for i in 0..config.extra_fields {
        let id = format!("customfield_{}", 20000 + i);
        fields.push(field(&id, &format!("Extra {i}"), false, false));
    }
    for (id, name) in &config.required_fields {
        fields.push(field(id, name, true, false));
    }
    fields
}

/// One page of a createmeta list, as Jira pages it: `startAt` and `maxResults` from the query,
/// `maxResults` capped at the simulator's page size.
struct SimPage {
    items: Vec<Value>,
    start: usize,
    max: usize,
    total: i64,
    is_last: bool,
}

impl SimPage {
    /// Cloud answers `startAt`, `maxResults`, `total`; Data Center also `isLast`.
    fn write(self, body: &mut Value, key: &str, with_is_last: bool) {
        body[key] = json!(self.items);
        body["startAt"] = json!(self.start);
        body["maxResults"] = json!(self.max);
        body["total"] = json!(self.total);
        if with_is_last {
            body["isLast"] = json!(self.is_last);
        }
    }
}

fn query_number(query: &str, name: &str) -> Option<usize> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn paginate(config: &SimConfig, all: Vec<Value>, query: &str) -> SimPage {
    let start = query_number(query, "startAt").unwrap_or(0);
    let max = query_number(query, "maxResults").unwrap_or(50).min(config.page_size);
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(start).take(max).collect();
    SimPage {
        is_last: start + items.len() >= total,
        items,
        start,
        max,
        total: config.reported_total.unwrap_or(total as i64),
    }
}

fn route(config: &SimConfig, path: &str, query: &str) -> Response {
    let key = &config.project_key;
    let segments: Vec<&str> = path.trim_start_matches("/rest/api/2/").split('/').collect();
    match segments.as_slice() {
        ["myself"] => {
            let body = match config.flavour {
                Flavour::Cloud => fixture(MYSELF_CLOUD),
                Flavour::DataCenter | Flavour::Legacy => {
                    let mut v = fixture(MYSELF_DC);
                    v["name"] = json!(USER);
                    v
                }
            };
            json_response(StatusCode::OK, body)
        }
        ["project", wanted] => {
            if wanted != key || !config.browse {
                return errors(
                    StatusCode::NOT_FOUND,
                    &format!("No project could be found with key '{wanted}'."),
                );
            }
            let mut body = fixture(match config.flavour {
                Flavour::Cloud => PROJECT_CLOUD,
                _ => PROJECT_DC,
            });
            body["key"] = json!(key);
            json_response(StatusCode::OK, body)
        }
        ["mypermissions"] => {
            let template = fixture(MYPERMISSIONS)["permissions"]["EDIT_ISSUES"].clone();
            let permission = |id: &str, key: &str, name: &str, have: bool| {
                let mut p = template.clone();
                p["id"] = json!(id);
                p["key"] = json!(key);
                p["name"] = json!(name);
                p["havePermission"] = json!(have);
                p
            };
            if !query.contains(&format!("projectKey={key}")) {
                return errors(StatusCode::NOT_FOUND, "No project could be found.");
            }
            let mut all = serde_json::Map::new();
            all.insert(
                "BROWSE_PROJECTS".into(),
                permission("10", "BROWSE_PROJECTS", "Browse Projects", config.browse),
            );
            all.insert(
                "CREATE_ISSUES".into(),
                permission("11", "CREATE_ISSUES", "Create Issues", config.create),
            );
            // Jira answers the permissions asked for; these two only then.
            if query.contains("ADD_COMMENTS") {
                all.insert(
                    "ADD_COMMENTS".into(),
                    permission("15", "ADD_COMMENTS", "Add Comments", config.comment),
                );
            }
            if query.contains("TRANSITION_ISSUES") {
                all.insert(
                    "TRANSITION_ISSUES".into(),
                    permission("46", "TRANSITION_ISSUES", "Transition Issues", config.transition),
                );
            }
            json_response(StatusCode::OK, json!({ "permissions": all }))
        }
        ["issue", "createmeta", wanted, "issuetypes"] if config.flavour != Flavour::Legacy => {
            if wanted != key || !config.create {
                return errors(
                    StatusCode::NOT_FOUND,
                    &format!("No project could be found with key '{wanted}'."),
                );
            }
            let types: Vec<Value> = config
                .issue_types
                .iter()
                .map(|(id, name)| issue_type_json(config, id, name))
                .collect();
            let mut body = fixture(ISSUETYPES_CLOUD);
            let page = paginate(config, types, query);
            if config.flavour == Flavour::Cloud {
                page.write(&mut body, "issueTypes", false);
            } else {
                body.as_object_mut().unwrap().remove("issueTypes");
                page.write(&mut body, "values", true);
            }
            json_response(StatusCode::OK, body)
        }
        ["issue", "createmeta", wanted, "issuetypes", id] if config.flavour != Flavour::Legacy => {
            if wanted != key || !config.issue_types.iter().any(|(i, _)| i == id) {
                return errors(StatusCode::NOT_FOUND, "Issue type not found.");
            }
            let mut body = fixture(FIELDS_CLOUD);
            let page = paginate(config, field_list(config), query);
            if config.flavour == Flavour::Cloud {
                page.write(&mut body, "fields", false);
            } else {
                body.as_object_mut().unwrap().remove("fields");
                page.write(&mut body, "values", true);
            }
            json_response(StatusCode::OK, body)
        }
        ["issue", "createmeta"] if config.flavour == Flavour::Legacy => {
            let mut body = fixture(LEGACY_CREATEMETA);
            let project_template = body["projects"][0].clone();
            if !query.contains(&format!("projectKeys={key}")) || !config.create {
                body["projects"] = json!([]);
                return json_response(StatusCode::OK, body);
            }
            let mut project = project_template.clone();
            project["key"] = json!(key);
            let types: Vec<Value> = config
                .issue_types
                .iter()
                .map(|(id, name)| {
                    let mut t = issue_type_json(config, id, name);
                    let fields: serde_json::Map<String, Value> = field_list(config)
                        .into_iter()
                        .map(|f| (f["fieldId"].as_str().unwrap().to_owned(), f))
                        .collect();
                    t["fields"] = Value::Object(fields);
                    t
                })
                .collect();
            project["issuetypes"] = json!(types);
            body["projects"] = json!([project]);
            json_response(StatusCode::OK, body)
        }
        _ => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html")],
            "<html>Not Found</html>",
        )
            .into_response(),
    }
}
