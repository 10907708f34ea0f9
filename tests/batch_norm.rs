//! Batch-norm modes and generation modes, end to end: the tutorial's batch-statistics mode, its
//! image-dump bypass as an explicit generation mode, and the retired `batch_stats_only` mode,
//! whose runs still read but do not resume.

use crate::util::*;

#[test]
fn the_retired_mode_is_refused_in_new_configs_with_what_to_use() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(config("smoke.toml")).unwrap();
    assert!(text.contains("mode = \"batch\""));
    let p = s.write(
        "exp.toml",
        &text.replacen("mode = \"batch\"", "mode = \"batch_stats_only\"", 1),
    );
    let err = s.fails(&["check", &p.display().to_string()]);
    for part in [
        "exp.toml:",
        "model.generator.layers[2].mode",
        "retired",
        "mode = \"batch\"",
    ] {
        assert!(err.contains(part), "missing `{part}`: {err}");
    }
}

/// A run directory as gan-run wrote it before the mode was retired: its saved config, one
/// checkpoint tied to that config, and its metrics.
fn old_run(s: &Scratch) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config("smoke.toml"))
        .unwrap()
        .replace("mode = \"batch\"", "mode = \"batch_stats_only\"")
        .replace("dir = \"data/mnist\"", &format!("dir = {:?}", data_dir()));
    let run = s.path().join("runs/smoke");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::create_dir_all(run.join("samples")).unwrap();
    let saved = s.write("runs/smoke/config.toml", &text);
    let config = gan_run::config::load_saved(&saved).unwrap();
    assert!(config.retired_setting().is_some());
    let dev = dfdx::prelude::Cpu::default();
    let mut state = gan_run::train::GanState::new(&config, &dev);
    state.epoch = 1;
    let mut file = std::fs::File::create(run.join("checkpoints/epoch-0001.safetensors")).unwrap();
    gan_run::run_dir::checkpoint::write(&mut state, &config.training_fingerprint(), "", &mut file)
        .unwrap();
    s.write(
        "runs/smoke/metrics.csv",
        "epoch,d_loss,g_loss,d_real,d_fake,seconds,samples_per_sec\n1,1.2,0.7,0.5,0.4,1.0,2000\n",
    );
    run
}

#[test]
fn runs_of_the_retired_mode_still_compare_and_sample_but_do_not_resume() {
    let s = Scratch::new();
    let run = old_run(&s);
    let out = s.ok(&["compare", "runs/smoke", "--csv"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("smoke"));
    s.ok(&["sample", "runs/smoke", "--n", "4", "--out", "old.idx"]);
    assert_eq!(
        std::fs::metadata(s.path().join("old.idx")).unwrap().len(),
        16 + 4 * 784
    );
    // Resuming it under the current config names the retired setting and the way out.
    let smoke = config("smoke.toml").display().to_string();
    let err = s.fails(&smoke_args(&[&smoke], &data_dir()));
    assert!(
        err.contains("retired") && err.contains("--force") && err.contains("--name"),
        "{err}"
    );
    assert!(run.join("checkpoints/epoch-0001.safetensors").exists());
}

#[test]
fn grids_eval_and_sample_generate_in_the_mode_asked_for() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[
            &smoke,
            "--set",
            "training.epochs=1",
            "--set",
            "generation.extra_grids=[\"tutorial_bypass\"]",
        ],
        &data,
    ));
    let run = s.path().join("runs/smoke");
    let as_trained = std::fs::read(run.join("samples/epoch-0001.png")).unwrap();
    let bypass = std::fs::read(run.join("samples/epoch-0001-tutorial_bypass.png")).unwrap();
    assert_ne!(as_trained, bypass, "batch-norm bypassed draws other images");

    // The end-of-epoch losses, as the tutorial printed them, are in the metrics.
    let mut metrics = csv::Reader::from_path(run.join("metrics.csv")).unwrap();
    let headers = metrics.headers().unwrap().clone();
    let row = metrics.records().next().unwrap().unwrap();
    for column in ["d_loss_end", "g_loss_end"] {
        let i = headers.iter().position(|h| h == column).unwrap();
        let value: f64 = row[i].parse().unwrap();
        assert!(value.is_finite() && value > 0.0, "{column} = {value}");
    }

    // `sample` draws as the config says unless told otherwise.
    let sample = |extra: &[&str], out: &str| {
        let mut args = vec!["sample", "runs/smoke", "--n", "30", "--out", out];
        args.extend_from_slice(extra);
        s.ok(&args);
        std::fs::read(s.path().join(out)).unwrap()
    };
    let default = sample(&[], "a.idx");
    assert_eq!(default, sample(&["--generation", "as_trained"], "b.idx"));
    assert_ne!(
        default,
        sample(&["--generation", "tutorial_bypass"], "c.idx")
    );

    // `eval` records the mode, and keeps the other mode's scores in their own file.
    for (flag, file) in [
        (None, "eval.json"),
        (Some("tutorial_bypass"), "eval-tutorial_bypass.json"),
    ] {
        let mut args = vec!["eval", "runs/smoke", "--n", "200", "--data-dir", &data];
        if let Some(mode) = flag {
            args.extend_from_slice(&["--generation", mode]);
        }
        s.ok(&args);
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join(file)).unwrap()).unwrap();
        assert_eq!(e["generation"], flag.unwrap_or("as_trained"), "{file}");
    }
}

#[test]
fn changing_the_generation_mode_between_starts_is_said() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    let start = |extra: &[&str]| {
        let mut args = vec![smoke.as_str(), "--max-epochs", "1"];
        args.extend_from_slice(extra);
        String::from_utf8_lossy(&s.ok(&smoke_args(&args, &data)).stderr).to_string()
    };
    let first = start(&[]);
    assert!(!first.contains("[generation] changed"), "{first}");
    let second = start(&["--set", "generation.mode=\"tutorial_bypass\""]);
    assert!(second.contains("[generation] changed"), "{second}");
}
