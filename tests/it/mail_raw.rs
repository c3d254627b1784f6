//! Complete messages in the queue (what SMTP and `message/rfc822` submissions store): relayed byte for
//! byte with their envelope, and recipients delivered independently. Against both backends, with a real
//! SMTP server (smtp-sink).

use crate::support;

use std::time::Duration;

use herald::mail::{EnvelopeParams, Origin, Protocol, RawMail};
use support::smtp::SmtpSink;
use support::{Backend, TestApp, spawn_app_with};

backend_tests!(a_complete_message_is_relayed_byte_for_byte_with_its_envelope,);

/// An app that does not deliver by itself: tests drive delivery one batch at a time.
async fn driven_app(backend: Backend, sink: &SmtpSink) -> Option<TestApp> {
    let url = sink.url();
    spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.mail.delivery = false;
        s.mail.retry.initial = Duration::from_millis(1);
        s.mail.retry.max = Duration::from_millis(2);
        s.mail.smtp_timeout = Duration::from_secs(2);
    })
    .await
}

fn smtp_origin() -> Origin {
    Origin {
        protocol: Protocol::Smtp,
        user: "jira".into(),
        client: Some("127.0.0.1".parse().unwrap()),
    }
}

pub const MESSAGE: &str = "Received: from jira.example.com ([192.0.2.7]) by herald\r\n\
    DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from:subject;\r\n \
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

async fn a_complete_message_is_relayed_byte_for_byte_with_its_envelope(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let Some(app) = driven_app(backend, &sink).await else {
        return;
    };
    let raw = RawMail::new(
        "bounces@example.com".into(),
        vec!["dev@example.com".into(), "ops@example.com".into()],
        EnvelopeParams::default(),
        MESSAGE.as_bytes().to_vec(),
        1 << 20,
    )
    .unwrap();
    assert!(raw.params().body_8bit);
    let accepted = app.state.mail.submit_raw(raw, &smtp_origin(), None).await.unwrap();
    let listed = app.admin_json(&format!("/api/v1/mail/{}", accepted.id)).await;
    assert_eq!(listed["subject"], "[JIRA] (SEC-1) Caf\u{e9}", "{listed}");
    let report = app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "bounces@example.com");
    assert_eq!(received[0].rcpt_to, ["dev@example.com", "ops@example.com"]);
    assert_eq!(received[0].relayed(), MESSAGE.replace("\r\n", "\n"), "byte for byte");
    app.stop().await;
}
