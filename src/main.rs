use std::process::ExitCode;

use clap::Parser;

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
