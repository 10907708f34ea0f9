//! The run directory `runs/<name>/`: everything a run leaves behind, written atomically
//! through [`crate::files`] (an exclusive temporary, fsynced, renamed over) so that a kill at
//! any moment leaves every file whole, and never silently overwritten.
//!
//! ```text
//! runs/<name>/
//!   config.toml     the resolved config (every default filled in)
//!   overrides.txt   the --set overrides of each start, one per line
//!   provenance.jsonl   where and how each start began (version, commit, host, CPU, time)
//!   branch.json     a branch's parent checkpoint (train --branch-from only)
//!   train.log       the log
//!   metrics.csv     one row per epoch
//!   summary.json    written when the run finishes
//!   checkpoints/epoch-NNNN.safetensors
//!   checkpoints/best.safetensors    the best-scoring epoch, with [evaluation]
//!   checkpoints/interrupted.safetensors   mid-epoch, after a signal, until the epoch ends
//!   samples/epoch-NNNN.png          (and epoch-NNNN-<mode>.png for generation.extra_grids)
//!   samples/interrupted-epoch-NNNN-step-SSSS.png   where an interrupt stopped it
//! ```

pub mod checkpoint;
pub mod lock;
pub mod names;
pub mod provenance;

pub use lock::{RunLock, LEASE};
pub use names::*;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Experiment, GenerationMode, IMAGE_PIXELS};
use crate::error::{Error, Result};
use crate::files::{self, TEMPORARY_MARK};
use crate::tensorboard::EVENT_FILE_PREFIX;
use crate::train::EpochMetrics;

/// A branch's record (`branch.json`): where it started and what its parent trained.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchRecord {
    /// The parent's checkpoint it started from.
    pub checkpoint: PathBuf,
    /// The epoch it started after.
    pub epoch: usize,
    /// The parent checkpoint's training fingerprint.
    pub fingerprint: String,
}

/// An open run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
}

/// Checks a path a command was asked to write its output to: it must be new or a regular
/// file (never a folder, a link, a FIFO or a device, which a rename would replace), and not
/// one of the files a run or a sweep keeps (its config, metrics, logs, checkpoints, grids,
/// records), which a command's output must not replace.
pub fn check_output(path: &Path) -> Result<()> {
    let refuse = |message: &str| {
        Err(Error::Output {
            path: path.to_path_buf(),
            message: message.to_string(),
        })
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            return refuse("is a symbolic link; gan-run replaces files, not what links point to");
        }
        if !meta.is_file() {
            return refuse("exists and is not a regular file (a folder, a FIFO or a device)");
        }
    }
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().to_string());
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    let is_run = |dir: &Path| dir.join(CONFIG_FILE).is_file();
    let own_names = [
        CONFIG_FILE,
        OVERRIDES_FILE,
        PROVENANCE_FILE,
        LOG_FILE,
        METRICS_FILE,
        SUMMARY_FILE,
        LOCK_FILE,
        STOPPED_FILE,
        PROGRESS_FILE,
        BRANCH_FILE,
    ];
    let in_run = is_run(parent)
        && (own_names.contains(&name.as_str())
            || name.starts_with(EVENT_FILE_PREFIX)
            || is_eval_file_name(&name));
    let in_run_folder = parent
        .file_name()
        .is_some_and(|n| n == CHECKPOINTS_DIR || n == SAMPLES_DIR)
        && parent.parent().is_some_and(is_run);
    let in_sweep = parent.join(INDEX_FILE).is_file()
        && (name == INDEX_FILE || name == MULTIRUN_FILE || name.starts_with(EVENT_FILE_PREFIX));
    if in_run || in_run_folder {
        return refuse("is one of a run's own files, which gan-run's commands never replace");
    }
    if in_sweep {
        return refuse("is one of a sweep's own files, which gan-run's commands never replace");
    }
    Ok(())
}

/// Where `--force` moves the run at `path`: a sibling `<name>.replaced-<unix seconds>` (with a
/// counter if that is taken).
fn replaced_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map_or("run".into(), |n| n.to_string_lossy().to_string());
    (0..)
        .map(|i| match i {
            0 => path.with_file_name(format!("{name}.replaced-{secs}")),
            i => path.with_file_name(format!("{name}.replaced-{secs}-{i}")),
        })
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// Deletes the temporaries in a run directory (and its checkpoints and samples folders) whose
/// writing process is gone. Only in a gan-run run: one with its `config.toml`, or a half-made
/// one that holds nothing but the temporary of that first file; any other folder is left as
/// it is.
fn remove_stale_temporaries(run: &Path) -> Result<()> {
    let half_made = std::fs::read_dir(run)
        .map_err(|e| Error::io("cannot list", run, e))?
        .flatten()
        .filter(|e| e.file_name() != LOCK_FILE)
        .all(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (name.starts_with(&format!("{CONFIG_FILE}{TEMPORARY_MARK}"))
                || name.starts_with(&format!("{LOCK_FILE}{TEMPORARY_MARK}")))
                && e.path().is_file()
        });
    if !run.join(CONFIG_FILE).exists() && !half_made {
        return Ok(());
    }
    for dir in [
        run.to_path_buf(),
        run.join(CHECKPOINTS_DIR),
        run.join(SAMPLES_DIR),
    ] {
        for p in files::stale_temporaries(&dir) {
            std::fs::remove_file(&p).map_err(|e| Error::io("cannot delete", &p, e))?;
            tracing::warn!(path = %p.display(), "removed a temporary file of a process that is gone");
        }
    }
    Ok(())
}

/// What [`RunDir::prepare`] found.
#[derive(Debug)]
pub enum Start {
    /// A new, empty run.
    Fresh,
    /// A run of the same config with a checkpoint to resume from.
    Resume(PathBuf),
    /// A new run that starts from another run's epoch checkpoint (`train --branch-from`).
    Branch(PathBuf),
}

impl RunDir {
    /// Opens `path` for `config`: creates it, or continues the run of the same config that is
    /// there. A directory holding a different config, or something that is not a run, is
    /// refused, unless `force`, which moves it aside and starts afresh. (A start that fails
    /// after creating the directory is cleaned up by `experiment::run`, which knows whether
    /// anything worth keeping was written.)
    pub fn prepare(
        path: &Path,
        config: &Experiment,
        force: bool,
    ) -> Result<(RunDir, Start, RunLock)> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        // Refusals first, reading only, so that a refused start touches nothing; checked again
        // under the lock below, which decides.
        dir.refusal(config, force)?;
        files::create_dir_all(path)?;
        let mut lock = RunLock::acquire(path)?;
        // Temporaries of writers that are gone (a run killed mid-write, a start that failed at
        // its first file): ours, so removed, which also lets a half-made directory start.
        remove_stale_temporaries(path)?;
        if force && path.join(CONFIG_FILE).exists() {
            // Only a gan-run run is replaced (a folder without its config.toml is refused below,
            // --force or not), and it is moved aside in one rename, never deleted: nothing is
            // lost, and a failure leaves either the old run or the new start whole.
            let aside = replaced_path(path);
            std::fs::rename(path, &aside).map_err(|e| Error::io("cannot move aside", path, e))?;
            tracing::warn!(
                moved_to = %aside.display(),
                "--force: the existing run was moved aside (delete it when it is not needed)"
            );
            files::create_dir_all(path)?;
            let new_lock = RunLock::acquire(path)?;
            // The old lock moved with its directory: remove it there, not here.
            let _ = std::fs::remove_file(aside.join(LOCK_FILE));
            std::mem::replace(&mut lock, new_lock).forget();
        }
        dir.refusal(config, force)?;
        let start = if path.join(CONFIG_FILE).exists() {
            let previous = dir.read_config()?;
            // Keys that do not shape the weights may change between starts; generation is the
            // one whose change alters what grids and scores of the same run mean, so say so.
            if previous.generation != config.generation {
                tracing::warn!(
                    before = ?previous.generation,
                    now = ?config.generation,
                    "[generation] changed since the run's last start: grids and scores from now \
                     on are drawn the new way (the run's config.toml records the new setting)"
                );
            }
            match dir.resume_checkpoint()? {
                Some(c) => Start::Resume(c),
                None => Start::Fresh,
            }
        } else {
            Start::Fresh
        };
        // config.toml first: a start killed before it commits leaves only what a half-made
        // run may hold (the lock and the config's temporary), which the next start takes on.
        files::write_atomic(&path.join(CONFIG_FILE), config.to_toml().as_bytes())?;
        for sub in [CHECKPOINTS_DIR, SAMPLES_DIR] {
            files::create_dir_all(&path.join(sub))?;
        }
        Ok((dir, start, lock))
    }

    /// Why `config` may not start in this directory, if it may not: it holds a run of another
    /// config or of a retired setting (unless `force`, which moves it aside), or it is a
    /// folder that is not a gan-run run. Reads only.
    fn refusal(&self, config: &Experiment, force: bool) -> Result<()> {
        let path = &self.path;
        let refuse = |message: String| {
            Err(Error::RunDir {
                path: path.to_path_buf(),
                message,
            })
        };
        if path.join(CONFIG_FILE).exists() {
            if force {
                return Ok(());
            }
            let previous = self.read_config()?;
            if let Some((key, _)) = previous.retired_setting() {
                return refuse(format!(
                    "holds a run made with a retired setting ({key} = \"batch_stats_only\"), \
                     which cannot be resumed (its results can still be compared, diffed, \
                     reported and sampled); choose another name with `--name`, or pass \
                     `--force` to move it aside and start afresh"
                ));
            }
            if previous.training_fingerprint() != config.training_fingerprint() {
                let keys = previous.weight_keys_differing_from(config);
                return refuse(format!(
                    "holds a run of a different config ({} differ{}); choose another name with \
                     `--name`, or pass `--force` to move it aside and start afresh",
                    keys.join(", "),
                    if keys.len() == 1 { "s" } else { "" }
                ));
            }
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return Ok(()); // not there yet
        };
        // A lock, and temporaries of gan-run's first file (a start killed while writing it),
        // are all a half-made run holds.
        let foreign = entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name != LOCK_FILE
                && !name.starts_with(&format!("{CONFIG_FILE}{TEMPORARY_MARK}"))
                && !name.starts_with(&format!("{LOCK_FILE}{TEMPORARY_MARK}"))
        });
        if foreign {
            return refuse(format!(
                "exists and is not a gan-run run (no {CONFIG_FILE}); gan-run never deletes it, \
                 even with --force: choose another `--name` or `--runs-dir`"
            ));
        }
        Ok(())
    }

    /// The resolved config saved in the directory.
    pub fn read_config(&self) -> Result<Experiment> {
        crate::config::load_saved(&self.path.join(CONFIG_FILE))
    }

    /// Appends one line to `overrides.txt`: this start's overrides, or `(none)`.
    pub fn record_overrides(&self, overrides: &[String]) -> Result<()> {
        let p = self.path.join(OVERRIDES_FILE);
        let mut f = files::open_append(&p).map_err(|e| Error::io("cannot open", &p, e))?;
        let line = if overrides.is_empty() {
            "(none)".to_string()
        } else {
            overrides.join(" ")
        };
        writeln!(f, "{line}").map_err(|e| Error::io("cannot write", &p, e))
    }

    /// Records which checkpoint (its absolute path, epoch and config fingerprint) a branched
    /// run started from, so that its first epochs can be traced to their run.
    pub fn record_branch(&self, from: &Path, epoch: usize, fingerprint: &str) -> Result<()> {
        let from = std::fs::canonicalize(from).unwrap_or_else(|_| from.to_path_buf());
        let record = serde_json::json!({
            "checkpoint": from.display().to_string(),
            "epoch": epoch,
            "fingerprint": fingerprint,
        });
        let text = serde_json::to_string_pretty(&record).expect("json serialises") + "\n";
        files::write_atomic(&self.path.join(BRANCH_FILE), text.as_bytes())
    }

    /// What a branched run's `branch.json` records; `None` for a run that is not a branch (or
    /// whose record does not read).
    pub fn branch(&self) -> Option<BranchRecord> {
        let path = self.path.join(BRANCH_FILE);
        let text = files::read_string(&path, files::RECORD).ok()?;
        let record: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(BranchRecord {
            checkpoint: PathBuf::from(record["checkpoint"].as_str()?),
            epoch: record["epoch"].as_u64()? as usize,
            fingerprint: record["fingerprint"].as_str()?.to_string(),
        })
    }

    /// Path of the checkpoint of `epoch`.
    pub fn checkpoint_path(&self, epoch: usize) -> PathBuf {
        self.path.join(CHECKPOINTS_DIR).join(checkpoint_name(epoch))
    }

    /// The checkpoints present, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<(usize, PathBuf)>> {
        let dir = self.path.join(CHECKPOINTS_DIR);
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io("cannot list", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(epoch) = checkpoint_epoch(&name) {
                found.push((epoch, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The newest checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        Ok(self.checkpoints()?.pop().map(|(_, p)| p))
    }

    /// The checkpoint a start resumes from: the newest epoch checkpoint, or the mid-epoch one
    /// of an interrupt when it is newer (it holds at least as many completed epochs).
    pub fn resume_checkpoint(&self) -> Result<Option<PathBuf>> {
        let latest = self.checkpoints()?.pop();
        let interrupted = self.interrupted_checkpoint_path();
        let interrupted_epoch = match checkpoint::peek(&interrupted) {
            Some((epoch, _)) => Some(epoch),
            // A file there that cannot be peeked is still offered, so that `restore` says
            // what is wrong with it rather than it being silently passed over.
            None if interrupted.exists() => Some(usize::MAX),
            None => None,
        };
        Ok(match (latest, interrupted_epoch) {
            (Some((epoch, _)), Some(i)) if i >= epoch => Some(interrupted),
            (None, Some(_)) => Some(interrupted),
            (latest, _) => latest.map(|(_, p)| p),
        })
    }

    /// Path of the mid-epoch checkpoint of an interrupt.
    pub fn interrupted_checkpoint_path(&self) -> PathBuf {
        self.path.join(CHECKPOINTS_DIR).join(INTERRUPTED_CHECKPOINT)
    }

    /// Writes the mid-epoch checkpoint of an interrupt and the grid of where it stopped.
    pub fn save_interrupted(
        &self,
        epoch: usize,
        steps_done: usize,
        grid: Option<(&[f32], usize)>,
        write: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        let path = self.interrupted_checkpoint_path();
        files::write_atomic_with(&path, write)?;
        if let Some((pixels, grid)) = grid {
            self.write_grid(&interrupted_grid_name(epoch, steps_done), pixels, grid)?;
        }
        Ok(path)
    }

    /// The best-scoring checkpoint (lowest FID of the epochs scored during training).
    pub fn best_checkpoint_path(&self) -> PathBuf {
        self.path.join(CHECKPOINTS_DIR).join(BEST_CHECKPOINT)
    }

    /// Writes the best-scoring checkpoint, replacing the previous best.
    pub fn save_best_checkpoint(
        &self,
        write: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        let path = self.best_checkpoint_path();
        files::write_atomic_with(&path, write)?;
        Ok(path)
    }

    /// Writes the checkpoint of `epoch` (`write` streams it into the file it is handed) and
    /// deletes all but the newest `keep`.
    pub fn save_checkpoint(
        &self,
        epoch: usize,
        keep: usize,
        write: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        let path = self.checkpoint_path(epoch);
        files::write_atomic_with(&path, write)?;
        // An interrupt's checkpoint is superseded once an epoch after it is saved.
        let interrupted = self.interrupted_checkpoint_path();
        if interrupted.exists() {
            std::fs::remove_file(&interrupted)
                .map_err(|e| Error::io("cannot delete", &interrupted, e))?;
        }
        let all = self.checkpoints()?;
        for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
            std::fs::remove_file(old).map_err(|e| Error::io("cannot delete", old, e))?;
        }
        Ok(path)
    }

    /// Rewrites `metrics.csv` from the full history.
    pub fn write_metrics(&self, history: &[EpochMetrics]) -> Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in history {
            w.serialize(row).expect("metrics rows serialise");
        }
        let bytes = w.into_inner().expect("in-memory writer");
        files::write_atomic(&self.path.join(METRICS_FILE), &bytes)
    }

    /// Reads a run directory's `metrics.csv` (empty when there is none yet).
    pub fn read_metrics(run_dir: &Path) -> Result<Vec<EpochMetrics>> {
        let path = run_dir.join(METRICS_FILE);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let malformed = |message: String| Error::RunDir {
            path: path.clone(),
            message,
        };
        let bytes =
            files::read(&path, files::TABLE).map_err(|e| Error::io("cannot read", &path, e))?;
        let mut r = csv::Reader::from_reader(&bytes[..]);
        r.deserialize()
            .map(|row| row.map_err(|e| malformed(format!("malformed row: {e}"))))
            .collect()
    }

    /// Writes a sample grid, [`sample_grid_name`]: a `grid x grid` tiling of 28x28 images in
    /// [0, 1]. `extra` names a generation mode other than the config's own. Returns the PNG.
    pub fn write_samples(
        &self,
        epoch: usize,
        extra: Option<GenerationMode>,
        pixels: &[f32],
        grid: usize,
    ) -> Result<Vec<u8>> {
        self.write_grid(&sample_grid_name(epoch, extra), pixels, grid)
    }

    /// Writes a grid PNG named `name` into [`SAMPLES_DIR`] and returns it.
    fn write_grid(&self, name: &str, pixels: &[f32], grid: usize) -> Result<Vec<u8>> {
        let png = grid_png(pixels, grid);
        files::write_atomic(&self.path.join(SAMPLES_DIR).join(name), &png)?;
        Ok(png)
    }

    /// Writes `summary.json`.
    pub fn write_summary<T: Serialize>(&self, summary: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(summary).expect("summary serialises");
        files::write_atomic(&self.path.join(SUMMARY_FILE), text.as_bytes())
    }
}

/// A PNG of `grid x grid` MNIST images (white digits on black, 2-pixel gaps).
pub fn grid_png(pixels: &[f32], grid: usize) -> Vec<u8> {
    const PAD: usize = 2;
    let side = grid * (28 + PAD) + PAD;
    let mut img = image::GrayImage::new(side as u32, side as u32);
    let count = (pixels.len() / IMAGE_PIXELS).min(grid * grid);
    for k in 0..count {
        let (gy, gx) = (k / grid, k % grid);
        for y in 0..28 {
            for x in 0..28 {
                let v = pixels[k * IMAGE_PIXELS + y * 28 + x].clamp(0.0, 1.0);
                let (px, py) = (PAD + gx * (28 + PAD) + x, PAD + gy * (28 + PAD) + y);
                img.put_pixel(
                    px as u32,
                    py as u32,
                    image::Luma([(v * 255.0).round() as u8]),
                );
            }
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("in-memory PNG");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_png_has_the_expected_size() {
        let png = grid_png(&vec![0.5; 4 * IMAGE_PIXELS], 2);
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (62, 62));
    }
}
