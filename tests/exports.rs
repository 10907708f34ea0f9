//! Weights for other tools: an export carries the generator and its architecture, and
//! examples/generate.py, with numpy alone, draws the same images as `gan-run sample`.

use crate::util::*;

/// Whether `python3` can import numpy and safetensors (CI installs them).
pub fn python_ready() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import numpy, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    tool_available(
        ok,
        "python3 with numpy and safetensors",
        "examples/generate.py",
    )
}

#[test]
fn an_export_holds_the_generator_and_python_draws_the_same_images_from_it() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    s.ok(&["export", "runs/smoke"]);
    let export = s.path().join("runs/smoke/generator.safetensors");
    let generator = tensors(&export);
    let names: Vec<&str> = generator.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"generator.layers.0.weight"), "{names:?}");
    assert!(names.contains(&"generator.layers.2.scale"), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("generator.")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("adam")), "{names:?}");
    s.ok(&[
        "export",
        "runs/smoke",
        "--both",
        "--out",
        "both.safetensors",
    ]);
    let both = tensors(&s.path().join("both.safetensors"));
    assert!(both
        .iter()
        .any(|(n, _)| n == "discriminator.layers.0.weight"));

    python_draws_what_gan_run_draws(&s, "runs/smoke", &export, &[]);

    // An unconditional generator takes no label.
    let out = s.run_within(
        &["sample", "runs/smoke", "--label", "3", "--out", "x.png"],
        60,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not class-conditional") && err.contains("drop --label"),
        "{err}"
    );
}

/// A generator with spectral norm exports the weights its forward pass uses (W / sigma), with
/// no u, v and a layer list without spectral_norm, so that a reader without a power iteration
/// (examples/generate.py) draws gan-run's images; it once exported the raw W.
#[test]
fn a_spectrally_normalised_generator_exports_the_weights_it_draws_with() {
    let s = Scratch::new();
    train_smoke(
        &s,
        "smoke",
        &[
            "model.generator.layers[0].spectral_norm=true",
            "model.generator.layers[4].spectral_norm=true",
        ],
    );
    s.ok(&["export", "runs/smoke"]);
    let export = s.path().join("runs/smoke/generator.safetensors");
    let names: Vec<String> = tensors(&export).into_iter().map(|(n, _)| n).collect();
    assert!(!names.iter().any(|n| n.contains("spectral")), "{names:?}");
    let bytes = std::fs::read(&export).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let layers = &meta.metadata().as_ref().unwrap()["generator_layers"];
    assert!(!layers.contains("\"spectral_norm\":true"), "{layers}");
    python_draws_what_gan_run_draws(&s, "runs/smoke", &export, &[]);
}

/// A convolutional G with the newer kinds (upsampling, a spectrally normalised convolution,
/// layer-norm over channels) exports what Python draws the same images from.
#[test]
fn python_draws_an_upsampling_convolutional_generator() {
    let s = Scratch::new();
    train_smoke(
        &s,
        "smoke",
        &[
            r#"model.generator.layers=[{type = "linear", out = 196}, {type = "reshape", shape = [4, 7, 7]}, {type = "upsample"}, {type = "conv2d", out = 3, kernel = 3, padding = 1, spectral_norm = true}, {type = "layer_norm", over_channels = true}, {type = "relu"}, {type = "upsample", scale = 2}, {type = "conv2d", out = 1, kernel = 3, padding = 1}, {type = "sigmoid"}]"#,
        ],
    );
    s.ok(&["export", "runs/smoke"]);
    let export = s.path().join("runs/smoke/generator.safetensors");
    python_draws_what_gan_run_draws(&s, "runs/smoke", &export, &[]);
}

/// `examples/generate.py` on `export` draws the images `gan-run sample RUN ...sample` draws
/// from the same noise (and labels), within half a grey level (where Python has numpy and
/// safetensors).
pub fn python_draws_what_gan_run_draws(
    s: &Scratch,
    run: &str,
    export: &std::path::Path,
    sample: &[&str],
) {
    // 120 images in batches of 50: the last batch is drawn whole and cut, as gan-run does.
    let mut args = vec![
        "sample",
        run,
        "--n",
        "120",
        "--out",
        "s.idx",
        "--noise-out",
        "z.safetensors",
    ];
    args.extend(sample);
    s.ok(&args);
    if !python_ready() {
        return;
    }
    run_tool(&mut generate_py(
        s,
        export,
        &["--noise", "z.safetensors", "--out", "p.npy"],
    ));
    // Gan-run's bytes are its floats rounded: Python's floats lie within half a step of them.
    run_tool(
        std::process::Command::new("python3")
            .args([
                "-c",
                "import numpy as np\n\
                 p = np.load('p.npy')\n\
                 b = np.frombuffer(open('s.idx', 'rb').read()[16:], dtype=np.uint8).reshape(-1, 784)\n\
                 assert p.shape == b.shape == (120, 784), (p.shape, b.shape)\n\
                 d = np.abs(p * 255 - b).max()\n\
                 assert d <= 0.5 + 1e-3, d\n\
                 print(d)",
            ])
            .current_dir(s.path()),
    );
}

/// `python3 examples/generate.py EXPORT ARGS...` in the scratch folder.
pub fn generate_py(s: &Scratch, export: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("python3");
    command
        .arg(repo().join("examples/generate.py"))
        .arg(export)
        .args(args)
        .current_dir(s.path());
    command
}

/// The PID most recently handed out on this machine (the last field of /proc/loadavg).
fn last_pid() -> u32 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    text.split_whitespace().last().unwrap().parse().unwrap()
}

/// Links planted at the temporary names earlier versions used (`<out>.tmp-<pid>`, for the next
/// few hundred PIDs, which the export's process takes one of) lead nowhere: the file they point
/// to is untouched, and the export is a regular file in place.
#[test]
fn an_export_never_writes_through_links_planted_at_temporary_names() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=1"],
        &data_dir(),
    ));
    let victim = s.write("victim.txt", "precious");
    let next = last_pid();
    for pid in next..next + 400 {
        let link = s.path().join(format!("o.st.tmp-{pid}"));
        std::os::unix::fs::symlink(&victim, link).unwrap();
    }
    s.ok(&["export", "runs/smoke", "--out", "o.st"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let out = s.path().join("o.st");
    assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
    assert!(!tensors(&out).is_empty());

    // A checkpoint that is a device is refused with a message, not an abort (exit 134).
    let out = s.run_within(
        &[
            "sample",
            "runs/smoke",
            "--checkpoint",
            "/dev/zero",
            "--out",
            "x.png",
        ],
        60,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("a device"),
        "{err}"
    );
    assert!(!s.path().join("x.png").exists());
}
