//! gan-run's own MNIST classifier: the fixed yardstick behind the classifier FID, the classifier
//! score and mode coverage. It is trained by gan-run from `configs/classifier.toml` with the same
//! layer builder as the GANs (plus small random shifts of the training images), and its weights
//! ship inside the binary, so that every user's scores are computed by the same network.
//!
//! The weights file is safetensors with a single metadata entry (so that its bytes, and hence its
//! SHA-256, depend only on its content) holding the training config and the measured accuracy.

use std::collections::HashMap;
use std::path::Path;

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::checksum::sha256_hex;
use crate::config::{plan_shapes, FeatureShape};
use crate::config::{AdamSettings, DataConfig, InitConfig, LayerSpec, IMAGE_PIXELS};
use crate::data::{load_test, load_train, Images};
use crate::error::{Error, Result};
use crate::model::backprop::{PlainNet, Workspace};
use crate::model::kernels::on_worker;
use crate::model::optim::AdamState;
use crate::model::{Layer, Matrix, Mode, Network, TensorVisitor};
use crate::run_dir::checkpoint::{le_bytes, Loader};

/// Number of classes: the ten digits.
pub const CLASSES: usize = 10;
const FORMAT: &str = "gan-run-classifier-1";
const SIDE: usize = 28;

/// The weights every evaluation uses unless told otherwise, reproduced by
/// `gan-run train-classifier configs/classifier.toml --out classifier/mnist-mlp.safetensors`.
pub static BUILTIN_WEIGHTS: &[u8] = include_bytes!("../classifier/mnist-mlp.safetensors");
/// SHA-256 of [`BUILTIN_WEIGHTS`], kept in `classifier/mnist-mlp.sha256` and checked by a test.
pub const BUILTIN_SHA256: &str = include_str!("../classifier/mnist-mlp.sha256");

/// A classifier experiment file (`configs/classifier.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Seeds initialisation, data order, shifts and dropout.
    #[serde(default)]
    pub seed: u64,
    /// MNIST location and split; accuracy is tracked on the validation images.
    #[serde(default)]
    pub data: DataConfig,
    /// Initial weights.
    #[serde(default)]
    pub init: InitConfig,
    /// 784 pixels -> 10 logits. The input of the last linear layer is the feature vector FID uses.
    pub layers: Vec<LayerSpec>,
    /// The schedule.
    pub training: ClassifierTraining,
}

/// How the classifier trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierTraining {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's learning rate in the first epoch.
    pub lr: f64,
    /// The learning rate is multiplied by this after every epoch.
    #[serde(default = "one")]
    pub lr_decay: f64,
    /// Each training image is shifted by a random whole number of pixels in
    /// `[-max_shift, max_shift]` along each axis, the gap filled with background.
    #[serde(default)]
    pub max_shift: usize,
}

fn one() -> f64 {
    1.0
}

impl ClassifierConfig {
    /// Reads and checks a classifier file; errors name the file, line and key.
    pub fn load(path: &Path) -> Result<ClassifierConfig> {
        let text = crate::config::read_text(path)?;
        let mut config: ClassifierConfig = crate::config::source::deserialize_text(&text, path)?;
        config.data.dir = crate::config::resolve_data_dir(&text, path, &[], &config.data.dir);
        config.validate().map_err(|(key, message)| Error::Config {
            location: crate::config::source::locate(&text, path, &key, &[]),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), (String, String)> {
        let shapes = plan_shapes(&self.layers, FeatureShape::Flat(IMAGE_PIXELS))
            .map_err(|(i, message)| (format!("layers[{i}]"), message))?;
        if shapes.last().map(FeatureShape::len) != Some(CLASSES) {
            return Err((
                "layers".into(),
                format!("must end with {CLASSES} outputs, one per digit"),
            ));
        }
        let linears = self
            .layers
            .iter()
            .filter(|l| matches!(l, LayerSpec::Linear(_)))
            .count();
        if linears < 2 {
            return Err((
                "layers".into(),
                "needs at least two linear layers: the input of the last one is the feature vector"
                    .into(),
            ));
        }
        let t = &self.training;
        if t.epochs == 0 || t.batch_size == 0 {
            return Err((
                "training".into(),
                "epochs and batch_size must be at least 1".into(),
            ));
        }
        if !(t.lr > 0.0 && t.lr_decay > 0.0 && t.lr_decay <= 1.0) {
            return Err((
                "training.lr".into(),
                "lr must be positive and lr_decay in (0, 1]".into(),
            ));
        }
        if t.max_shift >= SIDE / 2 {
            return Err((
                "training.max_shift".into(),
                format!("must be below {}", SIDE / 2),
            ));
        }
        Ok(())
    }
}

/// What one classifier epoch measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training cross-entropy.
    pub loss: f64,
    /// Accuracy on the validation images.
    pub validation_accuracy: f64,
    /// Wall time.
    pub seconds: f64,
}

/// A trained classifier, split at its feature layer.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The whole network, as trained and saved.
    pub network: Network,
    /// The layers up to the last linear layer: image -> features.
    body: Network,
    /// The last linear layer and what follows: features -> logits.
    head: Network,
    /// The config it was trained from, as TOML.
    pub config_toml: String,
    /// Accuracy on the 10,000 MNIST test images, measured when it was trained.
    pub test_accuracy: f64,
    /// SHA-256 of the weights file it was read from (empty before it is saved).
    pub sha256: String,
}

/// The classifier's view of a set of images.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Penultimate-layer activations, `n * feature_dim`.
    pub features: Vec<f32>,
    /// Width of a feature vector.
    pub feature_dim: usize,
    /// Class probabilities, `n * 10`.
    pub probs: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Metadata {
    format: String,
    config: String,
    test_accuracy: f64,
}

impl Classifier {
    fn from_network(network: Network, config_toml: String, test_accuracy: f64) -> Classifier {
        let split = network
            .layers
            .iter()
            .rposition(|l| matches!(l, Layer::Linear(_)))
            .expect("validated: at least two linear layers");
        let part = |layers: &[Layer], input_width: usize| Network {
            name: network.name.clone(),
            input_width,
            layers: layers.to_vec(),
        };
        let body = part(&network.layers[..split], network.input_width);
        let feature_dim = body.output_width();
        let head = part(&network.layers[split..], feature_dim);
        Classifier {
            body,
            head,
            network,
            config_toml,
            test_accuracy,
            sha256: String::new(),
        }
    }

    /// The classifier shipped with gan-run.
    pub fn builtin() -> Result<Classifier> {
        Classifier::from_bytes(BUILTIN_WEIGHTS, Path::new("<built-in classifier>"))
    }

    /// Reads a weights file written by [`Classifier::to_bytes`].
    pub fn load(path: &Path) -> Result<Classifier> {
        let bytes = crate::files::read(path, crate::files::CLASSIFIER)
            .map_err(|e| Error::io("cannot read", path, e))?;
        Classifier::from_bytes(&bytes, path)
    }

    /// Parses a weights file's bytes; `path` is only used in messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Classifier> {
        let bad = |message: String| Error::ClassifierFile {
            path: path.to_path_buf(),
            message,
        };
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
        let meta: Metadata = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("gan_run"))
            .and_then(|j| serde_json::from_str(j).ok())
            .ok_or_else(|| bad("has no gan-run classifier metadata".into()))?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{FORMAT}`",
                meta.format
            )));
        }
        let config: ClassifierConfig = toml::from_str(&meta.config)
            .map_err(|e| bad(format!("its embedded config does not parse: {e}")))?;
        config
            .validate()
            .map_err(|(k, m)| bad(format!("its embedded config is invalid at `{k}`: {m}")))?;
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut network = Network::build(
            "classifier",
            &config.layers,
            IMAGE_PIXELS,
            &config.init,
            &dev,
            &mut rng,
        );
        let mut loader = Loader::new(&file);
        loader.fill(&mut network);
        if let Some(e) = loader.error {
            return Err(bad(e));
        }
        let mut classifier = Classifier::from_network(network, meta.config, meta.test_accuracy);
        classifier.sha256 = sha256_hex(bytes);
        Ok(classifier)
    }

    /// The weights file: every tensor, and one metadata entry with the config and accuracy.
    pub fn to_bytes(&mut self) -> Vec<u8> {
        struct Collect(Vec<(String, Vec<usize>, Vec<u8>)>);
        impl TensorVisitor for Collect {
            fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, _: bool) {
                let shape = t.shape().concrete().into_iter().collect();
                let bytes = le_bytes(&t.as_vec());
                self.0.push((name.to_string(), shape, bytes));
            }
        }
        let mut c = Collect(Vec::new());
        self.network.visit(&mut c);
        let meta = Metadata {
            format: FORMAT.into(),
            config: self.config_toml.clone(),
            test_accuracy: self.test_accuracy,
        };
        let metadata: HashMap<String, String> = [(
            "gan_run".to_string(),
            serde_json::to_string(&meta).expect("metadata serialises"),
        )]
        .into();
        let views: Vec<(String, TensorView<'_>)> =
            c.0.iter()
                .map(|(n, s, b)| {
                    let view = TensorView::new(Dtype::F32, s.clone(), b).expect("sizes agree");
                    (n.clone(), view)
                })
                .collect();
        safetensors::serialize(views, &Some(metadata)).expect("in-memory serialisation")
    }

    /// Width of the feature vector.
    pub fn feature_dim(&self) -> usize {
        self.body.output_width()
    }

    /// Features and class probabilities of `images` (784 pixels each, in [0, 1]).
    pub fn outputs(&mut self, images: &[f32], dev: &Cpu) -> Outputs {
        let mut features = Vec::with_capacity(images.len() / IMAGE_PIXELS * self.feature_dim());
        let mut probs = Vec::with_capacity(images.len() / IMAGE_PIXELS * CLASSES);
        // The training step's kernels (faer, both cores) run the layers; scoring a run's 10,000
        // images took several seconds on dfdx's single-threaded products.
        let (mut body, mut head) = (
            PlainNet::check_out(&self.body),
            PlainNet::check_out(&self.head),
        );
        let mut workspace = Workspace::default();
        for chunk in images.chunks(1000 * IMAGE_PIXELS) {
            let rows = chunk.len() / IMAGE_PIXELS;
            let (f, logits) = on_worker(|| {
                let (f, _) = body.forward(chunk.to_vec(), rows, None, false, &mut workspace);
                let (logits, _) = head.forward(f.clone(), rows, None, false, &mut workspace);
                (f, logits)
            });
            features.extend(f);
            let logits: Matrix = dev.tensor_from_vec(logits, (rows, CLASSES));
            probs.extend(logits.softmax::<Axis<1>>().as_vec());
        }
        Outputs {
            features,
            feature_dim: self.feature_dim(),
            probs,
        }
    }

    /// Share of `images` whose most probable class is their label.
    pub fn accuracy(&mut self, images: &Images, dev: &Cpu) -> f64 {
        let probs = self.outputs(&images.pixels(), dev).probs;
        let correct = probs
            .chunks_exact(CLASSES)
            .zip(&images.labels)
            .filter(|(p, &label)| argmax(p) == label as usize)
            .count();
        correct as f64 / images.len().max(1) as f64
    }
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Copies `src` (28 x 28 pixel bytes) moved by `dx` columns and `dy` rows into `out`, scaled to
/// [0, 1], filling with 0.
fn push_shifted(src: &[u8], dx: isize, dy: isize, out: &mut Vec<f32>) {
    for y in 0..SIDE as isize {
        for x in 0..SIDE as isize {
            let (sx, sy) = (x - dx, y - dy);
            let inside = (0..SIDE as isize).contains(&sx) && (0..SIDE as isize).contains(&sy);
            out.push(if inside {
                crate::data::scale(src[sy as usize * SIDE + sx as usize])
            } else {
                0.0
            });
        }
    }
}

/// Trains a classifier from `config`, calling `on_epoch` after each epoch, and measures its
/// test accuracy.
pub fn train(
    config: &ClassifierConfig,
    mut on_epoch: impl FnMut(&ClassifierEpoch),
) -> Result<Classifier> {
    let data = load_train(&config.data)?;
    let test = load_test(&config.data.dir)?;
    let dev = Cpu::seed_from_u64(config.seed);
    let stream = |s: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(s);
        rng
    };
    let mut init = stream(1);
    let mut rng = stream(2);
    let network = Network::build(
        "classifier",
        &config.layers,
        IMAGE_PIXELS,
        &config.init,
        &dev,
        &mut init,
    );
    let toml = toml::to_string(config).expect("config serialises");
    let mut classifier = Classifier::from_network(network, toml, 0.0);
    let t = &config.training;
    let mut opt = AdamState::new(&AdamSettings {
        lr: t.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        lr_decay: Default::default(),
    });
    let (batch, shift) = (t.batch_size, t.max_shift as isize);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    for epoch in 1..=t.epochs {
        let started = std::time::Instant::now();
        opt.cfg.lr = t.lr * t.lr_decay.powi(epoch as i32 - 1);
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let batches = order.len() / batch;
        for b in 0..batches {
            let mut pixels = Vec::with_capacity(batch * IMAGE_PIXELS);
            let mut targets = vec![0.0f32; batch * CLASSES];
            for (row, &i) in order[b * batch..(b + 1) * batch].iter().enumerate() {
                let (dx, dy) = (rng.gen_range(-shift..=shift), rng.gen_range(-shift..=shift));
                push_shifted(data.train.image(i), dx, dy, &mut pixels);
                targets[row * CLASSES + data.train.labels[i] as usize] = 1.0;
            }
            let x: Matrix = dev.tensor_from_vec(pixels, (batch, IMAGE_PIXELS));
            let targets: Matrix = dev.tensor_from_vec(targets, (batch, CLASSES));
            let logits = classifier
                .network
                .forward(x.leaky_traced(), Mode::Train { rng: &mut rng });
            let loss = cross_entropy_with_logits_loss(logits, targets);
            loss_sum += loss.array() as f64;
            let mut grads = loss.backward();
            opt.update(&mut classifier.network, &mut grads);
        }
        // Re-split so that the feature/head halves see the updated weights.
        classifier = Classifier::from_network(classifier.network, classifier.config_toml, 0.0);
        let validation_accuracy = classifier.accuracy(&data.validation, &dev);
        on_epoch(&ClassifierEpoch {
            epoch,
            loss: loss_sum / batches as f64,
            validation_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    classifier.test_accuracy = classifier.accuracy(&test, &dev);
    Ok(classifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_pixels_and_fill_with_background() {
        let mut src = vec![0u8; SIDE * SIDE];
        src[0] = 255; // top-left corner
        src[SIDE * SIDE - 1] = 51; // bottom-right corner
        let mut out = Vec::new();
        push_shifted(&src, 1, 2, &mut out);
        assert_eq!(out[2 * SIDE + 1], 1.0);
        assert_eq!(
            out.iter().filter(|&&v| v != 0.0).count(),
            1,
            "corner pushed out"
        );
        out.clear();
        push_shifted(&src, 0, 0, &mut out);
        let scaled: Vec<f32> = src.iter().map(|&b| b as f32 / 255.0).collect();
        assert_eq!(out, scaled);
    }
}
