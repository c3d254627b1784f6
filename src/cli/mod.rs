//! The `herald` command line: the commands and their flags, and running one.
//!
//! `serve` and `migrate` are here; each group of commands that works on the database directly has its
//! own file (users, tokens, mail, cluster, integrations). Every command opens its services as the
//! server does, through `Services::open`, so it passes the same start-up checks (and stops with the
//! same errors); it then only parses its arguments, calls a service and prints plain text for people
//! and scripts alike.

mod cluster;
mod integrations;
mod mail;
mod tickets;
mod tokens;
mod users;

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::app::{self, Application};
use crate::auth::Username;
use crate::config::{self, ConfigError, Flag, FlagValues, Meta, Settings};
use crate::services::{NewKey, Services};

/// Herald: Jira integration health checks and a durable outgoing mail queue.
///
/// Configuration comes from defaults, then the file given by --config, then HERALD_* environment
/// variables, then flags; later sources win. Durations are written like 500ms, 30s, 5m, 1h.
#[derive(Parser)]
#[command(name = "herald", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    common: CommonFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct CommonFlags {
    /// A herald.toml file; its keys are the settings' names (listen, data_dir, database_url, …).
    #[arg(long, global = true, value_name = "FILE", env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
}

// Parsed once at start-up; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (creates user `admin` on first start; see HERALD_ADMIN_PASSWORD).
    Serve,
    /// Apply database migrations and exit (serve does this too).
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Send mail and manage the mail queue (works on the database directly; the node's delivery
    /// workers pick new mail up within seconds).
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Cluster mode (PostgreSQL, HERALD_CLUSTER=true): the nodes, and draining one.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Manage and check Jira integrations.
    #[command(subcommand)]
    Integrations(integrations::IntegrationsCommand),
    /// Each problem's Jira issue and the error list: list, show, resend, delete.
    #[command(subcommand)]
    Tickets(tickets::TicketsCommand),
    /// Send an event that opens, updates or resolves a Jira issue.
    #[command(subcommand)]
    Events(tickets::EventsCommand),
}

impl Cli {
    /// The command line: the commands, and a flag for each setting that has one (see
    /// [`crate::config::declared`]), with its help, variable and default from the declaration.
    pub fn definition() -> clap::Command {
        let flag = |meta: &Meta, value_name: &'static str| {
            let long = meta.name.replace('_', "-");
            Arg::new(meta.name)
                .long(long)
                .value_name(value_name)
                .help(meta.help())
                .action(ArgAction::Set)
        };
        let global: Vec<Arg> = config::declared()
            .filter_map(|meta| match meta.flag {
                Flag::Global(value_name) => Some(flag(meta, value_name).global(true)),
                _ => None,
            })
            .collect();
        let serve: Vec<Arg> = config::declared()
            .filter_map(|meta| match meta.flag {
                Flag::Serve(value_name) => Some(flag(meta, value_name)),
                _ => None,
            })
            .collect();
        <Cli as CommandFactory>::command()
            .args(global)
            .mut_subcommand("serve", |serve_command| serve_command.args(serve))
    }

    /// Parses the process's arguments (exits with clap's message and status on a bad command line),
    /// and gathers the settings' flags that were given.
    pub fn parse_args() -> (Cli, FlagValues) {
        let matches = Self::definition().get_matches();
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => (cli, flag_values(&matches)),
            Err(e) => e.exit(),
        }
    }

    /// The settings: defaults, then the --config file, then HERALD_* variables, then the flags.
    pub fn settings(&self, flags: &FlagValues) -> Result<Settings, ConfigError> {
        Settings::load(self.common.config.as_deref(), flags)
    }

    /// Runs the command to its end (`serve` until SIGTERM or SIGINT).
    pub async fn run(self, settings: Settings) -> anyhow::Result<()> {
        match self.command {
            Command::Serve => {
                let stop = app::shutdown_signal();
                let app = Application::build(settings).await?;
                app.run_until_stopped(stop).await?;
                Ok(())
            }
            Command::Migrate => {
                Services::open(&settings, NewKey::Unused).await?.close().await;
                println!("database is up to date");
                Ok(())
            }
            Command::Users(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = users::run(cmd, &services.accounts).await;
                services.close().await;
                done
            }
            Command::Tokens(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = tokens::run(cmd, &services.accounts).await;
                services.close().await;
                done
            }
            Command::Mail(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = mail::run(cmd, &services).await;
                services.close().await;
                done
            }
            Command::Cluster(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = cluster::run(cmd, &services).await;
                services.close().await;
                done
            }
            Command::Tickets(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = tickets::run(cmd, &services).await;
                services.close().await;
                done
            }
            Command::Events(cmd) => {
                let services = Services::open(&settings, NewKey::Unused).await?;
                let done = tickets::run_events(cmd, &services).await;
                services.close().await;
                done
            }
            Command::Integrations(cmd) => {
                let services = Services::open(&settings, integrations::new_key(&cmd)).await?;
                let done = integrations::run(cmd, &services).await;
                services.close().await;
                if done? {
                    Ok(())
                } else {
                    anyhow::bail!("at least one integration is faulty")
                }
            }
        }
    }
}

/// The settings given as flags: the global ones (which clap copies down to the subcommands) and those of
/// the subcommand that was run.
fn flag_values(matches: &ArgMatches) -> FlagValues {
    let mut flags = FlagValues::new();
    let mut level = Some(matches);
    while let Some(m) = level {
        for meta in config::declared().filter(|meta| meta.flag != Flag::None) {
            if let Ok(Some(value)) = m.try_get_one::<String>(meta.name) {
                flags.insert(meta.name, value.clone());
            }
        }
        level = m.subcommand().map(|(_, sub)| sub);
    }
    flags
}

/// A user name from the command line, or why it is not one.
fn username(name: &str) -> anyhow::Result<Username> {
    Username::try_from(name).map_err(|e| anyhow::anyhow!("invalid user name `{name}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::Cli;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Catches, at test time, what clap would otherwise report only when a command is run:
        // duplicate flags, conflicts naming unknown arguments, bad defaults.
        Cli::definition().debug_assert();
    }

    #[test]
    fn every_flag_of_a_setting_is_read_back_by_its_key() {
        let matches = Cli::definition()
            .try_get_matches_from([
                "herald",
                "--data-dir",
                "/d",
                "serve",
                "--listen",
                "0.0.0.0:1",
                "--log",
                "debug",
            ])
            .unwrap();
        let flags = super::flag_values(&matches);
        assert_eq!(flags.get("data_dir").map(String::as_str), Some("/d"));
        assert_eq!(flags.get("listen").map(String::as_str), Some("0.0.0.0:1"));
        assert_eq!(flags.get("log").map(String::as_str), Some("debug"));
        assert!(
            Cli::definition()
                .try_get_matches_from(["herald", "migrate", "--listen", "0.0.0.0:1"])
                .is_err(),
            "--listen is a flag of serve only"
        );
    }
}
