//! Authentication and roles, driven through the HTTP API, against both backends.

use crate::support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use support::{ADMIN_PASSWORD, Backend, problem, spawn_app, spawn_app_with};

backend_tests!(
    missing_credentials_get_401_with_a_challenge_per_scheme,
    wrong_password_unknown_user_and_empty_password_get_401,
    malformed_authorization_headers_get_a_precise_400,
    unknown_schemes_get_401,
    non_utf8_authorization_bytes_get_400,
    password_token_as_password_and_bearer_all_authenticate,
    a_token_in_basic_must_match_its_user,
    monitor_reads_monitoring_endpoints_but_gets_403_on_admin_ones,
    revoked_tokens_and_deleted_users_are_refused_at_once,
    a_changed_password_replaces_the_old_one_at_once,
    expired_tokens_are_refused,
    repeated_failures_are_throttled_with_retry_after,
    throttling_one_user_leaves_others_alone,
    polling_with_basic_pays_for_one_password_check,
    token_use_is_recorded,
    concurrent_wrong_passwords_are_checked_at_most_the_limit_times,
    a_burst_of_concurrent_requests_with_the_right_password_is_all_served,
    after_a_burst_a_cached_password_and_tokens_still_get_in,
    bad_bearer_tokens_lock_no_one_out,
    x_forwarded_for_from_a_trusted_proxy_names_the_client,
    a_spoofed_x_forwarded_for_from_an_untrusted_peer_is_ignored,
    passwords_with_control_characters_are_refused_naming_the_field,
    nfkc_equivalent_passwords_both_sign_in,
);

/// The status of `GET /metrics` with Basic credentials.
async fn metrics_as(app: &support::TestApp, user: &str, password: Option<&str>) -> StatusCode {
    app.get("/metrics")
        .basic_auth(user, password)
        .send()
        .await
        .unwrap()
        .status()
}

/// The status of `GET /metrics` with a Bearer token.
async fn metrics_as_bearer(app: &support::TestApp, token: &str) -> StatusCode {
    app.get("/metrics").bearer_auth(token).send().await.unwrap().status()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn missing_credentials_get_401_with_a_challenge_per_scheme(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.get("/api/v1/users").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        ["Basic realm=\"herald\", charset=\"UTF-8\"", "Bearer realm=\"herald\""]
    );
    let body = problem(response).await;
    assert_eq!(body["status"], 401);
    assert_eq!(body["type"], "urn:herald:problem:unauthorized");
    assert!(body["detail"].as_str().unwrap().contains("Basic or Bearer"));
}

async fn wrong_password_unknown_user_and_empty_password_get_401(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for header in [
        basic("admin", "wrong-password"),
        basic("nobody", ADMIN_PASSWORD),
        basic("admin", ""),
    ] {
        let response = app
            .get("/api/v1/users")
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert!(response.headers().contains_key("www-authenticate"));
        let body = problem(response).await;
        assert_eq!(body["detail"], "the user name, password or token is not valid");
    }
}

async fn malformed_authorization_headers_get_a_precise_400(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let cases = [
        ("Basic ***", "base64"),
        (&*format!("Basic {}", STANDARD.encode("no-colon")), "`user:password`"),
        (&*format!("Basic {}", STANDARD.encode([b'a', b':', 0xff])), "UTF-8"),
        ("Bearer", "exactly one token"),
        ("Bearer two tokens", "exactly one token"),
    ];
    for (header, expected) in cases {
        let response = app
            .get("/api/v1/users")
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{header}");
        let body = problem(response).await;
        assert_eq!(body["code"], "invalid_authorization");
        assert!(body["detail"].as_str().unwrap().contains(expected), "{header}: {body}");
    }
}

async fn unknown_schemes_get_401(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for header in ["Digest username=\"admin\"", "Negotiate abc", "admin:password"] {
        let response = app
            .get("/api/v1/users")
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        let body = problem(response).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("unsupported authorization scheme"),
            "{body}"
        );
    }
}

async fn non_utf8_authorization_bytes_get_400(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let value = reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe\xfd").unwrap();
    let response = app
        .get("/api/v1/users")
        .header("authorization", value)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap().contains("ASCII"), "{body}");
}

async fn password_token_as_password_and_bearer_all_authenticate(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (token_id, token) = app.create_token("admin").await;
    let whoami = |header: String| {
        let request = app.get("/api/v1/whoami").header("authorization", header);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let by_password = whoami(basic("admin", ADMIN_PASSWORD)).await;
    assert_eq!(by_password["authenticated_by"], "password");
    assert_eq!(by_password["role"], "admin");
    let by_basic_token = whoami(basic("admin", &token)).await;
    assert_eq!(by_basic_token["authenticated_by"], "token");
    assert_eq!(by_basic_token["token_id"], token_id.as_str());
    let by_bearer = whoami(format!("Bearer {token}")).await;
    assert_eq!(by_bearer["username"], "admin");
    assert_eq!(by_bearer["token_id"], token_id.as_str());
    // The scheme name is case-insensitive.
    assert_eq!(whoami(format!("bearer {token}")).await["username"], "admin");
}

async fn a_token_in_basic_must_match_its_user(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("mon", "monitor").await;
    let (_, token) = app.create_token("mon").await;
    let response = app
        .get("/api/v1/whoami")
        .header("authorization", basic("admin", &token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .get("/api/v1/whoami")
        .header("authorization", basic("mon", &token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let forged = format!("{}x", &token[..token.len() - 1]);
    let response = app.get("/api/v1/whoami").bearer_auth(forged).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn monitor_reads_monitoring_endpoints_but_gets_403_on_admin_ones(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("mon", "monitor").await;
    let metrics = app
        .get("/metrics")
        .basic_auth("mon", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(metrics.text().await.unwrap().contains("herald_http_requests_total"));
    for (method, path) in [
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/tokens"),
        (Method::DELETE, "/api/v1/users/admin"),
    ] {
        let response = app
            .client
            .request(method, app.url(path))
            .basic_auth("mon", Some(&password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body = problem(response).await;
        assert_eq!(body["detail"], "`mon` has the monitor role; this needs the admin role");
    }
    let anonymous = app.get("/metrics").send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn revoked_tokens_and_deleted_users_are_refused_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("mon", "monitor").await;
    let (token_id, token) = app.create_token("mon").await;
    let (_, second_token) = app.create_token("mon").await;
    // Warm the credential cache first, so the test proves revocation beats the cache.
    assert_eq!(metrics_as_bearer(&app, &token).await, StatusCode::OK);
    let revoked = app
        .admin(Method::DELETE, &format!("/api/v1/tokens/{token_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(metrics_as_bearer(&app, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(metrics_as_bearer(&app, &second_token).await, StatusCode::OK);
    assert_eq!(metrics_as(&app, "mon", Some(&password)).await, StatusCode::OK);
    let deleted = app.admin(Method::DELETE, "/api/v1/users/mon").send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(metrics_as_bearer(&app, &second_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(metrics_as(&app, "mon", Some(&password)).await, StatusCode::UNAUTHORIZED);
}

async fn a_changed_password_replaces_the_old_one_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let old = app.create_user("mon", "monitor").await;
    assert_eq!(metrics_as(&app, "mon", Some(&old)).await, StatusCode::OK);
    let changed = app
        .admin(Method::PUT, "/api/v1/users/mon/password")
        .json(&serde_json::json!({"password": "a-brand-new-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(metrics_as(&app, "mon", Some(&old)).await, StatusCode::UNAUTHORIZED);
    let new = app
        .get("/metrics")
        .basic_auth("mon", Some("a-brand-new-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), StatusCode::OK);
}

async fn expired_tokens_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let secret = herald::secret::Secret::new("hrld_expired-token-for-the-test-000000000000000");
    let admin = herald::auth::Username::try_from("admin").unwrap();
    let now = herald::store::now_ms();
    app.state
        .store
        .insert_token(&herald::store::NewToken {
            id: "expired0",
            username: &admin,
            name: "old",
            token_hash: &herald::auth::token::hash(&secret),
            now: now - 120_000,
            expires_at: Some(now - 60_000),
        })
        .await
        .unwrap()
        .unwrap();
    let response = app
        .get("/api/v1/whoami")
        .bearer_auth(secret.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn repeated_failures_are_throttled_with_retry_after(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.auth.max_failures = 3;
        s.auth.lockout = Duration::from_secs(120);
    })
    .await
    else {
        return;
    };
    for attempt in 0..3 {
        let response = app
            .get("/api/v1/users")
            .basic_auth("admin", Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Throttled now, even with the right password: no password is checked while throttled.
    let response = app
        .get("/api/v1/users")
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry_after), "{retry_after}");
    let body = problem(response).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("too many failed sign-in attempts")
    );
}

async fn throttling_one_user_leaves_others_alone(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.auth.max_failures = 2).await else {
        return;
    };
    let password = app.create_user("mon", "monitor").await;
    for _ in 0..2 {
        app.get("/metrics")
            .basic_auth("admin", Some("guess"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        metrics_as(&app, "admin", Some("guess")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(metrics_as(&app, "mon", Some(&password)).await, StatusCode::OK);
}

/// Reads one sample of the metrics text, e.g. `herald_auth_successes_total{reason="checked"}`.
async fn metric(app: &support::TestApp, series: &str) -> f64 {
    let text = app.admin_text("/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

async fn polling_with_basic_pays_for_one_password_check(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("poller", "monitor").await;
    for _ in 0..20 {
        let response = app
            .get("/metrics")
            .basic_auth("poller", Some(&password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The admin's own metric reads add cache hits but only one check for the admin.
    let checked = metric(&app, "herald_auth_successes_total{reason=\"checked\"}").await;
    let cached = metric(&app, "herald_auth_successes_total{reason=\"cache\"}").await;
    assert!(checked <= 3.0, "checked {checked}");
    assert!(cached >= 19.0, "cached {cached}");
}

async fn token_use_is_recorded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (id, token) = app.create_token("admin").await;
    let tokens: serde_json::Value = app.admin_json("/api/v1/tokens").await;
    assert_eq!(tokens[0]["last_used_at"], serde_json::Value::Null);
    assert_eq!(
        app.get("/api/v1/whoami")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let tokens: serde_json::Value = app.admin_json("/api/v1/tokens").await;
    assert_eq!(tokens[0]["id"], id.as_str());
    assert!(tokens[0]["last_used_at"].as_str().unwrap().ends_with('Z'));
    assert!(tokens[0].get("token").is_none(), "the secret is never listed");
}

/// Sends `count` wrong passwords for `user` at once; returns how many got 401 and how many 429.
async fn burst_of_wrong_passwords(app: &support::TestApp, user: &str, count: usize) -> (usize, usize) {
    let attempts = (0..count).map(|i| {
        app.get("/metrics")
            .basic_auth(user, Some(format!("wrong-guess-{i}")))
            .send()
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(unauthorized + throttled, count, "{statuses:?}");
    (unauthorized, throttled)
}

async fn concurrent_wrong_passwords_are_checked_at_most_the_limit_times(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("target", "monitor").await;
    let (unauthorized, throttled) = burst_of_wrong_passwords(&app, "target", 60).await;
    assert!(
        (1..=10).contains(&unauthorized),
        "{unauthorized} guesses were checked; the limit is 10"
    );
    assert_eq!(throttled, 60 - unauthorized);
}

async fn a_burst_of_concurrent_requests_with_the_right_password_is_all_served(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.auth.max_failures = 3).await else {
        return;
    };
    let password = app.create_user("eager", "monitor").await;
    let requests = (0..60).map(|_| metrics_as(&app, "eager", Some(&password)));
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "checks in flight make the others wait, not fail: {statuses:?}"
    );
    // Waiting was not counted as failing: a wrong password is still only a first failure.
    assert_eq!(
        metrics_as(&app, "eager", Some("wrong-password")).await,
        StatusCode::UNAUTHORIZED
    );
}

async fn after_a_burst_a_cached_password_and_tokens_still_get_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("poller", "monitor").await;
    let other = app.create_user("other", "monitor").await;
    let (_, token) = app.create_token("poller").await;
    // The poller is in the credential cache, as a client polling every few seconds is.
    assert_eq!(metrics_as(&app, "poller", Some(&password)).await, StatusCode::OK);
    let (_, throttled) = burst_of_wrong_passwords(&app, "poller", 60).await;
    assert!(throttled >= 50, "the burst was throttled");
    assert_eq!(metrics_as(&app, "poller", Some(&password)).await, StatusCode::OK);
    assert_eq!(metrics_as_bearer(&app, &token).await, StatusCode::OK);
    assert_eq!(metrics_as(&app, "poller", Some(&token)).await, StatusCode::OK);
    // Another user at the same address is not locked out (a hundred failures would be needed).
    assert_eq!(metrics_as(&app, "other", Some(&other)).await, StatusCode::OK);
}

async fn bad_bearer_tokens_lock_no_one_out(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.auth.max_failures = 2).await else {
        return;
    };
    let (_, token) = app.create_token("admin").await;
    for i in 0..30 {
        let bad = format!("hrld_{i:0>43}");
        assert_eq!(
            metrics_as_bearer(&app, &bad).await,
            StatusCode::UNAUTHORIZED,
            "attempt {i}"
        );
    }
    assert_eq!(metrics_as_bearer(&app, &token).await, StatusCode::OK);
    assert_eq!(metrics_as(&app, "admin", Some(ADMIN_PASSWORD)).await, StatusCode::OK);
}

/// The status of `GET /metrics` with Basic credentials, through a proxy that says the client is `client`.
async fn metrics_via(app: &support::TestApp, client: &str, user: &str, password: &str) -> StatusCode {
    app.get("/metrics")
        .basic_auth(user, Some(password))
        .header("x-forwarded-for", format!("192.0.2.250, {client}"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn x_forwarded_for_from_a_trusted_proxy_names_the_client(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.auth.max_failures = 2;
        // The tests connect from 127.0.0.1, which plays the reverse proxy here.
        s.http.trusted_proxies = herald::client_addr::TrustedProxies::parse("127.0.0.0/8").unwrap();
    })
    .await
    else {
        return;
    };
    let attacker = "203.0.113.9";
    for _ in 0..2 {
        assert_eq!(
            metrics_via(&app, attacker, "admin", "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        metrics_via(&app, attacker, "admin", ADMIN_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy, and the proxy itself, are not locked out.
    assert_eq!(
        metrics_via(&app, "198.51.100.7", "admin", ADMIN_PASSWORD).await,
        StatusCode::OK
    );
    let forwarded = app
        .get("/metrics")
        .basic_auth("admin", Some("guess"))
        .header("forwarded", "for=\"[2001:db8::9]:4711\"")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        metrics_via(&app, "2001:db8::9", "admin", "guess").await,
        StatusCode::UNAUTHORIZED,
        "Forwarded and X-Forwarded-For name the same client"
    );
    assert_eq!(
        metrics_via(&app, "2001:db8::9", "admin", "guess").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn a_spoofed_x_forwarded_for_from_an_untrusted_peer_is_ignored(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.auth.max_failures = 2).await else {
        return;
    };
    // Without trusted proxies, each guess naming a new address is still counted for the peer.
    for spoofed in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(
            metrics_via(&app, spoofed, "admin", "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        metrics_via(&app, "198.51.100.3", "admin", "guess").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn passwords_with_control_characters_are_refused_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for (password, code_point) in [("syn\u{16}chronous-idle", "U+0016"), ("tab\tseparated", "U+0009")] {
        let response = app
            .admin(Method::POST, "/api/v1/users")
            .json(&serde_json::json!({"username": "ctl", "password": password, "role": "monitor"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = problem(response).await;
        assert_eq!(body["field"], "password");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("the password must not contain control characters") && detail.contains(code_point),
            "{detail}"
        );
    }
    let response = app
        .admin(Method::PUT, "/api/v1/users/admin/password")
        .json(&serde_json::json!({"password": "new\u{16}password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(response).await["field"], "password");
    // Spaces and any printable Unicode are fine.
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .json(&serde_json::json!({"username": "ctl", "password": "ein schönes Passwort ✓", "role": "monitor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        metrics_as(&app, "ctl", Some("ein schönes Passwort ✓")).await,
        StatusCode::OK
    );
}

async fn nfkc_equivalent_passwords_both_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    // "é" precomposed (U+00E9) when set, "e" + combining acute (U+0301) when typed elsewhere.
    let precomposed = "caf\u{e9} au lait";
    let decomposed = "cafe\u{301} au lait";
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .json(&serde_json::json!({"username": "barista", "password": precomposed, "role": "monitor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(metrics_as(&app, "barista", Some(decomposed)).await, StatusCode::OK);
    assert_eq!(metrics_as(&app, "barista", Some(precomposed)).await, StatusCode::OK);
    assert_eq!(
        metrics_as(&app, "barista", Some("cafe au lait")).await,
        StatusCode::UNAUTHORIZED
    );
}
