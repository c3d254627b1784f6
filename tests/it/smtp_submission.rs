//! The SMTP submission server, with real clients: Python's smtplib and swaks, and a raw TCP client
//! for pipelining and hostile input. Protocol rules run on SQLite; what reaches the queue runs on
//! both backends.

use crate::support;

use std::net::SocketAddr;
use std::process::Command;

use herald::config::Settings;
use support::smtp::SmtpSink;
use support::smtp_client::{RawSmtp, TestCa};
use support::{Backend, TestApp, spawn_app_with};

mod fuzz;
mod hostile;
mod memory;
mod refusals;

backend_tests!(
    auth_plain_and_login_with_a_password_or_a_token_submit_to_the_queue,
    starttls_and_implicit_tls_with_a_test_ca,
    swaks_pipelines_transactions_over_starttls_and_smtps,
    a_message_is_relayed_byte_for_byte_after_its_trace_header,
);

/// An app whose SMTP listener is on a free port, adjusted by `configure`.
pub async fn smtp_app(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    spawn_app_with(backend, configure).await
}

/// An app with STARTTLS and SMTPS on, with the test CA's certificate.
async fn tls_app(backend: Backend, ca: &TestCa) -> Option<TestApp> {
    let (cert, key) = (ca.cert.clone(), ca.key.clone());
    smtp_app(backend, move |s| {
        s.smtp.tls_cert = Some(cert);
        s.smtp.tls_key = Some(key);
        s.smtp.smtps_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
}

/// A user with the `mail` role; returns its password.
async fn mail_user(app: &TestApp, name: &str) -> String {
    app.create_user(name, "mail").await
}

/// The queued messages, as the API lists them.
pub async fn queued(app: &TestApp) -> Vec<serde_json::Value> {
    let body = app.admin_json("/api/v1/mail/queue?limit=100").await;
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Runs a Python script with arguments; its standard output (the script fails the test by exiting
/// non-zero).
pub fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "python3 failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// smtplib: connect (plain, STARTTLS or SMTPS), authenticate with one mechanism, send messages.
const SMTPLIB_SEND: &str = r#"
import smtplib, ssl, sys
host, port, mode, ca, user, password, mechanism, count = sys.argv[1:9]
context = ssl.create_default_context(cafile=ca) if ca else None
if mode == "smtps":
    s = smtplib.SMTP_SSL(host, int(port), local_hostname="client.example", context=context, timeout=20)
else:
    s = smtplib.SMTP(host, int(port), local_hostname="client.example", timeout=20)
s.ehlo()
if mode == "starttls":
    code, _ = s.starttls(context=context)
    assert code == 220, code
    s.ehlo()
assert "auth" in s.esmtp_features, s.esmtp_features
s.user, s.password = user, password
if mechanism == "PLAIN":
    code, text = s.auth("PLAIN", s.auth_plain)
elif mechanism == "LOGIN-INITIAL":
    code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=True)
else:
    code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
assert code == 235, (code, text)
for i in range(int(count)):
    msg = "From: jira@example.com\r\nTo: dev@example.com\r\nSubject: smtplib %s %d\r\n\r\nhello %d\r\n" % (mechanism, i, i)
    refused = s.sendmail("jira@example.com", ["dev@example.com"], msg)
    assert refused == {}, refused
print(s.noop()[0])
s.quit()
"#;

fn smtplib_send(
    addr: SocketAddr,
    mode: &str,
    ca: Option<&TestCa>,
    user: &str,
    password: &str,
    mechanism: &str,
    count: u32,
) {
    let ca = ca.map(|ca| ca.ca.display().to_string()).unwrap_or_default();
    let out = python(
        SMTPLIB_SEND,
        &[
            &addr.ip().to_string(),
            &addr.port().to_string(),
            mode,
            &ca,
            user,
            password,
            mechanism,
            &count.to_string(),
        ],
    );
    assert_eq!(out.trim(), "250", "{out}");
}

async fn auth_plain_and_login_with_a_password_or_a_token_submit_to_the_queue(backend: Backend) {
    let Some(app) = smtp_app(backend, |_| {}).await else {
        return;
    };
    let password = mail_user(&app, "jira").await;
    let (_, token) = app.create_token("jira").await;
    let addr = app.smtp_addr();
    // Loopback: AUTH is offered without TLS.
    for mechanism in ["PLAIN", "LOGIN", "LOGIN-INITIAL"] {
        smtplib_send(addr, "plain", None, "jira", &password, mechanism, 1);
        smtplib_send(addr, "plain", None, "jira", &token, mechanism, 1);
    }
    // Several messages on one connection.
    smtplib_send(addr, "plain", None, "jira", &password, "PLAIN", 3);
    let items = queued(&app).await;
    assert_eq!(items.len(), 9, "{items:?}");
    for item in &items {
        assert_eq!(item["recipients"], serde_json::json!(["dev@example.com"]), "{item}");
        assert_eq!(item["state"], "queued", "{item}");
    }
    app.stop().await;
}

async fn starttls_and_implicit_tls_with_a_test_ca(backend: Backend) {
    let ca = TestCa::new();
    let Some(app) = tls_app(backend, &ca).await else { return };
    let password = mail_user(&app, "jira").await;
    smtplib_send(app.smtp_addr(), "starttls", Some(&ca), "jira", &password, "PLAIN", 2);
    smtplib_send(app.smtps_addr(), "smtps", Some(&ca), "jira", &password, "LOGIN", 1);
    assert_eq!(queued(&app).await.len(), 3);
    let metrics = app.admin_text("/metrics").await;
    assert!(
        metrics.contains("herald_smtp_tls_sessions_total{mode=\"starttls\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_smtp_tls_sessions_total{mode=\"implicit\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("herald_smtp_messages_accepted_total 3"), "{metrics}");
    // After STARTTLS the EHLO answer no longer offers STARTTLS; before it, it does.
    let mut raw = RawSmtp::open(app.smtp_addr()).await;
    let ehlo = raw.command("EHLO client.example").await;
    assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
    app.stop().await;
}

/// swaks with its options; its whole transcript (swaks exits non-zero when the server refuses).
fn swaks(args: &[&str]) -> (bool, String) {
    let output = Command::new("swaks")
        .args(args)
        .output()
        .expect("run swaks (scripts/test.sh installs it)");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), transcript)
}

async fn swaks_pipelines_transactions_over_starttls_and_smtps(backend: Backend) {
    let ca = TestCa::new();
    let Some(app) = tls_app(backend, &ca).await else { return };
    let password = mail_user(&app, "swaks").await;
    let ca_path = ca.ca.display().to_string();
    let common = |server: String, tls: &'static str, auth: &'static str| {
        vec![
            "--server".to_owned(),
            server,
            tls.to_owned(),
            "--tls-ca-path".to_owned(),
            ca_path.clone(),
            "--tls-verify".to_owned(),
            "--pipeline".to_owned(),
            "--auth".to_owned(),
            auth.to_owned(),
            "--auth-user".to_owned(),
            "swaks".to_owned(),
            "--auth-password".to_owned(),
            password.clone(),
            "--from".to_owned(),
            "swaks@example.com".to_owned(),
            "--to".to_owned(),
            "a@example.com,b@example.com".to_owned(),
            "--helo".to_owned(),
            "swaks.example".to_owned(),
        ]
    };
    let starttls = common(app.smtp_addr().to_string(), "--tls", "PLAIN");
    let (ok, transcript) = swaks(&starttls.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{transcript}");
    assert!(transcript.contains("250 2.0.0 Ok: queued as"), "{transcript}");
    let smtps = common(app.smtps_addr().to_string(), "--tls-on-connect", "LOGIN");
    let (ok, transcript) = swaks(&smtps.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{transcript}");
    let items = queued(&app).await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["recipients"],
        serde_json::json!(["a@example.com", "b@example.com"])
    );
    app.stop().await;
}

const MESSAGE: &str = "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from:subject;\r\n \
    bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n\
    From: Jira <jira@example.com>\r\n\
    To: dev@example.com\r\n\
    Subject: =?UTF-8?Q?[JIRA]_(SEC-1)_Caf=C3=A9?=\r\n\
    Message-ID: <JIRA.1.2@jira.example.com>\r\n\
    MIME-Version: 1.0\r\n\
    Content-Type: text/plain; charset=UTF-8\r\n\
    Content-Transfer-Encoding: 8bit\r\n\
    \r\n\
    .a line that starts with a dot\r\n\
    d\u{e9}j\u{e0} vu, 8-bit\r\n\
    ..two dots\r\n\
    \tindented   with   spaces   \r\n\
    \r\n\
    last line\r\n";

/// `message` dot-stuffed for DATA, with the end-of-data line.
pub fn stuffed(message: &str) -> String {
    let mut out: String = message
        .split_inclusive("\r\n")
        .map(|line| {
            if line.starts_with('.') {
                format!(".{line}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    out.push_str(".\r\n");
    out
}

async fn a_message_is_relayed_byte_for_byte_after_its_trace_header(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let url = sink.url();
    let Some(app) = smtp_app(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.smtp.trusted_networks = herald::client_addr::TrustedNetworks::parse("127.0.0.0/8").unwrap();
    })
    .await
    else {
        return;
    };
    let mut client = RawSmtp::open(app.smtp_addr()).await;
    assert!(client.command("EHLO jira.example.com").await.starts_with("250"));
    // Pipelined: MAIL, RCPT, RCPT and DATA in one write, then the message after 354.
    client
        .send(b"MAIL FROM:<bounces@example.com> BODY=8BITMIME\r\nRCPT TO:<dev@example.com>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\n")
        .await;
    for expected in ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354 "] {
        let reply = client.reply().await;
        assert!(reply.starts_with(expected), "{reply}");
    }
    client.send(stuffed(MESSAGE).as_bytes()).await;
    let done = client.reply().await;
    assert!(done.starts_with("250 2.0.0 Ok: queued as "), "{done}");
    let report = app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let received = &sink.received()[0];
    assert_eq!(received.mail_from, "bounces@example.com");
    assert_eq!(received.rcpt_to, ["dev@example.com", "ops@example.com"]);
    let relayed = received.relayed();
    let (trace, message) = relayed.split_at(relayed.find("DKIM-Signature:").expect("the message after the trace"));
    assert!(
        trace.starts_with("Received: from jira.example.com ([127.0.0.1])\n\tby "),
        "{trace}"
    );
    assert!(trace.contains("(Herald) with ESMTP id "), "{trace}");
    assert_eq!(trace.lines().count(), 3, "{trace}");
    assert_eq!(message, MESSAGE.replace("\r\n", "\n"), "byte for byte");
    assert_eq!(client.command("QUIT").await, "221 2.0.0 Bye\r\n");
    app.stop().await;
}
