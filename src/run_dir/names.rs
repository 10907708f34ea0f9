//! The names of everything gan-run writes into a run directory, a sweep directory or beside
//! them: each defined here once, as a constant or a function that makes it (and, where a name
//! is read back, the function that parses it). It exists so that no other module spells a
//! file name; they all go through `run_dir`, which re-exports these.

use crate::config::GenerationMode;

/// The resolved config.
pub const CONFIG_FILE: &str = "config.toml";
/// The overrides used, one start per line.
pub const OVERRIDES_FILE: &str = "overrides.txt";
/// Where and how each start began (`run_dir::provenance`), one JSON line per start.
pub const PROVENANCE_FILE: &str = "provenance.jsonl";
/// The log.
pub const LOG_FILE: &str = "train.log";
/// Per-epoch metrics.
pub const METRICS_FILE: &str = "metrics.csv";
/// The best-scoring checkpoint, in the checkpoints folder.
pub const BEST_CHECKPOINT: &str = "best.safetensors";
/// The mid-epoch checkpoint written when a run is interrupted, in the checkpoints folder; it
/// outranks the epoch checkpoints it is newer than, and goes when the next one is written.
pub const INTERRUPTED_CHECKPOINT: &str = "interrupted.safetensors";
/// The sweep file a multirun (`gan-run -m`) writes into its sweep directory.
pub const MULTIRUN_FILE: &str = "sweep.toml";
/// A sweep's index of its points, in the sweep directory.
pub const INDEX_FILE: &str = "index.json";
/// Why a halving sweep stopped a point, in the point's run directory.
pub const STOPPED_FILE: &str = "stopped.json";
/// Which checkpoint a branched run (`train --branch-from`) started from, written at its first
/// start.
pub const BRANCH_FILE: &str = "branch.json";
/// The end-of-run summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// Where a training process is (epoch, step, speed) and whether its last start failed,
/// rewritten every few seconds while it trains.
pub const PROGRESS_FILE: &str = "progress.json";
/// Checkpoint folder.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Sample grid folder.
pub const SAMPLES_DIR: &str = "samples";

/// The file name of a run's scores from `gan-run eval`: `eval.json` in the config's generation
/// mode, `eval-<mode>.json` in another; `-raw` for the generator without its moving average,
/// `-test-labels` for a conditional generator asked for the test set's labels.
pub fn eval_file_name(
    other_mode: Option<GenerationMode>,
    raw_generator: bool,
    test_labels: bool,
) -> String {
    let raw = if raw_generator { "-raw" } else { "" };
    let labels = if test_labels { "-test-labels" } else { "" };
    match other_mode {
        None => format!("eval{raw}{labels}.json"),
        Some(mode) => format!("eval-{}{raw}{labels}.json", mode.name()),
    }
}

/// The file name of the sample grid written where an interrupt stopped a run, `steps_done`
/// steps into `epoch`.
pub fn interrupted_grid_name(epoch: usize, steps_done: usize) -> String {
    format!("interrupted-epoch-{epoch:04}-step-{steps_done:04}.png")
}

/// The file name of a sample grid in [`SAMPLES_DIR`]: `epoch-NNNN.png` in the config's
/// generation mode, `epoch-NNNN-<mode>.png` in a further one (`generation.extra_grids`).
pub fn sample_grid_name(epoch: usize, extra: Option<GenerationMode>) -> String {
    match extra {
        None => format!("epoch-{epoch:04}.png"),
        Some(mode) => format!("epoch-{epoch:04}-{}.png", mode.name()),
    }
}

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";
/// The page `gan-run report` writes (by default into the folder of runs it reports on, or
/// the current folder).
pub const REPORT_FILE: &str = "report.html";
/// What `gan-run export` writes into a run directory by default: the generator alone...
pub const EXPORT_GENERATOR_FILE: &str = "generator.safetensors";
/// ... or, with `--both`, both networks.
pub const EXPORT_NETWORKS_FILE: &str = "networks.safetensors";
/// The event file of a sweep's HParams experiment, in the sweep directory; its fixed time
/// stamp sorts it before any point's records.
pub const HPARAMS_EVENT_FILE: &str = "events.out.tfevents.0000000000.gan-run.hparams";
/// The folder of the child processes' logs: in a sweep directory (one per point, and Slurm's
/// per task), and in the runs folder for `train --jobs`.
pub const LOGS_DIR: &str = "logs";

/// Slurm's log of each array task, in a sweep's [`LOGS_DIR`]: by job and task (`%A_%a`), so
/// that a resubmission loses none.
pub const SLURM_TASK_LOG: &str = "%A_%a.log";

/// The log file, in [`LOGS_DIR`], of the child process named `name`.
pub fn child_log_name(name: &str) -> String {
    format!("{name}.log")
}

/// The file name of the loss curves `gan-run report --charts DIR` draws of the run labelled
/// `run`, in that folder.
pub fn curves_chart_name(run: &str) -> String {
    format!("curves-{run}.png")
}

/// The epoch of a sample grid in the config's own generation mode, from its file name
/// ([`sample_grid_name`] with no extra mode); `None` for any other name.
pub fn sample_grid_epoch(name: &str) -> Option<usize> {
    name.strip_prefix("epoch-")?
        .strip_suffix(".png")?
        .parse()
        .ok()
}

/// The file name of the checkpoint of `epoch` in [`CHECKPOINTS_DIR`].
pub fn checkpoint_name(epoch: usize) -> String {
    format!("epoch-{epoch:04}.safetensors")
}

/// The epoch of an epoch checkpoint, from its file name ([`checkpoint_name`]); `None` for any
/// other name (the best and interrupted checkpoints, temporaries).
pub fn checkpoint_epoch(name: &str) -> Option<usize> {
    name.strip_prefix("epoch-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

/// Whether `name` is a run's scores from `gan-run eval` ([`eval_file_name`]).
pub fn is_eval_file_name(name: &str) -> bool {
    name.starts_with("eval") && name.ends_with(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_they_were_written() {
        assert_eq!(sample_grid_epoch(&sample_grid_name(12, None)), Some(12));
        let extra = sample_grid_name(12, Some(GenerationMode::AsTrained));
        assert_eq!(sample_grid_epoch(&extra), None);
        assert_eq!(checkpoint_epoch(&checkpoint_name(7)), Some(7));
        assert_eq!(checkpoint_epoch(BEST_CHECKPOINT), None);
        assert_eq!(checkpoint_epoch(INTERRUPTED_CHECKPOINT), None);
        assert!(is_eval_file_name(&eval_file_name(None, false, false)));
        assert!(is_eval_file_name(&eval_file_name(
            Some(GenerationMode::AsTrained),
            true,
            true
        )));
        assert_eq!(eval_file_name(None, true, false), "eval-raw.json");
        assert_eq!(eval_file_name(None, false, true), "eval-test-labels.json");
    }
}
