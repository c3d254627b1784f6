//! Every refusal of the submission server, with its code, over a raw connection (SQLite; the draining
//! node needs PostgreSQL's cluster mode).

use super::support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use support::smtp_client::RawSmtp;
use support::{Backend, TestApp, eventually};

use super::{queued, smtp_app};

async fn app_with(configure: impl FnOnce(&mut herald::config::Settings)) -> TestApp {
    smtp_app(Backend::Sqlite, configure).await.expect("SQLite always runs")
}

fn trusted_loopback(s: &mut herald::config::Settings) {
    s.smtp.trusted_networks = herald::client_addr::TrustedNetworks::parse("127.0.0.0/8").unwrap();
}

fn plain(user: &str, password: &str) -> String {
    STANDARD.encode(format!("\0{user}\0{password}"))
}

async fn ehlo(client: &mut RawSmtp) -> String {
    let reply = client.command("EHLO client.example").await;
    assert!(reply.starts_with("250-"), "{reply}");
    reply
}

/// Asserts that `reply` starts with `code` (such as `"530 5.7.0"`).
#[track_caller]
fn expect(reply: &str, code: &str) {
    assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
}

async fn metric(app: &TestApp, series: &str) -> String {
    let text = app.admin_text("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(series))
        .map(|l| l[series.len()..].trim().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_greeting_and_ehlo_advertise_the_extensions() {
    let app = app_with(|s| s.mail.max_size = 4096).await;
    let mut client = RawSmtp::connect(app.smtp_addr()).await;
    let greeting = client.reply().await;
    assert!(greeting.ends_with(" Herald ESMTP\r\n"), "{greeting}");
    let reply = ehlo(&mut client).await;
    for line in [
        "PIPELINING",
        "SIZE 4096",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "AUTH PLAIN LOGIN",
        "SMTPUTF8",
    ] {
        assert!(
            reply.contains(&format!("250-{line}\r\n")) || reply.contains(&format!("250 {line}\r\n")),
            "{line}: {reply}"
        );
    }
    assert!(!reply.contains("STARTTLS"), "no certificate, no STARTTLS: {reply}");
    let helo = client.command("HELO client.example").await;
    assert!(helo.starts_with("250 ") && !helo.contains("PIPELINING"), "{helo}");
    expect(&client.command("NOOP").await, "250 2.0.0");
    expect(&client.command("VRFY someone").await, "252 2.5.0");
    expect(&client.command("HELP").await, "214 2.0.0");
    expect(&client.command("RSET").await, "250 2.0.0");
    expect(&client.command("EXPN staff").await, "502 5.5.1");
    expect(&client.command("QUIT").await, "221 2.0.0");
    client.until_closed().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_without_auth_is_refused_530_and_wrong_credentials_535() {
    let app = app_with(|_| {}).await;
    let password = app.create_user("jira", "mail").await;
    app.create_user("watcher", "monitor").await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    expect(
        &client.command("MAIL FROM:<jira@example.com>").await,
        "530 5.7.0 Authentication required",
    );
    expect(
        &client
            .command(&format!("AUTH PLAIN {}", plain("jira", "wrong-password")))
            .await,
        "535 5.7.8",
    );
    // The right credentials of a role that may not submit are refused at AUTH, saying why.
    let monitor = client
        .command(&format!("AUTH PLAIN {}", plain("watcher", "watcher-password-123")))
        .await;
    expect(&monitor, "535 5.7.8");
    assert!(monitor.contains("may not submit mail"), "{monitor}");
    expect(&client.command("AUTH CRAM-MD5").await, "504 5.5.4");
    expect(&client.command("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    expect(&client.command("*").await, "501 5.0.0");
    expect(
        &client
            .command(&format!("AUTH PLAIN {}", plain("jira", &password)))
            .await,
        "235 2.7.0",
    );
    expect(&client.command("AUTH PLAIN x").await, "503 5.5.1");
    expect(&client.command("MAIL FROM:<jira@example.com>").await, "250 2.1.0");
    assert_eq!(metric(&app, "herald_smtp_auth_failures_total").await, "2");
    assert_eq!(
        metric(&app, "herald_smtp_rejections_total{reason=\"auth_required\"}").await,
        "1"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_are_throttled_454() {
    let app = app_with(|s| {
        s.auth.max_failures = 2;
        s.smtp.max_errors = 50;
    })
    .await;
    app.create_user("jira", "mail").await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(
            client
                .command(&format!("AUTH PLAIN {}", plain("jira", "wrong-password")))
                .await,
        );
    }
    expect(&replies[0], "535 5.7.8");
    let throttled = replies.last().unwrap();
    expect(
        throttled,
        "454 4.7.0 Too many failed authentication attempts; try again in ",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_out_of_order_get_503_and_syntax_errors_500_or_501() {
    let app = app_with(|s| {
        trusted_loopback(s);
        s.smtp.max_errors = 100;
    })
    .await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    expect(
        &client.command("MAIL FROM:<a@example.com>").await,
        "503 5.5.1 Send EHLO or HELO first",
    );
    ehlo(&mut client).await;
    expect(
        &client.command("RCPT TO:<b@example.com>").await,
        "503 5.5.1 Need MAIL before RCPT",
    );
    expect(&client.command("DATA").await, "503 5.5.1 Need MAIL before DATA");
    expect(&client.command("FROBNICATE").await, "500 5.5.2 Command not recognized");
    expect(
        &client.command("MAIL FROM a@example.com").await,
        "501 5.5.4 Syntax: MAIL FROM:<reverse-path>",
    );
    expect(&client.command("MAIL FROM:<a@@example.com>").await, "501 5.1.7");
    expect(&client.command("MAIL FROM:<a@example.com> RET=FULL").await, "555 5.5.4");
    expect(&client.command("MAIL FROM:<a@example.com>").await, "250 2.1.0");
    expect(
        &client.command("MAIL FROM:<a@example.com>").await,
        "503 5.5.1 Nested MAIL command",
    );
    expect(&client.command("DATA").await, "554 5.5.1 No valid recipients");
    expect(&client.command("RCPT TO:<postmaster>").await, "501 5.1.3");
    expect(
        &client.command(&format!("NOOP {}", "x".repeat(600))).await,
        "500 5.5.2 Line too long",
    );
    expect(&client.command("RSET").await, "250 2.0.0");
    assert_eq!(
        metric(&app, "herald_smtp_rejections_total{reason=\"line_too_long\"}").await,
        "1"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_errors_close_the_session_421() {
    let app = app_with(|s| s.smtp.max_errors = 3).await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    expect(&client.command("BOGUS").await, "500");
    expect(&client.command("BOGUS").await, "500");
    client.send(b"BOGUS\r\n").await;
    let rest = client.until_closed().await;
    assert!(
        rest.contains("500 5.5.2") && rest.ends_with("421 4.7.0 Too many errors; closing the connection\r\n"),
        "{rest}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_get_552_by_size_and_by_data() {
    let app = app_with(|s| {
        trusted_loopback(s);
        s.mail.max_size = 2048;
    })
    .await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    expect(
        &client.command("MAIL FROM:<a@example.com> SIZE=4096").await,
        "552 5.3.4",
    );
    expect(
        &client.command("MAIL FROM:<a@example.com> SIZE=2048").await,
        "250 2.1.0",
    );
    expect(&client.command("RCPT TO:<b@example.com>").await, "250 2.1.5");
    expect(&client.command("DATA").await, "354 ");
    let line = format!("{}\r\n", "x".repeat(98));
    client.send(line.repeat(100).as_bytes()).await;
    client.send(b".\r\n").await;
    expect(&client.reply().await, "552 5.3.4 Message too large");
    // The session goes on: the next transaction of the right size is taken.
    expect(&client.command("MAIL FROM:<a@example.com>").await, "250 2.1.0");
    expect(&client.command("RCPT TO:<b@example.com>").await, "250 2.1.5");
    expect(&client.command("DATA").await, "354 ");
    client.send(b"Subject: small\r\n\r\nfits\r\n.\r\n").await;
    expect(&client.reply().await, "250 2.0.0 Ok: queued as ");
    assert_eq!(queued(&app).await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_over_the_limit_get_452_and_the_rest_is_kept() {
    let app = app_with(|s| {
        trusted_loopback(s);
        s.smtp.max_recipients = 2;
    })
    .await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    expect(&client.command("MAIL FROM:<a@example.com>").await, "250");
    expect(&client.command("RCPT TO:<b@example.com>").await, "250 2.1.5");
    expect(&client.command("RCPT TO:<c@example.com>").await, "250 2.1.5");
    expect(
        &client.command("RCPT TO:<d@example.com>").await,
        "452 4.5.3 Too many recipients",
    );
    expect(&client.command("DATA").await, "354 ");
    client.send(b"Subject: two\r\n\r\nx\r\n.\r\n").await;
    expect(&client.reply().await, "250 2.0.0");
    let items = queued(&app).await;
    assert_eq!(
        items[0]["recipients"],
        serde_json::json!(["b@example.com", "c@example.com"])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_address_is_refused_at_its_own_command_and_the_rest_is_kept() {
    let app = app_with(trusted_loopback).await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    // smtp-proto's parser refuses most bad addresses (501); Herald checks what it lets through with the
    // queue's own rule (553), so an address is refused at its command, never at the final dot.
    for bad in [
        "MAIL FROM:<no-domain>",
        "MAIL FROM:<a@example..com>",
        "MAIL FROM:<a@[300.1.1.1]>",
    ] {
        expect(&client.command(bad).await, "5");
    }
    expect(&client.command("MAIL FROM:<a@example.com>").await, "250");
    expect(&client.command("RCPT TO:<b@example.com>").await, "250 2.1.5");
    for bad in [
        "RCPT TO:<not an address>",
        "RCPT TO:<c@[300.1.1.1]>",
        "RCPT TO:<c@@example.com>",
    ] {
        expect(&client.command(bad).await, "5");
    }
    expect(&client.command("DATA").await, "354 ");
    client.send(b"Subject: one\r\n\r\nx\r\n.\r\n").await;
    expect(&client.reply().await, "250 2.0.0");
    let items = queued(&app).await;
    assert_eq!(items[0]["recipients"], serde_json::json!(["b@example.com"]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_lf_is_refused_550_and_smuggles_nothing() {
    let app = app_with(trusted_loopback).await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    expect(&client.command("MAIL FROM:<a@example.com>").await, "250");
    expect(&client.command("RCPT TO:<b@example.com>").await, "250");
    expect(&client.command("DATA").await, "354 ");
    // `\n.\n` then a second transaction: neither ends the message nor runs as commands.
    client
        .send(b"Subject: first\r\n\r\nhello\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n")
        .await;
    expect(&client.reply().await, "550 5.6.2");
    expect(&client.command("RSET").await, "250 2.0.0");
    // A bare CR is refused the same way.
    expect(&client.command("MAIL FROM:<a@example.com>").await, "250");
    expect(&client.command("RCPT TO:<b@example.com>").await, "250");
    expect(&client.command("DATA").await, "354 ");
    client.send(b"Subject: cr\r\n\r\nhello\r.\rworld\r\n.\r\n").await;
    expect(&client.reply().await, "550 5.6.2");
    assert!(queued(&app).await.is_empty());
    assert_eq!(
        metric(&app, "herald_smtp_rejections_total{reason=\"bare_line_ending\"}").await,
        "2"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_bit_and_utf8_addresses_are_kept_with_smtputf8() {
    let app = app_with(trusted_loopback).await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    expect(&client.command("MAIL FROM:<jörg@example.com>").await, "553 5.6.7");
    expect(
        &client
            .command("MAIL FROM:<jörg@example.com> BODY=8BITMIME SMTPUTF8")
            .await,
        "250",
    );
    expect(&client.command("RCPT TO:<zoë@example.com>").await, "250");
    expect(&client.command("DATA").await, "354 ");
    client.send("Subject: Grüße\r\n\r\nçà ✓\r\n.\r\n".as_bytes()).await;
    expect(&client.reply().await, "250 2.0.0");
    // Python's smtplib, declaring both.
    super::python(SMTPLIB_UTF8, &["127.0.0.1", &app.smtp_addr().port().to_string()]);
    let items = queued(&app).await;
    assert_eq!(items.len(), 2, "{items:?}");
    for item in &items {
        assert_eq!(item["recipients"], serde_json::json!(["zoë@example.com"]), "{items:?}");
    }
    app.stop().await;
}

const SMTPLIB_UTF8: &str = r#"
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), local_hostname="client.example", timeout=20)
s.ehlo()
assert s.has_extn("smtputf8") and s.has_extn("8bitmime"), s.esmtp_features
msg = "From: jörg@example.com\r\nTo: zoë@example.com\r\nSubject: Grüße\r\n\r\nçà ✓\r\n".encode()
refused = s.sendmail("jörg@example.com", ["zoë@example.com"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
assert refused == {}, refused
s.quit()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_speaks_before_the_greeting_is_refused_554() {
    // The server waits up to a minute for its greeting; a client that speaks meanwhile is refused
    // as soon as its bytes arrive (so this test does not wait the minute).
    let app = app_with(|s| s.smtp.greet_wait = Duration::from_secs(60)).await;
    let mut client = RawSmtp::connect(app.smtp_addr()).await;
    client.send(b"EHLO impatient.example\r\n").await;
    let all = client.until_closed().await;
    assert_eq!(
        all,
        "554 5.5.1 Protocol error: the client spoke before the greeting\r\n"
    );
    assert_eq!(
        metric(&app, "herald_smtp_rejections_total{reason=\"pregreet\"}").await,
        "1"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sent_before_354_and_pipelined_ehlo_are_refused() {
    let app = app_with(trusted_loopback).await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    client
        .send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: early\r\n\r\n.\r\n")
        .await;
    let all = client.until_closed().await;
    assert!(
        all.ends_with("554 5.5.0 Protocol error: commands pipelined after DATA; closing the connection\r\n"),
        "{all}"
    );
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    client.send(b"EHLO a.example\r\nMAIL FROM:<a@example.com>\r\n").await;
    let all = client.until_closed().await;
    assert!(
        all.starts_with("554 5.5.0 Protocol error: commands pipelined after EHLO"),
        "{all}"
    );
    assert!(queued(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_pipelined_after_starttls_is_refused() {
    let ca = support::smtp_client::TestCa::new();
    let (cert, key) = (ca.cert.clone(), ca.key.clone());
    let app = app_with(move |s| {
        s.smtp.tls_cert = Some(cert);
        s.smtp.tls_key = Some(key);
    })
    .await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut client).await;
    // CVE-2011-0411: a command injected after STARTTLS in the same packet.
    client.send(b"STARTTLS\r\nRSET\r\n").await;
    let all = client.until_closed().await;
    assert!(
        all.starts_with("554 5.5.0 Protocol error: commands pipelined after STARTTLS"),
        "{all}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_closed_421_after_the_command_timeout() {
    let app = app_with(|s| s.smtp.command_timeout = Duration::from_millis(300)).await;
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    let all = client.until_closed().await;
    assert_eq!(all, "421 4.4.2 Timeout exceeded; closing the connection\r\n");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_the_connection_limit_is_told_421() {
    let app = app_with(|s| s.smtp.max_connections = 1).await;
    let mut first = RawSmtp::open(app.smtp_addr()).await;
    let mut second = RawSmtp::connect(app.smtp_addr()).await;
    assert_eq!(
        second.until_closed().await,
        "421 4.3.2 Too many connections; try again later\r\n"
    );
    expect(&first.command("QUIT").await, "221");
    first.until_closed().await;
    // The slot is given back.
    let freed = eventually(Duration::from_secs(10), || async {
        metric(&app, "herald_smtp_sessions_active").await == "0"
    })
    .await;
    assert!(freed);
    let mut third = RawSmtp::open(app.smtp_addr()).await;
    expect(&third.command("QUIT").await, "221");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_over_its_own_limit_is_told_421_and_trusted_networks_are_exempt() {
    let app = app_with(|s| s.smtp.max_connections_per_client = 2).await;
    let mut first = RawSmtp::open(app.smtp_addr()).await;
    let _second = RawSmtp::open(app.smtp_addr()).await;
    let mut third = RawSmtp::connect(app.smtp_addr()).await;
    assert_eq!(
        third.until_closed().await,
        "421 4.7.0 Too many connections from your address; try again later\r\n"
    );
    expect(&first.command("QUIT").await, "221");
    first.until_closed().await;
    // The address's place is given back with the session.
    let freed = eventually(Duration::from_secs(10), || async {
        metric(&app, "herald_smtp_sessions_active").await == "1"
    })
    .await;
    assert!(freed);
    let mut fourth = RawSmtp::open(app.smtp_addr()).await;
    expect(&fourth.command("QUIT").await, "221");
    app.stop().await;

    let trusted = app_with(|s| {
        trusted_loopback(s);
        s.smtp.max_connections_per_client = 1;
    })
    .await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(RawSmtp::open(trusted.smtp_addr()).await);
    }
    for session in &mut sessions {
        expect(&session.command("NOOP").await, "250");
    }
    trusted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtps_without_a_certificate_is_refused_at_start_up() {
    let db = support::TestDatabase::new(Backend::Sqlite).await.unwrap();
    let mut settings = db.settings();
    settings.smtp.smtps_listen = Some("127.0.0.1:0".parse().unwrap());
    let error = herald::app::Application::build(settings).await.err().expect("refused");
    assert_eq!(
        error.to_string(),
        "SMTP submission: HERALD_SMTPS_LISTEN needs a certificate: set HERALD_SMTP_TLS_CERT and HERALD_SMTP_TLS_KEY"
    );
}

/// Cluster mode on the node's PostgreSQL database, as node `id`, with the secrets key every node shares.
fn cluster_node(s: &mut herald::config::Settings, id: &str) {
    s.cluster.enabled = true;
    s.cluster.node_id = Some(herald::cluster::NodeId::try_from(id).unwrap());
    s.database.secret_key = Some(herald::secret::Secret::new(
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    ));
    trusted_loopback(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_answers_new_sessions_421_and_the_other_node_accepts() {
    let Some(app) = smtp_app(Backend::Postgres, |s| cluster_node(s, "smtp_node_1")).await else {
        return;
    };
    // A second node on the same database, with a data dir of its own.
    let other_db = support::TestDatabase::new(Backend::Postgres).await.unwrap();
    let mut settings = other_db.settings();
    settings.database.url = app.db.url.clone().unwrap();
    cluster_node(&mut settings, "smtp_node_2");
    let other = support::start(other_db, settings).await;
    // A session opened before the drain.
    let mut before = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut before).await;
    app.state.store.request_drain("smtp_node_1", true).await.unwrap();
    app.state.cluster.heartbeat_once().await.unwrap();
    assert!(!app.state.cluster.accepts_work());
    let mut client = RawSmtp::connect(app.smtp_addr()).await;
    assert_eq!(
        client.until_closed().await,
        "421 4.3.2 Node smtp_node_1 is draining and takes no new mail; try another node\r\n"
    );
    // The open session is told at its next MAIL.
    before.send(b"MAIL FROM:<a@example.com>\r\n").await;
    assert!(
        before
            .until_closed()
            .await
            .starts_with("421 4.3.2 Node smtp_node_1 is draining")
    );
    // The other node keeps accepting.
    let mut elsewhere = RawSmtp::open(other.smtp_addr()).await;
    ehlo(&mut elsewhere).await;
    expect(&elsewhere.command("MAIL FROM:<a@example.com>").await, "250");
    expect(&elsewhere.command("RCPT TO:<b@example.com>").await, "250");
    expect(&elsewhere.command("DATA").await, "354 ");
    elsewhere.send(b"Subject: elsewhere\r\n\r\nx\r\n.\r\n").await;
    expect(&elsewhere.reply().await, "250 2.0.0");
    // Activated again, the first node takes sessions again.
    app.state.store.request_drain("smtp_node_1", false).await.unwrap();
    app.state.cluster.heartbeat_once().await.unwrap();
    let mut again = RawSmtp::open(app.smtp_addr()).await;
    ehlo(&mut again).await;
    expect(&again.command("MAIL FROM:<a@example.com>").await, "250");
    other.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_message_in_flight_then_answers_421() {
    let app = app_with(trusted_loopback).await;
    let (http, smtp) = (app.addr, app.smtp_addr());
    let mut idle = RawSmtp::open(smtp).await;
    let mut sending = RawSmtp::open(smtp).await;
    ehlo(&mut sending).await;
    expect(&sending.command("MAIL FROM:<a@example.com>").await, "250");
    expect(&sending.command("RCPT TO:<b@example.com>").await, "250");
    expect(&sending.command("DATA").await, "354 ");
    sending.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    let stopping = tokio::spawn(app.stop());
    // The idle session is told at once.
    assert_eq!(
        idle.until_closed().await,
        "421 4.3.2 Service shutting down; try again later\r\n"
    );
    let refused = eventually(Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(http).await.is_err()
    })
    .await;
    assert!(refused, "the HTTP listener still accepts");
    sending.send(b"second half\r\n.\r\n").await;
    expect(&sending.reply().await, "250 2.0.0 Ok: queued as ");
    assert_eq!(
        sending.until_closed().await,
        "421 4.3.2 Service shutting down; try again later\r\n"
    );
    stopping.await.unwrap();
}
