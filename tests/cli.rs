//! End-to-end tests of the `gan-run` binary: config errors, training on real MNIST, the run
//! directory, resume, and refusal of damaged inputs.

mod util;

use util::*;

fn data_dir() -> String {
    repo().join("data/mnist").display().to_string()
}

/// The paper config with one line replaced, written into the scratch dir.
/// `exp.toml:LINE:` for the line of the file written by [`paper_with`] that holds `needle`, so
/// that position tests do not depend on the shipped config's layout.
fn position_of(path: &str, needle: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    format!("exp.toml:{line}:")
}

fn paper_with(s: &Scratch, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(config("paper.toml")).unwrap();
    assert!(text.contains(from), "paper.toml has no `{from}`");
    s.write("exp.toml", &text.replacen(from, to, 1))
        .display()
        .to_string()
}

#[test]
fn shipped_configs_pass_the_check() {
    let s = Scratch::new();
    let paths: Vec<String> = ["paper.toml", "paper-logits.toml", "smoke.toml"]
        .iter()
        .map(|n| config(n).display().to_string())
        .collect();
    let mut args = vec!["check", "--data-dir", "x"];
    args.extend(paths.iter().map(|s| s.as_str()));
    let out = s.ok(&args);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("ok: ").count(),
        3
    );
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let s = Scratch::new();
    let p = paper_with(&s, "beta1 = 0.1", "beta_1 = 0.1");
    let err = s.fails(&["check", &p]);
    assert!(
        err.contains(&format!("{}1", position_of(&p, "beta_1"))),
        "{err}"
    );
    assert!(
        err.contains("optimizer.discriminator") && err.contains("beta_1"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_refused_with_position() {
    let s = Scratch::new();
    let p = paper_with(&s, "batch_size = 100", "batch_size = \"100\"");
    let err = s.fails(&["check", &p]);
    let at = position_of(&p, "batch_size = \"100\"");
    assert!(err.contains(&format!("{at}14")), "{err}");
    assert!(err.contains("training.batch_size"), "{err}");
}

#[test]
fn impossible_values_are_refused_with_position() {
    let s = Scratch::new();
    let p = paper_with(&s, "rate = 0.5", "rate = 1.5");
    let err = s.fails(&["check", &p]);
    assert!(err.contains(&position_of(&p, "rate = 1.5")), "{err}");
    assert!(err.contains("model.generator.layers[9].rate"), "{err}");
    assert!(err.contains("[0, 1)"), "{err}");
}

#[test]
fn shapes_are_checked_before_training() {
    let s = Scratch::new();
    let p = paper_with(
        &s,
        "{ type = \"linear\", out = 784 }",
        "{ type = \"linear\", out = 783 }",
    );
    let err = s.fails(&["train", &p, "--runs-dir", "runs"]);
    assert!(
        err.contains("must output an MNIST image (784 pixels)"),
        "{err}"
    );
    assert!(!s.path().join("runs").exists(), "something was written");

    let p = paper_with(
        &s,
        "{ type = \"linear\", out = 1 }",
        "{ type = \"linear\", out = 2 }",
    );
    assert!(s.fails(&["check", &p]).contains("must output one logit"));

    let p = paper_with(
        &s,
        "{ type = \"linear\", in = 784, out = 1024 }",
        "{ type = \"linear\", in = 780, out = 1024 }",
    );
    let err = s.fails(&["check", &p]);
    assert!(
        err.contains("model.discriminator.layers[0]") && err.contains("in = 780"),
        "{err}"
    );

    let p = config("paper.toml").display().to_string();
    let err = s.fails(&[
        "check",
        &p,
        "--set",
        "data.train_size=50",
        "--set",
        "training.batch_size=100",
    ]);
    assert!(
        err.contains("training.batch_size") && err.contains("--set"),
        "{err}"
    );
}

#[test]
fn overrides_are_checked_like_the_file() {
    let s = Scratch::new();
    let p = config("paper.toml").display().to_string();
    let err = s.fails(&["check", &p, "--set", "training.epoch=3"]);
    assert!(
        err.contains("unknown field `epoch`") && err.contains("--set training.epoch=3"),
        "{err}"
    );
    let err = s.fails(&["check", &p, "--set", "optimizer.discriminator.beta1=1.5"]);
    assert!(
        err.contains("optimizer.discriminator.beta1") && err.contains("[0, 1)"),
        "{err}"
    );
    let err = s.fails(&["check", &p, "--set", "device=cuda"]);
    assert!(err.contains("CPU only"), "{err}");
}

#[test]
fn double_sigmoid_by_accident_is_refused() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(config("paper-logits.toml")).unwrap();
    let text = text.replacen(
        "{ type = \"linear\", out = 1 },",
        "{ type = \"linear\", out = 1 }, { type = \"sigmoid\" },",
        1,
    );
    let p = s.write("exp.toml", &text).display().to_string();
    let err = s.fails(&["check", &p]);
    assert!(err.contains("tutorial_double_sigmoid"), "{err}");
}

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

#[test]
fn interrupted_and_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    // The uninterrupted run.
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=4", "--name", "whole"],
        &data,
    ));
    // The same, stopped after 2 epochs, then resumed.
    s.ok(&smoke_args(
        &[
            &smoke,
            "--set",
            "training.epochs=4",
            "--name",
            "parts",
            "--max-epochs",
            "2",
        ],
        &data,
    ));
    let parts = s.path().join("runs/parts");
    assert_eq!(loss_columns(&parts.join("metrics.csv")).len(), 2);
    assert!(!parts.join("summary.json").exists());
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=4", "--name", "parts"],
        &data,
    ));

    let whole = s.path().join("runs/whole");
    assert_eq!(
        loss_columns(&whole.join("metrics.csv")),
        loss_columns(&parts.join("metrics.csv"))
    );
    let ckpt = "checkpoints/epoch-0004.safetensors";
    assert_eq!(tensors(&whole.join(ckpt)), tensors(&parts.join(ckpt)));
    assert_eq!(
        std::fs::read(whole.join("samples/epoch-0004.png")).unwrap(),
        std::fs::read(parts.join("samples/epoch-0004.png")).unwrap()
    );
}

#[test]
fn a_damaged_checkpoint_is_refused_not_replaced() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    let ckpt = s
        .path()
        .join("runs/smoke/checkpoints/epoch-0001.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();

    // Truncated.
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &data));
    assert!(
        err.contains("epoch-0001.safetensors") && err.contains("truncated"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&ckpt).unwrap().len(),
        bytes.len() / 2,
        "the file was touched"
    );

    // One flipped bit in the tensor data.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 10;
    flipped[at] ^= 1;
    std::fs::write(&ckpt, &flipped).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &data));
    assert!(err.contains("checksum"), "{err}");

    // A changed digit in the header's metadata (the epoch count) is caught too.
    // Searched in the bytes: a lossy text conversion would shift offsets at invalid UTF-8.
    let key = b"\"epoch\":\"1\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("epoch in header")
        + key.len()
        - 2;
    let mut edited = bytes.clone();
    edited[at] = b'2';
    std::fs::write(&ckpt, &edited).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &data));
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn damaged_data_files_are_refused_clearly() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let copy = s.path().join("mnist");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(repo().join("data/mnist")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
    }
    let copy_s = copy.display().to_string();
    let labels = copy.join("train-labels-idx1-ubyte.gz");

    // A truncated gzip.
    let bytes = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &bytes[..bytes.len() - 100]).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &copy_s));
    assert!(
        err.contains("train-labels-idx1-ubyte.gz") && err.contains("truncated"),
        "{err}"
    );

    // A raw file that decompresses fine but has other content than SHA256SUMS says.
    std::fs::remove_file(&labels).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut raw).unwrap();
    raw[100] ^= 1;
    std::fs::write(copy.join("train-labels-idx1-ubyte"), &raw).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &copy_s));
    assert!(err.contains("checksum mismatch"), "{err}");

    // A missing file.
    std::fs::remove_file(copy.join("train-labels-idx1-ubyte")).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &copy_s));
    assert!(
        err.contains("train-labels-idx1-ubyte") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_naming_epoch_and_step_and_keeps_its_last_checkpoint() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    let run = s.path().join("runs/smoke");
    let good = std::fs::read(run.join("checkpoints/epoch-0001.safetensors")).unwrap();
    // A learning rate of 1e30 sends the weights to infinity within a step or two. It changes
    // the config, so it runs under another name from the same start.
    let err = s.fails(&smoke_args(
        &[
            &smoke,
            "--set",
            "optimizer.discriminator.lr=1e30",
            "--set",
            "optimizer.generator.lr=1e30",
        ],
        &data,
    ));
    assert!(err.contains("different config"), "{err}");
    let err = s.fails(&smoke_args(
        &[
            &smoke,
            "--name",
            "boom",
            "--set",
            "optimizer.discriminator.lr=1e30",
            "--set",
            "optimizer.generator.lr=1e30",
        ],
        &data,
    ));
    assert!(err.contains("diverged at epoch 1, step"), "{err}");
    assert!(!s
        .path()
        .join("runs/boom/checkpoints/epoch-0001.safetensors")
        .exists());
    assert_eq!(
        good,
        std::fs::read(run.join("checkpoints/epoch-0001.safetensors")).unwrap()
    );
}

#[test]
fn a_foreign_directory_is_not_overwritten() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("runs/smoke")).unwrap();
    s.write("runs/smoke/notes.txt", "mine");
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    for extra in [&[][..], &["--force"][..]] {
        let err = s.fails(&smoke_args(&[&[smoke.as_str()], extra].concat(), &data));
        assert!(err.contains("not a gan-run run"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(s.path().join("runs/smoke/notes.txt")).unwrap(),
        "mine"
    );
    // --name is a directory name, never a path.
    for bad in ["..", ".", "", "a/b", "/tmp"] {
        let err = s.fails(&smoke_args(&[&smoke, "--name", bad, "--force"], &data));
        assert!(err.contains("cannot name a run directory"), "{bad}: {err}");
    }
    assert!(s.path().join("runs/smoke/notes.txt").exists());
}

#[test]
fn a_run_directory_in_use_is_refused_and_a_stale_lock_taken_over() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    std::fs::create_dir_all(s.path().join("runs/smoke")).unwrap();
    // This test process is alive: its pid in the lock means "in use".
    s.write("runs/smoke/.lock", &std::process::id().to_string());
    let err = s.fails(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    assert!(err.contains("in use by process"), "{err}");
    // A pid that cannot exist is a stale lock.
    s.write("runs/smoke/.lock", "4294967295");
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    assert!(
        !s.path().join("runs/smoke/.lock").exists(),
        "lock left behind"
    );
}

#[test]
fn a_bad_override_of_a_nested_value_is_blamed_on_the_override() {
    let s = Scratch::new();
    let p = config("paper.toml").display().to_string();
    let err = s.fails(&["check", &p, "--set", "noise.distribution.low=2"]);
    assert!(err.contains("--set noise.distribution.low=2"), "{err}");
    let err = s.fails(&["check", &p, "--set", "model.generator.layers[0].in=99"]);
    assert!(
        err.contains("--set model.generator.layers[0].in=99"),
        "{err}"
    );
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

/// A smoke sweep over D's beta1, with the data dir pointed at the repository's MNIST.
fn smoke_sweep(s: &Scratch) -> String {
    let text = format!(
        "name = \"sw\"\nbase = \"{}\"\n[grid]\n\"optimizer.discriminator.beta1\" = [0.1, 0.5, 0.9]\n",
        config("smoke.toml").display()
    );
    s.write("sweep.toml", &text).display().to_string()
}

#[test]
fn a_sweep_resumes_without_redoing_finished_points() {
    let s = Scratch::new();
    let sweep = smoke_sweep(&s);
    let data = format!("data.dir={}", data_dir());
    let common = [
        "--set",
        &data,
        "--set",
        "training.epochs=2",
        "--runs-dir",
        "runs",
    ];
    let plan = s.ok(&[&["sweep", &sweep, "--plan"], &common[..]].concat());
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(plan.matches("to run").count(), 3, "{plan}");

    // As if a first call was killed after finishing one point and half of another.
    s.ok(&[&["run-point", &sweep, "0"], &common[..]].concat());
    s.ok(&[
        &["run-point", &sweep, "1", "--set", "training.epochs=2"],
        &common[..],
    ]
    .concat());
    let first = s
        .path()
        .join("runs/sw/beta1=0.1/checkpoints/epoch-0002.safetensors");
    let before = std::fs::read(&first).unwrap();
    let modified = std::fs::metadata(&first).unwrap().modified().unwrap();

    let out = s.ok(&[&["sweep", &sweep, "--jobs", "2"], &common[..]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("skipped   beta1=0.1"), "{stdout}");
    assert!(stdout.contains("finished  beta1=0.9"), "{stdout}");
    assert_eq!(std::fs::read(&first).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&first).unwrap().modified().unwrap(),
        modified
    );
    for p in ["beta1=0.1", "beta1=0.5", "beta1=0.9"] {
        assert!(
            s.path()
                .join("runs/sw")
                .join(p)
                .join("summary.json")
                .exists(),
            "{p}"
        );
    }
    let index = std::fs::read_to_string(s.path().join("runs/sw/index.json")).unwrap();
    assert_eq!(
        index.matches("\"state\": \"skipped\"").count(),
        2,
        "{index}"
    );

    // compare shows only the key that varies, and sorts.
    let out = s.ok(&["compare", "runs/sw", "--sort", "g_loss", "--csv"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let header = table.lines().next().unwrap();
    assert_eq!(
        header,
        "run,optimizer.discriminator.beta1,epochs,d_loss,g_loss,d_real,d_fake"
    );
    let g: Vec<f64> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
        .collect();
    assert_eq!(g.len(), 3);
    assert!(g.windows(2).all(|w| w[0] <= w[1]), "{table}");

    // diff names only what differs, and puts the grids side by side.
    let out = s.ok(&[
        "diff",
        "runs/sw/beta1=0.1",
        "runs/sw/beta1=0.9",
        "--json",
        "--png",
        "d.png",
    ]);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["config"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["config"][0][0], "optimizer.discriminator.beta1");
    assert_eq!(d["curves"].as_array().unwrap().len(), 2);
    let best = d["best_metrics"].as_array().unwrap();
    assert_eq!(best.len(), 2, "{d}");
    let rows = loss_columns(&s.path().join("runs/sw/beta1=0.1/metrics.csv"));
    let lowest_d = rows
        .iter()
        .map(|r| r[1].parse::<f64>().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best[0][1].as_f64().unwrap(), lowest_d);
    let png = image::open(s.path().join("d.png")).unwrap();
    let grid = image::open(s.path().join("runs/sw/beta1=0.1/samples/epoch-0002.png")).unwrap();
    assert_eq!(png.width(), 2 * grid.width() + 8);
}

#[test]
fn a_failing_point_does_not_stop_the_others() {
    let s = Scratch::new();
    let text = format!(
        "name = \"sw\"\nbase = \"{}\"\n[grid]\n\"optimizer.discriminator.lr\" = [2e-4, 1e30]\n",
        config("smoke.toml").display()
    );
    let sweep = s.write("sweep.toml", &text).display().to_string();
    let data = format!("data.dir={}", data_dir());
    let common = ["--set", &data, "--set", "training.epochs=1"];
    let err = s.fails(&[&["sweep", &sweep], &common[..]].concat());
    let bad_log = "runs/sw/logs/lr=1000000000000000000000000000000.0.log";
    assert!(
        err.contains("1 of 2 points failed") && err.contains(bad_log),
        "{err}"
    );
    let log = std::fs::read_to_string(s.path().join(bad_log)).unwrap();
    assert!(log.contains("diverged"), "{log}");
    // Again: the finished point is skipped, the failed one retried (and failing again).
    let out = s.run(&[&["sweep", &sweep], &common[..]].concat());
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped   lr=0.0002"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 points failed"));
    assert!(s.path().join("runs/sw/lr=0.0002/summary.json").exists());
}

#[test]
fn slurm_script_runs_each_point_as_an_array_task() {
    let s = Scratch::new();
    let sweep = smoke_sweep(&s);
    let out = s.ok(&[
        "sweep",
        &sweep,
        "--emit",
        "slurm",
        "--set",
        "training.epochs=2",
    ]);
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("#SBATCH --array=0-2"), "{script}");
    assert!(
        script.contains("run-point") && script.contains("$SLURM_ARRAY_TASK_ID"),
        "{script}"
    );
    assert!(script.contains("--set 'training.epochs=2'"), "{script}");
}

#[test]
fn report_is_one_self_contained_page_that_a_browser_renders() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    for (name, beta1) in [("a", "0.1"), ("b", "0.9")] {
        let b = format!("optimizer.discriminator.beta1={beta1}");
        s.ok(&smoke_args(
            &[
                &smoke,
                "--name",
                name,
                "--set",
                &b,
                "--set",
                "training.epochs=2",
            ],
            &data,
        ));
    }
    s.ok(&["report", "runs/a", "runs/b", "--out", "report.html"]);
    let page = std::fs::read_to_string(s.path().join("report.html")).unwrap();
    // The four step metrics and the two end-of-epoch losses.
    assert_eq!(page.matches("<svg").count(), 6, "one chart per metric");
    assert_eq!(
        page.matches("<polyline").count(),
        12,
        "one line per run and metric"
    );
    assert_eq!(
        page.matches("src=\"data:image/png;base64,").count(),
        4,
        "2 runs x 2 epochs"
    );
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no network"
    );
    assert!(page.contains("optimizer.discriminator.beta1"));
    assert!(s.path().join("runs/a/curves.png").exists());

    // In a real headless browser: the DOM it builds has the charts and images, and the
    // screenshot is not blank.
    let browser = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(browser) = browser else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium for this test"
        );
        eprintln!("chromium not installed: browser half of this test skipped");
        return;
    };
    let url = format!("file://{}", s.path().join("report.html").display());
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let user_dir = format!("--user-data-dir={}", s.path().join("chrome").display());
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(browser)
            .args(flags)
            .arg(&user_dir)
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let dom = String::from_utf8_lossy(&run(&["--dump-dom"]).stdout).to_string();
    assert_eq!(dom.matches("<polyline").count(), 8, "{dom:.300}");
    assert_eq!(dom.matches("<img").count(), 4);
    let shot = s.path().join("shot.png");
    run(&[
        "--window-size=1200,1600",
        &format!("--screenshot={}", shot.display()),
    ]);
    let img = image::open(&shot).unwrap().to_rgb8();
    // The first chart's lines are coloured: some pixel of the palette's blue is on screen.
    let blue = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
    assert!(blue > 50, "only {blue} line pixels in the screenshot");
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
