//! What a run writes after each epoch, one small type per output: the sample grids, the
//! scores, the epoch checkpoint, the best checkpoint, the TensorBoard records and the metrics
//! row. It exists so that the epoch loop in `experiment` is a loop over a list, and so that
//! each output can be read, tested and added alone (ARCHITECTURE.md, "Adding a per-epoch
//! output").
//!
//! Outputs run in the list's order after every epoch ([`epoch_outputs`]); what one hands to
//! those after it (the grids' PNGs, the epoch's scores) goes through [`EpochProducts`].
//!
//! The epoch checkpoint comes last: it is the epoch's commit. A crash before it resumes
//! from the checkpoint before and trains the epoch again, rewriting every output the same
//! way; a crash after it finds every output of the epoch (and, at the run's end, its summary)
//! already written. (Written before it, a crash between the checkpoint and the metrics row
//! left a run that called itself finished without its last row or summary.)

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::Experiment;
use crate::error::Result;
use crate::logging::format_small;
use crate::run_dir::{checkpoint, RunDir};
use crate::train::{generate, grid_noise, stuck_reason, EpochMetrics, GanState, StepReport};

use super::events::{self, RunEvents};

/// A sample grid as TensorBoard takes it: `(tag, png bytes, side in pixels)`.
pub type GridRecord = (String, Vec<u8>, usize);

/// What every output of one epoch is given: the run and which epoch it is.
pub struct EpochContext<'a> {
    /// The run's config.
    pub config: &'a Experiment,
    /// The run directory.
    pub dir: &'a RunDir,
    /// The config's training fingerprint, recorded in checkpoints.
    pub fingerprint: &'a str,
    /// This start's provenance record as JSON, recorded in checkpoints.
    pub provenance: &'a str,
    /// The device the generator runs on.
    pub dev: &'a Cpu,
    /// The epoch just trained (1-based).
    pub epoch: usize,
    /// Whether it is the last epoch of this start (and so perhaps of the run).
    pub start_ends: bool,
}

/// What an epoch's outputs hand on to the outputs after them.
#[derive(Default)]
pub struct EpochProducts {
    /// The grids written, for TensorBoard.
    pub grids: Vec<GridRecord>,
    /// The epoch's scores, when it was scored.
    pub scores: Option<crate::eval::Scores>,
}

/// One thing written after every epoch.
pub trait EpochOutput: Send {
    /// Its name in the log line that times the epoch's outputs.
    fn name(&self) -> &'static str;

    /// Sees each training step as it happens (nothing by default).
    fn step(&mut self, _epoch: usize, _report: &StepReport) {}

    /// Told that an interrupt stopped the epoch and its state is saved (nothing by default).
    fn interrupted(&mut self) {}

    /// Writes the output of the epoch in `ctx`, if it is due. `state.history` ends with the
    /// epoch's metrics.
    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        products: &mut EpochProducts,
    ) -> Result<()>;
}

/// The outputs of a run, in the order they are written: grids, scores (with an evaluator),
/// the best checkpoint, TensorBoard (with `events`), the metrics row, `progress.json` (also
/// written from the steps), the summary (at the run's last epoch), and last the epoch
/// checkpoint, which commits them.
pub fn epoch_outputs(
    evaluator: Option<crate::eval::Evaluator>,
    events: Option<RunEvents>,
    progress: super::progress::ProgressFile,
    start: (std::time::Instant, (usize, usize)),
) -> Vec<Box<dyn EpochOutput>> {
    let mut outputs: Vec<Box<dyn EpochOutput>> = vec![Box::new(Grids)];
    if let Some(evaluator) = evaluator {
        outputs.push(Box::new(Scores { evaluator }));
    }
    outputs.push(Box::new(BestCheckpoint));
    if let Some(events) = events {
        outputs.push(Box::new(TensorBoard { events }));
    }
    outputs.push(Box::new(MetricsRow));
    outputs.push(Box::new(progress));
    outputs.push(Box::new(FinalSummary {
        start,
        latest_scores: None,
    }));
    outputs.push(Box::new(Checkpoint));
    outputs
}

/// The sample grids: one per generation mode (the config's, then `generation.extra_grids`).
pub struct Grids;

impl Grids {
    /// Whether grids are due: at the cadence, after the first epoch (so that a new run shows a
    /// picture within minutes), and at the last epoch of every start, so that a start stopped
    /// early (--max-epochs) also leaves a picture of where it got to.
    pub fn due(every: usize, epoch: usize, start_ends: bool) -> bool {
        every > 0 && (epoch.is_multiple_of(every) || epoch == 1 || start_ends)
    }
}

impl EpochOutput for Grids {
    fn name(&self) -> &'static str {
        "grids"
    }

    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        products: &mut EpochProducts,
    ) -> Result<()> {
        let (config, epoch) = (ctx.config, ctx.epoch);
        if !Grids::due(config.output.sample_every, epoch, ctx.start_ends) {
            return Ok(());
        }
        let grid = config.output.sample_grid;
        let modes = std::iter::once((config.generation.mode, None))
            .chain(config.generation.extra_grids.iter().map(|&m| (m, Some(m))));
        for (mode, extra) in modes {
            let images = generate(
                config,
                state.sampler(false),
                grid * grid,
                &mut grid_noise(config),
                mode,
                ctx.dev,
            );
            let png = ctx.dir.write_samples(epoch, extra, &images, grid)?;
            let path = (ctx.dir.path)
                .join(crate::run_dir::SAMPLES_DIR)
                .join(crate::run_dir::sample_grid_name(epoch, extra));
            tracing::info!(path = %path.display(), mode = mode.name(), "sample grid written");
            products.grids.extend(events::grid_record(extra, png));
        }
        Ok(())
    }
}

/// The sample-quality scores, every `evaluation.every` epochs and at the end of every start
/// (so that a start stopped early, a sweep's rung or --max-epochs, is scored where it
/// stopped); they go into the epoch's metrics row.
pub struct Scores {
    /// What scores the samples.
    pub evaluator: crate::eval::Evaluator,
}

impl EpochOutput for Scores {
    fn name(&self) -> &'static str {
        "scores"
    }

    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        products: &mut EpochProducts,
    ) -> Result<()> {
        let (config, epoch) = (ctx.config, ctx.epoch);
        if !(epoch.is_multiple_of(config.evaluation.every) || ctx.start_ends) {
            return Ok(());
        }
        // Noise seed 0, as `gan-run eval` uses: the same figures either way.
        let draw = |state: &mut GanState, raw: bool| {
            let n = config.evaluation.samples;
            let noise = &mut ChaCha8Rng::seed_from_u64(0);
            generate(
                config,
                state.sampler(raw),
                n,
                noise,
                config.generation.mode,
                ctx.dev,
            )
        };
        let images = draw(state, false);
        let labels = crate::eval::generation_labels(config, config.evaluation.samples);
        let scores = self.evaluator.score_labelled(&images, labels.as_deref());
        // The moving average is what draws; the raw generator's FID beside it shows what the
        // average buys (same noise).
        let raw_fid = state
            .ema
            .is_some()
            .then(|| self.evaluator.fid(&draw(state, true)));
        let pr = scores.precision_recall.as_ref();
        let missing = || "-".to_string();
        tracing::info!(
            fid = format!("{:.2}", scores.fid),
            classifier_score = format!("{:.2}", scores.classifier_score),
            modes = scores.coverage.modes,
            parzen = format!("{:.1}", scores.parzen.test.mean),
            precision = pr.map_or_else(missing, |p| format!("{:.3}", p.precision)),
            recall = pr.map_or_else(missing, |p| format!("{:.3}", p.recall)),
            kid = scores.kid.map_or_else(missing, |k| {
                format!("{} +/- {}", format_small(k.mean), format_small(k.se))
            }),
            label_accuracy = scores
                .label_accuracy
                .map_or_else(missing, |a| format!("{a:.3}")),
            label_fid = scores
                .mean_label_fid()
                .map_or_else(missing, |f| format!("{f:.2}")),
            raw_fid = raw_fid.map_or_else(missing, |f| format!("{f:.2}")),
            seconds = format!("{:.1}", scores.seconds),
            "epoch {epoch} scored"
        );
        let row = state.history.last_mut().expect("an epoch was just trained");
        record_scores(row, &scores);
        row.raw_fid = raw_fid;
        products.scores = Some(scores);
        Ok(())
    }
}

/// Puts an epoch's scores into its metrics row.
pub fn record_scores(m: &mut EpochMetrics, scores: &crate::eval::Scores) {
    m.fid = Some(scores.fid);
    m.classifier_score = Some(scores.classifier_score);
    m.modes = Some(scores.coverage.modes);
    m.parzen_nats = Some(scores.parzen.test.mean);
    m.precision = scores.precision_recall.map(|p| p.precision);
    m.recall = scores.precision_recall.map(|p| p.recall);
    m.kid = scores.kid.map(|k| k.mean);
    m.kid_se = scores.kid.map(|k| k.se);
    m.label_accuracy = scores.label_accuracy;
    m.label_fid = scores.mean_label_fid();
}

/// The epoch checkpoint, every `output.checkpoint_every` epochs, at the end of every start,
/// and when a stuck run is about to stop; only the newest `output.keep_checkpoints` stay.
pub struct Checkpoint;

impl Checkpoint {
    /// Whether the checkpoint of `epoch` is due.
    pub fn due(config: &Experiment, history: &[EpochMetrics], epoch: usize, ends: bool) -> bool {
        let stop_stuck = config.training.stop_when_stuck && stuck_reason(history).is_some();
        epoch.is_multiple_of(config.output.checkpoint_every) || ends || stop_stuck
    }
}

impl EpochOutput for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        _products: &mut EpochProducts,
    ) -> Result<()> {
        if Checkpoint::due(ctx.config, &state.history, ctx.epoch, ctx.start_ends) {
            let keep = ctx.config.output.keep_checkpoints;
            ctx.dir.save_checkpoint(ctx.epoch, keep, |file| {
                checkpoint::write(state, ctx.fingerprint, ctx.provenance, file)
            })?;
        }
        Ok(())
    }
}

/// The best-scoring checkpoint (lowest finite FID so far), kept besides the newest ones,
/// whatever their count.
pub struct BestCheckpoint;

impl BestCheckpoint {
    /// The last epoch's FID, when it is finite and lower than every earlier finite one.
    pub fn new_best(history: &[EpochMetrics]) -> Option<f64> {
        let (last, earlier) = history.split_last()?;
        let fid = last.fid.filter(|f| f.is_finite())?;
        let best_before = earlier
            .iter()
            .filter_map(|m| m.fid)
            .filter(|f| f.is_finite())
            .fold(f64::INFINITY, f64::min);
        (fid < best_before).then_some(fid)
    }
}

impl EpochOutput for BestCheckpoint {
    fn name(&self) -> &'static str {
        "best checkpoint"
    }

    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        _products: &mut EpochProducts,
    ) -> Result<()> {
        if let Some(fid) = BestCheckpoint::new_best(&state.history) {
            ctx.dir.save_best_checkpoint(|file| {
                checkpoint::write(state, ctx.fingerprint, ctx.provenance, file)
            })?;
            tracing::info!(
                epoch = ctx.epoch,
                fid = format!("{fid:.2}"),
                "best checkpoint so far kept"
            );
        }
        Ok(())
    }
}

/// The TensorBoard records: the steps' losses as they come, the epoch's metrics and grids.
pub struct TensorBoard {
    /// This start's event file.
    pub events: RunEvents,
}

impl EpochOutput for TensorBoard {
    fn name(&self) -> &'static str {
        "tensorboard"
    }

    fn step(&mut self, epoch: usize, report: &StepReport) {
        self.events.step(epoch, report);
    }

    fn interrupted(&mut self) {
        // After the checkpoint: a failing log write must not cost the saved state.
        if let Err(e) = self.events.write_steps() {
            tracing::warn!("could not log the interrupted epoch's steps to TensorBoard: {e}");
        }
    }

    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        products: &mut EpochProducts,
    ) -> Result<()> {
        let m = state.history.last().expect("an epoch was just trained");
        // From the weights and vectors the epoch's checkpoint holds.
        let mut sigmas = state.generator.spectral_sigmas();
        sigmas.extend(state.discriminator.spectral_sigmas());
        let mut extra: Vec<(String, f64)> = sigmas
            .into_iter()
            .map(|(name, sigma)| (format!("sigma/{name}"), sigma))
            .collect();
        extra.extend(schedule_scalars(ctx.config, ctx.epoch));
        self.events.epoch(m, &products.grids, &extra)
    }
}

/// What the schedule set in the 1-based `epoch`, for TensorBoard: each network's learning
/// rate (a decay moves it) and, with instance noise, its standard deviation (0 once it has
/// ended).
fn schedule_scalars(config: &Experiment, epoch: usize) -> Vec<(String, f64)> {
    let optimizers = &config.optimizer;
    let mut values = vec![
        (
            "schedule/lr_generator".to_string(),
            optimizers.generator.lr_in(epoch),
        ),
        (
            "schedule/lr_discriminator".to_string(),
            optimizers.discriminator.lr_in(epoch),
        ),
    ];
    let noise = config.instance_noise.std_in(epoch);
    if config.instance_noise.std > 0.0 {
        values.push(("schedule/instance_noise_std".to_string(), noise as f64));
    }
    values
}

/// `metrics.csv`, rewritten from the whole history (with the epoch's scores).
pub struct MetricsRow;

impl EpochOutput for MetricsRow {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        _products: &mut EpochProducts,
    ) -> Result<()> {
        ctx.dir.write_metrics(&state.history)
    }
}

/// `summary.json`, written at the run's last epoch, before the checkpoint that finishes it:
/// with the start's latest scores, as `gan-run train` reports them.
pub struct FinalSummary {
    /// When this start began, and the networks' trainable parameters (generator,
    /// discriminator).
    pub start: (std::time::Instant, (usize, usize)),
    /// The newest scores of this start.
    pub latest_scores: Option<crate::eval::Scores>,
}

impl EpochOutput for FinalSummary {
    fn name(&self) -> &'static str {
        "summary"
    }

    fn write(
        &mut self,
        state: &mut GanState,
        ctx: &EpochContext,
        products: &mut EpochProducts,
    ) -> Result<()> {
        if let Some(scores) = &products.scores {
            self.latest_scores = Some(scores.clone());
        }
        if ctx.epoch < ctx.config.training.epochs {
            return Ok(());
        }
        let summary = super::summarize(
            ctx.config,
            state,
            self.start,
            ctx.dir,
            self.latest_scores.clone(),
        );
        ctx.dir.write_summary(&summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(fid: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch: 1,
            d_loss: 0.5,
            g_loss: 0.7,
            d_real: 0.6,
            d_fake: 0.4,
            seconds: 1.0,
            samples_per_sec: 100.0,
            fid,
            ..Default::default()
        }
    }

    /// The learning rates as each epoch trains at them (a decay on D's only here), and
    /// instance noise's std only where the config has instance noise.
    #[test]
    fn schedule_scalars_follow_the_decay_and_the_noise() {
        let path = std::path::Path::new("configs/smoke.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let read = |overrides: &[&str]| {
            let overrides: Vec<crate::config::Override> =
                overrides.iter().map(|o| o.parse().unwrap()).collect();
            crate::config::from_str(&text, path, &overrides).unwrap()
        };
        let plain = read(&[]);
        let tags: Vec<String> = schedule_scalars(&plain, 1)
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(tags, ["schedule/lr_generator", "schedule/lr_discriminator"]);
        let c = read(&[
            "optimizer.discriminator.lr_decay={start_epoch = 2, epochs = 2}",
            "instance_noise={std = 0.2, epochs = 2}",
        ]);
        for epoch in 1..=4 {
            let values = schedule_scalars(&c, epoch);
            let lr = c.optimizer.discriminator.lr_in(epoch);
            assert_eq!(values[0].1, c.optimizer.generator.lr);
            assert_eq!(values[1].1, lr);
            assert_eq!(values[2].0, "schedule/instance_noise_std");
            assert_eq!(values[2].1, c.instance_noise.std_in(epoch) as f64);
        }
        assert!(schedule_scalars(&c, 3)[1].1 < c.optimizer.discriminator.lr);
        assert!(schedule_scalars(&c, 1)[2].1 > 0.0 && schedule_scalars(&c, 3)[2].1 == 0.0);
    }

    #[test]
    fn a_best_checkpoint_needs_a_finite_fid_below_every_earlier_one() {
        assert_eq!(BestCheckpoint::new_best(&[]), None);
        assert_eq!(BestCheckpoint::new_best(&[epoch(Some(9.0))]), Some(9.0));
        let h = [epoch(Some(9.0)), epoch(None), epoch(Some(f64::NAN))];
        assert_eq!(BestCheckpoint::new_best(&h), None);
        let h = [epoch(Some(f64::NAN)), epoch(Some(9.0)), epoch(Some(8.5))];
        assert_eq!(BestCheckpoint::new_best(&h), Some(8.5));
        let h = [epoch(Some(8.5)), epoch(None), epoch(Some(8.5))];
        assert_eq!(BestCheckpoint::new_best(&h), None);
    }

    /// A scored epoch's row gets every measure, precision, recall and KID included.
    #[test]
    fn scores_fill_the_epoch_s_row() {
        let reference = crate::eval::Reference::builtin().expect("the stored reference rows");
        for scores in [&reference.real_train, &reference.uniform_noise] {
            let mut m = epoch(None);
            record_scores(&mut m, scores);
            let (pr, kid) = (scores.precision_recall.unwrap(), scores.kid.unwrap());
            assert_eq!(m.fid, Some(scores.fid));
            assert_eq!(m.modes, Some(scores.coverage.modes));
            assert_eq!(
                (m.precision, m.recall),
                (Some(pr.precision), Some(pr.recall))
            );
            assert_eq!((m.kid, m.kid_se), (Some(kid.mean), Some(kid.se)));
            assert!((0.0..=1.0).contains(&pr.precision) && (0.0..=1.0).contains(&pr.recall));
        }
        // Scores without them (fewer than four images) leave the cells empty.
        let mut old = reference.real_train.clone();
        (old.precision_recall, old.kid) = (None, None);
        let mut m = epoch(None);
        m.precision = Some(0.5);
        record_scores(&mut m, &old);
        assert_eq!(
            (m.precision, m.recall, m.kid, m.kid_se),
            (None, None, None, None)
        );
    }

    #[test]
    fn grids_come_at_the_cadence_the_first_epoch_and_a_start_s_end() {
        let due: Vec<usize> = (1..=12).filter(|&e| Grids::due(5, e, e == 12)).collect();
        assert_eq!(due, [1, 5, 10, 12]);
        assert!(!Grids::due(0, 1, true), "sample_every = 0 writes no grids");
    }

    /// The metrics row alone, in a bare directory: it writes `metrics.csv` with every epoch
    /// of the history, the scores included.
    #[test]
    fn the_metrics_row_writes_the_whole_history() {
        let root = tempfile::tempdir().unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let config = crate::config::load(&path, &[]).unwrap();
        let dev = Cpu::seed_from_u64(0);
        let mut state = GanState::new(&config, &dev);
        state.history = vec![epoch(None), epoch(Some(7.25))];
        state.history[1].epoch = 2;
        (state.history[1].precision, state.history[1].recall) = (Some(0.75), Some(0.5));
        (state.history[1].kid, state.history[1].kid_se) = (Some(1.5e-4), Some(2e-5));
        let dir = RunDir {
            path: root.path().to_path_buf(),
        };
        let ctx = EpochContext {
            config: &config,
            dir: &dir,
            fingerprint: "",
            provenance: "",
            dev: &dev,
            epoch: 2,
            start_ends: false,
        };
        MetricsRow
            .write(&mut state, &ctx, &mut EpochProducts::default())
            .unwrap();
        let rows = RunDir::read_metrics(root.path()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].epoch, rows[1].fid), (2, Some(7.25)));
        assert_eq!(rows, state.history);
    }
}
