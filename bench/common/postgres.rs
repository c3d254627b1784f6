//! A throwaway PostgreSQL server for the benchmarks that measure Herald on PostgreSQL, with durable
//! settings (fsync on): what a production database does.

use std::path::PathBuf;
use std::process::Command;

use super::free_port;
use super::process::is_root;

/// A throwaway PostgreSQL server in a temporary directory; stopped on drop.
pub struct Postgres {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    pub fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let out = command.args(args).output().expect("run a PostgreSQL tool");
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn start() -> Postgres {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed (apt-get install postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("postgres").exists())
            .collect();
        dirs.sort();
        let bindir = dirs.pop().expect("no PostgreSQL server binaries");
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            assert!(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let pg = Postgres {
            bindir,
            dir,
            port: free_port(),
        };
        let data = pg.dir.path().join("data").display().to_string();
        pg.run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"]);
        // Durable settings (fsync on): this measures what a production database would do.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200",
            pg.port,
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("server.log").display().to_string();
        pg.run("pg_ctl", &["-D", &data, "-l", &log, "-w", "-o", &options, "start"]);
        pg
    }

    pub fn create_database(&self, name: &str) -> String {
        let psql = self.bindir.join("psql");
        let status = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let program = self.bindir.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
        } else {
            Command::new(program).args(args).output()
        };
    }
}
