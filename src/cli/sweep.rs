//! Sweeps: every point of a grid, or one point (what sweeps and job arrays run).

use std::path::PathBuf;

use clap::Args;

use super::*;

/// Run every point of a sweep file (a base config and a grid of dotted keys).
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// The sweep file, then any KEY=VALUE overrides of every point (as `--set KEY=VALUE`).
    /// With -m: an experiment file, then KEY=V1,V2,... (an axis of the grid) and KEY=VALUE
    /// (set in every point).
    #[arg(required = true, value_name = "FILE [KEY=VALUE...]")]
    pub positional: Vec<String>,
    /// A multirun: the grid is on the command line, after an experiment file; it is written
    /// into its sweep directory as `sweep.toml` and runs as any sweep does.
    #[arg(short = 'm', long)]
    pub multirun: bool,
    /// The sweep directory's name under --runs-dir (default: the sweep file's `name`; with -m,
    /// the config's and the swept keys'). A variant of a sweep (other --set values) needs one
    /// of its own, or its points meet the runs of the sweep's and are left alone as another
    /// config's.
    #[arg(long)]
    pub name: Option<String>,
    /// Points to run at once; the cores are shared between them.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// List the points without running them.
    #[arg(long)]
    pub plan: bool,
    /// Write a job-array script for a cluster scheduler instead of running (`slurm`).
    #[arg(long, value_name = "SCHEDULER")]
    pub emit: Option<String>,
    /// Override keys of every point, e.g. `--set training.epochs=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Folder that holds the sweep directory.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// With `--emit slurm`: each task's time limit (overrides `[slurm] time`).
    #[arg(long, requires = "emit")]
    pub time: Option<String>,
    /// With `--emit slurm`: each task's memory (overrides `[slurm] mem`).
    #[arg(long, requires = "emit")]
    pub mem: Option<String>,
    /// With `--emit slurm`: each task's cores (overrides `[slurm] cpus_per_task`).
    #[arg(long, requires = "emit")]
    pub cpus_per_task: Option<usize>,
    /// With `--emit slurm`: the partition (overrides `[slurm] partition`).
    #[arg(long, requires = "emit")]
    pub partition: Option<String>,
    /// With `--emit slurm`: submit the script with `sbatch` and print the job id.
    #[arg(long, requires = "emit")]
    pub submit: bool,
}

/// `gan-run sweep`: run every point of a sweep file (a base config and a grid of dotted keys).
pub fn sweep(args: SweepArgs) -> anyhow::Result<()> {
    let SweepArgs {
        positional,
        multirun,
        name,
        jobs,
        plan,
        emit,
        set,
        runs_dir,
        time,
        mem,
        cpus_per_task,
        partition,
        submit,
    } = args;
    let rest = &positional[1..];
    let (sweep, generated, set) = if multirun {
        let config = positional::resolve(&positional[..1], &[])?.files.remove(0);
        let m = crate::sweep::multirun::Multirun::new(&config, rest, name.as_deref(), &runs_dir)?;
        (m.sweep()?, Some(m), set)
    } else {
        let file = positional::resolve(&positional[..1], &[])?.files.remove(0);
        let sweep = crate::sweep::Sweep::load(&file)?;
        let sweep = match &name {
            Some(n) => sweep.renamed(n)?,
            None => sweep,
        };
        (sweep, None, positional::overrides_only(rest, &set)?)
    };
    let extra = parse_overrides(&set)?;
    for p in &sweep.points {
        let config = sweep.config_of(p, &extra)?;
        check_memory(&config, &sweep.file, None)?;
    }
    // Every point checked: a multirun's sweep file goes into its directory (not for a plan,
    // which writes nothing).
    if let (Some(m), false) = (&generated, plan) {
        m.write()?;
    }
    if plan {
        if let Some(line) = sweep.seeds_line() {
            println!("{line}");
        }
        print_plan(&sweep, &runs_dir, &extra)?;
        return Ok(());
    }
    if let Some(kind) = emit {
        anyhow::ensure!(kind == "slurm", "--emit knows `slurm` only, not `{kind}`");
        anyhow::ensure!(
            sweep.halving.is_none(),
            "{}: a sweep with [halving] decides at each rung which points go on, which a job \
             array cannot; run it with `gan-run sweep` (several points at once with --jobs)",
            sweep.file.display()
        );
        let exe = std::env::current_exe()?;
        let resources = sweep.slurm.overridden_by(crate::sweep::SlurmResources {
            time,
            mem,
            cpus_per_task,
            partition,
        });
        let script = sweep.emit_slurm(&exe, &runs_dir, &set, &resources)?;
        if !submit {
            print!("{script}");
            return Ok(());
        }
        println!("{}", crate::sweep::slurm::submit(&script)?);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let outcomes = crate::sweep::run_points(&sweep, &runs_dir, jobs.max(1), &set, &exe)?;
    report_outcomes(&outcomes, "points")
}

/// Prints the points, where each stands and, with halving, the rungs and each point's places.
fn print_plan(
    sweep: &crate::sweep::Sweep,
    runs_dir: &Path,
    extra: &[Override],
) -> anyhow::Result<()> {
    let Some(halving) = &sweep.halving else {
        for p in &sweep.points {
            use crate::sweep::PointStanding;
            let (state, detail) = match sweep.standing_of(runs_dir, p, &sweep.config_of(p, extra)?)
            {
                PointStanding::OtherConfig(differing) => (
                    "other",
                    format!(
                        "its run directory trained another config: {}",
                        differing.join(", ")
                    ),
                ),
                PointStanding::Finished => ("finished", p.overrides.join(" ")),
                PointStanding::ToRun => ("to run", p.overrides.join(" ")),
            };
            println!("{:>3}  {:<30} {:<9} {detail}", p.index, p.name, state);
        }
        return Ok(());
    };
    let configs = sweep
        .points
        .iter()
        .map(|p| sweep.config_of(p, extra))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "{}",
        halving.describe_sweep(sweep, configs[0].training.epochs)
    );
    let st =
        crate::sweep::halving::standing(sweep, halving, runs_dir, &configs, &Default::default());
    for p in &sweep.points {
        let rungs: Vec<String> = st
            .rungs
            .get(&p.index)
            .into_iter()
            .flatten()
            .map(|r| {
                let score = r.score.map_or("-".into(), |s| format!("{s:.2}"));
                let verdict = if r.kept { "kept" } else { "stopped" };
                format!(
                    "epoch {}: {score} ({}/{}, {verdict})",
                    r.epoch, r.rank, r.of
                )
            })
            .collect();
        let state = if st.stopped.contains(&p.index) {
            "stopped"
        } else if st.finished.contains(&p.index) {
            "finished"
        } else if st
            .next
            .as_ref()
            .is_some_and(|n| n.points.contains(&p.index))
        {
            "to run"
        } else {
            "reached" // its next rung, where it waits for the others
        };
        println!(
            "{:>3}  {:<30} {:<9} {}",
            p.index,
            p.name,
            state,
            if rungs.is_empty() {
                p.overrides.join(" ")
            } else {
                rungs.join("; ")
            }
        );
    }
    if let Some(next) = &st.next {
        let until = next
            .until
            .map_or("their last epoch".to_string(), |e| format!("epoch {e}"));
        let n = next.points.len();
        let points = if n == 1 {
            "point trains"
        } else {
            "points train"
        };
        println!("next: {n} {points} to {until}");
    }
    Ok(())
}

/// Run one point of a sweep (what `sweep` and job arrays call).
#[derive(Args, Debug, Clone)]
pub struct RunPointArgs {
    /// The sweep file.
    pub sweep: PathBuf,
    /// The sweep directory's name (`sweep --name`; default: the sweep file's).
    #[arg(long)]
    pub name: Option<String>,
    /// The point's index in `sweep --plan`.
    pub index: usize,
    /// Override keys, e.g. `--set training.epochs=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Folder that holds the sweep directory.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Stop after this epoch (a halving sweep's rung); running again resumes.
    #[arg(long, value_name = "EPOCH")]
    pub until_epoch: Option<usize>,
}

/// `gan-run run-point`: run one point of a sweep (what `sweep` and job arrays call).
pub fn run_point(args: RunPointArgs) -> anyhow::Result<()> {
    let RunPointArgs {
        sweep,
        name,
        index,
        set,
        runs_dir,
        until_epoch,
    } = args;
    let sweep = crate::sweep::Sweep::load(&sweep)?;
    let sweep = match &name {
        Some(n) => sweep.renamed(n)?,
        None => sweep,
    };
    let point = sweep.points.get(index).ok_or_else(|| {
        anyhow::anyhow!(
            "the sweep has {} points; there is no index {index}",
            sweep.points.len()
        )
    })?;
    let experiment = sweep.config_of(point, &parse_overrides(&set)?)?;
    let dir = sweep.dir(&runs_dir).join(&point.name);
    let trained = train_one(
        &experiment,
        &dir,
        false,
        StartRange {
            this_start: None,
            until: until_epoch,
            branch_from: None,
        },
        &[point.overrides.clone(), set.clone()].concat(),
        point
            .values
            .iter()
            .map(|(k, v)| (k.clone(), crate::tensorboard::HParamValue::from_toml(v)))
            .collect(),
    );
    // Under a scheduler no parent keeps the index: each point brings it up to date. Not in a
    // halving sweep, whose parent records rungs the disk alone does not hold.
    if sweep.halving.is_none() {
        if let Err(e) = sweep.refresh_index(&runs_dir, &set) {
            tracing::warn!(
                "could not update the sweep's {}: {e}",
                crate::run_dir::INDEX_FILE
            );
        }
    }
    trained
}
