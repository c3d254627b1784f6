//! The settings: defaults, layering, validation, and the documented table.

use super::*;

fn load(env: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Result<Settings, ConfigError> {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let flags = flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
    Settings::load_from(None, |k| env.get(k).cloned(), &flags)
}

#[test]
fn defaults_are_valid_and_documented() {
    let s = load(&[], &[]).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("./herald-data"));
    assert_eq!(s.database_url, "sqlite://./herald-data/herald.db");
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.body_limit, 1 << 20);
    assert!(!s.uses_postgres());
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
    assert_eq!(s.listen.port(), 2000);
    assert_eq!(s.request_timeout, Duration::from_secs(5));
    assert_eq!(s.body_limit, 4096);
    let flags = [("listen", "127.0.0.1:3000".to_owned())].into_iter().collect();
    let s = Settings::load_from(Some(&file), env, &flags).unwrap();
    assert_eq!(s.listen.port(), 3000);
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
    assert_eq!(s.admin_password.unwrap().expose(), "a fine pass phrase");
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
        err.contains("unknown key `lisen`") && err.contains("listen, data_dir"),
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
    assert_eq!(s.check_max_age, Duration::from_secs(30));
    assert_eq!(s.check_interval, Duration::from_secs(300));
    assert_eq!(s.check_timeout, Duration::from_secs(10));
    assert_eq!(s.check_concurrency, 32);
    assert!(s.secret_key.is_none());
    let s = load(
        &[("HERALD_CHECK_MAX_AGE", "0s"), ("HERALD_CHECK_CONCURRENCY", "4")],
        &[],
    )
    .unwrap();
    assert_eq!(s.check_max_age, Duration::ZERO);
    assert_eq!(s.check_concurrency, 4);
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
    assert_eq!(s.secret_key.unwrap().expose(), key);
}

#[test]
fn alert_and_console_settings_are_parsed_with_precise_errors() {
    let s = load(&[], &[]).unwrap();
    assert!(s.alert_emails.is_empty());
    assert_eq!(s.alert_queue_age, Duration::from_secs(30 * 60));
    assert_eq!(s.alert_error_queue, 10);
    assert_eq!(s.alert_stopped_node, Duration::from_secs(30 * 60));
    assert_eq!(s.public_url, None);
    let s = load(
        &[
            ("HERALD_ALERT_EMAILS", " ops@example.com,oncall@example.org ,"),
            ("HERALD_PUBLIC_URL", "https://herald.example.com/"),
            ("HERALD_ALERT_DEBOUNCE", "0s"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(s.alert_emails, ["ops@example.com", "oncall@example.org"]);
    assert_eq!(s.public_url.as_deref(), Some("https://herald.example.com"));
    assert_eq!(s.alert_debounce, Duration::ZERO);
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
    assert!(s.trusted_proxies.is_empty());
    let s = load(&[("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1")], &[]).unwrap();
    assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    assert!(s.trusted_proxies.contains("2001:db8::1".parse().unwrap()));
    assert!(!s.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
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
    assert!(s.trusted_proxies.contains("192.0.2.200".parse().unwrap()));
}

#[test]
fn postgres_urls_select_postgres() {
    let s = load(&[("HERALD_DATABASE_URL", "postgres://u@localhost/herald")], &[]).unwrap();
    assert!(s.uses_postgres());
}

/// `docs/configuration.md`, compiled in so that the test sees the file of this checkout.
const CONFIGURATION_DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md"));

/// One row of a settings table in `docs/configuration.md`: (key, env, flag, default). An empty
/// flag means the setting has none; a default that is not one code span (`none`, `generated
/// once, …`) is prose and reads as "no literal default" (`""`).
fn documented_rows(doc: &str) -> Vec<(String, String, String, String)> {
    let cells = |line: &str| -> Vec<String> {
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        // `\|` inside a cell is a literal bar, not a column separator.
        inner
            .replace("\\|", "\u{0}")
            .split('|')
            .map(|c| c.trim().replace('\u{0}', "|"))
            .collect()
    };
    let code_span = |cell: &str| -> Option<String> {
        let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
        (!inner.contains('`')).then(|| inner.to_owned())
    };
    let mut rows = Vec::new();
    let mut in_settings_table = false;
    for line in doc.lines() {
        if !line.trim_start().starts_with('|') {
            in_settings_table = false;
            continue;
        }
        let c = cells(line);
        if c.first().is_some_and(|h| h == "key") {
            assert_eq!(
                c,
                ["key", "environment", "flag", "default", "meaning"],
                "settings table header"
            );
            in_settings_table = true;
            continue;
        }
        if !in_settings_table || c.iter().all(|cell| cell.chars().all(|ch| ch == '-' || ch == ':')) {
            continue;
        }
        assert_eq!(c.len(), 5, "a settings row has five cells: {line}");
        let literal = |cell: &str| code_span(cell).unwrap_or_else(|| panic!("`{cell}` is not one code span: {line}"));
        let flag = if c[2].is_empty() { String::new() } else { literal(&c[2]) };
        let default = code_span(&c[3]).unwrap_or_default();
        rows.push((literal(&c[0]), literal(&c[1]), flag, default));
    }
    rows
}

/// The tables of `docs/configuration.md` list exactly the keys of [`KEYS`], each with its
/// environment variable, flag and default. To update: change the key in `KEYS` and its row in
/// `docs/configuration.md` together. A literal default is written as one code span (`` `30s` ``);
/// a key declared without a default (or with an empty one) is described in words instead
/// (`none`, `key file`, …); a key without a flag leaves the flag cell empty. Each key has
/// exactly one row, in any of the file's tables whose header is
/// `| key | environment | flag | default | meaning |`.
#[test]
fn the_documented_table_matches_the_declared_keys() {
    let rows = documented_rows(CONFIGURATION_DOC);
    let mut documented = BTreeMap::new();
    for (key, env, flag, default) in rows {
        let again = documented.insert(key.clone(), (env, flag, default));
        assert!(again.is_none(), "`{key}` has two rows in docs/configuration.md");
    }
    let declared: BTreeMap<String, (String, String, String)> = KEYS
        .iter()
        .map(|k| {
            let default = k.default.unwrap_or_default().to_owned();
            (k.name.to_owned(), (k.env.to_owned(), k.flag.to_owned(), default))
        })
        .collect();
    let mut problems = Vec::new();
    for (key, declaration) in &declared {
        match documented.get(key) {
            None => problems.push(format!("`{key}` is declared but has no row")),
            Some(row) if row != declaration => problems.push(format!(
                "`{key}`: declared (env, flag, default) {declaration:?}, documented {row:?}"
            )),
            Some(_) => {}
        }
    }
    for key in documented.keys().filter(|k| !declared.contains_key(*k)) {
        problems.push(format!("`{key}` has a row but is not declared in KEYS"));
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md and KEYS in src/config/keys.rs disagree:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_documented_table_parser_reads_flags_defaults_and_prose() {
    let doc = "| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n\
               | `a` | `HERALD_A` | `--a` | `1s` | x \\| y |\n| `b` | `HERALD_B` | | none (off) | z |\n\ntext\n\
               | endpoint | does |\n|---|---|\n| `GET /` | not a setting |\n";
    assert_eq!(
        documented_rows(doc),
        [
            ("a".into(), "HERALD_A".into(), "--a".into(), "1s".into()),
            ("b".into(), "HERALD_B".into(), String::new(), String::new()),
        ]
    );
}
