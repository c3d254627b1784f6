//! The ticket side of the Jira simulator: issues kept in memory (labels, status, resolution,
//! comments), create, both searches, transitions through a small workflow, comments, and the faults
//! ticket delivery must survive: 429 with `Retry-After` for the next N requests, a rate limit of R
//! requests a second answered like Jira Cloud (429 with `X-RateLimit-*`), 400 field errors, and a
//! create that succeeds but whose answer never arrives.
//!
//! Shapes follow Jira: the create answer is jira-ruby's captured 201, transitions are go-jira's
//! captured list, error bodies are `{"errorMessages": [...], "errors": {...}}`. Cloud serves API v2
//! and v3 (v3 insists on Atlassian Document Format, v2 on strings) and answers 410 on the removed
//! `/rest/api/{2,3}/search` (CHANGE-2046); Data Center serves v2 only.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::jira_sim::{Flavour, SimConfig};

const CREATED: &str = include_str!("../../fixtures/jira/jira-ruby__issue.post.201.json");
const TRANSITIONS: &str = include_str!("../../fixtures/jira/go-jira__transitions.json");

/// Atlassian's answer on the removed search endpoints.
pub const SEARCH_REMOVED: &str = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. \
     A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046";

/// The workflow: (status, category key, status id).
const STATUSES: [(&str, &str, &str); 3] = [
    ("To Do", "new", "10000"),
    ("In Progress", "indeterminate", "3"),
    ("Done", "done", "10001"),
];
/// (transition id, name, target status); "Reopen" only from Done, the others only to another status.
const WORKFLOW: [(&str, &str, &str); 4] = [
    ("11", "To Do", "To Do"),
    ("21", "In Progress", "In Progress"),
    ("31", "Done", "Done"),
    ("41", "Reopen", "To Do"),
];
pub const RESOLUTIONS: [&str; 4] = ["Done", "Won't Do", "Duplicate", "Cannot Reproduce"];

/// An issue as the simulator keeps it.
#[derive(Debug, Clone)]
pub struct SimIssue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    pub description: Value,
    pub labels: Vec<String>,
    pub priority: Option<String>,
    /// Every field of the create request, as sent.
    pub fields: Map<String, Value>,
    pub status: String,
    pub resolution: Option<String>,
    pub comments: Vec<Value>,
    /// The API version it was created through (2 or 3).
    pub api: u8,
}

/// One request as the simulator saw it arrive.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: Method,
    pub path: String,
}

struct Bucket {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    issues: Vec<SimIssue>,
    seen: Vec<Seen>,
    throttle_next: Option<(usize, u64)>,
    bucket: Option<Bucket>,
    throttled: usize,
    rejected_fields: BTreeMap<String, String>,
    lose_next_creates: usize,
    lose_every: Option<usize>,
    creates: usize,
    lost: usize,
}

/// The simulator's issues, knobs and counters (reach it with `JiraSim::tickets()`).
#[derive(Default)]
pub struct Tickets {
    inner: Mutex<Inner>,
}

impl Tickets {
    // ---- knobs ----

    /// The next `times` REST requests are answered 429 with `Retry-After: retry_after` seconds.
    pub fn throttle_next(&self, times: usize, retry_after: u64) {
        self.inner.lock().unwrap().throttle_next = Some((times, retry_after));
    }

    /// At most `per_second` REST requests a second (a bucket of that many, refilled continuously);
    /// above it, 429 with `Retry-After` and Cloud's `X-RateLimit-*` and `RateLimit-Reason` headers.
    pub fn rate_limit(&self, per_second: f64) {
        self.inner.lock().unwrap().bucket = Some(Bucket {
            per_second,
            tokens: per_second,
            at: Instant::now(),
        });
    }

    /// A create setting `field` is refused with Jira's field error (the message is Jira's own
    /// "not on the appropriate screen" unless given).
    pub fn reject_field(&self, field: &str, message: Option<&str>) {
        let message = message.map_or_else(|| not_on_screen(field), str::to_owned);
        self.inner
            .lock()
            .unwrap()
            .rejected_fields
            .insert(field.to_owned(), message);
    }

    /// Creates are no longer refused for any field.
    pub fn accept_fields(&self) {
        self.inner.lock().unwrap().rejected_fields.clear();
    }

    /// The next `times` creates are applied but their answers never sent: the client times out.
    pub fn lose_create_answers(&self, times: usize) {
        self.inner.lock().unwrap().lose_next_creates = times;
    }

    /// Every `n`th create (the `n`th, `2n`th, …) is applied but its answer never sent.
    pub fn lose_every_nth_create_answer(&self, n: usize) {
        self.inner.lock().unwrap().lose_every = Some(n.max(1));
    }

    /// Sets an issue's status (and resolution) behind Herald's back, as a person in Jira would.
    pub fn set_status(&self, key: &str, status: &str, resolution: Option<&str>) {
        let mut inner = self.inner.lock().unwrap();
        let issue = inner.issues.iter_mut().find(|i| i.key == key).expect("issue exists");
        issue.status = status.to_owned();
        issue.resolution = resolution.map(str::to_owned);
    }

    /// Deletes an issue, as a person in Jira would.
    pub fn delete(&self, key: &str) {
        self.inner.lock().unwrap().issues.retain(|i| i.key != key);
    }

    // ---- counters ----

    pub fn issues(&self) -> Vec<SimIssue> {
        self.inner.lock().unwrap().issues.clone()
    }

    pub fn issue(&self, key: &str) -> Option<SimIssue> {
        self.inner.lock().unwrap().issues.iter().find(|i| i.key == key).cloned()
    }

    /// Issues created carrying `label`.
    pub fn created_with_label(&self, label: &str) -> usize {
        let inner = self.inner.lock().unwrap();
        inner
            .issues
            .iter()
            .filter(|i| i.labels.iter().any(|l| l == label))
            .count()
    }

    /// When each request with this method and path (without context path and query) arrived.
    pub fn arrivals(&self, method: &str, path: &str) -> Vec<Instant> {
        let inner = self.inner.lock().unwrap();
        inner
            .seen
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .map(|s| s.at)
            .collect()
    }

    /// Every request, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// 429s sent, by `throttle_next` and by the rate limit.
    pub fn throttled(&self) -> usize {
        self.inner.lock().unwrap().throttled
    }

    /// Creates applied whose answers were held back.
    pub fn lost_answers(&self) -> usize {
        self.inner.lock().unwrap().lost
    }

    // ---- the server side ----

    /// Called for every request on arrival: records it, and answers 429 when a knob says so.
    pub(super) fn admit(&self, method: &Method, path: &str) -> Option<Response> {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        inner.seen.push(Seen {
            at: now,
            method: method.clone(),
            path: path.to_owned(),
        });
        if !path.starts_with("/rest/") {
            return None;
        }
        if let Some((left, retry_after)) = inner.throttle_next {
            if left > 0 {
                inner.throttle_next = Some((left - 1, retry_after));
                inner.throttled += 1;
                return Some(too_many(retry_after, None));
            }
        }
        if let Some(bucket) = inner.bucket.as_mut() {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * bucket.per_second).min(bucket.per_second);
            bucket.at = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
            } else {
                let wait = (1.0 - bucket.tokens) / bucket.per_second;
                let limit = bucket.per_second.round() as u64;
                inner.throttled += 1;
                return Some(too_many(wait.ceil().max(1.0) as u64, Some(limit)));
            }
        }
        None
    }

    /// Answers the ticket endpoints; `None` for any other path.
    pub(super) async fn route(
        &self,
        config: &SimConfig,
        base: &str,
        method: &Method,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Option<Response> {
        let (version, rest) = if let Some(rest) = path.strip_prefix("/rest/api/3/") {
            (3u8, rest)
        } else {
            (2u8, path.strip_prefix("/rest/api/2/")?)
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let ticket_path = matches!(segments.as_slice(), ["issue", ..] | ["search"] | ["search", "jql"])
            && segments.as_slice() != ["issue", "createmeta"]
            && segments.get(1) != Some(&"createmeta");
        if !ticket_path {
            return None;
        }
        if version == 3 && config.flavour != Flavour::Cloud {
            return Some(super::jira_sim_ticket_routes::not_found_page());
        }
        let request: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return Some(errors(
                        StatusCode::BAD_REQUEST,
                        &[&format!("Unexpected character: {e}")],
                        &[],
                    ));
                }
            }
        };
        let ctx = super::jira_sim_ticket_routes::Ctx {
            config,
            base,
            version,
            method,
            query,
            request: &request,
        };
        Some(super::jira_sim_ticket_routes::answer(self, &ctx, &segments).await)
    }

    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Vec<SimIssue>) -> T) -> T {
        f(&mut self.inner.lock().unwrap().issues)
    }

    /// Counts a create and says whether its answer is to be held back.
    pub(super) fn lose_this_answer(&self) -> bool {
        let mut inner = self.inner.lock().unwrap();
        inner.creates += 1;
        let lose = if inner.lose_next_creates > 0 {
            inner.lose_next_creates -= 1;
            true
        } else {
            inner.lose_every.is_some_and(|n| inner.creates % n == 0)
        };
        if lose {
            inner.lost += 1;
        }
        lose
    }

    pub(super) fn rejected_fields(&self) -> BTreeMap<String, String> {
        self.inner.lock().unwrap().rejected_fields.clone()
    }
}

pub fn not_on_screen(field: &str) -> String {
    format!("Field '{field}' cannot be set. It is not on the appropriate screen, or unknown.")
}

fn too_many(retry_after: u64, limit: Option<u64>) -> Response {
    let mut r = errors(StatusCode::TOO_MANY_REQUESTS, &["Rate limit exceeded."], &[]);
    let headers = r.headers_mut();
    headers.insert("retry-after", HeaderValue::from(retry_after));
    if let Some(limit) = limit {
        let reset = time::OffsetDateTime::now_utc() + Duration::from_secs(retry_after);
        let reset = reset
            .replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
        headers.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
        headers.insert("ratelimit-reason", HeaderValue::from_static("jira-burst-based"));
    }
    r
}

/// Jira's error collection.
pub fn errors(status: StatusCode, messages: &[&str], fields: &[(&str, &str)]) -> Response {
    let fields: Map<String, Value> = fields.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    (
        status,
        [("content-type", "application/json;charset=UTF-8")],
        json!({"errorMessages": messages, "errors": fields}).to_string(),
    )
        .into_response()
}

pub fn created_body(base: &str, version: u8, id: &str, key: &str) -> Value {
    let mut body: Value = serde_json::from_str(CREATED).unwrap();
    body["id"] = json!(id);
    body["key"] = json!(key);
    body["self"] = json!(format!("{base}/rest/api/{version}/issue/{id}"));
    body
}

pub fn status_json(base: &str, status: &str) -> Value {
    let (name, category, id) = STATUSES
        .iter()
        .find(|(n, ..)| *n == status)
        .copied()
        .unwrap_or(STATUSES[0]);
    let (category_id, category_name, colour) = match category {
        "new" => (2, "To Do", "blue-gray"),
        "indeterminate" => (4, "In Progress", "yellow"),
        _ => (3, "Done", "green"),
    };
    json!({
        "self": format!("{base}/rest/api/2/status/{id}"),
        "description": "", "iconUrl": format!("{base}/images/icons/statuses/generic.png"),
        "name": name, "id": id,
        "statusCategory": {
            "self": format!("{base}/rest/api/2/statuscategory/{category_id}"),
            "id": category_id, "key": category, "colorName": colour, "name": category_name,
        },
    })
}

pub fn category_of(status: &str) -> &'static str {
    STATUSES
        .iter()
        .find(|(n, ..)| *n == status)
        .map_or("new", |(_, c, _)| c)
}

/// The transitions an issue in `status` offers, in go-jira's captured shape.
pub fn transitions_json(base: &str, status: &str) -> Value {
    let template = serde_json::from_str::<Value>(TRANSITIONS).unwrap()["transitions"][0].clone();
    let done = category_of(status) == "done";
    let list: Vec<Value> = available(status)
        .into_iter()
        .map(|(id, name, to)| {
            let mut t = template.clone();
            t.as_object_mut().unwrap().remove("fields");
            t["id"] = json!(id);
            t["name"] = json!(name);
            t["to"] = status_json(base, to);
            t["hasScreen"] = json!(to == "Done" && !done);
            t
        })
        .collect();
    json!({"expand": "transitions", "transitions": list})
}

/// (id, name, target) of the transitions available from `status`.
pub fn available(status: &str) -> Vec<(&'static str, &'static str, &'static str)> {
    let done = category_of(status) == "done";
    WORKFLOW
        .iter()
        .copied()
        .filter(|(_, name, to)| {
            if done {
                *name == "Reopen"
            } else {
                *name != "Reopen" && *to != status
            }
        })
        .collect()
}
