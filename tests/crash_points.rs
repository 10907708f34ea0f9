//! Crash points, as SQLite and LMDB test their commits: a run killed at each of its file
//! commits (every rename, the last step of each atomic write), then run again, must end as an
//! uninterrupted run does: the same metrics rows, summary and checkpoint tensors, and no
//! temporary left behind. `strace -e inject=rename:signal=KILL:when=N` does the killing.

use std::path::Path;

use crate::util::*;

/// Whether strace can inject faults here (CI installs it; elsewhere the test says it skipped).
fn strace_ready() -> bool {
    let ok = std::process::Command::new("strace")
        .args(["-qq", "-e", "inject=rename:error=EPERM:when=1", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    tool_available(ok, "strace (with fault injection)", "the crash-point test")
}

/// A short smoke run that writes every kind of file: grids, scores, the best checkpoint.
fn train_args(data: &str) -> Vec<String> {
    let smoke = config("smoke.toml").display().to_string();
    [
        "train",
        &smoke,
        "--data-dir",
        data,
        "--runs-dir",
        "runs",
        "--set",
        "training.epochs=2",
        "--set",
        "evaluation.every=1",
        "--set",
        "evaluation.samples=200",
    ]
    .map(String::from)
    .to_vec()
}

/// `gan-run ARGS` under strace in `dir`: with `inject`, killed at that rename; returns the
/// renames it made (or reached) and whether it was killed.
fn traced(dir: &Path, args: &[String], inject: Option<usize>) -> (usize, bool) {
    let trace = dir.join("renames.trace");
    let mut cmd = std::process::Command::new("strace");
    cmd.current_dir(dir)
        .env("RUST_LOG", "warn")
        .args(["-f", "-qq", "-e", "trace=rename,renameat,renameat2", "-o"])
        .arg(&trace);
    if let Some(n) = inject {
        cmd.args([
            "-e",
            &format!("inject=rename,renameat,renameat2:signal=KILL:when={n}"),
        ]);
    }
    let out = cmd
        .arg(env!("CARGO_BIN_EXE_gan-run"))
        .args(args)
        .output()
        .unwrap();
    let renames = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("rename"))
        .count();
    std::fs::remove_file(&trace).unwrap();
    let killed = String::from_utf8_lossy(&out.stderr).contains("SIGKILL") || !out.status.success();
    (renames, killed)
}

/// Metrics rows, summary, file names and checkpoint tensors of a run.
type Outcome = (
    Vec<Vec<String>>,
    serde_json::Value,
    Vec<String>,
    Vec<Vec<(String, Vec<u8>)>>,
);

/// What must match between a run and its uninterrupted twin: the metrics rows without their
/// timings, the summary without its timings, each checkpoint's tensors, the file names.
fn outcome(run: &Path) -> Outcome {
    let mut reader = csv::Reader::from_path(run.join("metrics.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let timing = |name: &str| name.contains("seconds") || name.contains("per_sec");
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .zip(r.iter())
                .filter(|(h, _)| !timing(h))
                .map(|(_, v)| v.to_string())
                .collect()
        })
        .collect();
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    summary["seconds_this_start"] = serde_json::Value::Null;
    for key in ["seconds", "samples_per_sec"] {
        summary["last"][key] = serde_json::Value::Null;
    }
    if let Some(e) = summary
        .get_mut("evaluation")
        .and_then(|e| e.as_object_mut())
    {
        e.remove("seconds");
    }
    let mut files = Vec::new();
    for sub in ["", "checkpoints", "samples"] {
        for entry in std::fs::read_dir(run.join(sub)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            // A start's own files: its log lines and its TensorBoard file name differ.
            if !name.starts_with("events.out.tfevents") && name != "train.log" {
                files.push(format!("{sub}/{name}"));
            }
        }
    }
    files.sort();
    let checkpoints = files
        .iter()
        .filter(|f| f.ends_with(".safetensors"))
        .map(|f| tensors(&run.join(f.trim_start_matches('/'))))
        .collect();
    (rows, summary, files, checkpoints)
}

/// Asserts that each part of `got` equals `want`'s, saying which differs and `when`.
fn assert_same(got: &Outcome, want: &Outcome, when: &str) {
    assert_eq!(got.0, want.0, "metrics rows {when}");
    assert_eq!(got.1, want.1, "summary {when}");
    assert_eq!(got.2, want.2, "files {when}");
    assert!(got.3 == want.3, "checkpoint tensors {when}");
}

#[test]
fn a_run_killed_at_any_file_commit_ends_as_an_uninterrupted_one() {
    if !strace_ready() {
        return;
    }
    let data = data_dir();
    let args = train_args(&data);
    let reference = Scratch::new();
    let (renames, killed) = traced(reference.path(), &args, None);
    assert!(!killed, "the uninterrupted run failed");
    assert!(renames >= 10, "a two-epoch run commits {renames} files");
    let expected = outcome(&reference.path().join("runs/smoke"));
    for n in 1..=renames {
        let s = Scratch::new();
        let (_, killed) = traced(s.path(), &args, Some(n));
        assert!(killed, "rename {n} of {renames} was not reached");
        let again = s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            again.status.success(),
            "killed at rename {n} of {renames}, the rerun failed: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let got = outcome(&s.path().join("runs/smoke"));
        assert_same(&got, &expected, &format!("after a kill at rename {n}"));
    }
}

/// A two-point sweep (the sweep process and one child per point, each killed at its own N-th
/// rename: strace counts per process) ends, when run again, as an uninterrupted sweep does.
#[test]
fn a_sweep_killed_at_any_file_commit_ends_as_an_uninterrupted_one() {
    if !strace_ready() {
        return;
    }
    let text = format!(
        "name = \"sw\"\nbase = \"{}\"\n[set]\n\"training.epochs\" = 1\n\"data.dir\" = \"{}\"\n\
         [grid]\nseed = [1, 2]\n",
        config("smoke.toml").display(),
        data_dir()
    );
    let args = ["sweep", "sweep.toml", "--runs-dir", "runs"].map(String::from);
    let points = ["runs/sw/seed=1", "runs/sw/seed=2"];
    // A rerun calls a point it found finished "skipped": done either way.
    let states = |s: &Scratch| -> Vec<String> {
        let states = sweep_states(&s.path().join("runs/sw"));
        states
            .iter()
            .map(|p| p.replace("skipped", "finished"))
            .collect()
    };
    let reference = Scratch::new();
    reference.write("sweep.toml", &text);
    let (renames, killed) = traced(reference.path(), &args, None);
    assert!(!killed, "the uninterrupted sweep failed");
    let expected: Vec<_> = points.map(|p| outcome(&reference.path().join(p))).into();
    assert_eq!(states(&reference), ["finished", "finished"]);
    // The most renames any one process makes: a child's (config, metrics, grid, checkpoint,
    // summary...), fewer than the whole sweep's.
    for n in 1..=renames / 2 {
        let s = Scratch::new();
        s.write("sweep.toml", &text);
        let (reached, killed) = traced(s.path(), &args, Some(n));
        if !killed {
            // No process makes n renames: every commit has been a crash point already.
            assert!(n > 1, "nothing was killed ({reached} renames)");
            break;
        }
        let again = s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            again.status.success(),
            "killed at each process's rename {n}, the rerun failed: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(states(&s), ["finished", "finished"], "after rename {n}");
        for (point, want) in points.iter().zip(&expected) {
            let got = outcome(&s.path().join(point));
            assert_same(&got, want, &format!("{point} after a kill at rename {n}"));
        }
    }
}
