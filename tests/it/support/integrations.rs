//! Helpers for integration tests: register an integration pointing at a simulator, read verdicts.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestApp;
use super::jira_sim::{self, Flavour, JiraSim};

pub const STATUS_PATH: &str = "/xray/api/v1/ticketing/integrations/status/check";
pub const UNREACHABLE: &str = "The system is unable to connect to Jira.";

/// The registration body for a simulator of this flavour, with working credentials.
pub fn spec_for(name: &str, sim: &JiraSim, flavour: Flavour) -> Value {
    let auth = match flavour {
        Flavour::Cloud => json!({"type": "basic", "username": jira_sim::USER, "password": jira_sim::API_TOKEN}),
        Flavour::DataCenter | Flavour::Legacy => {
            json!({"type": "basic", "username": jira_sim::USER, "password": jira_sim::PASSWORD})
        }
    };
    json!({"name": name, "url": sim.url, "installation_type": "auto", "auth": auth, "timeout": "5s"})
}

/// Merges `extra` into `spec` (top-level keys).
pub fn with(mut spec: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

impl TestApp {
    /// Registers an integration through Herald's API; returns the response body (with its first check).
    pub async fn register(&self, spec: &Value) -> Value {
        let response = self
            .admin(Method::POST, "/api/v1/integrations")
            .json(spec)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Runs a live check and returns the full report.
    pub async fn check(&self, name: &str) -> Value {
        let response = self
            .admin(Method::POST, &format!("/api/v1/integrations/{name}/check"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The Xray status check: (HTTP status, raw body).
    pub async fn status_check(&self, name: &str) -> (StatusCode, String) {
        let response = self
            .admin(Method::GET, &format!("{STATUS_PATH}?integrationName={}", encode(name)))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

/// Registers `spec` and returns the first check's report.
pub async fn first_check(app: &TestApp, spec: &Value) -> Value {
    app.register(spec).await["check"].clone()
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
