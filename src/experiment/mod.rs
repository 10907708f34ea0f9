//! One training run: ties a config to its run directory. Prepares or resumes the directory,
//! trains epoch by epoch, and writes metrics, checkpoints, sample grids, scores and the summary.
//! It sits above training, the run directory and evaluation, and is what `gan-run train` calls.

pub mod events;

use std::path::{Path, PathBuf};
use std::time::Instant;

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::Experiment;
use crate::data::PackedImages;
use crate::error::{Error, Result};
use crate::run_dir::{checkpoint, RunDir, Start};
use crate::train::{
    generate, grid_noise, stuck_reason, train_epoch, EpochMetrics, GanState, PhaseTimes,
};

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
        let text = std::fs::read_to_string(run_dir.join(crate::run_dir::SUMMARY_FILE)).ok()?;
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
    let fingerprint = config.training_fingerprint();
    // A run that will train reads its data (and evaluation set) before anything is created,
    // and its training images before the checkpoint, so that the raw training file (dropped
    // once packed) and the Adam moments a checkpoint restores are never held together
    // (BENCHMARKS.md, Memory). A finished run loads none.
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
    let (train, mut evaluator) = match finished {
        true => (None, None),
        false => {
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
            (Some((train, counts)), evaluator)
        }
    };
    let (dir, start, _lock) = RunDir::prepare(&options.run_dir, config, options.force)?;
    crate::logging::attach_file(&dir.path.join(crate::run_dir::LOG_FILE))?;
    dir.record_overrides(&options.overrides)?;
    let _span = tracing::info_span!("run").entered();
    tracing::info!(name = %config.name, seed = config.seed, run_dir = %dir.path.display(), "start");

    let dev = Cpu::seed_from_u64(config.seed);
    let mut state = GanState::new(config, &dev);
    let (g_params, d_params) = (
        state.generator.num_params(),
        state.discriminator.num_params(),
    );
    if let Some((train, (n_train, n_validation))) = &train {
        tracing::info!(
            train = n_train,
            validation = n_validation,
            packed_mb = format!("{:.1}", train.packed_bytes() as f64 / 1e6),
            generator_params = g_params,
            discriminator_params = d_params,
            "data loaded"
        );
    }
    if let Start::Resume(path) = &start {
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        checkpoint::restore(&mut state, &bytes, path, &fingerprint)?;
        match &state.partial {
            Some(p) => tracing::info!(
                checkpoint = %path.display(),
                epoch = p.epoch,
                steps_done = p.steps_done,
                "resuming an interrupted epoch"
            ),
            None => tracing::info!(checkpoint = %path.display(), epoch = state.epoch, "resuming"),
        }
    }
    let mut evaluation: Option<crate::eval::Scores> = None;
    let summary = |state: &GanState, evaluation: &Option<crate::eval::Scores>| Summary {
        name: config.name.clone(),
        epochs: state.epoch,
        finished: state.epoch >= config.training.epochs,
        last: state.history.last().cloned(),
        generator_params: g_params,
        discriminator_params: d_params,
        seconds_this_start: start_time.elapsed().as_secs_f64(),
        run_dir: dir.path.clone(),
        evaluation: evaluation.clone(),
    };
    if let (true, Some(reason)) = (
        config.training.stop_when_stuck && state.epoch < config.training.epochs,
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
        return Ok(summary(&state, &evaluation));
    }
    dir.write_metrics(&state.history)?;
    let train = match train {
        Some((train, _)) => train,
        // Another start finished the run between the check above and the lock.
        None => return Ok(summary(&state, &evaluation)),
    };
    if let (Start::Resume(path), Some(partial)) = (&start, &state.partial) {
        if let Some(reason) = partial.mismatch(state.epoch, train.len(), config.training.batch_size)
        {
            return Err(Error::Checkpoint {
                path: path.clone(),
                message: format!("cannot finish its interrupted epoch: {reason}"),
            });
        }
    }

    let grid = config.output.sample_grid;
    let steps = train.len() / config.training.batch_size;
    let mut events = match config.output.tensorboard {
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
    while state.epoch < last_epoch {
        let epoch = state.epoch + 1;
        let _span = tracing::info_span!("epoch").entered();
        let bar = progress_bar(
            options.progress,
            steps as u64,
            epoch,
            config.training.epochs,
        );
        let mut times = PhaseTimes::default();
        let m = train_epoch(&mut state, config, &train, &mut times, |s| {
            bar.set_position(s.step as u64);
            if let Some(events) = events.as_mut() {
                events.step(epoch, &s);
            }
            std::ops::ControlFlow::Continue(())
        });
        tracing::debug!(?times, "where the epoch's time went");
        bar.finish_and_clear();
        if let (Err(Error::Interrupted { .. }), Some(partial)) = (&m, &state.partial) {
            let (epoch, steps_done) = (partial.epoch, partial.steps_done);
            let images = (config.output.sample_every > 0).then(|| {
                generate(
                    config,
                    &mut state.generator,
                    grid * grid,
                    &mut grid_noise(config),
                    config.generation.mode,
                    &dev,
                )
            });
            let path = dir.save_interrupted(
                epoch,
                steps_done,
                images.as_deref().map(|i| (i, grid)),
                |path| checkpoint::write(&mut state, &fingerprint, path),
            )?;
            // After the checkpoint: a failing log write must not cost the saved state.
            if let Some(Err(e)) = events.as_mut().map(|e| e.write_steps()) {
                tracing::warn!("could not log the interrupted epoch's steps to TensorBoard: {e}");
            }
            tracing::info!(
                checkpoint = %path.display(),
                "interrupted {steps_done} steps into epoch {epoch}: its state is saved, and the \
                 same command resumes it where it stopped"
            );
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
        // What the epoch's outputs cost beside its training (issue 16 holds them to 5%).
        let outputs_start = Instant::now();
        let mut output_times = OutputTimes::default();
        let sample_every = config.output.sample_every;
        // Grids at the cadence, after the first epoch (so that a new run shows a picture within
        // minutes), and at the last epoch of every start, so that a start stopped early
        // (--max-epochs) also leaves a picture of where it got to.
        let start_ends = epoch == last_epoch; // also the run's last epoch
        let mut grids = Vec::new();
        if sample_every > 0 && (epoch.is_multiple_of(sample_every) || epoch == 1 || start_ends) {
            let modes = std::iter::once((config.generation.mode, None))
                .chain(config.generation.extra_grids.iter().map(|&m| (m, Some(m))));
            for (mode, extra) in modes {
                let n = grid * grid;
                let images = generate(
                    config,
                    &mut state.generator,
                    n,
                    &mut grid_noise(config),
                    mode,
                    &dev,
                );
                let png = dir.write_samples(epoch, extra, &images, grid)?;
                let path = dir
                    .path
                    .join(crate::run_dir::SAMPLES_DIR)
                    .join(crate::run_dir::sample_grid_name(epoch, extra));
                tracing::info!(path = %path.display(), mode = mode.name(), "sample grid written");
                grids.extend(events::grid_record(extra, png));
            }
        }
        output_times.grids = outputs_start.elapsed().as_secs_f64();
        let every = config.evaluation.every;
        if let Some(evaluator) = &mut evaluator {
            // Also at the end of every start, so that a start stopped early (a sweep's rung,
            // --max-epochs) is scored where it stopped.
            if epoch.is_multiple_of(every) || start_ends {
                // Noise seed 0, as `gan-run eval` uses: the same figures either way.
                let n = config.evaluation.samples;
                let images = generate(
                    config,
                    &mut state.generator,
                    n,
                    &mut ChaCha8Rng::seed_from_u64(0),
                    config.generation.mode,
                    &dev,
                );
                let scores = evaluator.score(&images);
                output_times.evaluation = scores.seconds;
                tracing::info!(
                    fid = format!("{:.2}", scores.fid),
                    classifier_score = format!("{:.2}", scores.classifier_score),
                    modes = scores.coverage.modes,
                    parzen = format!("{:.1}", scores.parzen.test.mean),
                    seconds = format!("{:.1}", scores.seconds),
                    "epoch {epoch} scored"
                );
                let m = state.history.last_mut().expect("an epoch was just trained");
                m.fid = Some(scores.fid);
                m.classifier_score = Some(scores.classifier_score);
                m.modes = Some(scores.coverage.modes);
                m.parzen_nats = Some(scores.parzen.test.mean);
                evaluation = Some(scores);
            }
        }
        let stuck = stuck_reason(&state.history);
        let stop_stuck = config.training.stop_when_stuck && stuck.is_some();
        let checkpoint_start = Instant::now();
        if epoch.is_multiple_of(config.output.checkpoint_every) || start_ends || stop_stuck {
            dir.save_checkpoint(epoch, config.output.keep_checkpoints, |path| {
                checkpoint::write(&mut state, &fingerprint, path)
            })?;
        }
        // The best-scoring checkpoint is kept besides the newest ones, whatever their count.
        if let Some((fid, earlier)) = state
            .history
            .split_last()
            .and_then(|(m, earlier)| m.fid.filter(|f| f.is_finite()).map(|fid| (fid, earlier)))
        {
            let best_before = earlier
                .iter()
                .filter_map(|m| m.fid)
                .filter(|f| f.is_finite())
                .fold(f64::INFINITY, f64::min);
            if fid < best_before {
                dir.save_best_checkpoint(|path| checkpoint::write(&mut state, &fingerprint, path))?;
                tracing::info!(
                    epoch,
                    fid = format!("{fid:.2}"),
                    "best checkpoint so far kept"
                );
            }
        }
        output_times.checkpoints = checkpoint_start.elapsed().as_secs_f64();
        if let Some(events) = events.as_mut() {
            let m = state.history.last().expect("an epoch was just trained");
            events.epoch(m, &grids)?;
        }
        let was_stuck = state.history.len() > 1
            && stuck_reason(&state.history[..state.history.len() - 1]).is_some();
        dir.write_metrics(&state.history)?;
        let outputs = outputs_start.elapsed().as_secs_f64();
        let trained = state.history.last().map_or(0.0, |m| m.seconds);
        tracing::info!(
            seconds = format!("{outputs:.2}"),
            percent_of_training = format!("{:.1}", 100.0 * outputs / trained.max(1e-9)),
            grids = format!("{:.2}", output_times.grids),
            evaluation = format!("{:.2}", output_times.evaluation),
            checkpoints = format!("{:.2}", output_times.checkpoints),
            "epoch {epoch}'s outputs written"
        );
        if let Some(reason) = stuck {
            if stop_stuck {
                return Err(Error::Stuck { epoch, reason });
            }
            if !was_stuck {
                tracing::warn!("epoch {epoch}: the run looks stuck: {reason}");
            }
        }
    }
    let s = summary(&state, &evaluation);
    if s.finished {
        dir.write_summary(&s)?;
    }
    Ok(s)
}

/// Seconds spent on each of an epoch's outputs; metrics and TensorBoard make up the rest.
#[derive(Default)]
struct OutputTimes {
    grids: f64,
    evaluation: f64,
    checkpoints: f64,
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
