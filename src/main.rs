//! The `gan-run` command: parses arguments, installs logging, runs the subcommand through
//! [`gan_run::cli`] and prints errors cargo-style (`error:`, `Caused by:`, `hint:`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use gan_run::cli::{args_with_default_subcommand, print_error, run, Cli};

/// mimalloc keeps freed memory for reuse, where glibc's allocator handed the step's large
/// buffers back to the OS and page-faulted them in again every step (416,000 faults in 20 steps
/// at batch 1024, 14,000 with mimalloc; BENCHMARKS.md has the speed-up).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_from(args_with_default_subcommand(std::env::args()));
    gan_run::logging::init();
    use gan_run::cli::Command;
    // Training and sweeps stop between steps with their state saved; the rest stop at once.
    let polls = matches!(
        cli.command,
        Command::Train(_) | Command::Sweep(_) | Command::RunPoint(_)
    );
    gan_run::interrupt::install(polls);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            if gan_run::interrupt::requested() {
                ExitCode::from(gan_run::interrupt::EXIT_STATUS)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
