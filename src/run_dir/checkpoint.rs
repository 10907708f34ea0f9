//! Checkpoints in safetensors: both networks, both optimizers' moments and step counts, the
//! training RNG's exact position and the metrics so far, with a checksum over every tensor, so
//! that a resumed run continues bit for bit and a damaged or foreign file is refused.

use std::collections::HashMap;
use std::path::Path;

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{Network, TensorVisitor};
use crate::train::optim::AdamState;
use crate::train::GanState;

const FORMAT: &str = "gan-run-checkpoint-2";
/// The first format: the same, but its checksum covered the tensors only. Still read, so that
/// older runs can be resumed, sampled and scored.
const FORMAT_V1: &str = "gan-run-checkpoint-1";

/// Serialises the state; `fingerprint` ties the file to the config that produced it.
pub fn to_bytes(state: &mut GanState, fingerprint: &str) -> Vec<u8> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    collect(&mut state.generator, &mut state.g_opt, &mut tensors);
    collect(&mut state.discriminator, &mut state.d_opt, &mut tensors);
    let rng = &state.rng;
    let mut metadata: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("fingerprint", fingerprint.to_string()),
        ("epoch", state.epoch.to_string()),
        ("generator_steps", state.g_opt.steps.to_string()),
        ("discriminator_steps", state.d_opt.steps.to_string()),
        ("rng_seed", hex(&rng.get_seed())),
        ("rng_stream", rng.get_stream().to_string()),
        ("rng_word_pos", rng.get_word_pos().to_string()),
        (
            "metrics",
            serde_json::to_string(&state.history).expect("metrics serialise"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let sum = checksum(
        tensors.iter().map(|(n, _, b)| (n.as_str(), b.as_slice())),
        &metadata,
    );
    metadata.insert("checksum".into(), sum);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes agree");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, &Some(metadata)).expect("in-memory serialisation")
}

/// Restores `state` (built fresh from the same config) from a checkpoint file's bytes.
pub fn restore(state: &mut GanState, bytes: &[u8], path: &Path, fingerprint: &str) -> Result<()> {
    let bad = |message: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        bad(format!(
            "not a readable safetensors file ({e}): damaged or truncated"
        ))
    })?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| {
        bad(format!(
            "not a readable safetensors file ({e}): damaged or truncated"
        ))
    })?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        meta.get(k)
            .cloned()
            .ok_or_else(|| bad(format!("metadata has no `{k}`: not a gan-run checkpoint")))
    };
    let format = get("format")?;
    if format != FORMAT && format != FORMAT_V1 {
        return Err(bad(format!(
            "format `{}`, expected `{FORMAT}`",
            get("format")?
        )));
    }
    if get("fingerprint")? != fingerprint {
        return Err(bad(
            "it was written by a different config (model, optimizer, loss, data split or seed differ)"
                .into(),
        ));
    }
    let mut names: Vec<String> = file.names().into_iter().cloned().collect();
    names.sort();
    let mut sum_input = Vec::new();
    for name in &names {
        let view = file
            .tensor(name)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        sum_input.push((name.clone(), view.data().to_vec()));
    }
    let mut covered = meta.clone();
    covered.remove("checksum");
    if format == FORMAT_V1 {
        covered.clear();
    }
    let actual = checksum(
        sum_input.iter().map(|(n, b)| (n.as_str(), b.as_slice())),
        &covered,
    );
    if actual != get("checksum")? {
        return Err(bad(
            "its tensors or metadata do not match its checksum: the file is damaged".into(),
        ));
    }

    let parse = |k: &str| -> Result<u128> {
        get(k)?
            .parse()
            .map_err(|_| bad(format!("metadata `{k}` is not a number")))
    };
    let mut loader = Loader {
        file: &file,
        prefix: String::new(),
        error: None,
    };
    load_network(&mut state.generator, &mut state.g_opt, &mut loader);
    load_network(&mut state.discriminator, &mut state.d_opt, &mut loader);
    if let Some(message) = loader.error {
        return Err(bad(message));
    }
    state.epoch = parse("epoch")? as usize;
    state.g_opt.steps = parse("generator_steps")? as i32;
    state.d_opt.steps = parse("discriminator_steps")? as i32;
    let seed: [u8; 32] = unhex(&get("rng_seed")?)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("metadata `rng_seed` is malformed".into()))?;
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(parse("rng_stream")? as u64);
    rng.set_word_pos(parse("rng_word_pos")?);
    state.rng = rng;
    state.history = serde_json::from_str(&get("metrics")?)
        .map_err(|e| bad(format!("metadata `metrics` is malformed: {e}")))?;
    Ok(())
}

/// The epoch recorded in a checkpoint's header, without reading its tensors.
pub fn epoch_of(bytes: &[u8]) -> Option<usize> {
    let (_, header) = SafeTensors::read_metadata(bytes).ok()?;
    header.metadata().as_ref()?.get("epoch")?.parse().ok()
}

fn collect(net: &mut Network, opt: &mut AdamState, out: &mut Vec<(String, Vec<usize>, Vec<u8>)>) {
    struct Collect<'a> {
        prefix: String,
        opt: &'a mut AdamState,
        out: &'a mut Vec<(String, Vec<usize>, Vec<u8>)>,
    }
    impl TensorVisitor for Collect<'_> {
        fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
            let shape = t.shape().concrete().into_iter().collect::<Vec<_>>();
            let p = &self.prefix;
            self.out
                .push((format!("{p}.{name}"), shape.clone(), le_bytes(&t.as_vec())));
            if trainable {
                let (m, v) = self.opt.moments_of(t);
                self.out
                    .push((format!("{p}.adam_m.{name}"), shape.clone(), le_bytes(m)));
                self.out
                    .push((format!("{p}.adam_v.{name}"), shape, le_bytes(v)));
            }
        }
    }
    let prefix = net.name.clone();
    net.visit(&mut Collect { prefix, opt, out });
}

/// Reads named f32 tensors of known shapes out of a safetensors file, keeping the first
/// problem (a missing tensor, a wrong dtype or shape) as `error` for the caller to report.
pub(crate) struct Loader<'a> {
    file: &'a SafeTensors<'a>,
    prefix: String,
    /// The first problem met.
    pub(crate) error: Option<String>,
}

impl<'a> Loader<'a> {
    /// A loader of unprefixed names.
    pub(crate) fn new(file: &'a SafeTensors<'a>) -> Self {
        Loader {
            file,
            prefix: String::new(),
            error: None,
        }
    }

    /// Copies every tensor of `net` (its visit names, no prefix) from the file.
    pub(crate) fn fill(&mut self, net: &mut Network) {
        struct Fill<'a, 'b>(&'a mut Loader<'b>);
        impl TensorVisitor for Fill<'_, '_> {
            fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, _: bool) {
                let shape: Vec<usize> = t.shape().concrete().into_iter().collect();
                if let Some(values) = self.0.read(name, &shape) {
                    t.copy_from(&values);
                }
            }
        }
        net.visit(&mut Fill(self));
    }

    fn read(&mut self, name: &str, shape: &[usize]) -> Option<Vec<f32>> {
        if self.error.is_some() {
            return None;
        }
        let view = match self.file.tensor(name) {
            Ok(v) => v,
            Err(_) => {
                self.error = Some(format!(
                    "has no tensor `{name}`: it belongs to another model"
                ));
                return None;
            }
        };
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            self.error = Some(format!(
                "tensor `{name}` is {:?} {:?}, the model needs F32 {shape:?}",
                view.dtype(),
                view.shape()
            ));
            return None;
        }
        Some(
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        )
    }
}

fn load_network(net: &mut Network, opt: &mut AdamState, loader: &mut Loader<'_>) {
    struct Load<'a, 'b> {
        opt: &'a mut AdamState,
        loader: &'a mut Loader<'b>,
    }
    impl TensorVisitor for Load<'_, '_> {
        fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
            let shape: Vec<usize> = t.shape().concrete().into_iter().collect();
            let p = self.loader.prefix.clone();
            if let Some(values) = self.loader.read(&format!("{p}.{name}"), &shape) {
                t.copy_from(&values);
            }
            if trainable {
                let m = self.loader.read(&format!("{p}.adam_m.{name}"), &shape);
                let v = self.loader.read(&format!("{p}.adam_v.{name}"), &shape);
                if let (Some(m), Some(v)) = (m, v) {
                    let (mt, vt) = self.opt.moments_of(t);
                    mt.copy_from_slice(&m);
                    vt.copy_from_slice(&v);
                }
            }
        }
    }
    loader.prefix = net.name.clone();
    net.visit(&mut Load { opt, loader });
}

/// Little-endian bytes of f32 values, as safetensors stores them.
pub(crate) fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// SHA-256 over every tensor (by name) and every metadata entry but the checksum itself.
fn checksum<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a [u8])>,
    metadata: &HashMap<String, String>,
) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    let meta: std::collections::BTreeMap<_, _> = metadata.iter().collect();
    for (k, v) in meta {
        for part in [k.as_bytes(), v.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    for (name, bytes) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Override;

    fn state(overrides: &[&str]) -> (GanState, String) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
        let config = crate::config::load(&path, &o).unwrap();
        (
            GanState::new(&config, &Cpu::default()),
            config.training_fingerprint(),
        )
    }

    #[test]
    fn round_trip_restores_everything() {
        let (mut a, fp) = state(&[]);
        a.epoch = 3;
        a.g_opt.steps = 7;
        use rand::Rng;
        let _: u64 = a.rng.gen();
        let bytes = to_bytes(&mut a, &fp);
        let (mut b, _) = state(&["seed=99"]); // other initial weights
        restore(&mut b, &bytes, Path::new("x"), &fp).unwrap();
        // Same tensors and metadata (the header's key order is not fixed: safetensors takes a
        // HashMap), so compare contents.
        let again = to_bytes(&mut b, &fp);
        let contents = |bytes: &[u8]| {
            let st = SafeTensors::deserialize(bytes).unwrap();
            let mut t: Vec<(String, Vec<u8>)> = st
                .tensors()
                .into_iter()
                .map(|(n, v)| (n, v.data().to_vec()))
                .collect();
            t.sort();
            let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
            let meta: std::collections::BTreeMap<_, _> =
                header.metadata().clone().unwrap().into_iter().collect();
            (t, meta)
        };
        assert!(
            contents(&again) == contents(&bytes),
            "restored state differs"
        );
        assert_eq!((b.epoch, b.g_opt.steps), (3, 7));
        assert_eq!(b.rng.gen::<u64>(), a.rng.gen::<u64>());
    }

    #[test]
    fn foreign_checkpoints_are_refused() {
        let (mut a, fp) = state(&[]);
        let bytes = to_bytes(&mut a, &fp);
        let (mut other, other_fp) = state(&["model.generator.layers[0].out=32"]);
        let e = restore(&mut other, &bytes, Path::new("x"), &other_fp).unwrap_err();
        assert!(e.to_string().contains("different config"), "{e}");
        // Even with a matching fingerprint, tensors of other shapes are named and refused.
        let e = restore(&mut other, &bytes, Path::new("x"), &fp).unwrap_err();
        assert!(e.to_string().contains("generator.layers.0.weight"), "{e}");
    }
}
