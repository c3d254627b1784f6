//! The settings: defaults, layering, validation, and the documented table.

use std::collections::BTreeMap;

use super::values::{parse_duration, parse_size};
use super::*;
use crate::telemetry::LogFormat;

fn load(env: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Result<Settings, ConfigError> {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let flags = flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
    Settings::load_from(None, |k| env.get(k).cloned(), &flags)
}

#[test]
fn defaults_are_valid_and_documented() {
    let s = load(&[], &[]).unwrap();
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.database.data_dir, PathBuf::from("./herald-data"));
    assert_eq!(s.database.url, "sqlite://./herald-data/herald.db");
    assert_eq!(s.logging.format, LogFormat::Text);
    assert_eq!(s.http.body_limit, 1 << 20);
    assert!(!s.database.uses_postgres());
}

#[test]
fn flags_beat_environment_beats_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1000\"\nrequest_timeout = \"5s\"\nbody_limit = 4096\n",
    )
    .unwrap();
    let env = |k: &str| (k == "HERALD_LISTEN").then(|| "127.0.0.1:2000".to_owned());
    let s = Settings::load_from(Some(&file), env, &FlagValues::new()).unwrap();
    assert_eq!(s.http.listen.port(), 2000);
    assert_eq!(s.http.request_timeout, Duration::from_secs(5));
    assert_eq!(s.http.body_limit, 4096);
    let flags = [("listen", "127.0.0.1:3000".to_owned())].into_iter().collect();
    let s = Settings::load_from(Some(&file), env, &flags).unwrap();
    assert_eq!(s.http.listen.port(), 3000);
}

#[test]
fn an_invalid_value_names_key_origin_value_and_what_is_allowed() {
    let err = load(&[("HERALD_LISTEN", "nowhere")], &[]).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid configuration: HERALD_LISTEN = \"nowhere\" (from environment variable HERALD_LISTEN): \
         expected a socket address host:port such as 127.0.0.1:8080"
    );
    let err = load(&[], &[("request_timeout", "soon")]).unwrap_err().to_string();
    assert!(
        err.contains("HERALD_REQUEST_TIMEOUT = \"soon\" (from flag --request-timeout)"),
        "{err}"
    );
    assert!(err.contains("`60s`"), "{err}");
    let err = load(&[("HERALD_LOG_FORMAT", "yaml")], &[]).unwrap_err().to_string();
    assert!(err.ends_with("expected `text` or `json`"), "{err}");
    let err = load(&[("HERALD_DATABASE_URL", "mysql://x")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sqlite:// or postgres://"), "{err}");
    let err = load(&[("HERALD_BODY_LIMIT", "12 parsecs")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("HERALD_BODY_LIMIT"), "{err}");
}

#[test]
fn a_secret_is_never_echoed_in_errors() {
    let err = load(&[("HERALD_ADMIN_PASSWORD", "")], &[]).unwrap_err().to_string();
    assert!(err.contains("HERALD_ADMIN_PASSWORD = <redacted>"), "{err}");
}

#[test]
fn the_admin_password_follows_the_password_rule() {
    let err = load(&[("HERALD_ADMIN_PASSWORD", "bad\u{16}password")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HERALD_ADMIN_PASSWORD = <redacted>") && err.contains("without control characters"),
        "{err}"
    );
    let err = load(&[("HERALD_ADMIN_PASSWORD", "short")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 8 characters"), "{err}");
    let s = load(&[("HERALD_ADMIN_PASSWORD", "a fine pass phrase")], &[]).unwrap();
    assert_eq!(s.auth.admin_password.unwrap().expose(), "a fine pass phrase");
}

#[test]
fn unknown_keys_in_the_file_are_rejected_with_the_known_ones_listed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, "lisen = \"x\"\n").unwrap();
    let err = Settings::load_from(Some(&file), |_| None, &FlagValues::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown key `lisen`") && err.contains("known keys: listen, ") && err.contains(", data_dir, "),
        "{err}"
    );
}

#[test]
fn sizes_and_durations_are_human_readable() {
    assert_eq!(parse_size("64KiB"), Some(65536));
    assert_eq!(parse_size("2 MiB"), Some(2 << 20));
    assert_eq!(parse_size("10MB"), Some(10_000_000));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("0s"), None);
}

#[test]
fn check_settings_have_defaults_and_precise_errors() {
    let s = load(&[], &[]).unwrap();
    assert_eq!(s.checks.max_age, Duration::from_secs(30));
    assert_eq!(s.checks.interval, Duration::from_secs(300));
    assert_eq!(s.checks.timeout, Duration::from_secs(10));
    assert_eq!(s.checks.concurrency, 32);
    assert!(s.database.secret_key.is_none());
    let s = load(
        &[("HERALD_CHECK_MAX_AGE", "0s"), ("HERALD_CHECK_CONCURRENCY", "4")],
        &[],
    )
    .unwrap();
    assert_eq!(s.checks.max_age, Duration::ZERO);
    assert_eq!(s.checks.concurrency, 4);
    let err = load(&[("HERALD_CHECK_TIMEOUT", "1h")], &[]).unwrap_err().to_string();
    assert!(
        err.contains("HERALD_CHECK_TIMEOUT = \"1h\"") && err.contains("100ms to 5m"),
        "{err}"
    );
    let err = load(&[("HERALD_CHECK_CONCURRENCY", "0")], &[]).unwrap_err().to_string();
    assert!(err.contains("HERALD_CHECK_CONCURRENCY"), "{err}");
    let err = load(&[("HERALD_CHECK_INTERVAL", "0s")], &[]).unwrap_err().to_string();
    assert!(err.contains("HERALD_CHECK_INTERVAL"), "{err}");
}

#[test]
fn the_secret_key_must_be_32_bytes_and_is_never_echoed() {
    let err = load(&[("HERALD_SECRET_KEY", "dG9vIHNob3J0")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("HERALD_SECRET_KEY = <redacted>"), "{err}");
    assert!(!err.contains("dG9vIHNob3J0"), "{err}");
    let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let s = load(&[("HERALD_SECRET_KEY", key)], &[]).unwrap();
    assert_eq!(s.database.secret_key.unwrap().expose(), key);
}

#[test]
fn alert_and_console_settings_are_parsed_with_precise_errors() {
    let s = load(&[], &[]).unwrap();
    assert!(s.alerts.recipients.is_empty());
    assert_eq!(s.alerts.queue_age, Duration::from_secs(30 * 60));
    assert_eq!(s.alerts.error_queue, 10);
    assert_eq!(s.alerts.stopped_node, Duration::from_secs(30 * 60));
    assert_eq!(s.console.public_url, None);
    let s = load(
        &[
            ("HERALD_ALERT_EMAILS", " ops@example.com,oncall@example.org ,"),
            ("HERALD_PUBLIC_URL", "https://herald.example.com/"),
            ("HERALD_ALERT_DEBOUNCE", "0s"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(s.alerts.recipients, ["ops@example.com", "oncall@example.org"]);
    assert_eq!(s.console.public_url.as_deref(), Some("https://herald.example.com"));
    assert_eq!(s.alerts.debounce, Duration::ZERO);
    let e = load(&[("HERALD_ALERT_EMAILS", "ops@example.com, not an address")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HERALD_ALERT_EMAILS") && e.contains("comma-separated"),
        "{e}"
    );
    let e = load(&[("HERALD_PUBLIC_URL", "ftp://x")], &[]).unwrap_err().to_string();
    assert!(e.contains("HERALD_PUBLIC_URL") && e.contains("http or https"), "{e}");
}

#[test]
fn trusted_proxies_are_a_list_of_addresses_and_blocks() {
    let s = load(&[], &[]).unwrap();
    assert!(s.http.trusted_proxies.is_empty());
    let s = load(&[("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1")], &[]).unwrap();
    assert!(s.http.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    assert!(s.http.trusted_proxies.contains("2001:db8::1".parse().unwrap()));
    assert!(!s.http.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
    let e = load(&[], &[("trusted_proxies", "10.0.0.0/40")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HERALD_TRUSTED_PROXIES = \"10.0.0.0/40\" (from flag --trusted-proxies)") && e.contains("CIDR"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, "trusted_proxies = [\"10.0.0.1\", \"192.0.2.0/24\"]\n").unwrap();
    let s = Settings::load_from(Some(&file), |_| None, &FlagValues::new()).unwrap();
    assert!(s.http.trusted_proxies.contains("192.0.2.200".parse().unwrap()));
}

#[test]
fn postgres_urls_select_postgres() {
    let s = load(&[("HERALD_DATABASE_URL", "postgres://u@localhost/herald")], &[]).unwrap();
    assert!(s.database.uses_postgres());
}

/// `docs/configuration.md`, compiled in so that the test sees the file of this checkout.
const CONFIGURATION_DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md"));

/// The rows of the settings tables of a Markdown document, each with the `## ` heading it sits under.
/// A settings table is one whose header is `| key | environment | flag | default | meaning |`.
fn documented_rows(doc: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut heading = String::new();
    let mut in_settings_table = false;
    for line in doc.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            heading = title.trim().to_owned();
        }
        if !line.starts_with('|') {
            in_settings_table = false;
        } else if line == "| key | environment | flag | default | meaning |" {
            in_settings_table = true;
        } else if in_settings_table && !line.starts_with("|---") {
            rows.push((heading.clone(), line.trim_end().to_owned()));
        }
    }
    rows
}

/// The tables of `docs/configuration.md` are the declarations, row for row: each section's table under
/// its heading, its keys in declaration order, each row as [`Meta::documentation_row`] writes it (key,
/// variable, flag, default, meaning). When this fails, it prints the tables the declarations give.
#[test]
fn the_documented_table_matches_the_declared_keys() {
    let documented = documented_rows(CONFIGURATION_DOC);
    let declared: Vec<(String, String)> = sections::all()
        .map(|meta| (meta.section.title().to_owned(), meta.documentation_row()))
        .collect();
    if documented != declared {
        let mut expected = String::new();
        let mut section = "";
        for (title, row) in &declared {
            if title != section {
                expected.push_str(&format!(
                    "\n## {title}\n| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n"
                ));
                section = title;
            }
            expected.push_str(row);
            expected.push('\n');
        }
        let differing: Vec<String> = declared
            .iter()
            .filter(|row| !documented.contains(row))
            .map(|(title, row)| format!("declared under `{title}`: {row}"))
            .chain(
                documented
                    .iter()
                    .filter(|row| !declared.contains(row))
                    .map(|(title, row)| format!("documented under `{title}`: {row}")),
            )
            .collect();
        panic!(
            "docs/configuration.md and the declarations in src/config/sections/ disagree:\n{}\n\nThe declarations give:\n{expected}",
            differing.join("\n")
        );
    }
}

#[test]
fn the_documented_table_reader_keeps_rows_with_their_heading() {
    let doc = "## One\n\n| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n\
               | `a` | `HERALD_A` | `--a` | `1s` | x \\| y |\n\ntext\n## Two\n| endpoint | does |\n|---|---|\n\
               | `GET /` | not a setting |\n";
    assert_eq!(
        documented_rows(doc),
        [(
            "One".to_owned(),
            "| `a` | `HERALD_A` | `--a` | `1s` | x \\| y |".to_owned()
        )]
    );
}

#[test]
fn every_key_is_declared_once_and_every_default_parses() {
    let mut names: Vec<&str> = sections::all().map(|meta| meta.name).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a key is declared twice");
    // Loading with nothing given parses every default with its key's own parser.
    load(&[], &[]).unwrap();
}
