//! Convolutional networks end to end: a small DCGAN-shaped run trains, resumes bit for bit
//! after `kill -9` in the middle of an epoch, and its generator samples.

use std::time::{Duration, Instant};

use crate::util::*;

/// The smoke config with a convolutional G (projection, reshape, two transposed convolutions
/// with batch-norm between) and D (two strided convolutions, batch-norm, a linear head), a
/// moving average of G, 3 epochs.
fn conv_args<'a>(name: &'a str, data: &'a str, smoke: &'a str) -> Vec<&'a str> {
    smoke_args(
        &[
            smoke,
            "--name",
            name,
            "--set",
            "training.epochs=3",
            "--set",
            r#"model.generator.layers=[{type = "linear", out = 392},
              {type = "reshape", shape = [8, 7, 7]}, {type = "batch_norm", mode = "batch"},
              {type = "relu"},
              {type = "conv_transpose2d", out = 4, kernel = 4, stride = 2, padding = 1, bias = false},
              {type = "batch_norm", mode = "batch"}, {type = "relu"},
              {type = "conv_transpose2d", out = 1, kernel = 4, stride = 2, padding = 1},
              {type = "sigmoid"}]"#,
            "--set",
            r#"model.discriminator.layers=[{type = "reshape", shape = [1, 28, 28]},
              {type = "conv2d", out = 4, kernel = 4, stride = 2, padding = 1},
              {type = "leaky_relu", slope = 0.2},
              {type = "conv2d", out = 8, kernel = 4, stride = 2, padding = 1, bias = false},
              {type = "batch_norm", mode = "batch"}, {type = "leaky_relu", slope = 0.2},
              {type = "flatten"}, {type = "linear", out = 1}]"#,
            "--set",
            "model.generator.ema={decay = 0.9}",
        ],
        data,
    )
}

#[test]
fn a_conv_run_killed_mid_epoch_resumes_bit_for_bit() {
    let s = Scratch::new();
    let (data, smoke) = (data_dir(), config("smoke.toml").display().to_string());
    // Epochs of 400 steps (a second or so): with the smoke config's 40, the run ended its last
    // epoch within the pause below, before the kill.
    let args = |name| {
        let mut args = conv_args(name, &data, &smoke);
        args.extend(["--set", "data.train_size=20000"]);
        args
    };
    s.ok(&args("whole"));

    // The same run, killed with SIGKILL once its first epoch is committed and its second is
    // under way, then started again: it resumes from the first epoch's checkpoint.
    let child = spawn(&s, &args("parts"));
    let parts = s.path().join("runs/parts");
    let first = parts.join("checkpoints/epoch-0001.safetensors");
    let start = Instant::now();
    while !first.exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no first epoch");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "killed");
    assert!(
        !parts.join("checkpoints/epoch-0002.safetensors").exists(),
        "killed inside epoch 2, not after it (if a machine trains an epoch within the pause, \
         lengthen the epochs)"
    );
    s.ok(&args("parts"));

    let whole = s.path().join("runs/whole");
    assert_eq!(
        loss_columns(&whole.join("metrics.csv")),
        loss_columns(&parts.join("metrics.csv"))
    );
    let last = "checkpoints/epoch-0003.safetensors";
    let tensors_whole = tensors(&whole.join(last));
    assert!(
        tensors_whole.iter().any(|(name, _)| name.contains("ema")),
        "the average is checkpointed"
    );
    assert!(tensors_whole == tensors(&parts.join(last)), "final tensors");
    assert_eq!(
        std::fs::read(whole.join("samples/epoch-0003.png")).unwrap(),
        std::fs::read(parts.join("samples/epoch-0003.png")).unwrap()
    );

    // The trained convolutional G samples (off the tape: the fast convolution).
    s.ok(&["sample", "runs/whole", "--n", "16", "--out", "grid.png"]);
    assert!(s.path().join("grid.png").exists());
}

/// A class-conditional convolutional run (labels as planes into D) trains, and `eval` says
/// how many samples are the digit G was asked for and each digit's FID, in its table and in
/// `eval.json`; training's scoring puts both in `metrics.csv`, and `compare` and `ls` show
/// them.
#[test]
fn a_conditional_run_trains_and_eval_measures_its_label_accuracy() {
    let s = Scratch::new();
    let data = data_dir();
    let cdcgan = config("cdcgan.toml").display().to_string();
    s.ok(&smoke_args(
        &[
            &cdcgan,
            "--name",
            "c",
            "--set",
            "training.epochs=1",
            "--set",
            "data.train_size=500",
            "--set",
            "evaluation.every=1",
            "--set",
            "evaluation.samples=200",
            "--set",
            "model.generator.layers[0].out=64",
            "--set",
            "model.generator.layers[3].out=392",
            "--set",
            "model.generator.layers[4].shape=[8, 7, 7]",
            "--set",
            "model.generator.layers[7].out=4",
            "--set",
            "model.discriminator.layers[1].out=4",
            "--set",
            "model.discriminator.layers[3].out=8",
            "--set",
            "model.discriminator.layers[7].out=32",
        ],
        &data,
    ));
    let out = s.ok(&["eval", "runs/c", "--n", "200", "--data-dir", &data]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("label accuracy: "), "{stdout}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("runs/c/eval.json")).unwrap())
            .unwrap();
    let accuracy = record["scores"]["label_accuracy"].as_f64();
    assert!(
        accuracy.is_some_and(|a| (0.0..=1.0).contains(&a)),
        "{record}"
    );
    assert!(stdout.contains("per-label FID"), "{stdout}");
    let fids = record["scores"]["label_fid"]
        .as_array()
        .expect("per-label FID");
    assert_eq!(fids.len(), 10, "{record}");
    assert!(fids
        .iter()
        .all(|f| f.as_f64().is_some_and(|f| f.is_finite() && f >= 0.0)));
    let mean = fids.iter().map(|f| f.as_f64().unwrap()).sum::<f64>() / 10.0;
    assert_eq!(record["labels"], "balanced", "{record}");

    // The test set's labels: scored into their own file, beside the balanced one.
    let out = s.ok(&[
        "eval",
        "runs/c",
        "--n",
        "200",
        "--labels",
        "test",
        "--data-dir",
        &data,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test labels)"), "{stdout}");
    let test_record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path().join("runs/c/eval-test-labels.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(test_record["labels"], "test", "{test_record}");
    let balanced = std::fs::read_to_string(s.path().join("runs/c/eval.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&balanced).unwrap(),
        record
    );

    // Training scored epoch 1: its row holds both; compare and ls read them (eval.json's, of
    // the same epoch, are the latest).
    let metrics = std::fs::read_to_string(s.path().join("runs/c/metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    for name in ["label_accuracy", "label_fid"] {
        let i = header.iter().position(|c| *c == name).expect(name);
        assert!(
            row[i].parse::<f64>().is_ok_and(f64::is_finite),
            "{name}: {metrics}"
        );
    }
    let out = s.ok(&["compare", "runs/c", "--json"]);
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let columns = json_columns(&table);
    let cell = |name: &str| {
        let i = columns.iter().position(|c| *c == name).expect(name);
        table["rows"][0][i].as_f64()
    };
    assert_eq!(cell("label_acc"), accuracy, "{table}");
    assert!(
        cell("label_fid").is_some_and(|f| (f - mean).abs() < 1e-9),
        "{table}"
    );
    let out = s.ok(&["ls", "runs"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.lines().next().unwrap().contains("label_acc"),
        "{listing}"
    );
    s.ok(&["report", "runs/c", "--out", "r.html"]);
    let page = std::fs::read_to_string(s.path().join("r.html")).unwrap();
    assert!(
        page.contains("label_acc") && page.contains("label_fid"),
        "the report's table has the label columns"
    );
    asked_labels_reach_the_generator(&s);
}

/// The first labels of balanced draws: one digit for each run of ten images.
const BALANCED_START: [u8; 21] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2,
];

/// `sample --label 7` asks G for sevens only, and records the labels beside the noise; Python
/// draws the same images from the export, for balanced labels and for one label; a label the
/// run lacks is refused.
fn asked_labels_reach_the_generator(s: &Scratch) {
    s.ok(&["export", "runs/c"]);
    let export = s.path().join("runs/c/generator.safetensors");
    crate::exports::python_draws_what_gan_run_draws(s, "runs/c", &export, &["--label", "7"]);
    let bytes = std::fs::read(s.path().join("z.safetensors")).unwrap();
    let noise = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // G's batch-norm uses each batch's statistics: the sevens are kept from balanced batches
    // (ten of each hundred), as training mixed the classes.
    let labels = noise.tensor("labels").unwrap();
    assert_eq!(labels.shape(), [1200], "twelve whole batches of 100");
    assert_eq!(&labels.data()[..21], &BALANCED_START);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().as_ref().unwrap();
    assert_eq!((&*meta["labels"], &*meta["kept_label"]), ("7", "7"));
    // They are the sevens of the same seed's balanced draw, in order.
    s.ok(&[
        "sample", "runs/c", "--n", "1200", "--labels", "balanced", "--out", "b.idx",
    ]);
    let (sevens, balanced) = (idx_images(s, "s.idx"), idx_images(s, "b.idx"));
    let kept: Vec<_> = (0..1200)
        .filter(|i| (i / 10) % 10 == 7)
        .map(|i| &balanced[i])
        .collect();
    let sevens: Vec<_> = sevens.iter().collect();
    assert_eq!(sevens, kept);
    generate_py_takes_its_own_label(s, &export);

    // Balanced labels: one digit for each run of ten images.
    std::fs::remove_file(s.path().join("s.idx")).unwrap();
    std::fs::remove_file(s.path().join("z.safetensors")).unwrap();
    crate::exports::python_draws_what_gan_run_draws(
        s,
        "runs/c",
        &export,
        &["--labels", "balanced"],
    );
    let bytes = std::fs::read(s.path().join("z.safetensors")).unwrap();
    let noise = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let labels = noise.tensor("labels").unwrap().data().to_vec();
    assert_eq!(&labels[..21], &BALANCED_START);

    let out = s.run_within(&["sample", "runs/c", "--label", "10", "--out", "x.png"], 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("runs/c") && err.contains("labels 0 to 9"),
        "{err}"
    );
    assert!(!s.path().join("x.png").exists());
}

/// `examples/generate.py --label K` draws class K from a noise file's balanced batches as
/// gan-run does (the sevens' noise drawn as sevens is them, drawn as threes it is gan-run's
/// threes of the same draw, `b.idx`), draws its own noise for K without one, and refuses a
/// class past the last by name.
fn generate_py_takes_its_own_label(s: &Scratch, export: &std::path::Path) {
    use crate::exports::generate_py;
    if !crate::exports::python_ready() {
        return;
    }
    let python = |label: &str, out: &str| {
        let args = ["--noise", "z.safetensors", "--label", label, "--out", out];
        generate_py(s, export, &args).output().unwrap()
    };
    for (label, out) in [("7", "sevens.npy"), ("3", "threes.npy")] {
        let run = python(label, out);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    run_tool(
        std::process::Command::new("python3")
            .args([
                "-c",
                "import numpy as np\n\
                 p, s, t = (np.load(f) for f in ('p.npy', 'sevens.npy', 'threes.npy'))\n\
                 assert (s == p).all()\n\
                 b = np.frombuffer(open('b.idx', 'rb').read()[16:], dtype=np.uint8)\n\
                 i = np.arange(1200)\n\
                 b = b.reshape(-1, 784)[(i // 10) % 10 == 3][:len(t)]\n\
                 assert t.shape == (120, 784), t.shape\n\
                 assert np.abs(t * 255 - b).max() <= 0.5 + 1e-3, np.abs(t * 255 - b).max()",
            ])
            .current_dir(s.path()),
    );
    let own = generate_py(
        s,
        export,
        &["--label", "9", "--n", "15", "--out", "nines.npy"],
    )
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&own.stdout);
    assert!(own.status.success() && said.contains("15 images"), "{said}");
    let refused = python("10", "tens.npy");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("0 to 9"), "{err}");
    assert!(!s.path().join("tens.npy").exists());
}

/// The images of an IDX3 file in the scratch folder, 784 bytes each.
fn idx_images(s: &Scratch, name: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(s.path().join(name)).unwrap();
    bytes[16..].chunks_exact(784).map(<[u8]>::to_vec).collect()
}
