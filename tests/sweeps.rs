//! Sweeps: points run as child processes, resume without redoing finished points, survive a
//! failing point, and run as a Slurm job array.

use crate::util::*;

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
