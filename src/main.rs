use std::process::ExitCode;

use clap::Parser;

/// mimalloc gives memory back once a flood is over; glibc's allocator kept it (20,000 idle
/// connections: 25 MB before, 369 MB after; README "Security" has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
