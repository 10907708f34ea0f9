//! The `gan-run` command: parses arguments, installs logging, makes one library call per
//! subcommand, and prints errors cargo-style (`error:`, `Caused by:`, `hint:`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gan_run::config::{self, ExperimentConfig, GenerationMode, Override};

/// Declarative GAN experiments on MNIST. `gan-run CONFIG` is `gan-run train CONFIG`.
#[derive(Parser)]
#[command(name = "gan-run", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train experiments into runs/<name>/, each resuming from its last checkpoint if it has one.
    Train {
        /// The experiment files; several run one after another, and a failing one does not
        /// stop the others.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
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
        /// With several configs: how many to train at once (each in its own process, with its
        /// share of the cores; output in RUNS_DIR/logs/<config>.log).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// Run every point of a sweep file (a base config and a grid of dotted keys).
    Sweep {
        /// The sweep file.
        sweep: PathBuf,
        /// Points to run at once; the cores are shared between them.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// List the points without running them.
        #[arg(long)]
        plan: bool,
        /// Write a job-array script for a cluster scheduler instead of running (`slurm`).
        #[arg(long, value_name = "SCHEDULER")]
        emit: Option<String>,
        /// Override keys of every point, e.g. `--set training.epochs=2`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Folder that holds the sweep directory.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Run one point of a sweep (what `sweep` and job arrays call).
    RunPoint {
        /// The sweep file.
        sweep: PathBuf,
        /// The point's index in `sweep --plan`.
        index: usize,
        /// Override keys, e.g. `--set training.epochs=2`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Folder that holds the sweep directory.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Show what differs between two runs: config keys, final metrics, curves, sample grids.
    Diff {
        /// Run A.
        a: PathBuf,
        /// Run B.
        b: PathBuf,
        /// Write the two runs' sample grids of the same epochs side by side into this PNG.
        #[arg(long, value_name = "FILE", default_value = "diff.png")]
        png: PathBuf,
        /// Print JSON.
        #[arg(long, conflicts_with = "md")]
        json: bool,
        /// Print Markdown.
        #[arg(long)]
        md: bool,
    },
    /// One table of runs (or sweep directories): the keys that vary and the final metrics.
    Compare {
        /// Run directories or folders of runs.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Sort rows by this column.
        #[arg(long)]
        sort: Option<String>,
        /// Print CSV.
        #[arg(long, conflicts_with_all = ["json", "md"])]
        csv: bool,
        /// Print JSON.
        #[arg(long, conflicts_with = "md")]
        json: bool,
        /// Print Markdown.
        #[arg(long)]
        md: bool,
    },
    /// Write one self-contained HTML page comparing runs (curves, config differences, sample
    /// grids), and a curves.png into each run.
    Report {
        /// Run directories or folders of runs.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The page to write.
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
        /// A loss log printed by another tool, `NAME=FILE` (CSV with columns epoch, d_loss,
        /// g_loss), drawn beside the runs' end-of-epoch losses (repeatable).
        #[arg(long = "log", value_name = "NAME=FILE")]
        logs: Vec<String>,
        /// Also write each chart as a standalone SVG file into this folder (for documents).
        #[arg(long, value_name = "DIR")]
        charts: Option<PathBuf>,
    },
    /// Write generated images of a run as an MNIST-format IDX3 file (.gz if named so) or a PNG grid.
    Sample {
        /// The run directory.
        run: PathBuf,
        /// How many images.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        /// Output file: NAME.png, NAME.gz (gzipped IDX3) or anything else (raw IDX3).
        #[arg(long)]
        out: PathBuf,
        /// Checkpoint to use (default: the run's newest).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Seed of the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// How the generator draws them (default: the run's `generation.mode`).
        #[arg(long, value_enum)]
        generation: Option<GenerationMode>,
    },
    /// Score generated images: classifier FID, classifier score, mode coverage, Parzen
    /// log-likelihood (Goodfellow et al. 2014) and memorisation, beside the reference rows.
    /// Writes eval.json into the run (eval-<mode>.json for a --generation other than the
    /// run's own).
    Eval {
        /// The run directory (its newest checkpoint generates the samples).
        run: Option<PathBuf>,
        /// Score the images of this IDX3 file (e.g. from `gan-run sample` or another tool)
        /// instead of a run's.
        #[arg(long, conflicts_with = "run")]
        samples: Option<PathBuf>,
        /// Checkpoint to use (default: the run's newest).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Samples to generate.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        /// How the run's generator draws them (default: the run's `generation.mode`).
        #[arg(long, value_enum, conflicts_with = "samples")]
        generation: Option<GenerationMode>,
        /// MNIST folder.
        #[arg(long, default_value = "data/mnist")]
        data_dir: PathBuf,
        /// Classifier weights (default: the built-in classifier).
        #[arg(long)]
        classifier: Option<PathBuf>,
        /// Recompute the reference rows (real training images, uniform noise) and write them as
        /// JSON to this file, e.g. classifier/reference.json.
        #[arg(long, value_name = "FILE")]
        write_reference: Option<PathBuf>,
    },
    /// Time a config's training steps against this machine's matrix-product peak.
    Bench {
        /// The experiment file.
        config: PathBuf,
        #[command(flatten)]
        common: ConfigArgs,
        /// Steps to time.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Skip the baseline (the same steps on dfdx's tape path).
        #[arg(long)]
        no_baseline: bool,
    },
    /// Train gan-run's MNIST classifier (the yardstick of the classifier-based measures).
    TrainClassifier {
        /// The classifier file, e.g. configs/classifier.toml.
        config: PathBuf,
        /// Where to write the weights (safetensors); an existing file is not replaced without
        /// --force.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing weights file.
        #[arg(long)]
        force: bool,
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
        let mut overrides = parse_overrides(&self.set)?;
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

/// Prints how each child ended; fails if any did.
fn report_outcomes(outcomes: &[gan_run::sweep::PointOutcome], what: &str) -> anyhow::Result<()> {
    for o in outcomes {
        println!("{:<9} {}", o.state, o.name);
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| o.state == "failed").collect();
    for o in &failed {
        eprintln!("failed: {} (log: {})", o.name, o.log.display());
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

/// Trains one experiment into `dir` and reports how far it got.
fn train_one(
    experiment: &ExperimentConfig,
    dir: &Path,
    force: bool,
    max_epochs: Option<usize>,
    overrides: &[String],
) -> anyhow::Result<()> {
    let options = gan_run::experiment::RunOptions {
        run_dir: dir.to_path_buf(),
        force,
        overrides: overrides.to_vec(),
        progress: true,
        max_epochs_this_start: max_epochs,
    };
    let summary = gan_run::experiment::run(experiment, &options)?;
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

/// A bare config path means `train`.
fn args_with_default_subcommand() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    use clap::CommandFactory;
    let known: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .chain(["help".to_string()])
        .collect();
    if let Some(first) = args.get(1) {
        if !first.starts_with('-') && !known.contains(first) {
            args.insert(1, "train".into());
        }
    }
    args
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train {
            configs,
            common,
            name,
            runs_dir,
            force,
            max_epochs,
            jobs,
        } => {
            if name.is_some() && configs.len() > 1 {
                anyhow::bail!("--name names one run; it cannot be used with several configs");
            }
            if let Some(n) = &name {
                config::check_run_name(n).map_err(|m| anyhow::anyhow!("--name: {m}"))?;
            }
            if jobs > 1 && configs.len() > 1 {
                // Check every config first, so that a typo fails before anything starts.
                for path in &configs {
                    common.load(path)?;
                }
                let mut shared = vec!["--runs-dir".to_string(), runs_dir.display().to_string()];
                for o in &common.set {
                    shared.extend(["--set".to_string(), o.clone()]);
                }
                if let Some(d) = &common.data_dir {
                    shared.extend(["--data-dir".to_string(), d.display().to_string()]);
                }
                if force {
                    shared.push("--force".into());
                }
                if let Some(n) = max_epochs {
                    shared.extend(["--max-epochs".to_string(), n.to_string()]);
                }
                let children = configs
                    .iter()
                    .enumerate()
                    .map(|(index, path)| {
                        let stem = path
                            .file_stem()
                            .map_or("config".into(), |s| s.to_string_lossy().to_string());
                        gan_run::sweep::ChildJob {
                            index,
                            name: path.display().to_string(),
                            args: [
                                vec!["train".to_string(), path.display().to_string()],
                                shared.clone(),
                            ]
                            .concat(),
                            log: runs_dir.join("logs").join(format!("{stem}.log")),
                        }
                    })
                    .collect();
                let exe = std::env::current_exe()?;
                let outcomes = gan_run::sweep::run_children(children, jobs, &exe, |_, _| Ok(()))?;
                return report_outcomes(&outcomes, "configs");
            }
            let mut failed = Vec::new();
            for path in &configs {
                let result = common.load(path).and_then(|mut experiment| {
                    if let Some(name) = &name {
                        experiment.name = name.clone();
                    }
                    train_one(
                        &experiment,
                        &runs_dir.join(&experiment.name),
                        force,
                        max_epochs,
                        &common.set,
                    )
                });
                if let Err(e) = result {
                    if configs.len() == 1 {
                        return Err(e);
                    }
                    print_error(&e);
                    failed.push(path.display().to_string());
                }
            }
            if !failed.is_empty() {
                anyhow::bail!(
                    "{} of {} configs failed: {}",
                    failed.len(),
                    configs.len(),
                    failed.join(", ")
                );
            }
            Ok(())
        }
        Command::Sweep {
            sweep,
            jobs,
            plan,
            emit,
            set,
            runs_dir,
        } => {
            let sweep = gan_run::sweep::Sweep::load(&sweep)?;
            let extra = parse_overrides(&set)?;
            for p in &sweep.points {
                sweep.config_of(p, &extra)?;
            }
            if plan {
                for p in &sweep.points {
                    let state = if sweep.is_finished(&runs_dir, p, &extra) {
                        "finished"
                    } else {
                        "to run"
                    };
                    println!(
                        "{:>3}  {:<30} {:<9} {}",
                        p.index,
                        p.name,
                        state,
                        p.overrides.join(" ")
                    );
                }
                return Ok(());
            }
            if let Some(kind) = emit {
                anyhow::ensure!(kind == "slurm", "--emit knows `slurm` only, not `{kind}`");
                let exe = std::env::current_exe()?.display().to_string();
                print!("{}", sweep.slurm_script(&exe, &runs_dir, &set));
                return Ok(());
            }
            let exe = std::env::current_exe()?;
            let outcomes = gan_run::sweep::run_points(&sweep, &runs_dir, jobs.max(1), &set, &exe)?;
            report_outcomes(&outcomes, "points")
        }
        Command::RunPoint {
            sweep,
            index,
            set,
            runs_dir,
        } => {
            let sweep = gan_run::sweep::Sweep::load(&sweep)?;
            let point = sweep.points.get(index).ok_or_else(|| {
                anyhow::anyhow!(
                    "the sweep has {} points; there is no index {index}",
                    sweep.points.len()
                )
            })?;
            let experiment = sweep.config_of(point, &parse_overrides(&set)?)?;
            let dir = sweep.dir(&runs_dir).join(&point.name);
            train_one(
                &experiment,
                &dir,
                false,
                None,
                &[point.overrides.clone(), set].concat(),
            )
        }
        Command::Diff {
            a,
            b,
            png,
            json,
            md,
        } => {
            use gan_run::compare::{diff, render_diff, side_by_side_png, RunRecord, TableFormat};
            let (ra, rb) = (RunRecord::read(&a)?, RunRecord::read(&b)?);
            let d = diff(&ra, &rb);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!(
                    "{}",
                    render_diff(
                        &d,
                        if md {
                            TableFormat::Markdown
                        } else {
                            TableFormat::Text
                        }
                    )
                );
            }
            if !d.common_sample_epochs.is_empty() {
                let bytes = side_by_side_png(&ra, &rb, &d.common_sample_epochs)?;
                gan_run::run_dir::atomic_write(&png, &bytes)?;
                eprintln!(
                    "sample grids of epochs {:?} side by side (A left, B right): {}",
                    d.common_sample_epochs,
                    png.display()
                );
            }
            Ok(())
        }
        Command::Compare {
            runs,
            sort,
            csv,
            json,
            md,
        } => {
            use gan_run::compare::{compare, expand_runs, render_table, RunRecord, TableFormat};
            let records = expand_runs(&runs)?
                .iter()
                .map(|d| RunRecord::read(d))
                .collect::<Result<Vec<_>, _>>()?;
            let table = compare(&records, sort.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&table)?);
            } else {
                let format = if csv {
                    TableFormat::Csv
                } else if md {
                    TableFormat::Markdown
                } else {
                    TableFormat::Text
                };
                print!("{}", render_table(&table.columns, &table.rows, format));
            }
            Ok(())
        }
        Command::Report {
            runs,
            out,
            logs,
            charts,
        } => {
            use gan_run::compare::{expand_runs, RunRecord};
            let records = expand_runs(&runs)?
                .iter()
                .map(|d| RunRecord::read(d))
                .collect::<Result<Vec<_>, _>>()?;
            for r in &records {
                gan_run::report::write_curves_png(r)?;
            }
            let logs = logs
                .iter()
                .map(|l| gan_run::report::ImportedLog::read(l))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(dir) = charts {
                for path in gan_run::report::write_chart_files(&records, &logs, &dir)? {
                    println!("{}", path.display());
                }
            }
            let page = gan_run::report::html(&records, &logs)?;
            gan_run::run_dir::atomic_write(&out, page.as_bytes())?;
            println!("{}", out.display());
            Ok(())
        }
        Command::Sample {
            run,
            n,
            out,
            checkpoint,
            seed,
            generation,
        } => {
            let (_, pixels, _, _) = gan_run::sample::generate_from_run(
                &run,
                checkpoint.as_deref(),
                n.max(1),
                seed,
                generation,
            )?;
            gan_run::sample::write_images(&out, &pixels)?;
            println!("{}", out.display());
            Ok(())
        }
        Command::Eval {
            run,
            samples,
            checkpoint,
            n,
            generation,
            data_dir,
            classifier,
            write_reference,
        } => {
            use gan_run::eval::{render_table, Evaluator};
            let started = std::time::Instant::now();
            let classifier = match &classifier {
                Some(path) => gan_run::classifier::Classifier::load(path)?,
                None => gan_run::classifier::Classifier::builtin()?,
            };
            let mut evaluator = Evaluator::new(&data_dir, classifier)?;
            if let Some(out) = write_reference {
                let reference = evaluator.compute_reference();
                gan_run::run_dir::atomic_write(
                    &out,
                    serde_json::to_string_pretty(&reference)?.as_bytes(),
                )?;
                print!(
                    "{}",
                    render_table(&[
                        ("real training images", &reference.real_train),
                        ("uniform noise", &reference.uniform_noise),
                    ])
                );
                println!("{}", out.display());
                return Ok(());
            }
            let (pixels, epoch, generated) = match (&run, &samples) {
                (Some(run), _) => {
                    let (run_config, p, e, mode) = gan_run::sample::generate_from_run(
                        run,
                        checkpoint.as_deref(),
                        n.max(2),
                        0,
                        generation,
                    )?;
                    if run_config.data.validation_size < 2000 {
                        eprintln!(
                            "warning: {} trained with data.validation_size = {}: some of the \
                             2,000 validation images the Parzen width and the memorisation \
                             reference use were training images",
                            run.display(),
                            run_config.data.validation_size
                        );
                    }
                    let own_mode = mode == run_config.generation.mode;
                    (p, Some(e), Some((mode, own_mode)))
                }
                (None, Some(file)) => (gan_run::data::read_idx_images(file)?, None, None),
                (None, None) => anyhow::bail!("name a run directory or pass --samples FILE"),
            };
            if pixels.len() < 2 * gan_run::config::IMAGE_PIXELS {
                anyhow::bail!("need at least two images to score");
            }
            let scores = evaluator.score(&pixels);
            let reference = evaluator.reference();
            let label = match (epoch, generated) {
                (Some(e), Some((mode, _))) => format!("samples (epoch {e}, {})", mode.name()),
                _ => "samples".to_string(),
            };
            print!(
                "{}",
                render_table(&[
                    (&label, &scores),
                    ("real training images", &reference.real_train),
                    ("uniform noise", &reference.uniform_noise),
                ])
            );
            println!("{}", gan_run::eval::TABLE_LEGEND);
            let c = evaluator.classifier();
            let result = serde_json::json!({
                "epoch": epoch,
                "generation": generated.map(|(mode, _)| mode.name()),
                "checkpoint": checkpoint,
                "samples_file": samples,
                "classifier": { "sha256": c.sha256, "test_accuracy": c.test_accuracy },
                "scores": scores,
                "reference": reference,
                "seconds": started.elapsed().as_secs_f64(),
            });
            if let (Some(run), Some((mode, own_mode))) = (&run, generated) {
                let path = match own_mode {
                    true => run.join("eval.json"),
                    false => run.join(format!("eval-{}.json", mode.name())),
                };
                gan_run::run_dir::atomic_write(
                    &path,
                    serde_json::to_string_pretty(&result)?.as_bytes(),
                )?;
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Bench {
            config,
            common,
            steps,
            warmup,
            json,
            no_baseline,
        } => {
            let experiment = common.load(&config)?;
            let report = gan_run::bench::run(&experiment, steps.max(1), warmup, !no_baseline)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(())
        }
        Command::TrainClassifier { config, out, force } => {
            use gan_run::classifier;
            if out.exists() && !force {
                anyhow::bail!("{} exists; pass --force to replace it", out.display());
            }
            let cfg = classifier::ClassifierConfig::load(&config)?;
            let mut trained = classifier::train(&cfg, |e| {
                println!(
                    "epoch {:>3}  loss {:.4}  validation accuracy {:.2}%  {:.1} s",
                    e.epoch,
                    e.loss,
                    100.0 * e.validation_accuracy,
                    e.seconds
                )
            })?;
            let bytes = trained.to_bytes();
            gan_run::run_dir::atomic_write(&out, &bytes)?;
            println!(
                "test accuracy {:.2}%\n{}  {}",
                100.0 * trained.test_accuracy,
                gan_run::checksum::sha256_hex(&bytes),
                out.display()
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
