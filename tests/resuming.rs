//! Stopping and resuming: a run or sweep stopped by a signal, `--max-epochs` or a stuck D
//! resumes bit for bit, and a run written by an older gan-run resumes under this one.

use crate::util::*;

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

/// `training.stop_when_stuck`: a run whose D saturates stops with its checkpoint and says why;
/// a rerun stops at once, training nothing; a branch with D's rate lowered trains on;
/// turned off, the same run trains on.
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

    // A branch from its last checkpoint that trains as its parent did is refused as the
    // rerun was; one with D's rate back down is not refused for its parent's history: it
    // trains its own epoch.
    let from = run.join(format!("checkpoints/epoch-{epochs:04}.safetensors"));
    let from_arg = from.display().to_string();
    let mut same = args("training.stop_when_stuck=true");
    same.extend(["--name", "same", "--branch-from", &from_arg]);
    let refused = s.fails(&same);
    assert!(refused.contains("looks stuck"), "{refused}");
    let mut branch = args("training.stop_when_stuck=true");
    branch.extend([
        "--name",
        "unstuck",
        "--set",
        "optimizer.discriminator.lr=2e-4",
        "--set",
        "optimizer.generator.lr=2e-4",
        "--max-epochs",
        "1",
    ]);
    let from = from.display().to_string();
    branch.extend(["--branch-from", &from]);
    s.ok(&branch);
    let unstuck = s.path().join("runs/unstuck/metrics.csv");
    assert_eq!(loss_columns(&unstuck).len(), epochs + 1);

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
                 d_grad_norm_fake,label_accuracy,label_fid,mode_seeking,raw_fid";
    assert_eq!(after[0], format!("{}{added}", before[0]));
    assert_eq!(after[1], format!("{},,,,,,,,,,,,,", before[1]));
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

/// A branch from an epoch's checkpoint carries on its parent's state: under the same config it
/// trains the parent's next epoch to the bit; with the learning rate decayed from epoch 2 it
/// shares epoch 1's row and then differs; from a run directory it starts at the newest epoch
/// checkpoint; a branch whose networks differ is refused and leaves no run behind.
#[test]
fn a_branch_carries_on_its_parents_state_under_its_own_config() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=2", "--name", "parent"],
        &data,
    ));
    let parent = s.path().join("runs/parent");
    let from = parent.join("checkpoints/epoch-0001.safetensors");
    let from = from.display().to_string();
    let branch = |name: &str, sets: &[&str], from: &str| {
        let mut args = vec![smoke.as_str(), "--name", name, "--branch-from", from];
        for set in sets {
            args.extend(["--set", set]);
        }
        s.run(&smoke_args(&args, &data))
    };
    assert!(branch("same", &["training.epochs=2"], &from)
        .status
        .success());
    let same = s.path().join("runs/same");
    let last = "checkpoints/epoch-0002.safetensors";
    assert_eq!(tensors(&parent.join(last)), tensors(&same.join(last)));
    let rows = |run: &std::path::Path| loss_columns(&run.join("metrics.csv"));
    assert_eq!(rows(&parent), rows(&same));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(same.join("branch.json")).unwrap()).unwrap();
    assert_eq!(record["epoch"], 1);
    assert!(record["checkpoint"]
        .as_str()
        .unwrap()
        .ends_with("epoch-0001.safetensors"));

    let decay = "optimizer.generator.lr_decay={start_epoch = 2, epochs = 2}";
    assert!(branch("decayed", &["training.epochs=2", decay], &from)
        .status
        .success());
    let decayed = rows(&s.path().join("runs/decayed"));
    assert_eq!(decayed[0], rows(&parent)[0]);
    assert_ne!(decayed[1], rows(&parent)[1]);

    // From the run directory: its newest epoch checkpoint (epoch 2).
    let parent_dir = parent.display().to_string();
    assert!(branch("longer", &["training.epochs=3"], &parent_dir)
        .status
        .success());
    let longer = rows(&s.path().join("runs/longer"));
    assert_eq!((longer.len(), &longer[..2]), (3, &rows(&parent)[..]));

    // Started again, with the flag or without, a branch resumes its own checkpoints; another
    // source for it, or a source inside the run it would start, is refused.
    assert!(branch("longer", &["training.epochs=4"], &parent_dir)
        .status
        .success());
    assert_eq!(rows(&s.path().join("runs/longer")).len(), 4);
    let other = branch("longer", &["training.epochs=5"], &from);
    assert!(String::from_utf8_lossy(&other.stderr).contains("drop --branch-from"));
    let own = s
        .path()
        .join("runs/longer/checkpoints/epoch-0004.safetensors");
    let inside = branch("longer", &["training.epochs=5"], &own.display().to_string());
    assert!(String::from_utf8_lossy(&inside.stderr).contains("inside the run directory"));

    // A branch stopped before its first checkpoint, run again without the flag, branches
    // again from the checkpoint its branch.json records (not from scratch).
    let stopped = ["training.epochs=2", "--max-epochs", "0"];
    let mut args = vec![smoke.as_str(), "--name", "stopped", "--branch-from", &from];
    args.extend(["--set", stopped[0], stopped[1], stopped[2]]);
    s.ok(&smoke_args(&args, &data));
    let stopped_dir = s.path().join("runs/stopped");
    assert!(stopped_dir.join("branch.json").exists() && !stopped_dir.join(last).exists());
    s.ok(&smoke_args(
        &[&smoke, "--name", "stopped", "--set", "training.epochs=2"],
        &data,
    ));
    assert_eq!(
        tensors(&parent.join(last)),
        tensors(&stopped_dir.join(last))
    );

    let refused = |name: &str, sets: &[&str], from: &str, needles: &[&str]| {
        let out = branch(name, sets, from);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}");
        for needle in needles {
            assert!(stderr.contains(needle), "{needle} not in {stderr}");
        }
        assert!(
            !s.path().join("runs").join(name).exists(),
            "{name} left behind"
        );
    };
    refused(
        "wide",
        &["model.discriminator.layers[0].out=32"],
        &from,
        &[
            "cannot branch",
            "epoch-0001.safetensors",
            "[784, 32]",
            "not the layers",
        ],
    );
    // A tensor the branch's networks lack (spectral norm's vectors in the parent's D).
    let spectral = [
        "training.epochs=1",
        "model.discriminator.layers[0].spectral_norm=true",
    ];
    let mut args = vec![smoke.as_str(), "--name", "spectral"];
    for set in spectral {
        args.extend(["--set", set]);
    }
    s.ok(&smoke_args(&args, &data));
    let spectral_from = s
        .path()
        .join("runs/spectral/checkpoints/epoch-0001.safetensors");
    let spectral_from = spectral_from.display().to_string();
    refused(
        "plain",
        &["training.epochs=2"],
        &spectral_from,
        &["lack", "spectral norm"],
    );
    refused("done", &["training.epochs=1"], &from, &["nothing to train"]);
    refused(
        "nowhere",
        &[],
        "runs/parent/checkpoints/epoch-0009.safetensors",
        &["cannot be read"],
    );
}
