//! The training loop: one epoch of alternating discriminator and generator steps on the fast
//! path, and the generator drawing images outside training. It computes and returns metrics and
//! writes nothing: the run directory is another module's job.

use std::ops::ControlFlow;
use std::time::Instant;

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::state::{
    generation_input_values, generator_input, loss_probe_noise, DStep, EpochMetrics, GanState,
    GenerationLabels, PartialEpoch, PhaseTimes,
};
use super::step::{EndOfEpoch, PlainGan};
use crate::config::{BatchNormMode, Experiment, GenerationMode, LayerSpec, IMAGE_PIXELS};
use crate::data::PackedImages;
use crate::error::{Error, Result};
use crate::model::kernels::on_worker;
use crate::model::{Mode, Network};

/// `n` images from `generator` outside its own update, drawn as `mode` says: one per noise row,
/// rows taken in order from `rng`; `[n, 784]` row-major, in the generator's output range.
///
/// They are generated in batches of `training.batch_size` (the last one filled up with further
/// noise rows, then cut), because batch-norm in mode `batch` normalises each batch by its own
/// statistics: this is how the generator ran in training.
pub fn generate(
    config: &Experiment,
    generator: &mut Network,
    n: usize,
    rng: &mut ChaCha8Rng,
    mode: GenerationMode,
    dev: &Cpu,
) -> Vec<f32> {
    let draw = Draw {
        n,
        mode,
        labels: GenerationLabels::Balanced,
    };
    generate_recording_inputs(config, generator, &draw, rng, dev, None)
}

/// What to draw outside training.
#[derive(Debug, Clone)]
pub struct Draw {
    /// How many images.
    pub n: usize,
    /// How the generator runs.
    pub mode: GenerationMode,
    /// Which labels a class-conditional generator is asked for (ignored without conditioning).
    pub labels: GenerationLabels,
}

/// G's inputs behind drawn images, whole batches: what another implementation needs to
/// reproduce them.
#[derive(Debug, Clone, Default)]
pub struct DrawnInputs {
    /// The noise rows, `[rows, noise.dim]` row-major.
    pub noise: Vec<f32>,
    /// Each row's label (none without conditioning).
    pub labels: Vec<u8>,
}

/// [`generate`] as `draw` says, also appending every input G was given to `record` (whole
/// batches: with a [`kept_class`], the balanced batches the images were kept from).
pub fn generate_recording_inputs(
    config: &Experiment,
    generator: &mut Network,
    draw: &Draw,
    rng: &mut ChaCha8Rng,
    dev: &Cpu,
    mut record: Option<&mut DrawnInputs>,
) -> Vec<f32> {
    let batch = config.training.batch_size;
    let wanted = draw.n * IMAGE_PIXELS;
    let width = config.input_widths().0;
    let keep = draw.kept_class(config);
    let labels_asked = match keep {
        Some(_) => &GenerationLabels::Balanced,
        None => &draw.labels,
    };
    let mut pixels = Vec::with_capacity(wanted);
    let mut first = 0;
    while pixels.len() < wanted {
        let (z, labels) = generation_input_values(config, batch, first, labels_asked, rng);
        first += batch;
        if let Some(record) = record.as_mut() {
            record.noise.extend_from_slice(&z);
            record.labels.extend_from_slice(&labels);
        }
        let z = dev.tensor_from_vec(generator_input(config, z, &labels), (batch, width));
        let images = match draw.mode {
            GenerationMode::AsTrained => generator.forward(z, Mode::Eval),
            GenerationMode::TutorialBypass => generator.forward(z, Mode::BypassBatchNorm),
        }
        .as_vec();
        for (row, image) in images.chunks_exact(IMAGE_PIXELS).enumerate() {
            if pixels.len() < wanted && keep.is_none_or(|k| labels[row] == k) {
                pixels.extend_from_slice(image);
            }
        }
    }
    pixels
}

impl Draw {
    /// See [`kept_class`].
    pub fn kept_class(&self, config: &Experiment) -> Option<u8> {
        kept_class(config, self.mode, &self.labels)
    }
}

/// The one class asked for, where it is drawn from balanced batches and kept: a G whose
/// batch-norm normalises each generation batch by its own statistics (mode `batch`, as
/// trained) never saw a batch of one label in training, where batches mix the classes, and in
/// such a batch a label's shift through a linear layer straight into batch-norm cancels out
/// (the mean takes it away), so G would ignore the label. So such a draw runs balanced
/// batches, as training's, and keeps that class's images.
pub fn kept_class(
    config: &Experiment,
    mode: GenerationMode,
    labels: &GenerationLabels,
) -> Option<u8> {
    let &GenerationLabels::Only(class) = labels else {
        return None;
    };
    config.conditioning.as_ref()?; // an unconditional G has no labels to keep by
    let batch_statistics =
        config.model.generator.layers.iter().any(
            |layer| matches!(layer, LayerSpec::BatchNorm(bn) if bn.mode == BatchNormMode::Batch),
        );
    (batch_statistics && mode == GenerationMode::AsTrained).then_some(class)
}

/// What one training step (a batch) measured.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// The 1-based step within the epoch.
    pub step: usize,
    /// The D step's loss and outputs.
    pub d: DStep,
    /// The G step's loss, when the step had one.
    pub g_loss: Option<f32>,
}

/// Trains one epoch: a reshuffle, then per batch one D step, and one G step after every
/// `d_steps_per_g_step` D steps. `on_step` is called after each batch with what it measured
/// (for progress bars and step-level logs); when it breaks, the epoch stops there as at an
/// interrupt.
///
/// An epoch that was interrupted (`state.partial`, from a checkpoint, which must fit `train`:
/// [`PartialEpoch::mismatch`]) is finished from where it stopped, on its own data order. When a stop is requested ([`crate::interrupt`], or by
/// `on_step`), the
/// epoch stops between two steps with `Error::Interrupted`, the state whole and its
/// `partial` set, ready for a checkpoint.
pub fn train_epoch(
    state: &mut GanState,
    config: &Experiment,
    train: &PackedImages,
    times: &mut PhaseTimes,
    mut on_step: impl FnMut(StepReport) -> ControlFlow<()> + Send,
) -> Result<EpochMetrics> {
    let start = Instant::now();
    let epoch = state.epoch + 1;
    let batch = config.training.batch_size;
    let batches = train.len() / batch;
    let mut progress = progress_so_far(state, train.len(), batch);
    let (first_step, seconds_before) = (progress.steps_done, progress.seconds);
    // The hot loop runs on plain buffers; the networks and optimizers go back into `state`
    // at the end (or on divergence, so the state stays whole).
    let mut plain = PlainGan::check_out(state);
    plain.begin_epoch(config, epoch);
    let rng = &mut state.rng;
    let steps = || -> Result<()> {
        let mut stop = false;
        for step in first_step..batches {
            if stop || crate::interrupt::requested() {
                return Err(Error::Interrupted {
                    at: Some((epoch, step)),
                });
            }
            let phase = Instant::now();
            let rows = &progress.order[step * batch..(step + 1) * batch];
            let (pixels, labels) = batch_of(train, rows);
            times.data += phase.elapsed();

            let d = plain.d_step(rng, config, pixels, &labels, times);
            check_finite(d.loss, "the discriminator loss", epoch, step)?;
            progress.add_d_step(&d);
            let mut g_loss = None;
            if (step + 1).is_multiple_of(config.training.d_steps_per_g_step) {
                let g = plain.g_step(rng, config, batch, times);
                check_finite(g.loss, "the generator loss", epoch, step)?;
                progress.add_g_step(&g);
                g_loss = Some(g.loss);
            }
            progress.steps_done = step + 1;
            stop = on_step(StepReport {
                step: step + 1,
                d,
                g_loss,
            })
            .is_break();
        }
        Ok(())
    };
    let finished = on_worker(steps);
    let end = match finished.is_ok() && batches > 0 {
        true => Some(end_of_epoch(
            &mut plain,
            config,
            train,
            &progress.order[(batches - 1) * batch..batches * batch],
            epoch,
        )),
        false => None,
    };
    plain.check_in(state);
    progress.seconds = seconds_before + start.elapsed().as_secs_f64();
    if let Err(e) = finished {
        if matches!(e, Error::Interrupted { .. }) {
            state.partial = Some(progress);
        }
        return Err(e);
    }
    let metrics = EpochMetrics {
        g_sigma_max: state.generator.largest_sigma(),
        d_sigma_max: state.discriminator.largest_sigma(),
        ..epoch_metrics(&progress, config, batches, end)
    };
    state.epoch = epoch;
    state.history.push(metrics.clone());
    Ok(metrics)
}

/// The measures of a finished epoch of `batches` steps from its sums (`progress`) and the
/// end-of-epoch losses (`end`, none for an epoch without a step); the scores and sigmas are
/// filled in by others.
fn epoch_metrics(
    progress: &PartialEpoch,
    config: &Experiment,
    batches: usize,
    end: Option<EndOfEpoch>,
) -> EpochMetrics {
    let [d_sum, g_sum, real_sum, fake_sum] = progress.sums;
    let (penalty_sum, penalties) = progress.penalty;
    let g_steps = progress.g_steps.max(1) as f64;
    let seconds = progress.seconds;
    EpochMetrics {
        epoch: progress.epoch,
        d_loss: d_sum / batches as f64,
        g_loss: g_sum / g_steps,
        d_real: real_sum / batches as f64,
        d_fake: fake_sum / batches as f64,
        seconds,
        samples_per_sec: (batches * config.training.batch_size) as f64 / seconds,
        d_loss_end: end.map(|e| e.d_loss as f64),
        g_loss_end: end.map(|e| e.g_loss as f64),
        d_grad_norm_real: end.map(|e| e.d_grad_norm_real as f64),
        d_grad_norm_fake: end.map(|e| e.d_grad_norm_fake as f64),
        penalty: (penalties > 0).then(|| penalty_sum / penalties as f64),
        mode_seeking: config.mode_seeking.map(|_| progress.mode_seeking / g_steps),
        // The scores come from the run's `Scores` output, in the epochs it scores.
        ..EpochMetrics::default()
    }
}

/// Where the coming epoch stands: the one an interrupt left in `state` (a checkpoint's, which
/// must fit: [`PartialEpoch::mismatch`]), or a fresh one on a new order of the `images`.
fn progress_so_far(state: &mut GanState, images: usize, batch: usize) -> PartialEpoch {
    let resumed = state.partial.take();
    // A resumed epoch was checked against the data by the caller (`experiment::run`, which
    // names the checkpoint in its error).
    debug_assert!(resumed
        .as_ref()
        .is_none_or(|p| p.mismatch(state.epoch, images, batch).is_none()));
    resumed.unwrap_or_else(|| {
        let mut order: Vec<u32> = (0..images as u32).collect();
        order.shuffle(&mut state.rng);
        PartialEpoch::starting(state.epoch + 1, order)
    })
}

/// The losses as the tutorial printed them, on the epoch's last real batch (`last_batch`, its
/// images' indices) and fresh noise, and D's input-gradient norms there. A measurement:
/// recorded as it comes out (NaN included), it never stops the run.
fn end_of_epoch(
    plain: &mut PlainGan,
    config: &Experiment,
    train: &PackedImages,
    last_batch: &[u32],
    epoch: usize,
) -> EndOfEpoch {
    let (pixels, labels) = batch_of(train, last_batch);
    let mut probe = loss_probe_noise(config.seed, epoch);
    on_worker(|| plain.losses(&mut probe, config, pixels, &labels))
}

/// The images at `indices` of `train`, scaled to [0, 1], and their labels.
fn batch_of(train: &PackedImages, indices: &[u32]) -> (Vec<f32>, Vec<u8>) {
    let mut pixels = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &i in indices {
        train.push_pixels(i as usize, &mut pixels);
    }
    let labels = indices.iter().map(|&i| train.label(i as usize)).collect();
    (pixels, labels)
}

fn check_finite(value: f32, what: &'static str, epoch: usize, step: usize) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::Diverged {
            epoch,
            step: step + 1,
            what,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Images;
    use crate::model::{Matrix, TensorVisitor};
    use crate::train::{d_step, g_step};
    use rand::{Rng, SeedableRng};

    struct Snapshot(Vec<(String, Vec<f32>)>);
    impl TensorVisitor for Snapshot {
        fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, _: bool) {
            self.0.push((name.to_string(), t.as_vec()));
        }
    }
    fn snapshot(net: &mut Network) -> Vec<(String, Vec<f32>)> {
        let mut s = Snapshot(Vec::new());
        net.visit(&mut s);
        s.0
    }

    fn tiny_config() -> Experiment {
        tiny_config_with(&[])
    }

    fn tiny_config_with(overrides: &[&str]) -> Experiment {
        let text = r#"
            name = "tiny"
            [noise]
            dim = 4
            [model.generator]
            layers = [{type = "linear", out = 8}, {type = "leaky_relu", slope = 0.2},
                      {type = "batch_norm", mode = "running"}, {type = "dropout", rate = 0.5},
                      {type = "linear", out = 784}, {type = "sigmoid"}]
            [model.discriminator]
            layers = [{type = "linear", out = 8}, {type = "leaky_relu", slope = 0.2},
                      {type = "batch_norm", mode = "running"}, {type = "linear", out = 1}]
            [training]
            batch_size = 4
            [data]
            train_size = 8
            "#;
        let overrides: Vec<crate::config::Override> =
            overrides.iter().map(|o| o.parse().unwrap()).collect();
        crate::config::from_str(text, std::path::Path::new("tiny.toml"), &overrides).unwrap()
    }

    /// In mode `batch` an image depends on the batch it is generated in, so generation runs in
    /// batches of the training size: the first 4 of 6 images are those of 4 alone, and the last
    /// 2 come from a full batch of 4 whose first 2 noise rows are theirs.
    #[test]
    fn generation_runs_in_training_sized_batches() {
        let text = r#"
            name = "tiny"
            [noise]
            dim = 4
            [model.generator]
            layers = [{type = "linear", out = 8}, {type = "batch_norm", mode = "batch"},
                      {type = "linear", out = 784}, {type = "sigmoid"}]
            [model.discriminator]
            layers = [{type = "linear", out = 1}]
            [training]
            batch_size = 4
            "#;
        let config = crate::config::from_str(text, std::path::Path::new("t.toml"), &[]).unwrap();
        let dev = Cpu::default();
        let mut state = GanState::new(&config, &dev);
        let mut draw = |n, mode| {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            generate(&config, &mut state.generator, n, &mut rng, mode, &dev)
        };
        let six = draw(6, GenerationMode::AsTrained);
        let four = draw(4, GenerationMode::AsTrained);
        let eight = draw(8, GenerationMode::AsTrained);
        assert_eq!(six.len(), 6 * IMAGE_PIXELS);
        assert!(six[..4 * IMAGE_PIXELS] == four[..], "first batch");
        assert!(six[..] == eight[..6 * IMAGE_PIXELS], "last batch filled up");
        // Bypassed, an image depends on its own noise only (up to the products' rounding).
        let bypass_four = draw(4, GenerationMode::TutorialBypass);
        assert!(bypass_four != four, "bypass changes the images");
        let mut one_by_one = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..4 {
            let z = crate::train::sample_noise(&config, 1, &mut rng, &dev);
            one_by_one.extend(state.generator.forward(z, Mode::BypassBatchNorm).as_vec());
        }
        crate::model::kernels::assert_close(&one_by_one, &bypass_four, 1e-6, "one by one");
    }

    fn fake_images(n: usize) -> Images {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        Images {
            bytes: (0..n * IMAGE_PIXELS).map(|_| rng.gen()).collect(),
            labels: vec![0; n],
        }
    }

    /// A D step must leave G's parameters exactly as they were, and a G step must leave D's
    /// tensors (running statistics included, since D is outside its own update) untouched.
    #[test]
    fn each_optimizer_touches_only_its_own_network() {
        let dev = Cpu::default();
        let config = tiny_config();
        let mut state = GanState::new(&config, &dev);
        let g0 = snapshot(&mut state.generator);
        let d0 = snapshot(&mut state.discriminator);
        let real: Matrix = dev.tensor_from_vec(fake_images(4).pixels(), (4, IMAGE_PIXELS));
        d_step(
            &mut state,
            &config,
            real,
            &[0; 4],
            &dev,
            &mut PhaseTimes::default(),
        );
        assert_eq!(snapshot(&mut state.generator), g0, "a D step changed G");
        assert_ne!(
            snapshot(&mut state.discriminator),
            d0,
            "the D step did nothing"
        );
        assert_eq!((state.g_opt.steps, state.d_opt.steps), (0, 1));

        let d1 = snapshot(&mut state.discriminator);
        let g1 = snapshot(&mut state.generator);
        g_step(&mut state, &config, 4, &dev, &mut PhaseTimes::default());
        assert_eq!(snapshot(&mut state.discriminator), d1, "a G step changed D");
        assert_ne!(snapshot(&mut state.generator), g1, "the G step did nothing");
        assert_eq!((state.g_opt.steps, state.d_opt.steps), (1, 1));
    }

    #[test]
    fn g_steps_follow_d_steps_per_g_step() {
        let dev = Cpu::default();
        let config = tiny_config_with(&["training.d_steps_per_g_step=2"]);
        let mut state = GanState::new(&config, &dev);
        let images = fake_images(8); // two batches of 4
        let mut times = PhaseTimes::default();
        train_epoch(
            &mut state,
            &config,
            &PackedImages::pack(&images),
            &mut times,
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert_eq!((state.d_opt.steps, state.g_opt.steps), (2, 1));
    }

    #[test]
    fn same_seed_same_epoch() {
        let dev = Cpu::default();
        let config = tiny_config();
        let images = fake_images(8);
        let run = || {
            let mut state = GanState::new(&config, &dev);
            let m = train_epoch(
                &mut state,
                &config,
                &PackedImages::pack(&images),
                &mut PhaseTimes::default(),
                |_| ControlFlow::Continue(()),
            )
            .unwrap();
            (m.d_loss, m.g_loss, snapshot(&mut state.generator))
        };
        assert_eq!(run(), run());
    }

    /// Epoch 2 of a decay over 3 epochs from epoch 2 trains at (1 - 1/4) of the rate: both
    /// paths, the fast trainer and the tape's steps, reach the weights that a constant rate of
    /// 0.75 lr reaches, bit for bit, and not those of the full rate.
    #[test]
    fn a_decayed_rate_is_the_rate_the_epoch_trains_at() {
        let dev = Cpu::default();
        let images = fake_images(8);
        let decayed = [
            "optimizer.generator.lr_decay={start_epoch = 2, epochs = 3}",
            "optimizer.discriminator.lr_decay={start_epoch = 2, epochs = 3}",
        ];
        let lowered = [
            "optimizer.generator.lr=1.5e-4",
            "optimizer.discriminator.lr=1.5e-4",
        ];
        // Epoch 2 from an epoch-1 state: the fast trainer, then the tape path's steps.
        let second_epoch = |config: &Experiment, tape: bool| {
            let mut state = GanState::new(config, &dev);
            state.epoch = 1;
            if tape {
                let pixels = images.pixels()[..4 * IMAGE_PIXELS].to_vec();
                let real: crate::model::Matrix = dev.tensor_from_vec(pixels, (4, IMAGE_PIXELS));
                let mut times = PhaseTimes::default();
                d_step(&mut state, config, real, &[], &dev, &mut times);
                g_step(&mut state, config, 4, &dev, &mut times);
            } else {
                train_epoch(
                    &mut state,
                    config,
                    &PackedImages::pack(&images),
                    &mut PhaseTimes::default(),
                    |_| ControlFlow::Continue(()),
                )
                .unwrap();
            }
            (
                snapshot(&mut state.generator),
                snapshot(&mut state.discriminator),
            )
        };
        for tape in [false, true] {
            let with_decay = second_epoch(&tiny_config_with(&decayed), tape);
            assert_eq!(with_decay, second_epoch(&tiny_config_with(&lowered), tape));
            assert_ne!(with_decay, second_epoch(&tiny_config(), tape));
        }
    }
}
