//! The console end to end in headless Chromium: what an admin does on a bad day (find the faulty
//! integration, check it again, resend errored mail, sign out), the attacks a browser can carry
//! (cross-site forms, a planted session id), the monitor's read-only view, phone-sized pages and the
//! keyboard. `screenshots` (ignored; run by scripts/screenshots.sh) saves every page at two sizes.

use crate::support;

use std::path::PathBuf;
use std::time::Duration;

use axum::response::Html;
use fantoccini::key::Key;
use reqwest::Method;
use serde_json::json;
use support::browser::Browser;
use support::integrations::spec_for;
use support::jira_sim::{Flavour, JiraSim};
use support::smtp::SmtpSink;
use support::{ADMIN_PASSWORD, Backend, TestApp, spawn_app, spawn_app_with};

/// Registers an integration whose Jira refuses connections.
async fn unreachable_integration(app: &TestApp, name: &str) {
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&json!({"name": name, "url": "http://127.0.0.1:1", "auth": {"type": "basic", "username": "svc-herald", "password": "pw"}, "project_key": "SEC", "timeout": "2s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// A bad day: a relay that refuses every recipient (mail ends in the error queue), a healthy Jira
/// Cloud integration `jira-cloud` and an unreachable `jira-onprem`.
async fn a_bad_day() -> Option<(TestApp, SmtpSink, JiraSim)> {
    let sink = SmtpSink::start(&["-f", "RCPT"])?;
    let url = sink.url();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url)
    })
    .await?;
    let jira = JiraSim::start(Flavour::Cloud).await;
    app.register(&spec_for("jira-cloud", &jira, Flavour::Cloud)).await;
    unreachable_integration(&app, "jira-onprem").await;
    Some((app, sink, jira))
}

async fn submit_mail(app: &TestApp, to: &str, subject: &str) -> String {
    let response = app
        .admin(Method::POST, "/api/v1/mail")
        .json(&json!({"to": [to], "subject": subject, "text": "Disk almost full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn integration_exists(app: &TestApp, name: &str) -> bool {
    app.admin(Method::GET, &format!("/api/v1/integrations/{name}"))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_finds_the_faulty_integration_checks_it_resends_mail_and_signs_out() {
    let Some((app, _sink, _jira)) = a_bad_day().await else {
        return;
    };
    let id = submit_mail(&app, "oncall@example.com", "Nightly scan: 3 critical findings").await;
    assert_eq!(app.state.delivery.deliver_due_batch(100).await.unwrap().parked, 1);
    let Some(browser) = Browser::start(1280, 800).await else {
        return;
    };

    browser.sign_in(&app.base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(browser.text("#faulty-count").await, "1");
    assert_eq!(browser.text("#healthy-count").await, "1");
    assert_eq!(browser.text("#errors-total").await, "1");
    let problems = browser.text("#problems").await;
    assert!(
        problems.contains("jira-onprem") && problems.contains("The system is unable to connect to Jira."),
        "{problems}"
    );

    browser.click("#problems a").await;
    browser.find("#status-reason").await;
    assert!(browser.text("#status-reason").await.contains("refused"));
    assert_eq!(browser.text("#status-badge").await, "Faulty");
    browser.click("#check-now").await;
    let page = browser.wait_for_text("Checked jira-onprem: FAULTY_CONFIGURATION").await;
    assert!(page.contains("connectivity"), "the steps are listed: {page}");
    assert!(browser.exists("svg.chart rect.bad").await);
    assert_eq!(
        app.admin_json("/api/v1/integrations/jira-onprem/history")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    browser.click("a[href='/console/mail']").await;
    browser.click("#tab-errors").await;
    let row = browser.text(&format!("tr[data-id='{id}']")).await;
    assert!(
        row.contains("Nightly scan") && row.contains("oncall@example.com") && row.contains("permanent error"),
        "{row}"
    );
    browser.click(&format!("tr[data-id='{id}'] button.resend")).await;
    browser
        .wait_for_text(&format!("Message {id} is queued again for delivery."))
        .await;
    assert_eq!(browser.text("#mail-empty").await, "The error queue is empty.");
    browser.click("#tab-queue").await;
    browser.find(&format!("tr[data-id='{id}']")).await;
    let status: serde_json::Value = app.admin_json("/rest/mailqueue/1.0/status").await;
    assert_eq!(status, json!({"size": 1, "errorSize": 0}));

    browser.click("#sign-out").await;
    browser.wait_for_text("You are signed out.").await;
    browser.goto(&format!("{}/console/mail", app.base)).await;
    browser.find("#sign-in").await;
    assert!(browser.path().await.starts_with("/console/sign-in?next="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_forms_and_planted_sessions_fail_in_the_browser() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    unreachable_integration(&app, "jira-prod").await;
    let Some(browser) = Browser::start(1280, 800).await else {
        return;
    };

    // Session fixation: the browser arrives with a session id chosen by someone else.
    browser.goto(&format!("{}/console/sign-in", app.base)).await;
    browser
        .client
        .execute(
            "document.cookie = 'herald_session=attacker-chosen-session-id; path=/console'",
            vec![],
        )
        .await
        .unwrap();
    let planted = browser.client.get_named_cookie("herald_session").await.unwrap();
    assert_eq!(planted.value(), "attacker-chosen-session-id");
    browser.sign_in(&app.base, "admin", ADMIN_PASSWORD).await;
    let session = browser.client.get_named_cookie("herald_session").await.unwrap();
    assert_ne!(session.value(), "attacker-chosen-session-id");
    assert!(session.value().len() >= 43);
    assert_eq!(session.http_only(), Some(true));

    // A page on another origin posts a form to the console while the admin is signed in.
    let target = format!("{}/console/integrations/jira-prod/delete", app.base);
    let evil = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let target = target.clone();
            async move {
                Html(format!(
                    r#"<!doctype html><form id="f" method="post" action="{target}"><input name="csrf" value="guessed"></form>
                       <script>document.getElementById("f").submit()</script>"#
                ))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, evil).await });
    browser.goto(&evil_url).await;
    let page = browser.wait_for_text("Form refused").await;
    assert!(page.contains("sent from another site"), "{page}");
    assert!(integration_exists(&app, "jira-prod").await);

    // The same post from a console page, but with a forged token: refused too.
    browser
        .goto(&format!("{}/console/integrations/jira-prod", app.base))
        .await;
    browser
        .client
        .execute(
            "document.querySelector('#delete').form.querySelector('[name=csrf]').value = 'forged'",
            vec![],
        )
        .await
        .unwrap();
    browser
        .client
        .execute("document.querySelector('#delete').form.submit()", vec![])
        .await
        .unwrap();
    let page = browser.wait_for_text("Form refused").await;
    assert!(page.contains("CSRF token"), "{page}");
    assert!(integration_exists(&app, "jira-prod").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_sees_everything_and_cannot_change_anything() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    unreachable_integration(&app, "jira-prod").await;
    app.state.integrations.check_now("jira-prod").await.unwrap();
    let password = app.create_user("watcher", "monitor").await;
    let Some(browser) = Browser::start(1280, 800).await else {
        return;
    };
    browser.sign_in(&app.base, "watcher", &password).await;
    assert!(browser.text("#read-only").await.contains("monitor"));
    browser
        .goto(&format!("{}/console/integrations/jira-prod", app.base))
        .await;
    assert!(
        browser
            .text("#status-reason")
            .await
            .contains("The system is unable to connect to Jira.")
    );
    for control in ["#check-now", "#edit", "#delete"] {
        assert!(!browser.exists(control).await, "{control} is shown to a monitor");
    }
    browser.goto(&format!("{}/console/mail?view=errors", app.base)).await;
    browser.find("#mail-empty").await;
    assert!(!browser.exists("#resend-all").await && !browser.exists("#delete-all").await);
    browser.goto(&format!("{}/console/integrations", app.base)).await;
    browser.find("#integrations").await;
    assert!(!browser.exists("#add-integration").await);

    // Even a hand-made form with the monitor's own valid token is refused.
    browser
        .client
        .execute(
            "const f = document.createElement('form'); f.method = 'post'; \
             f.action = '/console/integrations/jira-prod/delete'; \
             const t = document.createElement('input'); t.name = 'csrf'; \
             t.value = document.querySelector('[name=csrf]').value; f.appendChild(t); \
             document.body.appendChild(f); f.submit();",
            vec![],
        )
        .await
        .unwrap();
    let page = browser.wait_for_text("Not allowed").await;
    assert!(page.contains("monitor role"), "{page}");
    assert!(integration_exists(&app, "jira-prod").await);
}

/// The elements that stick out of the window on the right (a layout broken by long content), outside
/// the tables' own scroll boxes.
async fn overflowing(browser: &Browser) -> Vec<String> {
    let found = browser
        .client
        .execute(
            "const w = window.innerWidth; return [...document.querySelectorAll('body *')]
               .filter(e => !(e.parentElement && e.parentElement.closest('.scroll')) && e.getBoundingClientRect().right > w + 0.5)
               .map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

const LONG_NAME: &str =
    "jira-datacenter-for-the-security-operations-team-in-the-europe-middle-east-and-africa-region-secondary";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_phone_with_long_names_and_work_from_the_keyboard() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    unreachable_integration(&app, LONG_NAME).await;
    app.state.integrations.check_now(LONG_NAME).await.unwrap();
    submit_mail(
        &app,
        "a-very-long-distribution-list-name-for-security-alerts@example.com",
        &"Subject ".repeat(20),
    )
    .await;
    let long_user = "service-account.for-the-nightly-security-scanner@example.com";
    app.create_user(long_user, "monitor").await;
    app.create_token(long_user).await;
    let Some(browser) = Browser::start(390, 844).await else {
        return;
    };
    browser.sign_in(&app.base, "admin", ADMIN_PASSWORD).await;
    let detail = format!("/console/integrations/{LONG_NAME}");
    let tickets = format!("{detail}/tickets");
    for path in [
        "/console/",
        "/console/integrations",
        detail.as_str(),
        tickets.as_str(),
        "/console/add-integration",
        "/console/mail",
        "/console/cluster",
        "/console/users",
        "/console/account",
    ] {
        browser.goto(&format!("{}{path}", app.base)).await;
        browser.find("#main").await;
        let wide = overflowing(&browser).await;
        assert!(wide.is_empty(), "{path} is wider than a 390 px phone: {wide:?}");
    }

    // From the keyboard: the first Tab reaches the skip link, which leads to the content.
    browser.goto(&format!("{}/console/integrations", app.base)).await;
    browser
        .find("body")
        .await
        .send_keys(&Key::Tab.to_string())
        .await
        .unwrap();
    let focused = browser
        .client
        .execute("return document.activeElement.className", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "skip");
    // Enter on a focused link opens it; Enter on a focused button submits its form.
    let link = browser.find(&format!("a[href='{detail}']")).await;
    link.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser
        .find("#check-now")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    browser
        .wait_for_text(&format!("Checked {LONG_NAME}: FAULTY_CONFIGURATION"))
        .await;
}

/// Saves a screenshot of every page at 1280×800 and 390×844 into `HERALD_SCREENSHOTS` (default
/// `target/screenshots`), with sample data: a healthy, a faulty and a never-checked integration,
/// queued and errored mail. Run by scripts/screenshots.sh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "produces screenshots for review; run scripts/screenshots.sh"]
async fn screenshots() {
    let out = std::env::var_os("HERALD_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"));
    std::fs::create_dir_all(&out).unwrap();
    let Some((app, _sink, _jira)) = a_bad_day().await else {
        return;
    };
    for _ in 0..12 {
        app.state.integrations.check_now("jira-cloud").await.unwrap();
    }
    unreachable_integration(&app, LONG_NAME).await;
    for i in 0..3 {
        submit_mail(
            &app,
            "oncall@example.com",
            &format!("Nightly scan {i}: critical findings"),
        )
        .await;
    }
    app.state.delivery.deliver_due_batch(100).await.unwrap();
    for i in 0..4 {
        submit_mail(&app, "team@example.com", &format!("Ticket SEC-{} created", 100 + i)).await;
    }
    app.create_user("grafana", "monitor").await;
    app.create_user("jira-automation", "mail").await;
    app.create_token("grafana").await;
    app.create_token("jira-automation").await;
    let pages = [
        ("overview", "/console/"),
        ("integrations", "/console/integrations"),
        ("integration-faulty", "/console/integrations/jira-onprem"),
        ("integration-healthy", "/console/integrations/jira-cloud"),
        ("integration-new", "/console/add-integration"),
        ("tickets", "/console/integrations/jira-cloud/tickets"),
        ("mail-queue", "/console/mail?view=queue"),
        ("mail-errors", "/console/mail?view=errors"),
        ("cluster", "/console/cluster"),
        ("users", "/console/users"),
        ("account", "/console/account"),
    ];
    for (width, height) in [(1280, 800), (390, 844)] {
        let Some(browser) = Browser::start(width, height).await else {
            return;
        };
        browser.goto(&format!("{}/console/sign-in", app.base)).await;
        browser.find("#sign-in").await;
        browser
            .screenshot(&out.join(format!("sign-in-{width}x{height}.png")))
            .await;
        browser.sign_in(&app.base, "admin", ADMIN_PASSWORD).await;
        for (name, path) in pages {
            browser.goto(&format!("{}{path}", app.base)).await;
            browser.find("#main").await;
            browser
                .screenshot(&out.join(format!("{name}-{width}x{height}.png")))
                .await;
        }
    }
    let _ = Duration::ZERO;
    println!("screenshots in {}", out.display());
}
