//! Complete messages in the queue (what SMTP and `message/rfc822` submissions store): relayed byte for
//! byte with their envelope, and recipients delivered independently. Against both backends, with a real
//! SMTP server (smtp-sink).

use crate::support;

use std::time::Duration;

use herald::mail::recipients::{self, RecipientState};
use herald::mail::{EnvelopeParams, Origin, Protocol, RawMail};
use support::recipient_relay::RecipientRelay;
use support::smtp::SmtpSink;
use support::{Backend, TestApp, eventually, spawn_app_with};

backend_tests!(
    a_complete_message_is_relayed_byte_for_byte_with_its_envelope,
    recipients_are_delivered_independently_one_at_a_time,
    recipients_are_delivered_independently_when_pipelined,
    messages_back_to_back_survive_one_refused_for_everyone_and_8_bit_content,
);

/// An app that does not deliver by itself: tests drive delivery one batch at a time.
async fn driven_app(backend: Backend, sink: &SmtpSink) -> Option<TestApp> {
    driven_app_for(backend, sink.url()).await
}

async fn driven_app_for(backend: Backend, url: String) -> Option<TestApp> {
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

fn raw(to: &[&str], bytes: &[u8]) -> RawMail {
    RawMail::new(
        "jira@example.com".into(),
        to.iter().map(|s| (*s).to_owned()).collect(),
        EnvelopeParams::default(),
        bytes.to_vec(),
        1 << 20,
    )
    .unwrap()
}

/// `(state, each recipient's state)` of a message in the queue.
async fn states(app: &TestApp, id: &str) -> (String, Vec<&'static str>) {
    let summary = app
        .state
        .store
        .mail_by_id(id)
        .await
        .unwrap()
        .expect("the message is in the queue");
    let states = recipients::parse(&summary.recipients)
        .unwrap()
        .iter()
        .map(|r| r.state.as_str())
        .collect();
    (summary.state, states)
}

async fn recipients_are_delivered_independently(backend: Backend, pipelining: bool) {
    let Some(relay) = RecipientRelay::start(pipelining) else {
        return;
    };
    let Some(app) = driven_app_for(backend, relay.url()).await else {
        return;
    };
    let to = [
        "ok1@example.com",
        "reject1@example.com",
        "defer1@example.com",
        "ok2@example.com",
    ];
    let accepted = app
        .state
        .mail
        .submit_raw(raw(&to, b"Subject: four\r\n\r\nbody\r\n"), &smtp_origin(), None)
        .await
        .unwrap();
    app.state.delivery.deliver_due_batch(10).await.unwrap();
    let taken = relay.taken();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].rcpt_to, ["ok1@example.com", "ok2@example.com"]);
    assert_eq!(taken[0].content(), b"Subject: four\r\n\r\nbody\r\n");
    let (state, each) = states(&app, &accepted.id).await;
    assert_eq!(
        (state.as_str(), each),
        ("queued", vec!["delivered", "failed", "pending", "delivered"])
    );
    let summary = app.state.store.mail_by_id(&accepted.id).await.unwrap().unwrap();
    let refused = recipients::parse(&summary.recipients).unwrap();
    assert!(
        refused[1].reply.as_deref().unwrap_or("").contains("(550): 5.1.1"),
        "{refused:?}"
    );
    assert!(
        refused[2].reply.as_deref().unwrap_or("").contains("(450): 4.2.1"),
        "{refused:?}"
    );

    // The deferred mailbox comes back: the retry goes to it alone, and the refused one stays refused.
    relay.accept_deferred();
    let retried = eventually(Duration::from_secs(10), || async {
        app.state.delivery.deliver_due_batch(10).await.unwrap();
        states(&app, &accepted.id).await.0 == "error"
    })
    .await;
    assert!(retried, "the message ends in the error queue for its refused recipient");
    let taken = relay.taken();
    assert_eq!(taken.len(), 2);
    assert_eq!(
        taken[1].rcpt_to,
        ["defer1@example.com"],
        "nobody gets the message twice"
    );
    let (_, each) = states(&app, &accepted.id).await;
    assert_eq!(each, ["delivered", "failed", "delivered", "delivered"]);
    let listed = app.admin_json(&format!("/api/v1/mail/{}", accepted.id)).await;
    assert!(
        listed["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("1 of 4 recipients not delivered; reject1@example.com: permanent error (550)"),
        "{listed}"
    );

    // Resent by an admin, the message goes to the refused recipient alone, again.
    app.state.mail.resend(Some(&accepted.id)).await.unwrap();
    app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(relay.taken().len(), 2, "the relay refused it again");
    let (state, each) = states(&app, &accepted.id).await;
    assert_eq!(
        (state.as_str(), each),
        ("error", vec!["delivered", "failed", "delivered", "delivered"])
    );
    assert!(
        recipients::parse(
            &app.state
                .store
                .mail_by_id(&accepted.id)
                .await
                .unwrap()
                .unwrap()
                .recipients
        )
        .unwrap()
        .iter()
        .filter(|r| r.state == RecipientState::Failed)
        .all(|r| r.address == "reject1@example.com")
    );
    app.stop().await;
}

async fn recipients_are_delivered_independently_one_at_a_time(backend: Backend) {
    recipients_are_delivered_independently(backend, false).await;
}

async fn recipients_are_delivered_independently_when_pipelined(backend: Backend) {
    recipients_are_delivered_independently(backend, true).await;
}

async fn messages_back_to_back_survive_one_refused_for_everyone_and_8_bit_content(backend: Backend) {
    let Some(relay) = RecipientRelay::start(true) else {
        return;
    };
    let Some(app) = driven_app_for(backend, relay.url()).await else {
        return;
    };
    let latin1: &[u8] = b"Subject: latin-1\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n\r\ncaf\xe9\r\n.\r\n";
    let messages: [(&[&str], &[u8]); 4] = [
        (&["a@example.com"], b"Subject: first\r\n\r\none\r\n"),
        (
            &["reject@example.com", "reject2@example.com"],
            b"Subject: refused\r\n\r\ntwo\r\n",
        ),
        (&["b@example.com"], latin1),
        (&["c@example.com"], b"Subject: last\r\n\r\nfour\r\n"),
    ];
    let mut ids = Vec::new();
    for (to, bytes) in messages {
        ids.push(
            app.state
                .mail
                .submit_raw(raw(to, bytes), &smtp_origin(), None)
                .await
                .unwrap()
                .id,
        );
    }
    let report = app.state.delivery.deliver_due_batch(10).await.unwrap();
    let errors = app.admin_json("/api/v1/mail/errors").await;
    assert_eq!((report.delivered, report.parked), (3, 1), "{report:?} {errors}");
    let taken = relay.taken();
    let mut to: Vec<_> = taken.iter().map(|t| t.rcpt_to.join(",")).collect();
    to.sort();
    assert_eq!(to, ["a@example.com", "b@example.com", "c@example.com"]);
    let eight_bit = taken.iter().find(|t| t.rcpt_to == ["b@example.com"]).unwrap();
    assert_eq!(
        eight_bit.content(),
        latin1,
        "8-bit content that is not UTF-8, byte for byte"
    );
    assert!(
        eight_bit.mail_options.iter().any(|o| o == "BODY=8BITMIME"),
        "{:?}",
        eight_bit.mail_options
    );
    let (state, each) = states(&app, &ids[1]).await;
    assert_eq!((state.as_str(), each), ("error", vec!["failed", "failed"]));
    app.stop().await;
}
