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
    if !polls {
        exit_quietly_on_closed_pipe();
    }
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

/// A reader that stops early (`gan-run ls | head`) ends the command quietly, as it would a C
/// tool, rather than with a panic in `println!`. Not for training, whose lock and state are
/// let go by their destructors.
fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map_or("", String::as_str);
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            // 128 + SIGPIPE: what a shell reports for a C tool its reader left.
            std::process::exit(141);
        }
        default(info);
    }));
}
