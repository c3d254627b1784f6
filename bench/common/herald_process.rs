//! The release-built `herald serve` as the mail benchmarks start it: extra environment, ready when
//! `/readyz` answers, the queue's figures, killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{basic, free_port, request};

/// The bootstrap admin's password.
pub const PASSWORD: &str = "bench-admin-password";

/// `herald serve` (release build, `--log warn`, node id `bench-node`, `admin` with [`PASSWORD`]) with
/// extra environment; killed on drop.
pub struct Herald {
    child: Child,
    pub addr: SocketAddr,
}

impl Herald {
    pub fn start(data_dir: &Path, env: &[(&str, String)]) -> Herald {
        Self::start_with_args(data_dir, &[], env)
    }

    /// As [`Herald::start`], with extra arguments to `herald serve` (e.g. `--smtp-listen`, which
    /// otherwise goes to a port nobody knows).
    pub fn start_with_args(data_dir: &Path, args: &[&str], env: &[(&str, String)]) -> Herald {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut serve_args = vec!["--log", "warn"];
        serve_args.extend_from_slice(args);
        let mut command = super::serve_command_at(addr, data_dir, &serve_args);
        command
            .env("HERALD_ADMIN_PASSWORD", PASSWORD)
            .env("HERALD_NODE_ID", "bench-node")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start herald");
        let herald = Herald { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if request(addr, "GET", "/readyz", &[], None).is_ok_and(|r| r.status == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "herald did not become ready");
            std::thread::sleep(Duration::from_millis(5));
        }
        herald
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The text of `GET /metrics` (as the admin).
    pub fn metrics(&self) -> String {
        let auth = basic("admin", PASSWORD);
        request(self.addr, "GET", "/metrics", &[("Authorization", &auth)], None)
            .unwrap()
            .text()
    }

    /// `(size, errorSize)` of `/rest/mailqueue/1.0/status`.
    pub fn status(&self) -> (i64, i64) {
        let auth = basic("admin", PASSWORD);
        let r = request(
            self.addr,
            "GET",
            "/rest/mailqueue/1.0/status",
            &[("Authorization", &auth)],
            None,
        )
        .unwrap();
        let v = r.json();
        (v["size"].as_i64().unwrap(), v["errorSize"].as_i64().unwrap())
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
