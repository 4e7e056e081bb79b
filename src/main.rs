use std::process::ExitCode;

use clap::Parser;

/// jemalloc, with a background thread giving freed memory back within a couple of seconds even
/// when the process then sits idle: glibc's allocator kept what a flood took (25 MB before 20,000
/// idle connections, 369 MB after), mimalloc gave it back only once the process allocated again
/// (README "Security" has the figures).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the system after a second, not jemalloc's default ten.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

fn main() -> ExitCode {
    // A .env file is a convenience for local runs; real environment variables win over it.
    let _ = dotenvy::dotenv();
    let cli = fieldline::cli::Cli::parse();
    match fieldline::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, with the chain of causes, so scripts and people both can read it.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
