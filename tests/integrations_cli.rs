//! `herald integrations …` as an operator runs it, against a simulated Jira.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::jira_sim::{self, Flavour, JiraSim};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn herald(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(HERALD)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--log")
        .arg("error")
        .args(args)
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_SECRET_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herald");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
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
