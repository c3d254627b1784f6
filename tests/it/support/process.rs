//! The `herald` binary as a child process, in one place for the tests (`support::process`) and the
//! benchmarks (bench/common/mod.rs includes this file by `#[path]`): the binary cargo built, a free
//! port, a command whose environment cannot change what runs, `herald serve` on a port, SIGTERM.
//!
//! Only std and libc here, so the file compiles in both crates. Waiting for readiness stays with each
//! user: the tests poll `/readyz` asynchronously ([`super::Process`]); the benchmarks poll with a
//! blocking 1 ms loop, because they time the start-up.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `herald` binary of this build (cargo sets the variable for tests and benchmarks).
pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// A free port on 127.0.0.1: bind port 0, read it, release it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `herald` without any of the caller's `HERALD_*` or proxy variables: nothing in the environment of
/// whoever runs the suite changes what a test or a benchmark sees.
pub fn herald_command() -> Command {
    let mut command = Command::new(HERALD);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("HERALD_") || key.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(&*key);
        }
    }
    command
}

/// Runs `command` to its end with `stdin` as its input (none: closed at once), capturing its output.
pub fn run(command: &mut Command, stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run herald");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("write herald's standard input");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait for herald")
}

/// `herald serve` listening on `addr` with `data_dir`, after `extra_args`; output is discarded
/// unless the caller sets it.
pub fn serve_command_at(addr: SocketAddr, data_dir: &Path, extra_args: &[&str]) -> Command {
    let mut command = herald_command();
    command
        .arg("serve")
        .args(extra_args)
        .args(["--listen", &addr.to_string()]);
    if !extra_args.contains(&"--smtp-listen") {
        // Its own free port for SMTP submission too: the default 2525 would be shared by every server.
        command.args(["--smtp-listen", "127.0.0.1:0"]);
    }
    command
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A `herald serve` command on a free loopback port with `data_dir`, and the base URL it will serve.
pub fn serve_command(data_dir: &Path, extra_args: &[&str]) -> (Command, String) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    (serve_command_at(addr, data_dir, extra_args), format!("http://{addr}"))
}

/// Asks a child to shut down cleanly (SIGTERM).
pub fn sigterm(child: &Child) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) on our own child's pid, not reaped yet (we hold the `Child`), has no memory effects.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether this process runs as root (PostgreSQL and smtp-sink then need another user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
