//! A private PostgreSQL server that a test may stop and start (for outage tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::process::is_root;

pub struct PgCluster {
    bindir: PathBuf,
    dir: TempDir,
    pub port: u16,
}

fn bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("HERALD_TEST_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl PgCluster {
    /// Starts a new server, or returns None (skipping loudly, failing under CI) when PostgreSQL is
    /// not installed.
    pub fn start() -> Option<PgCluster> {
        let Some(bindir) = bindir() else {
            // Same rule as the shared server: skipped outside CI, a failure in CI.
            super::postgres_admin_url()?;
            panic!("PostgreSQL binaries not found: set HERALD_TEST_PG_BINDIR");
        };
        let dir = tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let port = super::process::free_port();
        let cluster = PgCluster { bindir, dir, port };
        cluster.run(
            "initdb",
            &["-D", &cluster.data(), "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        cluster.start_server();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the server at once, dropping every connection (as a crash or failover would).
    pub fn stop_server(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.dir.path().join("data/postmaster.pid").exists() {
            let program = self.bindir.join("pg_ctl");
            let data = self.data();
            let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
            let _ = if is_root() {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&program)
                    .args(args)
                    .output()
            } else {
                Command::new(&program).args(args).output()
            };
        }
    }
}
