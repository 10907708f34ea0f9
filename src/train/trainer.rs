//! The training loop: one epoch of alternating discriminator and generator steps. It computes
//! and returns metrics and writes nothing; the run directory is [`crate::run_dir`]'s job.

use std::time::{Duration, Instant};

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::loss::gan_bce;
use super::optim::AdamState;
use super::step::PlainGan;
use crate::config::{ExperimentConfig, GenerationMode, NoiseDistribution, IMAGE_PIXELS};
use crate::data::PackedImages;
use crate::error::{Error, Result};
use crate::model::kernels::on_worker;
use crate::model::{Matrix, Mode, Network};

/// RNG streams derived from the one config seed, so that each use is independent of the others.
const INIT_STREAM: u64 = 1;
const TRAIN_STREAM: u64 = 2;
const SAMPLE_STREAM: u64 = 3;
/// Noise for the end-of-epoch losses: its own stream, so that measuring them leaves the
/// training stream (and so the trained weights) untouched.
const LOSS_PROBE_STREAM: u64 = 4;

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean discriminator loss over the epoch's D steps.
    pub d_loss: f64,
    /// Mean generator loss over the epoch's G steps.
    pub g_loss: f64,
    /// Mean D(x) on real images (sigmoid of the logits).
    pub d_real: f64,
    /// Mean D(G(z)) on generated images, as seen in the D steps.
    pub d_fake: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
    /// Real images consumed per second.
    pub samples_per_sec: f64,
    /// Classifier FID of the generator's samples, in epochs that were scored.
    #[serde(default)]
    pub fid: Option<f64>,
    /// Classifier score, likewise.
    #[serde(default)]
    pub classifier_score: Option<f64>,
    /// Digits with at least 1% of the samples, likewise.
    #[serde(default)]
    pub modes: Option<usize>,
    /// Parzen log-likelihood of the test set in nats, likewise.
    #[serde(default)]
    pub parzen_nats: Option<f64>,
    /// D's loss after the epoch, on its last real batch with fresh noise, neither network in
    /// its own update (no dropout; batch-norm as outside training): what the tutorial printed.
    /// Empty in runs made before it was measured.
    #[serde(default)]
    pub d_loss_end: Option<f64>,
    /// G's loss measured the same way, on the same noise.
    #[serde(default)]
    pub g_loss_end: Option<f64>,
}

/// Everything that changes during training: what a checkpoint holds.
#[derive(Debug, Clone)]
pub struct GanState {
    /// Noise -> image.
    pub generator: Network,
    /// Image -> logit.
    pub discriminator: Network,
    /// The generator's Adam.
    pub g_opt: AdamState,
    /// The discriminator's Adam.
    pub d_opt: AdamState,
    /// Data order, noise and dropout masks all come from here, in a fixed order.
    pub rng: ChaCha8Rng,
    /// Epochs completed.
    pub epoch: usize,
    /// One row per completed epoch.
    pub history: Vec<EpochMetrics>,
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

impl GanState {
    /// Builds both networks and fresh optimizers from a validated config.
    pub fn new(config: &ExperimentConfig, dev: &Cpu) -> Self {
        let mut init = stream(config.seed, INIT_STREAM);
        let generator = Network::build(
            "generator",
            &config.model.generator.layers,
            config.noise.dim,
            &config.init,
            dev,
            &mut init,
        );
        let discriminator = Network::build(
            "discriminator",
            &config.model.discriminator.layers,
            IMAGE_PIXELS,
            &config.init,
            dev,
            &mut init,
        );
        GanState {
            generator,
            discriminator,
            g_opt: AdamState::new(&config.optimizer.generator),
            d_opt: AdamState::new(&config.optimizer.discriminator),
            rng: stream(config.seed, TRAIN_STREAM),
            epoch: 0,
            history: Vec::new(),
        }
    }
}

/// A `[rows, dim]` batch of noise.
pub fn sample_noise(
    config: &ExperimentConfig,
    rows: usize,
    rng: &mut ChaCha8Rng,
    dev: &Cpu,
) -> Matrix {
    dev.tensor_from_vec(noise_values(config, rows, rng), (rows, config.noise.dim))
}

/// The values of [`sample_noise`], row-major.
pub fn noise_values(config: &ExperimentConfig, rows: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = rows * config.noise.dim;
    match config.noise.distribution {
        NoiseDistribution::Uniform { low, high } => (0..n)
            .map(|_| rng.gen_range(low as f32..high as f32))
            .collect(),
        NoiseDistribution::Normal { mean, std } => {
            let d = Normal::new(mean, std).expect("std validated positive");
            (0..n).map(|_| d.sample(rng) as f32).collect()
        }
    }
}

/// The noise behind every sample grid of a run: the same for every epoch (and for every run
/// with the same seed and noise settings), so that grids can be compared.
pub fn grid_noise(config: &ExperimentConfig) -> ChaCha8Rng {
    stream(config.seed, SAMPLE_STREAM)
}

/// `n` images from `generator` outside its own update, drawn as `mode` says: one per noise row,
/// rows taken in order from `rng`; `[n, 784]` row-major, in the generator's output range.
///
/// They are generated in batches of `training.batch_size` (the last one filled up with further
/// noise rows, then cut), because batch-norm in mode `batch` normalises each batch by its own
/// statistics: this is how the generator ran in training.
pub fn generate(
    config: &ExperimentConfig,
    generator: &mut Network,
    n: usize,
    rng: &mut ChaCha8Rng,
    mode: GenerationMode,
    dev: &Cpu,
) -> Vec<f32> {
    let batch = config.training.batch_size;
    let wanted = n * IMAGE_PIXELS;
    let mut pixels = Vec::with_capacity(wanted);
    while pixels.len() < wanted {
        let z = sample_noise(config, batch, rng, dev);
        let images = match mode {
            GenerationMode::AsTrained => generator.forward(z, Mode::Eval),
            GenerationMode::TutorialBypass => generator.forward(z, Mode::BypassBatchNorm),
        }
        .as_vec();
        let take = (wanted - pixels.len()).min(images.len());
        pixels.extend_from_slice(&images[..take]);
    }
    pixels
}

/// Trains one epoch: a reshuffle, then per batch one D step, and one G step after every
/// `d_steps_per_g_step` D steps. `on_step` is called after each batch (for progress bars).
pub fn train_epoch(
    state: &mut GanState,
    config: &ExperimentConfig,
    train: &PackedImages,
    times: &mut PhaseTimes,
    mut on_step: impl FnMut(usize) + Send,
) -> Result<EpochMetrics> {
    let start = Instant::now();
    let epoch = state.epoch + 1;
    let batch = config.training.batch_size;
    let batches = train.len() / batch;
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut state.rng);

    let (mut d_sum, mut g_sum, mut real_sum, mut fake_sum) = (0f64, 0f64, 0f64, 0f64);
    let mut g_steps = 0usize;
    // The hot loop runs on plain buffers; the networks and optimizers go back into `state`
    // at the end (or on divergence, so the state stays whole).
    let mut plain = PlainGan::check_out(state);
    let rng = &mut state.rng;
    let steps = || -> Result<()> {
        for step in 0..batches {
            let phase = Instant::now();
            let mut pixels = Vec::with_capacity(batch * IMAGE_PIXELS);
            for &i in &order[step * batch..(step + 1) * batch] {
                train.push_pixels(i, &mut pixels);
            }
            times.data += phase.elapsed();

            let d = plain.d_step(rng, config, pixels, times);
            check_finite(d.loss, "the discriminator loss", epoch, step)?;
            d_sum += d.loss as f64;
            real_sum += d.d_real as f64;
            fake_sum += d.d_fake as f64;

            if (step + 1).is_multiple_of(config.training.d_steps_per_g_step) {
                let g_loss = plain.g_step(rng, config, batch, times);
                check_finite(g_loss, "the generator loss", epoch, step)?;
                g_sum += g_loss as f64;
                g_steps += 1;
            }
            on_step(step + 1);
        }
        Ok(())
    };
    let mut finished = on_worker(steps);
    // The losses as the tutorial printed them: the epoch's last real batch, fresh noise.
    let mut end_losses = (None, None);
    if finished.is_ok() && batches > 0 {
        let mut pixels = Vec::with_capacity(batch * IMAGE_PIXELS);
        for &i in &order[(batches - 1) * batch..batches * batch] {
            train.push_pixels(i, &mut pixels);
        }
        let mut probe = stream(
            config.seed ^ (epoch as u64).rotate_left(32),
            LOSS_PROBE_STREAM,
        );
        let (d, g) = on_worker(|| plain.losses(&mut probe, config, pixels));
        finished = check_finite(d, "the discriminator loss", epoch, batches - 1)
            .and_then(|()| check_finite(g, "the generator loss", epoch, batches - 1));
        end_losses = (Some(d as f64), Some(g as f64));
    }
    plain.check_in(state);
    finished?;

    let seconds = start.elapsed().as_secs_f64();
    let metrics = EpochMetrics {
        epoch,
        d_loss: d_sum / batches as f64,
        g_loss: g_sum / g_steps.max(1) as f64,
        d_real: real_sum / batches as f64,
        d_fake: fake_sum / batches as f64,
        seconds,
        samples_per_sec: (batches * batch) as f64 / seconds,
        fid: None,
        classifier_score: None,
        modes: None,
        parzen_nats: None,
        d_loss_end: end_losses.0,
        g_loss_end: end_losses.1,
    };
    state.epoch = epoch;
    state.history.push(metrics.clone());
    Ok(metrics)
}

/// Where a training step's time goes; filled in by [`d_step`] and [`g_step`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimes {
    /// Assembling the real batch.
    pub data: Duration,
    /// Sampling noise and running G outside its own update (in D steps).
    pub g_forward: Duration,
    /// D's forward and backward passes in D steps.
    pub d_step: Duration,
    /// G's and D's forward and backward passes in G steps (noise included).
    pub g_step: Duration,
    /// Both optimizers' updates.
    pub optimizer: Duration,
}

/// What one D step measured.
#[derive(Debug, Clone, Copy)]
pub struct DStep {
    /// BCE(D(x), 1) + BCE(D(G(z)), 0).
    pub loss: f32,
    /// Mean D(x).
    pub d_real: f32,
    /// Mean D(G(z)).
    pub d_fake: f32,
}

/// One discriminator step on a real batch: G runs outside its own update (no tape, no
/// dropout, tutorial batch-norm bypassed), D in its own; only D's optimizer moves.
pub fn d_step(
    state: &mut GanState,
    config: &ExperimentConfig,
    real: Matrix,
    dev: &Cpu,
    times: &mut PhaseTimes,
) -> DStep {
    let phase = Instant::now();
    let z = sample_noise(config, real.shape().0, &mut state.rng, dev);
    let fake = state.generator.forward(z, Mode::Eval);
    times.g_forward += phase.elapsed();

    let phase = Instant::now();
    // Two passes (not one batch of both) so that batch-norm in D sees each batch alone.
    let real_logits = state.discriminator.forward(
        real.leaky_traced(),
        Mode::Train {
            rng: &mut state.rng,
        },
    );
    let fake_logits = state.discriminator.forward(
        fake.leaky_traced(),
        Mode::Train {
            rng: &mut state.rng,
        },
    );
    let mean_prob = |logits: &Matrix<OwnedTape<f32, Cpu>>| {
        logits
            .retaped::<NoneTape>()
            .sigmoid()
            .mean::<Rank0, _>()
            .array()
    };
    let (d_real, d_fake) = (mean_prob(&real_logits), mean_prob(&fake_logits));
    let loss = gan_bce(real_logits, 1.0, config.loss) + gan_bce(fake_logits, 0.0, config.loss);
    let value = loss.array();
    let mut grads = loss.backward();
    times.d_step += phase.elapsed();

    let phase = Instant::now();
    state.d_opt.update(&mut state.discriminator, &mut grads);
    times.optimizer += phase.elapsed();
    DStep {
        loss: value,
        d_real,
        d_fake,
    }
}

/// One generator step: G in its own update, D outside its own. The backward pass also
/// computes gradients for D's parameters; they are dropped, and only G's optimizer moves.
pub fn g_step(
    state: &mut GanState,
    config: &ExperimentConfig,
    batch: usize,
    dev: &Cpu,
    times: &mut PhaseTimes,
) -> f32 {
    let phase = Instant::now();
    let z = sample_noise(config, batch, &mut state.rng, dev);
    let fake = state.generator.forward(
        z.leaky_traced(),
        Mode::Train {
            rng: &mut state.rng,
        },
    );
    let logits = state.discriminator.forward(fake, Mode::Eval);
    let loss = gan_bce(logits, 1.0, config.loss);
    let value = loss.array();
    let mut grads = loss.backward();
    times.g_step += phase.elapsed();

    let phase = Instant::now();
    state.g_opt.update(&mut state.generator, &mut grads);
    times.optimizer += phase.elapsed();
    value
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
    use crate::model::TensorVisitor;

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

    fn tiny_config() -> ExperimentConfig {
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
        crate::config::from_str(text, std::path::Path::new("tiny.toml"), &[]).unwrap()
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
            let z = sample_noise(&config, 1, &mut rng, &dev);
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
        d_step(&mut state, &config, real, &dev, &mut PhaseTimes::default());
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
        let mut config = tiny_config();
        config.training.d_steps_per_g_step = 2;
        let mut state = GanState::new(&config, &dev);
        let images = fake_images(8); // two batches of 4
        let mut times = PhaseTimes::default();
        train_epoch(
            &mut state,
            &config,
            &PackedImages::pack(&images),
            &mut times,
            |_| {},
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
                |_| {},
            )
            .unwrap();
            (m.d_loss, m.g_loss, snapshot(&mut state.generator))
        };
        assert_eq!(run(), run());
    }
}
