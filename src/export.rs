//! Weights for other tools: `gan-run export` writes a run's generator (or both networks) as a
//! plain safetensors file with its architecture in the metadata, without Adam's moments or
//! anything else a checkpoint keeps for resuming. docs/checkpoint-format.md documents the
//! names and layouts; examples/generate.py reads it with numpy alone.

use std::collections::HashMap;
use std::path::Path;

use dfdx::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::model::{Layer, LayerSpec, Network, TensorVisitor};
use crate::run_dir::checkpoint::le_bytes;
use crate::sample::Generated;
use crate::train::{kept_class, GenerationLabels};

/// The `format` metadata of an export.
pub const FORMAT: &str = "gan-run-weights-1";

/// Which networks an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Networks {
    /// The generator alone: what drawing images needs.
    Generator,
    /// Both.
    Both,
}

/// The network other tools run: each spectrally normalised layer's weight replaced by
/// the weight its forward pass uses, `W / sigma` (sigma from the checkpoint's held u, v), and
/// its u, v dropped, so that a reader needs no power iteration; and its layer list to match.
fn as_exported(net: &Network, layers: &[LayerSpec]) -> (Network, Vec<LayerSpec>) {
    let mut net = net.clone();
    for layer in &mut net.layers {
        match layer {
            Layer::Linear(linear) => {
                linear.weight = linear.effective_weight();
                linear.spectral = None;
            }
            Layer::Conv2d(conv) => {
                conv.weight = conv.effective_weight();
                conv.spectral = None;
            }
            Layer::ConvTranspose2d(conv) => {
                conv.weight = conv.effective_weight();
                conv.spectral = None;
            }
            _ => {}
        }
    }
    let mut layers = layers.to_vec();
    for spec in &mut layers {
        match spec {
            LayerSpec::Linear(linear) => linear.spectral_norm = false,
            LayerSpec::Conv2d(conv) => conv.spectral_norm = false,
            LayerSpec::ConvTranspose2d(conv) => conv.spectral_norm = false,
            _ => {}
        }
    }
    (net, layers)
}

/// The tensors of a network as (`<prefix>.<name>`, shape, values), in visiting order.
fn tensors_of(net: &mut Network, prefix: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    struct Collect<'a>(&'a str, Vec<(String, Vec<usize>, Vec<f32>)>);
    impl TensorVisitor for Collect<'_> {
        fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, _: bool) {
            let shape = t.shape().concrete().into_iter().collect();
            self.1
                .push((format!("{}.{name}", self.0), shape, t.as_vec()));
        }
    }
    let mut c = Collect(prefix, Vec::new());
    net.visit(&mut c);
    c.1
}

/// Writes `networks` of a restored run to `out` (atomically): tensors `generator.layers.N.*`
/// (and `discriminator.layers.N.*`), f32 little-endian, linear weights `[in, out]`; metadata
/// `format`, `epoch`, `generator_layers` / `discriminator_layers` (the layer lists as JSON),
/// `noise` (dim and distribution as JSON), `generation_mode`, `batch_size`, `config` (the
/// resolved config as TOML), `generator_weights` (`moving_average` or `trained`) and, for a
/// class-conditional run, `conditioning` (its table as JSON).
pub fn write_export(
    config: &Experiment,
    generator: &mut Network,
    discriminator: &mut Network,
    epoch: usize,
    networks: Networks,
    out: &Path,
) -> Result<()> {
    let (mut generator, generator_layers) = as_exported(generator, &config.model.generator.layers);
    let (mut discriminator, discriminator_layers) =
        as_exported(discriminator, &config.model.discriminator.layers);
    let mut tensors = tensors_of(&mut generator, "generator");
    if networks == Networks::Both {
        tensors.extend(tensors_of(&mut discriminator, "discriminator"));
    }
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("epoch".to_string(), epoch.to_string()),
        ("generator_layers".to_string(), json(&generator_layers)),
        ("noise".to_string(), json(&config.noise)),
        (
            "generation_mode".to_string(),
            config.generation.mode.name().to_string(),
        ),
        (
            "batch_size".to_string(),
            config.training.batch_size.to_string(),
        ),
        ("config".to_string(), config.to_toml()),
    ]);
    // Which generator the `generator.*` tensors are: the moving average or G itself.
    let weights = match generator.name == crate::train::EMA_NAME {
        true => "moving_average",
        false => "trained",
    };
    metadata.insert("generator_weights".to_string(), weights.to_string());
    if networks == Networks::Both {
        metadata.insert(
            "discriminator_layers".to_string(),
            json(&discriminator_layers),
        );
    }
    if let Some(conditioning) = &config.conditioning {
        metadata.insert("conditioning".to_string(), json(conditioning));
    }
    let tensors: Vec<Bytes> = tensors
        .into_iter()
        .map(|(name, shape, values)| Bytes {
            name,
            dtype: Dtype::F32,
            shape,
            data: le_bytes(&values),
        })
        .collect();
    write_tensors(out, &tensors, metadata)
}

/// Writes the inputs behind `generated`: tensor `noise` (`[rows, noise.dim]`, whole batches of
/// `batch_size`; the images are the first `images` rows' outputs, or with metadata
/// `kept_label` those of the first `images` rows of that label) and, for a class-conditional
/// run, `labels` (`[rows]`, U8), each row's class.
pub fn write_noise(out: &Path, generated: &Generated) -> Result<()> {
    let dim = generated.config.noise.dim;
    let inputs = &generated.inputs;
    let rows = inputs.noise.len() / dim;
    let mut metadata = HashMap::from([
        (
            "batch_size".to_string(),
            generated.config.training.batch_size.to_string(),
        ),
        (
            "images".to_string(),
            (generated.pixels.len() / crate::config::IMAGE_PIXELS).to_string(),
        ),
        (
            "generation_mode".to_string(),
            generated.mode.name().to_string(),
        ),
    ]);
    let mut tensors = vec![Bytes {
        name: "noise".to_string(),
        dtype: Dtype::F32,
        shape: vec![rows, dim],
        data: le_bytes(&inputs.noise),
    }];
    if generated.config.conditioning.is_some() {
        let labels = match &generated.labels {
            GenerationLabels::Balanced => "balanced".to_string(),
            GenerationLabels::Only(label) => label.to_string(),
            GenerationLabels::GridRows { width } => format!("one class per row of {width}"),
            GenerationLabels::Listed(_) => "listed".to_string(),
        };
        metadata.insert("labels".to_string(), labels);
        let kept = kept_class(&generated.config, generated.mode, &generated.labels);
        if let Some(class) = kept {
            // The rows are balanced batches; the images are the first of this class's.
            metadata.insert("kept_label".to_string(), class.to_string());
        }
        tensors.push(Bytes {
            name: "labels".to_string(),
            dtype: Dtype::U8,
            shape: vec![rows],
            data: inputs.labels.clone(),
        });
    }
    write_tensors(out, &tensors, metadata)
}

/// A tensor ready to write: its name, dtype, shape and little-endian bytes.
struct Bytes {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn write_tensors(out: &Path, tensors: &[Bytes], metadata: HashMap<String, String>) -> Result<()> {
    let views = tensors
        .iter()
        .map(|t| {
            let view =
                TensorView::new(t.dtype, t.shape.clone(), &t.data).expect("shape matches data");
            (t.name.clone(), view)
        })
        .collect::<Vec<_>>();
    let data = safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::RunDir {
        path: out.to_path_buf(),
        message: format!("cannot serialise: {e:?}"),
    })?;
    write_atomic(out, &data)
}

/// A config part as JSON, for the metadata.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("config parts serialise")
}
