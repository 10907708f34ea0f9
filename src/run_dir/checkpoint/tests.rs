//! Checkpoints round-trip, resume exactly and refuse what is not theirs.
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
    crate::files::write_atomic_with(&file, |f| write(&mut a, &fp, "{\"host\":\"h\"}", f)).unwrap();
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
