//! The console's security over plain HTTP, on both backends: sessions, cookies, CSRF, cross-site
//! posts, session fixation, roles, session ends, headers and error pages.

mod support;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::console::{ConsoleClient, csrf_of, set_cookie};
use support::{ADMIN_PASSWORD, Backend, TestApp, spawn_app, spawn_app_with};

backend_tests!(
    pages_need_a_session_and_send_back_to_the_page_asked_for,
    sign_in_sets_a_hardened_cookie_and_secure_over_tls,
    wrong_passwords_and_forged_sign_in_forms_are_refused,
    a_planted_session_id_is_never_signed_in,
    every_change_needs_the_session_csrf_token,
    posts_from_other_sites_are_refused,
    monitors_see_everything_and_change_nothing,
    mail_users_cannot_sign_in,
    sign_out_and_a_password_change_end_sessions,
    idle_and_old_sessions_end,
    admins_manage_integrations_and_mail_from_forms,
    pages_carry_security_headers_and_errors_are_pages,
    the_overview_shows_firing_alerts_and_their_recipients,
);

/// An integration nobody answers for: its check fails at the connectivity step.
async fn faulty_integration(app: &TestApp, name: &str) {
    let response = app
        .admin(reqwest::Method::POST, "/api/v1/integrations")
        .json(&json!({"name": name, "url": "http://127.0.0.1:1", "auth": {"type": "bearer", "token": "t0ken"}, "timeout": "2s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn integration_count(app: &TestApp) -> usize {
    app.admin_json("/api/v1/integrations").await.as_array().unwrap().len()
}

fn digest(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn pages_need_a_session_and_send_back_to_the_page_asked_for(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut console = ConsoleClient::new(&app);
    let (status, headers, _) = console.get("/console/mail?view=errors").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[LOCATION],
        "/console/sign-in?next=%2Fconsole%2Fmail%3Fview%3Derrors"
    );
    let (status, headers, _) = console.get("/").await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/console/")
    );
    // Basic credentials are for the API: the console wants its own session.
    let response = app.admin(reqwest::Method::GET, "/console/").send().await.unwrap();
    assert!(response.url().path().starts_with("/console/sign-in"));

    // After sign-in the form sends the user where they were going, and never off-site.
    let (cookie, token) = console.sign_in_form().await;
    let response = console
        .post_sign_in(
            &format!("herald_signin={cookie}"),
            &[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", &token),
                ("next", "/console/mail?view=errors"),
            ],
        )
        .await;
    assert_eq!(response.headers()[LOCATION], "/console/mail?view=errors");
    let (cookie, token) = console.sign_in_form().await;
    let response = console
        .post_sign_in(
            &format!("herald_signin={cookie}"),
            &[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", &token),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(response.headers()[LOCATION], "/console/");
    console.sign_in("admin", ADMIN_PASSWORD).await;
    let (status, _, body) = console.get("/console/mail?view=errors").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("The error queue is empty."), "{body}");
}

async fn sign_in_sets_a_hardened_cookie_and_secure_over_tls(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let console = ConsoleClient::new(&app);
    let (cookie, token) = console.sign_in_form().await;
    let form = [
        ("username", "admin"),
        ("password", ADMIN_PASSWORD),
        ("csrf", token.as_str()),
    ];
    let response = console.post_sign_in(&format!("herald_signin={cookie}"), &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (id, line) = set_cookie(response.headers(), "herald_session").unwrap();
    assert!(id.len() >= 43, "{line}");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax") && line.contains("Path=/console"),
        "{line}"
    );
    assert!(!line.contains("Secure"), "plain http: {line}");
    // The database holds only the id's digest.
    let stored = app.db.store().await.session(&id).await.unwrap();
    assert!(stored.is_none());
    assert!(app.db.store().await.session(&digest(&id)).await.unwrap().is_some());

    // Behind a TLS-terminating proxy the cookie is Secure.
    let response = console
        .http
        .post(format!("{}/console/sign-in", console.base))
        .header(COOKIE, format!("herald_signin={cookie}"))
        .header("x-forwarded-proto", "https")
        .form(&form)
        .send()
        .await
        .unwrap();
    let (_, line) = set_cookie(response.headers(), "herald_session").unwrap();
    assert!(line.contains("; Secure"), "{line}");

    let Some(app) = spawn_app_with(backend, |s| s.public_url = Some("https://herald.example.com".into())).await else {
        return;
    };
    let mut console = ConsoleClient::new(&app);
    let (_, headers, _) = console.get("/console/sign-in").await;
    assert!(set_cookie(&headers, "herald_signin").unwrap().1.contains("; Secure"));
    console.sign_in("admin", ADMIN_PASSWORD).await;
}

async fn wrong_passwords_and_forged_sign_in_forms_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let console = ConsoleClient::new(&app);
    let (cookie, token) = console.sign_in_form().await;
    let wrong = console
        .post_sign_in(
            &format!("herald_signin={cookie}"),
            &[("username", "admin"), ("password", "nope"), ("csrf", &token)],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(wrong.headers(), "herald_session").is_none());
    let body = wrong.text().await.unwrap();
    assert!(body.contains("Wrong user name or password."), "{body}");
    assert!(body.contains(r#"value="admin""#), "the user name is kept: {body}");
    assert!(!body.contains("nope"), "the password is never echoed");

    // Without the double-submit cookie, or with another form's token: refused before any password check.
    for cookies in ["".to_owned(), "herald_signin=someone-elses-token".to_owned()] {
        let forged = console
            .post_sign_in(
                &cookies,
                &[("username", "admin"), ("password", ADMIN_PASSWORD), ("csrf", &token)],
            )
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(forged.headers(), "herald_session").is_none());
        assert!(
            forged
                .text()
                .await
                .unwrap()
                .contains("expired or did not come from this page")
        );
    }

    // Repeated failures are throttled like the API's.
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        let (cookie, token) = console.sign_in_form().await;
        last = console
            .post_sign_in(
                &format!("herald_signin={cookie}"),
                &[("username", "admin"), ("password", "guess"), ("csrf", &token)],
            )
            .await
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

async fn a_planted_session_id_is_never_signed_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut attacker = ConsoleClient::new(&app);
    let planted = attacker.sign_in("admin", ADMIN_PASSWORD).await;
    // The victim's browser arrives with the attacker's session id (or an invented one) and signs in.
    for fixed in [planted.clone(), "attacker-chosen-id".to_owned()] {
        let victim = ConsoleClient::new(&app);
        let (cookie, token) = victim.sign_in_form().await;
        let response = victim
            .post_sign_in(
                &format!("herald_session={fixed}; herald_signin={cookie}"),
                &[("username", "admin"), ("password", ADMIN_PASSWORD), ("csrf", &token)],
            )
            .await;
        let (fresh, _) = set_cookie(response.headers(), "herald_session").unwrap();
        assert_ne!(fresh, fixed, "sign-in must mint a new session id");
    }
    // The planted session ended when the victim signed in with it.
    let (status, _, _) = attacker.get("/console/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    attacker.session = Some("attacker-chosen-id".to_owned());
    assert_eq!(attacker.get("/console/").await.0, StatusCode::SEE_OTHER);
}

async fn every_change_needs_the_session_csrf_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    faulty_integration(&app, "jira-prod").await;
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let mut other = ConsoleClient::new(&app);
    other.sign_in("admin", ADMIN_PASSWORD).await;
    let others_token = other.csrf().await;
    let actions = [
        "/console/integrations/jira-prod/delete",
        "/console/integrations/jira-prod/check",
        "/console/integrations",
        "/console/mail/flush",
        "/console/mail/errors/resend",
        "/console/mail/errors/delete",
        "/console/sign-out",
    ];
    for path in actions {
        for token in ["", "forged", others_token.as_str()] {
            let (status, _, body) = admin
                .post(path, &[("csrf", token), ("name", "x"), ("url", "http://x")])
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} with {token:?}: {body}");
            assert!(body.contains("CSRF token"), "{body}");
        }
    }
    // Nothing changed, and the session still works.
    assert_eq!(integration_count(&app).await, 1);
    let token = admin.csrf().await;
    let (status, headers, _) = admin
        .post("/console/integrations/jira-prod/delete", &[("csrf", &token)])
        .await;
    assert_eq!(
        (status, &headers[LOCATION]),
        (StatusCode::SEE_OTHER, &"/console/integrations".parse().unwrap())
    );
    assert_eq!(integration_count(&app).await, 0);
}

async fn posts_from_other_sites_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    faulty_integration(&app, "jira-prod").await;
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let token = admin.csrf().await;
    let cookie = format!("herald_session={}", admin.session.clone().unwrap());
    let url = format!("{}/console/integrations/jira-prod/delete", admin.base);
    let attempts = [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ];
    for (header, value) in attempts {
        let response = admin
            .http
            .post(&url)
            .header(COOKIE, &cookie)
            .header(header, value)
            .form(&[("csrf", &token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(response.text().await.unwrap().contains("sent from another site"));
    }
    assert_eq!(integration_count(&app).await, 1);
    // The console's own origin is fine.
    let response = admin
        .http
        .post(&url)
        .header(COOKIE, &cookie)
        .header(ORIGIN, &admin.base)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

async fn monitors_see_everything_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    faulty_integration(&app, "jira-prod").await;
    app.state.integrations.check_now("jira-prod").await.unwrap();
    let password = app.create_user("watcher", "monitor").await;
    let mut monitor = ConsoleClient::new(&app);
    monitor.sign_in("watcher", &password).await;
    for path in [
        "/console/",
        "/console/integrations",
        "/console/integrations/jira-prod",
        "/console/mail",
        "/console/mail?view=errors",
        "/console/cluster",
    ] {
        let (status, _, body) = monitor.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains("Read-only"), "{path}");
        assert!(
            !body.contains(r#"id="check-now""#) && !body.contains("/delete\"") && !body.contains(r#"id="flush""#),
            "{path}: {body}"
        );
    }
    let (_, _, body) = monitor.get("/console/integrations/jira-prod").await;
    assert!(body.contains("The system is unable to connect to Jira."), "{body}");
    for path in ["/console/integrations/new", "/console/integrations/jira-prod/edit"] {
        assert_eq!(monitor.get(path).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    let token = monitor.csrf().await;
    for path in [
        "/console/integrations/jira-prod/delete",
        "/console/integrations/jira-prod/check",
        "/console/mail/flush",
        "/console/mail/errors/resend",
        "/console/mail/errors/delete",
    ] {
        let (status, _, body) = monitor.post(path, &[("csrf", &token)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("monitor role"), "{body}");
    }
    assert_eq!(integration_count(&app).await, 1);
}

async fn mail_users_cannot_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("mailer", "mail").await;
    let console = ConsoleClient::new(&app);
    let (cookie, token) = console.sign_in_form().await;
    let response = console
        .post_sign_in(
            &format!("herald_signin={cookie}"),
            &[("username", "mailer"), ("password", &password), ("csrf", &token)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(response.headers(), "herald_session").is_none());
    assert!(response.text().await.unwrap().contains("mail role"));
}

async fn sign_out_and_a_password_change_end_sessions(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    let token = console.csrf().await;
    let (status, headers, _) = console.post("/console/sign-out", &[("csrf", &token)]).await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/console/sign-in?signed_out=1")
    );
    assert!(set_cookie(&headers, "herald_session").unwrap().1.contains("Max-Age=0"));
    // The old cookie is worthless even if the browser kept it.
    assert_eq!(console.get("/console/").await.0, StatusCode::SEE_OTHER);

    let password = app.create_user("ops", "admin").await;
    let mut ops = ConsoleClient::new(&app);
    ops.sign_in("ops", &password).await;
    assert_eq!(ops.get("/console/").await.0, StatusCode::OK);
    let response = app
        .admin(reqwest::Method::PUT, "/api/v1/users/ops/password")
        .json(&json!({"password": "a-brand-new-password"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    assert_eq!(ops.get("/console/").await.0, StatusCode::SEE_OTHER);
    ops.sign_in("ops", "a-brand-new-password").await;
    let response = app
        .admin(reqwest::Method::DELETE, "/api/v1/users/ops")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(ops.get("/console/").await.0, StatusCode::SEE_OTHER);
}

async fn idle_and_old_sessions_end(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let store = app.db.store().await;
    let mut console = ConsoleClient::new(&app);
    let id = console.sign_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(console.get("/console/").await.0, StatusCode::OK);
    // Last seen nine hours ago: past the default 8 h idle timeout.
    let nine_hours_ago = herald::store::now_ms() - 9 * 3_600_000;
    store.touch_session(&digest(&id), nine_hours_ago, None).await.unwrap();
    assert_eq!(console.get("/console/").await.0, StatusCode::SEE_OTHER);
    assert!(
        store.session(&digest(&id)).await.unwrap().is_none(),
        "an ended session is deleted"
    );

    let Some(app) = spawn_app_with(backend, |s| s.session_lifetime = std::time::Duration::from_millis(1)).await else {
        return;
    };
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    // A 1 ms lifetime has passed by the time the next request arrives.
    assert_eq!(console.get("/console/").await.0, StatusCode::SEE_OTHER);
}

async fn admins_manage_integrations_and_mail_from_forms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let token = admin.csrf().await;
    // A bad form comes back with the field named and the values kept (never the secret).
    let (status, _, body) = admin
        .post(
            "/console/integrations",
            &[
                ("csrf", &token),
                ("name", "jira / prod"),
                ("url", "ftp://jira"),
                ("auth_type", "basic"),
                ("username", "svc"),
                ("secret", "hunter2"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("`url`"), "{body}");
    assert!(
        body.contains(r#"value="jira / prod""#) && !body.contains("hunter2"),
        "{body}"
    );
    // Saved, then checked at once; the flash says how it went.
    let (status, headers, _) = admin
        .post(
            "/console/integrations",
            &[
                ("csrf", &token),
                ("name", "jira / prod"),
                ("url", "http://127.0.0.1:1"),
                ("auth_type", "basic"),
                ("username", "svc"),
                ("secret", "hunter2"),
                ("timeout", "2s"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/console/integrations/jira%20%2F%20prod");
    let (_, _, body) = admin.get("/console/integrations/jira%20%2F%20prod").await;
    assert!(
        body.contains("Integration jira / prod added. Checked: FAULTY_CONFIGURATION"),
        "{body}"
    );
    assert!(body.contains("connectivity") && body.contains("<svg"), "{body}");
    assert!(!body.contains("hunter2"));
    // The message is shown once.
    let (_, _, body) = admin.get("/console/integrations/jira%20%2F%20prod").await;
    assert!(!body.contains("added. Checked"));
    // Edit without the secret keeps it.
    let (status, _, _) = admin
        .post(
            "/console/integrations/jira%20%2F%20prod/edit",
            &[
                ("csrf", &token),
                ("url", "http://127.0.0.1:1"),
                ("auth_type", "basic"),
                ("username", "svc2"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let stored = app.state.integrations.get("jira / prod").await.unwrap();
    assert!(
        matches!(&stored.settings.auth, herald::integrations::Auth::Basic { username, password } if username == "svc2" && password.expose() == "hunter2")
    );
    // Unknown pages and names are 404 pages.
    let (status, headers, body) = admin.get("/console/integrations/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("There is no integration named `nope`."));
    let (status, _, body) = admin.post("/console/mail/nope/resend", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, _) = admin.get("/console/mail?view=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Flush answers even with nothing queued.
    let (status, _, _) = admin.post("/console/mail/flush", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, body) = admin.get("/console/mail").await;
    assert!(body.contains("Flushed: 0 messages"), "{body}");
    // Draining needs cluster mode.
    let node = app.state.node_id.to_string();
    let (status, _, body) = admin
        .post(&format!("/console/cluster/{node}/drain"), &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn pages_carry_security_headers_and_errors_are_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut admin = ConsoleClient::new(&app);
    let (_, headers, body) = admin.get("/console/sign-in").await;
    assert!(
        headers[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        !body.contains("<script>") && !body.contains("style=\""),
        "no inline script or style"
    );
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    for path in [
        "/console/",
        "/console/integrations",
        "/console/mail",
        "/console/cluster",
    ] {
        let (status, headers, body) = admin.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(!body.contains(" onclick=") && !body.contains("<script>"), "{path}");
        assert!(csrf_of(&body).len() >= 43);
    }
    let (status, headers, _) = admin.get("/console/assets/console.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
    let (status, _, body) = admin.get("/console/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("There is no console page at this address."));
    // The API's own errors stay problem+json.
    let response = app.get("/api/v1/nowhere").send().await.unwrap();
    assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
}

async fn the_overview_shows_firing_alerts_and_their_recipients(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let (_, _, body) = admin.get("/console/").await;
    assert!(
        body.contains("Alerts are off. Set <code>HERALD_ALERT_EMAILS</code>"),
        "{body}"
    );

    let clock = herald::clock::ManualClock::starting_at(herald::store::now_ms());
    let Some(app) = support::spawn_app_with_clock(backend, clock.clone(), |s| {
        s.alert_emails = vec!["ops@example.com".into()];
        s.alert_debounce = std::time::Duration::from_secs(120);
    })
    .await
    else {
        return;
    };
    faulty_integration(&app, "jira-prod").await;
    app.state.integrations.check_now("jira-prod").await.unwrap();
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let (_, _, body) = admin.get("/console/").await;
    assert!(
        body.contains("Nothing is firing. Alerts go to ops@example.com."),
        "{body}"
    );
    app.state.alerts.evaluate_once().await.unwrap();
    clock.advance(std::time::Duration::from_secs(121));
    assert_eq!(app.state.alerts.evaluate_once().await.unwrap().transitions, 1);
    let (_, _, body) = admin.get("/console/").await;
    let alerts = &body[body.find(r#"id="alerts""#).unwrap()..];
    assert!(alerts.contains("FIRING") && alerts.contains("jira-prod"), "{alerts}");
    // The alert mail is in the queue like any other mail.
    let (_, _, body) = admin.get("/console/mail").await;
    assert!(body.contains("[Herald] FAULTY: integration jira-prod"), "{body}");
}
