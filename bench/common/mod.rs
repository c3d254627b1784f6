//! Shared by the benchmarks: starting the real `herald` binary as a child process (with the tests'
//! own helpers, tests/it/support/process.rs), a tiny blocking HTTP/1.1 client for setup and
//! readiness probes, and reading /proc.
//!
//! Everything talks to 127.0.0.1 only. Waiting is always a poll with a deadline.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub mod dir_watch;
pub mod herald_process;
pub mod postgres;
#[path = "../../tests/it/support/process.rs"]
pub mod process;
pub mod smtp_client;
pub mod smtp_sink;
pub mod wrk;
/// `HERALD` is the binary under test, built by cargo with the bench (= release) profile.
pub use process::{HERALD, free_port, serve_command_at, sigterm};

/// Interval between readiness probes. Probing is cheap (a refused connect), but on a 2-core machine
/// a busy loop would steal CPU from the server that is starting; 1 ms bounds the measurement error.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Herald in this process, on SQLite in tmpfs when available (the benches that use it measure
/// Herald, not the disk), with `password` for `admin` and `configure` applied to the settings.
pub struct InProcess {
    pub base: String,
    pub state: herald::state::AppState,
    _dir: tempfile::TempDir,
}

pub async fn in_process(password: &str, configure: impl FnOnce(&mut herald::config::Settings)) -> InProcess {
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut settings = herald::config::Settings::for_data_dir(dir.path(), None);
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.auth.admin_password = Some(herald::secret::Secret::new(password));
    settings.logging.filter = "error".into();
    configure(&mut settings);
    let app = herald::app::Application::build(settings).await.expect("Herald starts");
    let base = format!("http://{}", app.local_addr().unwrap());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    InProcess { base, state, _dir: dir }
}

/// A positive number of seconds from the environment, or the default.
pub fn env_secs(name: &str, default: f64) -> Duration {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
            _ => panic!("{name}={v:?} is not a number of seconds"),
        },
        Err(_) => Duration::from_secs_f64(default),
    }
}

/// A positive integer from the environment, or the default.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={v:?} is not a positive integer"),
        },
        Err(_) => default,
    }
}

/// A running `herald serve`. Dropping it kills the process (also when the bench panics).
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub pid: u32,
    pub log: PathBuf,
    pub spawned_at: Instant,
}

impl Server {
    /// Starts `herald serve` on `data_dir` (created by the server if missing), listening on a free
    /// port of 127.0.0.1, with the bootstrap admin's password set. Output goes to `log`.
    pub fn spawn(data_dir: &Path, log: &Path, admin_password: &str) -> Server {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let out = File::create(log).expect("create server log");
        let err = out.try_clone().expect("clone log handle");
        // Nothing from the caller's environment may change what is measured (see herald_command).
        let mut cmd = serve_command_at(addr, data_dir, &["--log", "warn"]);
        cmd.env("HERALD_ADMIN_PASSWORD", admin_password)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let spawned_at = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {HERALD}: {e}"));
        let pid = child.id();
        Server {
            child: Some(child),
            addr,
            pid,
            log: log.to_owned(),
            spawned_at,
        }
    }

    /// Polls `GET /readyz` until it answers 200; returns the time since the process was spawned.
    /// Panics (with the server's log) if the process exits or the deadline passes.
    pub fn wait_ready(&mut self, deadline: Duration) -> Duration {
        let give_up = Instant::now() + deadline;
        loop {
            if let Ok(resp) = request(self.addr, "GET", "/readyz", &[], None) {
                if resp.status == 200 {
                    return self.spawned_at.elapsed();
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "herald exited with {status} before it was ready; its log:\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() >= give_up {
                panic!(
                    "herald was not ready within {deadline:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGTERM, then polls for the exit (deadline 15 s, then SIGKILL). Returns how long it took.
    pub fn stop(mut self) -> Duration {
        let started = Instant::now();
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        if let Err(e) = sigterm(&child) {
            eprintln!("warning: SIGTERM to herald failed: {e}");
        }
        let give_up = started + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        eprintln!("warning: herald exited with {status} after SIGTERM");
                    }
                    return started.elapsed();
                }
                Ok(None) if Instant::now() < give_up => std::thread::sleep(POLL_INTERVAL),
                _ => {
                    eprintln!("warning: herald did not stop within 15 s of SIGTERM; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    return started.elapsed();
                }
            }
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Memory figures of the server process.
    pub fn memory(&self) -> ProcStatus {
        ProcStatus::read(self.pid)
    }

    /// CPU time the server process has used so far (user + system, all threads).
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Selected lines of /proc/<pid>/status, in kB.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStatus {
    pub vm_rss_kb: u64,
    pub vm_hwm_kb: u64,
    pub rss_anon_kb: u64,
    pub rss_file_kb: u64,
    pub threads: u64,
}

impl ProcStatus {
    pub fn read(pid: u32) -> ProcStatus {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        ProcStatus {
            vm_rss_kb: field("VmRSS:"),
            vm_hwm_kb: field("VmHWM:"),
            rss_anon_kb: field("RssAnon:"),
            rss_file_kb: field("RssFile:"),
            threads: field("Threads:"),
        }
    }
}

/// kB (as /proc reports them, 1024 bytes) to MiB.
pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// utime + stime of a process (all its threads, dead ones included) from /proc/<pid>/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // The command name (field 2) may contain spaces; fields after its closing ')' are plain.
    let rest = &text[text.rfind(')').expect("malformed stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// A response read by [`request`].
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("response is not JSON ({e}): {}", self.text());
        })
    }
}

/// One blocking HTTP/1.1 request on a fresh connection (`Connection: close`), 5 s timeouts.
/// For setup and probes only; the load generator uses hyper.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&out)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("malformed chunked body"))?;
    }
    Ok(Response { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `Authorization: Basic` value for user:password.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Min, median and max of a non-empty sample.
pub fn min_median_max(sample: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = sample.to_vec();
    sorted.sort();
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    };
    (sorted[0], median, sorted[n - 1])
}

/// A duration for a table: µs below 1 ms, else ms.
pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// CPU time spent busy by the whole machine so far (all cores; user, nice, system, irq, softirq,
/// steal) from the first line of /proc/stat. Other processes' load shows as the difference between
/// this and the CPU time of the processes being measured.
pub fn machine_busy() -> Duration {
    let text = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let line = text.lines().next().expect("empty /proc/stat");
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v.get(7).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(busy as f64 / per_sec as f64)
}

/// The 1-minute load average, to show how busy the machine was around a run.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
