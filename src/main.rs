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
    /// This node's id [env: HERALD_NODE_ID] [default: generated once, kept in DATA_DIR/node-id].
    #[arg(long, global = true, value_name = "ID")]
    node_id: Option<String>,
    /// Sender of mail submitted without `from` [env: HERALD_MAIL_FROM] [default: herald@localhost].
    #[arg(long, global = true, value_name = "ADDRESS")]
    mail_from: Option<String>,
}

// Parsed once at start-up; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Send mail and manage the mail queue (works on the database directly; the node's delivery
    /// workers pick new mail up within seconds).
    #[command(subcommand)]
    Mail(MailCommand),
    /// Cluster mode (PostgreSQL, HERALD_CLUSTER=true): the nodes, and draining one.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Manage and check Jira integrations.
    #[command(subcommand)]
    Integrations(integrations_cli::IntegrationsCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Every node with its state, heartbeat age and mail queue figures.
    Status,
    /// Ask a node to drain: it delivers what it holds, takes no new mail, and reports
    /// PASSIVATING, then PASSIVE (within one poll interval).
    Drain { node: String },
    /// Undo a drain: the node takes work again.
    Activate { node: String },
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum MailCommand {
    /// Queue a message, durably; prints its id.
    Send {
        /// Recipient (repeat for several).
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long)]
        cc: Vec<String>,
        #[arg(long)]
        bcc: Vec<String>,
        /// Sender; HERALD_MAIL_FROM when omitted.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        reply_to: Option<String>,
        #[arg(long)]
        subject: String,
        /// Plain-text body; `-` reads it from standard input.
        #[arg(long)]
        text: Option<String>,
        /// HTML body.
        #[arg(long)]
        html: Option<String>,
        /// Extra header as `Name: value` (repeat for several).
        #[arg(long)]
        header: Vec<String>,
        /// Makes a retried command safe: the same key returns the first message's id.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// This node's queue figures: size and errorSize.
    Status,
    /// List queued messages (oldest first).
    Queue {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        node: Option<String>,
    },
    /// List the error queue with each message's last error.
    Errors {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put errored mail back in this node's queue: one by id, or --all.
    Resend {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Delete errored mail: one by id, or --all.
    Delete {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Make every queued message due now (every node's, or one node's with --node).
    Flush {
        /// Only this node's messages.
        #[arg(long)]
        node: Option<String>,
    },
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
    /// Time a client has to send a request's headers, also the idle limit of a kept-alive connection
    /// [env: HERALD_HTTP_HEADER_TIMEOUT] [default: 10s].
    #[arg(long, value_name = "DURATION")]
    http_header_timeout: Option<String>,
    /// Open HTTP connections at most [env: HERALD_HTTP_MAX_CONNECTIONS] [default: 1024].
    #[arg(long, value_name = "N")]
    http_max_connections: Option<String>,
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
    /// Reverse proxies (IP addresses or CIDR blocks, comma-separated) whose X-Forwarded-For or Forwarded
    /// header names the client [env: HERALD_TRUSTED_PROXIES] [default: none].
    #[arg(long, value_name = "LIST")]
    trusted_proxies: Option<String>,
    /// The SMTP relay: smtp://[user:password@]host[:port][?tls=starttls] or smtps://…
    /// [env: HERALD_SMTP_URL] [default: smtp://127.0.0.1:25].
    #[arg(long, value_name = "URL")]
    smtp_url: Option<String>,
    /// SMTP connections (delivery workers) of this node [env: HERALD_SMTP_CONNECTIONS] [default: 4].
    #[arg(long, value_name = "N")]
    smtp_connections: Option<String>,
    /// Limit for each SMTP exchange [env: HERALD_SMTP_TIMEOUT] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    smtp_timeout: Option<String>,
    /// PEM file of extra CA certificates to trust for the relay [env: HERALD_SMTP_CA_FILE].
    #[arg(long, value_name = "FILE")]
    smtp_ca_file: Option<String>,
    /// Whether this node delivers mail, or only accepts it [env: HERALD_MAIL_DELIVERY] [default: true].
    #[arg(long, value_name = "BOOL")]
    mail_delivery: Option<String>,
    /// Largest mail submission accepted [env: HERALD_MAIL_MAX_SIZE] [default: 2MiB].
    #[arg(long, value_name = "SIZE")]
    mail_max_size: Option<String>,
    /// First retry delay after a transient failure; doubles each time
    /// [env: HERALD_MAIL_BACKOFF_INITIAL] [default: 30s].
    #[arg(long, value_name = "DURATION")]
    mail_backoff_initial: Option<String>,
    /// Longest retry delay [env: HERALD_MAIL_BACKOFF_MAX] [default: 1h].
    #[arg(long, value_name = "DURATION")]
    mail_backoff_max: Option<String>,
    /// Attempts before a message goes to the error queue [env: HERALD_MAIL_MAX_ATTEMPTS] [default: 10].
    #[arg(long, value_name = "N")]
    mail_max_attempts: Option<String>,
    /// Age after which a failing message goes to the error queue [env: HERALD_MAIL_MAX_AGE] [default: 3d].
    #[arg(long, value_name = "DURATION")]
    mail_max_age: Option<String>,
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
        /// admin (everything), monitor (read-only monitoring endpoints) or mail (may submit mail).
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
    /// Change a user's role (the last admin cannot be demoted).
    SetRole {
        username: String,
        /// admin, monitor or mail.
        role: String,
    },
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
    put("node_id", &common.node_id);
    put("mail_from", &common.mail_from);
    if let Some(s) = serve {
        put("listen", &s.listen);
        put("database_max_connections", &s.database_max_connections);
        put("database_timeout", &s.database_timeout);
        put("request_timeout", &s.request_timeout);
        put("body_limit", &s.body_limit);
        put("http_header_timeout", &s.http_header_timeout);
        put("http_max_connections", &s.http_max_connections);
        put("shutdown_timeout", &s.shutdown_timeout);
        put("auth_cache_ttl", &s.auth_cache_ttl);
        put("auth_max_failures", &s.auth_max_failures);
        put("auth_lockout", &s.auth_lockout);
        put("trusted_proxies", &s.trusted_proxies);
        put("smtp_url", &s.smtp_url);
        put("smtp_connections", &s.smtp_connections);
        put("smtp_timeout", &s.smtp_timeout);
        put("smtp_ca_file", &s.smtp_ca_file);
        put("mail_delivery", &s.mail_delivery);
        put("mail_max_size", &s.mail_max_size);
        put("mail_backoff_initial", &s.mail_backoff_initial);
        put("mail_backoff_max", &s.mail_backoff_max);
        put("mail_max_attempts", &s.mail_max_attempts);
        put("mail_max_age", &s.mail_max_age);
        put("check_max_age", &s.check_max_age);
        put("check_interval", &s.check_interval);
        put("check_concurrency", &s.check_concurrency);
        put("check_timeout", &s.check_timeout);
    }
    flags
}

/// Argon2id works in 19 MiB blocks. glibc's allocator raises its mmap threshold after the first such
/// block is freed, and then keeps later ones inside the process: each password check would grow the
/// resident memory for good (`cargo bench --bench startup` showed 19 -> 38 -> 57 MiB over two checks).
/// A fixed threshold keeps large blocks in mmap, so they go back to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_returnable() {
    // SAFETY: mallopt only changes allocator tuning; called once, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_returnable() {}

fn main() -> ExitCode {
    keep_large_allocations_returnable();
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
            let stop = app::shutdown_signal();
            let app = Application::build(settings).await?;
            app.run_until_stopped(stop).await?;
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
        Command::Mail(cmd) => mail(cmd, &settings).await,
        Command::Cluster(cmd) => cluster(cmd, &settings).await,
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
        UsersCommand::SetRole { username, role } => {
            let role: Role = role.parse()?;
            accounts.set_role(&username, role).await?;
            println!("`{username}` is now {role}");
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

fn one_or_all(id: Option<String>, all: bool, verb: &str) -> anyhow::Result<Option<String>> {
    match (id, all) {
        (Some(id), false) => Ok(Some(id)),
        (None, true) => Ok(None),
        _ => anyhow::bail!("name a message id to {verb}, or use --all"),
    }
}

async fn mail(cmd: MailCommand, settings: &Settings) -> anyhow::Result<()> {
    use herald::mail::{IdempotencyKey, MailQueue, MailSubmission};
    use herald::store::MailFilter;

    let store = app::open_store(settings).await?;
    let node_id = herald::cluster::NodeId::load_or_create(settings.node_id.as_deref(), &settings.data_dir)
        .map_err(|e| anyhow::anyhow!(e))?;
    let queue = MailQueue::start(store.clone(), node_id);
    let print_list = |items: Vec<herald::store::MailSummary>| {
        println!(
            "{:<36} {:<8} {:>8} {:<20} {:<30} ERROR",
            "ID", "STATE", "ATTEMPTS", "CREATED", "SUBJECT"
        );
        for m in items {
            let subject: String = m.subject.chars().take(30).collect();
            let error: String = m.last_error.unwrap_or_default().chars().take(60).collect();
            println!(
                "{:<36} {:<8} {:>8} {:<20} {:<30} {}",
                m.id,
                m.state,
                m.attempts,
                rfc3339_ms(m.created_at),
                subject,
                error
            );
        }
    };
    match cmd {
        MailCommand::Send {
            to,
            cc,
            bcc,
            from,
            reply_to,
            subject,
            text,
            html,
            header,
            idempotency_key,
        } => {
            let text = match text.as_deref() {
                Some("-") => {
                    let mut input = String::new();
                    std::io::stdin().read_to_string(&mut input)?;
                    Some(input)
                }
                _ => text,
            };
            let mut headers = std::collections::BTreeMap::new();
            for h in header {
                let (name, value) = h
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--header must be `Name: value`, got `{h}`"))?;
                headers.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            let submission = MailSubmission {
                from,
                to,
                cc,
                bcc,
                reply_to,
                subject,
                text,
                html,
                headers,
            };
            let valid = submission.validate(&settings.mail_from)?;
            let key = idempotency_key
                .as_deref()
                .map(IdempotencyKey::try_from)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            let accepted = queue.submit(&valid, "cli", key.as_ref()).await?;
            println!("{}", accepted.id);
        }
        MailCommand::Status => {
            let (size, errors) = queue.counts().await?;
            println!("size: {size}\nerrorSize: {errors}");
        }
        MailCommand::Queue { limit, node } => {
            let filter = MailFilter {
                states: vec!["queued", "sending"],
                node_id: node,
                after: None,
                limit,
            };
            print_list(queue.list(&filter).await?);
        }
        MailCommand::Errors { limit } => {
            let filter = MailFilter {
                states: vec!["error"],
                node_id: None,
                after: None,
                limit,
            };
            print_list(queue.list(&filter).await?);
        }
        MailCommand::Resend { id, all } => {
            let n = queue.resend(one_or_all(id, all, "resend")?.as_deref()).await?;
            println!("resent {n} message(s)");
        }
        MailCommand::Delete { id, all } => {
            let n = queue.delete_errors(one_or_all(id, all, "delete")?.as_deref()).await?;
            println!("deleted {n} message(s)");
        }
        MailCommand::Flush { node } => {
            let n = queue.flush(node.as_deref()).await?;
            println!("{n} message(s) due now");
        }
    }
    store.close().await;
    Ok(())
}

async fn cluster(cmd: ClusterCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = app::open_store(settings).await?;
    match cmd {
        ClusterCommand::Status => {
            let now = herald::store::now_ms();
            let nodes = store.cluster_nodes().await?;
            if nodes.is_empty() {
                println!("no cluster nodes (a single node on SQLite, or HERALD_CLUSTER is off)");
            } else {
                println!(
                    "{:<24} {:<12} {:>14} {:>8} {:>10} {:<6}",
                    "NODE", "STATE", "HEARTBEAT AGO", "SIZE", "ERRORSIZE", "DRAIN"
                );
            }
            for row in nodes {
                let drain = if row.drain_requested { "yes" } else { "no" };
                let node = herald::cluster::NodeView::of_row(row, now, settings.cluster_heartbeat_timeout);
                let age = (now - node.heartbeat_at).max(0);
                println!(
                    "{:<24} {:<12} {:>13}s {:>8} {:>10} {:<6}{}",
                    node.node_id,
                    node.state.as_str(),
                    age / 1000,
                    node.queue_size,
                    node.error_size,
                    drain,
                    if node.stopped { " (stopped cleanly)" } else { "" }
                );
            }
        }
        ClusterCommand::Drain { node } => {
            anyhow::ensure!(store.request_drain(&node, true).await?, "no cluster node `{node}`");
            println!("node `{node}` will drain at its next heartbeat");
        }
        ClusterCommand::Activate { node } => {
            anyhow::ensure!(store.request_drain(&node, false).await?, "no cluster node `{node}`");
            println!("node `{node}` will take work again at its next heartbeat");
        }
    }
    store.close().await;
    Ok(())
}
