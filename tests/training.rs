//! Training on real MNIST into a run directory: what it holds, its grids, several configs at
//! once, and the command line around it (a bare config path, a mistyped subcommand,
//! completions).

use crate::util::*;

#[test]
fn smoke_config_trains_on_mnist_and_fills_the_run_directory() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=2"], &data));
    let run = s.path().join("runs/smoke");
    for f in [
        "config.toml",
        "overrides.txt",
        "train.log",
        "metrics.csv",
        "summary.json",
        "checkpoints/epoch-0002.safetensors",
        "samples/epoch-0002.png",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    // The resolved config holds the override and every default.
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        resolved.contains("epochs = 2") && resolved.contains("beta2 = 0.999"),
        "{resolved}"
    );
    assert!(resolved.contains("train_size = 2000"));
    // Losses move from epoch to epoch.
    let rows = loss_columns(&run.join("metrics.csv"));
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0][1], rows[1][1]);
    assert_ne!(rows[0][2], rows[1][2]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["finished"], true);

    // Running it again neither retrains nor overwrites anything.
    let before = std::fs::read(run.join("checkpoints/epoch-0002.safetensors")).unwrap();
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=2"], &data));
    assert_eq!(
        before,
        std::fs::read(run.join("checkpoints/epoch-0002.safetensors")).unwrap()
    );

    // A different config under the same name is refused, naming what differs.
    let err = s.fails(&smoke_args(
        &[&smoke, "--set", "training.epochs=2", "--set", "seed=8"],
        &data,
    ));
    assert!(
        err.contains("different config") && err.contains("seed"),
        "{err}"
    );
}

/// With spectral norm on D's linear layers, metrics.csv's d_sigma_max is the largest `v^T W u`
/// of the epoch's checkpoint (g_sigma_max stays empty: G has none), and TensorBoard has each
/// normalised layer's sigma. Mode seeking's term is logged beside them.
#[test]
fn spectrally_normalised_layers_report_their_sigma_each_epoch() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let args = [
        smoke.as_str(),
        "--set",
        "training.epochs=2",
        "--set",
        "model.discriminator.layers[0].spectral_norm=true",
        "--set",
        "model.discriminator.layers[2].spectral_norm=true",
        "--set",
        "mode_seeking.weight=0.5",
    ];
    let data = data_dir();
    s.ok(&smoke_args(&args, &data));
    let run = s.path().join("runs/smoke");
    let mut csv = csv::Reader::from_path(run.join("metrics.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    let column = |name: &str| -> Vec<String> {
        let i = header.iter().position(|h| h == name).expect(name);
        rows.iter().map(|r| r[i].to_string()).collect()
    };
    assert_eq!(column("g_sigma_max"), ["", ""]);
    // The term is weight / (ratio + 1e-5) with a positive ratio of mean distances.
    for term in column("mode_seeking") {
        assert!(term.parse::<f64>().is_ok_and(|t| t > 0.0), "{term}");
    }
    let d_sigma: Vec<f64> = column("d_sigma_max")
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();

    for (epoch, logged) in [(1, d_sigma[0]), (2, d_sigma[1])] {
        let path = run.join(format!("checkpoints/epoch-{epoch:04}.safetensors"));
        let tensors = tensors(&path);
        let floats = |name: &str| -> Vec<f32> {
            let (_, bytes) = tensors.iter().find(|(n, _)| n == name).expect(name);
            let words = bytes.chunks_exact(4);
            words
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        let sigma = |layer: usize| -> f64 {
            let prefix = format!("discriminator.layers.{layer}");
            let w = floats(&format!("{prefix}.weight"));
            let u = floats(&format!("{prefix}.spectral_u"));
            let v = floats(&format!("{prefix}.spectral_v"));
            let rows = w.chunks(u.len()).zip(&v);
            rows.map(|(row, &vi)| {
                let wu: f64 = row.iter().zip(&u).map(|(w, u)| (w * u) as f64).sum();
                vi as f64 * wu
            })
            .sum()
        };
        let expected = sigma(0).max(sigma(2));
        assert!(
            (logged - expected).abs() <= 1e-5 * expected.abs(),
            "epoch {epoch}: {logged} vs {expected}"
        );
    }

    let events = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("events.out"))
        .expect("an event file");
    let bytes = std::fs::read(events.path()).unwrap();
    let has = |tag: &str| bytes.windows(tag.len()).any(|w| w == tag.as_bytes());
    assert!(has("sigma/discriminator.layers.0") && has("sigma/discriminator.layers.2"));
    assert!(has("loss/mode_seeking"));
    assert!(!has("sigma/discriminator.layers.1") && !has("sigma/generator"));
}

#[test]
fn bare_config_path_means_train() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&[
        &smoke,
        "--data-dir",
        &data,
        "--runs-dir",
        "r",
        "--set",
        "training.epochs=1",
    ]);
    assert!(s.path().join("r/smoke/summary.json").exists());
}

#[test]
fn a_mistyped_subcommand_is_an_error_with_a_suggestion_and_trains_nothing() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let err = s.fails(&["chek", &smoke, "--runs-dir", "r"]);
    assert!(err.contains("chek") && err.contains("check"), "{err}");
    assert!(!s.path().join("r").exists(), "something was trained");
    let err = s.fails(&["frobnicate"]);
    assert!(err.contains("unrecognized subcommand"), "{err}");
    // The shorthand is documented in the top-level help.
    let help = s.ok(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Shorthand"));
}

#[test]
fn several_configs_train_in_parallel_and_a_bad_one_does_not_stop_the_other() {
    let s = Scratch::new();
    let smoke = std::fs::read_to_string(config("smoke.toml")).unwrap();
    let a = s.write("a.toml", &smoke.replace("name = \"smoke\"", "name = \"a\""));
    let b = s.write("b.toml", &smoke.replace("name = \"smoke\"", "name = \"b\""));
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let data = data_dir();
    let args = [
        "--set",
        "training.epochs=1",
        "--data-dir",
        &data,
        "--runs-dir",
        "runs",
    ];
    s.ok(&[&[a.as_str(), b.as_str(), "--jobs", "2"], &args[..]].concat());
    assert!(s.path().join("runs/a/summary.json").exists());
    assert!(s.path().join("runs/b/summary.json").exists());
    assert!(s.path().join("runs/logs/a.log").exists());
    assert!(s.path().join("runs/logs/b.log").exists());

    // Two files of one stem in different folders, naming one run, would share a directory and
    // a log (both logs went to runs/logs/smoke.log): refused before either starts.
    for dir in ["x", "y"] {
        std::fs::create_dir_all(s.path().join(dir)).unwrap();
    }
    let twin_a = s.write("x/smoke.toml", &smoke);
    let twin_b = s.write("y/smoke.toml", &smoke.replace("beta1 = 0.1", "beta1 = 0.2"));
    let err = s.fails(
        &[
            &[
                twin_a.to_str().unwrap(),
                twin_b.to_str().unwrap(),
                "--jobs",
                "2",
            ],
            &args[..],
        ]
        .concat(),
    );
    assert!(
        err.contains("both name the run `smoke`") && err.contains("y/smoke.toml"),
        "{err}"
    );
    assert!(!s.path().join("runs/smoke").exists());
    assert!(!s.path().join("runs/logs/smoke.log").exists());

    // A config that diverges fails alone; the other still trains.
    let c = s.write(
        "c.toml",
        &smoke
            .replace("name = \"smoke\"", "name = \"c\"")
            .replace("lr = 2e-4\nbeta1 = 0.1", "lr = 1e30\nbeta1 = 0.1"),
    );
    let c = c.display().to_string();
    let err = s.fails(&[&[c.as_str(), a.as_str(), "--jobs", "2"], &args[..]].concat());
    assert!(err.contains("1 of 2 configs failed"), "{err}");
}

#[test]
fn a_start_stopped_early_leaves_a_grid_and_says_it_had_no_overrides() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[
            &smoke,
            "--set",
            "output.sample_every=10",
            "--max-epochs",
            "1",
        ],
        &data_dir(),
    ));
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data_dir()));
    let run = s.path().join("runs/smoke");
    assert!(run.join("samples/epoch-0001.png").exists());
    assert!(run.join("samples/epoch-0002.png").exists());
    let starts = std::fs::read_to_string(run.join("overrides.txt")).unwrap();
    assert_eq!(starts, "output.sample_every=10\n(none)\n");
}

#[test]
fn a_new_run_draws_its_first_grid_after_epoch_1() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(
        &[
            &smoke,
            "--set",
            "output.sample_every=5",
            "--set",
            "training.epochs=3",
        ],
        &data,
    ));
    let samples = s.path().join("runs/smoke/samples");
    assert!(samples.join("epoch-0001.png").exists(), "no first grid");
    assert!(!samples.join("epoch-0002.png").exists(), "off the cadence");
    assert!(
        samples.join("epoch-0003.png").exists(),
        "no grid at the end"
    );
}

#[test]
fn shell_completions_name_every_subcommand() {
    let s = Scratch::new();
    let out = s.ok(&["completions", "bash"]);
    let script = String::from_utf8_lossy(&out.stdout);
    for sub in ["train", "sweep", "compare", "export", "ls", "eval"] {
        assert!(script.contains(sub), "{sub} missing");
    }
    assert!(s.fails(&["completions", "tcsh"]).contains("tcsh"));
}

/// A run with a moving average of G scores the average (what draws) and logs the raw
/// generator's FID beside it, from the same noise; compare shows both. A run without one
/// leaves the column empty and compare leaves it out.
#[test]
fn scored_epochs_log_the_raw_generators_fid_beside_the_averages() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let scored = [
        "--set",
        "training.epochs=2",
        "--set",
        "evaluation.every=1",
        "--set",
        "evaluation.samples=300",
    ];
    for (name, ema) in [
        ("avg", "model.generator.ema={decay = 0.9}"),
        ("plain", "seed=1"),
    ] {
        let mut args = vec![smoke.as_str(), "--name", name, "--set", ema];
        args.extend(scored);
        s.ok(&smoke_args(&args, &data));
    }
    let columns = |run: &str| -> (Vec<f64>, Vec<String>) {
        let mut csv = csv::Reader::from_path(s.path().join(run).join("metrics.csv")).unwrap();
        let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
        let at = |name: &str| header.iter().position(|h| h == name).unwrap();
        let (fid, raw) = (at("fid"), at("raw_fid"));
        let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
        let fids = rows.iter().map(|r| r[fid].parse().unwrap()).collect();
        (fids, rows.iter().map(|r| r[raw].to_string()).collect())
    };
    let (fids, raw) = columns("runs/avg");
    for (average, raw) in fids.iter().zip(&raw) {
        let raw: f64 = raw.parse().unwrap();
        assert!(
            raw.is_finite() && raw > 0.0 && raw != *average,
            "{raw} {average}"
        );
    }
    assert_eq!(columns("runs/plain").1, ["", ""]);
    let table = |runs: &[&str]| {
        let mut args = vec!["compare"];
        args.extend(runs);
        String::from_utf8_lossy(&s.ok(&args).stdout).to_string()
    };
    assert!(table(&["runs/avg", "runs/plain"]).contains("raw_fid"));
    assert!(!table(&["runs/plain"]).contains("raw_fid"));
}
