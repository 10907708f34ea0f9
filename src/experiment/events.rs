//! A run's TensorBoard log: what `experiment::run` measures, as TensorBoard event records. The
//! x-axis is the training step (batches done since the run began), for the per-epoch records
//! and the optional per-step ones alike, so that both share one axis and a resumed start can
//! tell TensorBoard where it picked up.

use std::path::Path;

use crate::error::Result;
use crate::tensorboard::{EventFile, HParamValue};
use crate::train::{EpochMetrics, StepReport};

/// The event file of this start, and the step-level records not yet written.
pub struct RunEvents {
    file: EventFile,
    steps_per_epoch: usize,
    every_steps: usize,
    pending: Vec<(i64, [f64; 4])>,
}

/// The scalar tags of an epoch's metrics: what a sweep's HParams tab can compare points by.
pub const METRIC_TAGS: [&str; 4] = ["loss/d", "loss/g", "eval/fid", "eval/classifier_score"];

impl RunEvents {
    /// Opens a new event file in the run directory `dir` for a start `completed_steps` into
    /// the run. A run that has epochs but no event file yet (made before gan-run wrote them)
    /// gets them first, with the grids still in `samples/`; `hparams` (a sweep point's values)
    /// are recorded for TensorBoard's HParams tab.
    pub fn open(
        dir: &Path,
        history: &[EpochMetrics],
        steps_per_epoch: usize,
        every_steps: usize,
        completed_steps: i64,
        hparams: &[(String, HParamValue)],
        group: &str,
    ) -> Result<RunEvents> {
        let had_events = std::fs::read_dir(dir)
            .map(|entries| {
                entries.flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(crate::tensorboard::EVENT_FILE_PREFIX)
                })
            })
            .unwrap_or(false);
        let mut events = RunEvents {
            file: EventFile::create(dir)?,
            steps_per_epoch,
            every_steps,
            pending: Vec::new(),
        };
        if !had_events {
            for m in history {
                let grids = grids_of(dir, m.epoch);
                events.epoch(m, &grids, &[])?;
            }
        }
        events.file.start_session(completed_steps + 1)?;
        if !hparams.is_empty() {
            events.file.hparams_session(hparams, group)?;
        }
        events.file.flush()?;
        Ok(events)
    }

    /// Keeps a step's losses for the next write, every `every_steps` steps of `epoch`.
    pub fn step(&mut self, epoch: usize, report: &StepReport) {
        if self.every_steps == 0 || !report.step.is_multiple_of(self.every_steps) {
            return;
        }
        let global = ((epoch - 1) * self.steps_per_epoch + report.step) as i64;
        let g = report.g_loss.map_or(f64::NAN, |g| g as f64);
        let d = report.d;
        self.pending
            .push((global, [d.loss as f64, g, d.d_real as f64, d.d_fake as f64]));
    }

    /// Writes the step records kept so far, and flushes.
    pub fn write_steps(&mut self) -> Result<()> {
        for (step, [d, g, real, fake]) in std::mem::take(&mut self.pending) {
            let mut values = vec![
                ("step/loss_d", d),
                ("step/d_real", real),
                ("step/d_fake", fake),
            ];
            if g.is_finite() {
                values.push(("step/loss_g", g));
            }
            self.file.scalars(step, &values)?;
        }
        self.file.flush()
    }

    /// Writes an epoch's metrics and scores, the scalars of its state beside them (`extra`,
    /// `(tag, value)`: spectrally normalised layers' sigmas, scheduled settings) and its grids
    /// (`(tag, png bytes, side in pixels)`), after any step records kept, and flushes.
    pub fn epoch(
        &mut self,
        m: &EpochMetrics,
        grids: &[(String, Vec<u8>, usize)],
        extra: &[(String, f64)],
    ) -> Result<()> {
        self.write_steps()?;
        let step = (m.epoch * self.steps_per_epoch) as i64;
        let mut values = vec![
            ("epoch", m.epoch as f64),
            (METRIC_TAGS[0], m.d_loss),
            (METRIC_TAGS[1], m.g_loss),
            ("d_output/real", m.d_real),
            ("d_output/fake", m.d_fake),
            ("time/samples_per_sec", m.samples_per_sec),
        ];
        let optional = [
            ("loss_end/d", m.d_loss_end),
            ("loss_end/g", m.g_loss_end),
            (METRIC_TAGS[2], m.fid),
            (METRIC_TAGS[3], m.classifier_score),
            ("eval/modes", m.modes.map(|n| n as f64)),
            ("eval/parzen_nats", m.parzen_nats),
            ("eval/precision", m.precision),
            ("eval/recall", m.recall),
            ("eval/kid", m.kid),
            ("eval/kid_se", m.kid_se),
            ("eval/label_accuracy", m.label_accuracy),
            ("eval/label_fid", m.label_fid),
            ("eval/raw_fid", m.raw_fid),
            ("d_input_gradient/real", m.d_grad_norm_real),
            ("d_input_gradient/fake", m.d_grad_norm_fake),
            ("loss/gradient_penalty", m.penalty),
            ("loss/mode_seeking", m.mode_seeking),
        ];
        values.extend(optional.iter().filter_map(|(t, v)| v.map(|v| (*t, v))));
        values.extend(extra.iter().map(|(t, v)| (t.as_str(), *v)));
        self.file.scalars(step, &values)?;
        for (tag, png, side) in grids {
            self.file.image(step, tag, png, *side, *side)?;
        }
        self.file.flush()
    }
}

/// The grids of `epoch` in the run's `samples/` folder, as [`grid_record`]s: for runs whose
/// past epochs are logged late.
pub fn grids_of(dir: &Path, epoch: usize) -> Vec<(String, Vec<u8>, usize)> {
    use crate::config::GenerationMode;
    let modes = [
        None,
        Some(GenerationMode::AsTrained),
        Some(GenerationMode::TutorialBypass),
    ];
    modes
        .into_iter()
        .filter_map(|extra| {
            let name = crate::run_dir::sample_grid_name(epoch, extra);
            let path = dir.join(crate::run_dir::SAMPLES_DIR).join(name);
            let png = crate::files::read(&path, crate::files::IMAGE).ok()?;
            grid_record(extra, png)
        })
        .collect()
}

/// A grid as `(tag, png, side)`: tag `samples` for the config's generation mode,
/// `samples/<mode>` for another.
pub fn grid_record(
    extra: Option<crate::config::GenerationMode>,
    png: Vec<u8>,
) -> Option<(String, Vec<u8>, usize)> {
    let side = png_side(&png)?;
    let tag = match extra {
        None => "samples".to_string(),
        Some(mode) => format!("samples/{}", mode.name()),
    };
    Some((tag, png, side))
}

/// The width of a PNG, from its header (gan-run's grids are square).
fn png_side(png: &[u8]) -> Option<usize> {
    let width = png.get(16..20)?;
    Some(u32::from_be_bytes(width.try_into().ok()?) as usize)
}
