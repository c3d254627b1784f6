//! SMTP submission benchmarks (issue 13), each in one run against the release-built `herald` binary,
//! its SMTP listener on a free port of 127.0.0.1, with `HERALD_SMTP_TRUSTED_NETWORKS=127.0.0.0/8` so
//! that the load generators submit without AUTH:
//!
//! (1) **durable acceptance vs the raw ceiling**: Postfix's `smtp-source -s 10 -d -m 20000 -l 1024`
//!     into Herald's listener with delivery off (so the figure is acceptance: every `250` is a
//!     committed message), next to the same command into `smtp-sink` (a server that stores nothing),
//!     measured just before it; afterwards the queue must hold exactly the messages sent. On SQLite
//!     (`synchronous=FULL`, data dir on disk) and on PostgreSQL (a throwaway server, fsync on).
//! (2) **end to end**: (a) the same `smtp-source` command into Herald with delivery on into
//!     `smtp-sink`: messages per second until the queue is empty, i.e. until the sink has answered
//!     `250` to every message; (b) latency from the client's `250` to arrival at the sink, with a small
//!     SMTP client in this process at a steady rate (see `latency` for the method and its resolution).
//! (3) **memory with 1,000 idle sessions**: Herald's VmRSS before and after 1,000 connections that
//!     read the greeting, sent EHLO and then wait; then they are closed and the
//!     `herald_smtp_sessions_active` gauge must return to 0.
//!
//! Knobs (environment): BENCH_ONLY (comma-separated parts: 1, 2, 3), BENCH_SMTP_DATABASES (part 1,
//! default `sqlite,postgres`), BENCH_SMTP_MESSAGES (parts 1 and 2a, default 20000),
//! BENCH_SMTP_SESSIONS (smtp-source's `-s`, default 10), BENCH_SMTP_RATE (2b, msg/s, default 300),
//! BENCH_SMTP_CLIENTS (2b, connections, default 6), BENCH_SECONDS (2b, measured seconds, default 10),
//! BENCH_SMTP_IDLE (3, sessions, default 1000).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::dir_watch::watch_closes;
use common::herald_process::Herald;
use common::postgres::Postgres;
use common::smtp_client::SmtpClient;
use common::smtp_sink::Sink;
use common::{cpu_time, env_secs, env_usize, free_port, loadavg, mib};

fn part_enabled(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|p| p.trim() == name))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// CPU time of this process's children that have been waited for (smtp-source, once it exited).
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we own; RUSAGE_CHILDREN has no other precondition.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Busy CPU time of the whole machine from the first line of /proc/stat, in two parts: time charged
/// to processes (user, nice, system, steal) and interrupt time (irq, softirq), which no process is
/// charged for: much of loopback TCP's receive path runs there.
fn machine_cpu() -> (Duration, Duration) {
    let text = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let secs = |ticks: u64| Duration::from_secs_f64(ticks as f64 / per_sec);
    // user nice system idle iowait irq softirq steal
    (secs(at(0) + at(1) + at(2) + at(7)), secs(at(5) + at(6)))
}

/// Where the CPU went during one `smtp-source` run: the server under test, the client, other
/// processes (other people's work on this machine, and PostgreSQL's backends), and interrupts.
struct CpuWindow {
    started: Instant,
    machine: (Duration, Duration),
    server: Duration,
    client: Duration,
    server_pid: u32,
}

impl CpuWindow {
    fn open(server_pid: u32) -> CpuWindow {
        CpuWindow {
            started: Instant::now(),
            machine: machine_cpu(),
            server: cpu_time(server_pid),
            client: children_cpu(),
            server_pid,
        }
    }

    /// The server's CPU time, and `server x%, smtp-source y%, other processes z%, irq w%` (100% =
    /// one core) over the window. /proc counts in ticks (10 ms): short runs are rough.
    fn close(self) -> (Duration, String) {
        let wall = self.started.elapsed().as_secs_f64();
        let server = cpu_time(self.server_pid).saturating_sub(self.server);
        let client = children_cpu().saturating_sub(self.client);
        let (processes, irq) = machine_cpu();
        let processes = processes.saturating_sub(self.machine.0);
        let irq = irq.saturating_sub(self.machine.1);
        let other = processes.saturating_sub(server + client);
        let pct = |d: Duration| d.as_secs_f64() / wall * 100.0;
        (
            server,
            format!(
                "CPU: server {:.0}%, smtp-source {:.0}%, other processes {:.0}%, irq {:.0}%",
                pct(server),
                pct(client),
                pct(other),
                pct(irq)
            ),
        )
    }
}

/// Runs `smtp-source -s <sessions> -d -m <messages> -l 1024 127.0.0.1:<port>` to its end and returns
/// its wall time. The flags (smtp-source(1)):
/// - `-s 10`: ten SMTP sessions in parallel;
/// - `-d`: do *not* disconnect after a message: each session sends its next message over the same
///   connection (as Jira does; without `-d` every message would pay a connect, greeting and HELO);
/// - `-m 20000`: messages in total, shared by the sessions;
/// - `-l 1024`: 1024 bytes of payload per message, not counting the headers smtp-source adds
///   (From, To, Date, Message-Id: about 110 bytes more).
///
/// smtp-source sends HELO (not EHLO), one recipient per message, no pipelining, and gives up (exit
/// status 1) on any reply that is not the expected positive one (no `-A`): a run that ends well had
/// every message answered `250`.
fn smtp_source(port: u16, sessions: usize, messages: usize) -> Duration {
    let started = Instant::now();
    let out = Command::new("smtp-source")
        .args([
            "-s",
            &sessions.to_string(),
            "-d",
            "-m",
            &messages.to_string(),
            "-l",
            "1024",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("smtp-source (Debian package postfix) must be installed: apt-get install postfix");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "smtp-source failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Herald with its SMTP listener on a free port and loopback trusted; returns it and that port.
fn start_herald(data_dir: &Path, env: &[(&str, String)]) -> (Herald, u16) {
    let smtp_port = free_port();
    let listen = format!("127.0.0.1:{smtp_port}");
    let mut env = env.to_vec();
    env.push(("HERALD_SMTP_TRUSTED_NETWORKS", "127.0.0.0/8".into()));
    let herald = Herald::start_with_args(data_dir, &["--smtp-listen", &listen], &env);
    // Ready means the HTTP side answers; the SMTP listener is bound before that, but check.
    let mut probe = SmtpClient::connect(([127, 0, 0, 1], smtp_port).into());
    probe.quit();
    (herald, smtp_port)
}

/// A metric's value from the Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// (1) smtp-source into smtp-sink (ceiling), then into Herald with delivery off, on each database.
fn acceptance() {
    let messages = env_usize("BENCH_SMTP_MESSAGES", 20_000);
    let sessions = env_usize("BENCH_SMTP_SESSIONS", 10);
    let databases = std::env::var("BENCH_SMTP_DATABASES").unwrap_or_else(|_| "sqlite,postgres".into());
    println!(
        "(1) durable acceptance: smtp-source -s {sessions} -d -m {messages} -l 1024, into smtp-sink (ceiling, measured just before) and into Herald (delivery off)   load {}",
        loadavg()
    );
    let postgres = databases.contains("postgres").then(Postgres::start);
    for (n, database) in databases.split(',').map(str::trim).enumerate() {
        let sink = Sink::start();
        let window = CpuWindow::open(sink.pid());
        let elapsed = smtp_source(sink.port, sessions, messages);
        let (_, cpu) = window.close();
        drop(sink);
        let ceiling = messages as f64 / elapsed.as_secs_f64();
        println!("    {database:<10} smtp-sink (ceiling)   {ceiling:>7.0} msg/s               {cpu}");

        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("HERALD_MAIL_DELIVERY", "false".to_owned())];
        match database {
            "sqlite" => {}
            "postgres" => {
                let url = postgres.as_ref().unwrap().create_database(&format!("smtp_accept_{n}"));
                env.push(("HERALD_DATABASE_URL", url));
            }
            other => panic!("BENCH_SMTP_DATABASES: unknown database {other:?}"),
        }
        let (herald, port) = start_herald(dir.path(), &env);
        let window = CpuWindow::open(herald.pid());
        let elapsed = smtp_source(port, sessions, messages);
        let (server_cpu, cpu) = window.close();
        let rate = messages as f64 / elapsed.as_secs_f64();
        let (size, errors) = herald.status();
        let accepted = metric(&herald.metrics(), "herald_smtp_messages_accepted_total").unwrap_or(-1.0);
        println!(
            "    {database:<10} herald (durable)      {rate:>7.0} msg/s  ratio {:.2}  {cpu}; server CPU {:.0} µs/msg",
            rate / ceiling,
            server_cpu.as_secs_f64() * 1e6 / messages as f64,
        );
        println!(
            "               queue after the run: size {size}, errorSize {errors}; herald_smtp_messages_accepted_total {accepted}: {}",
            if size == messages as i64 && errors == 0 && accepted == messages as f64 {
                "every message answered 250 is in the queue"
            } else {
                "MISMATCH"
            }
        );
        assert_eq!(
            (size, errors),
            (messages as i64, 0),
            "the queue does not hold what was accepted"
        );
    }
    println!("    goal: ratio >= 0.50");
}

/// (2a) smtp-source → Herald (delivery on) → smtp-sink, until the queue is empty.
fn end_to_end_throughput() {
    let messages = env_usize("BENCH_SMTP_MESSAGES", 20_000);
    let sessions = env_usize("BENCH_SMTP_SESSIONS", 10);
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let (herald, port) = start_herald(dir.path(), &[("HERALD_SMTP_URL", sink.url())]);
    let window = CpuWindow::open(herald.pid());
    let started = Instant::now();
    let accepted_in = smtp_source(port, sessions, messages);
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut size, mut errors);
    loop {
        (size, errors) = herald.status();
        if size == 0 || errors > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the queue did not drain within 600 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    let (server, cpu) = window.close();
    assert_eq!(errors, 0, "deliveries failed");
    let wall = elapsed.as_secs_f64();
    println!(
        "(2a) end to end: smtp-source -s {sessions} -d -m {messages} -l 1024 → Herald (SQLite, 4 relay connections) → smtp-sink   load {}",
        loadavg()
    );
    println!(
        "    accepted in {:.2} s ({:.0} msg/s while delivering); all delivered (queue empty) after {:.2} s: {:>7.0} msg/s end to end",
        accepted_in.as_secs_f64(),
        messages as f64 / accepted_in.as_secs_f64(),
        wall,
        messages as f64 / wall
    );
    println!(
        "    {cpu} (100% = one core; smtp-sink is among the other processes); server CPU {:.0} µs/msg",
        server.as_secs_f64() * 1e6 / messages as f64
    );
}

/// A message of about 1 KiB with a unique Message-ID, ending with the final dot.
fn message(id: &str) -> Vec<u8> {
    let mut m = format!(
        "From: <bench@example.com>\r\nTo: <sink@example.com>\r\nSubject: latency {id}\r\nMessage-ID: <{id}@bench>\r\n\r\n"
    );
    for i in 0..15 {
        m.push_str(&format!("{i:02} {}\r\n", "x".repeat(60)));
    }
    m.push_str(".\r\n");
    m.into_bytes()
}

/// (2b) Latency from the client's `250` to arrival at the sink.
///
/// Method: BENCH_SMTP_CLIENTS connections send, between them, BENCH_SMTP_RATE messages per second
/// (each on a fixed schedule, lockstep MAIL/RCPT/DATA) for a 1 s warm-up plus BENCH_SECONDS; each
/// message has a unique `Message-ID: <n@bench>`, and the `Instant` at which its
/// `250` was read is recorded. Herald delivers into `smtp-sink -d <dir>/m.`, which writes every
/// transaction to its own file and closes it at the end of the data. A thread here blocks on inotify
/// for IN_CLOSE_WRITE in that directory (tmpfs) and records the `Instant` at which it woke up for each
/// file; afterwards each file's Message-ID is read. Latency = that wake-up − the `250`, both on this
/// process's monotonic clock. Resolution: microseconds, plus the watcher's wake-up delay (a few tens
/// of µs, more when the two cores are busy); it slightly overstates the latency, never understates it.
/// The files' mtimes are no use here: they come from the kernel's coarse clock (one timer tick; five
/// files written over several ms showed the same mtime to the nanosecond), coarser than the p50.
fn latency() {
    let rate = env_usize("BENCH_SMTP_RATE", 300);
    let clients = env_usize("BENCH_SMTP_CLIENTS", 6);
    let measured = env_secs("BENCH_SECONDS", 10.0);
    let warmup = Duration::from_secs(1);

    let shm = Path::new("/dev/shm");
    let dumps = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    // smtp-sink runs as `nobody` when we are root: it must be able to write there.
    std::fs::set_permissions(dumps.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let template = format!("{}/m.", dumps.path().display());
    let sink = Sink::start_with(free_port(), &["-d", &template]);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_closes(dumps.path(), stop.clone());

    let dir = tempfile::tempdir().unwrap();
    let (herald, port) = start_herald(dir.path(), &[("HERALD_SMTP_URL", sink.url())]);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let interval = Duration::from_secs_f64(clients as f64 / rate as f64);
    let total = warmup + measured;
    let started = Instant::now() + Duration::from_millis(50);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = SmtpClient::connect(addr);
                client.command("EHLO bench.example", 250);
                // The clients' schedules are staggered evenly over one interval.
                let offset = interval.mul_f64(c as f64 / clients as f64);
                let mut acks = Vec::new();
                for k in 0u32.. {
                    let due = started + offset + interval * k;
                    if due >= started + total {
                        break;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let id = format!("{c}.{k}");
                    let content = message(&id);
                    client.send(&content);
                    acks.push((id, Instant::now(), due < started + warmup));
                }
                client.quit();
                acks
            })
        })
        .collect();
    let acks: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let sent_for = started.elapsed();

    // Wait until every acknowledged message has been delivered (the queue is empty).
    let deadline = Instant::now() + Duration::from_secs(60);
    while herald.status().0 > 0 {
        assert!(Instant::now() < deadline, "the queue did not drain within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let closes = watcher.join().unwrap();

    // The last close of each file is the end of its transaction; its Message-ID says which message.
    let mut last_close: HashMap<String, Instant> = HashMap::new();
    for (name, at) in closes {
        last_close.insert(name, at);
    }
    let mut arrivals: HashMap<String, Instant> = HashMap::new();
    for (name, at) in last_close {
        let path = dumps.path().join(&name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let id = text.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case("message-id").then(|| {
                value
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches("@bench>")
                    .to_owned()
            })
        });
        if let Some(id) = id {
            // A duplicate delivery keeps the first arrival.
            let first = arrivals.entry(id).or_insert(at);
            *first = (*first).min(at);
        }
    }
    let mut latencies = Vec::new();
    let mut missing = 0;
    let counted: Vec<_> = acks.iter().filter(|a| !a.2).collect();
    for (id, acked, _) in &counted {
        match arrivals.get(id) {
            Some(at) => latencies.push(at.saturating_duration_since(*acked)),
            None => missing += 1,
        }
    }
    latencies.sort();
    println!(
        "(2b) latency from the client's 250 to arrival at smtp-sink: {clients} connections, {rate} msg/s offered, 1 s warm-up + {:.0} s measured   load {}",
        measured.as_secs_f64(),
        loadavg()
    );
    println!(
        "    {} messages acknowledged ({:.0} msg/s sustained), {} counted after the warm-up, {} delivered, {missing} missing; {} files at the sink",
        acks.len(),
        acks.len() as f64 / sent_for.as_secs_f64(),
        counted.len(),
        latencies.len(),
        arrivals.len()
    );
    assert!(!latencies.is_empty(), "no message arrived at the sink");
    println!(
        "    250 → arrival (inotify, µs resolution): p50 {}   p99 {}   max {}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    assert_eq!(missing, 0, "acknowledged messages never reached the sink");
}

/// Raises the soft limit of open files to at least `needed` (as far as the hard limit allows); the
/// Herald started afterwards inherits it. Returns the soft limit now in force.
fn ensure_open_files(needed: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < needed {
            limit.rlim_cur = needed.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
        limit.rlim_cur
    }
}

/// (3) Memory with idle sessions, and the gauge back to 0 after they close.
fn idle_sessions() {
    let sessions = env_usize("BENCH_SMTP_IDLE", 1000);
    let limit = ensure_open_files(sessions as u64 + 200);
    assert!(
        limit >= sessions as u64 + 50,
        "the open-files limit ({limit}) is too low for {sessions} sessions: raise `ulimit -n`"
    );
    let dir = tempfile::tempdir().unwrap();
    let max = (sessions + 100).to_string();
    let (herald, port) = start_herald(
        dir.path(),
        &[
            ("HERALD_MAIL_DELIVERY", "false".into()),
            ("HERALD_SMTP_MAX_CONNECTIONS", max.clone()),
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // One full session first, so that what a first session touches (code, allocator arenas) is in
    // the baseline, not in the per-session figure.
    let mut warm = SmtpClient::connect(addr);
    warm.command("EHLO bench.example", 250);
    warm.quit();
    std::thread::sleep(Duration::from_millis(200));
    let before = herald_memory(&herald);
    let opened = Instant::now();
    let mut open = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let mut client = SmtpClient::connect(addr);
        client.command("EHLO bench.example", 250);
        open.push(client);
    }
    let opened_in = opened.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let active = metric(&herald.metrics(), "herald_smtp_sessions_active").unwrap_or(-1.0);
    let after = herald_memory(&herald);
    println!(
        "(3) memory with {sessions} idle SMTP sessions (greeting read, EHLO answered, then silent; HERALD_SMTP_MAX_CONNECTIONS {max}, open files {limit})   load {}",
        loadavg()
    );
    println!("    opened in {}; herald_smtp_sessions_active {active}", ms(opened_in));
    let per = |a: u64, b: u64| (b as f64 - a as f64) / sessions as f64;
    println!(
        "    VmRSS   {:>7.1} MiB → {:>7.1} MiB: +{:.1} MiB, {:.1} KiB per session",
        mib(before.0.vm_rss_kb),
        mib(after.0.vm_rss_kb),
        mib(after.0.vm_rss_kb) - mib(before.0.vm_rss_kb),
        per(before.0.vm_rss_kb, after.0.vm_rss_kb)
    );
    println!(
        "    RssAnon {:>7.1} MiB → {:>7.1} MiB: +{:.1} MiB, {:.1} KiB per session   (threads {} → {}; socket buffers are kernel memory, not in RSS)",
        mib(before.0.rss_anon_kb),
        mib(after.0.rss_anon_kb),
        mib(after.0.rss_anon_kb) - mib(before.0.rss_anon_kb),
        per(before.0.rss_anon_kb, after.0.rss_anon_kb),
        before.0.threads,
        after.0.threads
    );
    println!("    open file descriptors {} → {}", before.1, after.1);
    assert_eq!(active, sessions as f64, "the gauge does not count the idle sessions");

    let closing = Instant::now();
    drop(open);
    let deadline = closing + Duration::from_secs(30);
    let gauge = loop {
        let v = metric(&herald.metrics(), "herald_smtp_sessions_active").unwrap_or(-1.0);
        if v == 0.0 || Instant::now() >= deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let closed = herald_memory(&herald);
    println!(
        "    closed all: herald_smtp_sessions_active {gauge} after {}; VmRSS {:.1} MiB, RssAnon {:.1} MiB, {} fds",
        ms(closing.elapsed()),
        mib(closed.0.vm_rss_kb),
        mib(closed.0.rss_anon_kb),
        closed.1
    );
    assert_eq!(gauge, 0.0, "herald_smtp_sessions_active did not return to 0");
}

/// /proc/<pid>/status figures and the number of open descriptors.
fn herald_memory(herald: &Herald) -> (common::ProcStatus, usize) {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", herald.pid())).map_or(0, |d| d.count());
    (common::ProcStatus::read(herald.pid()), fds)
}

fn main() {
    println!(
        "herald SMTP submission benchmarks (release build; {} CPUs; load average {} at start)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    if part_enabled("1") {
        acceptance();
    }
    if part_enabled("2") {
        end_to_end_throughput();
        latency();
    }
    if part_enabled("3") {
        idle_sessions();
    }
    println!("load average at end: {}", loadavg());
}
