//! The `gan-run` command: parses arguments, installs logging, runs the subcommand through
//! [`gan_run::cli`] and prints errors cargo-style (`error:`, `Caused by:`, `hint:`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use gan_run::cli::{args_with_default_subcommand, print_error, run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse_from(args_with_default_subcommand(std::env::args()));
    gan_run::logging::init();
    gan_run::interrupt::install();
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
