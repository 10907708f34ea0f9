//! Training experiments, and checking them without training.

use std::path::PathBuf;

use clap::Args;

use super::*;

/// Train experiments into runs/<name>/, each resuming from its last checkpoint if it has one.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct TrainArgs {
    /// The experiment files, then any KEY=VALUE overrides (exactly as `--set KEY=VALUE`, for
    /// every file). Several files run one after another, and one failing in training does not
    /// stop the others; every file and override is checked before any trains.
    #[arg(required = true, value_name = "CONFIG... [KEY=VALUE]")]
    pub positional: Vec<String>,
    /// `--set` overrides and the data folder.
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Name of the run directory (default: the config's `name`).
    #[arg(long)]
    pub name: Option<String>,
    /// Folder that holds run directories.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Replace an existing run directory instead of resuming or refusing.
    #[arg(long)]
    pub force: bool,
    /// Stop after this many epochs of this start; running again resumes.
    #[arg(long, value_name = "N")]
    pub max_epochs: Option<usize>,
    /// With several configs: how many to train at once (each in its own process, with its
    /// share of the cores; output in RUNS_DIR/logs/<run>.log).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Start the run from another run's checkpoint (a file, or a run directory: its newest
    /// epoch checkpoint) under this config: its weights, Adam moments, random stream, epoch
    /// and metrics, so that the branch differs from its parent only by what this config
    /// changes (a late learning-rate decay, say). The networks must hold the same tensors.
    /// Only the run's first start reads it; a stopped branch resumes its own checkpoints.
    #[arg(long, value_name = "CHECKPOINT|RUN_DIR")]
    pub branch_from: Option<PathBuf>,
}

impl TrainArgs {
    /// The command line of the child process that trains `config` alone for `train --jobs`:
    /// these arguments with one config and no `--jobs`. Destructured whole, so that a new field
    /// fails to compile here until it is passed on (or deliberately not).
    fn child_command_line(&self, config: &Path) -> Vec<String> {
        let TrainArgs {
            positional: _, // one config, with the overrides in `set`
            common:
                ConfigArgs {
                    set,
                    data_dir,
                    memory_limit,
                },
            name: _, // refused with several configs
            runs_dir,
            force,
            max_epochs,
            jobs: _,        // the child trains one config
            branch_from: _, // refused with several configs
        } = self;
        let mut args = vec!["train".to_string(), config.display().to_string()];
        args.extend(["--runs-dir".to_string(), runs_dir.display().to_string()]);
        for o in set {
            args.extend(["--set".to_string(), o.clone()]);
        }
        if let Some(d) = data_dir {
            args.extend(["--data-dir".to_string(), d.display().to_string()]);
        }
        if let Some(gb) = memory_limit {
            args.extend(["--memory-limit".to_string(), gb.to_string()]);
        }
        if *force {
            args.push("--force".into());
        }
        if let Some(n) = max_epochs {
            args.extend(["--max-epochs".to_string(), n.to_string()]);
        }
        args
    }
}

/// `gan-run train`: train experiments, each into its run directory, resuming where it can.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    // Every positional argument resolved, and every config loaded with the overrides, before
    // anything trains: a typo fails at once, not after the first config's epochs.
    let resolved = positional::resolve(&args.positional, &args.common.set)?;
    let args = TrainArgs {
        common: ConfigArgs {
            set: resolved.set,
            ..args.common
        },
        ..args
    };
    let TrainArgs {
        common,
        name,
        runs_dir,
        force,
        max_epochs,
        jobs,
        branch_from,
        ..
    } = &args;
    let configs = &resolved.files;
    if name.is_some() && configs.len() > 1 {
        anyhow::bail!("--name names one run; it cannot be used with several configs");
    }
    if branch_from.is_some() && configs.len() > 1 {
        anyhow::bail!("--branch-from starts one run; it cannot be used with several configs");
    }
    if let Some(n) = &name {
        config::check_run_name(n).map_err(|m| anyhow::anyhow!("--name: {m}"))?;
    }
    let experiments = configs
        .iter()
        .map(|path| common.load(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if *jobs > 1 && configs.len() > 1 {
        // Two configs naming one run would share its directory and its log.
        let run_names: Vec<String> = experiments.iter().map(|e| e.name.clone()).collect();
        for (i, name) in run_names.iter().enumerate() {
            if let Some(j) = run_names[..i].iter().position(|n| n == name) {
                anyhow::bail!(
                    "{} and {} both name the run `{name}`, which would train both into one \
                     directory; rename one (`name = ...` in it), or train them one at a time",
                    configs[j].display(),
                    configs[i].display()
                );
            }
        }
        let children = configs
            .iter()
            .zip(&run_names)
            .enumerate()
            .map(|(index, (path, run))| crate::sweep::ChildJob {
                index,
                name: path.display().to_string(),
                args: args.child_command_line(path),
                log: runs_dir
                    .join(crate::run_dir::LOGS_DIR)
                    .join(crate::run_dir::child_log_name(run)),
            })
            .collect();
        let exe = std::env::current_exe()?;
        let outcomes = crate::sweep::run_children(children, *jobs, &exe, |_, _| Ok(()))?;
        return report_outcomes(&outcomes, "configs");
    }
    let mut failed = Vec::new();
    for (path, experiment) in configs.iter().zip(experiments) {
        let experiment = match name {
            Some(name) => experiment
                .renamed(name)
                .map_err(|m| anyhow::anyhow!("--name: {m}"))?,
            None => experiment,
        };
        let limits = StartRange {
            this_start: *max_epochs,
            until: None,
            branch_from: branch_from.clone(),
        };
        let dir = runs_dir.join(&experiment.name);
        if let Err(e) = train_one(&experiment, &dir, *force, limits, &common.set, Vec::new()) {
            if configs.len() == 1 || crate::interrupt::requested() {
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

/// Validate experiment files without training.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// The experiment files, then any KEY=VALUE overrides (as `--set KEY=VALUE`).
    #[arg(required = true, value_name = "CONFIG... [KEY=VALUE]")]
    pub positional: Vec<String>,
    /// `--set` overrides and the data folder.
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Print each resolved config, as it would be saved into its run directory.
    #[arg(long)]
    pub print: bool,
}

/// Each layer's output shape, one line per layer under its key path: what `check` shows so
/// that a reshape or a convolution's geometry can be read before anything is allocated.
fn layer_shapes(c: &crate::config::Experiment) -> String {
    let networks = [
        ("generator", &c.model.generator.layers, c.generator_shapes()),
        (
            "discriminator",
            &c.model.discriminator.layers,
            c.discriminator_shapes(),
        ),
    ];
    let mut out = String::new();
    for (network, layers, shapes) in networks {
        out += &format!("  model.{network}: input {}\n", shapes[0]);
        // Keys padded to the longest, so that a network of more than ten layers lines up.
        let width = format!("layers[{}]", layers.len().saturating_sub(1)).len();
        for (i, (layer, shape)) in layers.iter().zip(&shapes[1..]).enumerate() {
            let kind = toml::Value::try_from(layer)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str().map(String::from)))
                .unwrap_or_default();
            let key = format!("layers[{i}]");
            out += &format!("    {key:<width$} {kind:<18} {shape}\n");
        }
    }
    out
}

/// `gan-run check`: validate experiment files and their data folders without training.
pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let CheckArgs {
        positional,
        common,
        print,
    } = args;
    let resolved = positional::resolve(&positional, &common.set)?;
    let (configs, common) = (
        resolved.files,
        ConfigArgs {
            set: resolved.set,
            ..common
        },
    );
    let mut failed = 0;
    for path in &configs {
        let checked = common.load(path).and_then(|c| {
            // The data folder too: present, verified against its checksums, big enough, and
            // with the test set when the config scores samples.
            crate::data::load_train(&c.data)?;
            if c.evaluation.every > 0 {
                crate::data::load_test(&c.data.dir)?;
            }
            Ok(c)
        });
        match checked {
            Ok(c) => {
                if print {
                    println!("# {} (resolved)\n{}", path.display(), c.to_toml());
                }
                println!("ok: {} (run `{}`)", path.display(), c.name);
                print!("{}", layer_shapes(&c));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `train --jobs` child parses back to the parent's arguments, with its one config and
    /// no `--jobs`: no flag is dropped on the way.
    #[test]
    fn children_get_every_flag_of_the_parent() {
        let parent = [
            "gan-run",
            "train",
            "a.toml",
            "b.toml",
            "--set",
            "seed=3",
            "--set",
            "x.y=1",
            "--data-dir",
            "d",
            "--memory-limit",
            "2.5",
            "--runs-dir",
            "r",
            "--force",
            "--max-epochs",
            "2",
            "--jobs",
            "2",
        ];
        let Command::Train(parent) = Cli::try_parse_from(parent).unwrap().command else {
            panic!("parsed as another command");
        };
        let child = parent.child_command_line(Path::new("b.toml"));
        let child = std::iter::once("gan-run".to_string()).chain(child);
        let Command::Train(child) = Cli::try_parse_from(child).unwrap().command else {
            panic!("parsed as another command");
        };
        let expected = TrainArgs {
            positional: vec!["b.toml".into()],
            jobs: 1,
            ..parent
        };
        assert_eq!(child, expected);
    }
}
