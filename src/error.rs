//! The library's error type: every failure names the file, key or step it concerns and, where
//! there is one, what to do about it.

use std::path::{Path, PathBuf};

/// Result alias used throughout gan-run.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in an experiment file a configuration problem sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The experiment file.
    pub file: PathBuf,
    /// 1-based line and column of the offending value, when it came from the file.
    pub line_col: Option<(usize, usize)>,
    /// Dotted key path, e.g. `model.generator.layers[3].rate`.
    pub key: String,
    /// The `--set` override that supplied the value, if any.
    pub from_override: Option<String>,
}

impl std::fmt::Display for ConfigLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        if let Some(o) = &self.from_override {
            write!(f, " (from `--set {o}`)")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in gan-run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file that cannot be parsed or whose values are impossible.
    #[error("{location}: {message}")]
    Config {
        /// Where the problem is.
        location: ConfigLocation,
        /// What is wrong.
        message: String,
    },

    /// A malformed `--set KEY=VALUE`.
    #[error("bad override `{text}`: {message}")]
    Override {
        /// The override as typed.
        text: String,
        /// What is wrong.
        message: String,
    },

    /// An MNIST file that is missing, truncated or does not match its checksum.
    #[error("data file {}: {message}", path.display())]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// An image file given to score (`eval --samples`) that cannot be read as IDX3 images.
    #[error("samples file {}: {message}", path.display())]
    Samples {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A checkpoint that cannot be read or does not belong to this run.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A checkpoint that a new run cannot branch from (`train --branch-from`).
    #[error("cannot branch from checkpoint {}: {message}", path.display())]
    Branch {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A classifier weights file (`--classifier`) that cannot be read or used.
    #[error("classifier weights {}: {message}", path.display())]
    ClassifierFile {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A column asked for (e.g. `compare --sort`) that the table does not have.
    #[error("no column `{column}`; the columns are: {}", columns.join(", "))]
    UnknownColumn {
        /// The column asked for.
        column: String,
        /// The columns there are.
        columns: Vec<String>,
    },

    /// A run directory that cannot be used as asked.
    #[error("run directory {}: {message}", path.display())]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// An output path gan-run will not write to.
    #[error("output {}: {message}", path.display())]
    Output {
        /// The path asked for.
        path: PathBuf,
        /// Why not.
        message: String,
    },

    /// A loss log given to `report --log NAME=FILE` that cannot be read.
    #[error("imported loss log {}: {message}", path.display())]
    ImportedLog {
        /// The file (or the argument, when it does not name one).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, step {step}: {what} is {value}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Which quantity went bad.
        what: &'static str,
        /// Its value.
        value: f32,
    },

    /// `training.stop_when_stuck` stopped a run that looks stuck.
    #[error("stopped at epoch {epoch}: the run looks stuck: {reason}")]
    Stuck {
        /// The epoch it stopped after.
        epoch: usize,
        /// Why it looks stuck.
        reason: String,
    },

    /// A signal (Ctrl-C, SIGTERM) stopped the work.
    #[error("interrupted{}", at.as_ref().map_or(String::new(), |(e, s)| format!(" at epoch {e}, step {s}")))]
    Interrupted {
        /// The epoch it stopped in and the steps of it done, when training.
        at: Option<(usize, usize)>,
    },

    /// Any other I/O failure, with the path it concerned.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. "cannot write".
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A device the config asks for that this build cannot use.
    #[error("{0}")]
    Device(String),

    /// The cluster scheduler could not be run, or refused a job (`sweep --emit slurm --submit`).
    #[error("{0}")]
    Scheduler(String),
}

impl Error {
    /// A hint for the user, printed on its own line after the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            // Lower rates make another config, which this run directory refuses to resume:
            // the way on is a new name or --force, never "resume".
            Error::Diverged { epoch: 1, .. } => Some(
                "it diverged in its first epoch, so no checkpoint was written; lower the \
                 learning rates (or change beta1) and train again with --force, or under \
                 another --name"
                    .into(),
            ),
            Error::Diverged { .. } => Some(
                "its newest checkpoint is kept, and the same config would diverge the same way \
                 again (training is deterministic); lower learning rates or another beta1 make \
                 a different run: train it under another --name, or with --force to replace \
                 this one (a branch that diverged before its first checkpoint of its own \
                 leaves no run: branch again with another config)"
                    .into(),
            ),
            Error::Output { .. } => Some(
                "name a new file, or a regular file outside the run's own files (e.g. in the \
                 current folder), with --out (--png for diff)"
                    .into(),
            ),
            Error::Stuck { .. } => Some(
                "its last checkpoint is kept; branch from it with what should unstick it \
                 (e.g. a lower D learning rate) under another `--name` (`--branch-from` the \
                 run), or set training.stop_when_stuck = false to train it on"
                    .into(),
            ),
            Error::Interrupted { at: Some(_) } => Some(
                "the state at the interrupt is saved (checkpoints/interrupted.safetensors); \
                 run the same command again to resume exactly where it stopped"
                    .into(),
            ),
            Error::Interrupted { at: None } => Some(
                "run the same command again: a sweep's points resume where they stopped".into(),
            ),
            Error::Checkpoint { .. } => Some(
                "a checkpoint can only be used by the config that wrote it: `gan-run train` \
                 starts afresh under another `--name` or with `--force`; `sample` and `eval` \
                 take another file with `--checkpoint`"
                    .into(),
            ),
            Error::Branch { .. } => Some(
                "a branch takes its parent's tensors as they are: its config may change the \
                 loss, the optimizers and their schedules, the regularisers and the epochs, not \
                 the layers, the conditioning or the moving average; name an epoch's checkpoint \
                 (checkpoints/epoch-NNNN.safetensors) or the parent's run directory"
                    .into(),
            ),
            Error::ClassifierFile { .. } => Some(
                "pass `--classifier` a file written by `gan-run train-classifier`, or leave it \
                 out to score with the built-in classifier"
                    .into(),
            ),
            Error::Samples { .. } => Some(
                "`--samples` takes an IDX3 file of 28 x 28 images (magic 2051), gzipped or raw, \
                 such as `gan-run sample` writes"
                    .into(),
            ),
            Error::Data { .. } => Some(
                "gan-run ships MNIST under data/mnist; point `data.dir` or `--data-dir` at a \
                 folder with the four original IDX files (gzipped or raw) and their SHA256SUMS"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Wraps an I/O error with the path and action it concerned.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A diverged run's hint never promises a resume that the changed config would be refused,
    /// nor a checkpoint that the first epoch never wrote.
    #[test]
    fn the_divergence_hint_tells_the_truth() {
        let diverged = |epoch| Error::Diverged {
            epoch,
            step: 3,
            what: "d_loss",
            value: f32::NAN,
        };
        let first = diverged(1).hint().unwrap();
        assert!(first.contains("no checkpoint was written"), "{first}");
        let later = diverged(7).hint().unwrap();
        assert!(later.contains("newest checkpoint is kept"), "{later}");
        for hint in [first, later] {
            assert!(
                hint.contains("--name") && hint.contains("--force") && !hint.contains("resume"),
                "{hint}"
            );
        }
    }
}
