//! The console's security over plain HTTP, on both backends: sessions, cookies, CSRF, cross-site
//! posts, session fixation, roles, session ends, headers and error pages.

use crate::support;

use herald::console::{Allowed, state_changing_routes};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::console::{ConsoleClient, csrf_of, set_cookie, text_after};
use support::integrations::spec_for;
use support::jira_sim::{Fault, Flavour, JiraSim};
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
    api_tokens_cannot_sign_in_to_the_console,
    sign_out_and_a_password_change_end_sessions,
    idle_and_old_sessions_end,
    admins_manage_integrations_and_mail_from_forms,
    pages_carry_security_headers_and_errors_are_pages,
    the_overview_shows_firing_alerts_and_their_recipients,
    users_change_their_own_password_and_the_generated_one_goes,
    the_mail_lists_show_one_node_or_all,
    the_integrations_list_filters_searches_and_pages,
    admins_manage_users_and_tokens_from_forms,
    the_listed_integrations_are_checked_again_in_the_background,
    a_check_slower_than_a_request_goes_on_in_the_background,
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

/// A message in the queue (tests do not deliver unless asked).
async fn queued_mail(app: &TestApp) -> String {
    let response = app
        .admin(reqwest::Method::POST, "/api/v1/mail")
        .json(&json!({"to": ["ops@example.com"], "subject": "Disk almost full", "text": "90%"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The console's state-changing routes open to `allowed`, read from the router's own declaration,
/// with their path parameters filled in: the integration `jira-prod`, the user `admin`, the mail
/// `mail_id`, a token id and the node `node`.
fn actions(allowed: &[Allowed], mail_id: &str, node: &str) -> Vec<String> {
    state_changing_routes()
        .into_iter()
        .filter(|(_, who)| allowed.contains(who))
        .map(|(pattern, _)| {
            let segments: Vec<&str> = pattern.split('/').collect();
            let mut path = Vec::with_capacity(segments.len());
            for (i, segment) in segments.iter().enumerate() {
                if !segment.starts_with('{') {
                    path.push(*segment);
                    continue;
                }
                path.push(match segments[i - 1] {
                    "integrations" => "jira-prod",
                    "users" => "admin",
                    "mail" => mail_id,
                    "tokens" => "tok_0123456789abcdef",
                    "cluster" => node,
                    _ => panic!("{pattern}: a new kind of path parameter; give it a value here"),
                });
            }
            path.join("/")
        })
        .collect()
}

/// Every state-changing form post of the console that only admins may make, for the role test.
fn every_action(mail_id: &str, node: &str) -> Vec<String> {
    actions(&[Allowed::Admins], mail_id, node)
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
    let response = console
        .try_sign_in(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "/console/mail?view=errors"),
        ])
        .await;
    assert_eq!(response.headers()[LOCATION], "/console/mail?view=errors");
    let response = console
        .try_sign_in(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "//evil.example/"),
        ])
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

    // Behind a TLS-terminating proxy the cookies are Secure, with the `__Host-` prefix (Path=/, no
    // Domain), which a sibling subdomain cannot plant or shadow.
    for proxy in [
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=10.0.0.1;proto=https"),
    ] {
        let form_page = console
            .http
            .get(format!("{}/console/sign-in", console.base))
            .header(proxy.0, proxy.1)
            .send()
            .await
            .unwrap();
        let (tls_cookie, line) =
            set_cookie(form_page.headers(), "__Host-herald_signin").expect("__Host- sign-in cookie");
        assert!(line.contains("; Secure") && line.contains("Path=/;"), "{line}");
        let tls_token = csrf_of(&form_page.text().await.unwrap());
        let response = console
            .http
            .post(format!("{}/console/sign-in", console.base))
            .header(COOKIE, format!("__Host-herald_signin={tls_cookie}"))
            .header(proxy.0, proxy.1)
            .form(&[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", tls_token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{proxy:?}");
        let (tls_id, line) = set_cookie(response.headers(), "__Host-herald_session").unwrap();
        assert!(
            line.contains("; Secure") && line.contains("Path=/;") && line.contains("HttpOnly"),
            "{line}"
        );
        let page = |cookie: String| {
            console
                .http
                .get(format!("{}/console/", console.base))
                .header(COOKIE, cookie)
                .header(proxy.0, proxy.1)
                .send()
        };
        assert_eq!(
            page(format!("__Host-herald_session={tls_id}")).await.unwrap().status(),
            StatusCode::OK
        );
        // Over TLS the unprefixed name is not looked at.
        assert_eq!(
            page(format!("herald_session={tls_id}")).await.unwrap().status(),
            StatusCode::SEE_OTHER
        );
    }

    let Some(app) = spawn_app_with(backend, |s| {
        s.console.public_url = Some("https://herald.example.com".into())
    })
    .await
    else {
        return;
    };
    let console = ConsoleClient::new(&app);
    let (_, headers, _) = console.get("/console/sign-in").await;
    assert!(
        set_cookie(&headers, "__Host-herald_signin")
            .unwrap()
            .1
            .contains("; Secure")
    );
    // Behind a proxy that rewrites Host, posts from the public origin are the console's own.
    let response = console
        .http
        .post(format!("{}/console/sign-in", console.base))
        .header(ORIGIN, "https://herald.example.com")
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("expired or did not come from this page")
    );
}

async fn wrong_passwords_and_forged_sign_in_forms_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let console = ConsoleClient::new(&app);
    let wrong = console
        .try_sign_in(&[("username", "admin"), ("password", "nope")])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(set_cookie(wrong.headers(), "herald_session").is_none());
    let body = wrong.text().await.unwrap();
    assert!(body.contains("Wrong user name or password."), "{body}");
    assert!(body.contains(r#"value="admin""#), "the user name is kept: {body}");
    assert!(!body.contains("nope"), "the password is never echoed");

    // Without the double-submit cookie, or with another form's token: refused before any password check.
    let (_, token) = console.sign_in_form().await;
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
    let mail = queued_mail(&app).await;
    // Every post a session can make (signing in has a pre-session token, tested above).
    let actions = actions(&[Allowed::SignedIn, Allowed::Admins], &mail, app.state.node_id.as_str());
    for path in &actions {
        for token in ["", "forged", others_token.as_str()] {
            let (status, _, body) = admin
                .post(
                    path,
                    &[("csrf", token), ("name", "x"), ("url", "http://x"), ("view", "queue")],
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} with {token:?}: {body}");
            assert!(body.contains("CSRF token"), "{body}");
        }
    }
    // Nothing changed, and the session still works.
    assert_eq!(integration_count(&app).await, 1);
    assert_eq!(app.admin_json(&format!("/api/v1/mail/{mail}")).await["state"], "queued");
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
    let mail = queued_mail(&app).await;
    let password = app.create_user("watcher", "monitor").await;
    let mut monitor = ConsoleClient::new(&app);
    monitor.sign_in("watcher", &password).await;
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    // Each page with the control an admin gets there: the monitor sees the page, not the control.
    let pages = [
        ("/console/", r#"href="/console/integrations/jira-prod""#, None),
        (
            "/console/integrations",
            "The system is unable to connect",
            Some(r#"id="add-integration""#),
        ),
        (
            "/console/integrations/jira-prod",
            "The system is unable to connect",
            Some(r#"id="check-now""#),
        ),
        (
            "/console/mail",
            "Disk almost full",
            Some(r#"class="small danger delete""#),
        ),
        (
            "/console/mail?view=errors",
            "The error queue is empty.",
            Some(r#"id="resend-all""#),
        ),
        ("/console/cluster", "(this node)", None),
    ];
    for (path, content, control) in pages {
        let (status, _, body) = monitor.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains(content), "{path}: {body}");
        assert!(body.contains("Read-only"), "{path}");
        let (_, _, admins) = admin.get(path).await;
        assert!(!admins.contains("Read-only"), "{path}");
        if let Some(control) = control {
            assert!(admins.contains(control), "admins get {control} on {path}");
            assert!(!body.contains(control), "monitors do not get {control} on {path}");
        }
    }
    for path in [
        "/console/add-integration",
        "/console/integrations/jira-prod/edit",
        "/console/users",
    ] {
        assert_eq!(monitor.get(path).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    let (_, _, overview) = monitor.get("/console/").await;
    assert!(!overview.contains(r#"href="/console/users""#), "{overview}");
    let token = monitor.csrf().await;
    for path in every_action(&mail, app.state.node_id.as_str()) {
        let (status, _, body) = monitor
            .post(
                &path,
                &[("csrf", &token), ("name", "x"), ("url", "http://x"), ("view", "queue")],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("monitor role"), "{body}");
    }
    assert_eq!(integration_count(&app).await, 1);
    assert_eq!(app.admin_json(&format!("/api/v1/mail/{mail}")).await["state"], "queued");
}

async fn api_tokens_cannot_sign_in_to_the_console(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (_, token) = app.create_token("admin").await;
    // The token works for the API…
    let response = app
        .get("/api/v1/whoami")
        .basic_auth("admin", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // …but a console session would outlive its expiry or revocation.
    let console = ConsoleClient::new(&app);
    let response = console
        .try_sign_in(&[("username", "admin"), ("password", &token)])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(set_cookie(response.headers(), "herald_session").is_none());
    assert!(response.text().await.unwrap().contains("API tokens cannot sign in"));
}

async fn mail_users_cannot_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("mailer", "mail").await;
    let console = ConsoleClient::new(&app);
    let response = console
        .try_sign_in(&[("username", "mailer"), ("password", &password)])
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

    // A session ends at its lifetime however active it is (the clock is moved, not waited for).
    let clock = herald::clock::ManualClock::starting_at(herald::store::now_ms());
    let Some(app) = support::spawn_app_with_clock(backend, clock.clone(), |s| {
        s.console.session_lifetime = std::time::Duration::from_secs(3600);
        s.console.session_idle_timeout = std::time::Duration::from_secs(600);
    })
    .await
    else {
        return;
    };
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    for _ in 0..11 {
        assert_eq!(console.get("/console/").await.0, StatusCode::OK);
        clock.advance(std::time::Duration::from_secs(299));
    }
    // 11 × 299 s = 54 min 49 s, active all along; six more minutes pass the hour.
    clock.advance(std::time::Duration::from_secs(360));
    assert_eq!(console.get("/console/").await.0, StatusCode::SEE_OTHER);
    // Idle for longer than the idle timeout: ended too.
    console.sign_in("admin", ADMIN_PASSWORD).await;
    clock.advance(std::time::Duration::from_secs(601));
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
    // The steps come from the recorded report, so every node of a cluster can show them.
    let recorded = app.db.store().await.check_history("jira / prod", 1).await.unwrap();
    let report = recorded[0].report.as_deref().expect("the report is recorded");
    assert!(
        report.contains(r#""step":"connectivity""#) && !report.contains("hunter2"),
        "{report}"
    );
    // The message is shown once.
    let (_, _, body) = admin.get("/console/integrations/jira%20%2F%20prod").await;
    assert!(!body.contains("added. Checked"));
    // Edit without the secret keeps it, for the same server and user only: the stored secret is
    // never sent to another host or as another user.
    let edit = |url: &'static str, username: &'static str| {
        let admin = &admin;
        let token = token.clone();
        async move {
            admin
                .post(
                    "/console/integrations/jira%20%2F%20prod/edit",
                    &[
                        ("csrf", token.as_str()),
                        ("url", url),
                        ("auth_type", "basic"),
                        ("username", username),
                    ],
                )
                .await
        }
    };
    for (url, username) in [("http://127.0.0.1:2", "svc"), ("http://127.0.0.1:1", "svc2")] {
        let (status, _, body) = edit(url, username).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url} {username}");
        assert!(body.contains("a stored one is kept only while the Jira"), "{body}");
    }
    let (status, _, _) = edit("http://127.0.0.1:1/jira", "svc").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let stored = app.state.integrations.get("jira / prod").await.unwrap();
    assert!(
        matches!(&stored.settings.auth, herald::integrations::Auth::Basic { username, password } if username == "svc" && password.expose() == "hunter2")
    );
    assert_eq!(stored.settings.url.as_str(), "http://127.0.0.1:1/jira");
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
    assert!(!body.contains(r#"id="test-alert""#), "no test without recipients");
    let token = admin.csrf().await;
    let (status, _, body) = admin.post("/console/alerts/test", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Alerts are off: set HERALD_ALERT_EMAILS"), "{body}");

    let clock = herald::clock::ManualClock::starting_at(herald::store::now_ms());
    let Some(app) = support::spawn_app_with_clock(backend, clock.clone(), |s| {
        s.alerts.recipients = vec!["ops@example.com".into()];
        s.alerts.debounce = std::time::Duration::from_secs(120);
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

    // A test alert, from the overview's button: queued, and said so on the next page.
    let (_, _, body) = admin.get("/console/").await;
    assert!(body.contains(r#"id="test-alert""#), "{body}");
    let token = admin.csrf().await;
    let (status, headers, _) = admin.post("/console/alerts/test", &[("csrf", &token)]).await;
    assert_eq!(
        (status, &headers[LOCATION]),
        (StatusCode::SEE_OTHER, &"/console/".parse().unwrap())
    );
    let (_, _, body) = admin.get("/console/").await;
    assert!(
        body.contains("Test alert queued for ops@example.com as message "),
        "{body}"
    );
    let (_, _, body) = admin.get("/console/mail").await;
    assert!(body.contains("[Herald] Test alert from node "), "{body}");
    let password = app.create_user("watcher", "monitor").await;
    let mut monitor = ConsoleClient::new(&app);
    monitor.sign_in("watcher", &password).await;
    let (_, _, body) = monitor.get("/console/").await;
    assert!(!body.contains(r#"id="test-alert""#), "{body}");
}

async fn users_change_their_own_password_and_the_generated_one_goes(backend: Backend) {
    // First start without HERALD_ADMIN_PASSWORD: the password is generated into a file.
    let Some(app) = spawn_app_with(backend, |s| s.auth.admin_password = None).await else {
        return;
    };
    let file = app.state.settings.database.data_dir.join("initial-admin-password");
    let generated = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let response = app
        .post("/api/v1/users")
        .basic_auth("admin", Some(&generated))
        .json(&json!({"username": "watcher", "password": "watcher-password", "role": "monitor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let password = "watcher-password".to_owned();
    let mut elsewhere = ConsoleClient::new(&app);
    elsewhere.sign_in("admin", &generated).await;
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", &generated).await;
    let (_, _, body) = console.get("/console/").await;
    assert!(body.contains(r#"id="generated-password""#), "{body}");
    let token = console.csrf().await;
    let refusals = [
        (
            ["wrong-password", "a-new-password", "a-new-password"],
            "The current password is wrong.",
        ),
        ([generated.as_str(), "a-new-password", "another-one"], "differ"),
        ([generated.as_str(), "short", "short"], "cannot be used"),
    ];
    for ([current, new, confirm], expected) in refusals {
        let (status, _, body) = console
            .post(
                "/console/account/password",
                &[
                    ("csrf", &token),
                    ("current", current),
                    ("new", new),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains(expected), "{expected}: {body}");
        assert!(!body.contains(new) || new == "short", "a password is never echoed");
    }
    let (status, _, _) = console
        .post(
            "/console/account/password",
            &[
                ("csrf", "forged"),
                ("current", &generated),
                ("new", "x"),
                ("confirm", "x"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, headers, _) = console
        .post(
            "/console/account/password",
            &[
                ("csrf", &token),
                ("current", &generated),
                ("new", "my-own-password"),
                ("confirm", "my-own-password"),
            ],
        )
        .await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/console/account")
    );
    // This browser carries on in a fresh session; the other one is signed out.
    let (fresh, _) = set_cookie(&headers, "herald_session").unwrap();
    assert_ne!(Some(&fresh), console.session.as_ref());
    assert_eq!(
        console.get("/console/").await.0,
        StatusCode::SEE_OTHER,
        "the old session ended"
    );
    console.session = Some(fresh);
    let (status, _, body) = console.get("/console/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Password changed.") && body.contains("is deleted"),
        "{body}"
    );
    assert!(!body.contains(r#"id="generated-password""#));
    assert_eq!(elsewhere.get("/console/").await.0, StatusCode::SEE_OTHER);
    assert!(!file.exists(), "the generated password file is deleted");
    let whoami = app
        .get("/api/v1/whoami")
        .basic_auth("admin", Some("my-own-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), StatusCode::OK);

    // Monitors change their own password too.
    let mut monitor = ConsoleClient::new(&app);
    monitor.sign_in("watcher", &password).await;
    let token = monitor.csrf().await;
    let (status, _, _) = monitor
        .post(
            "/console/account/password",
            &[
                ("csrf", &token),
                ("current", &password),
                ("new", "watcher-new-pw"),
                ("confirm", "watcher-new-pw"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let mut again = ConsoleClient::new(&app);
    again.sign_in("watcher", "watcher-new-pw").await;
}

async fn the_mail_lists_show_one_node_or_all(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    queued_mail(&app).await;
    let node = app.state.node_id.to_string();
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    // The node tables link each figure to that node's list.
    let (_, _, overview) = admin.get("/console/").await;
    let link = format!("/console/mail?view=queue&amp;node={node}");
    assert!(overview.contains(&link), "{overview}");
    let (status, _, body) = admin.get(&format!("/console/mail?view=queue&node={node}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Disk almost full") && body.contains("Queue (1)"),
        "{body}"
    );
    assert!(body.contains(r#"id="node-filter""#), "{body}");
    let tab = body.split("<a ").find(|a| a.contains(r#"id="tab-errors""#)).unwrap();
    assert!(
        tab.contains("view=errors") && tab.contains(&format!("node={node}\"")),
        "the tabs keep the node: {tab}"
    );
    let (_, _, body) = admin.get("/console/mail?view=queue&node=elsewhere").await;
    assert!(
        body.contains("Nothing is waiting to be sent.") && body.contains("Queue (0)"),
        "{body}"
    );
    let (_, _, body) = admin.get("/console/mail?view=queue").await;
    assert!(
        body.contains("Disk almost full") && !body.contains(r#"id="node-filter""#),
        "{body}"
    );
    // The error queue's all-messages actions act on every node: only the unfiltered list has them.
    let (_, _, body) = admin.get(&format!("/console/mail?view=errors&node={node}")).await;
    assert!(
        !body.contains(r#"id="resend-all""#) && body.contains(r#"id="all-actions-elsewhere""#),
        "{body}"
    );
    let (_, _, body) = admin.get("/console/mail?view=errors").await;
    assert!(
        body.contains(r#"id="resend-all""#) && body.contains(r#"id="delete-all""#),
        "{body}"
    );
}

/// The names on a page of the integrations list, in order.
fn listed_names(body: &str) -> Vec<String> {
    body.split("<tr data-name=\"")
        .skip(1)
        .map(|row| row.split('"').next().unwrap().to_owned())
        .collect()
}

/// The `href` of the link with this id, unescaped (askama writes `&` as `&#38;`).
fn link_of(body: &str, id: &str) -> Option<String> {
    let tag = body.split(&format!("id=\"{id}\"")).next()?;
    let href = tag.rsplit("href=\"").next()?.split('"').next()?;
    body.contains(&format!("id=\"{id}\""))
        .then(|| href.replace("&#38;", "&").replace("&amp;", "&"))
}

async fn the_integrations_list_filters_searches_and_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::Cloud).await;
    app.register(&spec_for("jira-cloud", &sim, Flavour::Cloud)).await;
    faulty_integration(&app, "jira-down").await;
    faulty_integration(&app, "legacy-DOWN").await;
    // 150 more, registered without a check (in process, not through the API).
    for i in 0..150 {
        let spec: herald::integrations::IntegrationSpec = serde_json::from_value(json!({
            "name": format!("team-{i:03}"), "url": format!("https://team{i}.atlassian.net"),
            "auth": {"type": "bearer", "token": "t0ken"}, "project_key": if i % 2 == 0 { "SEC" } else { "OPS" },
        }))
        .unwrap();
        app.state.integrations.create(spec).await.unwrap();
    }
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", ADMIN_PASSWORD).await;

    let (status, _, body) = console.get("/console/integrations").await;
    assert_eq!(status, 200, "{body}");
    for tab in ["All (153)", "Faulty (2)", "Healthy (1)", "Not checked (150)"] {
        assert!(body.contains(tab), "{tab}: {body}");
    }
    let first = listed_names(&body);
    assert_eq!(first.len(), 100);
    assert_eq!(first[..3], ["jira-cloud", "jira-down", "legacy-DOWN"]);
    let next = link_of(&body, "next-page").expect("a next page");
    let (_, _, body) = console.get(&next).await;
    let second = listed_names(&body);
    assert_eq!(second.len(), 53);
    assert_eq!(second.first().unwrap(), "team-097");
    assert_eq!(second.last().unwrap(), "team-149");
    assert!(link_of(&body, "next-page").is_none());

    // Each status, and a search across names, URLs and projects (every word, any case).
    let (_, _, body) = console.get("/console/integrations?status=faulty").await;
    assert_eq!(listed_names(&body), ["jira-down", "legacy-DOWN"]);
    let (_, _, body) = console.get("/console/integrations?status=healthy").await;
    assert_eq!(listed_names(&body), ["jira-cloud"]);
    let (_, _, body) = console.get("/console/integrations?status=faulty&q=down+LEGACY").await;
    assert_eq!(listed_names(&body), ["legacy-DOWN"]);
    assert!(body.contains("Faulty (1)") && body.contains("All (1)"), "{body}");
    let (_, _, body) = console.get("/console/integrations?q=team12.atlassian").await;
    assert_eq!(listed_names(&body), ["team-012"]);
    let (_, _, body) = console.get("/console/integrations?status=unchecked&q=sec").await;
    assert_eq!(listed_names(&body).len(), 75);
    let (_, _, body) = console.get("/console/integrations?status=healthy&q=team").await;
    assert!(listed_names(&body).is_empty());
    assert!(body.contains("No healthy integration matches “team”."), "{body}");

    // The overview's faulty count leads to the faulty list.
    let (_, _, body) = console.get("/console/").await;
    assert!(
        body.contains(r#"<a href="/console/integrations?status=faulty" id="faulty-count""#),
        "{body}"
    );

    // When many are faulty (Jira itself down), the overview lists the first 20 and links the rest.
    for i in 0..19 {
        faulty_integration(&app, &format!("outage-{i:02}")).await;
    }
    let (_, _, body) = console.get("/console/").await;
    let problems = body
        .split(r#"<table id="problems">"#)
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert_eq!(problems.matches("<tr><td class=\"name\">").count(), 20, "{problems}");
    assert!(
        body.contains(">All 21 faulty integrations</a> (the first 20 are shown here)"),
        "{body}"
    );
    let (_, _, body) = console.get("/console/integrations?status=faulty").await;
    assert_eq!(listed_names(&body).len(), 21);

    // Bad filters are 400 pages that say what is accepted.
    let (status, _, body) = console.get("/console/integrations?status=broken").await;
    assert_eq!(status, 400);
    assert!(body.contains("use `faulty`, `healthy`, `unchecked` or `all`"), "{body}");
    let long = "x".repeat(201);
    let (status, _, body) = console.get(&format!("/console/integrations?q={long}")).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("The search is too long: 200 characters at most."),
        "{body}"
    );
}

/// The row of `users` or `tokens` whose `data-*` attribute is `key`, up to its end.
fn row_of<'a>(body: &'a str, attribute: &str, key: &str) -> Option<&'a str> {
    let start = body.find(&format!("<tr data-{attribute}=\"{key}\""))?;
    Some(body[start..].split("</tr>").next().unwrap())
}

async fn admins_manage_users_and_tokens_from_forms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let token = admin.csrf().await;
    let (status, _, body) = admin.get("/console/users").await;
    assert_eq!(status, 200, "{body}");
    assert!(row_of(&body, "user", "admin").unwrap().contains("(you)"), "{body}");
    assert!(body.contains(r#"id="no-tokens""#), "{body}");

    // Adding a user: refusals keep what was typed and say why.
    let new_user = |name: &'static str, role: &'static str, password: &'static str, confirm: &'static str| {
        [
            ("username", name),
            ("role", role),
            ("password", password),
            ("confirm", confirm),
        ]
    };
    let refusals = [
        (
            new_user("bad name!", "monitor", "s3cret-pass", "s3cret-pass"),
            "User name:",
        ),
        (
            new_user("grafana", "root", "s3cret-pass", "s3cret-pass"),
            "Role: unknown role `root`",
        ),
        (
            new_user("grafana", "monitor", "s3cret-pass", "other-pass"),
            "confirmation differ",
        ),
        (
            new_user("grafana", "monitor", "short", "short"),
            "The password cannot be used",
        ),
        (
            new_user("admin", "monitor", "s3cret-pass", "s3cret-pass"),
            "A user named `admin` already exists.",
        ),
    ];
    for (fields, expected) in refusals {
        let mut form = vec![("csrf", token.as_str())];
        form.extend(fields);
        let (status, _, body) = admin.post("/console/users", &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{expected}: {body}");
        let error = text_after(&body, r#"id="user-error">"#).expect("an error");
        assert!(error.contains(expected), "{expected}: {error}");
        let typed = format!(r#"name="username" value="{}""#, fields[0].1);
        assert!(body.contains(&typed), "{typed}: {body}");
    }
    let mut form = vec![("csrf", token.as_str())];
    form.extend(new_user("grafana", "monitor", "s3cret-pass", "s3cret-pass"));
    let (status, headers, _) = admin.post("/console/users", &form).await;
    assert_eq!(
        (status, &headers[LOCATION]),
        (StatusCode::SEE_OTHER, &"/console/users".parse().unwrap())
    );
    let (_, _, body) = admin.get("/console/users").await;
    assert!(body.contains("User grafana (monitor) created."), "{body}");
    assert!(row_of(&body, "user", "grafana").unwrap().contains("monitor"), "{body}");
    let mut watcher = ConsoleClient::new(&app);
    watcher.sign_in("grafana", "s3cret-pass").await;

    // A token: its secret is on the answer to the form, works for the API, and is never shown again.
    let (status, _, body) = admin
        .post(
            "/console/tokens",
            &[
                ("csrf", &token),
                ("name", "dashboards"),
                ("user", "grafana"),
                ("expires_in", "90d"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = text_after(&body, r#"<code id="new-token" class="secret">"#)
        .expect("the new token")
        .to_owned();
    assert!(secret.len() > 20, "{secret}");
    let api = |secret: String| {
        let app = &app;
        async move {
            app.get("/rest/mailqueue/1.0/status")
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(api(secret.clone()).await, StatusCode::OK);
    let (_, _, listed) = admin.get("/console/users").await;
    assert!(!listed.contains(&secret), "the secret is shown once");
    let token_row = listed.split("<tr data-token=\"").nth(1).unwrap();
    let token_id = token_row.split('"').next().unwrap().to_owned();
    assert!(
        token_row.contains("dashboards") && token_row.contains("grafana"),
        "{token_row}"
    );
    assert!(
        row_of(&listed, "user", "grafana")
            .unwrap()
            .contains(r#"data-label="Tokens">1<"#),
        "{listed}"
    );
    for (fields, expected) in [
        (
            [("name", ""), ("user", "grafana"), ("expires_in", "")],
            "Name: 1 to 128 printable characters",
        ),
        (
            [("name", "x"), ("user", "nobody"), ("expires_in", "")],
            "There is no user named `nobody`.",
        ),
        (
            [("name", "x"), ("user", "grafana"), ("expires_in", "soon")],
            "Expires in:",
        ),
        (
            [("name", "x"), ("user", "grafana"), ("expires_in", "1s")],
            "between 1 minute and 10 years",
        ),
    ] {
        let mut form = vec![("csrf", token.as_str())];
        form.extend(fields);
        let (status, _, body) = admin.post("/console/tokens", &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{expected}: {body}");
        assert!(
            body.contains(r#"id="token-error""#) && body.contains(expected),
            "{expected}: {body}"
        );
    }

    // Revoking stops the token at once.
    let (status, _, _) = admin
        .post(&format!("/console/tokens/{token_id}/revoke"), &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(api(secret).await, StatusCode::UNAUTHORIZED);
    let (status, _, body) = admin
        .post(&format!("/console/tokens/{token_id}/revoke"), &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Setting another user's password signs them out; their new password works.
    let (status, _, body) = admin
        .post(
            "/console/users/grafana/password",
            &[("csrf", &token), ("password", "n3w-secret"), ("confirm", "n3w-secrex")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("grafana: the password and its confirmation differ."),
        "{body}"
    );
    let (status, _, _) = admin
        .post(
            "/console/users/grafana/password",
            &[("csrf", &token), ("password", "n3w-secret"), ("confirm", "n3w-secret")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        watcher.get("/console/").await.0,
        StatusCode::SEE_OTHER,
        "the old session ended"
    );
    assert_eq!(
        watcher
            .try_sign_in(&[("username", "grafana"), ("password", "s3cret-pass")])
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    watcher.sign_in("grafana", "n3w-secret").await;
    let (status, _, body) = admin
        .post(
            "/console/users/admin/password",
            &[("csrf", &token), ("password", "n3w-secret"), ("confirm", "n3w-secret")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Account page"), "{body}");

    // Roles: another user's changes at their next request; never your own here, never the last admin.
    let (status, _, _) = admin
        .post("/console/users/grafana/role", &[("csrf", &token), ("role", "admin")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, body) = watcher.get("/console/users").await;
    assert!(body.contains("Users and tokens"), "grafana is an admin now: {body}");
    let (_, _, body) = admin.get("/console/users").await;
    assert!(body.contains("grafana is now admin."), "{body}");
    let (status, _, body) = admin
        .post("/console/users/admin/role", &[("csrf", &token), ("role", "monitor")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("You cannot change your own role"), "{body}");
    let (status, _, body) = admin
        .post("/console/users/grafana/role", &[("csrf", &token), ("role", "root")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown role `root`"), "{body}");
    let (status, _, _) = admin
        .post("/console/users/grafana/role", &[("csrf", &token), ("role", "monitor")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(watcher.get("/console/users").await.0, StatusCode::FORBIDDEN);
    // Changed to `mail`, which cannot use the console: signed out at once.
    let (status, _, _) = admin
        .post("/console/users/grafana/role", &[("csrf", &token), ("role", "mail")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(watcher.get("/console/").await.0, StatusCode::SEE_OTHER, "signed out");
    let (status, _, _) = admin
        .post("/console/users/grafana/role", &[("csrf", &token), ("role", "monitor")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    watcher.sign_in("grafana", "n3w-secret").await;

    // Deleting: never yourself here, never the last admin, anyone else at once.
    let (status, _, body) = admin.post("/console/users/admin/delete", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("You cannot delete yourself"), "{body}");
    let (status, _, _) = admin.post("/console/users/grafana/delete", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(watcher.get("/console/").await.0, StatusCode::SEE_OTHER);
    let (_, _, body) = admin.get("/console/users").await;
    assert!(body.contains("User grafana deleted"), "{body}");
    assert!(row_of(&body, "user", "grafana").is_none());
    let (status, _, _) = admin.post("/console/users/grafana/delete", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The one-time message on the next page.
async fn flash(console: &ConsoleClient, path: &str) -> String {
    let (_, _, body) = console.get(path).await;
    text_after(&body, r#"id="flash">"#).unwrap_or_default().to_owned()
}

async fn the_listed_integrations_are_checked_again_in_the_background(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault("/rest/api/2/myself", Fault::Status(401, String::new()));
    for name in ["dc-1", "dc-2", "dc-3"] {
        let spec = support::integrations::with(spec_for(name, &sim, Flavour::DataCenter), json!({"timeout": "3s"}));
        app.register(&spec).await;
    }
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let token = admin.csrf().await;
    let (_, _, body) = admin.get("/console/integrations?status=faulty").await;
    assert!(
        body.contains("Faulty (3)") && body.contains("Check these 3 now"),
        "{body}"
    );
    let check = |status: &'static str, q: &'static str| {
        let admin = &admin;
        let token = token.clone();
        async move {
            let (status, headers, body) = admin
                .post(
                    "/console/check-integrations",
                    &[("csrf", token.as_str()), ("status", status), ("q", q)],
                )
                .await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
            headers[LOCATION].to_str().unwrap().to_owned()
        }
    };

    // Jira is back but slow: the batch is still running when it is asked for again.
    sim.clear_faults();
    sim.fault("*", Fault::Hang);
    let back = check("faulty", "").await;
    assert_eq!(back, "/console/integrations?status=faulty");
    assert!(flash(&admin, &back).await.starts_with("Checking 3 integrations now, "));
    check("faulty", "").await;
    assert_eq!(
        flash(&admin, &back).await,
        "A batch of checks is still running; try again when it has finished."
    );
    let (_, _, body) = admin.get(&back).await;
    assert!(body.contains(r#"id="batch-running""#), "{body}");
    sim.clear_faults();
    let finished = support::eventually(std::time::Duration::from_secs(20), || async {
        !admin.get(&back).await.2.contains(r#"id="batch-running""#)
    })
    .await;
    assert!(finished, "the batch never finished");

    // Jira answers again: the faulty ones turn healthy, found by their tab and a search.
    check("faulty", "").await;
    let healthy = support::eventually(std::time::Duration::from_secs(20), || async {
        let body = admin.get("/console/integrations").await.2;
        body.contains("Healthy (3)") && !body.contains(r#"id="batch-running""#)
    })
    .await;
    assert!(healthy, "{}", admin.get("/console/integrations").await.2);
    let back = check("healthy", "dc-2").await;
    assert_eq!(back, "/console/integrations?status=healthy&q=dc-2");
    assert!(flash(&admin, &back).await.starts_with("Checking 1 integration now"));
    check("unchecked", "").await;
    assert_eq!(flash(&admin, "/console/integrations").await, "No integration to check.");
}

async fn a_check_slower_than_a_request_goes_on_in_the_background(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.http.request_timeout = std::time::Duration::from_secs(3)).await
    else {
        return;
    };
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let spec = support::integrations::with(spec_for("slow", &sim, Flavour::DataCenter), json!({"timeout": "30s"}));
    app.register(&spec).await;
    let mut admin = ConsoleClient::new(&app);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    let token = admin.csrf().await;
    // Jira stops answering: the page comes back before the request limit, and says so.
    sim.fault("*", Fault::Hang);
    let (status, headers, body) = admin
        .post("/console/integrations/slow/check", &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[LOCATION], "/console/integrations/slow");
    assert_eq!(
        flash(&admin, "/console/integrations/slow").await,
        "Checking slow. Jira is slow to answer: the check goes on in the background; reload this page for its verdict."
    );
    let (status, _, _) = admin
        .post("/console/integrations/nope/check", &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
