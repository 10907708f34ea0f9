//! Training on real MNIST into a run directory: what it holds, resuming bit for bit, and
//! refusing damaged inputs and directories that are not its own.

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
/// normalised layer's sigma.
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
    assert!(!has("sigma/discriminator.layers.1") && !has("sigma/generator"));
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
    // The hint tells the truth: no checkpoint exists yet, and a lower rate is a new run.
    assert!(
        err.contains("no checkpoint was written") && err.contains("--force"),
        "{err}"
    );
    assert!(!err.contains("resume"), "{err}");
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

/// Sends SIGTERM to a child `gan-run`, as a scheduler or `timeout` would.
fn terminate(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[test]
fn sigterm_stops_a_run_and_a_sweep_cleanly_and_both_resume() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let spawn = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gan-run"))
            .args(args)
            .current_dir(s.path())
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let long = [
        "--set",
        "training.epochs=200",
        "--set",
        "data.train_size=20000",
    ];

    // A run: stops within a step, exit status 130, lock released, resumes.
    let mut args = smoke_args(&[&smoke], &data);
    args.extend(long);
    let child = spawn(&args);
    wait_for(
        &s.path()
            .join("runs/smoke/checkpoints/epoch-0001.safetensors"),
    );
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted at epoch"), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    assert!(s
        .path()
        .join("runs/smoke/checkpoints/interrupted.safetensors")
        .exists());
    assert!(!s.path().join("runs/smoke/.lock").exists());
    let mut resume = smoke_args(&[&smoke, "--max-epochs", "1"], &data);
    resume.extend(long);
    s.ok(&resume);

    // A sweep: the parent passes the signal on; no child is left training.
    let text = format!(
        "name = \"sw\"\nbase = \"{smoke}\"\n[set]\n\"training.epochs\" = 200\n\
         \"data.train_size\" = 20000\n\"data.dir\" = \"{data}\"\n\
         [grid]\n\"optimizer.discriminator.beta1\" = [0.1, 0.9]\n"
    );
    let sweep = s.write("sweep.toml", &text).display().to_string();
    let child = spawn(&["sweep", &sweep, "--jobs", "2", "--runs-dir", "runs"]);
    for p in ["beta1=0.1", "beta1=0.9"] {
        wait_for(
            &s.path()
                .join(format!("runs/sw/{p}/checkpoints/epoch-0001.safetensors")),
        );
    }
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    for p in ["beta1=0.1", "beta1=0.9"] {
        let dir = s.path().join("runs/sw").join(p);
        assert!(
            !dir.join(".lock").exists(),
            "{p} still locked: a child kept running"
        );
        let log = std::fs::read_to_string(s.path().join(format!("runs/sw/logs/{p}.log"))).unwrap();
        assert!(log.contains("interrupted at epoch"), "{log}");
    }
    let states = |s: &Scratch| sweep_states(&s.path().join("runs/sw"));
    assert_eq!(states(&s), ["interrupted", "interrupted"]);
    // Run again (shortened to 3 epochs, which keeps the points' configs): each point resumes
    // where it stopped and none fails.
    let out = s.ok(&[
        "sweep",
        &sweep,
        "--jobs",
        "2",
        "--runs-dir",
        "runs",
        "--set",
        "training.epochs=3",
    ]);
    assert!(out.status.success());
    for state in states(&s) {
        assert!(state == "finished" || state == "skipped", "{state}");
    }
}

/// SIGTERM at a random moment of a run's second epoch: the exact state is saved mid-epoch with
/// a grid of where it got to, and the resumed run ends with the same metrics, tensors and grid
/// as a run never stopped.
#[test]
fn sigterm_mid_epoch_saves_the_exact_state_and_the_resumed_run_is_bit_identical() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let args = |name: &'static str| {
        let mut a = smoke_args(&[&smoke, "--name", name], &data);
        a.extend([
            "--set",
            "training.epochs=6",
            "--set",
            "data.train_size=20000",
        ]);
        a
    };
    s.ok(&args("whole"));

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gan-run"))
        .args(args("parts"))
        .current_dir(s.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let parts = s.path().join("runs/parts");
    wait_for(&parts.join("checkpoints/epoch-0001.safetensors"));
    // An epoch takes about 0.6 s here: the signal lands somewhere in the next one or two.
    let delay = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 700;
    std::thread::sleep(std::time::Duration::from_millis(delay as u64));
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "after {delay} ms: {stderr}");
    assert!(stderr.contains("steps into epoch"), "{stderr}");
    assert!(
        parts.join("checkpoints/interrupted.safetensors").exists(),
        "after {delay} ms: {stderr}"
    );
    let grids: Vec<String> = std::fs::read_dir(parts.join("samples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("interrupted-epoch-"))
        .collect();
    assert_eq!(grids.len(), 1, "{grids:?}");

    let resumed = std::process::Command::new(env!("CARGO_BIN_EXE_gan-run"))
        .args(args("parts"))
        .current_dir(s.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("resuming an interrupted epoch"), "{log}");
    let whole = s.path().join("runs/whole");
    assert_eq!(
        loss_columns(&whole.join("metrics.csv")),
        loss_columns(&parts.join("metrics.csv")),
        "after {delay} ms"
    );
    let ckpt = "checkpoints/epoch-0006.safetensors";
    assert!(
        tensors(&whole.join(ckpt)) == tensors(&parts.join(ckpt)),
        "tensors differ after {delay} ms"
    );
    let grid = "samples/epoch-0006.png";
    assert!(std::fs::read(whole.join(grid)).unwrap() == std::fs::read(parts.join(grid)).unwrap());
    assert!(
        !parts.join("checkpoints/interrupted.safetensors").exists(),
        "superseded by the epochs after it"
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

#[test]
fn temporaries_of_a_dead_writer_are_cleared_and_a_half_made_directory_starts() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    // A start killed while writing its first file (pid 4194304 is above Linux's maximum).
    let dir = s.path().join("runs/smoke");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml.tmp-4194304"), "half").unwrap();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    assert!(!dir.join("config.toml.tmp-4194304").exists());
    // A run killed while rewriting its metrics: the leftover goes at the next start.
    std::fs::write(dir.join("metrics.csv.tmp-4194304"), "partial").unwrap();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    assert!(!dir.join("metrics.csv.tmp-4194304").exists());
    // A folder that is not a run is not touched, temporaries or not.
    let foreign = s.path().join("runs/mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt.tmp-4194304"), "mine").unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    s.fails(&smoke_args(&[&smoke, "--name", "mine"], &data));
    assert!(foreign.join("notes.txt.tmp-4194304").exists());
}

/// `training.stop_when_stuck`: a run whose D saturates stops with its checkpoint and says why;
/// a rerun stops at once, training nothing; turned off, the same run trains on.
#[test]
fn a_stuck_run_stops_when_asked_and_trains_on_when_not() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let args = |stop: &'static str| {
        let mut a = smoke_args(&[&smoke], &data);
        a.extend([
            "--set",
            "optimizer.discriminator.lr=0.01",
            "--set",
            "optimizer.generator.lr=1e-9",
            "--set",
            "training.epochs=20",
            "--set",
            stop,
        ]);
        a
    };
    let err = s.fails(&args("training.stop_when_stuck=true"));
    assert!(
        err.contains("looks stuck") && err.contains("saturate"),
        "{err}"
    );
    assert!(err.contains("stop_when_stuck = false"), "{err}");
    let run = s.path().join("runs/smoke");
    let epochs = loss_columns(&run.join("metrics.csv")).len();
    assert!(epochs < 20, "it did not stop");
    assert!(run
        .join(format!("checkpoints/epoch-{epochs:04}.safetensors"))
        .exists());
    assert!(!run.join("summary.json").exists());

    let again = s.fails(&args("training.stop_when_stuck=true"));
    assert!(again.contains("looks stuck"), "{again}");
    assert_eq!(loss_columns(&run.join("metrics.csv")).len(), epochs);

    let mut on = args("training.stop_when_stuck=false");
    on.extend(["--max-epochs", "1"]);
    s.ok(&on);
    assert_eq!(loss_columns(&run.join("metrics.csv")).len(), epochs + 1);
}

/// The fingerprint a checkpoint's header records.
fn recorded_fingerprint(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().as_ref().unwrap()["fingerprint"].clone()
}

/// A run directory written by gan-run 1f55346 (tests/fixtures/run-1f55346), whose saved config
/// leaves out the keys added since at their defaults, resumes under this code: the fingerprint
/// computed from its saved config is the one its checkpoint records, the run continues from that
/// checkpoint, and the config saved back holds every key.
#[test]
fn a_run_made_before_saved_configs_held_every_key_resumes_with_its_fingerprint() {
    let fixture = repo().join("tests/fixtures/run-1f55346");
    let old = fixture.join("tiny");
    let recorded = recorded_fingerprint(&old.join("checkpoints/epoch-0001.safetensors"));
    let saved = gan_run::config::load_saved(&old.join("config.toml")).unwrap();
    assert_eq!(saved.training_fingerprint(), recorded);

    let s = Scratch::new();
    let run = s.path().join("runs/tiny");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    for file in [
        "config.toml",
        "metrics.csv",
        "checkpoints/epoch-0001.safetensors",
    ] {
        std::fs::copy(old.join(file), run.join(file)).unwrap();
    }
    let source = fixture.join("tiny.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(&[&source, "--set", "training.epochs=2"], &data));

    // Resumed, not started afresh: epoch 1's row is the fixture's, timings and all.
    let rows = |dir: &std::path::Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        text.lines().map(String::from).collect()
    };
    let (before, after) = (rows(&old), rows(&run));
    assert_eq!(after.len(), 3, "{after:?}");
    // The columns added since (precision, recall, KID) follow the fixture's, empty in its row.
    let added = ",precision,recall,kid,kid_se,g_sigma_max,d_sigma_max,penalty,d_grad_norm_real,\
                 d_grad_norm_fake,label_accuracy,label_fid";
    assert_eq!(after[0], format!("{}{added}", before[0]));
    assert_eq!(after[1], format!("{},,,,,,,,,,,", before[1]));
    assert_eq!(
        recorded_fingerprint(&run.join("checkpoints/epoch-0002.safetensors")),
        recorded
    );
    // The start under this code recorded its provenance; the old checkpoint has none and
    // needed none.
    let provenance = std::fs::read_to_string(run.join("provenance.jsonl")).unwrap();
    assert_eq!(provenance.lines().count(), 1, "{provenance}");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for key in [
        "stop_when_stuck = false",
        "tensorboard = true",
        "tensorboard_every_steps = 0",
        "[evaluation]",
        "[generation]",
        "mode = \"as_trained\"",
    ] {
        assert!(config.contains(key), "`{key}` missing from\n{config}");
    }
}

/// A run whose log is a symbolic link is not resumed: the log is appended to only as a file of
/// its own (it once appended to whatever the link pointed to).
#[test]
fn a_log_planted_as_a_link_is_never_appended_through() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    let victim = s.write("victim.txt", "precious");
    let log = s.path().join("runs/smoke/train.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let err = s.fails(&smoke_args(&[&smoke, "--set", "training.epochs=2"], &data));
    assert!(
        err.contains("train.log") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!s
        .path()
        .join("runs/smoke/checkpoints/epoch-0002.safetensors")
        .exists());
}
