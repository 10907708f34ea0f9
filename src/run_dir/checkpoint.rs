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
    let mut loader = Loader {
        file: &file,
        prefix: String::new(),
        error: None,
    };
    load_network(&mut state.generator, &mut state.g_opt, &mut loader);
    load_network(&mut state.discriminator, &mut state.d_opt, &mut loader);
    if let Some(ema) = &mut state.ema {
        loader.prefix = ema.name.clone();
        loader.fill_prefixed(ema);
    }
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

    /// A file written tensor by tensor restores the whole state, and holds the same tensors
    /// and metadata as the in-memory serialisation.
    #[test]
    fn round_trip_restores_everything() {
        let (mut a, fp) = state(&[]);
        a.epoch = 3;
        a.g_opt.steps = 7;
        use rand::Rng;
        let _: u64 = a.rng.gen();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("epoch-0003.safetensors");
        crate::files::write_atomic_with(&file, |f| write(&mut a, &fp, "", f)).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let (mut b, _) = state(&["seed=99"]); // other initial weights
        restore(&mut b, &bytes, Path::new("x"), Some(&fp)).unwrap();
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
        assert!(
            contents(&to_bytes(&mut a, &fp)) == contents(&bytes),
            "the file and the in-memory bytes differ"
        );
        assert_eq!((b.epoch, b.g_opt.steps), (3, 7));
        assert_eq!(b.rng.gen::<u64>(), a.rng.gen::<u64>());
    }

    /// `peek` reads the epoch and fingerprint from the header alone (a provenance record
    /// beside them changes nothing), and gives nothing for a file that is not a checkpoint.
    #[test]
    fn peek_reads_the_header() {
        let (mut a, fp) = state(&[]);
        a.epoch = 4;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("epoch-0004.safetensors");
        crate::files::write_atomic_with(&file, |f| write(&mut a, &fp, "", f)).unwrap();
        // With a provenance record, which the checksum covers and restoring passes over.
        crate::files::write_atomic_with(&file, |f| write(&mut a, &fp, "{\"host\":\"h\"}", f))
            .unwrap();
        let (mut b, _) = state(&[]);
        restore(&mut b, &std::fs::read(&file).unwrap(), &file, Some(&fp)).unwrap();
        assert_eq!(b.epoch, 4);
        assert_eq!(peek(&file), Some((4, fp)));
        // A FIFO or a device in its place is passed over at once, not waited on.
        let fifo = dir.path().join("interrupted.safetensors");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert_eq!(peek(&fifo), None);
        assert_eq!(peek(Path::new("/dev/zero")), None);
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").unwrap();
        assert_eq!(peek(&junk), None);
        assert_eq!(peek(&dir.path().join("missing")), None);
    }

    /// A run stopped at a random step (mid-epoch or at an epoch's first step), checkpointed,
    /// restored into a fresh state and trained on ends with the same bytes in every tensor,
    /// the same RNG position and the same metrics as a run never stopped.
    #[test]
    fn a_run_interrupted_at_a_random_step_resumes_bit_for_bit() {
        resumes_bit_for_bit(&[]);
    }

    /// The same with spectral norm in D (its singular vectors checkpointed) and a moving
    /// average of G that starts averaging in the second epoch.
    #[test]
    fn spectral_norm_and_the_moving_average_resume_bit_for_bit() {
        resumes_bit_for_bit(&[
            r#"model.discriminator.layers=[{type = "linear", out = 64, spectral_norm = true},
               {type = "leaky_relu", slope = 0.2}, {type = "linear", out = 1, spectral_norm = true}]"#,
            "model.generator.ema={decay = 0.9, start_epoch = 2}",
        ]);
    }

    fn resumes_bit_for_bit(extra: &[&str]) {
        use crate::train::{train_epoch, PhaseTimes};
        use rand::Rng;
        use std::ops::ControlFlow;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let o: Vec<Override> = ["training.batch_size=10", "training.d_steps_per_g_step=2"]
            .iter()
            .chain(extra)
            .map(|s| s.parse().unwrap())
            .collect();
        let config = crate::config::load(&path, &o).unwrap();
        let fp = config.training_fingerprint();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let images = crate::data::Images {
            bytes: (0..60 * crate::config::IMAGE_PIXELS)
                .map(|_| rng.gen())
                .collect(),
            labels: vec![0; 60],
        };
        let train = crate::data::PackedImages::pack(&images);
        let (epochs, per_epoch) = (3, 6);
        // Random, and named in any failure so that it can be replayed.
        let stop_after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as usize
            % (epochs * per_epoch - 1);
        let whole = {
            let mut s = GanState::new(&config, &Cpu::default());
            for _ in 0..epochs {
                let times = &mut PhaseTimes::default();
                train_epoch(
                    &mut s,
                    &config,
                    &train,
                    times,
                    |_| ControlFlow::Continue(()),
                )
                .unwrap();
            }
            s
        };
        let mut first = GanState::new(&config, &Cpu::default());
        let mut done = 0;
        let stopped = loop {
            let times = &mut PhaseTimes::default();
            let r = train_epoch(&mut first, &config, &train, times, |_| {
                done += 1;
                match done > stop_after {
                    true => ControlFlow::Break(()),
                    false => ControlFlow::Continue(()),
                }
            });
            match r {
                Ok(_) => continue,
                Err(crate::error::Error::Interrupted { at }) => break at,
                Err(e) => panic!("{e}"),
            }
        };
        let partial = first
            .partial
            .clone()
            .expect("an interrupt keeps the epoch in progress");
        assert_eq!(
            stopped,
            Some((partial.epoch, partial.steps_done)),
            "stopped after step {stop_after}"
        );
        let bytes = to_bytes(&mut first, &fp);
        let mut resumed = GanState::new(&config, &Cpu::default());
        restore(&mut resumed, &bytes, Path::new("x"), Some(&fp)).unwrap();
        assert_eq!(
            resumed.partial,
            Some(partial),
            "stopped after step {stop_after}"
        );
        while resumed.epoch < epochs {
            let times = &mut PhaseTimes::default();
            train_epoch(&mut resumed, &config, &train, times, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        }
        let (mut whole, mut resumed) = (whole, resumed);
        let tensors = |s: &mut GanState| {
            let mut all = Vec::new();
            for_each_tensor(s, &mut |name, _, values| {
                all.push((name.to_string(), values()))
            });
            all
        };
        assert!(
            tensors(&mut whole) == tensors(&mut resumed),
            "tensors differ after stopping after step {stop_after}"
        );
        let losses = |s: &GanState| -> Vec<[f64; 6]> {
            s.history
                .iter()
                .map(|m| {
                    let end = (m.d_loss_end.unwrap(), m.g_loss_end.unwrap());
                    [m.d_loss, m.g_loss, m.d_real, m.d_fake, end.0, end.1]
                })
                .collect()
        };
        assert_eq!(
            losses(&whole),
            losses(&resumed),
            "stopped after step {stop_after}"
        );
        assert_eq!(resumed.partial, None);
        assert_eq!(whole.rng.gen::<u64>(), resumed.rng.gen::<u64>());
    }

    #[test]
    fn foreign_checkpoints_are_refused() {
        let (mut a, fp) = state(&[]);
        let bytes = to_bytes(&mut a, &fp);
        let (mut other, other_fp) = state(&["model.generator.layers[0].out=32"]);
        let e = restore(&mut other, &bytes, Path::new("x"), Some(&other_fp)).unwrap_err();
        assert!(e.to_string().contains("different config"), "{e}");
        // Even with a matching fingerprint, tensors of other shapes are named and refused.
        let e = restore(&mut other, &bytes, Path::new("x"), Some(&fp)).unwrap_err();
        assert!(e.to_string().contains("generator.layers.0.weight"), "{e}");
    }
}
