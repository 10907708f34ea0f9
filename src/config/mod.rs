//! The experiment file: plain serde structs that mirror the TOML, with a default for every key
//! but the run's name and its networks. First step of the data path: config -> model builder ->
//! trainer -> run directory.
//!
//! [`load`] reads a file, applies `--set` overrides, refuses unknown keys and wrong types (with
//! file, line, column and key), fills in every default and validates the values and the network
//! shapes, so that nothing is trained or written from a config that cannot work.

pub mod conditioning;
mod fingerprint;
mod instance_noise;
pub mod keys;
pub mod memory;
mod overrides;
pub(crate) mod source;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use instance_noise::InstanceNoiseConfig;

use crate::error::{ConfigLocation, Error, Result};
use crate::files;
pub use crate::loss::LossKind;
pub use crate::model::init::{InitConfig, InitKind};
pub use crate::model::optim::AdamSettings;
pub use crate::model::{plan_shapes, BatchNormMode, FeatureShape, LayerSpec};
pub use crate::regularizer::{GradientPenaltyConfig, PenaltyKind};
pub use conditioning::ConditioningConfig;
pub use overrides::Override;

/// An experiment that passed validation: every default filled in, every value and shape
/// checked. The only ways to get one are [`load`], [`from_str`] and [`load_saved`], so whatever
/// takes an `Experiment` can rely on what validation checks. It reads as the
/// [`ExperimentConfig`] it wraps, and holds what validation worked out from it: the shapes
/// along each network.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    config: ExperimentConfig,
    /// [`plan_shapes`] of the generator's layers, from `noise.dim`.
    generator_shapes: Vec<FeatureShape>,
    /// [`plan_shapes`] of the discriminator's layers, from [`IMAGE_PIXELS`].
    discriminator_shapes: Vec<FeatureShape>,
}

impl std::ops::Deref for Experiment {
    type Target = ExperimentConfig;
    fn deref(&self) -> &ExperimentConfig {
        &self.config
    }
}

impl Experiment {
    /// The same experiment under another run name, which is checked like any run name.
    pub fn renamed(&self, name: &str) -> std::result::Result<Experiment, String> {
        check_run_name(name)?;
        let mut renamed = self.clone();
        renamed.config.name = name.to_string();
        Ok(renamed)
    }

    /// The shapes along the generator's layers: `noise.dim`, then the shape after each layer
    /// (ending at [`IMAGE_PIXELS`] numbers), as [`plan_shapes`] gives them, planned once when
    /// the config was validated; `train::GanState::new` builds from them
    /// (`Network::build_planned`).
    pub fn generator_shapes(&self) -> &[FeatureShape] {
        &self.generator_shapes
    }

    /// The shapes along the discriminator's layers: [`IMAGE_PIXELS`], then the shape after
    /// each layer (ending at 1), planned once when the config was validated.
    pub fn discriminator_shapes(&self) -> &[FeatureShape] {
        &self.discriminator_shapes
    }

    /// Wraps a config that passed validation, planning its networks' shapes.
    fn validated(config: ExperimentConfig) -> Experiment {
        let plan = |layers: &[LayerSpec], input| {
            plan_shapes(layers, FeatureShape::Flat(input))
                .expect("validation checks the layer shapes")
        };
        let (g_input, d_input) = config.input_widths();
        Experiment {
            generator_shapes: plan(&config.model.generator.layers, g_input),
            discriminator_shapes: plan(&config.model.discriminator.layers, d_input),
            config,
        }
    }
}

/// A whole experiment file as written, with every default filled in: plain data that mirrors
/// the TOML. Validation turns it into an [`Experiment`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name of the run directory under the runs root (`runs/<name>/`).
    pub name: String,
    /// One seed for everything random: init, data order, noise, dropout masks.
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// Where the arithmetic runs: `cpu` (or `cuda`, which this build refuses clearly).
    #[serde(default)]
    pub device: DeviceKind,
    /// The loss both networks minimise.
    #[serde(default)]
    pub loss: LossKind,
    /// A penalty on D's input gradient (`[gradient_penalty]`), when the config has one whose
    /// kind is not `none`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::regularizer::penalty_or_none"
    )]
    pub gradient_penalty: Option<GradientPenaltyConfig>,
    /// Mode seeking (`[mode_seeking]`, Mao et al. 2019): a term in G's loss rewarding different
    /// images from different noise, when the config has one whose weight is not 0.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::regularizer::mode_seeking_or_none"
    )]
    pub mode_seeking: Option<crate::regularizer::ModeSeeking>,
    /// Differentiable augmentation (`[augment]`, Zhao et al. 2020): every image D sees is
    /// shifted and has a square cut out, when the config has one with a share not 0.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::regularizer::augment_or_none"
    )]
    pub augment: Option<crate::regularizer::Augment>,
    /// Top-k training (`[top_k]`, Sinha et al. 2020): G's loss counts only the generated
    /// images D scores most real, a share falling each epoch, when the config has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<crate::loss::TopK>,
    /// Class conditioning (`[conditioning]`): G and D read a label, when the config has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditioning: Option<ConditioningConfig>,
    /// Gaussian noise added to D's inputs, annealed to zero (Sønderby et al. 2016).
    #[serde(default)]
    pub instance_noise: InstanceNoiseConfig,
    /// One-sided label smoothing (Salimans et al. 2016): D's target on real images is
    /// `1 - label_smoothing`, for the losses that have targets. 0 turns it off.
    #[serde(default)]
    pub label_smoothing: f64,
    /// MNIST location and split.
    #[serde(default)]
    pub data: DataConfig,
    /// The generator's input noise.
    #[serde(default)]
    pub noise: NoiseConfig,
    /// Parameter initialisation.
    #[serde(default)]
    pub init: InitConfig,
    /// The two networks.
    pub model: ModelConfig,
    /// One Adam per network.
    #[serde(default)]
    pub optimizer: OptimizersConfig,
    /// Schedule.
    #[serde(default)]
    pub training: TrainingConfig,
    /// What is written to the run directory, and how often.
    #[serde(default)]
    pub output: OutputConfig,
    /// Sample-quality scoring during training.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    /// How images are generated outside training.
    #[serde(default)]
    pub generation: GenerationConfig,
}

/// Scoring samples during training with the five measures of `gan-run eval`. A key left out
/// takes its value from the `Default` impl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Score the generator every N epochs (and at the run's last epoch); 0 turns it off. The
    /// figures join `metrics.csv`, the last ones `summary.json`.
    pub every: usize,
    /// Images generated for each scoring.
    pub samples: usize,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        EvaluationConfig {
            every: 0,
            samples: 10_000,
        }
    }
}

/// The compute device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// dfdx's CPU backend (multi-threaded matrix products).
    #[default]
    Cpu,
    /// Not available in this build: refused at validation.
    Cuda,
}

/// MNIST location and the train/validation split. A key left out takes its value from the
/// `Default` impl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Folder with the four IDX files (gzipped or raw) and their `SHA256SUMS`.
    pub dir: PathBuf,
    /// The first N training images are held out as validation (TensorFlow's `read_data_sets`: 5000).
    pub validation_size: usize,
    /// How many of the remaining training images to train on (all of them when omitted).
    pub train_size: Option<usize>,
}

/// The generator's input noise. A key left out takes its value from the `Default` impl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoiseConfig {
    /// Length of each noise vector.
    pub dim: usize,
    /// Its distribution.
    pub distribution: NoiseDistribution,
}

/// Distribution of each noise component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NoiseDistribution {
    /// Uniform on `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Normal with mean and standard deviation.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

/// The two networks, each an ordered list of layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Noise -> 784 pixels in [0, 1].
    pub generator: NetworkConfig,
    /// 784 pixels -> one logit (the loss applies the sigmoid).
    pub discriminator: NetworkConfig,
}

/// One network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Layers in the order they apply.
    pub layers: Vec<LayerSpec>,
    /// An exponential moving average of the generator's weights (`[model.generator.ema]`),
    /// which grids, scoring, `eval`, `sample` and `export` then draw from. Generator only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<EmaConfig>,
}

/// `[model.generator.ema]`: after each G step, `ema = decay * ema + (1 - decay) * G` (Yazici et
/// al. 2019; StyleGAN's and BigGAN's G_ema). Running statistics and spectral norm's vectors are
/// copied from G rather than averaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// Weight of the average's past, in [0, 1): 0.999 averages over about 1,000 steps.
    pub decay: f64,
    /// The first epoch that averages; before it the average is a copy of G, so that it does
    /// not carry the first epochs' noise.
    #[serde(default = "defaults::one")]
    pub start_epoch: usize,
}

/// How the generator draws images outside training: grids, `gan-run eval`, `gan-run sample`
/// and scoring during training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[clap(rename_all = "snake_case")]
pub enum GenerationMode {
    /// As the network ran in training, outside its own update: batch-norm in mode `batch` uses
    /// the statistics of generation batches of `training.batch_size` images, in mode `running`
    /// the running statistics; dropout is off.
    #[default]
    AsTrained,
    /// The tutorial's image dump: every batch-norm layer passes its input through unchanged,
    /// dropout is off. Reproduces the tutorial's published figure (its second bug).
    TutorialBypass,
}

impl GenerationMode {
    /// The name used in configs, flags, file names and `eval.json`.
    pub fn name(self) -> &'static str {
        match self {
            GenerationMode::AsTrained => "as_trained",
            GenerationMode::TutorialBypass => "tutorial_bypass",
        }
    }
}

/// How images are generated outside training, and which sample grids a run writes. A key left
/// out takes its value from the derived `Default` (the mode's default variant, no extra grids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// The mode of grids named `epoch-NNNN.png`, of scoring during training, and the default of
    /// `gan-run eval` and `gan-run sample`.
    pub mode: GenerationMode,
    /// Further modes to draw each sample grid in, as `epoch-NNNN-<mode>.png`, e.g.
    /// `["tutorial_bypass"]` to see the tutorial's figure beside what the model learned.
    pub extra_grids: Vec<GenerationMode>,
}

/// One Adam per network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OptimizersConfig {
    /// The generator's optimizer.
    #[serde(default)]
    pub generator: AdamSettings,
    /// The discriminator's optimizer.
    #[serde(default)]
    pub discriminator: AdamSettings,
}

/// The training schedule. A key left out takes its value from the `Default` impl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Number of passes over the training images.
    pub epochs: usize,
    /// Images (and noise vectors) per step.
    pub batch_size: usize,
    /// Discriminator steps before each generator step.
    pub d_steps_per_g_step: usize,
    /// Stop the run (its last checkpoint kept) once it looks stuck: D's outputs saturated, or
    /// both losses unmoved for ten epochs. Off by default: a stuck run is only warned about.
    /// Like `epochs`, it decides when training stops, not what it computes, so it is not part
    /// of the fingerprint.
    pub stop_when_stuck: bool,
}

/// What goes into the run directory, and how often. A key left out takes its value from the
/// `Default` impl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Write a checkpoint every N epochs (the last epoch always gets one).
    pub checkpoint_every: usize,
    /// Keep the newest K checkpoints, delete older ones.
    pub keep_checkpoints: usize,
    /// Write a sample grid every N epochs (and after epoch 1 and at the last epoch of every
    /// start); 0 turns grids off.
    pub sample_every: usize,
    /// The grid is `sample_grid x sample_grid` images from one fixed noise batch.
    pub sample_grid: usize,
    /// Also log to a TensorBoard event file in the run directory: the epoch's metrics and
    /// scores, the sample grids and, for sweep points, their hyperparameters.
    pub tensorboard: bool,
    /// Also log each step's losses to TensorBoard every N steps; 0 logs per epoch only.
    pub tensorboard_every_steps: usize,
}

/// Defaults of the keys whose types have no `Default` impl of their own to hold them (the
/// top-level seed, layer options) or whose `Default` impl calls these; every other default is
/// written once, in its type's `Default` impl, which `#[serde(default)]` on the type reads.
mod defaults {
    pub fn seed() -> u64 {
        0
    }
    pub fn one() -> usize {
        1
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/mnist"),
            validation_size: 5000,
            train_size: None,
        }
    }
}
impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            dim: 100,
            distribution: NoiseDistribution::default(),
        }
    }
}
impl Default for NoiseDistribution {
    fn default() -> Self {
        NoiseDistribution::Uniform {
            low: -1.0,
            high: 1.0,
        }
    }
}
impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: 71,
            batch_size: 100,
            d_steps_per_g_step: 1,
            stop_when_stuck: false,
        }
    }
}
impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 1,
            keep_checkpoints: 3,
            sample_every: 10,
            sample_grid: 10,
            tensorboard: true,
            tensorboard_every_steps: 0,
        }
    }
}

/// Pixels per MNIST image: the generator's output width and the discriminator's input width.
pub const IMAGE_PIXELS: usize = 28 * 28;
/// Images in MNIST's training file (validation + train).
pub const MNIST_TRAIN_IMAGES: usize = 60_000;

impl ExperimentConfig {
    /// The TOML text of the resolved config, as saved into `runs/<name>/config.toml`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a resolved config always serialises")
    }
}

/// The longest name a run directory may have: a file name's limit on Linux and macOS.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks that a run name is a plain directory name (no separators, not `.` or `..`), short
/// enough for the file system.
pub fn check_run_name(name: &str) -> std::result::Result<(), String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "is {} bytes long; a run directory's name holds at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.=,".contains(ch))
    {
        return Err(format!(
            "`{name}` cannot name a run directory: use letters, digits and - _ . = , only, \
             not starting with a dot"
        ));
    }
    Ok(())
}

/// Reads, overrides, fills in and validates an experiment file.
pub fn load(path: &Path, overrides: &[Override]) -> Result<Experiment> {
    let text = read_text(path)?;
    from_str(&text, path, overrides)
}

/// Reads a config or sweep file: a regular file of at most [`files::CONFIG`]'s size.
pub fn read_text(path: &Path) -> Result<String> {
    files::read_string(path, files::CONFIG).map_err(|e| Error::io("cannot read", path, e))
}

/// Like [`load`], from text already in memory; `path` names it in messages, and a relative
/// `data.dir` written in it resolves against its folder.
pub fn from_str(text: &str, path: &Path, overrides: &[Override]) -> Result<Experiment> {
    resolve(text, path, overrides, Retired::Refuse)
}

/// Reads the resolved config a run directory saved. Unlike [`load`], it accepts settings that
/// gan-run has retired (such as batch-norm mode `batch_stats_only`), so that old runs can still
/// be listed, compared, diffed, reported and sampled; training refuses them.
pub fn load_saved(path: &Path) -> Result<Experiment> {
    let text = read_text(path)?;
    resolve(&text, path, &[], Retired::Accept)
}

/// Whether [`resolve`] accepts retired settings.
enum Retired {
    Refuse,
    Accept,
}

/// Parses, overrides, fills in and validates: the one way to an [`Experiment`].
fn resolve(
    text: &str,
    path: &Path,
    overrides: &[Override],
    retired: Retired,
) -> Result<Experiment> {
    // The file on its own first, so that its mistakes are reported with line and column.
    let from_file: ExperimentConfig = source::deserialize_text(text, path)?;
    let mut config = if overrides.is_empty() {
        from_file
    } else {
        let mut table: toml::Table = toml::from_str(text).expect("parsed just above");
        for o in overrides {
            o.apply(&mut table)?;
        }
        source::deserialize_overridden(table, path, overrides)
            .map_err(|e| keys::suggest_key(e, overrides, &from_file))?
    };
    validate::fill_in(&mut config);
    if let Retired::Refuse = retired {
        config.data.dir = resolve_data_dir(text, path, overrides, &config.data.dir);
    }
    validate::validate(&config)
        .and_then(|()| match retired {
            Retired::Refuse => validate::refuse_retired(&config),
            Retired::Accept => Ok(()),
        })
        .map_err(|(key, message)| Error::Config {
            location: source::locate(text, path, &key, overrides),
            message,
        })?;
    Ok(Experiment::validated(config))
}

/// The data folder as an absolute path, so that a run's saved config finds it from any
/// folder: written in the config file, it is relative to the file's folder (as an `include`
/// would be); from `--set`/`--data-dir` or the default, relative to the current folder.
pub(crate) fn resolve_data_dir(
    text: &str,
    path: &Path,
    overrides: &[Override],
    dir: &Path,
) -> PathBuf {
    let in_file = toml::from_str::<toml::Table>(text)
        .is_ok_and(|t| t.get("data").and_then(|d| d.get("dir")).is_some());
    let overridden = overrides.iter().any(|o| o.key == "data.dir");
    let joined = match (in_file && !overridden, path.parent()) {
        (true, Some(folder)) => folder.join(dir),
        _ => dir.to_path_buf(),
    };
    let absolute = std::path::absolute(&joined).unwrap_or(joined);
    // `configs/../data/mnist` reads better as `data/mnist`: drop `.` and `..` textually (the
    // folder need not exist yet; a symlinked config folder is rare enough to accept).
    let mut clean = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}

impl ExperimentConfig {
    /// The first retired setting the config uses, as (key, message); see [`load_saved`].
    pub fn retired_setting(&self) -> Option<(String, String)> {
        validate::refuse_retired(self).err()
    }
}

/// A config error with no position, for problems found after loading (e.g. checkpoints).
pub fn location_of(path: &Path, key: &str) -> ConfigLocation {
    ConfigLocation {
        file: path.to_path_buf(),
        line_col: None,
        key: key.to_string(),
        from_override: None,
    }
}

/// Every leaf of a config as `dotted.key -> value` (TOML syntax), e.g.
/// `model.generator.layers[2].mode -> "batch_stats_only"`: the form runs are compared in.
pub fn flatten(config: &ExperimentConfig) -> std::collections::BTreeMap<String, String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            toml::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            // Strings bare (`bce_logits`, not `"bce_logits"`): these are for tables people read.
            toml::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(
        "",
        &toml::Value::try_from(config).expect("configs serialise"),
        &mut out,
    );
    out
}

/// The dotted keys whose values differ between two configs (the name excluded), sorted.
pub fn differing_keys(a: &ExperimentConfig, b: &ExperimentConfig) -> Vec<String> {
    let (mut fa, mut fb) = (flatten(a), flatten(b));
    fa.remove("name");
    fb.remove("name");
    let mut keys: Vec<String> = fa
        .keys()
        .chain(fb.keys())
        .filter(|k| fa.get(*k) != fb.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_strings_are_bare_and_numbers_as_written() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/paper.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let flat = flatten(&from_str(&text, &path, &[]).unwrap());
        assert_eq!(flat["loss"], "tutorial_double_sigmoid");
        assert_eq!(flat["optimizer.discriminator.beta1"], "0.1");
        assert_eq!(flat["model.generator.layers[2].type"], "batch_norm");
    }

    #[test]
    fn keys_left_out_of_a_table_take_its_default_impl() {
        let text = "name = \"x\"\nmodel.generator.layers = []\nmodel.discriminator.layers = []\n\
                    [output]\nsample_every = 1\n[training]\nepochs = 2\n";
        let c: ExperimentConfig = toml::from_str(text).unwrap();
        let output = OutputConfig {
            sample_every: 1,
            ..OutputConfig::default()
        };
        let training = TrainingConfig {
            epochs: 2,
            ..TrainingConfig::default()
        };
        assert_eq!((c.output, c.training), (output, training));
        assert_eq!(c.data, DataConfig::default());
        assert_eq!(c.evaluation, EvaluationConfig::default());
        assert_eq!(c.generation, GenerationConfig::default());
    }

    #[test]
    fn an_experiment_holds_the_shapes_along_its_networks() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let e = from_str(&text, &path, &[]).unwrap();
        let widths = |shapes: &[FeatureShape]| shapes.iter().map(|s| s.len()).collect::<Vec<_>>();
        assert_eq!(widths(e.generator_shapes()), [16, 64, 64, 64, 64, 784, 784]);
        assert_eq!(widths(e.discriminator_shapes()), [784, 64, 64, 1]);
        assert_eq!(
            e.renamed("other").unwrap().generator_shapes(),
            e.generator_shapes()
        );
    }
}
