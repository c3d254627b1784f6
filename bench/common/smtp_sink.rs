//! Postfix's `smtp-sink` for the benchmarks: a real SMTP server that accepts everything, on a port of
//! 127.0.0.1; killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::process::is_root;

pub struct Sink {
    child: Child,
    pub port: u16,
}

impl Sink {
    pub fn start() -> Sink {
        Self::start_on(free_port())
    }

    /// On a given port: a relay that comes back where it was.
    pub fn start_on(port: u16) -> Sink {
        Self::start_with(port, &[])
    }

    /// On a given port, with extra options before the address (e.g. `-d <template>`).
    pub fn start_with(port: u16, options: &[&str]) -> Sink {
        let mut command = Command::new("smtp-sink");
        if is_root() {
            // smtp-sink drops to `nobody` when started as root.
            command.args(["-u", "nobody"]);
        }
        let child = command
            .args(options)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink (Debian package postfix) must be installed: apt-get install postfix");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start listening");
            std::thread::sleep(super::POLL_INTERVAL);
        }
        Sink { child, port }
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
