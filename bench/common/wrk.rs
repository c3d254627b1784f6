//! What `wrk` reported, read from the one summary line the benches' Lua scripts print
//! (`wrk: requests=123 seconds=10.000 rate=12.3 non_2xx=0 socket_errors=0 p50_us=800 p99_us=4000`).

use std::process::Output;
use std::time::Duration;

pub struct Load {
    pub requests: u64,
    pub per_second: f64,
    pub non_2xx: u64,
    pub socket_errors: u64,
    pub p50: Duration,
    pub p99: Duration,
}

/// The summary of a finished `wrk` run; panics with wrk's output when there is none.
pub fn summary(output: &Output) -> Load {
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("wrk: ")).unwrap_or_else(|| {
        panic!(
            "no summary from wrk:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in: {line}"))
    };
    Load {
        requests: field("requests") as u64,
        per_second: field("rate"),
        non_2xx: field("non_2xx") as u64,
        socket_errors: field("socket_errors") as u64,
        p50: Duration::from_micros(field("p50_us") as u64),
        p99: Duration::from_micros(field("p99_us") as u64),
    }
}
