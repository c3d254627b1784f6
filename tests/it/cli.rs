//! The `herald` binary as a user runs it: help, configuration errors, start-up, bootstrap, signals,
//! and the users/tokens/migrate commands.

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::process::{HERALD, free_port, herald_command, run, sigterm};
use support::{eventually, http_client};

fn herald(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run(herald_command().arg("--data-dir").arg(data_dir).args(args), stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_explains_every_command_and_flag() {
    let top = Command::new(HERALD).arg("--help").output().unwrap();
    assert!(top.status.success());
    let top = text(&top.stdout);
    for word in [
        "serve",
        "migrate",
        "users",
        "tokens",
        "--config",
        "--data-dir",
        "--database-url",
        "--log-format",
    ] {
        assert!(top.contains(word), "herald --help lacks {word}:\n{top}");
    }
    let serve = text(&Command::new(HERALD).args(["serve", "--help"]).output().unwrap().stdout);
    for flag in [
        "--listen",
        "HERALD_LISTEN",
        "--request-timeout",
        "--body-limit",
        "--shutdown-timeout",
        "--auth-cache-ttl",
        "--auth-max-failures",
        "--auth-lockout",
        "--database-max-connections",
        "--database-timeout",
        "HERALD_ADMIN_PASSWORD",
    ] {
        assert!(serve.contains(flag), "herald serve --help lacks {flag}:\n{serve}");
    }
}

#[test]
fn invalid_configuration_stops_start_up_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(HERALD)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("HERALD_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        "herald: invalid configuration: HERALD_LISTEN = \"nowhere\" (from environment variable HERALD_LISTEN): \
         expected a socket address host:port such as 127.0.0.1:8080\n"
    );
    let output = Command::new(HERALD)
        .args(["serve", "--request-timeout", "forever"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("HERALD_REQUEST_TIMEOUT = \"forever\" (from flag --request-timeout)"));
}

#[test]
fn a_data_dir_that_cannot_be_written_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let output = herald(&file.join("data"), &["serve"], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the data directory {} is not usable",
            file.join("data").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Not a directory"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_a_clear_error_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(
        dir.path(),
        &[
            "serve",
            "--database-url",
            "postgres://herald:s3cret@127.0.0.1:1/herald",
            "--database-timeout",
            "2s",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot open the database postgres://herald:<redacted>@127.0.0.1:1/herald"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("connection refused"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
}

#[test]
fn a_database_url_is_quoted_without_its_password_whatever_its_form() {
    let dir = tempfile::tempdir().unwrap();
    for (url, shown) in [
        // An unknown scheme: refused by the configuration, which quotes the value.
        (
            "mysql://herald:S3cretPW@db/herald",
            "mysql://herald:<redacted>@db/herald",
        ),
        ("mysql:herald:S3cretPW@db", "mysql:<redacted>@db"),
        // Unparsable (a `/` or `#` in the password): refused when the database is opened.
        (
            "postgres://herald:S3cret/PW@127.0.0.1:1/herald",
            "postgres://herald:<redacted>@127.0.0.1:1/herald",
        ),
        (
            "postgresql://herald:S3cret#PW@127.0.0.1:1/herald",
            "postgresql://herald:<redacted>@127.0.0.1:1/herald",
        ),
        // Valid but unreachable, with the password in the query too.
        (
            "postgres://herald:S3cretPW@127.0.0.1:1/herald?password=S3cretPW",
            "postgres://herald:<redacted>@127.0.0.1:1/herald?password=<redacted>",
        ),
    ] {
        let output = Command::new(HERALD)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("migrate")
            .env("HERALD_DATABASE_URL", url)
            .env("HERALD_DATABASE_TIMEOUT", "2s")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{url}");
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(!all.contains("S3cret"), "the password of {url} leaked: {all}");
        assert!(all.contains(shown), "{url}: {all}");
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let child = Command::new(HERALD)
        .args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--smtp-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("HERALD_ADMIN_PASSWORD")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = http_client();
    let url = format!("{}/readyz", server.base);
    let ready = eventually(Duration::from_secs(30), || async {
        client.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "herald serve did not become ready");
    server
}

fn terminate(mut server: Server) -> (std::process::ExitStatus, String) {
    sigterm(&server.child).expect("SIGTERM herald");
    let child = std::mem::replace(&mut server.child, Command::new("true").spawn().unwrap());
    let output = child.wait_with_output().unwrap();
    (output.status, text(&output.stderr))
}

#[tokio::test]
async fn first_start_creates_admin_with_a_private_generated_password_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]).await;
    let file = dir.path().join("initial-admin-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(password.len(), 24);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let response = http_client()
        .get(format!("{}/api/v1/whoami", server.base))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, log) = terminate(server);
    assert!(status.success(), "exit status {status}: {log}");
    assert!(log.contains("initial-admin-password"), "the log names the file: {log}");
    assert!(!log.contains(&password), "the password must never be logged");
    assert!(log.contains("\"message\":\"stopped\""), "{log}");
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[tokio::test]
async fn the_configured_admin_password_is_used_and_no_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[("HERALD_ADMIN_PASSWORD", "from-the-environment")]).await;
    assert!(!dir.path().join("initial-admin-password").exists());
    let response = http_client()
        .get(format!("{}/api/v1/whoami", server.base))
        .basic_auth("admin", Some("from-the-environment"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, log) = terminate(server);
    assert!(status.success());
    assert!(!log.contains("from-the-environment"));
}

#[test]
fn users_and_tokens_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let migrate = herald(d, &["migrate"], None);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));
    assert_eq!(text(&migrate.stdout), "database is up to date\n");

    let add = herald(
        d,
        &["users", "add", "root", "--role", "admin", "--password-stdin"],
        Some("root-password-1\n"),
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    assert_eq!(text(&add.stdout), "created user `root` with role admin\n");
    let generated = herald(d, &["users", "add", "mon"], None);
    let out = text(&generated.stdout);
    assert!(
        out.starts_with("created user `mon` with role monitor\npassword: "),
        "{out}"
    );

    let duplicate = herald(d, &["users", "add", "mon", "--password-stdin"], Some("whatever-pass\n"));
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(text(&duplicate.stderr).contains("a user named `mon` already exists"));
    let short = herald(d, &["users", "add", "x", "--password-stdin"], Some("short\n"));
    assert!(text(&short.stderr).contains("at least 8 characters"));
    let control = herald(d, &["users", "add", "x", "--password-stdin"], Some("tab\tseparated\n"));
    assert!(
        text(&control.stderr)
            .contains("the password must not contain control characters such as tab or newline (found U+0009)")
    );
    let bad_role = herald(d, &["users", "add", "x", "--role", "root"], None);
    assert!(text(&bad_role.stderr).contains("unknown role `root`"));

    let list = text(&herald(d, &["users", "list"], None).stdout);
    assert!(
        list.contains("root") && list.contains("mon") && list.contains("monitor"),
        "{list}"
    );

    let token = herald(
        d,
        &[
            "tokens",
            "create",
            "--user",
            "mon",
            "--name",
            "grafana",
            "--expires-in",
            "30d",
        ],
        None,
    );
    let out = text(&token.stdout);
    let secret = out.lines().nth(1).unwrap();
    assert!(secret.starts_with("hrld_"), "{out}");
    let id = out.split_whitespace().nth(2).unwrap().to_owned();
    let tokens = text(&herald(d, &["tokens", "list"], None).stdout);
    assert!(
        tokens.contains(&id) && tokens.contains("grafana") && !tokens.contains(secret),
        "{tokens}"
    );
    assert!(herald(d, &["tokens", "revoke", &id], None).status.success());
    let again = herald(d, &["tokens", "revoke", &id], None);
    assert!(text(&again.stderr).contains(&format!("no token with id `{id}`")));

    assert!(
        herald(
            d,
            &["users", "set-password", "mon", "--password-stdin"],
            Some("new-password-9\n")
        )
        .status
        .success()
    );
    let promoted = herald(d, &["users", "set-role", "mon", "admin"], None);
    assert_eq!(text(&promoted.stdout).trim(), "`mon` is now admin");
    assert!(
        herald(d, &["users", "set-role", "mon", "monitor"], None)
            .status
            .success()
    );
    let demoted = herald(d, &["users", "set-role", "root", "monitor"], None);
    assert!(
        text(&demoted.stderr).contains("`root` is the last admin"),
        "{}",
        text(&demoted.stderr)
    );
    let unknown = herald(d, &["users", "set-role", "mon", "root"], None);
    assert!(
        text(&unknown.stderr).contains("unknown role `root`"),
        "{}",
        text(&unknown.stderr)
    );
    assert!(herald(d, &["users", "delete", "mon"], None).status.success());
    let last = herald(d, &["users", "delete", "root"], None);
    assert_eq!(last.status.code(), Some(1));
    assert!(text(&last.stderr).contains("`root` is the last admin"));
}

#[test]
fn mail_is_sent_and_the_queue_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sent = herald(
        d,
        &[
            "mail",
            "send",
            "--to",
            "ops@example.com",
            "--subject",
            "Backup done",
            "--text",
            "-",
        ],
        Some("all good\n"),
    );
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    let id = text(&sent.stdout).trim().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    let keyed = [
        "mail",
        "send",
        "--to",
        "a@example.com",
        "--subject",
        "s",
        "--text",
        "t",
        "--idempotency-key",
        "k1",
    ];
    let first = text(&herald(d, &keyed, None).stdout);
    assert_eq!(
        first,
        text(&herald(d, &keyed, None).stdout),
        "the same key gives the same id"
    );
    assert_eq!(
        text(&herald(d, &["mail", "status"], None).stdout),
        "size: 2\nerrorSize: 0\n"
    );
    let queue = text(&herald(d, &["mail", "queue"], None).stdout);
    assert!(
        queue.contains(&id) && queue.contains("Backup done") && queue.contains("queued"),
        "{queue}"
    );
    let arrival = format!("    via INTERNAL by cli, Message-ID <{id}@herald>\n    ops@example.com \u{2026} pending\n");
    assert!(queue.contains(&arrival), "{queue}");
    let shown = text(&herald(d, &["mail", "show", &id], None).stdout);
    for line in [
        format!("id: {id}"),
        "subject: Backup done".to_owned(),
        "recipients: ops@example.com \u{2026} pending".to_owned(),
        format!("arrived: via INTERNAL by cli, Message-ID <{id}@herald>"),
    ] {
        assert!(shown.lines().any(|l| l == line), "no `{line}` in\n{shown}");
    }
    assert_eq!(
        text(&herald(d, &["mail", "errors"], None).stdout).lines().count(),
        1,
        "only the header line"
    );
    assert_eq!(
        text(&herald(d, &["mail", "resend", "--all"], None).stdout),
        "resent 0 message(s)\n"
    );
    let missing = herald(d, &["mail", "delete", "0190"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no message `0190`"));
    let neither = herald(d, &["mail", "resend"], None);
    assert!(text(&neither.stderr).contains("or use --all"));
    let bad = herald(
        d,
        &[
            "mail",
            "send",
            "--to",
            "not-an-address",
            "--subject",
            "s",
            "--text",
            "t",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("`to[0]`"), "{}", text(&bad.stderr));
    let injected = herald(
        d,
        &[
            "mail",
            "send",
            "--to",
            "a@example.com",
            "--subject",
            "s",
            "--text",
            "t",
            "--header",
            "X-A: 1\r\nBcc: x@example.com",
        ],
        None,
    );
    assert!(
        text(&injected.stderr).contains("headers.X-A"),
        "{}",
        text(&injected.stderr)
    );
}
