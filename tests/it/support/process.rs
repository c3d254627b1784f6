//! The `herald` binary as a child process: `herald serve` on a free loopback port, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, http_client};

pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// A `herald serve` command on a free loopback port with `data_dir`, and the base URL it will serve.
/// None of the caller's `HERALD_*` variables leak in; output is discarded unless the caller sets it.
pub fn serve_command(data_dir: &Path, extra_args: &[&str]) -> (Command, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(HERALD);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HERALD_") {
            command.env_remove(&key);
        }
    }
    command
        .arg("serve")
        .args(extra_args)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (command, format!("http://127.0.0.1:{port}"))
}

/// A running `herald serve`.
pub struct Process {
    pub child: Child,
    pub base: String,
}

impl Process {
    /// Spawns the command and waits (polling, with a deadline) until `/readyz` answers 200.
    pub async fn start(mut command: Command, base: String) -> Process {
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
    #[allow(dead_code)]
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM {pid}");
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
