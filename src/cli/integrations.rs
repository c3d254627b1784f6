//! `herald integrations …`: manage and check integrations from the command line, against the
//! configured database (the same one the server uses). Secrets are read from standard input.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::integrations::{Auth, Change, Integration, Saved, UNTIL_DONE, Verdict};
use crate::services::{NewKey, Services};
use crate::timefmt::rfc3339_ms;

#[derive(Subcommand)]
pub enum IntegrationsCommand {
    /// Register a Jira integration, then check it. The password or token is read from standard input.
    Add {
        name: String,
        #[command(flatten)]
        settings: SettingsFlags,
    },
    /// List integrations.
    List,
    /// Show one integration (never its secret).
    Show { name: String },
    /// Change settings of an integration, then check it; a new secret is read from standard input with
    /// --secret-stdin.
    Update {
        name: String,
        #[command(flatten)]
        settings: SettingsFlags,
    },
    /// Delete an integration and its history.
    Delete { name: String },
    /// Check one integration against Jira now, or every one with --all (progress bar and summary table).
    /// Exits with status 1 when any integration is faulty.
    Check {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct SettingsFlags {
    /// Jira's base URL, with its context path if any (https://jira.example.com/jira).
    #[arg(long)]
    url: Option<String>,
    /// cloud, server or auto.
    #[arg(long, value_name = "TYPE")]
    installation_type: Option<String>,
    /// User name (or e-mail on Cloud) for Basic auth; the password or API token comes from standard input.
    #[arg(long, conflicts_with = "bearer")]
    username: Option<String>,
    /// Use a personal access token (Bearer), read from standard input.
    #[arg(long)]
    bearer: bool,
    /// Read a new password or token from standard input (implied by add).
    #[arg(long)]
    secret_stdin: bool,
    /// Project key of created tickets.
    #[arg(long)]
    project_key: Option<String>,
    /// Issue type of created tickets (name or id).
    #[arg(long)]
    issue_type: Option<String>,
    /// An extra field, as ID=JSON (e.g. components='[{"name":"Backend"}]'); repeatable.
    #[arg(long = "field", value_name = "ID=JSON")]
    fields: Vec<String>,
    /// A PEM file with the CA certificate(s) of a Jira with a private CA.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Connect directly even when a proxy is configured.
    #[arg(long)]
    skip_proxy: bool,
    /// Budget of one check, e.g. 10s.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// A JSON file with the ticket settings (the `tickets` object, docs/tickets.md); on update it is
    /// merged into the stored ones (JSON merge patch: `null` removes a setting).
    #[arg(long, value_name = "FILE")]
    tickets: Option<PathBuf>,
}

fn read_secret() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().take(64 * 1024).read_to_string(&mut input)?;
    let line = input.lines().next().unwrap_or("").trim().to_owned();
    anyhow::ensure!(!line.is_empty(), "expected the password or token on standard input");
    Ok(line)
}

impl SettingsFlags {
    /// The flags as a JSON merge patch over Herald's integration JSON.
    fn to_patch(&self, with_secret: bool) -> anyhow::Result<Value> {
        let mut patch = serde_json::Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                patch.insert(key.to_owned(), v);
            }
        };
        put("url", self.url.clone().map(Value::from));
        put("installation_type", self.installation_type.clone().map(Value::from));
        put("project_key", self.project_key.clone().map(Value::from));
        put("issue_type", self.issue_type.clone().map(Value::from));
        put("timeout", self.timeout.clone().map(Value::from));
        if self.skip_proxy {
            put("skip_proxy", Some(Value::Bool(true)));
        }
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read --ca-cert {}: {e}", path.display()))?;
            put("ca_cert_pem", Some(Value::from(pem)));
        }
        if let Some(path) = &self.tickets {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read --tickets {}: {e}", path.display()))?;
            let tickets: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("--tickets {} is not JSON: {e}", path.display()))?;
            anyhow::ensure!(
                tickets.is_object() || tickets.is_null(),
                "--tickets {} must hold a JSON object (the ticket settings) or null",
                path.display()
            );
            put("tickets", Some(tickets));
        }
        if !self.fields.is_empty() {
            let mut fields = serde_json::Map::new();
            for f in &self.fields {
                let (id, value) = f
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--field must be ID=JSON, got `{f}`"))?;
                let value: Value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
                fields.insert(id.to_owned(), value);
            }
            put("fields", Some(Value::Object(fields)));
        }
        let secret = if with_secret || self.secret_stdin {
            Some(read_secret()?)
        } else {
            None
        };
        let mut auth = serde_json::Map::new();
        if self.bearer {
            auth.insert("type".into(), json!("bearer"));
            if let Some(s) = &secret {
                auth.insert("token".into(), json!(s));
            }
        } else if self.username.is_some() || secret.is_some() {
            if let Some(u) = &self.username {
                auth.insert("type".into(), json!("basic"));
                auth.insert("username".into(), json!(u));
            }
            if let Some(s) = &secret {
                auth.insert("password".into(), json!(s));
            }
        }
        if !auth.is_empty() {
            patch.insert("auth".into(), Value::Object(auth));
        }
        Ok(Value::Object(patch))
    }
}

/// What the command does without a secrets key: only a command that stores a secret may create the
/// installation's key; the others use a throwaway one while nothing is sealed. Either way a key that
/// is there, or a database sealed with another key, is checked exactly as `serve` checks it.
pub fn new_key(cmd: &IntegrationsCommand) -> NewKey {
    match cmd {
        IntegrationsCommand::Add { .. } | IntegrationsCommand::Update { .. } => NewKey::Persist,
        _ => NewKey::Ephemeral,
    }
}

fn describe(integration: &Integration) -> Value {
    let mut doc = serde_json::to_value(integration.settings.to_spec()).unwrap_or(Value::Null);
    match (&integration.settings.auth, doc.get_mut("auth")) {
        (Auth::Basic { .. }, Some(auth)) => auth["password_set"] = json!(true),
        (Auth::Bearer { .. }, Some(auth)) => auth["token_set"] = json!(true),
        _ => {}
    }
    doc["name"] = json!(integration.name.as_str());
    doc["revision"] = json!(integration.revision);
    doc["created_at"] = json!(rfc3339_ms(integration.created_at));
    doc["updated_at"] = json!(rfc3339_ms(integration.updated_at));
    doc
}

/// The verdict of the check after a save (the command waits for it), or why there is none.
fn checked(check: Saved) -> anyhow::Result<Arc<Verdict>> {
    match check {
        Saved::Checked(verdict) => Ok(verdict),
        Saved::NotChecked(e) => Err(e.into()),
        Saved::StillRunning | Saved::CheckStopped => anyhow::bail!("the check did not finish"),
    }
}

fn print_verdict(v: &Verdict) {
    println!("{}: {} ({})", v.integration_name, v.status(), rfc3339_ms(v.verified_at));
    println!("  {}", v.report.reason);
    for step in &v.report.steps {
        println!(
            "  {:<15} {:<8} {}",
            step.step.as_str(),
            format!("{:?}", step.outcome).to_lowercase(),
            step.detail
        );
    }
}

pub async fn run(cmd: IntegrationsCommand, services: &Services) -> anyhow::Result<bool> {
    let (integrations, settings) = (&services.integrations, &services.settings);
    let mut all_healthy = true;
    match cmd {
        IntegrationsCommand::Add { name, settings: flags } => {
            let mut spec = flags.to_patch(true)?;
            spec["name"] = json!(name);
            if spec.get("auth").is_some_and(|a| a.get("type").is_none()) {
                anyhow::bail!("give --username (Basic) or --bearer");
            }
            let spec = serde_json::from_value(spec).map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
            let (created, check) = integrations.save_and_check(Change::Create(spec), UNTIL_DONE).await?;
            println!("created integration `{}`", created.name);
            let verdict = checked(check)?;
            print_verdict(&verdict);
            all_healthy = verdict.report.healthy;
        }
        IntegrationsCommand::List => {
            println!(
                "{:<24} {:<40} {:<7} {:<7} {:<10}",
                "NAME", "URL", "TYPE", "AUTH", "PROJECT"
            );
            for i in integrations.list().await? {
                let s = &i.settings;
                println!(
                    "{:<24} {:<40} {:<7} {:<7} {:<10}",
                    i.name.as_str(),
                    s.url.as_str(),
                    s.installation_type.as_str(),
                    s.auth.kind(),
                    s.project_key.as_deref().unwrap_or("-")
                );
            }
        }
        IntegrationsCommand::Show { name } => {
            let integration = integrations.get(&name).await?;
            println!("{}", serde_json::to_string_pretty(&describe(&integration))?);
        }
        IntegrationsCommand::Update { name, settings: flags } => {
            let patch = flags.to_patch(false)?;
            let (updated, check) = integrations
                .save_and_check(Change::Patch { name, patch }, UNTIL_DONE)
                .await?;
            println!("updated integration `{}` (revision {})", updated.name, updated.revision);
            let verdict = checked(check)?;
            print_verdict(&verdict);
            all_healthy = verdict.report.healthy;
        }
        IntegrationsCommand::Delete { name } => {
            integrations.delete(&name).await?;
            println!("deleted integration `{name}`");
        }
        IntegrationsCommand::Check { name: Some(name), .. } => {
            let verdict = integrations.check_now(&name).await?;
            print_verdict(&verdict);
            all_healthy = verdict.report.healthy;
        }
        IntegrationsCommand::Check { name: None, .. } => {
            let list = integrations.list().await?;
            let bar = indicatif::ProgressBar::new(list.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} checked ({elapsed}) {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            let mut verdicts: Vec<Arc<Verdict>> = futures::stream::iter(list)
                .map(|i| {
                    let integrations = integrations.clone();
                    let bar = bar.clone();
                    async move {
                        let v = integrations.check_now(i.name.as_str()).await;
                        bar.inc(1);
                        v
                    }
                })
                .buffer_unordered(settings.checks.concurrency)
                .filter_map(|v| async move { v.ok() })
                .collect()
                .await;
            bar.finish_and_clear();
            verdicts.sort_by(|a, b| a.integration_name.cmp(&b.integration_name));
            println!("{:<24} {:<22} {:<15} REASON", "NAME", "STATUS", "STEP");
            for v in &verdicts {
                println!(
                    "{:<24} {:<22} {:<15} {}",
                    v.integration_name,
                    v.status(),
                    v.report.failed_step.map_or("-", |s| s.as_str()),
                    v.report.reason
                );
            }
            let healthy = verdicts.iter().filter(|v| v.report.healthy).count();
            println!(
                "{} checked: {healthy} healthy, {} faulty",
                verdicts.len(),
                verdicts.len() - healthy
            );
            all_healthy = healthy == verdicts.len();
        }
    }
    Ok(all_healthy)
}
