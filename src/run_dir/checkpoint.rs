//! Checkpoints in safetensors: both networks, both optimizers' moments and step counts, the
//! training RNG's exact position and the metrics so far, with a checksum over every tensor, so
//! that a resumed run continues bit for bit and a damaged or foreign file is refused.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, View};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::optim::AdamState;
use crate::model::{Network, TensorVisitor};
use crate::train::GanState;

mod layout;

const FORMAT: &str = "gan-run-checkpoint-2";
/// The first format: the same, but its checksum covered the tensors only. Still read, so that
/// older runs can be resumed, sampled and scored.
const FORMAT_V1: &str = "gan-run-checkpoint-1";
/// The metadata key of the epoch in progress, in checkpoints written at an interrupt (only).
const PARTIAL_EPOCH_KEY: &str = "partial_epoch";

/// Writes the state as a checkpoint into `out` (the caller's temporary file, which it renames
/// into place: [`crate::files::write_atomic_with`]); `fingerprint` ties the file to the config
/// that produced it, and `provenance` (the start's
/// [`Provenance`](super::provenance::Provenance) as JSON; empty for none) goes into the
/// metadata under the checksum: metadata only, no tensor depends on it.
///
/// Each tensor is copied out of the state only as it is hashed or written, so saving holds one
/// tensor at a time: serialising into memory would hold the whole state twice more (its bytes
/// and the file's), at every epoch's end, and set a training run's peak memory (BENCHMARKS.md,
/// Memory).
pub fn write(
    state: &mut GanState,
    fingerprint: &str,
    provenance: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let state = RefCell::new(state);
    let (tensors, metadata) = prepare(&state, fingerprint, provenance);
    layout::stream(&tensors, &metadata, out)
}

/// The bytes [`write`] would write (for tests, which edit them).
#[cfg(test)]
pub(crate) fn to_bytes(state: &mut GanState, fingerprint: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    write(state, fingerprint, "", &mut bytes).expect("in-memory writes succeed");
    bytes
}

/// The tensors of a checkpoint, each read out of the state when asked for, and its metadata
/// with the checksum.
fn prepare<'a, 's>(
    state: &'a RefCell<&'s mut GanState>,
    fingerprint: &str,
    provenance: &str,
) -> (Vec<(String, LazyTensor<'a, 's>)>, HashMap<String, String>) {
    let mut listed: Vec<(String, Vec<usize>)> = Vec::new();
    for_each_tensor(&mut state.borrow_mut(), &mut |name, shape, _| {
        listed.push((name.to_string(), shape.to_vec()))
    });
    listed.sort();
    let tensors: Vec<(String, LazyTensor<'a, 's>)> = listed
        .into_iter()
        .map(|(name, shape)| {
            let lazy = LazyTensor {
                state,
                name: name.clone(),
                shape,
            };
            (name, lazy)
        })
        .collect();
    let mut metadata: HashMap<String, String> = {
        let s = state.borrow();
        let rng = &s.rng;
        [
            ("format", FORMAT.to_string()),
            ("fingerprint", fingerprint.to_string()),
            ("epoch", s.epoch.to_string()),
            ("generator_steps", s.g_opt.steps.to_string()),
            ("discriminator_steps", s.d_opt.steps.to_string()),
            ("rng_seed", hex(&rng.get_seed())),
            ("rng_stream", rng.get_stream().to_string()),
            ("rng_word_pos", rng.get_word_pos().to_string()),
            (
                "metrics",
                serde_json::to_string(&s.history).expect("metrics serialise"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain((!provenance.is_empty()).then(|| ("provenance".into(), provenance.into())))
        .chain(s.partial.as_ref().map(|p| {
            (
                PARTIAL_EPOCH_KEY.to_string(),
                serde_json::to_string(p).expect("a partial epoch serialises"),
            )
        }))
        .collect()
    };
    let sum = checksum(
        tensors.iter().map(|(name, t)| (name.as_str(), t.data())),
        &metadata,
    );
    metadata.insert("checksum".into(), sum);
    (tensors, metadata)
}

/// One tensor of the state, copied out (as little-endian bytes) only when its data is read.
struct LazyTensor<'a, 's> {
    state: &'a RefCell<&'s mut GanState>,
    name: String,
    shape: Vec<usize>,
}

impl View for LazyTensor<'_, '_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let mut found = None;
        for_each_tensor(&mut self.state.borrow_mut(), &mut |name, _, values| {
            if name == self.name {
                found = Some(le_bytes(&values()));
            }
        });
        Cow::Owned(found.expect("a listed tensor is in the state"))
    }

    fn data_len(&self) -> usize {
        4 * self.shape.iter().product::<usize>()
    }
}

/// What [`for_each_tensor`] calls: `(name, shape, values)`.
type TensorSink<'f> = dyn FnMut(&str, &[usize], &dyn Fn() -> Vec<f32>) + 'f;

/// Calls `f(name, shape, values)` for every tensor a checkpoint holds: both networks' tensors
/// and their Adam moments. `values` copies the tensor out only when called.
fn for_each_tensor(state: &mut GanState, f: &mut TensorSink<'_>) {
    struct Each<'a, 'f> {
        prefix: String,
        opt: Option<&'a mut AdamState>,
        f: &'a mut TensorSink<'f>,
    }
    impl TensorVisitor for Each<'_, '_> {
        fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
            let shape: Vec<usize> = t.shape().concrete().into_iter().collect();
            let p = &self.prefix;
            (self.f)(&format!("{p}.{name}"), &shape, &|| t.as_vec());
            if let (true, Some(opt)) = (trainable, &mut self.opt) {
                let (m, v) = opt.moments_of(t);
                (self.f)(&format!("{p}.adam_m.{name}"), &shape, &|| m.clone());
                (self.f)(&format!("{p}.adam_v.{name}"), &shape, &|| v.clone());
            }
        }
    }
    for (net, opt) in [
        (&mut state.generator, &mut state.g_opt),
        (&mut state.discriminator, &mut state.d_opt),
    ] {
        let prefix = net.name.clone();
        let opt = Some(opt);
        net.visit(&mut Each { prefix, opt, f });
    }
    // The generator's moving average: its tensors alone (it has no optimizer).
    if let Some(ema) = &mut state.ema {
        let prefix = ema.name.clone();
        ema.visit(&mut Each {
            prefix,
            opt: None,
            f,
        });
    }
}

/// Restores `state` (built fresh from the same config) from a checkpoint file's bytes. With
/// `fingerprint` the file must have been written under a config of that fingerprint; without
/// (a branch, `train --branch-from`), any config whose networks hold the same tensors will do.
pub fn restore(
    state: &mut GanState,
    bytes: &[u8],
    path: &Path,
    fingerprint: Option<&str>,
) -> Result<()> {
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
    if let Some(expected) = fingerprint {
        if get("fingerprint")? != expected {
            return Err(bad(
                "it was written by a different config (model, optimizer, loss, data split or seed differ)"
                    .into(),
            ));
        }
    }
    let mut names: Vec<String> = file.names().into_iter().cloned().collect();
    names.sort();
    let mut views = Vec::with_capacity(names.len());
    for name in &names {
        let view = file
            .tensor(name)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        views.push((name.as_str(), view));
    }
    let mut covered = meta.clone();
    covered.remove("checksum");
    if format == FORMAT_V1 {
        covered.clear();
    }
    let actual = checksum(
        views
            .iter()
            .map(|(name, view)| (*name, Cow::Borrowed(view.data()))),
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
    let mut loader = Loader::new(&file);
    load_network(&mut state.generator, &mut state.g_opt, &mut loader);
    load_network(&mut state.discriminator, &mut state.d_opt, &mut loader);
    if let Some(ema) = &mut state.ema {
        loader.prefix = ema.name.clone();
        loader.fill_prefixed(ema);
    }
    // A branch's networks are another config's: what differs is the branch's to fix.
    let mismatch = |message: String| match fingerprint {
        Some(_) => bad(message),
        None => Error::Branch {
            path: path.to_path_buf(),
            message,
        },
    };
    if let Some(message) = loader.error {
        return Err(mismatch(message));
    }
    let unread: Vec<&String> = names.iter().filter(|n| !loader.read.contains(*n)).collect();
    if let (None, Some(first)) = (fingerprint, unread.first()) {
        return Err(mismatch(format!(
            "it holds {} tensors this config's networks lack, `{first}` first (a layer, \
             spectral norm, the conditioning or the moving average that the branch's config \
             leaves out)",
            unread.len()
        )));
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
    state.partial = match meta.get(PARTIAL_EPOCH_KEY) {
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| bad(format!("metadata `{PARTIAL_EPOCH_KEY}` is malformed: {e}")))?,
        ),
        None => None,
    };
    Ok(())
}

/// The epoch and config fingerprint a checkpoint file's header records, reading only the
/// header, not the tensors that make up the rest of the file. `None` for anything unreadable:
/// only [`restore`] judges a file, and says what is wrong with it.
pub fn peek(path: &Path) -> Option<(usize, String)> {
    use std::io::Read;
    let (mut file, _) = crate::files::open(path, crate::files::CHECKPOINT).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    if len > 1 << 26 {
        return None; // not a header this program wrote
    }
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let meta = header.get("__metadata__")?;
    let epoch = meta.get("epoch")?.as_str()?.parse().ok()?;
    let fingerprint = meta.get("fingerprint")?.as_str()?.to_string();
    Some((epoch, fingerprint))
}

/// Reads named f32 tensors of known shapes out of a safetensors file, keeping the first
/// problem (a missing tensor, a wrong dtype or shape) as `error` for the caller to report.
pub(crate) struct Loader<'a> {
    file: &'a SafeTensors<'a>,
    prefix: String,
    /// The first problem met.
    pub(crate) error: Option<String>,
    /// The names of the tensors read: a file that holds others has tensors the model lacks.
    read: std::collections::HashSet<String>,
}

impl<'a> Loader<'a> {
    /// A loader of unprefixed names.
    pub(crate) fn new(file: &'a SafeTensors<'a>) -> Self {
        Loader {
            file,
            prefix: String::new(),
            error: None,
            read: Default::default(),
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

    /// Copies every tensor of `net` from the file, under the loader's prefix.
    fn fill_prefixed(&mut self, net: &mut Network) {
        struct Fill<'a, 'b>(&'a mut Loader<'b>);
        impl TensorVisitor for Fill<'_, '_> {
            fn visit<S: Shape>(&mut self, name: &str, t: &mut Tensor<S, f32, Cpu>, _: bool) {
                let shape: Vec<usize> = t.shape().concrete().into_iter().collect();
                let name = format!("{}.{name}", self.0.prefix);
                if let Some(values) = self.0.read(&name, &shape) {
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
        self.read.insert(name.to_string());
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

/// SHA-256 over every tensor and every metadata entry but the checksum itself. `tensors` must
/// come in name order; each is hashed and dropped before the next is read.
fn checksum<'a>(
    tensors: impl Iterator<Item = (&'a str, Cow<'a, [u8]>)>,
    metadata: &HashMap<String, String>,
) -> String {
    let mut h = Sha256::new();
    let meta: std::collections::BTreeMap<_, _> = metadata.iter().collect();
    for (k, v) in meta {
        for part in [k.as_bytes(), v.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    let mut previous: Option<&str> = None;
    for (name, bytes) in tensors {
        assert!(previous < Some(name), "tensors are hashed in name order");
        previous = Some(name);
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
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
mod tests;
