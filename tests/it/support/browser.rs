//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, installed by
//! scripts/test.sh). Each `Browser` has its own chromedriver process, on a free port, and a fresh
//! profile directory; dropping it ends both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tempfile::TempDir;

/// How long a page may take to show what a test waits for (a poll deadline, not a sleep).
pub const PAGE_DEADLINE: Duration = Duration::from_secs(30);

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

fn installed(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width`×`height` window. None (loudly; a
    /// failure under CI) when Chromium is not installed.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            installed(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]),
            installed(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]),
        ) else {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!(
                    "chromium and chromedriver are not installed: the console tests must run in CI (scripts/test.sh installs them)"
                );
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "warning: browser test NOT RUN: chromium or chromedriver missing (packages chromium, chromium-driver)"
            );
            return None;
        };
        let profile = tempfile::tempdir().expect("profile dir");
        // chromedriver takes a port number, so one is picked by binding port 0 and releasing it.
        // Another process may take it in between; chromedriver then exits, and a new port is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut command = Command::new(&chromedriver);
            command
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            #[cfg(unix)]
            {
                use std::os::unix::process::CommandExt;
                // Its own process group, so that dropping the browser ends Chromium's processes too.
                command.process_group(0);
            }
            let mut start = BrowserStart {
                driver: Some(command.spawn().expect("start chromedriver")),
            };
            let driver = start.driver.as_mut().expect("driver");
            if let Some(client) = connect(port, driver, &chromium, profile.path(), width, height).await {
                return Some(Browser {
                    client,
                    driver: start.driver.take().expect("driver"),
                    _profile: profile,
                });
            }
        }
        panic!("chromedriver exited at start five times (its port taken each time?)");
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Waits for an element (CSS selector) to be present.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PAGE_DEADLINE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("no `{css}` on {}: {e}", self.url().await),
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            })
            .unwrap_or_default()
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Waits until the page's text contains `needle`; returns the page text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let until = Instant::now() + PAGE_DEADLINE;
        loop {
            let text = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < until,
                "`{needle}` never appeared on {}:\n{text}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs in through the form and waits for the overview.
    pub async fn sign_in(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/console/")).await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
        self.find("#sign-out").await;
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// Kills chromedriver if connecting fails before a `Browser` owns it.
struct BrowserStart {
    driver: Option<Child>,
}

impl Drop for BrowserStart {
    fn drop(&mut self) {
        if let Some(child) = self.driver.as_mut() {
            kill_group(child);
        }
    }
}

/// A WebDriver session on the chromedriver listening on `port`; None when `driver` exits first.
async fn connect(
    port: u16,
    driver: &mut Child,
    chromium: &Path,
    profile: &Path,
    width: u32,
    height: u32,
) -> Option<Client> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={width},{height}"),
            ],
        }),
    );
    capabilities.insert("unhandledPromptBehavior".to_owned(), serde_json::json!("ignore"));
    let url = format!("http://127.0.0.1:{port}");
    let until = Instant::now() + PAGE_DEADLINE;
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => {
                // --window-size sets the outer window; make the viewport exactly the size asked for.
                let _ = client.set_window_size(width, height).await;
                let inner: serde_json::Value = client
                    .execute("return [window.innerWidth, window.innerHeight]", vec![])
                    .await
                    .unwrap_or_default();
                if let (Some(w), Some(h)) = (inner[0].as_u64(), inner[1].as_u64()) {
                    let (w, h) = (w as u32, h as u32);
                    if (w, h) != (width, height) {
                        let _ = client.set_window_size(2 * width - w, 2 * height - h).await;
                    }
                }
                return Some(client);
            }
            Err(e) => {
                if driver.try_wait().expect("chromedriver status").is_some() {
                    return None;
                }
                assert!(Instant::now() < until, "chromedriver did not start a session: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    unsafe {
        libc::killpg(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}
