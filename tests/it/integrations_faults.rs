//! Every way a Jira integration can fail, against the Jira simulator: each verdict names the step and
//! says precisely what to fix. (Backend-independent: these run on SQLite.)

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::integrations::{UNREACHABLE, first_check, spec_for, with};
use support::jira_sim::{self, Fault, Flavour, JiraSim, SimConfig};
use support::{Backend, spawn_app};

/// Registers an integration for `sim` (with `extra` settings) and returns its first check.
async fn verdict(sim: &JiraSim, flavour: Flavour, extra: Value) -> Value {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let report = first_check(&app, &with(spec_for("jira", sim, flavour), extra)).await;
    eprintln!("REASON [{}]: {}", report["failed_step"], report["reason"]);
    report
}

fn reason(report: &Value) -> &str {
    report["reason"].as_str().unwrap()
}

fn assert_faulty(report: &Value, step: &str, needle: &str) {
    assert_eq!(report["status"], "FAULTY_CONFIGURATION", "{report}");
    assert_eq!(report["failed_step"], step, "{report}");
    assert!(
        reason(report).contains(needle),
        "expected `{needle}` in: {}",
        reason(report)
    );
    if step == "connectivity" {
        assert!(reason(report).starts_with(UNREACHABLE), "{}", reason(report));
    }
}

fn assert_healthy(report: &Value) {
    assert_eq!(report["status"], "HEALTHY_INTEGRATION", "{report}");
    assert_eq!(report["reason"], "Integration is healthy and operational.");
}

#[tokio::test]
async fn an_unknown_host_is_a_dns_failure() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let spec = json!({"name": "jira", "url": "http://jira.herald-test.invalid", "auth": {"type": "bearer", "token": "t"}, "timeout": "3s"});
    let report = first_check(&app, &spec).await;
    eprintln!("REASON: {}", report["reason"]);
    assert_faulty(&report, "connectivity", "cannot be resolved");
}

#[tokio::test]
async fn a_closed_port_is_a_refused_connection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let spec =
        json!({"name": "jira", "url": format!("http://127.0.0.1:{port}"), "auth": {"type": "bearer", "token": "t"}});
    let report = first_check(&app, &spec).await;
    eprintln!("REASON: {}", report["reason"]);
    assert_faulty(&report, "connectivity", "was refused");
}

#[tokio::test]
async fn a_hanging_jira_times_out_within_the_budget() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault("/rest/api/2/serverInfo", Fault::Hang);
    let report = verdict(&sim, Flavour::DataCenter, json!({"timeout": "500ms"})).await;
    assert_faulty(&report, "connectivity", "no answer to GET");
}

#[tokio::test]
async fn a_slow_jira_within_the_budget_is_healthy() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault("/rest/api/2/myself", Fault::Slow(Duration::from_millis(300)));
    assert_healthy(&verdict(&sim, Flavour::DataCenter, json!({"timeout": "5s"})).await);
}

#[tokio::test]
async fn an_unknown_certificate_authority_is_named() {
    let sim = JiraSim::start_tls(SimConfig::new(Flavour::DataCenter), &["localhost"]).await;
    let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
    assert_faulty(&report, "connectivity", "not signed by a trusted CA");
}

#[tokio::test]
async fn a_private_ca_certificate_makes_tls_work() {
    let sim = JiraSim::start_tls(SimConfig::new(Flavour::DataCenter), &["localhost"]).await;
    let ca = sim.ca_pem.clone().unwrap();
    assert_healthy(&verdict(&sim, Flavour::DataCenter, json!({"ca_cert_pem": ca})).await);
}

#[tokio::test]
async fn a_certificate_for_another_host_is_named() {
    let sim = JiraSim::start_tls(SimConfig::new(Flavour::DataCenter), &["jira.example.com"]).await;
    let ca = sim.ca_pem.clone().unwrap();
    let report = verdict(&sim, Flavour::DataCenter, json!({"ca_cert_pem": ca})).await;
    assert_faulty(&report, "connectivity", "not valid for the host name `localhost`");
}

#[tokio::test]
async fn a_missing_context_path_is_explained() {
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.context_path = "/jira".into();
    let sim = JiraSim::start_with(config).await;
    let report = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"url": format!("http://{}", sim.addr)}),
    )
    .await;
    assert_faulty(&report, "connectivity", "context path");
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    assert_healthy(&first_check(&app, &spec_for("jira", &sim, Flavour::DataCenter)).await);
}

#[tokio::test]
async fn malformed_json_is_not_taken_for_jira() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    sim.fault("/rest/api/2/serverInfo", Fault::MalformedJson);
    let report = verdict(&sim, Flavour::Cloud, json!({})).await;
    assert_faulty(&report, "connectivity", "did not answer with Jira's serverInfo JSON");
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    sim.fault("/rest/api/2/serverInfo", Fault::Oversized(5 << 20));
    let report = verdict(&sim, Flavour::Cloud, json!({})).await;
    assert_faulty(&report, "connectivity", "larger than 4 MiB");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let other = JiraSim::start(Flavour::DataCenter).await;
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let elsewhere = format!("http://localhost:{}/rest/api/2/myself", other.addr.port());
    sim.fault("/rest/api/2/serverInfo", Fault::Redirect(elsewhere.clone()));
    sim.fault("/rest/api/2/myself", Fault::Redirect(elsewhere));
    let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
    assert_faulty(&report, "connectivity", "redirects to another host");
    assert_eq!(other.total(), 0, "credentials must never reach the other host");
}

#[tokio::test]
async fn a_server_error_is_reported_with_its_status() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault(
        "/rest/api/2/serverInfo",
        Fault::Status(500, r#"{"errorMessages":["Internal server error"],"errors":{}}"#.into()),
    );
    let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
    assert_faulty(
        &report,
        "connectivity",
        "HTTP 500 Internal Server Error (Internal server error)",
    );
}

#[tokio::test]
async fn rate_limits_and_restarts_are_waited_out_within_the_budget() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    sim.fault(
        "/rest/api/2/serverInfo",
        Fault::RateLimited {
            retry_after: 1,
            times: 1,
        },
    );
    sim.fault(
        "/rest/api/2/myself",
        Fault::Unavailable {
            retry_after: 1,
            times: 1,
        },
    );
    assert_healthy(&verdict(&sim, Flavour::Cloud, json!({})).await);
    assert_eq!(sim.count("/rest/api/2/serverInfo"), 2);
    assert_eq!(sim.count("/rest/api/2/myself"), 2);
}

#[tokio::test]
async fn a_rate_limit_beyond_the_budget_is_reported() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    sim.fault(
        "/rest/api/2/serverInfo",
        Fault::RateLimited {
            retry_after: 120,
            times: 100,
        },
    );
    let report = verdict(&sim, Flavour::Cloud, json!({})).await;
    assert_faulty(
        &report,
        "connectivity",
        "rate-limiting Herald (HTTP 429 with Retry-After 120 s",
    );
    assert_eq!(sim.count("/rest/api/2/serverInfo"), 1);
}

#[tokio::test]
async fn a_wrong_password_on_data_center_is_authenticated_failed() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let report = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"auth": {"type": "basic", "username": jira_sim::USER, "password": "wrong"}}),
    )
    .await;
    assert_faulty(&report, "authentication", "AUTHENTICATED_FAILED");
}

#[tokio::test]
async fn a_captcha_challenge_is_recognised() {
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.captcha_after = 1;
    let sim = JiraSim::start_with(config).await;
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let spec = with(
        spec_for("jira", &sim, Flavour::DataCenter),
        json!({"auth": {"type": "basic", "username": jira_sim::USER, "password": "wrong"}}),
    );
    let first = first_check(&app, &spec).await;
    assert_faulty(&first, "authentication", "AUTHENTICATED_FAILED");
    let second = app.check("jira").await;
    eprintln!("REASON: {}", second["reason"]);
    assert_faulty(&second, "authentication", "CAPTCHA");
}

#[tokio::test]
async fn seraph_login_reasons_on_200_are_refusals() {
    for (reason_header, needle) in [
        ("AUTHENTICATED_FAILED", "AUTHENTICATED_FAILED, HTTP 200"),
        ("AUTHENTICATION_DENIED", "AUTHENTICATION_DENIED, HTTP 200"),
    ] {
        let sim = JiraSim::start(Flavour::DataCenter).await;
        sim.fault("/rest/api/2/myself", Fault::SeraphOn200(reason_header));
        let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
        assert_faulty(&report, "authentication", needle);
    }
}

#[tokio::test]
async fn an_html_login_page_is_a_refusal() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault("/rest/api/2/myself", Fault::HtmlLoginPage);
    let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
    assert_faulty(&report, "authentication", "HTML login page");
}

#[tokio::test]
async fn a_password_on_cloud_is_deprecated() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(
        &sim,
        Flavour::Cloud,
        json!({"auth": {"type": "basic", "username": jira_sim::USER, "password": jira_sim::PASSWORD}}),
    )
    .await;
    assert_faulty(
        &report,
        "authentication",
        "basic authentication with passwords is deprecated",
    );
    assert!(reason(&report).contains("API token"));
}

#[tokio::test]
async fn a_personal_access_token_sent_as_basic_gets_a_hint() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let report = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"auth": {"type": "basic", "username": jira_sim::USER, "password": jira_sim::PAT}}),
    )
    .await;
    assert_faulty(&report, "authentication", "looks like a personal access token");
    let bearer = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"auth": {"type": "bearer", "token": jira_sim::PAT}}),
    )
    .await;
    assert_healthy(&bearer);
}

#[tokio::test]
async fn an_api_token_as_bearer_on_cloud_gets_a_hint() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(
        &sim,
        Flavour::Cloud,
        json!({"auth": {"type": "bearer", "token": jira_sim::API_TOKEN}}),
    )
    .await;
    assert_faulty(&report, "authentication", "HTTP 401");
    assert!(reason(&report).contains("does not accept API tokens as Bearer"));
}

#[tokio::test]
async fn a_contradicting_installation_type_is_a_configuration_fault() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let report = verdict(&sim, Flavour::DataCenter, json!({"installation_type": "cloud"})).await;
    assert_faulty(&report, "configuration", "reports deploymentType `Server`");
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(&sim, Flavour::Cloud, json!({"installation_type": "server"})).await;
    assert_faulty(&report, "configuration", "reports deploymentType `Cloud`");
    assert_healthy(&verdict(&sim, Flavour::Cloud, json!({"installation_type": "cloud"})).await);
}

#[tokio::test]
async fn a_missing_project_is_named() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(&sim, Flavour::Cloud, json!({"project_key": "NOPE"})).await;
    assert_faulty(&report, "configuration", "project `NOPE` does not exist or user");
}

#[tokio::test]
async fn missing_permissions_are_named() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.configure(|c| c.create = false);
    let report = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"project_key": "SEC", "issue_type": "Bug"}),
    )
    .await;
    assert_faulty(
        &report,
        "configuration",
        "lacks the permission CREATE_ISSUES in project `SEC`",
    );
}

#[tokio::test]
async fn an_unavailable_issue_type_lists_the_available_ones() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(
        &sim,
        Flavour::Cloud,
        json!({"project_key": "SEC", "issue_type": "Vulnerability"}),
    )
    .await;
    assert_faulty(
        &report,
        "configuration",
        "issue type `Vulnerability` is not available in project `SEC`",
    );
    assert!(reason(&report).contains("`Bug` (1), `Story` (10001)"));
}

#[tokio::test]
async fn required_fields_must_be_configured() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.configure(|c| c.required_fields = vec![("customfield_10010".into(), "Team".into())]);
    let report = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"project_key": "SEC", "issue_type": "Bug"}),
    )
    .await;
    assert_faulty(
        &report,
        "configuration",
        "requires `customfield_10010` (Team) that Herald does not set",
    );
    let fixed = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"project_key": "SEC", "issue_type": "1", "fields": {"customfield_10010": {"id": "42"}}}),
    )
    .await;
    assert_healthy(&fixed);
}

#[tokio::test]
async fn configured_fields_must_be_on_the_create_screen() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(
        &sim,
        Flavour::Cloud,
        json!({"project_key": "SEC", "issue_type": "Bug", "fields": {"customfield_99999": "x"}}),
    )
    .await;
    assert_faulty(&report, "configuration", "`customfield_99999` which the create screen");
    let ok = verdict(
        &sim,
        Flavour::Cloud,
        json!({"project_key": "SEC", "issue_type": "Bug", "fields": {"components": [{"name": "Backend"}]}}),
    )
    .await;
    assert_healthy(&ok);
}

#[tokio::test]
async fn old_servers_fall_back_to_the_old_createmeta_only_when_needed() {
    let sim = JiraSim::start(Flavour::Legacy).await;
    sim.configure(|c| c.required_fields = vec![("customfield_1".into(), "Severity".into())]);
    let report = verdict(
        &sim,
        Flavour::Legacy,
        json!({"project_key": "SEC", "issue_type": "Bug"}),
    )
    .await;
    assert_faulty(&report, "configuration", "requires `customfield_1` (Severity)");
    assert_eq!(sim.count("/rest/api/2/issue/createmeta"), 1);
    let modern = JiraSim::start(Flavour::DataCenter).await;
    assert_healthy(
        &verdict(
            &modern,
            Flavour::DataCenter,
            json!({"project_key": "SEC", "issue_type": "Bug"}),
        )
        .await,
    );
    assert_eq!(modern.count("/rest/api/2/issue/createmeta"), 0);
}

#[tokio::test]
async fn a_full_check_takes_three_round_trips() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(&sim, Flavour::Cloud, json!({"project_key": "SEC", "issue_type": "Bug"})).await;
    assert_healthy(&report);
    assert_eq!(report["round_trips"], 3, "{report}");
    assert_eq!(report["requests"], 6, "{report}");
    assert_eq!(sim.total(), 6);
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("connectivity", "passed"),
            ("authentication", "passed"),
            ("configuration", "passed")
        ]
    );
}

#[tokio::test]
async fn a_retry_after_beyond_any_clock_is_a_faulty_verdict_and_the_sweep_goes_on() {
    let hostile = JiraSim::start(Flavour::Cloud).await;
    hostile.fault(
        "/rest/api/2/serverInfo",
        Fault::RateLimited {
            retry_after: u64::MAX,
            times: usize::MAX,
        },
    );
    let fine = JiraSim::start(Flavour::Cloud).await;
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let report = first_check(&app, &spec_for("hostile", &hostile, Flavour::Cloud)).await;
    assert_faulty(
        &report,
        "connectivity",
        "Jira is rate-limiting Herald (HTTP 429 with Retry-After 18446744073709551615 s, more than the 3600 s \
         Herald waits at most, beyond the check's budget); try again later.",
    );
    app.register(&spec_for("fine", &fine, Flavour::Cloud)).await;
    let (status, body) = app.status_check("hostile").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("FAULTY_CONFIGURATION"), "{body}");
    let summary = app.state.integrations.sweep_once().await.unwrap();
    assert_eq!((summary.healthy, summary.faulty, summary.failed), (1, 1, 0));
}

#[tokio::test]
async fn the_sweep_loop_keeps_going_against_a_hostile_jira_and_reports_its_rounds() {
    let hostile = JiraSim::start(Flavour::Cloud).await;
    hostile.fault(
        "/rest/api/2/serverInfo",
        Fault::RateLimited {
            retry_after: u64::MAX,
            times: usize::MAX,
        },
    );
    let app = support::spawn_app_with(Backend::Sqlite, |s| s.checks.interval = Duration::from_millis(100))
        .await
        .unwrap();
    app.register(&spec_for("hostile", &hostile, Flavour::Cloud)).await;
    let rounds = |text: &str| {
        text.lines()
            .find(|l| l.starts_with(r#"herald_background_loop_last_round_timestamp_seconds{loop="integration_sweep"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<i64>().ok())
    };
    // Three sweeps after the registration's check: the loop survived each hostile answer.
    let swept = support::eventually(Duration::from_secs(20), || async {
        hostile.count("/rest/api/2/serverInfo") >= 4
    })
    .await;
    assert!(swept, "the sweep stopped checking");
    let metrics = app.admin_text("/metrics").await;
    assert!(rounds(&metrics).is_some_and(|at| at > 0), "{metrics}");
    assert!(
        metrics.contains(r#"herald_background_loop_up{loop="integration_sweep"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"herald_background_loop_failures_total{loop="integration_sweep",kind="panic"} 0"#),
        "{metrics}"
    );
    // Loops switched off in tests (delivery, cluster, alerts) show as not running, not as absent.
    assert!(
        metrics.contains(r#"herald_background_loop_up{loop="mail_delivery"} 0"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_schema_valid_figure_herald_does_not_need_is_not_a_fault() {
    let mut config = SimConfig::new(Flavour::Cloud);
    config.reported_total = Some(-8815336996594223);
    let sim = JiraSim::start_with(config).await;
    let report = verdict(&sim, Flavour::Cloud, json!({"project_key": "SEC", "issue_type": "Bug"})).await;
    assert_healthy(&report);
}

#[tokio::test]
async fn cloud_without_deployment_type_is_recognised_by_its_account_id_only_user() {
    let mut config = SimConfig::new(Flavour::Cloud);
    config.omit_deployment_type = true;
    let sim = JiraSim::start_with(config).await;
    let report = verdict(&sim, Flavour::Cloud, json!({"installation_type": "server"})).await;
    assert_faulty(&report, "configuration", "is Jira Cloud");
    assert_eq!(
        reason(&report),
        format!(
            "Configuration problem: `installation_type` is `server` but {} is Jira Cloud (Jira 1001.0.0-SNAPSHOT): \
             it names the user by accountId only, without a user name or key; set it to `cloud` or `auto`.",
            sim.url
        )
    );
    let auto = verdict(&sim, Flavour::Cloud, json!({})).await;
    assert_healthy(&auto);
    assert_eq!(auto["deployment_type"], "Cloud", "{auto}");
}

#[tokio::test]
async fn cloud_without_deployment_type_keeps_its_hints_when_its_site_says_cloud() {
    let mut config = SimConfig::new(Flavour::Cloud);
    config.omit_deployment_type = true;
    config.reported_base_url = Some("https://your-domain.atlassian.net".into());
    let sim = JiraSim::start_with(config).await;
    let report = verdict(
        &sim,
        Flavour::Cloud,
        json!({"auth": {"type": "bearer", "token": jira_sim::API_TOKEN}}),
    )
    .await;
    assert_faulty(&report, "authentication", "HTTP 401");
    assert!(
        reason(&report).contains("does not accept API tokens as Bearer"),
        "{report}"
    );
}

#[tokio::test]
async fn reasons_name_the_configured_user_not_the_display_name() {
    let sim = JiraSim::start(Flavour::Cloud).await;
    let report = verdict(&sim, Flavour::Cloud, json!({"project_key": "NOPE"})).await;
    assert_faulty(&report, "configuration", "user `svc-herald` cannot see it");
    assert!(!reason(&report).contains("Mia Krystof"), "{report}");
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.register(&spec_for("jira", &sim, Flavour::Cloud)).await;
    assert_eq!(app.check("jira").await["user"], jira_sim::USER);
    // A bearer token has no configured user: Jira's login name (Data Center), else the accountId.
    let dc = JiraSim::start(Flavour::DataCenter).await;
    app.register(&json!({"name": "pat", "url": dc.url, "auth": {"type": "bearer", "token": jira_sim::PAT}}))
        .await;
    assert_eq!(app.check("pat").await["user"], jira_sim::USER);
}

#[tokio::test]
async fn a_required_field_on_the_second_page_of_the_create_screen_is_found() {
    for flavour in [Flavour::DataCenter, Flavour::Cloud] {
        let mut config = SimConfig::new(flavour);
        config.page_size = 200;
        config.extra_fields = 242;
        config.required_fields = vec![("customfield_10010".into(), "Team".into())];
        let sim = JiraSim::start_with(config).await;
        let report = verdict(&sim, flavour, json!({"project_key": "SEC", "issue_type": "Bug"})).await;
        assert_faulty(
            &report,
            "configuration",
            "requires `customfield_10010` (Team) that Herald does not set",
        );
        assert_eq!(
            sim.count("/rest/api/2/issue/createmeta/SEC/issuetypes/1"),
            2,
            "{flavour:?}"
        );
        assert_eq!(report["round_trips"], 4, "{report}");
    }
}

#[tokio::test]
async fn a_create_screen_that_never_ends_is_reported_not_cut() {
    let mut config = SimConfig::new(Flavour::Cloud);
    config.page_size = 1;
    config.extra_fields = 50;
    let sim = JiraSim::start_with(config).await;
    let report = verdict(&sim, Flavour::Cloud, json!({"project_key": "SEC", "issue_type": "Bug"})).await;
    assert_faulty(&report, "configuration", "did not end within 20 pages (20 items)");
    assert_eq!(sim.count("/rest/api/2/issue/createmeta/SEC/issuetypes/1"), 20);
}

#[tokio::test]
async fn a_parser_error_quotes_a_short_excerpt() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let body = serde_json::to_string(&"x".repeat(600)).unwrap();
    sim.fault("/rest/api/2/serverInfo", Fault::Status(200, body));
    let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
    assert_faulty(
        &report,
        "connectivity",
        "did not answer with Jira's serverInfo JSON (invalid type: string",
    );
    assert!(reason(&report).contains("xxx…); is `url` Jira's base URL?"), "{report}");
    assert!(reason(&report).chars().count() < 400, "{}", reason(&report));
}

#[tokio::test]
async fn reasons_have_no_rust_debug_text_and_no_empty_parentheses() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault(
        "/rest/api/2/project/SEC",
        Fault::Status(401, r#"{"errorMessages":["Session expired"],"errors":{}}"#.into()),
    );
    let report = verdict(&sim, Flavour::DataCenter, json!({"project_key": "SEC"})).await;
    assert_eq!(
        reason(&report),
        "Authentication failed: Jira stopped accepting the credentials while reading project (HTTP 401: Session \
         expired)."
    );
    sim.fault("/rest/api/2/project/SEC", Fault::Status(404, String::new()));
    let report = verdict(&sim, Flavour::DataCenter, json!({"project_key": "SEC"})).await;
    assert_eq!(
        reason(&report),
        "Configuration problem: project `SEC` does not exist or user `svc-herald` cannot see it (GET \
         /rest/api/2/project/SEC: HTTP 404)."
    );
    sim.fault("/rest/api/2/serverInfo", Fault::Status(502, String::new()));
    let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
    assert_eq!(
        reason(&report),
        format!(
            "{UNREACHABLE} Connectivity: GET {}/rest/api/2/serverInfo answered HTTP 502 Bad Gateway.",
            sim.url
        )
    );
}

#[tokio::test]
async fn a_401_at_server_info_is_not_a_connection_failure() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    sim.fault(
        "/rest/api/2/serverInfo",
        Fault::Status(
            401,
            r#"{"errorMessages":["You are not authenticated."],"errors":{}}"#.into(),
        ),
    );
    let report = verdict(&sim, Flavour::DataCenter, json!({})).await;
    assert_healthy(&report);
    let connectivity = &report["steps"][0];
    assert_eq!(connectivity["outcome"], "passed", "{report}");
    assert!(
        connectivity["detail"]
            .as_str()
            .unwrap()
            .contains("refuses serverInfo without credentials"),
        "{report}"
    );
    let refused = verdict(
        &sim,
        Flavour::DataCenter,
        json!({"auth": {"type": "basic", "username": jira_sim::USER, "password": "wrong"}}),
    )
    .await;
    assert_faulty(&refused, "authentication", "AUTHENTICATED_FAILED");
}
