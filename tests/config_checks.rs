//! Experiment files and overrides are checked before anything runs: errors name the
//! file, line, column and key.

use crate::util::*;

#[test]
fn shipped_configs_pass_the_check() {
    let s = Scratch::new();
    let paths: Vec<String> = [
        "paper.toml",
        "paper-logits.toml",
        "paper-best.toml",
        "smoke.toml",
        "mlp-best.toml",
        "mlp-cond.toml",
        "dcgan.toml",
        "cdcgan.toml",
    ]
    .iter()
    .map(|n| config(n).display().to_string())
    .collect();
    let data = data_dir();
    let mut args = vec!["check", "--data-dir", &data];
    args.extend(paths.iter().map(|s| s.as_str()));
    let out = s.ok(&args);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("ok: ").count(),
        paths.len()
    );
}

/// The memory estimate plans every layer of the shipped configs, class-conditional ones
/// included (whose networks read the label beside the noise and the pixels): its parameters
/// part is 20 bytes (weights, gradients, two Adam moments, a checkpoint copy) for each
/// parameter the builder makes and 4 for each of a moving average's, plus a little running
/// state.
#[test]
fn the_memory_estimate_counts_every_parameter_the_builder_makes() {
    for name in ["paper.toml", "mlp-cond.toml", "dcgan.toml", "cdcgan.toml"] {
        let config = gan_run::config::load(&config(name), &[]).unwrap();
        let estimate = gan_run::config::memory::estimate(&config);
        let (_, bytes) = estimate
            .parts
            .iter()
            .find(|(what, _)| what.starts_with("parameters"))
            .unwrap();
        let dev = dfdx::prelude::Cpu::default();
        let mut state = gan_run::train::GanState::new(&config, &dev);
        let g = state.generator.num_params() as f64;
        let average = state
            .ema
            .as_mut()
            .map_or(0.0, |ema| ema.num_params() as f64);
        let built = 20.0 * (g + state.discriminator.num_params() as f64) + 4.0 * average;
        assert!(
            *bytes >= built && *bytes < built * 1.01,
            "{name}: the estimate counts {bytes} bytes, the builder makes {built}"
        );
    }
}

/// `check` shows every layer's output shape under its key path, images as `[C, H, W]`.
#[test]
fn check_reports_every_layer_shape() {
    let s = Scratch::new();
    let dcgan = config("dcgan.toml").display().to_string();
    let out = s.ok(&["check", &dcgan, "--data-dir", &data_dir()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "model.generator: input 100",
        "layers[4]  reshape            [128, 7, 7]",
        "layers[7]  conv_transpose2d   [64, 14, 14]",
        "layers[10] conv_transpose2d   [1, 28, 28]",
        "model.discriminator: input 784",
        "layers[3]  conv2d             [128, 7, 7]",
        "layers[6]  flatten            6272",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
}

#[test]
fn check_prints_the_resolved_config_and_verifies_the_data_folder() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let out = s.ok(&[
        "check",
        &smoke,
        "--data-dir",
        &data,
        "--print",
        "--set",
        "seed=42",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("seed = 42"), "{stdout}");
    assert!(stdout.contains("[optimizer.discriminator]"), "{stdout}");

    // Without --data-dir, from another folder: the config's `../data/mnist` is relative to
    // the config's folder, and the resolved config records it absolute.
    let out = s.ok(&["check", &smoke, "--print"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("dir = {:?}", data_dir())),
        "{stdout}"
    );

    // A folder that is not there, and one whose checksum list is empty.
    let err = s.fails(&["check", &smoke, "--data-dir", "nowhere"]);
    assert!(
        err.contains("nowhere") && err.contains("no such folder"),
        "{err}"
    );
    let copy = s.path().join("mnist");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(repo().join("data/mnist")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(copy.join("SHA256SUMS"), "# nothing listed\n").unwrap();
    let copy = copy.display().to_string();
    let err = s.fails(&["check", &smoke, "--data-dir", &copy]);
    assert!(
        err.contains("SHA256SUMS")
            && err.contains("lists no checksum for `train-images-idx3-ubyte`"),
        "{err}"
    );
    std::fs::remove_file(s.path().join("mnist/SHA256SUMS")).unwrap();
    let err = s.fails(&["check", &smoke, "--data-dir", &copy]);
    assert!(
        err.contains("SHA256SUMS") && err.contains("is missing"),
        "{err}"
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
fn configs_and_counts_too_big_for_memory_are_refused_with_the_estimate_before_anything_is_made() {
    let s = Scratch::new();
    let paper = config("paper.toml").display().to_string();
    let data = data_dir();
    let wide = "model.generator.layers[0].out=1000000000";
    let err = s.fails(&["check", &paper, "--data-dir", &data, "--set", wide]);
    assert!(
        err.contains("needs about") && err.contains("parameters, gradients and Adam moments"),
        "{err}"
    );
    assert!(err.contains("--memory-limit"), "{err}");
    let err = s.fails(&[
        "train",
        &paper,
        "--data-dir",
        &data,
        "--runs-dir",
        "runs",
        "--set",
        "evaluation.every=1",
        "--set",
        "evaluation.samples=1000000000000",
    ]);
    assert!(err.contains("images generated for scoring"), "{err}");
    assert!(!s.path().join("runs").exists(), "a run directory was made");
    // A limit raised knowingly lets a moderate config through; a tiny one refuses the paper's.
    s.ok(&[
        "check",
        &paper,
        "--data-dir",
        &data,
        "--memory-limit",
        "100",
    ]);
    let err = s.fails(&[
        "check",
        &paper,
        "--data-dir",
        &data,
        "--memory-limit",
        "0.01",
    ]);
    assert!(err.contains("above the limit of 0.0 GB"), "{err}");
    let err = s.fails(&["sample", "runs/x", "--n", "1000000000000", "--out", "x.png"]);
    assert!(
        err.contains("--n 1000000000000") && err.contains("GB"),
        "{err}"
    );
    assert!(!s.path().join("x.png").exists());
}

/// A config that is a FIFO is refused at once (it once waited for a writer forever), and so is
/// one that is a device.
#[test]
fn a_config_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let s = Scratch::new();
    run_tool(std::process::Command::new("mkfifo").arg(s.path().join("c.toml")));
    let out = s.run_within(&["check", "c.toml"], 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("c.toml") && err.contains("FIFO"), "{err}");
    let out = s.run_within(&["check", "/dev/zero"], 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("a device"),
        "{err}"
    );
}
