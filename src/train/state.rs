//! What training keeps and measures: the state a checkpoint holds, the metrics of an epoch, and
//! the noise the generator draws from, each use from its own RNG stream of the config's seed.

use std::time::Duration;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::config::{Experiment, NoiseDistribution, IMAGE_PIXELS};
use crate::model::optim::AdamState;
use crate::model::{Matrix, Network};

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
    pub fn new(config: &Experiment, dev: &Cpu) -> Self {
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
pub fn sample_noise(config: &Experiment, rows: usize, rng: &mut ChaCha8Rng, dev: &Cpu) -> Matrix {
    dev.tensor_from_vec(noise_values(config, rows, rng), (rows, config.noise.dim))
}

/// The values of [`sample_noise`], row-major.
pub fn noise_values(config: &Experiment, rows: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
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
pub fn grid_noise(config: &Experiment) -> ChaCha8Rng {
    stream(config.seed, SAMPLE_STREAM)
}

/// The noise of the end-of-epoch losses of `epoch`: its own stream, so that measuring them
/// leaves the training stream (and so the trained weights) untouched.
pub(crate) fn loss_probe_noise(seed: u64, epoch: usize) -> ChaCha8Rng {
    stream(seed ^ (epoch as u64).rotate_left(32), LOSS_PROBE_STREAM)
}

/// Where a training step's time goes; filled in by the training steps.
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
