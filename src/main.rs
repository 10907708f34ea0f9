//! The `gan-run` command: parses arguments, installs logging, makes one library call per
//! subcommand, and prints errors cargo-style (`error:`, `Caused by:`, `hint:`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gan_run::config::{self, ExperimentConfig, Override};

/// Declarative GAN experiments on MNIST. `gan-run CONFIG` is `gan-run train CONFIG`.
#[derive(Parser)]
#[command(name = "gan-run", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an experiment into runs/<name>/, resuming from its last checkpoint if it has one.
    Train {
        /// The experiment file.
        config: PathBuf,
        #[command(flatten)]
        common: ConfigArgs,
        /// Name of the run directory (default: the config's `name`).
        #[arg(long)]
        name: Option<String>,
        /// Folder that holds run directories.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Replace an existing run directory instead of resuming or refusing.
        #[arg(long)]
        force: bool,
        /// Stop after this many epochs of this start; running again resumes.
        #[arg(long, value_name = "N")]
        max_epochs: Option<usize>,
    },
    /// Validate experiment files without training.
    Check {
        /// The experiment files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        #[command(flatten)]
        common: ConfigArgs,
    },
}

#[derive(Args)]
struct ConfigArgs {
    /// Override a config key, e.g. `--set training.epochs=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// MNIST folder (overrides `data.dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self, path: &Path) -> anyhow::Result<ExperimentConfig> {
        let mut overrides = self
            .set
            .iter()
            .map(|s| s.parse::<Override>())
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(dir) = &self.data_dir {
            overrides.push(Override {
                text: format!("--data-dir {}", dir.display()),
                key: "data.dir".into(),
                value: toml::Value::String(dir.display().to_string()),
            });
        }
        Ok(config::load(path, &overrides)?)
    }
}

/// A bare config path means `train`.
fn args_with_default_subcommand() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    const KNOWN: [&str; 3] = ["train", "check", "help"];
    if let Some(first) = args.get(1) {
        if !first.starts_with('-') && !KNOWN.contains(&first.as_str()) {
            args.insert(1, "train".into());
        }
    }
    args
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train {
            config,
            common,
            name,
            runs_dir,
            force,
            max_epochs,
        } => {
            let mut experiment = common.load(&config)?;
            if let Some(name) = name {
                experiment.name = name;
            }
            let options = gan_run::train::RunOptions {
                run_dir: runs_dir.join(&experiment.name),
                force,
                overrides: common.set.clone(),
                progress: true,
                max_epochs_this_start: max_epochs,
            };
            let summary = gan_run::train::run(&experiment, &options)?;
            let status = if summary.finished {
                "finished"
            } else {
                "paused"
            };
            tracing::info!(
                "{status} after {} of {} epochs: {}",
                summary.epochs,
                experiment.training.epochs,
                summary.run_dir.display()
            );
            Ok(())
        }
        Command::Check { configs, common } => {
            let mut failed = 0;
            for path in &configs {
                match common.load(path) {
                    Ok(c) => println!("ok: {} (run `{}`)", path.display(), c.name),
                    Err(e) => {
                        print_error(&e);
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} configs failed the check", configs.len());
            }
            Ok(())
        }
    }
}

fn print_error(e: &anyhow::Error) {
    eprintln!("error: {e}");
    let mut causes = e.chain().skip(1).peekable();
    if causes.peek().is_some() {
        eprintln!("\nCaused by:");
        for c in causes {
            eprintln!("    {c}");
        }
    }
    if let Some(hint) = e.downcast_ref::<gan_run::Error>().and_then(|e| e.hint()) {
        eprintln!("hint: {hint}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(args_with_default_subcommand());
    gan_run::logging::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}
