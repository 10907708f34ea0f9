//! `train --branch-from`: a new run that starts from another run's epoch checkpoint under a
//! config of its own, so that a late change (a learning-rate decay, say) is tried from the
//! parent's state instead of retraining every epoch before it. Everything about the source is
//! checked before the run directory is touched; once the branch has a checkpoint of its own it
//! resumes like any run.

use std::path::{Path, PathBuf};

use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::run_dir::{checkpoint, RunDir, Start};
use crate::train::GanState;

use super::RunOptions;

/// The checkpoint `--branch-from` names (a run directory: its newest epoch checkpoint),
/// canonical, once it reads as a gan-run checkpoint, lies outside the run directory it would
/// start, and leaves epochs to train. A run directory that already holds checkpoints of its
/// own takes the flag only as the branch it was made by (a branch started again).
pub(super) fn source(config: &Experiment, options: &RunOptions) -> Result<Option<PathBuf>> {
    let Some(from) = &options.branch_from else {
        return Ok(None);
    };
    let bad = |path: &Path, message: String| Error::Branch {
        path: path.to_path_buf(),
        message,
    };
    let path = match from.is_dir() {
        true => RunDir { path: from.clone() }
            .latest_checkpoint()?
            .ok_or_else(|| {
                bad(
                    from,
                    "is a folder without epoch checkpoints (checkpoints/epoch-NNNN.safetensors)"
                        .into(),
                )
            })?,
        false => from.clone(),
    };
    let Some((epoch, _)) = checkpoint::peek(&path) else {
        return Err(bad(
            &path,
            "cannot be read as a gan-run checkpoint (missing, damaged or another kind of file)"
                .into(),
        ));
    };
    let path = std::fs::canonicalize(&path).map_err(|e| Error::io("cannot resolve", &path, e))?;
    if let Ok(run_dir) = std::fs::canonicalize(&options.run_dir) {
        if path.starts_with(&run_dir) {
            return Err(bad(
                &path,
                format!(
                    "lies inside the run directory the branch would start ({}); name the branch \
                     with --name",
                    run_dir.display()
                ),
            ));
        }
    }
    if epoch >= config.training.epochs {
        return Err(bad(
            &path,
            format!(
                "ends epoch {epoch}, and training.epochs = {} leaves the branch nothing to \
                 train; raise training.epochs",
                config.training.epochs
            ),
        ));
    }
    let existing = RunDir {
        path: options.run_dir.clone(),
    };
    let has_own = existing.resume_checkpoint().ok().flatten().is_some();
    if has_own && !options.force && existing.branch().map(|b| b.checkpoint).as_ref() != Some(&path)
    {
        return Err(Error::RunDir {
            path: options.run_dir.clone(),
            message: "already holds a run with checkpoints of its own, not a branch from \
                      that checkpoint; name the branch with --name, or drop --branch-from to \
                      resume this run"
                .into(),
        });
    }
    Ok(Some(path))
}

/// How a prepared run starts: a fresh one from `source` when given; a fresh one made by a
/// branch that stopped before its first checkpoint from the checkpoint its `branch.json`
/// records (so that running the same command without the flag cannot start it from scratch);
/// a run with checkpoints of its own from them.
pub(super) fn start(start: Start, dir: &RunDir, source: Option<PathBuf>) -> Start {
    match (start, source) {
        (Start::Fresh, Some(source)) => Start::Branch(source),
        (Start::Fresh, None) => match dir.branch().map(|b| b.checkpoint) {
            Some(recorded) => {
                tracing::info!(checkpoint = %recorded.display(), "a branch stopped before its first checkpoint: branching again from its parent's");
                Start::Branch(recorded)
            }
            None => Start::Fresh,
        },
        (start, _) => start,
    }
}

/// Checks a branch's restored starting state (every tensor of its networks from the parent's
/// checkpoint, which held no others): it must be an epoch's end.
pub(super) fn check_restored(state: &GanState, path: &Path) -> Result<()> {
    if let Some(p) = &state.partial {
        return Err(Error::Branch {
            path: path.to_path_buf(),
            message: format!(
                "it was written in the middle of epoch {} (an interrupt's checkpoint), and a \
                 branch starts at an epoch's end",
                p.epoch
            ),
        });
    }
    tracing::info!(checkpoint = %path.display(), epoch = state.epoch, "branching: this run starts from that checkpoint's state under its own config");
    Ok(())
}

/// Whether a run's history, if it looks stuck, is its parent's alone and the run trains
/// otherwise: a branch that has not finished an epoch of its own (starting, or resuming an
/// interrupted first epoch) under a training fingerprint other than its parent's. Such a
/// branch is made to change what its parent did, so the parent's stuck history is no reason
/// to refuse it; its own epochs are checked after each as any run's. A branch that changes
/// nothing the fingerprint covers would stop stuck again, and is refused as a resume is.
pub(super) fn changes_a_stuck_parent(dir: &RunDir, state: &GanState, fingerprint: &str) -> bool {
    dir.branch()
        .is_some_and(|b| b.epoch == state.epoch && b.fingerprint != fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parent's stuck history lets a branch through only until its own first epoch ends,
    /// and only where its training differs from the parent's.
    #[test]
    fn only_a_branch_that_changes_its_parent_passes_the_parents_stuck_history() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = crate::config::load(&root.join("configs/smoke.toml"), &[]).unwrap();
        let mut state = GanState::new(&config, &dfdx::prelude::Cpu::default());
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir {
            path: tmp.path().to_path_buf(),
        };
        state.epoch = 3;
        assert!(
            !changes_a_stuck_parent(&dir, &state, "mine"),
            "not a branch"
        );
        let parent = tmp.path().join("parent.safetensors");
        dir.record_branch(&parent, 3, "parents").unwrap();
        // Starting, or resuming its interrupted first epoch: the epoch is the parent's.
        assert!(changes_a_stuck_parent(&dir, &state, "mine"));
        assert!(
            !changes_a_stuck_parent(&dir, &state, "parents"),
            "trains as the parent"
        );
        state.epoch = 4;
        assert!(
            !changes_a_stuck_parent(&dir, &state, "mine"),
            "its own epoch is checked"
        );
    }
}
