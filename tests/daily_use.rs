//! A researcher's daily use: overrides typed as `KEY=VALUE`, multiruns from the command line,
//! sweep variants under their own name, shell completion that completes, and the provenance
//! each start records.

use std::path::Path;
use std::process::{Command, Output};

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

/// The 2 x 2 grid of the multirun test, as typed on the command line.
const GRID: [&str; 2] = [
    "optimizer.generator.beta1=0.1,0.5",
    "optimizer.discriminator.beta1=0.1,0.9",
];

#[test]
fn a_multirun_makes_the_runs_of_the_equivalent_sweep_file() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = format!("data.dir={}", data_dir());
    let multirun = [
        "-m",
        &smoke,
        GRID[0],
        GRID[1],
        "training.epochs=1",
        "data.train_size=500",
        &data,
        "--runs-dir",
        "runs",
    ];
    let name = "smoke-optimizer.generator.beta1-optimizer.discriminator.beta1";
    let file = s.write(
        "grid.toml",
        &format!(
            "name = \"by-file\"\nbase = \"{smoke}\"\n\
             [set]\n\"training.epochs\" = 1\n\"data.train_size\" = 500\n\"data.dir\" = {:?}\n\
             [grid]\n\"optimizer.generator.beta1\" = [0.1, 0.5]\n\
             \"optimizer.discriminator.beta1\" = [0.1, 0.9]\n",
            data_dir()
        ),
    );
    let file = file.display().to_string();
    let plan = |args: &[&str]| {
        let out = s.ok(&[args, &["--plan"]].concat());
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let by_m = plan(&multirun);
    assert_eq!(by_m, plan(&["sweep", &file, "--runs-dir", "runs"]));
    assert_eq!(by_m.matches("to run").count(), 4, "{by_m}");
    assert!(!s.path().join("runs").exists(), "a plan wrote something");

    s.ok(&[&multirun[..], &["--jobs", "2"]].concat());
    s.ok(&["sweep", &file, "--runs-dir", "runs"]);
    let points = |sweep: &str| -> Vec<String> {
        let index: serde_json::Value =
            serde_json::from_str(&text(&s.path().join("runs").join(sweep).join("index.json")))
                .unwrap();
        index["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["state"], "finished", "{p}");
                p["name"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(points(name), points("by-file"));
    assert_eq!(points(name).len(), 4);
    for point in points(name) {
        let (m, f) = (
            s.path().join("runs").join(name),
            s.path().join("runs/by-file"),
        );
        for saved in ["config.toml", "overrides.txt", "metrics.csv"] {
            let (a, b) = (
                text(&m.join(&point).join(saved)),
                text(&f.join(&point).join(saved)),
            );
            if saved == "metrics.csv" {
                // Timings differ; the losses may not.
                assert_eq!(
                    loss_columns(&m.join(&point).join(saved)),
                    loss_columns(&f.join(&point).join(saved))
                );
            } else {
                assert_eq!(a, b, "{point}/{saved}");
            }
        }
    }
    // The multirun's sweep file is in its directory, and runs it again (all finished).
    let written = s.path().join("runs").join(name).join("sweep.toml");
    let again = s.ok(&[
        "sweep",
        &written.display().to_string(),
        "--runs-dir",
        "runs",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout)
            .matches("skipped")
            .count(),
        4
    );
    // Another grid under the same name is refused, pointing at --name.
    let err = s.fails(&[
        "-m",
        &smoke,
        "optimizer.generator.beta1=0.2,0.5",
        GRID[1],
        "training.epochs=1",
        &data,
        "--runs-dir",
        "runs",
    ]);
    assert!(
        err.contains("another multirun") && err.contains("--name"),
        "{err}"
    );
    // A Slurm script runs the written file's points.
    let out = s.ok(&[&multirun[..], &["--emit", "slurm", "--name", "m2"]].concat());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("#SBATCH --array=0-3"), "{script}");
    assert!(
        script.contains("m2/sweep.toml") && script.contains("--name 'm2'"),
        "{script}"
    );
    assert!(s.path().join("runs/m2/sweep.toml").is_file());
}

#[test]
fn a_sweep_variant_under_its_own_name_is_a_sweep_of_its_own() {
    let s = Scratch::new();
    let sweep = s
        .write(
            "sw.toml",
            &format!(
                "name = \"sw\"\nbase = \"{}\"\n[set]\n\"training.epochs\" = 1\n\
                 \"data.train_size\" = 500\n[grid]\n\"optimizer.discriminator.beta1\" = [0.1, 0.9]\n",
                config("smoke.toml").display()
            ),
        )
        .display()
        .to_string();
    let data = format!("data.dir={}", data_dir());
    s.ok(&["sweep", &sweep, "--set", &data, "--runs-dir", "runs"]);
    // Why a --set variant used to find every point `other`: its points are the same
    // directories, which trained the sweep's own config.
    let variant = [
        "sweep",
        &sweep,
        "--set",
        &data,
        "optimizer.generator.lr=1e-3",
    ];
    let plan = s.ok(&[&variant[..], &["--plan"]].concat());
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(plan.matches(" other ").count(), 2, "{plan}");
    assert!(plan.contains("optimizer.generator.lr"), "{plan}");
    // Under a name of its own it is a sweep of its own.
    let named = [&variant[..], &["--name", "sw-lr"]].concat();
    let plan = s.ok(&[&named[..], &["--plan"]].concat());
    assert_eq!(
        String::from_utf8_lossy(&plan.stdout)
            .matches("to run")
            .count(),
        2
    );
    s.ok(&named);
    let config = text(&s.path().join("runs/sw-lr/beta1=0.9/config.toml"));
    assert!(config.contains("lr = 0.001\n"), "{config}");
    let index: serde_json::Value =
        serde_json::from_str(&text(&s.path().join("runs/sw-lr/index.json"))).unwrap();
    assert_eq!(index["sweep"], "sw-lr");
    assert!(
        index["set"]
            .to_string()
            .contains("optimizer.generator.lr=1e-3"),
        "{index}"
    );
    // The sweep's own points were left as they were.
    let own = text(&s.path().join("runs/sw/beta1=0.9/config.toml"));
    assert!(own.contains("lr = 0.0002\n"), "{own}");
}

/// Runs the bash completion of `words` (the last is the word being completed) in `s` and
/// returns what it offers, or `None` (said loudly) where bash is missing.
fn complete(s: &Scratch, words: &[&str]) -> Option<Vec<String>> {
    let bash = Command::new("bash").arg("--version").output();
    if !tool_available(bash.is_ok(), "bash", "the completion test") {
        return None;
    }
    let script = s.path().join("gan-run.bash");
    if !script.exists() {
        let out = s.ok(&["completions", "bash"]);
        std::fs::write(&script, &out.stdout).unwrap();
    }
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let program = format!(
        "source ./gan-run.bash\n\
         fn=$(complete -p gan-run | sed -E 's/.* -F ([^ ]+) .*/\\1/')\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         COMPREPLY=()\n\
         \"$fn\" gan-run \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" ")
    );
    let out = run_tool(
        Command::new("bash")
            .arg("-c")
            .arg(program)
            .current_dir(s.path()),
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    )
}

#[test]
fn bash_completion_completes_subcommand_flags_config_keys_and_runs() {
    let s = Scratch::new();
    let Some(offered) = complete(&s, &["gan-run", "compare", "--"]) else {
        return;
    };
    assert!(offered.iter().any(|o| o == "--json"), "{offered:?}");
    let offered = complete(&s, &["gan-run", "run-point", "--until"]).unwrap();
    assert_eq!(offered, ["--until-epoch"]);
    for words in [
        &["gan-run", "train", "x.toml", "--set", "optimizer.gen"][..],
        &["gan-run", "train", "x.toml", "optimizer.gen"][..],
        &["gan-run", "x.toml", "optimizer.gen"][..],
    ] {
        let offered = complete(&s, words).unwrap();
        assert!(
            offered.iter().any(|o| o == "optimizer.generator.beta1="),
            "{words:?}: {offered:?}"
        );
        assert!(
            offered.iter().all(|o| o.starts_with("optimizer.gen")),
            "{words:?}: {offered:?}"
        );
    }
    let offered = complete(&s, &["gan-run", "check", "x.toml", "--set", "training.e"]).unwrap();
    assert_eq!(offered, ["training.epochs="]);
    for run in ["runs/a", "runs/b/checkpoints"] {
        std::fs::create_dir_all(s.path().join(run)).unwrap();
    }
    for command in ["diff", "eval", "sample", "export"] {
        let mut offered = complete(&s, &["gan-run", command, ""]).unwrap();
        offered.sort();
        assert_eq!(offered, ["runs/a", "runs/b"], "{command}");
    }
    let offered = complete(&s, &["gan-run", "diff", "runs/a", "runs/"]).unwrap();
    assert_eq!(offered.len(), 2, "{offered:?}");
}

/// `gan-run ARGS` in the scratch folder with extra environment variables.
fn run_env(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gan-run"))
        .args(args)
        .current_dir(s.path())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gan-run {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The commit gan-run was built from, as `git` says now (`unknown` without git or a repository).
fn head_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
}

fn provenance(run: &Path) -> Vec<serde_json::Value> {
    text(&run.join("provenance.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn each_start_records_its_provenance_and_diff_shows_where_two_runs_differ() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let train = |epochs: &str, name: &str, host: &str, threads: &str| {
        let args = [
            smoke.as_str(),
            epochs,
            "--name",
            name,
            "--data-dir",
            &data,
            "--runs-dir",
            "runs",
        ];
        run_env(
            &s,
            &args,
            &[("GAN_RUN_HOST", host), ("RAYON_NUM_THREADS", threads)],
        );
    };
    train("training.epochs=1", "a", "alpha", "1");
    train("training.epochs=2", "a", "beta", "2");
    train("training.epochs=2", "b", "gamma", "2");
    let a = s.path().join("runs/a");
    let records = provenance(&a);
    assert_eq!(records.len(), 2, "{records:?}");
    let (first, last) = (&records[0], &records[1]);
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["git_commit"], head_commit().as_str());
    assert!(
        first["git_dirty"].is_boolean() || first["git_commit"] == "unknown",
        "{first}"
    );
    assert_eq!(
        (first["host"].as_str(), last["host"].as_str()),
        (Some("alpha"), Some("beta"))
    );
    assert_eq!(
        (first["threads"].as_u64(), last["threads"].as_u64()),
        (Some(1), Some(2))
    );
    let command: Vec<&str> = last["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        command[1..4],
        [smoke.as_str(), "training.epochs=2", "--name"]
    );
    let at = last["started_at"].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert!(!last["cpu"]["model_name"].as_str().unwrap().is_empty());
    assert!(last["cpu"]["features"].is_array());
    // Each checkpoint holds the record of the start that wrote it.
    let recorded = |epoch: &str| {
        let bytes =
            std::fs::read(a.join(format!("checkpoints/epoch-{epoch}.safetensors"))).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let text = meta.metadata().as_ref().unwrap()["provenance"].clone();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    assert_eq!(&recorded("0001"), first);
    assert_eq!(&recorded("0002"), last);
    // Where and how a run started is metadata: the trained tensors are the same.
    assert_eq!(
        tensors(&a.join("checkpoints/epoch-0002.safetensors")),
        tensors(&s.path().join("runs/b/checkpoints/epoch-0002.safetensors"))
    );

    let out = s.ok(&["diff", "runs/a", "runs/b", "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = d["provenance"].as_array().unwrap();
    let row = |key: &str| rows.iter().find(|r| r[0] == key).cloned();
    assert_eq!(
        row("host"),
        Some(serde_json::json!(["host", "beta", "gamma"])),
        "{d}"
    );
    assert_eq!(
        row("starts"),
        Some(serde_json::json!(["starts", "2", "1"])),
        "{d}"
    );
    assert_eq!(row("threads"), None, "{d}");
    assert_eq!(row("git_commit"), None, "{d}");
    let out = s.ok(&["diff", "runs/a", "runs/b"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Provenance that differs") && shown.contains("gamma"),
        "{shown}"
    );
}

/// A reader that stops early (`gan-run check ... | head`) ends the command quietly: no panic,
/// no backtrace, exit status 141 as for a C tool (or 0 had it all been written first).
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let smoke = config("smoke.toml").display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gan-run"))
        .args(["check", &smoke, "--print"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes before the command writes its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        matches!(out.status.code(), Some(141 | 0)),
        "{:?}",
        out.status
    );
}
