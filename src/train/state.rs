//! What training keeps and measures: the state a checkpoint holds, the metrics of an epoch, and
//! the noise the generator draws from, each use from its own RNG stream of the config's seed.

use std::time::Duration;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::config::{conditioning, Experiment, NoiseDistribution};
use crate::model::optim::AdamState;
use crate::model::{Matrix, Network};

/// RNG streams derived from the one config seed, so that each use is independent of the others.
const INIT_STREAM: u64 = 1;
const TRAIN_STREAM: u64 = 2;
const SAMPLE_STREAM: u64 = 3;
/// Noise for the end-of-epoch losses: its own stream, so that measuring them leaves the
/// training stream (and so the trained weights) untouched.
const LOSS_PROBE_STREAM: u64 = 4;
/// Noise and dropout masks of the moving average's batch-norm statistics
/// ([`GanState::refresh_ema_statistics`]).
const EMA_NOISE_STREAM: u64 = 5;
const EMA_DROPOUT_STREAM: u64 = 6;
/// Batches of the training size those statistics are averaged over.
const EMA_STATISTICS_BATCHES: usize = 50;

/// One row of `metrics.csv`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Improved precision (k = 3, in the classifier's features, 0 to 1) in epochs that were
    /// scored; empty in runs made before it was measured, and when fewer than four images
    /// were scored.
    #[serde(default)]
    pub precision: Option<f64>,
    /// Improved recall, likewise.
    #[serde(default)]
    pub recall: Option<f64>,
    /// KID (the mean of its subsets' unbiased MMD^2, not scaled), likewise.
    #[serde(default)]
    pub kid: Option<f64>,
    /// KID's standard error, likewise.
    #[serde(default)]
    pub kid_se: Option<f64>,
    /// The largest sigma (spectral norm's estimate of a weight's largest singular value) among
    /// G's spectrally normalised layers after the epoch; empty without any, and in runs made
    /// before it was recorded. TensorBoard has each layer's.
    #[serde(default)]
    pub g_sigma_max: Option<f64>,
    /// The same for D's layers.
    #[serde(default)]
    pub d_sigma_max: Option<f64>,
    /// The gradient penalty's mean over the epoch's D steps that computed it (its weight
    /// included, its lazy cadence not); empty without a penalty.
    #[serde(default)]
    pub penalty: Option<f64>,
    /// The mean norm of D's input gradient on the epoch's last real batch after the epoch,
    /// outside D's own update (what R1 penalises); empty in runs made before it was recorded.
    #[serde(default)]
    pub d_grad_norm_real: Option<f64>,
    /// The same on the generated batch of the end-of-epoch losses (what R2 penalises).
    #[serde(default)]
    pub d_grad_norm_fake: Option<f64>,
    /// A class-conditional run's label accuracy (the share of samples the classifier calls the
    /// digit G was asked for) in epochs that were scored; empty otherwise.
    #[serde(default)]
    pub label_accuracy: Option<f64>,
    /// Its mean per-label FID (samples asked for digit k against the test images of k),
    /// likewise.
    #[serde(default)]
    pub label_fid: Option<f64>,
    /// Mode seeking's term (its weight included) averaged over the epoch's G steps; empty
    /// without `[mode_seeking]`.
    #[serde(default)]
    pub mode_seeking: Option<f64>,
    /// The raw generator's FID beside the moving average's (`fid`) in scored epochs of runs
    /// that keep one (same noise); empty otherwise.
    #[serde(default)]
    pub raw_fid: Option<f64>,
}

/// Epochs over which unmoving losses count as a stuck run.
pub const STUCK_WINDOW: usize = 10;

/// Why a run looks stuck after its last epoch, if it does: D's outputs saturated (the
/// generator then gets almost no gradient), or both losses unmoved, within 1e-3, for
/// [`STUCK_WINDOW`] epochs.
pub fn stuck_reason(history: &[EpochMetrics]) -> Option<String> {
    let last = history.last()?;
    if last.d_fake < 1e-4 && last.d_real > 1.0 - 1e-4 {
        return Some(format!(
            "D's outputs saturate (D(x) {:.6}, D(G(z)) {:.2e}): D tells every image apart and \
             G learns little; a lower D learning rate or beta1, or the other loss, may help",
            last.d_real, last.d_fake
        ));
    }
    if history.len() >= STUCK_WINDOW {
        let recent = &history[history.len() - STUCK_WINDOW..];
        let spread = |f: fn(&EpochMetrics) -> f64| {
            let (lo, hi) = recent
                .iter()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            hi - lo
        };
        if spread(|m| m.d_loss) < 1e-3 && spread(|m| m.g_loss) < 1e-3 {
            return Some(format!(
                "both losses have stayed within 1e-3 for {STUCK_WINDOW} epochs (D {:.4}, G \
                 {:.4}): training has stalled",
                last.d_loss, last.g_loss
            ));
        }
    }
    None
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
    /// The moving average of the generator's weights, when the config keeps one.
    pub ema: Option<Network>,
    /// Data order, noise and dropout masks all come from here, in a fixed order.
    pub rng: ChaCha8Rng,
    /// Epochs completed.
    pub epoch: usize,
    /// One row per completed epoch.
    pub history: Vec<EpochMetrics>,
    /// The epoch in progress when a run was interrupted mid-epoch, so that a resumed run
    /// finishes it exactly as an uninterrupted one would have.
    pub partial: Option<PartialEpoch>,
}

/// Where an interrupted epoch stood: its data order, the steps done and the sums its metrics
/// are made of. With the RNG's position (kept by [`GanState`]), enough to finish the epoch bit
/// for bit as if it had never stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// The 1-based epoch in progress (the state's completed epochs plus one).
    pub epoch: usize,
    /// Batches done (D steps, each followed by its G step when one was due).
    pub steps_done: usize,
    /// The epoch's order of training images.
    pub order: Vec<u32>,
    /// Sums of the D losses, G losses, D(x) and D(G(z)) over the steps done.
    pub sums: [f64; 4],
    /// G steps done.
    pub g_steps: usize,
    /// Wall time spent on the epoch so far.
    pub seconds: f64,
    /// The gradient penalty's sum and count over the steps done; absent in checkpoints from
    /// before it was recorded.
    #[serde(default)]
    pub penalty: (f64, usize),
    /// Mode seeking's term summed over the G steps done; absent in checkpoints from before it
    /// was recorded.
    #[serde(default)]
    pub mode_seeking: f64,
}

impl PartialEpoch {
    /// Adds one D step's measures to the sums.
    pub fn add_d_step(&mut self, d: &DStep) {
        self.sums[0] += d.loss as f64;
        self.sums[2] += d.d_real as f64;
        self.sums[3] += d.d_fake as f64;
        if let Some(p) = d.penalty {
            self.penalty = (self.penalty.0 + p as f64, self.penalty.1 + 1);
        }
    }

    /// Adds one G step's measures to the sums.
    pub fn add_g_step(&mut self, g: &GStep) {
        self.sums[1] += g.loss as f64;
        self.g_steps += 1;
        self.mode_seeking += g.mode_seeking.unwrap_or(0.0) as f64;
    }

    /// The 1-based `epoch` before its first step, on its data `order`.
    pub fn starting(epoch: usize, order: Vec<u32>) -> PartialEpoch {
        PartialEpoch {
            epoch,
            steps_done: 0,
            order,
            sums: [0.0; 4],
            g_steps: 0,
            seconds: 0.0,
            penalty: (0.0, 0),
            mode_seeking: 0.0,
        }
    }

    /// Why this cannot be the epoch in progress of `state` training on `images` in batches of
    /// `batch`, if it cannot: a checkpoint is checksummed, so only a different data set or a
    /// hand-made file gets here.
    pub fn mismatch(&self, completed: usize, images: usize, batch: usize) -> Option<String> {
        let mut seen = vec![false; images];
        let permutation = self.order.len() == images
            && self
                .order
                .iter()
                .all(|&i| (i as usize) < images && !std::mem::replace(&mut seen[i as usize], true));
        if self.epoch != completed + 1 {
            Some(format!(
                "its epoch in progress is {} but it completed {completed}",
                self.epoch
            ))
        } else if !permutation {
            Some(format!(
                "its epoch's data order is not an order of the {images} training images"
            ))
        } else if batch == 0 || self.steps_done >= images / batch {
            Some(format!(
                "it is {} steps into an epoch of {}",
                self.steps_done,
                images / batch.max(1)
            ))
        } else {
            None
        }
    }
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The moving average's name: prefixes its tensors in checkpoints.
pub const EMA_NAME: &str = "generator_ema";

impl GanState {
    /// The network that draws images outside training: the moving average when there is one
    /// and `raw` is false, else the generator itself.
    pub fn sampler(&mut self, raw: bool) -> &mut Network {
        match (&mut self.ema, raw) {
            (Some(ema), false) => ema,
            _ => &mut self.generator,
        }
    }

    /// Re-estimates the moving average's running batch-norm statistics from its own
    /// activations ([`Network::reestimate_running_statistics`], on
    /// `EMA_STATISTICS_BATCHES` batches), before it draws: each step copies the raw
    /// generator's statistics into it, which do not describe the averaged weights. Nothing
    /// without a moving average or a running batch-norm. Its noise and masks come from streams
    /// of their own: training is untouched, and the same weights give the same statistics.
    pub fn refresh_ema_statistics(&mut self, config: &Experiment, dev: &Cpu) {
        let Some(ema) = &mut self.ema else {
            return;
        };
        let mut noise = stream(config.seed, EMA_NOISE_STREAM);
        let batch = config.training.batch_size;
        // Numbered on, so that a class-conditional G sees every label equally often whatever
        // the batch size (each batch from image 0 would hold only the first labels).
        let batches = (0..EMA_STATISTICS_BATCHES)
            .map(|k| generation_input(config, batch, k * batch, &mut noise, dev));
        ema.reestimate_running_statistics(batches, &mut stream(config.seed, EMA_DROPOUT_STREAM));
    }

    /// The moving average's decay in the 1-based `epoch`: 0 (a copy) before its start epoch.
    pub fn ema_decay(config: &Experiment, epoch: usize) -> Option<f32> {
        let ema = config.model.generator.ema.as_ref()?;
        Some(if epoch >= ema.start_epoch {
            ema.decay as f32
        } else {
            0.0
        })
    }

    /// Builds both networks and fresh optimizers from a validated config.
    pub fn new(config: &Experiment, dev: &Cpu) -> Self {
        let mut init = stream(config.seed, INIT_STREAM);
        let generator = Network::build_planned(
            "generator",
            &config.model.generator.layers,
            config.generator_shapes(),
            &config.init,
            dev,
            &mut init,
        );
        let discriminator = Network::build_planned(
            "discriminator",
            &config.model.discriminator.layers,
            config.discriminator_shapes(),
            &config.init,
            dev,
            &mut init,
        );
        let ema = config.model.generator.ema.as_ref().map(|_| {
            let mut ema = generator.clone();
            ema.name = EMA_NAME.to_string();
            ema
        });
        GanState {
            ema,
            generator,
            discriminator,
            g_opt: AdamState::new(&config.optimizer.generator),
            d_opt: AdamState::new(&config.optimizer.discriminator),
            rng: stream(config.seed, TRAIN_STREAM),
            epoch: 0,
            history: Vec::new(),
            partial: None,
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

/// Which labels a class-conditional generator is asked for outside training.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GenerationLabels {
    /// Image `i` gets [`generation_label`]: every class equally often, one per grid row (grids,
    /// scoring, and `sample` unless told otherwise).
    #[default]
    Balanced,
    /// Every image the same class (`sample --label`).
    Only(u8),
    /// One class per row of a grid `width` images wide, in turn (`sample --out X.png` of a
    /// grid wider or narrower than the classes).
    GridRows {
        /// Images per row.
        width: usize,
    },
    /// Image `i` gets label `i` of the list (not empty), from its start again past its end
    /// (`eval --labels test`: the test set's labels in order, so that the classes come as
    /// often as in the images FID compares against).
    Listed(std::sync::Arc<[u8]>),
}

impl GenerationLabels {
    /// The label of generated image `i` of a config with `classes` classes.
    pub fn of(&self, classes: usize, i: usize) -> u8 {
        match self {
            GenerationLabels::Balanced => generation_label(classes, i),
            GenerationLabels::Only(label) => *label,
            &GenerationLabels::GridRows { width } => ((i / width.max(1)) % classes) as u8,
            GenerationLabels::Listed(labels) => {
                assert!(!labels.is_empty(), "a label list to draw from");
                labels[i % labels.len()]
            }
        }
    }
}

/// The label of generated image `i` outside training (grids, scoring, sampling): each digit
/// for `classes` images in turn, so that a grid `classes` wide shows one digit per row and any
/// multiple of `classes` squared images holds every digit equally.
pub fn generation_label(classes: usize, i: usize) -> u8 {
    ((i / classes) % classes) as u8
}

/// G's input for `rows` generated images numbered from `first` (balanced labels): see
/// [`generation_input_values`].
pub fn generation_input(
    config: &Experiment,
    rows: usize,
    first: usize,
    rng: &mut ChaCha8Rng,
    dev: &Cpu,
) -> Matrix {
    let (z, labels) =
        generation_input_values(config, rows, first, &GenerationLabels::Balanced, rng);
    let width = config.input_widths().0;
    dev.tensor_from_vec(generator_input(config, z, &labels), (rows, width))
}

/// The noise (from `rng`) and, where the config is class-conditional, the labels of `rows`
/// generated images numbered from `first` (no labels without conditioning).
pub fn generation_input_values(
    config: &Experiment,
    rows: usize,
    first: usize,
    labels: &GenerationLabels,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<u8>) {
    let z = noise_values(config, rows, rng);
    let labels = match &config.conditioning {
        None => Vec::new(),
        Some(c) => (first..first + rows)
            .map(|i| labels.of(c.classes, i))
            .collect(),
    };
    (z, labels)
}

/// G's input rows: each row of noise `z` followed, where the config is class-conditional, by
/// its label one-hot.
pub fn generator_input(config: &Experiment, z: Vec<f32>, labels: &[u8]) -> Vec<f32> {
    conditioning::generator_input(config.conditioning.as_ref(), z, config.noise.dim, labels)
}

/// `rows` labels for generated images, uniform over the classes, drawn after the noise; none
/// (and no draws) without conditioning.
pub fn fake_labels(config: &Experiment, rows: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    match &config.conditioning {
        None => Vec::new(),
        Some(c) => (0..rows)
            .map(|_| rng.gen_range(0..c.classes) as u8)
            .collect(),
    }
}

/// G's input for `rows` samples: noise from `rng`, then labels from it, the label one-hot after
/// each row's noise. Returns the labels too (none without conditioning).
pub fn generator_input_values(
    config: &Experiment,
    rows: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<u8>) {
    let z = noise_values(config, rows, rng);
    let labels = fake_labels(config, rows, rng);
    let c = config.conditioning.as_ref();
    (
        conditioning::generator_input(c, z, config.noise.dim, &labels),
        labels,
    )
}

/// G's input for a G step of `rows` samples, and their labels: [`generator_input_values`],
/// except that with mode seeking in a class-conditional run the second half of the batch
/// repeats the first half's labels (drawn once, after the noise), so that each pair the term
/// compares differs by its noise alone.
pub fn g_step_input_values(
    config: &Experiment,
    rows: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<u8>) {
    let (Some(_), Some(c)) = (&config.mode_seeking, &config.conditioning) else {
        return generator_input_values(config, rows, rng);
    };
    let z = noise_values(config, rows, rng);
    let mut labels = fake_labels(config, rows / 2, rng);
    labels.extend_from_within(..);
    (
        conditioning::generator_input(Some(c), z, config.noise.dim, &labels),
        labels,
    )
}

/// The noise part of G's input rows (each row's first `noise.dim` numbers; the rest, if any,
/// is the label's one-hot).
pub fn noise_columns(config: &Experiment, input: &[f32], rows: usize) -> Vec<f32> {
    let (width, dim) = (input.len() / rows.max(1), config.noise.dim);
    input
        .chunks_exact(width)
        .flat_map(|row| &row[..dim])
        .copied()
        .collect()
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
    /// The gradient penalty, in the D steps that computed one (its weight included, its lazy
    /// cadence not).
    pub penalty: Option<f32>,
}

/// What one G step measured.
#[derive(Debug, Clone, Copy)]
pub struct GStep {
    /// G's adversarial loss.
    pub loss: f32,
    /// Mode seeking's term (its weight included), with `[mode_seeking]`.
    pub mode_seeking: Option<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated images' labels: one digit per grid row of ten, every digit equally often in
    /// each hundred.
    #[test]
    fn generation_labels_give_one_digit_per_row_of_a_ten_wide_grid() {
        let labels: Vec<u8> = (0..100).map(|i| generation_label(10, i)).collect();
        for (row, digits) in labels.chunks(10).enumerate() {
            assert!(digits.iter().all(|&d| d as usize == row), "{digits:?}");
        }
        assert_eq!(generation_label(10, 100), 0);
        // A 32-wide grid (`sample --n 1024 --out x.png`): one digit per row, in turn.
        let rows = GenerationLabels::GridRows { width: 32 };
        let labels: Vec<u8> = (0..1024).map(|i| rows.of(10, i)).collect();
        for (row, digits) in labels.chunks(32).enumerate() {
            assert!(digits.iter().all(|&d| d as usize == row % 10), "{digits:?}");
        }
        assert_eq!(GenerationLabels::Balanced.of(10, 31), 3);
        // A list (eval --labels test) gives image i its i-th label, from the start again past
        // its end.
        let listed = GenerationLabels::Listed(vec![7, 2, 1].into());
        let labels: Vec<u8> = (0..7).map(|i| listed.of(10, i)).collect();
        assert_eq!(labels, [7, 2, 1, 7, 2, 1, 7]);
    }

    fn epoch(epoch: usize, d_loss: f64, g_loss: f64, d_real: f64, d_fake: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            d_loss,
            g_loss,
            d_real,
            d_fake,
            seconds: 1.0,
            samples_per_sec: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn stuck_runs_are_recognised_and_moving_ones_are_not() {
        let moving: Vec<_> = (1..=12)
            .map(|e| epoch(e, 1.0 + 0.01 * (e % 3) as f64, 0.7, 0.8, 0.2))
            .collect();
        assert_eq!(stuck_reason(&moving), None);
        let flat: Vec<_> = (1..=12).map(|e| epoch(e, 1.25, 0.75, 0.5, 0.5)).collect();
        assert!(stuck_reason(&flat).unwrap().contains("stalled"));
        assert_eq!(
            stuck_reason(&flat[..9]),
            None,
            "fewer epochs than the window"
        );
        let saturated = [epoch(1, 0.001, 12.0, 0.99999, 3e-6)];
        assert!(stuck_reason(&saturated).unwrap().contains("saturate"));
    }

    /// Rows written before precision, recall and KID were recorded (metrics.csv, and the
    /// history a checkpoint keeps as JSON) still read, without them.
    #[test]
    fn rows_without_the_newer_measures_still_read() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/run-1f55346/tiny/metrics.csv");
        let mut csv = csv::Reader::from_path(&fixture).unwrap();
        assert!(!csv.headers().unwrap().iter().any(|h| h == "precision"));
        let rows: Vec<EpochMetrics> = csv.deserialize().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].epoch, rows[0].fid), (1, None));
        let old = (
            rows[0].precision,
            rows[0].recall,
            rows[0].kid,
            rows[0].kid_se,
        );
        assert_eq!(old, (None, None, None, None));

        let mut json = serde_json::to_value(&rows).unwrap();
        for field in ["precision", "recall", "kid", "kid_se"] {
            json[0].as_object_mut().unwrap().remove(field).unwrap();
        }
        let read: Vec<EpochMetrics> = serde_json::from_value(json).unwrap();
        assert_eq!(read, rows);
    }
}
