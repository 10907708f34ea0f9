//! The `gan-run` command line: clap's definitions of every subcommand, and one function per
//! subcommand that does its work through the library. `main.rs` only parses, installs logging
//! and prints errors.

mod completions;
mod images;
mod positional;
mod runs;
mod sweep;
mod tools;
mod train;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Experiment, GenerationMode, Override};
pub use images::{EvalArgs, ExportArgs, SampleArgs};
pub use runs::{CompareArgs, DiffArgs, LsArgs, ReportArgs};
pub use sweep::{RunPointArgs, SweepArgs};
pub use tools::{BenchArgs, TrainClassifierArgs};
pub use train::{CheckArgs, TrainArgs};

/// Declarative GAN experiments on MNIST. `gan-run CONFIG` is `gan-run train CONFIG`.
#[derive(Parser)]
#[command(
    name = "gan-run",
    version,
    about,
    after_help = "Shorthand: `gan-run CONFIG... [KEY=VALUE...] [options]` is `gan-run train \
                  CONFIG... [KEY=VALUE...] [options]` when CONFIG is a file or ends in `.toml`, \
                  and `gan-run -m CONFIG KEY=V1,V2...` is `gan-run sweep -m CONFIG KEY=V1,V2...` \
                  (a multirun)."
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Train experiments into runs/<name>/, each resuming from its last checkpoint if it has one.
    Train(TrainArgs),
    /// Run every point of a sweep file (a base config and a grid of dotted keys).
    Sweep(SweepArgs),
    /// Run one point of a sweep (what `sweep` and job arrays call).
    RunPoint(RunPointArgs),
    /// Show what differs between two runs: config keys, final metrics, curves, sample grids.
    Diff(DiffArgs),
    /// One table of runs (or sweep directories): the keys that vary and the final metrics.
    Compare(CompareArgs),
    /// Write one self-contained HTML page comparing runs (curves, config differences, sample
    /// grids); it never writes into the runs it reads.
    Report(ReportArgs),
    /// Write generated images of a run as an MNIST-format IDX3 file (.gz if named so) or a PNG grid.
    Sample(SampleArgs),
    /// Score generated images: classifier FID, classifier score, mode coverage, Parzen
    /// log-likelihood (Goodfellow et al. 2014), memorisation, improved precision and recall
    /// (Kynkäänniemi et al. 2019) and KID (Bińkowski et al. 2018), beside the reference rows.
    /// Writes eval.json into the run (eval-<mode>.json for a --generation other than the
    /// run's own; -raw with --raw-generator, -test-labels with --labels test).
    Eval(EvalArgs),
    /// Time a config's training steps against this machine's matrix-product peak.
    Bench(BenchArgs),
    /// Train gan-run's MNIST classifier (the yardstick of the classifier-based measures).
    TrainClassifier(TrainClassifierArgs),
    /// Validate experiment files without training.
    Check(CheckArgs),
    /// List runs and sweep points: state, epochs, the running step and time to go, last
    /// losses, best FID, age.
    Ls(LsArgs),
    /// Write a run's generator (or both networks) as plain safetensors for other tools.
    Export(ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell). Bash's also
    /// completes config keys (after --set and as KEY=VALUE) and run directories.
    Completions(CompletionsArgs),
}

/// Print a shell completion script.
#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// The options every command that loads an experiment file takes.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ConfigArgs {
    /// Override a config key, e.g. `--set training.epochs=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// MNIST folder (overrides `data.dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Refuse configs estimated to need more memory than this many GB (default: 80% of this
    /// machine's memory).
    #[arg(long, value_name = "GB")]
    pub memory_limit: Option<f64>,
}

impl ConfigArgs {
    /// Loads `path` with these overrides.
    pub fn load(&self, path: &Path) -> anyhow::Result<Experiment> {
        let mut overrides = parse_overrides(&self.set)?;
        if let Some(dir) = &self.data_dir {
            overrides.push(Override {
                text: format!("--data-dir {}", dir.display()),
                key: "data.dir".into(),
                value: toml::Value::String(dir.display().to_string()),
            });
        }
        let experiment = config::load(path, &overrides)?;
        check_memory(&experiment, path, self.memory_limit)?;
        Ok(experiment)
    }
}

/// Refuses a config whose estimated memory is above `limit_gb` (default: 80% of this
/// machine's), before anything is created.
fn check_memory(experiment: &Experiment, path: &Path, limit_gb: Option<f64>) -> anyhow::Result<()> {
    let estimate = config::memory::estimate(experiment);
    check_bytes(estimate.total(), limit_gb, || {
        format!(
            "{}: the experiment needs about {}",
            path.display(),
            estimate.describe()
        )
    })
}

/// Refuses `bytes` above the limit, saying what needs them (`what`) and what to do.
fn check_bytes(
    bytes: f64,
    limit_gb: Option<f64>,
    what: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let limit = limit_gb.map_or_else(config::memory::default_limit, |gb| gb * 1e9);
    if bytes > limit {
        anyhow::bail!(
            "{}, above the limit of {}{}; make it smaller, or raise the limit knowingly with \
             --memory-limit GB",
            what(),
            config::memory::gigabytes(limit),
            if limit_gb.is_none() {
                " (80% of this machine's memory)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train::train(args),
        Command::Check(args) => train::check(args),
        Command::Ls(args) => runs::ls(args),
        Command::Export(args) => images::export(args),
        Command::Completions(CompletionsArgs { shell }) => {
            print!("{}", completions::script(shell));
            Ok(())
        }
        Command::Sweep(args) => sweep::sweep(args),
        Command::RunPoint(args) => sweep::run_point(args),
        Command::Diff(args) => runs::diff(args),
        Command::Compare(args) => runs::compare(args),
        Command::Report(args) => runs::report(args),
        Command::Sample(args) => images::sample(args),
        Command::Eval(args) => images::eval(args),
        Command::Bench(args) => tools::bench(args),
        Command::TrainClassifier(args) => tools::train_classifier(args),
    }
}

/// Prints how each child ended; fails if any did.
fn report_outcomes(outcomes: &[crate::sweep::PointOutcome], what: &str) -> anyhow::Result<()> {
    for o in outcomes {
        println!("{:<9} {}", o.state, o.name);
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| {
            use crate::sweep::PointState::{Failed, OtherConfig};
            matches!(o.state, Failed | OtherConfig)
        })
        .collect();
    for o in &failed {
        match o.state {
            crate::sweep::PointState::OtherConfig => eprintln!(
                "other config: {}: its run directory trained another config (the keys are in \
                 the log above); run with the --set values it was run with, run this variant \
                 in a sweep directory of its own (`--name NAME`), or move it away",
                o.name
            ),
            _ => eprintln!("failed: {} (log: {})", o.name, o.log.display()),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} {what} failed; run the same command again to retry them",
            failed.len(),
            outcomes.len()
        );
    }
    Ok(())
}

fn parse_overrides(set: &[String]) -> anyhow::Result<Vec<Override>> {
    Ok(set
        .iter()
        .map(|s| s.parse::<Override>())
        .collect::<Result<Vec<_>, _>>()?)
}

/// Where a start begins (other than at its own last checkpoint) and where it stops before the
/// run's last epoch.
#[derive(Debug, Clone, Default)]
struct StartRange {
    /// At most this many epochs in this start.
    this_start: Option<usize>,
    /// Not past this epoch.
    until: Option<usize>,
    /// The checkpoint a new run branches from (`train --branch-from`).
    branch_from: Option<PathBuf>,
}

/// Trains one experiment into `dir` and reports how far it got.
fn train_one(
    experiment: &Experiment,
    dir: &Path,
    force: bool,
    limits: StartRange,
    overrides: &[String],
    hparams: Vec<(String, crate::tensorboard::HParamValue)>,
) -> anyhow::Result<()> {
    let options = crate::experiment::RunOptions {
        run_dir: dir.to_path_buf(),
        force,
        overrides: overrides.to_vec(),
        progress: true,
        max_epochs_this_start: limits.this_start,
        until_epoch: limits.until,
        hparams,
        branch_from: limits.branch_from,
    };
    let summary = crate::experiment::run(experiment, &options)?;
    // A start that returns short of the last epoch stopped where it was asked to (a signal
    // returns an error instead): `ls` calls it `waiting@EPOCH`.
    let status = match summary.finished {
        true => "finished",
        false => "waiting (as --max-epochs or a sweep's rung asked; rerun without the limit, or the sweep, to train on)",
    };
    tracing::info!(
        "{status} after {} of {} epochs: {}",
        summary.epochs,
        experiment.training.epochs,
        summary.run_dir.display()
    );
    Ok(())
}

/// The command line with `train` put in where the first argument is a config file: one that
/// exists, or whose name ends in `.toml` (`sweep` where `-m`/`--multirun` is among the
/// arguments, or first). Anything else goes to clap as typed, so that a mistyped subcommand
/// (`gan-run chek ...`) gets clap's error and suggestion instead of being trained as a config.
pub fn args_with_default_subcommand(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut args: Vec<String> = args.into_iter().collect();
    use clap::CommandFactory;
    let is_subcommand = |word: &str| {
        word == "help"
            || Cli::command()
                .get_subcommands()
                .any(|c| c.get_name() == word)
    };
    let multirun = |word: &String| word == "-m" || word == "--multirun";
    if let Some(first) = args.get(1) {
        let is_config = first.ends_with(".toml") || Path::new(first).is_file();
        if multirun(first) {
            args.insert(1, "sweep".into());
        } else if !first.starts_with('-') && !is_subcommand(first) && is_config {
            let mut rest = args[2..].iter().take_while(|a| *a != "--");
            let command = if rest.any(multirun) { "sweep" } else { "train" };
            args.insert(1, command.into());
        }
    }
    args
}

/// Prints an error cargo-style: `error:`, `Caused by:`, `hint:`.
pub fn print_error(e: &anyhow::Error) {
    eprintln!("error: {e}");
    let mut causes = e.chain().skip(1).peekable();
    if causes.peek().is_some() {
        eprintln!("\nCaused by:");
        for c in causes {
            eprintln!("    {c}");
        }
    }
    if let Some(hint) = e.downcast_ref::<crate::Error>().and_then(|e| e.hint()) {
        eprintln!("hint: {hint}");
    }
}
