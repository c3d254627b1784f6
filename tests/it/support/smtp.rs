//! A real SMTP server for tests: Postfix's `smtp-sink`, with its fault options (`-r` 4xx, `-f` 5xx,
//! `-q` disconnect, `-w` slow DATA) and a dump file of every message it accepted.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dump: PathBuf,
    _dir: TempDir,
}

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// Header and body lines as received.
    pub data: String,
}

impl Received {
    /// The message as relayed, without the `Received:` header smtp-sink puts first; lines end with LF
    /// (the dump's form), and the last one too.
    pub fn relayed(&self) -> String {
        let mut lines = self.data.split('\n').peekable();
        lines.next();
        while lines.next_if(|l| l.starts_with([' ', '\t'])).is_some() {}
        let mut out: String = lines.map(|l| format!("{l}\n")).collect();
        while out.ends_with("\n\n") {
            out.pop();
        }
        out
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }
}

fn binary() -> Option<PathBuf> {
    ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl SmtpSink {
    /// Starts `smtp-sink` with extra options. Returns None (loudly; a failure under CI) when Postfix's
    /// test tools are not installed; scripts/test.sh installs them.
    pub fn start(options: &[&str]) -> Option<SmtpSink> {
        Self::start_on(super::process::free_port(), options)
    }

    /// Like [`SmtpSink::start`], on a given port (a relay that comes back where it was).
    pub fn start_on(port: u16, options: &[&str]) -> Option<SmtpSink> {
        let Some(binary) = binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("smtp-sink is not installed: the mail tests must run in CI (scripts/test.sh installs postfix)");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "warning: mail delivery test NOT RUN: smtp-sink not installed (package postfix)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // smtp-sink drops to `nobody` when started as root; it must be able to write the dump.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let dump = dir.path().join("dump");
        let mut command = Command::new(binary);
        if super::process::is_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .args(options)
            .arg("-D")
            .arg(&dump)
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let sink = SmtpSink {
            child,
            port,
            dump,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(sink)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.dump).unwrap_or_default();
        let mut messages = Vec::new();
        for chunk in text.split("X-Client-Addr:").skip(1) {
            let mut mail_from = String::new();
            let mut rcpt_to = Vec::new();
            let mut data = Vec::new();
            let mut in_data = false;
            for line in chunk.lines().skip(1) {
                if in_data {
                    data.push(line);
                } else if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
                    mail_from = v
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_matches(['<', '>'])
                        .to_owned();
                } else if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
                    rcpt_to.push(
                        v.split_whitespace()
                            .next()
                            .unwrap_or("")
                            .trim_matches(['<', '>'])
                            .to_owned(),
                    );
                } else if line.starts_with("Received:") {
                    in_data = true;
                    data.push(line);
                } else if line.starts_with("X-") {
                    continue;
                }
            }
            messages.push(Received {
                mail_from,
                rcpt_to,
                data: data.join("\n"),
            });
        }
        messages
    }

    /// The Message-ID local parts (Herald's message ids) of everything received.
    pub fn received_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|m| m.header("Message-ID"))
            .map(|v| v.trim_matches(['<', '>']).trim_end_matches("@herald").to_owned())
            .collect()
    }
}

impl SmtpSink {
    /// Stops the server, as a relay that goes down does; the port is free again when this returns.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.received_ids()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
