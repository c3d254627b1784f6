//! The `herald` command line: parses flags, starts logging, runs the chosen command.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod integrations_cli;

use herald::app::{self, Application};
use herald::auth::{Accounts, Role, Username};
use herald::config::{FlagValues, Settings};
use herald::secret::Secret;
use herald::timefmt::rfc3339_ms;

/// Herald: Jira integration health checks and a durable outgoing mail queue.
///
/// Configuration comes from defaults, then the file given by --config, then HERALD_* environment
/// variables, then flags; later sources win. Durations are written like 500ms, 30s, 5m, 1h.
#[derive(Parser)]
#[command(name = "herald", version, about, long_about, max_term_width = 100)]
struct Cli {
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
    /// Where Herald keeps its SQLite database, key file and generated admin password
    /// [env: HERALD_DATA_DIR] [default: ./herald-data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<String>,
    /// Database URL: sqlite://PATH, or postgres://USER:PASSWORD@HOST:PORT/DB for PostgreSQL
    /// [env: HERALD_DATABASE_URL] [default: SQLite file herald.db in the data dir].
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Log filter, e.g. info or herald=debug,info [env: HERALD_LOG] [default: info].
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    /// Log line format: text or json [env: HERALD_LOG_FORMAT] [default: text].
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates user `admin` on first start; see HERALD_ADMIN_PASSWORD).
    Serve(ServeFlags),
    /// Apply database migrations and exit (serve does this too).
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Manage and check Jira integrations.
    #[command(subcommand)]
    Integrations(integrations_cli::IntegrationsCommand),
}

#[derive(Args)]
struct ServeFlags {
    /// Address to listen on [env: HERALD_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Maximum connections to the database [env: HERALD_DATABASE_MAX_CONNECTIONS] [default: 10].
    #[arg(long, value_name = "N")]
    database_max_connections: Option<String>,
    /// Time allowed to connect to the database or take a pooled connection
    /// [env: HERALD_DATABASE_TIMEOUT] [default: 5s].
    #[arg(long, value_name = "DURATION")]
    database_timeout: Option<String>,
    /// Longest time a request may take before it is answered 503 [env: HERALD_REQUEST_TIMEOUT] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    request_timeout: Option<String>,
    /// Largest request body accepted, e.g. 1MiB or 65536 [env: HERALD_BODY_LIMIT] [default: 1MiB].
    #[arg(long, value_name = "SIZE")]
    body_limit: Option<String>,
    /// Time given to requests in flight after SIGTERM or SIGINT [env: HERALD_SHUTDOWN_TIMEOUT] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
    /// How long a verified credential is trusted before it is checked again; 0s disables
    /// [env: HERALD_AUTH_CACHE_TTL] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    auth_cache_ttl: Option<String>,
    /// Failed sign-ins per client and user name before answering 429 [env: HERALD_AUTH_MAX_FAILURES] [default: 10].
    #[arg(long, value_name = "N")]
    auth_max_failures: Option<String>,
    /// Window in which failures are counted, and how long a throttled client waits
    /// [env: HERALD_AUTH_LOCKOUT] [default: 60s].
    #[arg(long, value_name = "DURATION")]
    auth_lockout: Option<String>,
    /// How long an integration's check result is served from cache [env: HERALD_CHECK_MAX_AGE] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    check_max_age: Option<String>,
    /// How often every integration is re-verified [env: HERALD_CHECK_INTERVAL] [default: 5m].
    #[arg(long, value_name = "DURATION")]
    check_interval: Option<String>,
    /// Integrations checked at once by the sweep [env: HERALD_CHECK_CONCURRENCY] [default: 32].
    #[arg(long, value_name = "N")]
    check_concurrency: Option<String>,
    /// Default budget of one check [env: HERALD_CHECK_TIMEOUT] [default: 10s].
    #[arg(long, value_name = "DURATION")]
    check_timeout: Option<String>,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user. The password is read from standard input with --password-stdin, otherwise a
    /// random one is generated and printed once.
    Add {
        username: String,
        /// admin (everything) or monitor (read-only monitoring endpoints).
        #[arg(long, default_value = "monitor")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user and their tokens (the last admin cannot be deleted).
    Delete { username: String },
    /// Set a user's password (from standard input with --password-stdin, else generated and printed).
    SetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create an API token for a user; it is printed once and cannot be shown again.
    Create {
        /// The user the token acts as (it gets that user's role).
        #[arg(long)]
        user: String,
        /// What the token is for, e.g. grafana.
        #[arg(long)]
        name: String,
        /// Lifetime such as 90d or 12h; no expiry when omitted.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

fn flag_values(common: &CommonFlags, serve: Option<&ServeFlags>) -> FlagValues {
    let mut flags = FlagValues::new();
    let mut put = |key: &'static str, value: &Option<String>| {
        if let Some(v) = value {
            flags.insert(key, v.clone());
        }
    };
    put("data_dir", &common.data_dir);
    put("database_url", &common.database_url);
    put("log", &common.log);
    put("log_format", &common.log_format);
    if let Some(s) = serve {
        put("listen", &s.listen);
        put("database_max_connections", &s.database_max_connections);
        put("database_timeout", &s.database_timeout);
        put("request_timeout", &s.request_timeout);
        put("body_limit", &s.body_limit);
        put("shutdown_timeout", &s.shutdown_timeout);
        put("auth_cache_ttl", &s.auth_cache_ttl);
        put("auth_max_failures", &s.auth_max_failures);
        put("auth_lockout", &s.auth_lockout);
        put("check_max_age", &s.check_max_age);
        put("check_interval", &s.check_interval);
        put("check_concurrency", &s.check_concurrency);
        put("check_timeout", &s.check_timeout);
    }
    flags
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve_flags = match &cli.command {
        Command::Serve(flags) => Some(flags),
        _ => None,
    };
    let settings = match Settings::load(cli.common.config.as_deref(), &flag_values(&cli.common, serve_flags)) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    herald::telemetry::init(&settings.log, settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => {
            let app = Application::build(settings).await?;
            app.run_until_stopped(app::shutdown_signal()).await?;
            Ok(())
        }
        Command::Migrate => {
            let store = app::open_store(&settings).await?;
            store.close().await;
            println!("database is up to date");
            Ok(())
        }
        Command::Users(cmd) => users(cmd, &settings).await,
        Command::Tokens(cmd) => tokens(cmd, &settings).await,
        Command::Integrations(cmd) => {
            if integrations_cli::run(cmd, &settings).await? {
                Ok(())
            } else {
                anyhow::bail!("at least one integration is faulty")
            }
        }
    }
}

async fn accounts(settings: &Settings) -> anyhow::Result<Accounts> {
    let store = app::open_store(settings).await?;
    Ok(Accounts::new(store, app::password_hashing(), None))
}

fn username(name: &str) -> anyhow::Result<Username> {
    Username::try_from(name).map_err(|e| anyhow::anyhow!("invalid user name `{name}`: {e}"))
}

/// The password from standard input (first line), or a generated one that is printed.
fn password(from_stdin: bool) -> anyhow::Result<(Secret, bool)> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin().take(64 * 1024).read_to_string(&mut input)?;
        let line = input.lines().next().unwrap_or("").to_owned();
        Ok((Secret::new(line), false))
    } else {
        Ok((herald::auth::password::generate(), true))
    }
}

async fn users(cmd: UsersCommand, settings: &Settings) -> anyhow::Result<()> {
    let accounts = accounts(settings).await?;
    match cmd {
        UsersCommand::Add {
            username: name,
            role,
            password_stdin,
        } => {
            let role: Role = role.parse()?;
            let name = username(&name)?;
            let (password, generated) = password(password_stdin)?;
            accounts.create_user(&name, &password, role).await?;
            println!("created user `{name}` with role {role}");
            if generated {
                println!("password: {}", password.expose());
            }
        }
        UsersCommand::List => {
            let users = accounts.list_users().await?;
            println!("{:<32} {:<8} {:<20}", "USERNAME", "ROLE", "CREATED");
            for user in users {
                println!(
                    "{:<32} {:<8} {:<20}",
                    user.username,
                    user.role,
                    rfc3339_ms(user.created_at)
                );
            }
        }
        UsersCommand::Delete { username } => {
            accounts.delete_user(&username).await?;
            println!("deleted user `{username}`");
        }
        UsersCommand::SetPassword {
            username,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            accounts.set_password(&username, &password).await?;
            println!("password of `{username}` changed");
            if generated {
                println!("password: {}", password.expose());
            }
        }
    }
    Ok(())
}

async fn tokens(cmd: TokensCommand, settings: &Settings) -> anyhow::Result<()> {
    let accounts = accounts(settings).await?;
    match cmd {
        TokensCommand::Create { user, name, expires_in } => {
            let lifetime = expires_in
                .map(|s| humantime::parse_duration(&s).map_err(|e| anyhow::anyhow!("invalid --expires-in `{s}`: {e}")))
                .transpose()?;
            let created = accounts.create_token(&username(&user)?, &name, lifetime).await?;
            println!(
                "created token {} for `{user}` (shown once, store it now):",
                created.token.token.id
            );
            println!("{}", created.secret.expose());
        }
        TokensCommand::List { user } => {
            let tokens = accounts.list_tokens(user.as_deref()).await?;
            println!(
                "{:<16} {:<24} {:<24} {:<20} {:<20} {:<20}",
                "ID", "NAME", "USER", "CREATED", "EXPIRES", "LAST USED"
            );
            for t in tokens {
                let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), rfc3339_ms);
                println!(
                    "{:<16} {:<24} {:<24} {:<20} {:<20} {:<20}",
                    t.token.id,
                    t.token.name,
                    t.username,
                    rfc3339_ms(t.token.created_at),
                    opt(t.token.expires_at),
                    opt(t.token.last_used_at)
                );
            }
        }
        TokensCommand::Revoke { id } => {
            accounts.revoke_token(&id).await?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}
