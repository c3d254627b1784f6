//! The `herald` command line: parses flags, starts logging, runs the chosen command.

use std::process::ExitCode;

use herald::cli::Cli;

/// Argon2id works in 19 MiB blocks. glibc's allocator raises its mmap threshold after the first such
/// block is freed, and then keeps later ones inside the process: each password check would grow the
/// resident memory for good (`cargo bench --bench startup` showed 19 -> 38 -> 57 MiB over two checks).
/// A fixed threshold keeps large blocks in mmap, so they go back to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_returnable() {
    // SAFETY: mallopt only changes allocator tuning; called once, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_returnable() {}
fn main() -> ExitCode {
    keep_large_allocations_returnable();
    let (cli, flags) = Cli::parse_args();
    let settings = match cli.settings(&flags) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    herald::telemetry::init(&settings.logging);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}
