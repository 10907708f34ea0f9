//! A researcher's daily use: overrides typed as `KEY=VALUE`.

use std::path::Path;

use crate::util::*;

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_key_value_argument_overrides_like_set() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    // The shorthand and `train`, as researchers type them.
    s.ok(&[
        smoke.as_str(),
        "training.epochs=2",
        "--data-dir",
        &data,
        "--runs-dir",
        "runs",
    ]);
    let run = s.path().join("runs/smoke");
    assert_eq!(loss_columns(&run.join("metrics.csv")).len(), 2);
    assert!(text(&run.join("config.toml")).contains("epochs = 2\n"));
    assert_eq!(text(&run.join("overrides.txt")), "training.epochs=2\n");
    let summary: serde_json::Value =
        serde_json::from_str(&text(&run.join("summary.json"))).unwrap();
    assert_eq!(
        (summary["epochs"].as_u64(), summary["finished"].as_bool()),
        (Some(2), Some(true))
    );
    s.ok(&[
        "train",
        &smoke,
        "training.epochs=1",
        "seed=9",
        "--name",
        "other",
        "--data-dir",
        &data,
        "--runs-dir",
        "runs",
    ]);
    let other = text(&s.path().join("runs/other/config.toml"));
    assert!(
        other.contains("seed = 9\n") && other.contains("epochs = 1\n"),
        "{other}"
    );
    // `check` takes them too.
    let out = s.ok(&[
        "check",
        &smoke,
        "training.epochs=4",
        "--print",
        "--data-dir",
        &data,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("epochs = 4\n"));
}

#[test]
fn an_argument_that_is_neither_a_file_nor_an_override_stops_everything_at_once() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let common = ["--data-dir", data.as_str(), "--runs-dir", "runs"];
    for (args, names, hint) in [
        (
            vec![smoke.as_str(), "nonsense.key=1"],
            "nonsense.key=1",
            "unknown field",
        ),
        (
            vec![smoke.as_str(), "typo.tom"],
            "`typo.tom`",
            "neither an experiment file",
        ),
        (
            vec![smoke.as_str(), "training.epoch=2"],
            "training.epoch=2",
            "did you mean `training.epochs`",
        ),
        // A bad argument after two good configs: neither trains.
        (
            vec![smoke.as_str(), smoke.as_str(), "typo.tom"],
            "`typo.tom`",
            "no such file",
        ),
    ] {
        let started = std::time::Instant::now();
        let err = s.fails(&[&args[..], &common[..]].concat());
        assert!(err.contains(names) && err.contains(hint), "{args:?}: {err}");
        assert!(
            !s.path().join("runs").exists(),
            "{args:?} trained something: {err}"
        );
        assert!(
            started.elapsed().as_secs() < 20,
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    // `--set KEY VALUE`: one error, which says how to write it.
    let err = s.fails(
        &[
            &[smoke.as_str(), "--set", "training.epochs", "2"],
            &common[..],
        ]
        .concat(),
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains("--set training.epochs=2"), "{err}");
    assert!(!s.path().join("runs").exists());
    let err = s.fails(&["check", &smoke, "nonsense.key=1"]);
    assert!(err.contains("nonsense.key=1"), "{err}");
}
