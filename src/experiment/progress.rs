//! `progress.json`: where a training process is, for `gan-run ls` to show a running run's step
//! and time to go, and whether its last start failed. `metrics.csv` only changes once an epoch
//! ends; this file is rewritten (atomically, a few hundred bytes) at most every
//! [`WRITE_EVERY`] while the run trains, and touches nothing training computes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::outputs::{EpochContext, EpochOutput, EpochProducts};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::run_dir::PROGRESS_FILE;
use crate::train::{GanState, StepReport};

/// How often, at most, a training process rewrites its `progress.json`.
pub const WRITE_EVERY: Duration = Duration::from_secs(5);

/// What `progress.json` holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch being trained (1-based; 0 when unknown).
    pub epoch: usize,
    /// Steps of it done.
    pub step: usize,
    /// Steps in an epoch.
    pub steps: usize,
    /// The last epoch this start trains: the run's planned epochs, or where `--max-epochs` or
    /// a halving sweep's rung stops it.
    pub until_epoch: usize,
    /// Wall seconds per training step in this start so far, the epochs' outputs (grids,
    /// scores, checkpoints) included; `None` before a step is done.
    pub seconds_per_step: Option<f64>,
    /// When the file was written, in seconds since the Unix epoch.
    pub written_at: u64,
    /// Why the last start failed, when it did (not after an interrupt, which can be resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl Progress {
    /// Reads a run directory's `progress.json`: `Ok(None)` when there is none, an error
    /// naming the file when it does not parse.
    pub fn read(run: &Path) -> Result<Option<Progress>> {
        let path = run.join(PROGRESS_FILE);
        let text = match crate::files::read_string(&path, crate::files::RECORD) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::RunDir {
                path: path.clone(),
                message: format!("malformed {PROGRESS_FILE}: {e}"),
            })
    }

    /// Seconds until this start's last epoch is done, from its speed so far, counted from
    /// `now` (Unix seconds); `None` before its speed is known.
    pub fn seconds_left(&self, now: u64) -> Option<f64> {
        let per_step = self.seconds_per_step?;
        let epochs_after = self.until_epoch.saturating_sub(self.epoch);
        let steps_left = epochs_after * self.steps + self.steps.saturating_sub(self.step);
        let since = now.saturating_sub(self.written_at) as f64;
        Some((steps_left as f64 * per_step - since).max(0.0))
    }

    fn write(&self, run: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("progress serialises");
        write_atomic(&run.join(PROGRESS_FILE), text.as_bytes())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records in `run`'s `progress.json` that its start failed with `error` (an interrupt is
/// not a failure: nothing is recorded). Best effort: a failure to record it is logged.
pub fn record_failure(run: &Path, error: &Error) {
    if matches!(error, Error::Interrupted { .. }) {
        return;
    }
    let mut progress = Progress::read(run).ok().flatten().unwrap_or_default();
    progress.failed = Some(error.to_string());
    progress.written_at = unix_now();
    if let Err(e) = progress.write(run) {
        tracing::warn!("could not record the failure in {PROGRESS_FILE}: {e}");
    }
}

/// The output that keeps `progress.json`: written when training starts, then from the steps,
/// at most every [`WRITE_EVERY`].
pub struct ProgressFile {
    run: PathBuf,
    progress: Progress,
    started: Instant,
    steps_this_start: usize,
    last_written: Instant,
    warned: bool,
    /// Whether this start's last epoch is the run's last (not a `--max-epochs` or rung stop).
    finishes_run: bool,
}

impl ProgressFile {
    /// Starts the file of `run`, whose next step is `step` + 1 of `epoch`, `steps` a epoch,
    /// this start ending with `until_epoch`, the run's last epoch when `finishes_run`.
    pub fn start(
        run: &Path,
        (epoch, step, steps): (usize, usize, usize),
        until_epoch: usize,
        finishes_run: bool,
    ) -> Self {
        let mut file = ProgressFile {
            run: run.to_path_buf(),
            progress: Progress {
                epoch,
                step,
                steps,
                until_epoch,
                ..Progress::default()
            },
            started: Instant::now(),
            steps_this_start: 0,
            last_written: Instant::now(),
            warned: false,
            finishes_run,
        };
        file.write_now();
        file
    }

    fn write_now(&mut self) {
        self.progress.written_at = unix_now();
        self.last_written = Instant::now();
        if let Err(e) = self.progress.write(&self.run) {
            if !std::mem::replace(&mut self.warned, true) {
                tracing::warn!("could not update {PROGRESS_FILE} (ls shows less): {e}");
            }
        }
    }
}

impl Drop for ProgressFile {
    /// Writes the last step reached, so that the file of a start that stopped early (an
    /// interrupt, a failure) says where, not where it was up to 5 s earlier. A failure already
    /// recorded in the file is kept; so is the end of a start that `--max-epochs` or a sweep's
    /// rung stopped. A start that trained the run to its end writes nothing more: its run is
    /// complete without this file, and a kill during a write after that would leave its lock
    /// and a temporary file in a finished run.
    fn drop(&mut self) {
        let p = &self.progress;
        let completed = self.finishes_run && p.epoch == p.until_epoch && p.step == p.steps;
        if self.steps_this_start == 0 || completed {
            return;
        }
        if let Ok(Some(on_disk)) = Progress::read(&self.run) {
            self.progress.failed = on_disk.failed;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        self.progress.seconds_per_step = Some(seconds / self.steps_this_start as f64);
        self.write_now();
    }
}

impl EpochOutput for ProgressFile {
    fn name(&self) -> &'static str {
        "progress"
    }

    fn step(&mut self, epoch: usize, report: &StepReport) {
        self.steps_this_start += 1;
        self.progress.epoch = epoch;
        self.progress.step = report.step;
        if self.last_written.elapsed() >= WRITE_EVERY {
            let seconds = self.started.elapsed().as_secs_f64();
            self.progress.seconds_per_step = Some(seconds / self.steps_this_start as f64);
            self.write_now();
        }
    }

    fn write(&mut self, _: &mut GanState, _: &EpochContext, _: &mut EpochProducts) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_counts_the_steps_to_the_start_s_last_epoch() {
        let p = Progress {
            epoch: 3,
            step: 100,
            steps: 500,
            until_epoch: 5,
            seconds_per_step: Some(0.1),
            written_at: 1000,
            failed: None,
        };
        // 400 steps of epoch 3, then 2 x 500: 1400 steps at 0.1 s, 10 s of it gone.
        assert_eq!(p.seconds_left(1010), Some(130.0));
        assert_eq!(p.seconds_left(5000), Some(0.0));
        let unknown = Progress {
            seconds_per_step: None,
            ..p
        };
        assert_eq!(unknown.seconds_left(1010), None);
    }

    /// A start that stops between writes (an interrupt) leaves the file at its last step, with
    /// a failure recorded before it stopped kept.
    #[test]
    fn the_file_ends_at_the_last_step_reached() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = ProgressFile::start(dir.path(), (1, 0, 50), 2, true);
        let d = crate::train::DStep {
            loss: 1.0,
            d_real: 0.5,
            d_fake: 0.5,
            penalty: None,
        };
        for step in 1..=7 {
            let report = StepReport {
                step,
                d,
                g_loss: Some(0.7),
            };
            file.step(1, &report);
        }
        assert_eq!(
            Progress::read(dir.path()).unwrap().unwrap().step,
            0,
            "within 5 s"
        );
        record_failure(
            dir.path(),
            &Error::Stuck {
                epoch: 1,
                reason: "x".into(),
            },
        );
        drop(file);
        let p = Progress::read(dir.path()).unwrap().unwrap();
        assert_eq!((p.epoch, p.step), (1, 7));
        assert!(p.seconds_per_step.is_some() && p.failed.is_some(), "{p:?}");
    }

    /// A start stopped at its last epoch by `--max-epochs` leaves the file at that epoch's end;
    /// one that trained the run to its end leaves it alone.
    #[test]
    fn a_paused_start_records_its_end_and_a_finished_run_does_not() {
        let d = crate::train::DStep {
            loss: 1.0,
            d_real: 0.5,
            d_fake: 0.5,
            penalty: None,
        };
        for finishes_run in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut file = ProgressFile::start(dir.path(), (2, 0, 3), 2, finishes_run);
            for step in 1..=3 {
                let report = StepReport {
                    step,
                    d,
                    g_loss: None,
                };
                file.step(2, &report);
            }
            drop(file);
            let p = Progress::read(dir.path()).unwrap().unwrap();
            let expected = if finishes_run { 0 } else { 3 };
            assert_eq!(
                (p.epoch, p.step),
                (2, expected),
                "finishes_run {finishes_run}"
            );
        }
    }

    /// The file appears when training starts, a failure is recorded in it (an interrupt is
    /// not), and a damaged file is an error naming it.
    #[test]
    fn the_file_records_where_a_start_is_and_whether_it_failed() {
        let dir = tempfile::tempdir().unwrap();
        let file = ProgressFile::start(dir.path(), (2, 0, 50), 4, true);
        drop(file);
        let p = Progress::read(dir.path()).unwrap().unwrap();
        assert_eq!((p.epoch, p.step, p.steps, p.until_epoch), (2, 0, 50, 4));
        record_failure(dir.path(), &Error::Interrupted { at: None });
        assert_eq!(Progress::read(dir.path()).unwrap().unwrap().failed, None);
        let stuck = Error::Stuck {
            epoch: 2,
            reason: "both losses unmoved".into(),
        };
        record_failure(dir.path(), &stuck);
        let failed = Progress::read(dir.path()).unwrap().unwrap().failed.unwrap();
        assert!(failed.contains("stuck"), "{failed}");
        std::fs::write(dir.path().join(PROGRESS_FILE), "{").unwrap();
        let err = Progress::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(PROGRESS_FILE), "{err}");
    }
}
