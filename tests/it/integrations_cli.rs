//! `herald integrations …` as an operator runs it, against a simulated Jira.

use crate::support;

use std::path::Path;
use std::process::Output;

use support::jira_sim::{self, Flavour, JiraSim};
use support::process::{herald_command, run};
use support::{Backend, TestDatabase};

backend_tests!(a_command_without_the_servers_key_stops_instead_of_creating_another);

fn herald(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    herald_with(data_dir, &[], args, stdin)
}

/// Runs herald with extra environment variables (HERALD_DATABASE_URL and HERALD_SECRET_KEY are unset
/// unless given here).
fn herald_with(data_dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    run(
        herald_command()
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--log")
            .arg("error")
            .args(args)
            .envs(env.iter().copied()),
        stdin,
    )
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_show_check_update_and_delete() {
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let url = sim.url.clone();
    let run = move |args: Vec<String>, stdin: Option<&'static str>| {
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            herald(&data, &args, stdin)
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let add = run(
        args(&[
            "integrations",
            "add",
            "jira",
            "--url",
            &url,
            "--username",
            jira_sim::USER,
            "--project-key",
            "SEC",
            "--issue-type",
            "Bug",
            "--field",
            "labels=[\"herald\"]",
        ]),
        Some("s3cret-password\n"),
    )
    .await
    .unwrap();
    assert!(add.status.success(), "{}", out(&add));
    assert!(out(&add).contains("HEALTHY_INTEGRATION"), "{}", out(&add));

    let list = run(args(&["integrations", "list"]), None).await.unwrap();
    assert!(
        out(&list).contains("jira") && out(&list).contains("SEC"),
        "{}",
        out(&list)
    );

    let show = run(args(&["integrations", "show", "jira"]), None).await.unwrap();
    assert!(out(&show).contains("\"password_set\": true"), "{}", out(&show));
    assert!(!out(&show).contains(jira_sim::PASSWORD));

    let update = run(
        args(&["integrations", "update", "jira", "--secret-stdin"]),
        Some("wrong\n"),
    )
    .await
    .unwrap();
    assert_eq!(update.status.code(), Some(1), "{}", out(&update));
    assert!(out(&update).contains("AUTHENTICATED_FAILED"), "{}", out(&update));

    run(
        args(&[
            "integrations",
            "add",
            "second",
            "--url",
            &url,
            "--username",
            jira_sim::USER,
        ]),
        Some("s3cret-password\n"),
    )
    .await
    .unwrap();
    let all = run(args(&["integrations", "check", "--all"]), None).await.unwrap();
    let text = out(&all);
    assert_eq!(all.status.code(), Some(1), "{text}");
    assert!(text.contains("2 checked: 1 healthy, 1 faulty"), "{text}");
    assert!(text.contains("second") && text.contains("authentication"), "{text}");

    let delete = run(args(&["integrations", "delete", "jira"]), None).await.unwrap();
    assert!(delete.status.success(), "{}", out(&delete));
    let missing = run(args(&["integrations", "show", "jira"]), None).await.unwrap();
    assert!(!missing.status.success());
    assert!(
        out(&missing).contains("no integration named `jira`"),
        "{}",
        out(&missing)
    );
}

const MISMATCH: &str = "is not the one the database's secrets were encrypted with";

/// The server's data dir holds the key; a command run elsewhere against the same database must not
/// make up a key of its own and seal credentials with it that the server cannot read.
async fn a_command_without_the_servers_key_stops_instead_of_creating_another(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let database = db
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", db.dir.path().join("herald.db").display()));
    let sim = JiraSim::start(Flavour::DataCenter).await;
    let url = sim.url.clone();
    let dirs = tempfile::tempdir().unwrap();
    let (server_dir, other_dir) = (dirs.path().join("server"), dirs.path().join("other"));
    let run = move |dir: std::path::PathBuf, env: Vec<(&'static str, String)>, args: Vec<String>| {
        let database = database.clone();
        tokio::task::spawn_blocking(move || {
            let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            env.push(("HERALD_DATABASE_URL", &database));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            herald_with(&dir, &env, &args, Some("s3cret-password\n"))
        })
    };
    let add = |name: &str| -> Vec<String> {
        ["integrations", "add", name, "--url", &url, "--username", jira_sim::USER]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let list = || vec!["integrations".to_owned(), "list".to_owned()];

    // A fresh database: the first command that stores a secret creates the key.
    let first = run(server_dir.clone(), vec![], add("jira")).await.unwrap();
    assert!(first.status.success(), "{}", out(&first));
    let key = std::fs::read_to_string(server_dir.join("secret.key")).unwrap();

    // Elsewhere, without the key file or HERALD_SECRET_KEY: refused, and no key file is made.
    for args in [add("second"), list()] {
        let refused = run(other_dir.clone(), vec![], args).await.unwrap();
        assert_eq!(refused.status.code(), Some(1), "{}", out(&refused));
        assert!(out(&refused).contains(MISMATCH), "{}", out(&refused));
        assert!(!other_dir.join("secret.key").exists(), "a foreign key was created");
    }
    // With another key: refused as well.
    let wrong = base64_of_32(7);
    let refused = run(other_dir.clone(), vec![("HERALD_SECRET_KEY", wrong)], add("second"))
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", out(&refused));
    assert!(out(&refused).contains(MISMATCH), "{}", out(&refused));
    // `serve` follows the same rule, with the same error.
    let serve = vec!["serve".to_owned(), "--listen".to_owned(), "127.0.0.1:0".to_owned()];
    let refused = run(other_dir.clone(), vec![], serve.clone()).await.unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", out(&refused));
    assert!(out(&refused).contains(MISMATCH), "{}", out(&refused));
    assert!(!other_dir.join("secret.key").exists(), "serve created a foreign key");
    let serve_error = mismatch_line(&refused);

    // Every command group opens its services as serve does: with another key, each stops with
    // serve's very error line.
    let words = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut commands = vec![
        serve,
        words(&["migrate"]),
        words(&["users", "list"]),
        words(&["users", "add", "someone", "--password-stdin"]),
        words(&["tokens", "list"]),
        words(&["mail", "status"]),
        words(&["cluster", "status"]),
        words(&["integrations", "list"]),
    ];
    commands.push(add("second"));
    for args in commands {
        let shown = args.join(" ");
        let refused = run(other_dir.clone(), vec![("HERALD_SECRET_KEY", base64_of_32(7))], args)
            .await
            .unwrap();
        assert_eq!(refused.status.code(), Some(1), "{shown}: {}", out(&refused));
        assert_eq!(mismatch_line(&refused), serve_error, "{shown}: {}", out(&refused));
    }
    // Without a key, a command that touches no secret would create none: it runs.
    let users = run(other_dir.clone(), vec![], words(&["users", "list"])).await.unwrap();
    assert!(users.status.success(), "{}", out(&users));
    assert!(
        !other_dir.join("secret.key").exists(),
        "a command that seals nothing created a key"
    );

    // With the server's key, a command anywhere works, and the server's key opens what it stored.
    let added = run(
        other_dir.clone(),
        vec![("HERALD_SECRET_KEY", key.trim().to_owned())],
        add("second"),
    )
    .await
    .unwrap();
    assert!(added.status.success(), "{}", out(&added));
    let shown = run(
        server_dir.clone(),
        vec![],
        vec!["integrations".into(), "check".into(), "second".into()],
    )
    .await
    .unwrap();
    assert!(out(&shown).contains("HEALTHY_INTEGRATION"), "{}", out(&shown));
}

/// A command that only reads, on a database with nothing sealed, leaves no key behind: it must not
/// tie the installation to whatever directory it happened to run in.
#[test]
fn a_reading_command_on_an_empty_database_creates_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let list = herald(dir.path(), &["integrations", "list"], None);
    assert!(list.status.success(), "{}", out(&list));
    assert!(!dir.path().join("secret.key").exists());
}

/// The line of a refused command's output that says the key is the wrong one.
fn mismatch_line(output: &Output) -> String {
    let text = out(output);
    text.lines()
        .find(|line| line.contains(MISMATCH))
        .unwrap_or_else(|| panic!("no key mismatch in: {text}"))
        .to_owned()
}

fn base64_of_32(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}
