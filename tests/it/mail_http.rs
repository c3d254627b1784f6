//! `POST /api/v1/mail` in its two newer forms, a complete message (`message/rfc822`) and JSON with
//! attachments, delivered to a real SMTP server (smtp-sink); and how the API and the console show a
//! message's origin and its recipients' states. Against both backends.

use crate::support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::MimeHeaders;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::console::ConsoleClient;
use support::recipient_relay::RecipientRelay;
use support::smtp::SmtpSink;
use support::{ADMIN_PASSWORD, Backend, TestApp, problem, spawn_app, spawn_app_with};

backend_tests!(
    a_complete_message_with_lf_line_breaks_is_relayed_byte_for_byte_as_crlf,
    a_complete_message_without_a_sender_takes_its_from_header,
    complete_messages_with_a_bad_envelope_or_no_header_block_get_400_naming_the_field,
    an_oversized_complete_message_gets_413,
    a_retried_complete_message_with_its_idempotency_key_is_queued_once,
    attachments_and_inline_images_are_delivered_as_a_valid_multipart_message,
    bad_attachment_fields_get_400_naming_the_field,
    the_api_shows_how_each_message_arrived_and_its_recipients_states,
    the_console_shows_how_each_message_arrived_and_its_recipients_states,
    each_recipients_delivery_shows_in_the_api_and_the_console,
);

/// An app that does not deliver by itself: tests drive delivery one batch at a time.
async fn driven_app(backend: Backend, sink: &SmtpSink) -> Option<TestApp> {
    let url = sink.url();
    spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.mail.delivery = false;
        s.mail.smtp_timeout = Duration::from_secs(2);
    })
    .await
}

/// Jira's kind of message, written with Unix line breaks and an 8-bit body.
const MESSAGE_LF: &str = "From: Jira <jira@example.com>\n\
    To: dev@example.com\n\
    Subject: =?UTF-8?Q?[JIRA]_(SEC-1)_Caf=C3=A9?=\n\
    Message-ID: <JIRA.1.2@jira.example.com>\n\
    MIME-Version: 1.0\n\
    Content-Type: text/plain; charset=UTF-8\n\
    Content-Transfer-Encoding: 8bit\n\
    \n\
    .a line that starts with a dot\n\
    d\u{e9}j\u{e0} vu, 8-bit\n\
    \tindented   with   spaces   \n\
    \n\
    last line";

async fn post_message(app: &TestApp, query: &str, message: &[u8]) -> reqwest::Response {
    app.admin(Method::POST, &format!("/api/v1/mail{query}"))
        .header("content-type", "message/rfc822")
        .body(message.to_vec())
        .send()
        .await
        .unwrap()
}

async fn accepted_id(response: reqwest::Response) -> String {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn a_complete_message_with_lf_line_breaks_is_relayed_byte_for_byte_as_crlf(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let Some(app) = driven_app(backend, &sink).await else {
        return;
    };
    let response = post_message(
        &app,
        "?to=dev%40example.com&to=ops@example.com&from=bounces@example.com",
        MESSAGE_LF.as_bytes(),
    )
    .await;
    let id = accepted_id(response).await;
    let listed = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    assert_eq!(listed["subject"], "[JIRA] (SEC-1) Caf\u{e9}", "{listed}");
    assert_eq!(listed["message_id"], "JIRA.1.2@jira.example.com", "{listed}");
    let stored = MESSAGE_LF.replace('\n', "\r\n") + "\r\n";
    assert_eq!(listed["size_bytes"], stored.len(), "stored with CRLF line breaks");
    let report = app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "bounces@example.com");
    assert_eq!(received[0].rcpt_to, ["dev@example.com", "ops@example.com"]);
    // The dump writes lines with LF: CRLF on the wire, every byte of every line as submitted.
    assert_eq!(received[0].relayed(), format!("{MESSAGE_LF}\n"), "byte for byte");
    app.stop().await;
}

async fn a_complete_message_without_a_sender_takes_its_from_header(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let Some(app) = driven_app(backend, &sink).await else {
        return;
    };
    accepted_id(post_message(&app, "?to=dev@example.com", MESSAGE_LF.as_bytes()).await).await;
    accepted_id(post_message(&app, "?to=dev@example.com", b"Subject: no From\n\nbody\n").await).await;
    let report = app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    let mut senders: Vec<String> = sink.received().into_iter().map(|m| m.mail_from).collect();
    senders.sort();
    let default_from = app
        .state
        .settings
        .mail
        .from
        .parse::<lettre::message::Mailbox>()
        .unwrap();
    assert_eq!(senders, {
        let mut expected = vec!["jira@example.com".to_owned(), default_from.email.to_string()];
        expected.sort();
        expected
    });
    app.stop().await;
}

async fn complete_messages_with_a_bad_envelope_or_no_header_block_get_400_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let good = MESSAGE_LF.as_bytes();
    let cases: [(&str, &[u8], &str); 7] = [
        ("", good, "to"),
        ("?from=ops@example.com", good, "to"),
        ("?to=dev@example.com&to=not-an-address", good, "to[1]"),
        ("?to=dev@example.com&from=x@@example.com", good, "from"),
        ("?to=dev@example.com&cc=ops@example.com", good, "cc"),
        ("?to=dev@example.com", b"just a body, no header block\n", "message"),
        ("?to=dev@example.com", b"\nbody after an empty line\n", "message"),
    ];
    for (query, body, field) in cases {
        let response = post_message(&app, query, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let problem = problem(response).await;
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
    // The envelope in the query string is for complete messages only.
    let json_with_query = app
        .admin(Method::POST, "/api/v1/mail?to=dev@example.com")
        .json(&json!({"to": ["a@example.com"], "subject": "s", "text": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_query.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(json_with_query).await["field"], "to");
    let plain = app
        .admin(Method::POST, "/api/v1/mail?to=dev@example.com")
        .header("content-type", "text/plain")
        .body("Subject: x\n\nbody")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let problem = problem(plain).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("message/rfc822"),
        "{problem}"
    );
    let status = app.admin_json("/rest/mailqueue/1.0/status").await;
    assert_eq!(status["size"], 0, "nothing was queued");
}

async fn an_oversized_complete_message_gets_413(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.mail.max_size = 64 * 1024).await else {
        return;
    };
    let big = format!("Subject: big\n\n{}", "x".repeat(100_000));
    let response = post_message(&app, "?to=dev@example.com", big.as_bytes()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(response).await["code"], "payload_too_large");
    // Under the limit as sent, over it once every LF is CRLF: what would be stored counts.
    let grows = format!("Subject: lines\n\n{}", "x\n".repeat(30_000));
    assert!(grows.len() < 64 * 1024);
    let response = post_message(&app, "?to=dev@example.com", grows.as_bytes()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let fits = format!("Subject: fits\n\n{}", "x".repeat(40_000));
    accepted_id(post_message(&app, "?to=dev@example.com", fits.as_bytes()).await).await;
}

async fn a_retried_complete_message_with_its_idempotency_key_is_queued_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let send = |to: &'static str| {
        app.admin(Method::POST, &format!("/api/v1/mail?to={to}"))
            .header("content-type", "message/rfc822")
            .header("idempotency-key", "jira-42")
            .body(MESSAGE_LF)
            .send()
    };
    let first = accepted_id(send("dev@example.com").await.unwrap()).await;
    let retry = send("dev@example.com").await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(accepted_id(retry).await, first);
    let other_envelope = send("ops@example.com").await.unwrap();
    assert_eq!(other_envelope.status(), StatusCode::CONFLICT);
    assert_eq!(problem(other_envelope).await["code"], "idempotency_key_reused");
    let status = app.admin_json("/rest/mailqueue/1.0/status").await;
    assert_eq!(status["size"], 1);
}

/// A small PDF-like file and a PNG-like image, with bytes of every value.
fn pdf_bytes() -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..=255u8).cycle().take(3000));
    bytes
}

fn png_bytes() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..=255u8).rev().cycle().take(700));
    bytes
}

async fn attachments_and_inline_images_are_delivered_as_a_valid_multipart_message(backend: Backend) {
    let Some(sink) = SmtpSink::start(&[]) else { return };
    let Some(app) = driven_app(backend, &sink).await else {
        return;
    };
    let (pdf, png) = (pdf_bytes(), png_bytes());
    let response = app
        .admin(Method::POST, "/api/v1/mail")
        .json(&json!({
            "to": ["ops@example.com"], "subject": "Weekly report",
            "text": "The report is attached.",
            "html": "<p>The report is attached.</p><img src=\"cid:logo@herald\">",
            "attachments": [
                {"filename": "Rapport d\u{e9}taill\u{e9}.pdf", "content_type": "application/pdf",
                 "content_base64": STANDARD.encode(&pdf)},
                {"filename": "logo.png", "content_type": "image/png",
                 "content_base64": STANDARD.encode(&png), "content_id": "logo@herald"}
            ]
        }))
        .send()
        .await
        .unwrap();
    let id = accepted_id(response).await;
    let report = app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let received = sink.received();
    assert_eq!(received[0].rcpt_to, ["ops@example.com"]);
    let wire = received[0].relayed().replace('\n', "\r\n");
    let message = mail_parser::MessageParser::default()
        .parse(wire.as_bytes())
        .expect("a parsable message");
    assert_eq!(message.subject(), Some("Weekly report"));
    assert_eq!(message.message_id(), Some(format!("{id}@herald").as_str()));
    assert_eq!(
        message.body_text(0).as_deref().map(str::trim),
        Some("The report is attached.")
    );
    assert!(
        message.body_html(0).unwrap().contains("cid:logo@herald"),
        "the html keeps its reference to the inline image"
    );
    let content_type = |part: &mail_parser::MessagePart| {
        part.content_type()
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()))
    };
    assert_eq!(message.attachment_count(), 2, "{wire}");
    let file = message
        .attachments()
        .find(|a| a.attachment_name() == Some("Rapport d\u{e9}taill\u{e9}.pdf"))
        .expect("the PDF, with its non-ASCII name");
    assert_eq!(content_type(file).as_deref(), Some("application/pdf"));
    assert_eq!(file.contents(), &pdf[..]);
    assert!(file.content_id().is_none());
    assert_eq!(file.content_disposition().map(|d| d.ctype()), Some("attachment"));
    let image = message
        .attachments()
        .find(|a| a.content_id() == Some("logo@herald"))
        .expect("the inline image, by its Content-ID");
    assert_eq!(content_type(image).as_deref(), Some("image/png"));
    assert_eq!(image.contents(), &png[..]);
    assert_eq!(image.attachment_name(), Some("logo.png"));
    assert_eq!(image.content_disposition().map(|d| d.ctype()), Some("inline"));
    let top = content_type(&message.parts[0]);
    assert_eq!(top.as_deref(), Some("multipart/mixed"), "{wire}");
    assert!(
        wire.contains("multipart/related"),
        "the image travels with the html: {wire}"
    );
    app.stop().await;
}

async fn bad_attachment_fields_get_400_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let ok = || json!({"filename": "a.pdf", "content_type": "application/pdf", "content_base64": "JVBERi0xLjQK"});
    let with = |index: usize, key: &str, value: serde_json::Value| {
        let mut attachments = vec![ok(), ok(), ok()];
        attachments[index][key] = value;
        json!({"to": ["a@example.com"], "subject": "s", "text": "t", "attachments": attachments})
    };
    let cases = [
        (
            with(2, "content_base64", json!("not base64!")),
            "attachments[2].content_base64",
        ),
        (with(1, "content_base64", json!("Y")), "attachments[1].content_base64"),
        (
            with(0, "filename", json!("a\r\nBcc: evil@example.com")),
            "attachments[0].filename",
        ),
        (with(0, "filename", json!("")), "attachments[0].filename"),
        (with(1, "content_type", json!("pdf")), "attachments[1].content_type"),
        (
            with(1, "content_type", json!("multipart/mixed")),
            "attachments[1].content_type",
        ),
        (with(2, "content_id", json!("<logo>")), "attachments[2].content_id"),
        (with(0, "colour", json!("red")), "attachments[0].colour"),
        (
            json!({"to": ["a@example.com"], "subject": "s", "text": "t", "attachments": vec![ok(); 21]}),
            "attachments",
        ),
        (
            json!({"to": ["a@example.com"], "subject": "s", "text": "t", "attachments": {"a": 1}}),
            "attachments",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .admin(Method::POST, "/api/v1/mail")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem = problem(response).await;
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    let status = app.admin_json("/rest/mailqueue/1.0/status").await;
    assert_eq!(status["size"], 0, "nothing was queued");
}

async fn the_api_shows_how_each_message_arrived_and_its_recipients_states(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.mail.delivery = false).await else {
        return;
    };
    let password = app.create_user("jira-app", "mail").await;
    let response = app
        .post("/api/v1/mail?to=dev@example.com&to=ops@example.com")
        .basic_auth("jira-app", Some(&password))
        .header("content-type", "message/rfc822")
        .body(MESSAGE_LF)
        .send()
        .await
        .unwrap();
    let raw_id = accepted_id(response).await;
    let json_id = accepted_id(
        app.admin(Method::POST, "/api/v1/mail")
            .json(&json!({"to": ["lead@example.com"], "subject": "s", "text": "t"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let raw = app.admin_json(&format!("/api/v1/mail/{raw_id}")).await;
    assert_eq!(raw["protocol"], "http", "{raw}");
    assert_eq!(raw["submitted_by"], "jira-app");
    assert_eq!(raw["client_addr"], "127.0.0.1");
    assert_eq!(raw["message_id"], "JIRA.1.2@jira.example.com");
    assert_eq!(raw["recipients"], json!(["dev@example.com", "ops@example.com"]));
    assert_eq!(
        raw["recipient_states"],
        json!([
            {"address": "dev@example.com", "state": "pending"},
            {"address": "ops@example.com", "state": "pending"}
        ])
    );
    let queue = app.admin_json("/api/v1/mail/queue").await;
    let listed = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == json_id.as_str())
        .cloned()
        .expect("the JSON message is listed");
    assert_eq!(listed["protocol"], "http");
    assert_eq!(listed["submitted_by"], "admin");
    assert_eq!(listed["message_id"], format!("{json_id}@herald"), "what render writes");
    assert_eq!(
        listed["recipient_states"],
        json!([{"address": "lead@example.com", "state": "pending"}])
    );
}

async fn the_console_shows_how_each_message_arrived_and_its_recipients_states(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.mail.delivery = false).await else {
        return;
    };
    let hostile = "Subject: <script>alert(1)</script>\nMessage-ID: <\"><b>x</b>@evil.example>\n\nbody\n";
    accepted_id(post_message(&app, "?to=dev@example.com&to=ops@example.com", hostile.as_bytes()).await).await;
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    let (status, _, body) = console.get("/console/mail").await;
    assert_eq!(status, StatusCode::OK);
    let row = &body[body.find("<tr data-id=").expect("a message row")..];
    assert!(
        row.contains(r#"data-label="Arrived">HTTP · <span class="name">admin</span>"#),
        "{row}"
    );
    assert!(row.contains("from 127.0.0.1"), "{row}");
    assert!(
        row.contains(r#"<li class="rcpt-pending">dev@example.com <span class="muted">… pending</span></li>"#),
        "{row}"
    );
    assert!(row.contains("ops@example.com"), "{row}");
    assert!(row.contains("Message-ID: &lt;"), "{row}");
    assert!(
        !body.contains("<script>alert(1)") && !body.contains("<b>x</b>"),
        "escaped: {row}"
    );
    assert!(body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{row}");
}

async fn each_recipients_delivery_shows_in_the_api_and_the_console(backend: Backend) {
    let Some(relay) = RecipientRelay::start(true) else {
        return;
    };
    let url = relay.url();
    let Some(app) = spawn_app_with(backend, move |s| {
        s.mail.smtp_url = herald::secret::Secret::new(url);
        s.mail.delivery = false;
        s.mail.smtp_timeout = Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let id = accepted_id(
        post_message(
            &app,
            "?to=ok1@example.com&to=reject1@example.com&to=defer1@example.com",
            b"Subject: three\n\nbody\n",
        )
        .await,
    )
    .await;
    app.state.delivery.deliver_due_batch(10).await.unwrap();
    assert_eq!(relay.taken().len(), 1);
    let listed = app.admin_json(&format!("/api/v1/mail/{id}")).await;
    let states = listed["recipient_states"].as_array().unwrap();
    let each: Vec<(&str, &str)> = states
        .iter()
        .map(|r| (r["address"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        each,
        [
            ("ok1@example.com", "delivered"),
            ("reject1@example.com", "failed"),
            ("defer1@example.com", "pending")
        ],
        "{listed}"
    );
    assert!(states[1]["reply"].as_str().unwrap().contains("550"), "{listed}");
    assert!(states[2]["reply"].as_str().unwrap().contains("450"), "{listed}");
    assert_eq!(
        listed["recipients"],
        json!(["ok1@example.com", "reject1@example.com", "defer1@example.com"])
    );
    let mut console = ConsoleClient::new(&app);
    console.sign_in("admin", ADMIN_PASSWORD).await;
    let (_, _, body) = console.get("/console/mail").await;
    let row = &body[body.find(&format!("<tr data-id=\"{id}\"")).expect("the message's row")..];
    assert!(
        row.contains(
            "<li class=\"rcpt-delivered\">ok1@example.com <span class=\"ok-text\">\u{2713} delivered</span></li>"
        ),
        "{row}"
    );
    assert!(
        row.contains("<li class=\"rcpt-failed\">reject1@example.com <span class=\"bad-text\">\u{2717} failed: "),
        "{row}"
    );
    assert!(
        row.contains("<li class=\"rcpt-pending\">defer1@example.com <span class=\"muted\">\u{2026} pending: "),
        "{row}"
    );
    app.stop().await;
}
