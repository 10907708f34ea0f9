//! `gan-run ls`: one row per run under a folder, saying where each stands: its state, epochs
//! done, and for a running run the step of the epoch in progress and the time to go (from its
//! `progress.json`, or from its metrics rows when an older gan-run trains it), its last
//! losses, its best FID (as `compare` reads scores, `eval.json` included) and its age.

use std::path::Path;

use super::{best_fid, latest_scores, run_state, Cell, Comparison, RunRecord, RunState};
use super::{StateKind, Style};
use crate::experiment::progress::unix_now;

/// The columns of `ls`.
pub const LISTING_COLUMNS: [&str; 12] = [
    "run", "state", "epoch", "step", "eta", "d_loss", "g_loss", "best_fid", "prec", "recall",
    "kid", "age",
];

/// The column `ls --sort` means by `name`: a column, or one of the names people use for one
/// (`name` for `run`, `fid` for `best_fid`, `precision` for `prec`).
pub fn listing_column(name: &str) -> &str {
    match name {
        "name" => "run",
        "fid" => "best_fid",
        "precision" => "prec",
        other => other,
    }
}

/// One row per run in `runs` whose state is among `states` (all when empty), named by its
/// path below `root`: state, epochs done of planned, the running step and time to go, last
/// losses, best FID so far (and its epoch), the latest scores' precision, recall and KID,
/// and the time since it last wrote metrics; where any run listed is class-conditional, also
/// its latest label accuracy (`label_acc`, before `age`).
pub fn listing(root: &Path, runs: &[RunRecord], states: &[StateKind]) -> Comparison {
    let mut columns = LISTING_COLUMNS.map(String::from).to_vec();
    let conditional = runs.iter().any(|r| r.config.draws_digits_by_label());
    if conditional {
        columns.insert(columns.len() - 1, "label_acc".to_string());
    }
    let now = unix_now();
    let rows = runs
        .iter()
        .map(|r| (r, run_state(r)))
        .filter(|(_, state)| states.is_empty() || states.contains(&state.kind()))
        .map(|(r, state)| {
            let name = r.dir.strip_prefix(root).unwrap_or(&r.dir);
            let last = r.metrics.last();
            let done = last.map_or(0, |m| m.epoch);
            let latest = latest_scores(r);
            let (step, eta) = match state {
                RunState::Running => running(r, done, now),
                // Where it stopped within its next epoch, to resume from there.
                RunState::Interrupted | RunState::Failed(_) => (step_in(r, done), Cell::Missing),
                _ => (Cell::Missing, Cell::Missing),
            };
            let score = |v: Option<f64>, style| Cell::number(v, style);
            let mut row = vec![
                Cell::Text(name.display().to_string()),
                Cell::Text(state.to_string()),
                Cell::Number(done as f64, Style::OutOf(r.config.training.epochs)),
                step,
                eta,
                Cell::number(last.map(|m| m.d_loss), Style::Small),
                Cell::number(last.map(|m| m.g_loss), Style::Small),
                best_fid(r).map_or(Cell::Missing, |(f, e)| Cell::Number(f, Style::FidAt(e))),
                score(latest.as_ref().and_then(|s| s.precision), Style::Fixed(3)),
                score(latest.as_ref().and_then(|s| s.recall), Style::Fixed(3)),
                score(latest.as_ref().and_then(|s| s.kid), Style::Small),
                Cell::number(metrics_age(r), Style::Duration),
            ];
            if conditional {
                let accuracy = latest.as_ref().and_then(|s| s.label_accuracy);
                row.insert(row.len() - 1, score(accuracy, Style::Fixed(3)));
            }
            row
        })
        .collect();
    Comparison { columns, rows }
}

/// Seconds since the run last wrote `metrics.csv`.
fn metrics_age(r: &RunRecord) -> Option<f64> {
    let modified = std::fs::metadata(r.dir.join(crate::run_dir::METRICS_FILE))
        .and_then(|m| m.modified())
        .ok()?;
    Some(modified.elapsed().ok()?.as_secs_f64())
}

/// The step `progress.json` records within the epoch after the `done` ones, if it is about
/// that epoch.
fn step_in(r: &RunRecord, done: usize) -> Cell {
    r.progress
        .as_ref()
        .filter(|p| p.epoch == done + 1 && p.step > 0)
        .map_or(Cell::Missing, |p| {
            Cell::Number(p.step as f64, Style::OutOf(p.steps))
        })
}

/// A running run's step in the epoch in progress and its time to go. The step is from
/// `progress.json` when that is about the epoch after the `done` ones (in a run whose epochs
/// take less than its few seconds between writes, `metrics.csv` is often newer, and the step
/// unknown). The time to go is to the epoch the start stops after, at the speed
/// `progress.json` records, else (a run trained by a gan-run that writes none) at the mean
/// length of its last epochs.
fn running(r: &RunRecord, done: usize, now: u64) -> (Cell, Cell) {
    let planned = r.config.training.epochs;
    // Rewritten when a start begins: about this start, if not always about this epoch.
    let progress = r.progress.as_ref();
    let current = progress.filter(|p| p.epoch == done + 1);
    let step = current.map_or(Cell::Missing, |p| {
        Cell::Number(p.step as f64, Style::OutOf(p.steps))
    });
    let until = progress.map_or(planned, |p| p.until_epoch);
    let style = Style::DurationTo((until < planned).then_some(until));
    if let Some(left) = current.and_then(|p| p.seconds_left(now)) {
        return (step, Cell::Number(left, style));
    }
    let recent: Vec<f64> = r.metrics.iter().rev().take(5).map(|m| m.seconds).collect();
    let per_epoch = match progress.and_then(|p| Some((p.seconds_per_step?, p.steps))) {
        Some((per_step, steps)) => per_step * steps as f64,
        None if recent.is_empty() => return (step, Cell::Missing),
        None => recent.iter().sum::<f64>() / recent.len() as f64,
    };
    let since = metrics_age(r).unwrap_or(0.0);
    let left = until.saturating_sub(done) as f64 * per_epoch - since;
    (step, Cell::Number(left.max(0.0), style))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::progress::Progress;
    use crate::train::EpochMetrics;

    fn run(dir: &Path, epochs: &[usize], progress: Option<Progress>) -> RunRecord {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let config = crate::config::load(&path, &["training.epochs=10".parse().unwrap()]);
        let row = |epoch| EpochMetrics {
            epoch,
            d_loss: 1.0,
            g_loss: 0.7,
            d_real: 0.5,
            d_fake: 0.5,
            seconds: 10.0,
            samples_per_sec: 1.0,
            ..Default::default()
        };
        RunRecord {
            dir: dir.to_path_buf(),
            config: config.unwrap(),
            metrics: epochs.iter().map(|&e| row(e)).collect(),
            eval: None,
            progress,
        }
    }

    fn cell(table: &Comparison, row: usize, column: &str) -> String {
        table.rows[row][table.column(column).unwrap()].show()
    }

    /// A running run (this process holds its lock) shows the step of its epoch in progress
    /// and the time to the epoch its start stops after; `--state` picks runs by state.
    #[test]
    fn a_running_run_shows_its_step_and_time_to_go() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a");
        std::fs::create_dir(&dir).unwrap();
        let _lock = crate::run_dir::RunLock::acquire(&dir).unwrap();
        let progress = Progress {
            epoch: 3,
            step: 10,
            steps: 40,
            until_epoch: 5,
            seconds_per_step: Some(0.5),
            written_at: unix_now(),
            failed: None,
        };
        let runs = [run(&dir, &[1, 2], Some(progress.clone()))];
        let table = listing(root.path(), &runs, &[]);
        assert_eq!(cell(&table, 0, "state"), "running");
        assert_eq!(cell(&table, 0, "epoch"), "2/10");
        assert_eq!(cell(&table, 0, "step"), "10/40");
        // 30 + 2 x 40 steps at 0.5 s: 55 s, to epoch 5 of 10.
        let eta = cell(&table, 0, "eta");
        assert!(eta == "55s@5" || eta == "54s@5", "{eta}");
        assert!(listing(root.path(), &runs, &[StateKind::Finished])
            .rows
            .is_empty());
        assert_eq!(
            listing(root.path(), &runs, &[StateKind::Running])
                .rows
                .len(),
            1
        );

        // Its metrics newer than its progress: no step, the time from its speed.
        let behind = [run(&dir, &[1, 2, 3], Some(progress))];
        let table = listing(root.path(), &behind, &[]);
        assert_eq!(cell(&table, 0, "step"), "-");
        assert_eq!(cell(&table, 0, "eta"), "40s@5");
    }

    /// A run that is not running is `interrupted` (resumable), `failed` when its last start
    /// recorded a failure, `waiting@EPOCH` at the epoch its start was asked to stop at,
    /// `finished` when done.
    #[test]
    fn states_read_as_one_word_each() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a");
        std::fs::create_dir(&dir).unwrap();
        let failed = Progress {
            failed: Some("training diverged at epoch 2, step 3: d_loss is NaN".into()),
            ..Progress::default()
        };
        let runs = [
            run(&dir, &[1, 2], None),
            run(&dir, &[1], Some(failed)),
            run(&dir, &(1..=10).collect::<Vec<_>>(), None),
        ];
        let table = listing(root.path(), &runs, &[]);
        let states: Vec<String> = (0..3).map(|i| cell(&table, i, "state")).collect();
        assert_eq!(states, ["interrupted", "failed", "finished"]);
        assert_eq!(cell(&table, 0, "eta"), "-");
        // An interrupted run shows the step it stopped at in the epoch it will resume.
        let stopped = Progress {
            epoch: 3,
            step: 12,
            steps: 40,
            ..Progress::default()
        };
        let table = listing(root.path(), &[run(&dir, &[1, 2], Some(stopped))], &[]);
        assert_eq!(cell(&table, 0, "state"), "interrupted");
        assert_eq!(cell(&table, 0, "step"), "12/40");
        // A start that trained to the epoch it was asked to stop at (a halving rung) waits.
        let at_rung = Progress {
            epoch: 2,
            step: 37,
            steps: 40,
            until_epoch: 2,
            ..Progress::default()
        };
        let waiting = [run(&dir, &[1, 2], Some(at_rung))];
        let table = listing(root.path(), &waiting, &[]);
        assert_eq!(cell(&table, 0, "state"), "waiting@2");
        assert_eq!(cell(&table, 0, "step"), "-");
        assert_eq!(
            listing(root.path(), &waiting, &[StateKind::Waiting])
                .rows
                .len(),
            1
        );
        let failed_only = listing(root.path(), &runs, &[StateKind::Failed]);
        assert_eq!(failed_only.rows.len(), 1);
    }
}
