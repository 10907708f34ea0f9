//! A run's images written out and scored: `sample`, `eval`, and scoring during training.

use crate::util::*;

#[test]
fn samples_are_written_as_mnist_idx_files() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let err = s.fails(&["sample", "runs/smoke", "--n", "5", "--out", "x.idx"]);
    assert!(err.contains("runs/smoke"), "{err}");
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=1"],
        &data_dir(),
    ));
    s.ok(&["sample", "runs/smoke", "--n", "50", "--out", "x.gz"]);
    let mut raw = Vec::new();
    let gz = std::fs::read(s.path().join("x.gz")).unwrap();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    let (dims, body) = gan_run::data::parse_idx(&raw, std::path::Path::new("x.gz"), 2051).unwrap();
    assert_eq!(dims, vec![50, 28, 28]);
    assert!(body.iter().any(|&b| b != body[0]), "all pixels equal");
    // The same seed gives the same images; another seed other images.
    s.ok(&["sample", "runs/smoke", "--n", "50", "--out", "y.idx"]);
    assert_eq!(std::fs::read(s.path().join("y.idx")).unwrap(), raw);
    s.ok(&[
        "sample",
        "runs/smoke",
        "--n",
        "50",
        "--out",
        "z.idx",
        "--seed",
        "1",
    ]);
    assert_ne!(std::fs::read(s.path().join("z.idx")).unwrap(), raw);
}

#[test]
fn eval_scores_a_run_with_all_five_measures_and_the_reference_rows() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    // Too few samples to score are refused, and the run is left as it was.
    for n in ["0", "1", "99"] {
        let err = s.fails(&["eval", "runs/smoke", "--n", n, "--data-dir", &data]);
        assert!(
            err.contains(&format!("--n {n}")) && err.contains("100"),
            "{err}"
        );
        assert!(!s.path().join("runs/smoke/eval.json").exists());
    }
    // An unconditional G takes no labels: asking it for the test set's is refused by name.
    let err = eval_smoke_with_test_labels(&s, &data);
    assert!(
        err.contains("runs/smoke") && err.contains("[conditioning]") && err.contains("--labels"),
        "{err}"
    );
    assert!(!s.path().join("runs/smoke/eval-test-labels.json").exists());
    let out = s.ok(&["eval", "runs/smoke", "--n", "200", "--data-dir", &data]);
    let out = String::from_utf8_lossy(&out.stdout);
    for row in [
        "samples (epoch 1, as_trained)",
        "real training images",
        "uniform noise",
    ] {
        assert!(out.contains(row), "{out}");
    }
    let e: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path().join("runs/smoke/eval.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(e["scores"]["images"], 200);
    assert_eq!(e["epoch"], 1);
    assert!(e["scores"]["fid"].as_f64().unwrap() > 0.0, "{e}");
    let score = e["scores"]["classifier_score"].as_f64().unwrap();
    assert!((1.0..=10.0).contains(&score), "{e}");
    assert_eq!(
        e["scores"]["coverage"]["histogram"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        e["classifier"]["sha256"].as_str().unwrap(),
        gan_run::classifier::BUILTIN_SHA256.trim()
    );
    // The reference rows: real digits score near 10, noise near 1.
    let real = e["reference"]["real_train"]["classifier_score"]
        .as_f64()
        .unwrap();
    let noise = e["reference"]["uniform_noise"]["classifier_score"]
        .as_f64()
        .unwrap();
    assert!(real > 9.0 && noise < 3.0, "{e}");
    let parzen = &e["scores"]["parzen"];
    assert!(parzen["test"]["mean"].as_f64().unwrap().is_finite(), "{e}");
    assert_eq!(parzen["validation"].as_array().unwrap().len(), 10);
    let memo = &e["scores"]["memorisation"];
    assert_eq!(memo["samples"], 200);
    // One epoch of the smoke GAN copies nothing.
    assert_eq!(memo["near_copy_share"], 0.0);
    // Precision and recall against 200 test images, KID over subsets of 100.
    let pr = &e["scores"]["precision_recall"];
    assert_eq!(
        (pr["images"].as_u64(), pr["k"].as_u64()),
        (Some(200), Some(3))
    );
    for share in [&pr["precision"], &pr["recall"]] {
        assert!((0.0..=1.0).contains(&share.as_f64().unwrap()), "{e}");
    }
    assert_eq!(e["scores"]["kid"]["subset_size"], 100);
    assert!(
        e["scores"]["kid"]["mean"].as_f64().unwrap().is_finite(),
        "{e}"
    );
    let real_kid = e["reference"]["real_train"]["kid"]["mean"]
        .as_f64()
        .unwrap();
    let noise_kid = e["reference"]["uniform_noise"]["kid"]["mean"].as_f64();
    assert!(noise_kid.unwrap() > 100.0 * real_kid.abs(), "{e}");
}

#[test]
fn training_scores_samples_at_the_cadence_and_at_the_end() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[
            &smoke,
            "--set",
            "evaluation.every=2",
            "--set",
            "evaluation.samples=200",
        ],
        &data_dir(),
    ));
    let run = s.path().join("runs/smoke");
    let mut csv = csv::Reader::from_path(run.join("metrics.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    let fid_col = header.iter().position(|h| h == "fid").expect("fid column");
    let fids: Vec<String> = csv
        .records()
        .map(|r| r.unwrap()[fid_col].to_string())
        .collect();
    // Epoch 2 by the cadence, epoch 3 as the last; epoch 1 not at all.
    assert_eq!(fids.len(), 3);
    assert!(fids[0].is_empty(), "{fids:?}");
    assert!(fids[1].parse::<f64>().unwrap() > 0.0 && fids[2].parse::<f64>().unwrap() > 0.0);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["evaluation"]["fid"].as_f64().unwrap().to_string(),
        fids[2]
    );
    assert_eq!(summary["evaluation"]["images"], 200);
    assert_eq!(summary["evaluation"]["precision_recall"]["images"], 200);
    assert!(summary["evaluation"]["kid"]["mean"].is_f64(), "{summary}");
    newer_measures_reach_metrics_compare_ls_and_tensorboard(&s, &run, &summary);

    // The best-scoring epoch's checkpoint is kept besides the newest ones, and loads.
    let (f2, f3) = (
        fids[1].parse::<f64>().unwrap(),
        fids[2].parse::<f64>().unwrap(),
    );
    let best_epoch = if f3 < f2 { 3 } else { 2 };
    let best = run.join("checkpoints/best.safetensors");
    let out = s.ok(&[
        "sample",
        "runs/smoke",
        "--checkpoint",
        &best.display().to_string(),
        "--n",
        "4",
        "--out",
        "best.png",
    ]);
    assert!(out.status.success());
    let tensors = tensors(&best);
    let epoch_of = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        header["__metadata__"]["epoch"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(!tensors.is_empty());
    assert_eq!(epoch_of(&best), best_epoch.to_string());
}

/// The scored smoke run's precision, recall and KID: in metrics.csv (empty in the unscored
/// epoch 1; the last row's equal to summary.json's), in `compare --json` and `--csv`, in `ls`
/// and among the TensorBoard scalars.
fn newer_measures_reach_metrics_compare_ls_and_tensorboard(
    s: &Scratch,
    run: &std::path::Path,
    summary: &serde_json::Value,
) {
    let mut csv = csv::Reader::from_path(run.join("metrics.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    let column = |name: &str| -> Vec<String> {
        let i = header.iter().position(|h| h == name).expect(name);
        rows.iter().map(|r| r[i].to_string()).collect()
    };
    let value = |cell: &String| -> f64 { cell.parse().unwrap() };
    for name in ["precision", "recall"] {
        let cells = column(name);
        assert!(cells[0].is_empty(), "{name}: {cells:?}");
        for cell in &cells[1..] {
            assert!((0.0..=1.0).contains(&value(cell)), "{name}: {cells:?}");
        }
        let last = summary["evaluation"]["precision_recall"][name].as_f64();
        assert_eq!(Some(value(&cells[2])), last, "{name}");
    }
    let (kid, kid_se) = (column("kid"), column("kid_se"));
    assert!(kid[0].is_empty() && kid_se[0].is_empty(), "{kid:?}");
    assert_eq!(
        Some(value(&kid[2])),
        summary["evaluation"]["kid"]["mean"].as_f64()
    );
    assert!(
        value(&kid[1]).is_finite() && value(&kid_se[2]) > 0.0,
        "{kid_se:?}"
    );

    let out = s.ok(&["compare", "runs/smoke", "--json"]);
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let columns = json_columns(&table);
    let cell = |name: &str| {
        let i = columns.iter().position(|c| *c == name).expect(name);
        table["rows"][0][i].as_f64()
    };
    for name in ["precision", "recall"] {
        assert_eq!(cell(name), Some(value(&column(name)[2])), "{table}");
    }
    assert!(
        cell("kid").is_some_and(f64::is_finite) && cell("kid_se").is_some(),
        "{table}"
    );
    assert!(
        !columns.contains(&"label_acc"),
        "label columns only for conditional runs: {columns:?}"
    );
    let out = s.ok(&["compare", "runs/smoke", "--csv"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(",parzen,precision,recall,kid,kid_se,"),
        "{text}"
    );

    let out = s.ok(&["ls"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let header = text.lines().next().unwrap();
    assert!(header.contains("prec") && header.contains("kid"), "{text}");
    let precision = format!("{:.3}", value(&column("precision")[2]));
    assert!(text.lines().nth(1).unwrap().contains(&precision), "{text}");

    let events = std::fs::read_dir(run)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("events.out"))
        .expect("an event file");
    let bytes = std::fs::read(events.path()).unwrap();
    for tag in ["eval/precision", "eval/recall", "eval/kid", "eval/kid_se"] {
        let found = bytes.windows(tag.len()).any(|w| w == tag.as_bytes());
        assert!(found, "{tag} not in the event file");
    }
}

#[test]
fn eval_refuses_a_samples_file_that_is_not_an_idx3_image_file() {
    let s = Scratch::new();
    std::fs::write(
        s.path().join("bad.idx"),
        [0u8, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28],
    )
    .unwrap();
    let err = s.fails(&["eval", "--samples", "bad.idx", "--data-dir", &data_dir()]);
    assert!(
        err.contains("bad.idx") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(s.path().join("labels.idx"), [0u8, 0, 8, 1, 0, 0, 0, 1, 7]).unwrap();
    let err = s.fails(&["eval", "--samples", "labels.idx", "--data-dir", &data_dir()]);
    assert!(err.contains("labels.idx") && err.contains("magic"), "{err}");
    // The hint is about the samples file, not MNIST's data folder.
    assert!(
        err.contains("samples file") && err.contains("gan-run sample"),
        "{err}"
    );
    assert!(!err.contains("data/mnist"), "{err}");
}

#[test]
fn scoring_during_training_needs_held_out_validation_images() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let err = s.fails(&[
        "check",
        &smoke,
        "--set",
        "evaluation.every=1",
        "--set",
        "data.validation_size=100",
    ]);
    assert!(
        err.contains("data.validation_size") && err.contains("2000"),
        "{err}"
    );
}

/// `eval` and `sample` stop at SIGINT or SIGTERM with exit status 130, writing nothing: no
/// eval.json, no image file, no temporary (they once ran on and wrote their outputs).
#[test]
fn eval_and_sample_stop_at_a_signal_with_130_and_write_nothing() {
    use nix::sys::signal::Signal;
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    let listing = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = walk(dir);
        names.sort();
        names
    };
    let before = listing(s.path());
    for (args, signal) in [
        (
            vec!["eval", "runs/smoke", "--n", "40000", "--data-dir", &data],
            Signal::SIGINT,
        ),
        (
            vec!["sample", "runs/smoke", "--n", "150000", "--out", "many.gz"],
            Signal::SIGTERM,
        ),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gan-run"))
            .args(&args)
            .current_dir(s.path())
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{args:?} ended before the signal: make it longer"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(listing(s.path()), before, "{args:?} wrote something");
    }
}

/// Every file under `dir`, relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(
                walk(&path)
                    .into_iter()
                    .map(|p| format!("{}/{p}", entry.file_name().to_string_lossy())),
            );
        } else {
            out.push(entry.file_name().to_string_lossy().to_string());
        }
    }
    out
}

/// A PNG grid holds at most 32 x 32 images: asked for more, `sample` says how many the grid
/// shows and how to get them all, and says nothing when the grid holds them all.
#[test]
fn sample_says_when_a_grid_holds_fewer_images_than_asked_for() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=1"],
        &data_dir(),
    ));
    let out = s.ok(&["sample", "runs/smoke", "--n", "1100", "--out", "x.png"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("first 1024 of the 1100") && stderr.contains("IDX3"),
        "{stderr}"
    );
    let grid = image::open(s.path().join("x.png")).unwrap();
    assert_eq!(grid.width(), 32 * 30 + 2);
    let out = s.ok(&["sample", "runs/smoke", "--n", "1024", "--out", "y.png"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A latent code's labels are not digits: training and `eval` score its samples without label
/// accuracy or per-label FID (eval reads which digit each code draws instead), and `eval
/// --labels test` is refused by name; `sample --label` still draws by code.
#[test]
fn a_latent_code_run_is_scored_without_label_measures() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(
        &[
            &smoke,
            "--set",
            "training.epochs=1",
            "--set",
            "evaluation.every=1",
            "--set",
            "evaluation.samples=200",
            "--set",
            "model.discriminator.layers[2].out=11",
            "--set",
            "conditioning={discriminator = \"latent_code\"}",
        ],
        &data,
    ));
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path().join("runs/smoke/summary.json")).unwrap(),
    )
    .unwrap();
    assert!(summary["evaluation"]["fid"].is_f64(), "{summary}");
    assert!(
        summary["evaluation"]["label_accuracy"].is_null(),
        "{summary}"
    );
    let out = s.ok(&["eval", "runs/smoke", "--n", "200", "--data-dir", &data]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("label accuracy"), "{stdout}");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path().join("runs/smoke/eval.json")).unwrap(),
    )
    .unwrap();
    assert!(record["scores"]["fid"].is_f64(), "{record}");
    assert!(record["scores"]["label_accuracy"].is_null(), "{record}");
    assert!(record["scores"]["label_fid"].is_null(), "{record}");
    // Its own reading against digits: the digit each code draws most, and the purity.
    assert!(
        stdout.contains("latent code -> the digit it draws most"),
        "{stdout}"
    );
    let codes = &record["scores"]["code_digits"];
    assert_eq!(
        codes["digit"].as_array().map(Vec::len),
        Some(10),
        "{record}"
    );
    let purity = codes["purity"].as_f64().unwrap();
    assert!((0.1..=1.0).contains(&purity), "{record}");
    let err = eval_smoke_with_test_labels(&s, &data);
    assert!(
        err.contains("runs/smoke") && err.contains("latent_code") && err.contains("--labels"),
        "{err}"
    );
    s.ok(&[
        "sample",
        "runs/smoke",
        "--label",
        "7",
        "--n",
        "4",
        "--out",
        "sevens.png",
    ]);
    assert!(s.path().join("sevens.png").exists());
}

/// `eval runs/smoke --labels test` on 200 samples, which the tests expect refused: its error.
fn eval_smoke_with_test_labels(s: &Scratch, data: &str) -> String {
    s.fails(&[
        "eval",
        "runs/smoke",
        "--n",
        "200",
        "--labels",
        "test",
        "--data-dir",
        data,
    ])
}
