//! Health, metrics, the OpenAPI document, problem details, limits and request ids.

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Backend, problem, spawn_app, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

backend_tests!(
    livez_answers_without_credentials,
    readyz_checks_the_database,
    metrics_need_credentials_and_report_requests,
    made_up_methods_share_one_metrics_label,
    metrics_are_prometheus_text_unless_openmetrics_is_asked_for,
    openapi_describes_every_endpoint,
    openapi_needs_credentials,
    openapi_is_a_valid_description_of_what_is_sent,
    openapi_states_the_request_rules_the_server_applies,
    paging_parameters_are_validated_alike_everywhere,
    unknown_paths_and_methods_get_problem_details,
    oversized_bodies_get_413,
    oversized_headers_are_refused,
    slow_headers_are_cut_off,
    silent_connections_are_closed,
    idle_kept_alive_connections_are_closed,
    connections_beyond_the_limit_wait_for_a_free_slot,
    request_ids_are_returned_and_propagated,
    cross_site_browser_requests_are_refused,
    json_bodies_must_be_declared_json,
    graceful_shutdown_finishes_and_stops,
);

async fn livez_answers_without_credentials(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.get("/livez").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"ok"}"#);
}

async fn readyz_checks_the_database(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"ready","database":"ok"}"#);
}

async fn metrics_need_credentials_and_report_requests(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    assert_eq!(
        app.get("/metrics").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    app.get("/livez").send().await.unwrap();
    let text = app.admin_text("/metrics").await;
    assert!(
        text.contains(r#"herald_http_requests_total{method="GET",route="/livez",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"herald_http_requests_total{method="GET",route="/metrics",status="401"} 1"#),
        "{text}"
    );
    assert!(text.contains("herald_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"herald_build_info{version=""#), "{text}");
}

async fn metrics_are_prometheus_text_unless_openmetrics_is_asked_for(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.get("/livez").send().await.unwrap();
    let scrape = |accept: Option<&str>| {
        let request = app.admin(Method::GET, "/metrics");
        let request = match accept {
            Some(accept) => request.header("accept", accept),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            (content_type, response.text().await.unwrap())
        }
    };
    for accept in [None, Some("*/*"), Some("text/plain"), Some("text/plain;version=0.0.4")] {
        let (content_type, text) = scrape(accept).await;
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8", "{accept:?}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        assert!(text.contains("# TYPE herald_build_info gauge\n"), "{text}");
        assert!(text.contains("# TYPE herald_http_requests_total counter\n"), "{text}");
    }
    // What Prometheus 2.x sends.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, text) = scrape(Some(prometheus)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.contains("# TYPE herald_build info\n"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

async fn made_up_methods_share_one_metrics_label(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for i in 0..25 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let response = app.client.request(method, app.url("/livez")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = app.admin_text("/metrics").await;
    assert!(!text.contains("MADEUP"), "{text}");
    assert!(
        text.contains(r#"herald_http_requests_total{method="other",route="/livez",status="405"} 25"#),
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("herald_http_request_duration_seconds_count"))
        .count();
    assert!(
        series <= 3,
        "one duration series per (method, route) seen: {series}\n{text}"
    );
}

async fn openapi_describes_every_endpoint(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let doc = app.admin_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/livez", &["get"][..]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/api/v1/whoami", &["get"]),
        ("/api/v1/users", &["get", "post"]),
        ("/api/v1/users/{username}", &["get", "delete"]),
        ("/api/v1/users/{username}/password", &["put"]),
        ("/api/v1/tokens", &["get", "post"]),
        ("/api/v1/tokens/{id}", &["delete"]),
    ] {
        for method in methods {
            assert!(paths[path].get(*method).is_some(), "{method} {path} is not documented");
        }
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("basic") && schemes.contains_key("bearer"));
    // The served document is the one the code generates.
    assert_eq!(doc, herald::http::openapi_document());
}

async fn openapi_needs_credentials(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.get("/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(problem(response).await["code"], "unauthorized");
    let monitor = app.create_user("watcher", "monitor").await;
    let response = app
        .get("/openapi.json")
        .basic_auth("watcher", Some(monitor))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// The rules openapi-spec-validator and schemathesis found broken, checked on every build (the
/// whole validation runs in scripts/probes.sh).
async fn openapi_is_a_valid_description_of_what_is_sent(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let doc = app.admin_json("/openapi.json").await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{method} {path}");
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    parameter["in"] == "path",
                    in_path,
                    "{at}: parameter {name} is in {}",
                    parameter["in"]
                );
            }
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                let description = response["description"].as_str().unwrap_or("");
                assert!(!description.is_empty(), "{at} {status} has no description");
                if let Some(content) = response["content"].as_object() {
                    for (media_type, body) in content {
                        if body["schema"]["$ref"] == "#/components/schemas/Problem" {
                            assert_eq!(media_type, "application/problem+json", "{at} {status}");
                        }
                    }
                }
            }
            if secured {
                for status in ["401", "429"] {
                    assert!(
                        responses[status]["content"].get("application/problem+json").is_some(),
                        "{at} does not document {status}"
                    );
                }
            }
            if operation["requestBody"]["content"].get("application/json").is_some() {
                assert!(responses.contains_key("415"), "{at} does not document 415");
            }
        }
    }
    assert!(operations >= 40, "{operations}");
    // A request can carry the secrets the server requires.
    let auth = &doc["components"]["schemas"]["IntegrationSpec"]["properties"]["auth"]["oneOf"];
    assert_eq!(auth[0]["properties"]["password"]["writeOnly"], true, "{auth}");
    assert_eq!(auth[1]["properties"]["token"]["writeOnly"], true, "{auth}");
    assert_eq!(
        doc["components"]["schemas"]["NewUser"]["properties"]["password"]["minLength"],
        8
    );
    // An error is sent as documented.
    let response = app.get("/api/v1/users").send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

/// What schemathesis found the document leaving unsaid (scripts/probes.sh): each rule is stated, and
/// the server applies it as stated.
async fn openapi_states_the_request_rules_the_server_applies(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let doc = app.admin_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    let send = |method: Method, path: &str, body: serde_json::Value| {
        app.admin(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    // Credentials are closed objects: an unknown field is refused, as documented.
    for variant in schemas["IntegrationSpec"]["properties"]["auth"]["oneOf"]
        .as_array()
        .unwrap()
    {
        assert_eq!(variant["additionalProperties"], false, "{variant}");
    }
    let auth = json!({"type": "basic", "username": "svc", "password": "pw"});
    let mut unknown = auth.clone();
    unknown["colour"] = json!("red");
    let body = json!({"name": "probe", "url": "http://127.0.0.1:1", "auth": unknown});
    let response = send(Method::POST, "/api/v1/integrations", body).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // An update's body has no `name` (the path gives it) and nothing else unknown; it is accepted.
    let update = &schemas["IntegrationUpdate"]["allOf"][0];
    assert!(update["properties"].get("name").is_none(), "{update}");
    assert!(update["properties"].get("url").is_some(), "{update}");
    assert_eq!(update["additionalProperties"], false);
    let body = json!({"name": "probe", "url": "http://127.0.0.1:1", "auth": auth});
    let response = send(Method::POST, "/api/v1/integrations", body).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json!({"url": "http://127.0.0.1:2", "auth": auth});
    let response = send(Method::PUT, "/api/v1/integrations/probe", body).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // `issue_type` and `fields` need a project key: stated, and refused without one.
    let rules = schemas["IntegrationUpdate"]["allOf"].to_string();
    assert!(
        rules.contains("\"maxProperties\":0") && rules.contains("\"project_key\""),
        "{rules}"
    );
    let body = json!({"url": "http://127.0.0.1:2", "auth": auth, "issue_type": "Bug"});
    let response = send(Method::PUT, "/api/v1/integrations/probe", body).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The merge patch is documented as what it is, its fields all optional.
    let patch = &doc["paths"]["/api/v1/integrations/{name}"]["patch"]["requestBody"]["content"];
    assert_eq!(
        patch["application/merge-patch+json"]["schema"]["$ref"],
        "#/components/schemas/IntegrationPatch"
    );
    let patch = &schemas["IntegrationPatch"];
    assert!(patch["required"].as_array().is_none_or(Vec::is_empty), "{patch}");
    assert_eq!(patch["properties"]["timeout"]["type"], json!(["string", "null"]));
    assert!(patch["properties"].get("name").is_none());

    // Mail header names: the server's rule, reserved names excluded in any case.
    let headers = &schemas["MailSubmission"]["properties"]["headers"];
    assert_eq!(headers["maxProperties"], 50);
    let names = headers["propertyNames"]["pattern"].as_str().unwrap();
    assert!(
        names.contains("[Ss][Uu][Bb][Jj][Ee][Cc][Tt]") && names.ends_with("[!-9;-~]{1,76}$"),
        "{names}"
    );
    for (name, status) in [
        ("X-Ticket", StatusCode::ACCEPTED),
        ("sUbJeCt", StatusCode::BAD_REQUEST),
        ("", StatusCode::BAD_REQUEST),
    ] {
        let body = json!({"to": ["ops@example.com"], "subject": "s", "text": "t", "headers": {name: "v"}});
        let response = send(Method::POST, "/api/v1/mail", body).await.unwrap();
        assert_eq!(response.status(), status, "header {name:?}");
    }

    // Passwords: control characters and a token's prefix are stated as refused.
    let password = &schemas["NewUser"]["properties"]["password"]["pattern"];
    assert_eq!(password, "^(?!hrld_)[^\\x00-\\x1f\\x7f-\\x9f]*$");

    // The Xray endpoints: a create needs a name and, for Basic, a user; an update's body has no name;
    // their 415 is Xray's error body, as documented.
    let create = schemas["XrayNewJiraIntegration"].to_string();
    assert!(create.contains("\"required\":[\"connection_name\"]"), "{create}");
    assert!(create.contains("\"required\":[\"username\",\"password\"]"), "{create}");
    let update = &schemas["XrayJiraIntegrationUpdate"]["allOf"][0];
    assert!(update["properties"].get("connection_name").is_none(), "{update}");
    for (method, path) in [
        ("post", "/xray/api/v1/ticketing/jira-integrations"),
        ("put", "/xray/api/v1/ticketing/jira-integrations/{connection_name}"),
    ] {
        let documented = &doc["paths"][path][method]["responses"]["415"]["content"]["application/json"];
        assert_eq!(
            documented["schema"]["$ref"], "#/components/schemas/XrayError",
            "{method} {path}"
        );
    }
    let response = app
        .admin(Method::POST, "/xray/api/v1/ticketing/jira-integrations")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(response.headers()["content-type"], "application/json");
}

async fn paging_parameters_are_validated_alike_everywhere(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for (path, max) in [
        ("/api/v1/mail/queue", 1000),
        ("/api/v1/mail/errors", 1000),
        ("/api/v1/integrations/none/history", 50),
    ] {
        for limit in [
            "-1".to_owned(),
            "0".to_owned(),
            (max + 1).to_string(),
            "100000".to_owned(),
        ] {
            let response = app
                .admin(Method::GET, &format!("{path}?limit={limit}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}?limit={limit}");
            let body = problem(response).await;
            assert_eq!(
                (body["code"].as_str(), body["field"].as_str()),
                (Some("invalid_query"), Some("limit"))
            );
            assert!(
                body["detail"].as_str().unwrap().contains(&format!("from 1 to {max}")),
                "{body}"
            );
        }
    }
    for path in ["/api/v1/mail/queue", "/api/v1/mail/errors"] {
        let response = app
            .admin(Method::GET, &format!("{path}?after=zzz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body = problem(response).await;
        assert_eq!(
            (body["code"].as_str(), body["field"].as_str()),
            (Some("invalid_query"), Some("after"))
        );
    }
    let doc = app.admin_json("/openapi.json").await;
    let limit = &doc["paths"]["/api/v1/mail/queue"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"];
    assert_eq!(
        (limit["minimum"].as_i64(), limit["maximum"].as_i64()),
        (Some(1), Some(1000))
    );
}

async fn unknown_paths_and_methods_get_problem_details(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.get("/nope").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem(response).await["detail"], "no resource at `/nope`");
    let response = app.delete("/livez").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem(response).await["detail"], "`DELETE` is not allowed on `/livez`");
}

async fn oversized_bodies_get_413(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.http.body_limit = 4096).await else {
        return;
    };
    let huge = format!(
        r#"{{"username":"u","password":"{}","role":"monitor"}}"#,
        "x".repeat(10_000)
    );
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap().contains("HERALD_BODY_LIMIT"), "{body}");
}

async fn oversized_headers_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.get("/livez").header("x-filler", "a".repeat(1 << 20)).send().await;
    // hyper answers 431 Request Header Fields Too Large before any handler runs; some clients
    // see the connection closed instead. Either way nothing is served and the server lives on.
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let long_auth = format!("Basic {}", "A".repeat(200_000));
    if let Ok(response) = app.get("/api/v1/users").header("authorization", long_auth).send().await {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    assert_eq!(app.get("/livez").send().await.unwrap().status(), StatusCode::OK);
}

/// Reads from `stream` into `answer` until the server closes it (or resets it), or `deadline` passes.
async fn closed_by_server(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    answer: &mut Vec<u8>,
    deadline: Duration,
) -> bool {
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

async fn slow_headers_are_cut_off(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.http.header_timeout = Duration::from_secs(1)).await else {
        return;
    };
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // A slowloris client: the start of a request, then a header byte now and then, never the end.
    writer
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    assert!(
        closed_by_server(&mut reader, &mut answer, Duration::from_secs(60)).await,
        "a connection that never finishes its headers is closed"
    );
    trickle.abort();
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "nothing was served"
    );
    assert_eq!(app.get("/livez").send().await.unwrap().status(), StatusCode::OK);
}

async fn silent_connections_are_closed(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.http.header_timeout = Duration::from_secs(1)).await else {
        return;
    };
    // A client that connects and sends nothing at all holds no connection slot for long.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    assert!(
        closed_by_server(&mut stream, &mut Vec::new(), Duration::from_secs(60)).await,
        "a connection that never sends a byte is closed after the header timeout"
    );
}

async fn idle_kept_alive_connections_are_closed(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.http.header_timeout = Duration::from_secs(1)).await else {
        return;
    };
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(&mut stream, &mut Vec::new(), Duration::from_secs(60)).await,
        "an idle kept-alive connection is closed after the header timeout"
    );
}

async fn connections_beyond_the_limit_wait_for_a_free_slot(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.http.max_connections = 2;
        s.http.header_timeout = Duration::from_secs(600);
    })
    .await
    else {
        return;
    };
    // Two connections that say nothing take both slots.
    let first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut third = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    third
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf))
            .await
            .is_err(),
        "the third connection is not served while the two slots are held"
    );
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(60), third.read(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

async fn cross_site_browser_requests_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    // A foreign page posting with the browser's cached Basic credentials: no body needed to act.
    for path in [
        "/api/v1/mail/flush",
        "/api/v1/alerts/test",
        "/api/v1/mail/errors/resend",
    ] {
        let response = app
            .admin(Method::POST, path)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "no-cors")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(problem(response).await["code"], "cross_site_request", "{path}");
    }
    // An older browser sends only Origin.
    let response = app
        .admin(Method::POST, "/api/v1/mail/flush")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Herald's own pages, and clients that are not browsers, are served.
    let host = app.addr.to_string();
    for request in [
        app.admin(Method::POST, "/api/v1/mail/flush")
            .header("sec-fetch-site", "same-origin"),
        app.admin(Method::POST, "/api/v1/mail/flush")
            .header("origin", format!("http://{host}")),
        app.admin(Method::POST, "/api/v1/mail/flush"),
    ] {
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    // A cross-site link opened in the browser may show a read-only answer.
    let response = app
        .admin(Method::GET, "/api/v1/whoami")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn json_bodies_must_be_declared_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let body = r#"{"connection_name":"x","url":"http://127.0.0.1:1","username":"u","password":"p"}"#;
    let response = app
        .admin(Method::POST, "/xray/api/v1/ticketing/jira-integrations")
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = response.text().await.unwrap();
    assert!(text.contains("Content-Type: application/json"), "{text}");
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .header("content-type", "text/plain")
        .body(r#"{"username":"u","password":"long-enough-password","role":"monitor"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(problem(response).await["code"], "unsupported_media_type");
}

async fn request_ids_are_returned_and_propagated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.get("/livez").send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "{generated}");
    let response = app
        .get("/livez")
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

async fn graceful_shutdown_finishes_and_stops(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let url = app.url("/livez");
    let client = app.client.clone();
    assert_eq!(client.get(&url).send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
    assert!(
        client.get(&url).send().await.is_err(),
        "the listener is closed after shutdown"
    );
}
