//! The Jira client's ticket operations against the simulator, as Jira Cloud (API v3, ADF) and Data
//! Center (API v2, wiki markup): create, search by label, issue state, transitions, comments, and
//! the failures delivery must survive (429 + Retry-After, a rate limit, field errors, lost answers).
//! Times are asserted from the simulator's arrival timestamps, never against a wall-clock limit.

use std::collections::BTreeMap;
use std::time::Duration;

use herald::jira::{
    ApiFlavor, Auth, ClientOptions, JiraClient, JiraUrl, Limiter, LimiterSettings, NewIssue, Retry, StatusCategory,
    TicketClient, TicketClientSettings, TicketErrorKind, build_client,
};
use herald::secret::Secret;
use serde_json::{Value, json};

use crate::support::jira_sim::{API_TOKEN, Fault, Flavour, JiraSim, PAT, SimConfig, USER};

fn flavor(flavour: Flavour) -> ApiFlavor {
    match flavour {
        Flavour::Cloud => ApiFlavor::Cloud,
        _ => ApiFlavor::DataCenter,
    }
}

fn auth(flavour: Flavour) -> Auth {
    match flavour {
        Flavour::Cloud => Auth::Basic {
            username: USER.to_owned(),
            password: Secret::new(API_TOKEN),
        },
        _ => Auth::Bearer {
            token: Secret::new(PAT),
        },
    }
}

fn client_with(
    sim: &JiraSim,
    flavour: Flavour,
    limits: LimiterSettings,
    settings: TicketClientSettings,
) -> TicketClient {
    let http = build_client(&ClientOptions {
        ca_cert_pem: None,
        direct: true,
    })
    .unwrap();
    let jira = JiraClient::new(http, JiraUrl::parse(&sim.url).unwrap(), auth(flavour));
    TicketClient::new(jira, flavor(flavour), Limiter::new(limits), settings)
}

fn client(sim: &JiraSim, flavour: Flavour) -> TicketClient {
    client_with(
        sim,
        flavour,
        LimiterSettings::default(),
        TicketClientSettings::default(),
    )
}

async fn sim(flavour: Flavour) -> JiraSim {
    let mut config = SimConfig::new(flavour);
    config.optional_fields.push("customfield_10010".into());
    JiraSim::start_with(config).await
}

fn issue(label: &str, description: Value) -> NewIssue {
    NewIssue {
        project_key: "SEC".into(),
        issue_type: "Bug".into(),
        summary: format!("Disk full on db-1 ({label})"),
        description: Some(description),
        labels: vec![label.to_owned(), "herald".to_owned()],
        priority: Some("High".into()),
        fields: BTreeMap::new(),
    }
}

#[tokio::test]
async fn cloud_creates_issues_with_adf_descriptions_through_api_v3() {
    let sim = sim(Flavour::Cloud).await;
    let client = client(&sim, Flavour::Cloud);
    let mut new = issue("dedup-a", json!("Disk full.\n\nSee the runbook."));
    new.fields.insert("customfield_10010".into(), json!({"value": "prod"}));
    let created = client.create_issue(&new).await.unwrap();
    assert_eq!((created.id.as_str(), created.key.as_str()), ("10001", "SEC-1"));
    assert_eq!(created.self_url, format!("{}/rest/api/3/issue/10001", sim.url));
    assert_eq!(client.browse_url(&created.key), format!("{}/browse/SEC-1", sim.url));
    let stored = sim.tickets().issue("SEC-1").unwrap();
    assert_eq!(stored.api, 3);
    assert_eq!(stored.description["type"], "doc");
    assert_eq!(
        stored.description["content"][1]["content"][0]["text"],
        "See the runbook."
    );
    assert_eq!(stored.labels, ["dedup-a", "herald"]);
    assert_eq!(stored.priority.as_deref(), Some("High"));
    assert_eq!(stored.fields["customfield_10010"], json!({"value": "prod"}));
    // An ADF document given as such goes unchanged.
    let doc = herald::jira::adf_from_text("given");
    client.create_issue(&issue("dedup-b", doc.clone())).await.unwrap();
    assert_eq!(sim.tickets().issue("SEC-2").unwrap().description, doc);
}

#[tokio::test]
async fn data_center_creates_issues_with_wiki_markup_through_api_v2() {
    let sim = sim(Flavour::DataCenter).await;
    let client = client(&sim, Flavour::DataCenter);
    let created = client
        .create_issue(&issue("dedup-a", json!("h2. Disk full\n* db-1")))
        .await
        .unwrap();
    assert_eq!(created.self_url, format!("{}/rest/api/2/issue/10001", sim.url));
    let stored = sim.tickets().issue(&created.key).unwrap();
    assert_eq!(
        (stored.api, stored.description.clone()),
        (2, json!("h2. Disk full\n* db-1"))
    );
    // An Atlassian Document cannot be sent to API v2: refused before anything is sent.
    let err = client
        .create_issue(&issue("dedup-b", herald::jira::adf_from_text("x")))
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.retry), (TicketErrorKind::Rejected, Retry::Never));
    assert_eq!(sim.tickets().arrivals("POST", "/rest/api/2/issue").len(), 1);
}

async fn finds_by_label(flavour: Flavour, search_path: &str) {
    let sim = sim(flavour).await;
    let client = client(&sim, flavour);
    let body = match flavour {
        Flavour::Cloud => herald::jira::adf_from_text("x"),
        _ => json!("x"),
    };
    // A label JQL would misread unquoted: quotes, a backslash, a reserved word.
    let tricky = r#"dedup"AND\x"#;
    client.create_issue(&issue(tricky, body.clone())).await.unwrap();
    let newer = client.create_issue(&issue(tricky, body.clone())).await.unwrap();
    client.create_issue(&issue("other", body)).await.unwrap();
    let found = client.find_by_label("SEC", tricky).await.unwrap().unwrap();
    assert_eq!(found.key, newer.key);
    assert_eq!(found.status_category, StatusCategory::ToDo);
    assert_eq!(found.resolution, None);
    assert_eq!(client.find_by_label("SEC", "absent").await.unwrap(), None);
    assert_eq!(sim.tickets().arrivals("POST", search_path).len(), 2);
    // Cloud's removed endpoints are never called.
    for old in ["/rest/api/3/search", "/rest/api/2/search"] {
        if old != search_path {
            assert_eq!(sim.count(old), 0, "{old}");
        }
    }
}

#[tokio::test]
async fn cloud_finds_the_newest_issue_by_label_with_search_jql() {
    finds_by_label(Flavour::Cloud, "/rest/api/3/search/jql").await;
}

#[tokio::test]
async fn data_center_finds_the_newest_issue_by_label_with_api_v2_search() {
    finds_by_label(Flavour::DataCenter, "/rest/api/2/search").await;
}

#[tokio::test]
async fn the_simulated_cloud_answers_410_on_the_removed_search() {
    let sim = sim(Flavour::Cloud).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/rest/api/3/search", sim.url))
        .basic_auth(USER, Some(API_TOKEN))
        .json(&json!({"jql": "project = SEC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 410);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["errorMessages"][0].as_str().unwrap().contains("CHANGE-2046"),
        "{body}"
    );
}

async fn resolves_and_reopens(flavour: Flavour) {
    let sim = sim(flavour).await;
    let client = client(&sim, flavour);
    let body = match flavour {
        Flavour::Cloud => herald::jira::adf_from_text("x"),
        _ => json!("x"),
    };
    let key = client.create_issue(&issue("dedup-r", body)).await.unwrap().key;
    let offered = client.transitions(&key).await.unwrap();
    let done = offered.iter().find(|t| t.name == "Done").unwrap();
    assert_eq!(done.to_status_category, Some(StatusCategory::Done));
    assert!(!offered.iter().any(|t| t.name == "Reopen"));
    client.transition(&key, &done.id, Some("Won't Do")).await.unwrap();
    let state = client.get_issue(&key).await.unwrap();
    assert_eq!(state.status_category, StatusCategory::Done);
    assert_eq!(state.resolution.as_deref(), Some("Won't Do"));
    assert!(state.resolution_date.is_some());
    let reopen = client.transitions(&key).await.unwrap();
    assert_eq!(reopen.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Reopen"]);
    client.transition(&key, &reopen[0].id, None).await.unwrap();
    let state = client.get_issue(&key).await.unwrap();
    assert_eq!((state.status_category, state.resolution), (StatusCategory::ToDo, None));
    // A transition the issue does not offer now is Jira's 400.
    let err = client.transition(&key, &reopen[0].id, None).await.unwrap_err();
    assert_eq!((err.kind, err.status), (TicketErrorKind::Rejected, Some(400)));
    assert!(err.error_messages[0].contains("is not valid for this issue"), "{err:?}");
}

#[tokio::test]
async fn cloud_resolves_and_reopens_through_transitions() {
    resolves_and_reopens(Flavour::Cloud).await;
}

#[tokio::test]
async fn data_center_resolves_and_reopens_through_transitions() {
    resolves_and_reopens(Flavour::DataCenter).await;
}

#[tokio::test]
async fn comments_are_documents_on_cloud_and_text_on_data_center() {
    for flavour in [Flavour::Cloud, Flavour::DataCenter] {
        let sim = sim(flavour).await;
        let client = client(&sim, flavour);
        let description = match flavour {
            Flavour::Cloud => herald::jira::adf_from_text("x"),
            _ => json!("x"),
        };
        let key = client.create_issue(&issue("dedup-c", description)).await.unwrap().key;
        client.add_comment(&key, &json!("Fired again at 10:05.")).await.unwrap();
        let comments = sim.tickets().issue(&key).unwrap().comments;
        match flavour {
            Flavour::Cloud => assert_eq!(comments[0]["content"][0]["content"][0]["text"], "Fired again at 10:05."),
            _ => assert_eq!(comments[0], json!("Fired again at 10:05.")),
        }
    }
}

#[tokio::test]
async fn a_deleted_issue_is_its_own_kind_of_error() {
    let sim = sim(Flavour::Cloud).await;
    let client = client(&sim, Flavour::Cloud);
    let key = client.create_issue(&issue("dedup-d", json!("x"))).await.unwrap().key;
    sim.tickets().delete(&key);
    let err = client.get_issue(&key).await.unwrap_err();
    assert_eq!((err.kind, err.retry), (TicketErrorKind::IssueNotFound, Retry::Never));
    let err = client.add_comment(&key, &json!("again")).await.unwrap_err();
    assert_eq!(err.kind, TicketErrorKind::IssueNotFound);
}

#[tokio::test]
async fn a_field_error_is_permanent_and_keeps_what_jira_said() {
    let sim = sim(Flavour::Cloud).await;
    sim.tickets().reject_field("customfield_10010", None);
    let client = client(&sim, Flavour::Cloud);
    let mut new = issue("dedup-f", json!("x"));
    new.fields.insert("customfield_10010".into(), json!("prod"));
    let err = client.create_issue(&new).await.unwrap_err();
    assert_eq!(
        (err.kind, err.retry, err.status),
        (TicketErrorKind::Rejected, Retry::Never, Some(400))
    );
    assert!(err.error_messages.is_empty());
    assert_eq!(
        err.field_errors,
        BTreeMap::from([(
            "customfield_10010".to_owned(),
            "Field 'customfield_10010' cannot be set. It is not on the appropriate screen, or unknown.".to_owned()
        )])
    );
    assert_eq!(sim.tickets().issues().len(), 0);
}

#[tokio::test]
async fn labels_missing_from_the_create_screen_are_recognised() {
    let mut config = SimConfig::new(Flavour::DataCenter);
    config.optional_fields.retain(|f| f != "labels");
    let sim = JiraSim::start_with(config).await;
    let client = client(&sim, Flavour::DataCenter);
    let err = client.create_issue(&issue("dedup-l", json!("x"))).await.unwrap_err();
    assert!(err.rejects_field("labels"), "{err:?}");
    // The caller may drop them and rely on its own map (alertmanager#5230).
    let mut without = issue("dedup-l", json!("x"));
    without.labels.clear();
    client.create_issue(&without).await.unwrap();
}

#[tokio::test]
async fn server_errors_are_retried_and_a_lost_gateway_answer_is_in_doubt() {
    let sim = sim(Flavour::Cloud).await;
    let client = client(&sim, Flavour::Cloud);
    sim.fault("/rest/api/3/issue/SEC-9", Fault::Status(500, "{}".into()));
    let err = client.get_issue("SEC-9").await.unwrap_err();
    assert_eq!((err.kind, err.retry), (TicketErrorKind::ServerError, Retry::Backoff));
    sim.fault(
        "/rest/api/3/issue",
        Fault::Status(504, "<html>Gateway Timeout</html>".into()),
    );
    let err = client.create_issue(&issue("dedup-g", json!("x"))).await.unwrap_err();
    assert_eq!((err.kind, err.retry), (TicketErrorKind::UnknownOutcome, Retry::Backoff));
}

#[tokio::test]
async fn refused_credentials_are_permanent() {
    let sim = sim(Flavour::Cloud).await;
    let http = build_client(&ClientOptions {
        ca_cert_pem: None,
        direct: true,
    })
    .unwrap();
    let wrong = Auth::Basic {
        username: USER.to_owned(),
        password: Secret::new("not-the-token"),
    };
    let jira = JiraClient::new(http, JiraUrl::parse(&sim.url).unwrap(), wrong);
    let client = TicketClient::new(
        jira,
        ApiFlavor::Cloud,
        Limiter::new(LimiterSettings::default()),
        TicketClientSettings::default(),
    );
    let err = client.find_by_label("SEC", "x").await.unwrap_err();
    assert_eq!((err.kind, err.retry), (TicketErrorKind::Unauthorized, Retry::Never));
    assert!(err.message.contains("credentials"), "{err}");
}

#[tokio::test]
async fn a_429_pauses_every_request_for_the_retry_after_jira_asked() {
    let sim = sim(Flavour::Cloud).await;
    let client = client(&sim, Flavour::Cloud);
    sim.tickets().throttle_next(1, 1);
    let creating = tokio::spawn({
        let client = client.clone();
        async move { client.create_issue(&issue("dedup-429", json!("x"))).await }
    });
    // Once the client has read the 429 (the integration is paused), a search of the same integration
    // must wait for the pause too.
    let paused = crate::support::eventually(Duration::from_secs(10), || async {
        sim.tickets().throttled() > 0 && client.limiter().blocked_until().is_some()
    })
    .await;
    assert!(paused, "the 429 never paused the integration");
    let searching = tokio::spawn({
        let client = client.clone();
        async move { client.find_by_label("SEC", "dedup-429").await }
    });
    creating.await.unwrap().unwrap();
    searching.await.unwrap().unwrap();
    let creates = sim.tickets().arrivals("POST", "/rest/api/3/issue");
    let searches = sim.tickets().arrivals("POST", "/rest/api/3/search/jql");
    assert_eq!((creates.len(), searches.len()), (2, 1));
    assert!(
        creates[1] - creates[0] >= Duration::from_secs(1),
        "{:?}",
        creates[1] - creates[0]
    );
    assert!(
        searches[0] - creates[0] >= Duration::from_secs(1),
        "{:?}",
        searches[0] - creates[0]
    );
    assert_eq!(
        (sim.tickets().throttled(), sim.tickets().created_with_label("dedup-429")),
        (1, 1)
    );
}

#[tokio::test]
async fn a_pause_longer_than_the_client_waits_fails_with_the_asked_wait() {
    let sim = sim(Flavour::Cloud).await;
    let settings = TicketClientSettings {
        max_inline_wait: Duration::from_secs(60),
        ..TicketClientSettings::default()
    };
    let client = client_with(&sim, Flavour::Cloud, LimiterSettings::default(), settings);
    sim.tickets().throttle_next(1, 120);
    let err = client.create_issue(&issue("dedup-p", json!("x"))).await.unwrap_err();
    assert_eq!(err.kind, TicketErrorKind::RateLimited);
    assert_eq!(err.retry, Retry::After(Duration::from_secs(120)));
    // The integration stays paused for the worker's next attempt; nothing else was sent.
    assert!(client.limiter().blocked_until().is_some());
    assert_eq!(sim.tickets().arrivals("POST", "/rest/api/3/issue").len(), 1);
}

#[tokio::test]
async fn the_limiter_keeps_a_burst_under_jiras_rate_limit_without_a_429() {
    let sim = sim(Flavour::Cloud).await;
    sim.configure(|c| c.latency = Duration::from_millis(50));
    sim.tickets().rate_limit(20.0);
    let limits = LimiterSettings {
        concurrency: 4,
        per_second: 15.0,
        burst: 5,
    };
    let client = client_with(&sim, Flavour::Cloud, limits, TicketClientSettings::default());
    let creates = (0..40).map(|i| {
        let client = client.clone();
        async move { client.create_issue(&issue(&format!("burst-{i}"), json!("x"))).await }
    });
    let results = futures::future::join_all(creates).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(sim.tickets().throttled(), 0);
    assert_eq!(sim.tickets().issues().len(), 40);
}

#[tokio::test]
async fn without_a_tight_limiter_cloud_throttles_but_no_429_escapes() {
    let sim = sim(Flavour::Cloud).await;
    sim.tickets().rate_limit(10.0);
    let limits = LimiterSettings {
        concurrency: 8,
        per_second: 1000.0,
        burst: 1000,
    };
    let client = client_with(&sim, Flavour::Cloud, limits, TicketClientSettings::default());
    let creates = (0..20).map(|i| {
        let client = client.clone();
        async move { client.create_issue(&issue(&format!("flood-{i}"), json!("x"))).await }
    });
    let results = futures::future::join_all(creates).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert!(sim.tickets().throttled() > 0);
    assert_eq!(sim.tickets().issues().len(), 20);
}

#[tokio::test]
async fn a_lost_create_answer_is_an_unknown_outcome_and_the_search_finds_the_issue() {
    for flavour in [Flavour::Cloud, Flavour::DataCenter] {
        let sim = sim(flavour).await;
        sim.tickets().lose_create_answers(1);
        let settings = TicketClientSettings {
            request_timeout: Duration::from_millis(500),
            ..TicketClientSettings::default()
        };
        let client = client_with(&sim, flavour, LimiterSettings::default(), settings);
        let description = match flavour {
            Flavour::Cloud => herald::jira::adf_from_text("x"),
            _ => json!("x"),
        };
        let err = client
            .create_issue(&issue("dedup-lost", description))
            .await
            .unwrap_err();
        assert!(err.is_unknown_outcome(), "{err:?}");
        assert_eq!(err.retry, Retry::Backoff);
        let found = client.find_by_label("SEC", "dedup-lost").await.unwrap().unwrap();
        assert_eq!(found.key, "SEC-1");
        assert_eq!(
            (
                sim.tickets().lost_answers(),
                sim.tickets().created_with_label("dedup-lost")
            ),
            (1, 1)
        );
    }
}

#[tokio::test]
async fn a_read_that_times_out_is_a_timeout_not_an_unknown_outcome() {
    let sim = sim(Flavour::Cloud).await;
    sim.fault("/rest/api/3/search/jql", Fault::Hang);
    let settings = TicketClientSettings {
        request_timeout: Duration::from_millis(300),
        ..TicketClientSettings::default()
    };
    let client = client_with(&sim, Flavour::Cloud, LimiterSettings::default(), settings);
    let err = client.find_by_label("SEC", "x").await.unwrap_err();
    assert_eq!((err.kind, err.retry), (TicketErrorKind::Timeout, Retry::Backoff));
}

#[tokio::test]
async fn a_login_page_instead_of_an_answer_is_refused_credentials() {
    let sim = sim(Flavour::DataCenter).await;
    sim.fault("/rest/api/2/search", Fault::HtmlLoginPage);
    let err = client(&sim, Flavour::DataCenter)
        .find_by_label("SEC", "x")
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.retry), (TicketErrorKind::Unauthorized, Retry::Never));
    assert!(err.message.contains("login page"), "{err}");
}
