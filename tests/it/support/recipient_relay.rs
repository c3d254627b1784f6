//! A relay that answers each recipient on its own (recipient_relay.py, on the aiosmtpd library):
//! `reject…@` gets 550, `defer…@` gets 450 until [`RecipientRelay::accept_deferred`], anyone else 250.
//! smtp-sink answers every recipient alike, so it cannot show a message delivered to some recipients
//! and refused for others.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use tempfile::TempDir;

pub struct RecipientRelay {
    child: Child,
    pub port: u16,
    dump: PathBuf,
    flag: PathBuf,
    _dir: TempDir,
}

/// One message as the relay took it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Taken {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub mail_options: Vec<String>,
    content: String,
}

impl Taken {
    /// The content exactly as received (dot-stuffing undone).
    pub fn content(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.content)
            .expect("base64 content")
    }
}

impl RecipientRelay {
    /// Starts the relay, announcing PIPELINING or not. None (loudly; a failure under CI) when Python's
    /// aiosmtpd is not installed; scripts/test.sh installs it.
    pub fn start(pipelining: bool) -> Option<RecipientRelay> {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("Python's aiosmtpd is not installed: scripts/test.sh installs it (pip install aiosmtpd)");
            }
            eprintln!("warning: per-recipient delivery test NOT RUN: aiosmtpd not installed (pip install aiosmtpd)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let dump = dir.path().join("dump.jsonl");
        let flag = dir.path().join("accept-deferred");
        let port = super::process::free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/recipient_relay.py");
        let mut command = Command::new("python3");
        command.arg(script).arg(port.to_string()).arg(&dump).arg(&flag);
        if pipelining {
            command.arg("pipelining");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start recipient_relay.py");
        let relay = RecipientRelay {
            child,
            port,
            dump,
            flag,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "recipient_relay.py did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(relay)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// From now on, `defer…@` recipients are accepted too.
    pub fn accept_deferred(&self) {
        std::fs::write(&self.flag, b"").expect("write the flag file");
    }

    /// Every message taken so far, in order.
    pub fn taken(&self) -> Vec<Taken> {
        std::fs::read_to_string(&self.dump)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a dump line"))
            .collect()
    }
}

impl Drop for RecipientRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
