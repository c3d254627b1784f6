//! The ticket endpoints of the Jira simulator (state and knobs are in `jira_sim_tickets.rs`):
//! create, read, transitions, comments, both searches and the JQL they need.
#![allow(dead_code)]

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::jira_sim::{Flavour, SimConfig};
use super::jira_sim_tickets::{
    RESOLUTIONS, SEARCH_REMOVED, SimIssue, Tickets, available, category_of, created_body, errors, not_on_screen,
    status_json, transitions_json,
};

pub struct Ctx<'a> {
    pub config: &'a SimConfig,
    pub base: &'a str,
    pub version: u8,
    pub method: &'a Method,
    pub query: &'a str,
    pub request: &'a Value,
}

pub fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html")],
        "<html>Not Found</html>",
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn no_issue() -> Response {
    errors(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        &[],
    )
}

pub async fn answer(tickets: &Tickets, ctx: &Ctx<'_>, segments: &[&str]) -> Response {
    let method = ctx.method.as_str();
    match (method, segments) {
        ("POST", ["issue"]) => create(tickets, ctx).await,
        ("GET", ["issue", key]) => tickets.with(|issues| match issues.iter().find(|i| i.key == *key || i.id == *key) {
            Some(issue) => json_response(StatusCode::OK, issue_json(ctx.base, ctx.version, issue)),
            None => no_issue(),
        }),
        ("GET", ["issue", key, "transitions"]) => tickets.with(|issues| match issues.iter().find(|i| i.key == *key) {
            Some(issue) => json_response(StatusCode::OK, transitions_json(ctx.base, &issue.status)),
            None => no_issue(),
        }),
        ("POST", ["issue", key, "transitions"]) => {
            tickets.with(|issues| match issues.iter_mut().find(|i| i.key == *key) {
                Some(issue) => transition(issue, ctx.request),
                None => no_issue(),
            })
        }
        ("POST", ["issue", key, "comment"]) => tickets.with(|issues| match issues.iter_mut().find(|i| i.key == *key) {
            Some(issue) => comment(issue, ctx),
            None => no_issue(),
        }),
        (_, ["search"]) if ctx.config.flavour == Flavour::Cloud => errors(StatusCode::GONE, &[SEARCH_REMOVED], &[]),
        ("GET" | "POST", ["search"]) => search(tickets, ctx, false),
        ("GET" | "POST", ["search", "jql"]) if ctx.config.flavour == Flavour::Cloud => search(tickets, ctx, true),
        _ => not_found_page(),
    }
}

fn issue_json(base: &str, version: u8, issue: &SimIssue) -> Value {
    let done = category_of(&issue.status) == "done";
    json!({
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": issue.id,
        "self": format!("{base}/rest/api/{version}/issue/{}", issue.id),
        "key": issue.key,
        "fields": {
            "summary": issue.summary,
            "labels": issue.labels,
            "status": status_json(base, &issue.status),
            "resolution": issue.resolution.as_ref().map(|name| json!({"name": name, "description": ""})),
            "resolutiondate": if done { json!("2026-11-30T10:00:00.000+0000") } else { Value::Null },
        },
    })
}

/// What a rich-text field must be on this API version: ADF on v3, a string on v2.
fn body_error(version: u8, value: &Value) -> Option<&'static str> {
    match (version, value) {
        (3, Value::Object(doc)) if doc.get("type") == Some(&json!("doc")) => None,
        (3, _) => Some("Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
        (_, Value::String(_)) => None,
        _ => Some("Operation value must be a string"),
    }
}

async fn create(tickets: &Tickets, ctx: &Ctx<'_>) -> Response {
    let config = ctx.config;
    let Some(fields) = ctx.request.get("fields").and_then(Value::as_object) else {
        return errors(StatusCode::BAD_REQUEST, &["one of 'fields' or 'update' required"], &[]);
    };
    let mut field_errors: Vec<(String, String)> = Vec::new();
    let on_screen = |id: &str| {
        ["summary", "issuetype", "project", "reporter", "description"].contains(&id)
            || config.optional_fields.iter().any(|f| f == id)
            || config.required_fields.iter().any(|(f, _)| f == id)
    };
    let rejected = tickets.rejected_fields();
    for id in fields.keys() {
        if let Some(message) = rejected.get(id) {
            field_errors.push((id.clone(), message.clone()));
        } else if !on_screen(id) {
            field_errors.push((id.clone(), not_on_screen(id)));
        }
    }
    let text = |id: &str| fields.get(id).and_then(Value::as_str).unwrap_or("").to_owned();
    let project = fields.get("project").and_then(|p| p["key"].as_str()).unwrap_or("");
    if project != config.project_key {
        field_errors.push(("project".into(), "valid project is required".into()));
    }
    let issue_type = fields.get("issuetype").cloned().unwrap_or(Value::Null);
    let known_type = config.issue_types.iter().find(|(id, name)| {
        issue_type["id"].as_str() == Some(id.as_str()) || issue_type["name"].as_str() == Some(name.as_str())
    });
    if known_type.is_none() {
        field_errors.push(("issuetype".into(), "valid issue type is required".into()));
    }
    let summary = text("summary");
    if summary.trim().is_empty() {
        field_errors.push(("summary".into(), "You must specify a summary of the issue.".into()));
    } else if summary.chars().count() > 255 {
        field_errors.push(("summary".into(), "Summary must be less than 255 characters.".into()));
    }
    let description = fields.get("description").cloned().unwrap_or(Value::Null);
    if !description.is_null() {
        if let Some(message) = body_error(ctx.version, &description) {
            field_errors.push(("description".into(), message.into()));
        }
    }
    let labels: Vec<String> = fields
        .get("labels")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(bad) = labels.iter().find(|l| l.contains(char::is_whitespace)) {
        field_errors.push((
            "labels".into(),
            format!("The label '{bad}' contains spaces which is invalid."),
        ));
    }
    if !field_errors.is_empty() {
        field_errors.sort();
        field_errors.dedup_by(|a, b| a.0 == b.0);
        let pairs: Vec<(&str, &str)> = field_errors.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        return errors(StatusCode::BAD_REQUEST, &[], &pairs);
    }
    let (id, key) = tickets.with(|issues| {
        let number = issues.len() + 1;
        let id = (10000 + number).to_string();
        let key = format!("{}-{number}", config.project_key);
        issues.push(SimIssue {
            id: id.clone(),
            key: key.clone(),
            project: config.project_key.clone(),
            issue_type: known_type.map(|(_, name)| name.clone()).unwrap_or_default(),
            summary,
            description,
            labels,
            priority: fields
                .get("priority")
                .and_then(|p| p["name"].as_str())
                .map(str::to_owned),
            fields: fields.clone(),
            status: "To Do".into(),
            resolution: None,
            comments: Vec::new(),
            api: ctx.version,
        });
        (id, key)
    });
    if tickets.lose_this_answer() {
        // Created; the answer never leaves. The client's timeout ends the exchange.
        std::future::pending::<()>().await;
    }
    json_response(StatusCode::CREATED, created_body(ctx.base, ctx.version, &id, &key))
}

fn transition(issue: &mut SimIssue, request: &Value) -> Response {
    let wanted = &request["transition"];
    let chosen = available(&issue.status)
        .into_iter()
        .find(|(id, name, _)| wanted["id"].as_str() == Some(id) || wanted["name"].as_str() == Some(name));
    let Some((id, _, to)) = chosen else {
        let shown = wanted["id"].as_str().or(wanted["name"].as_str()).unwrap_or("");
        return errors(
            StatusCode::BAD_REQUEST,
            &[&format!("Transition id '{shown}' is not valid for this issue.")],
            &[],
        );
    };
    let resolution = request["fields"]["resolution"]["name"].as_str();
    let resolves = to == "Done" && id != "41";
    match (resolution, resolves) {
        (Some(_), false) => {
            return errors(
                StatusCode::BAD_REQUEST,
                &[],
                &[("resolution", &not_on_screen("resolution"))],
            );
        }
        (Some(name), true) if !RESOLUTIONS.contains(&name) => {
            return errors(
                StatusCode::BAD_REQUEST,
                &[],
                &[("resolution", &format!("Resolution '{name}' is not valid."))],
            );
        }
        _ => {}
    }
    issue.status = to.to_owned();
    issue.resolution = resolves.then(|| resolution.unwrap_or("Done").to_owned());
    StatusCode::NO_CONTENT.into_response()
}

fn comment(issue: &mut SimIssue, ctx: &Ctx<'_>) -> Response {
    let body = ctx.request.get("body").cloned().unwrap_or(Value::Null);
    let empty = body.is_null() || body.as_str().is_some_and(|s| s.trim().is_empty());
    if empty {
        return errors(
            StatusCode::BAD_REQUEST,
            &[],
            &[("comment", "Comment body can not be empty!")],
        );
    }
    if let Some(message) = body_error(ctx.version, &body) {
        return errors(StatusCode::BAD_REQUEST, &[message], &[]);
    }
    issue.comments.push(body.clone());
    let id = (20000 + issue.comments.len()).to_string();
    json_response(
        StatusCode::CREATED,
        json!({
            "self": format!("{}/rest/api/{}/issue/{}/comment/{id}", ctx.base, ctx.version, issue.id),
            "id": id, "body": body, "created": "2026-11-30T10:00:00.000+0000",
        }),
    )
}

fn search(tickets: &Tickets, ctx: &Ctx<'_>, cloud_jql: bool) -> Response {
    let (jql, max) = if ctx.method == Method::GET {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(ctx.query).unwrap_or_default();
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        (
            get("jql").unwrap_or_default(),
            get("maxResults").and_then(|m| m.parse().ok()),
        )
    } else {
        (
            ctx.request["jql"].as_str().unwrap_or("").to_owned(),
            ctx.request["maxResults"].as_u64().map(|m| m as usize),
        )
    };
    let clauses = match parse_jql(&jql) {
        Ok(c) => c,
        Err(e) => return errors(StatusCode::BAD_REQUEST, &[&format!("Error in the JQL Query: {e}")], &[]),
    };
    if cloud_jql && clauses.is_empty() {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."],
            &[],
        );
    }
    let max = max.unwrap_or(50);
    let found: Vec<Value> = tickets.with(|issues| {
        issues
            .iter()
            .rev()
            .filter(|issue| {
                clauses.iter().all(|(field, negated, value)| {
                    let matches = match field.as_str() {
                        "project" => issue.project.eq_ignore_ascii_case(value),
                        "issuetype" => issue.issue_type.eq_ignore_ascii_case(value),
                        "statuscategory" => category_name(&issue.status).eq_ignore_ascii_case(value),
                        _ => issue.labels.iter().any(|l| l == value),
                    };
                    matches != *negated
                })
            })
            .map(|issue| issue_json(ctx.base, ctx.version, issue))
            .collect()
    });
    let total = found.len();
    let page: Vec<Value> = found.into_iter().take(max).collect();
    let body = if cloud_jql {
        json!({"issues": page, "isLast": page.len() == total})
    } else {
        json!({"expand": "schema,names", "startAt": 0, "maxResults": max, "total": total, "issues": page})
    };
    json_response(StatusCode::OK, body)
}

/// The name JQL's `statusCategory` compares with.
fn category_name(status: &str) -> &'static str {
    match category_of(status) {
        "done" => "Done",
        "indeterminate" => "In Progress",
        _ => "To Do",
    }
}

/// `field = value [AND field != value …] [ORDER BY …]` over `project`, `labels`, `issuetype` and
/// `statusCategory`, values as words or JQL strings (`"…"` with `\"` and `\\`); each clause as
/// (field, negated, value). Anything else is an error, as a careless quote would be.
pub fn parse_jql(jql: &str) -> Result<Vec<(String, bool, String)>, String> {
    let mut tokens: Vec<(bool, String)> = Vec::new();
    let mut chars = jql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err("the quoted string is not terminated".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('r') => value.push('\r'),
                        Some(e @ ('"' | '\\' | '\'')) => value.push(e),
                        other => {
                            return Err(format!(
                                "'\\{}' is an illegal JQL escape sequence",
                                other.unwrap_or(' ')
                            ));
                        }
                    },
                    Some(other) => value.push(other),
                }
            }
            tokens.push((true, value));
        } else if c == '=' {
            chars.next();
            tokens.push((false, "=".into()));
        } else if c == '!' {
            chars.next();
            if chars.next() != Some('=') {
                return Err("expecting '=' after '!'".into());
            }
            tokens.push((false, "!=".into()));
        } else if c.is_alphanumeric() || "_-.".contains(c) {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || "_-.".contains(**c)) {
                word.push(c);
                chars.next();
            }
            tokens.push((false, word));
        } else {
            return Err(format!(
                "the character '{c}' is a reserved JQL character; quote the value"
            ));
        }
    }
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (quoted, word) = &tokens[i];
        if !quoted && word.eq_ignore_ascii_case("order") {
            break;
        }
        if !quoted && word.eq_ignore_ascii_case("and") && !clauses.is_empty() {
            i += 1;
            continue;
        }
        let field = word.to_ascii_lowercase();
        if *quoted || !["project", "labels", "issuetype", "statuscategory"].contains(&field.as_str()) {
            return Err(format!("the field '{word}' is not supported by the simulator"));
        }
        match (tokens.get(i + 1), tokens.get(i + 2)) {
            (Some((false, op)), Some((_, value))) if op == "=" || op == "!=" => {
                clauses.push((field, op == "!=", value.clone()))
            }
            _ => return Err(format!("expecting '=' and a value after '{word}'")),
        }
        i += 3;
    }
    Ok(clauses)
}

/// The fields of a created issue other than the ones Herald always sets.
pub fn extra_fields(issue: &SimIssue) -> Map<String, Value> {
    let mut fields = issue.fields.clone();
    for id in ["project", "issuetype", "summary", "description", "labels", "priority"] {
        fields.remove(id);
    }
    fields
}
