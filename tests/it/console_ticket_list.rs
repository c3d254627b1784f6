//! The console's Tickets page of an integration, on both backends, against the Jira simulator: its
//! problems with their issues, the error list with Jira's own words, resend, delete and forget,
//! the test event, and who may do what.

use std::time::Duration;

use crate::support;

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::console::{ConsoleClient, text_after};
use support::integrations::{encode, spec_for, with};
use support::jira_sim::{Flavour, JiraSim, SimConfig};
use support::{ADMIN_PASSWORD, Backend, TestApp, eventually, spawn_app_with};

backend_tests!(
    the_page_lists_problems_with_their_issues_and_the_error_list_with_jiras_words,
    resend_applies_a_fixed_problem_and_delete_and_forget_remove_problems,
    a_test_event_becomes_a_jira_issue_and_is_refused_without_tickets,
    monitors_see_the_page_and_cannot_act_and_forms_need_the_csrf_token,
);

const DEADLINE: Duration = Duration::from_secs(30);
const PAGE: &str = "/console/integrations/jira/tickets";
/// A dedup key with what a path could not carry: a slash, spaces, non-ASCII letters, markup.
const AWKWARD_KEY: &str = "scan/Größe <b>1</b> & \"2\"";

/// Herald delivering tickets quickly, and the integration `jira` with tickets on against a Data
/// Center simulator whose project has an optional field `customfield_10010` that events fill.
async fn app(backend: Backend) -> Option<(TestApp, JiraSim)> {
    let app = spawn_app_with(backend, |s| {
        s.tickets.delivery = true;
        s.tickets.client.request_timeout = Duration::from_secs(1);
        s.tickets.retry.initial = Duration::from_millis(100);
        s.tickets.retry.max = Duration::from_millis(400);
    })
    .await?;
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.optional_fields.push("customfield_10010".into());
    let sim = JiraSim::start_with(config).await;
    let spec = with(
        spec_for("jira", &sim, Flavour::DataCenter),
        json!({"project_key": "SEC", "issue_type": "Bug", "tickets": {"enabled": true,
            "fields": {"customfield_10010": "{{ labels.team | default('ops') }}"}}}),
    );
    let created = app.register(&spec).await;
    assert_eq!(created["check"]["status"], "HEALTHY_INTEGRATION", "{created}");
    Some((app, sim))
}

async fn post_event(app: &TestApp, key: &str) {
    let response = app
        .admin(Method::POST, "/api/v1/events")
        .json(
            &json!({"integration": "jira", "dedup_key": key, "status": "firing", "summary": format!("Finding {key}")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// One problem through the API (null when there is none).
async fn ticket(app: &TestApp, key: &str) -> Value {
    let response = app
        .admin(Method::GET, &format!("/api/v1/tickets/jira/{}", encode(key)))
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::NOT_FOUND {
        return Value::Null;
    }
    response.json::<Value>().await.unwrap()["ticket"].clone()
}

async fn wait_for_state(app: &TestApp, key: &str, state: &str) {
    let reached = eventually(DEADLINE, || async { ticket(app, key).await["state"] == state }).await;
    assert!(reached, "{key} never became {state}: {}", ticket(app, key).await);
}

/// A problem whose create Jira refuses: it waits in the error list with Jira's field error.
async fn parked(app: &TestApp, sim: &JiraSim, key: &str) {
    sim.tickets()
        .reject_field("customfield_10010", Some("Team is not valid."));
    post_event(app, key).await;
    wait_for_state(app, key, "error").await;
}

/// The admin's console, signed in, and its CSRF token.
async fn admin(app: &TestApp) -> (ConsoleClient, String) {
    let mut console = ConsoleClient::new(app);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    let token = console.csrf().await;
    (console, token)
}

/// Posts a form of the Tickets page: it must send back to the page, whose notice is returned.
async fn act(console: &ConsoleClient, action: &str, form: &[(&str, &str)]) -> String {
    let (status, headers, body) = console.post(&format!("{PAGE}/{action}"), form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{action}: {body}");
    assert_eq!(headers[LOCATION], PAGE);
    let (_, _, page) = console.get(PAGE).await;
    text_after(&page, r#"id="flash">"#)
        .unwrap_or_else(|| panic!("no notice after {action}: {page}"))
        .to_owned()
}

/// The HTML of one table of the page (`ticket-errors` or `ticket-problems`), empty when absent.
fn table<'a>(page: &'a str, id: &str) -> &'a str {
    page.split(&format!(r#"<table id="{id}""#))
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or("")
}

async fn the_page_lists_problems_with_their_issues_and_the_error_list_with_jiras_words(backend: Backend) {
    let Some((app, sim)) = app(backend).await else { return };
    post_event(&app, "a/1").await;
    wait_for_state(&app, "a/1", "open").await;
    parked(&app, &sim, AWKWARD_KEY).await;
    let open = ticket(&app, "a/1").await;
    let (issue_key, issue_url) = (open["issue_key"].as_str().unwrap(), open["issue_url"].as_str().unwrap());

    let (console, _) = admin(&app).await;
    let (status, _, page) = console.get(PAGE).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // Counts by state.
    for (state, count) in [("error", 1), ("open", 1), ("pending", 0), ("resolved", 0)] {
        let counted = page
            .split(&format!(r#"data-state="{state}""#))
            .nth(1)
            .and_then(|rest| text_after(rest, r#"class="count">"#));
        assert_eq!(counted, Some(count.to_string().as_str()), "{state}: {page}");
    }
    // The open problem, its issue linked to Jira.
    let others = table(&page, "ticket-problems");
    assert!(
        others.contains("<code>a/1</code>") && others.contains("Finding a/1"),
        "{others}"
    );
    assert!(
        others.contains(&format!(
            r#"<a href="{issue_url}" rel="noopener noreferrer">{issue_key}</a>"#
        )),
        "{others}"
    );
    assert!(
        !others.contains("Größe"),
        "the error list's problem is not listed twice"
    );
    // The parked problem, with Jira's status and field error, its key escaped, never markup.
    let errors = table(&page, "ticket-errors");
    assert!(errors.contains("Jira answered 400"), "{errors}");
    assert!(
        errors.contains("<code>customfield_10010</code>: Team is not valid."),
        "{errors}"
    );
    assert!(errors.contains("not until resent"), "{errors}");
    assert!(
        errors.contains("<code>scan/Größe &#60;b&#62;1&#60;/b&#62; &#38; &#34;2&#34;</code>"),
        "{errors}"
    );
    assert!(!page.contains("<b>1</b>"), "a dedup key is never markup");
    assert!(page.contains(r#"id="resend-all""#) && page.contains(r#"id="send-test""#));

    // The integration page and the list lead here.
    let (_, _, integration) = console.get("/console/integrations/jira").await;
    assert!(
        integration.contains(r#"href="/console/integrations/jira/tickets" id="tickets""#),
        "{integration}"
    );
    assert!(integration.contains("1 in error"), "{integration}");
    let (_, _, list) = console.get("/console/integrations").await;
    assert!(
        list.contains(r#"<a href="/console/integrations/jira/tickets" class="tickets-link">"#),
        "{list}"
    );

    // An unknown integration is a 404 page.
    let (status, _, _) = console.get("/console/integrations/nope/tickets").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn resend_applies_a_fixed_problem_and_delete_and_forget_remove_problems(backend: Backend) {
    let Some((app, sim)) = app(backend).await else { return };
    parked(&app, &sim, AWKWARD_KEY).await;
    let (console, token) = admin(&app).await;

    // Fixed in Jira, then resent from the page: the issue is created.
    sim.tickets().accept_fields();
    let notice = act(&console, "resend", &[("csrf", &token), ("key", AWKWARD_KEY)]).await;
    assert!(notice.contains("queued again"), "{notice}");
    wait_for_state(&app, AWKWARD_KEY, "open").await;
    assert_eq!(sim.tickets().issues().len(), 1);
    // Resending it again: nothing is parked any more, said in the notice.
    let notice = act(&console, "resend", &[("csrf", &token), ("key", AWKWARD_KEY)]).await;
    assert!(notice.contains("no event in the error list"), "{notice}");

    // Another parked problem, deleted: it leaves the error list and the page. (Jira refused its
    // create, so Herald holds no mark of a create that might exist.)
    parked(&app, &sim, "b/2").await;
    let notice = act(&console, "delete", &[("csrf", &token), ("key", "b/2")]).await;
    assert_eq!(notice, "“b/2”: 1 event deleted.");
    assert_eq!(ticket(&app, "b/2").await, Value::Null);
    let (_, _, page) = console.get(PAGE).await;
    assert!(page.contains("The error list is empty."), "{page}");
    assert!(!page.contains("<code>b/2</code>"), "{page}");

    // Resend all acts on every parked problem of the integration.
    parked(&app, &sim, "c/3").await;
    parked(&app, &sim, "d/4").await;
    sim.tickets().accept_fields();
    let notice = act(&console, "resend-all", &[("csrf", &token)]).await;
    assert!(notice.starts_with("2 events from the error list"), "{notice}");
    wait_for_state(&app, "c/3", "open").await;
    wait_for_state(&app, "d/4", "open").await;

    // Forgetting an open problem's issue: Herald no longer lists it.
    let notice = act(
        &console,
        "delete",
        &[("csrf", &token), ("key", AWKWARD_KEY), ("forget", "1")],
    )
    .await;
    assert!(notice.contains("Herald forgot its issue"), "{notice}");
    assert_eq!(ticket(&app, AWKWARD_KEY).await, Value::Null);
    let notice = act(&console, "delete", &[("csrf", &token), ("key", AWKWARD_KEY)]).await;
    assert!(notice.contains("any more"), "{notice}");
    // A form without a key is a bad request.
    let (status, _, _) = console.post(&format!("{PAGE}/delete"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn a_test_event_becomes_a_jira_issue_and_is_refused_without_tickets(backend: Backend) {
    let Some((app, sim)) = app(backend).await else { return };
    let (console, token) = admin(&app).await;
    let notice = act(&console, "test", &[("csrf", &token)]).await;
    assert!(
        notice.starts_with("Test event ") && notice.contains("appears in Jira shortly"),
        "{notice}"
    );
    let id = notice["Test event ".len()..].split(' ').next().unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok(), "{notice}");
    let created = eventually(DEADLINE, || async { sim.tickets().issues().len() == 1 }).await;
    assert!(created, "no issue for the test event");
    let issue = sim.tickets().issues()[0].clone();
    assert_eq!(issue.summary, "Test event from Herald's console");
    // Listed on the page once applied, with its issue.
    let listed = eventually(DEADLINE, || async {
        let (_, _, page) = console.get(PAGE).await;
        table(&page, "ticket-problems").contains(&format!(">{}</a>", issue.key))
    })
    .await;
    assert!(listed);

    // An integration without tickets: refused, with the intake's reason.
    app.register(&spec_for("plain", &sim, Flavour::DataCenter)).await;
    let (status, headers, _) = console
        .post("/console/integrations/plain/tickets/test", &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/console/integrations/plain/tickets");
    let (_, _, page) = console.get("/console/integrations/plain/tickets").await;
    let notice = text_after(&page, r#"id="flash">"#).unwrap();
    assert!(
        notice.contains("does not have tickets enabled") && notice.contains("No test event was sent."),
        "{notice}"
    );
    assert!(page.contains(r#"id="tickets-off""#), "{page}");
    assert_eq!(sim.tickets().issues().len(), 1);
}

async fn monitors_see_the_page_and_cannot_act_and_forms_need_the_csrf_token(backend: Backend) {
    let Some((app, sim)) = app(backend).await else { return };
    parked(&app, &sim, "a/1").await;
    let password = app.create_user("watcher", "monitor").await;
    let mut monitor = ConsoleClient::new(&app);
    monitor.sign_in("watcher", &password).await;
    let (status, _, page) = monitor.get(PAGE).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Team is not valid.") && page.contains("Read-only"),
        "{page}"
    );
    for control in [
        r#"id="send-test""#,
        r#"id="resend-all""#,
        "class=\"small resend\"",
        "/tickets/delete",
    ] {
        assert!(!page.contains(control), "a monitor gets {control}");
    }
    let token = monitor.csrf().await;
    for action in ["resend", "resend-all", "delete", "test"] {
        let (status, _, body) = monitor
            .post(&format!("{PAGE}/{action}"), &[("csrf", &token), ("key", "a/1")])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
        assert!(body.contains("monitor role"), "{body}");
    }
    // An admin's post without the session's token is refused too.
    let (admin, _) = admin(&app).await;
    for action in ["resend", "resend-all", "delete", "test"] {
        let (status, _, body) = admin.post(&format!("{PAGE}/{action}"), &[("key", "a/1")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
        assert!(body.contains("CSRF token"), "{body}");
    }
    // Nothing changed.
    assert_eq!(ticket(&app, "a/1").await["state"], "error");
    assert!(sim.tickets().issues().is_empty());
}
