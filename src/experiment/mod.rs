//! One training run: ties a config to its run directory. Prepares or resumes the directory,
//! trains epoch by epoch, and writes metrics, checkpoints, sample grids, scores and the summary.
//! What is written after each epoch is a list of [`outputs::EpochOutput`]s, one type each.
//! It sits above training, the run directory and evaluation, and is what `gan-run train` calls.

mod branch;
pub mod events;
pub mod outputs;
pub mod progress;

use std::path::{Path, PathBuf};
use std::time::Instant;

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::Experiment;
use crate::data::PackedImages;
use crate::error::{Error, Result};
use crate::run_dir::{checkpoint, RunDir, Start};
use crate::train::{
    generate, grid_noise, stuck_reason, train_epoch, EpochMetrics, GanState, PhaseTimes,
};
use outputs::{EpochContext, EpochOutput, EpochProducts};

/// How and where to run, beyond the config itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run directory (usually `runs/<name>`).
    pub run_dir: PathBuf,
    /// Replace whatever is in the run directory.
    pub force: bool,
    /// The `--set` overrides as typed, recorded in `overrides.txt`.
    pub overrides: Vec<String>,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Stop after this many epochs of this start (the run stays resumable); for tests and
    /// for interrupting deliberately.
    pub max_epochs_this_start: Option<usize>,
    /// Stop after this epoch (the run stays resumable): how a halving sweep trains a point to
    /// a rung.
    pub until_epoch: Option<usize>,
    /// A sweep point's values of the swept keys, for TensorBoard's HParams tab.
    pub hparams: Vec<(String, crate::tensorboard::HParamValue)>,
    /// A checkpoint of another run (or a run directory: its newest epoch checkpoint) that a
    /// new run starts from under this config: its weights, Adam moments, random stream, epoch
    /// and metrics, so that the branch differs from its parent only by what the config
    /// changes. Read by the run's first start only; later starts resume its own checkpoints.
    pub branch_from: Option<PathBuf>,
}

/// What `summary.json` holds, written when a run finishes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Run name.
    pub name: String,
    /// Epochs completed.
    pub epochs: usize,
    /// Whether all configured epochs are done.
    pub finished: bool,
    /// The last epoch's metrics.
    pub last: Option<EpochMetrics>,
    /// Trainable parameters of the generator.
    pub generator_params: usize,
    /// Trainable parameters of the discriminator.
    pub discriminator_params: usize,
    /// Wall time of this start, in seconds.
    pub seconds_this_start: f64,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The final sample-quality scores, when the config asks for evaluation.
    pub evaluation: Option<crate::eval::Scores>,
}

impl Summary {
    /// Reads a run directory's `summary.json`; `None` when there is none or it does not parse.
    pub fn read(run_dir: &std::path::Path) -> Option<Summary> {
        let path = run_dir.join(crate::run_dir::SUMMARY_FILE);
        let text = crate::files::read_string(&path, crate::files::RECORD).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Trains `config` into `options.run_dir`, resuming from its last checkpoint if it has one.
///
/// Everything that can be checked is checked before the run directory is created or touched:
/// the data folder is read and the evaluation set loaded first. A start that created the
/// directory and fails before its first checkpoint (a diverging first epoch, a full disk)
/// removes it again, so that the corrected config is not refused as another run's.
pub fn run(config: &Experiment, options: &RunOptions) -> Result<Summary> {
    // The folders this start will create: the run directory and any missing parents.
    let created: Vec<PathBuf> = options
        .run_dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    let result = run_in(config, options);
    if result.is_err() && !created.is_empty() {
        let dir = RunDir {
            path: options.run_dir.clone(),
        };
        // Not when another process has taken the directory meanwhile (its lock is alive).
        let taken = matches!(crate::run_dir::RunLock::holder(&dir.path), Some(Ok(_)));
        if !taken && dir.resume_checkpoint().ok().flatten().is_none() {
            if let Err(e) = std::fs::remove_dir_all(&dir.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %dir.path.display(), "could not remove what this start made: {e}");
                }
            }
            // Parents only while empty: another start may have put its run beside this one.
            for parent in &created[1..] {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    result
}

fn run_in(config: &Experiment, options: &RunOptions) -> Result<Summary> {
    let start_time = Instant::now();
    let provenance = crate::run_dir::provenance::Provenance::of_this_start();
    let fingerprint = config.training_fingerprint();
    let branch_source = branch::source(config, options)?;
    let inputs = read_inputs(config, options, &fingerprint)?;
    let (dir, start, lock) = RunDir::prepare(&options.run_dir, config, options.force)?;
    let start = branch::start(start, &dir, branch_source);
    crate::logging::attach_file(&dir.path.join(crate::run_dir::LOG_FILE))?;
    dir.record_overrides(&options.overrides)?;
    dir.record_provenance(&provenance)?;
    let provenance = provenance.to_json();
    let _span = tracing::info_span!("run").entered();
    tracing::info!(name = %config.name, seed = config.seed, run_dir = %dir.path.display(), "start");

    let dev = Cpu::seed_from_u64(config.seed);
    let mut state = GanState::new(config, &dev);
    let (g_params, d_params) = (
        state.generator.num_params(),
        state.discriminator.num_params(),
    );
    if let Some(Inputs { train, counts, .. }) = &inputs {
        tracing::info!(
            train = counts.0,
            validation = counts.1,
            packed_mb = format!("{:.1}", train.packed_bytes() as f64 / 1e6),
            generator_params = g_params,
            discriminator_params = d_params,
            "data loaded"
        );
    }
    resume(&mut state, &start, &fingerprint)?;
    if let Start::Branch(from) = &start {
        let parent = checkpoint::peek(from).map_or_else(String::new, |(_, fp)| fp);
        dir.record_branch(from, state.epoch, &parent)?;
    }
    let params = (g_params, d_params);
    let summary = |state: &GanState, evaluation| {
        summarize(config, state, (start_time, params), &dir, evaluation)
    };
    let Some(Inputs {
        train, evaluator, ..
    }) = ready_to_train(config, &dir, &start, &state, &fingerprint, inputs)
        .inspect_err(|e| progress::record_failure(&dir.path, e))?
    else {
        return Ok(summary(&state, None));
    };

    let steps = train.len() / config.training.batch_size;
    let events = match config.output.tensorboard {
        true => Some(events::RunEvents::open(
            &dir.path,
            &state.history,
            steps,
            config.output.tensorboard_every_steps,
            (state.epoch * steps + state.partial.as_ref().map_or(0, |p| p.steps_done)) as i64,
            &options.hparams,
            &config.name,
        )?),
        false => None,
    };
    let last_epoch = [
        Some(config.training.epochs),
        options.max_epochs_this_start.map(|n| state.epoch + n),
        options.until_epoch,
    ]
    .into_iter()
    .flatten()
    .min()
    .expect("the list holds the configured epochs");
    let progress_file = progress::ProgressFile::start(
        &dir.path,
        (
            state.epoch + 1,
            state.partial.as_ref().map_or(0, |p| p.steps_done),
            steps,
        ),
        last_epoch,
        last_epoch == config.training.epochs,
    );
    let mut outputs =
        outputs::epoch_outputs(evaluator, events, progress_file, (start_time, params));
    let epochs = Epochs {
        config,
        dir: &dir,
        lock: &lock,
        fingerprint: &fingerprint,
        provenance: &provenance,
        dev: &dev,
        progress: options.progress,
        steps,
        last_epoch,
    };
    // A finished run's summary.json was written before its last checkpoint (FinalSummary).
    let evaluation = epochs
        .run(&mut state, &train, &mut outputs)
        .inspect_err(|e| progress::record_failure(&dir.path, e))?;
    Ok(summary(&state, evaluation))
}

/// What a start reports of its run: `summary.json` at the run's end, `train`'s last words.
fn summarize(
    config: &Experiment,
    state: &GanState,
    (started, (generator_params, discriminator_params)): (Instant, (usize, usize)),
    dir: &RunDir,
    evaluation: Option<crate::eval::Scores>,
) -> Summary {
    Summary {
        name: config.name.clone(),
        epochs: state.epoch,
        finished: state.epoch >= config.training.epochs,
        last: state.history.last().cloned(),
        generator_params,
        discriminator_params,
        seconds_this_start: started.elapsed().as_secs_f64(),
        run_dir: dir.path.clone(),
        evaluation,
    }
}

/// What a start that will train reads before its run directory is created or touched.
struct Inputs {
    /// The training images, packed (the raw ones are dropped once packed).
    train: PackedImages,
    /// How many images the training and validation sets hold.
    counts: (usize, usize),
    /// What scores samples, when the config asks for evaluation.
    evaluator: Option<crate::eval::Evaluator>,
}

/// Reads the data (and the evaluation set) of a run that will train; `None` for a run whose
/// checkpoint says it is finished (unless `--force`), which loads none. The training images
/// are read before the checkpoint, so that the raw training file (dropped once packed) and
/// the Adam moments a checkpoint restores are never held together (BENCHMARKS.md, Memory).
fn read_inputs(
    config: &Experiment,
    options: &RunOptions,
    fingerprint: &str,
) -> Result<Option<Inputs>> {
    let existing = RunDir {
        path: options.run_dir.clone(),
    };
    let finished = !options.force
        && existing
            .resume_checkpoint()
            .ok()
            .flatten()
            .and_then(|path| checkpoint::peek(&path))
            .is_some_and(|(epoch, fp)| fp == fingerprint && epoch >= config.training.epochs);
    if finished {
        return Ok(None);
    }
    let data = crate::data::load_train(&config.data)?;
    // Only the training images are kept, packed.
    let train = PackedImages::pack(&data.train);
    let counts = (data.train.len(), data.validation.len());
    drop(data);
    let evaluator = match config.evaluation.every {
        0 => None,
        _ => Some(crate::eval::Evaluator::new(
            &config.data.dir,
            crate::classifier::Classifier::builtin()?,
        )?),
    };
    Ok(Some(Inputs {
        train,
        counts,
        evaluator,
    }))
}

/// Restores the checkpoint a resumed or branched start continues from.
fn resume(state: &mut GanState, start: &Start, fingerprint: &str) -> Result<()> {
    // A branch's checkpoint is another config's: its tensors are checked, not its fingerprint.
    let (path, expected) = match start {
        Start::Fresh => return Ok(()),
        Start::Resume(path) => (path, Some(fingerprint)),
        Start::Branch(path) => (path, None),
    };
    let bytes = crate::files::read(path, crate::files::CHECKPOINT)
        .map_err(|e| Error::io("cannot read", path, e))?;
    checkpoint::restore(state, &bytes, path, expected)?;
    if let Start::Branch(path) = start {
        return branch::check_restored(state, path);
    }
    match &state.partial {
        Some(p) => tracing::info!(
            checkpoint = %path.display(),
            epoch = p.epoch,
            steps_done = p.steps_done,
            "resuming an interrupted epoch"
        ),
        None => tracing::info!(checkpoint = %path.display(), epoch = state.epoch, "resuming"),
    }
    Ok(())
}

/// Whether a prepared run trains on: its `inputs` when it does (after rewriting `metrics.csv`
/// from the restored history), `None` when it has nothing left to do, and an error when it
/// would stop stuck again after one more epoch (a branch that changes its parent's training
/// is let through until its own first epoch) or cannot finish its interrupted epoch.
fn ready_to_train(
    config: &Experiment,
    dir: &RunDir,
    start: &Start,
    state: &GanState,
    fingerprint: &str,
    inputs: Option<Inputs>,
) -> Result<Option<Inputs>> {
    if let (true, Some(reason)) = (
        config.training.stop_when_stuck
            && state.epoch < config.training.epochs
            && !branch::changes_a_stuck_parent(dir, state, fingerprint),
        stuck_reason(&state.history),
    ) {
        // Training on would stop again after one more epoch.
        return Err(Error::Stuck {
            epoch: state.epoch,
            reason,
        });
    }
    if state.epoch >= config.training.epochs {
        tracing::info!(
            epochs = state.epoch,
            "run already finished; nothing to do (use --force to retrain)"
        );
        return Ok(None);
    }
    dir.write_metrics(&state.history)?;
    // None: another start finished the run between the check before the lock and the lock.
    let Some(inputs) = inputs else {
        return Ok(None);
    };
    if let (Start::Resume(path), Some(partial)) = (start, &state.partial) {
        if let Some(reason) =
            partial.mismatch(state.epoch, inputs.train.len(), config.training.batch_size)
        {
            return Err(Error::Checkpoint {
                path: path.clone(),
                message: format!("cannot finish its interrupted epoch: {reason}"),
            });
        }
    }
    Ok(Some(inputs))
}

/// The epoch loop of one start: trains each epoch up to `last_epoch`, then writes its outputs.
struct Epochs<'a> {
    config: &'a Experiment,
    dir: &'a RunDir,
    /// Checked before every output: a process that lost the run writes nothing more.
    lock: &'a crate::run_dir::RunLock,
    fingerprint: &'a str,
    /// This start's provenance record as JSON, for the checkpoints' metadata.
    provenance: &'a str,
    dev: &'a Cpu,
    progress: bool,
    /// Training steps per epoch.
    steps: usize,
    /// The last epoch of this start.
    last_epoch: usize,
}

impl Epochs<'_> {
    /// Trains the start's epochs, writing `outputs` after each; returns the latest scores.
    fn run(
        &self,
        state: &mut GanState,
        train: &PackedImages,
        outputs: &mut [Box<dyn EpochOutput>],
    ) -> Result<Option<crate::eval::Scores>> {
        let mut evaluation = None;
        while state.epoch < self.last_epoch {
            let epoch = state.epoch + 1;
            let _span = tracing::info_span!("epoch").entered();
            self.train(state, train, outputs, epoch)?;
            state.refresh_ema_statistics(self.config, self.dev);
            let ctx = EpochContext {
                config: self.config,
                dir: self.dir,
                fingerprint: self.fingerprint,
                provenance: self.provenance,
                dev: self.dev,
                epoch,
                start_ends: epoch == self.last_epoch, // also the run's last epoch
            };
            let products = self.write_outputs(state, outputs, &ctx)?;
            evaluation = products.scores.or(evaluation);
            self.check_stuck(&state.history, epoch)?;
        }
        Ok(evaluation)
    }

    /// Trains `epoch`, showing the steps to the progress bar and the outputs; an interrupt
    /// saves the epoch's state and ends the start with an error.
    fn train(
        &self,
        state: &mut GanState,
        train: &PackedImages,
        outputs: &mut [Box<dyn EpochOutput>],
        epoch: usize,
    ) -> Result<()> {
        let config = self.config;
        let bar = progress_bar(
            self.progress,
            self.steps as u64,
            epoch,
            config.training.epochs,
        );
        let mut times = PhaseTimes::default();
        let m = train_epoch(state, config, train, &mut times, |s| {
            bar.set_position(s.step as u64);
            for output in outputs.iter_mut() {
                output.step(epoch, &s);
            }
            std::ops::ControlFlow::Continue(())
        });
        tracing::debug!(?times, "where the epoch's time went");
        bar.finish_and_clear();
        if let (Err(Error::Interrupted { .. }), Some(partial)) = (&m, &state.partial) {
            let (epoch, steps_done) = (partial.epoch, partial.steps_done);
            self.save_interrupted(state, outputs, epoch, steps_done)?;
        }
        let m = m?;
        use crate::logging::format_small;
        tracing::info!(
            d_loss = format_small(m.d_loss),
            g_loss = format_small(m.g_loss),
            d_real = format_small(m.d_real),
            d_fake = format_small(m.d_fake),
            d_loss_end = m.d_loss_end.map(format_small),
            g_loss_end = m.g_loss_end.map(format_small),
            seconds = format!("{:.1}", m.seconds),
            "epoch {epoch}/{} done",
            config.training.epochs
        );
        Ok(())
    }

    /// Saves an interrupted epoch: its mid-epoch checkpoint and the grid of where it stopped,
    /// then tells the outputs.
    fn save_interrupted(
        &self,
        state: &mut GanState,
        outputs: &mut [Box<dyn EpochOutput>],
        epoch: usize,
        steps_done: usize,
    ) -> Result<()> {
        let config = self.config;
        let grid = config.output.sample_grid;
        // As at an epoch's end: the average draws with statistics of its own weights (the next
        // step copies the raw generator's back, so training is untouched).
        state.refresh_ema_statistics(config, self.dev);
        let images = (config.output.sample_every > 0).then(|| {
            generate(
                config,
                state.sampler(false),
                grid * grid,
                &mut grid_noise(config),
                config.generation.mode,
                self.dev,
            )
        });
        self.lock.check_held()?;
        let path = self.dir.save_interrupted(
            epoch,
            steps_done,
            images.as_deref().map(|i| (i, grid)),
            |file| checkpoint::write(state, self.fingerprint, self.provenance, file),
        )?;
        for output in outputs.iter_mut() {
            output.interrupted();
        }
        tracing::info!(
            checkpoint = %path.display(),
            "interrupted {steps_done} steps into epoch {epoch}: its state is saved, and the \
             same command resumes it where it stopped"
        );
        Ok(())
    }

    /// Writes the epoch's outputs in order and logs what they cost beside its training
    /// (issue 16 holds them to 5%).
    fn write_outputs(
        &self,
        state: &mut GanState,
        outputs: &mut [Box<dyn EpochOutput>],
        ctx: &EpochContext,
    ) -> Result<EpochProducts> {
        let started = Instant::now();
        let mut products = EpochProducts::default();
        let mut seconds = Vec::new();
        for output in outputs.iter_mut() {
            let output_started = Instant::now();
            self.lock.check_held()?;
            output.write(state, ctx, &mut products)?;
            seconds.push((output.name(), output_started.elapsed().as_secs_f64()));
        }
        let of = |names: &[&str]| -> f64 {
            seconds
                .iter()
                .filter(|(name, _)| names.contains(name))
                .map(|(_, s)| s)
                .sum()
        };
        let all = started.elapsed().as_secs_f64();
        let trained = state.history.last().map_or(0.0, |m| m.seconds);
        tracing::info!(
            seconds = format!("{all:.2}"),
            percent_of_training = format!("{:.1}", 100.0 * all / trained.max(1e-9)),
            grids = format!("{:.2}", of(&["grids"])),
            evaluation = format!("{:.2}", products.scores.as_ref().map_or(0.0, |s| s.seconds)),
            checkpoints = format!("{:.2}", of(&["checkpoint", "best checkpoint"])),
            "epoch {}'s outputs written",
            ctx.epoch
        );
        Ok(products)
    }

    /// Ends the start when the run looks stuck and the config says to stop; otherwise warns
    /// the first epoch it looks so.
    fn check_stuck(&self, history: &[EpochMetrics], epoch: usize) -> Result<()> {
        let Some(reason) = stuck_reason(history) else {
            return Ok(());
        };
        if self.config.training.stop_when_stuck {
            return Err(Error::Stuck { epoch, reason });
        }
        let was_stuck = history.len() > 1 && stuck_reason(&history[..history.len() - 1]).is_some();
        if !was_stuck {
            tracing::warn!("epoch {epoch}: the run looks stuck: {reason}");
        }
        Ok(())
    }
}

fn progress_bar(enabled: bool, steps: u64, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "epoch {msg} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("{epoch}/{epochs}"));
    bar
}
