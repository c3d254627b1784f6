//! Test harness: databases of both backends, `spawn_app()`, an HTTP client, a private PostgreSQL.
#![allow(dead_code)]

pub mod browser;
pub mod console;
pub mod integrations;
pub mod jira_sim;
pub mod jira_sim_ticket_routes;
pub mod jira_sim_tickets;
pub mod pg_cluster;
pub mod process;
pub mod recipient_relay;
pub mod smtp;
pub mod smtp_client;
pub mod tickets;
pub mod tls_proxy;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use herald::app::Application;
use herald::config::Settings;
use herald::state::AppState;
use herald::store::{ConnectOptions, Store};
use sqlx::Connection;
use tempfile::TempDir;

pub const ADMIN_PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each `async fn name(backend: Backend)` listed.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::support::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::support::Backend::Postgres).await } )*
        }
    };
}

/// Prints past the test harness's output capture, so a skipped suite is visible in `cargo test`.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The PostgreSQL server the suite may create databases on, from `HERALD_TEST_DATABASE_URL`
/// (set by scripts/test.sh). Without it the PostgreSQL tests are skipped, loudly; under CI they fail.
pub fn postgres_admin_url() -> Option<String> {
    if let Ok(url) = std::env::var("HERALD_TEST_DATABASE_URL") {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "CI=true but HERALD_TEST_DATABASE_URL is not set: the PostgreSQL suite must run in CI (use scripts/test.sh)"
        );
    }
    static WARN: Once = Once::new();
    WARN.call_once(|| {
        say("warning: PostgreSQL suite NOT RUN: HERALD_TEST_DATABASE_URL is not set (scripts/test.sh starts PostgreSQL and sets it)")
    });
    None
}

/// A database for one test: a SQLite file in a temporary directory, or a fresh PostgreSQL database.
pub struct TestDatabase {
    pub url: Option<String>,
    pub dir: TempDir,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Option<TestDatabase> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(create_postgres_database(&postgres_admin_url()?).await),
        };
        Some(TestDatabase { url, dir })
    }

    pub fn settings(&self) -> Settings {
        let mut settings = Settings::for_data_dir(self.dir.path(), self.url.clone());
        settings.http.listen = "127.0.0.1:0".parse().unwrap();
        settings.smtp.listen = Some("127.0.0.1:0".parse().unwrap());
        settings.auth.admin_password = Some(herald::secret::Secret::new(ADMIN_PASSWORD));
        settings.database.timeout = Duration::from_secs(3);
        settings.database.max_connections = 4;
        settings.logging.filter = "warn".into();
        // Mail tests point this at an SMTP server of their own and turn delivery on.
        settings.mail.delivery = false;
        // Ticket tests point an integration at a Jira simulator and turn the worker on.
        settings.tickets.delivery = false;
        settings
    }

    pub async fn store(&self) -> Store {
        let settings = self.settings();
        let store = Store::connect(&ConnectOptions {
            url: settings.database.url.clone(),
            max_connections: 4,
            timeout: Duration::from_secs(5),
        })
        .await
        .expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

/// Creates an empty database with a unique name on the server behind `admin_url`; returns its URL.
pub async fn create_postgres_database(admin_url: &str) -> String {
    let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    let (server, _) = admin_url
        .rsplit_once('/')
        .expect("HERALD_TEST_DATABASE_URL ends with /DATABASE");
    format!("{server}/{name}")
}

/// A running Herald, in this process, on a free loopback port.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The SMTP submission listener (plain, STARTTLS) and the SMTPS one, when on.
    smtp: Option<SocketAddr>,
    smtps: Option<SocketAddr>,
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub db: TestDatabase,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], after `configure` has adjusted the settings.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    let db = TestDatabase::new(backend).await?;
    let mut settings = db.settings();
    configure(&mut settings);
    Some(start(db, settings).await)
}

/// Like [`spawn_app_with`], with the clock the alert rules read (e.g. a `ManualClock`).
pub async fn spawn_app_with_clock(
    backend: Backend,
    clock: herald::clock::SharedClock,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    let db = TestDatabase::new(backend).await?;
    let mut settings = db.settings();
    configure(&mut settings);
    Some(start_with_clock(db, settings, clock).await)
}

pub async fn start(db: TestDatabase, settings: Settings) -> TestApp {
    start_with_clock(db, settings, herald::clock::system()).await
}

pub async fn start_with_clock(db: TestDatabase, settings: Settings, clock: herald::clock::SharedClock) -> TestApp {
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("Herald starts");
    let addr = app.local_addr().expect("bound address");
    let (smtp, smtps) = (app.smtp_addr(), app.smtps_addr());
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        smtp,
        smtps,
        base: format!("http://{addr}"),
        client: http_client(),
        state,
        db,
        stop: Some(stop),
        server: Some(server),
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("HTTP client")
}

impl TestApp {
    /// The SMTP submission listener's address (on port 0 in tests; `smtp_listen` must be on).
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp.expect("the SMTP submission listener is on")
    }

    /// The SMTPS (implicit TLS) listener's address (`smtps_listen` must be on).
    pub fn smtps_addr(&self) -> SocketAddr {
        self.smtps.expect("the SMTPS listener is on")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path))
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path))
    }

    /// A request as the bootstrap admin.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    /// GET as the bootstrap admin; the JSON body.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        self.admin(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// GET as the bootstrap admin; the body as text.
    pub async fn admin_text(&self, path: &str) -> String {
        self.admin(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Creates a user through the API and returns its password.
    pub async fn create_user(&self, username: &str, role: &str) -> String {
        let password = format!("{username}-password-123");
        let response = self
            .admin(reqwest::Method::POST, "/api/v1/users")
            .json(&serde_json::json!({"username": username, "password": password, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        password
    }

    /// Creates a token through the API; returns (id, secret).
    pub async fn create_token(&self, user: &str) -> (String, String) {
        let response = self
            .admin(reqwest::Method::POST, "/api/v1/tokens")
            .json(&serde_json::json!({"name": "test", "user": user}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls `probe` until it returns true or `deadline` passes; returns whether it succeeded.
pub async fn eventually<F, Fut>(deadline: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The problem body of an error response, checking its content type.
pub async fn problem(response: reqwest::Response) -> serde_json::Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    response.json().await.unwrap()
}

/// A running `herald serve` child (see [`process::serve_command`]), killed on drop.
pub struct Process {
    pub child: std::process::Child,
    pub base: String,
}

impl Process {
    /// Spawns the command and waits (polling, with a deadline) until `/readyz` answers 200.
    pub async fn start(mut command: std::process::Command, base: String) -> Process {
        let process = Process {
            child: command.spawn().expect("start herald"),
            base,
        };
        let client = http_client();
        let url = format!("{}/readyz", process.base);
        let ready = eventually(Duration::from_secs(30), || async {
            client.get(&url).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(ready, "herald serve at {} did not become ready", process.base);
        process
    }

    /// SIGTERM (a clean shutdown), and wait (polling, with a deadline) for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        process::sigterm(&self.child).expect("SIGTERM herald");
        let mut status = None;
        let exited = eventually(Duration::from_secs(30), || {
            status = self.child.try_wait().expect("wait for herald");
            std::future::ready(status.is_some())
        })
        .await;
        assert!(exited, "herald serve at {} did not exit after SIGTERM", self.base);
        status.expect("exit status")
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
