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
        "run,optimizer.discriminator.beta1,state,epochs,d_loss,g_loss,d_real,d_fake,fid,score,\
         modes,parzen,precision,recall,kid,kid_se,scored_at"
    );
    let g: Vec<f64> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect();
    assert_eq!(g.len(), 3);
    assert!(g.windows(2).all(|w| w[0] <= w[1]), "{table}");

    // Without --png no picture is written, into a run or anywhere.
    s.ok(&["diff", "runs/sw/beta1=0.1", "runs/sw/beta1=0.9"]);
    assert!(!s
        .path()
        .join("runs/sw/beta1=0.1/diff-beta1=0.9.png")
        .exists());

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
    // The losses as charts above, then each common epoch's grids, A's left of B's, copied
    // unchanged.
    let png = image::open(s.path().join("d.png")).unwrap().to_rgb8();
    let grid = |run: &str, epoch: u32| {
        let path = format!("runs/sw/{run}/samples/epoch-{epoch:04}.png");
        image::open(s.path().join(path)).unwrap().to_rgb8()
    };
    let find = |g: &image::RgbImage| find_in(&png, g);
    let (ax, ay) = find(&grid("beta1=0.1", 1)).expect("A's epoch 1 grid");
    let (bx, by) = find(&grid("beta1=0.9", 1)).expect("B's epoch 1 grid");
    assert!(ay == by && bx > ax, "A at ({ax}, {ay}), B at ({bx}, {by})");
    let (_, ay2) = find(&grid("beta1=0.1", 2)).expect("A's epoch 2 grid");
    assert!(ay2 > ay);
    assert!(ay > 250, "the charts above the grids: {ay}");
    // Gridlines and text in the charts: light grey and black pixels.
    let charts = (0..png.width()).flat_map(|x| (0..ay).map(move |y| (x, y)));
    let (grey, black) = charts.fold((0, 0), |(g, b), (x, y)| match png.get_pixel(x, y).0 {
        [220, 220, 220] => (g + 1, b),
        [0, 0, 0] => (g, b + 1),
        _ => (g, b),
    });
    assert!(grey > 500 && black > 500, "gridlines {grey}, text {black}");
}

/// Where `part` is copied, unchanged, into `whole`: its top left corner.
fn find_in(whole: &image::RgbImage, part: &image::RgbImage) -> Option<(u32, u32)> {
    (0..=whole.height() - part.height())
        .flat_map(|y| (0..=whole.width() - part.width()).map(move |x| (x, y)))
        .find(|&(x, y)| {
            part.enumerate_pixels()
                .all(|(px, py, p)| whole.get_pixel(x + px, y + py) == p)
        })
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

/// A halving sweep on the smoke config: 4 points, one rung at epoch 1 keeping half, 2 epochs.
fn halving_sweep(s: &Scratch) -> String {
    let text = format!(
        "name = \"hs\"\nbase = \"{}\"\n\
         [set]\n\"evaluation.every\" = 1\n\"evaluation.samples\" = 300\n\"training.epochs\" = 2\n\
         \"data.train_size\" = 500\n\
         [grid]\n\"optimizer.discriminator.beta1\" = [0.1, 0.9]\n\
         \"optimizer.generator.beta1\" = [0.1, 0.5]\n\
         [halving]\nmetric = \"fid\"\nrungs = [1]\nkeep = 0.5\n",
        config("smoke.toml").display()
    );
    s.write("halving.toml", &text).display().to_string()
}

/// When a point's checkpoint of `epoch` was written, if it exists: a checkpoint written
/// again means an epoch trained twice.
fn checkpoint_time(s: &Scratch, point: &str, epoch: usize) -> Option<std::time::SystemTime> {
    let path = s
        .path()
        .join("runs/hs")
        .join(point)
        .join(format!("checkpoints/epoch-{epoch:04}.safetensors"));
    std::fs::metadata(path).ok()?.modified().ok()
}

#[test]
fn halving_stops_the_weaker_half_at_the_rung_and_resumes_without_retraining() {
    let s = Scratch::new();
    let sweep = halving_sweep(&s);
    let data = format!("data.dir={}", data_dir());
    let common = ["--set", &data, "--runs-dir", "runs"];
    let points = [
        "discriminator.beta1=0.1,generator.beta1=0.1",
        "discriminator.beta1=0.1,generator.beta1=0.5",
        "discriminator.beta1=0.9,generator.beta1=0.1",
        "discriminator.beta1=0.9,generator.beta1=0.5",
    ];
    let plan = s.ok(&[&["sweep", &sweep, "--plan"], &common[..]].concat());
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan.contains("epoch 1: best 2 of 4 go on; 2 train to epoch 2"),
        "{plan}"
    );
    assert_eq!(plan.matches("to run").count(), 4, "{plan}");

    // As if a first call was killed during the rung: one point has reached it.
    s.ok(&[
        &["run-point", &sweep, "0", "--until-epoch", "1"],
        &common[..],
    ]
    .concat());
    let first = checkpoint_time(&s, points[0], 1).expect("point 0 reached the rung");
    assert_eq!(
        checkpoint_time(&s, points[0], 2),
        None,
        "stopped at the rung"
    );

    let out = s.ok(&[&["sweep", &sweep, "--jobs", "2"], &common[..]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.matches("finished").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("stopped").count(), 2, "{stdout}");
    assert_eq!(
        checkpoint_time(&s, points[0], 1),
        Some(first),
        "not trained again"
    );
    let stamps: Vec<_> = points
        .iter()
        .map(|p| (checkpoint_time(&s, p, 1), checkpoint_time(&s, p, 2)))
        .collect();

    // The index, the stopped points' records and the ranks agree.
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path().join("runs/hs/index.json")).unwrap(),
    )
    .unwrap();
    let mut fids = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let entry = &index["points"][i];
        let state = entry["state"].as_str().unwrap();
        let rung = &entry["rungs"][0];
        assert_eq!(rung["epoch"], 1);
        assert_eq!(rung["of"], 4);
        let stopped = s.path().join("runs/hs").join(p).join("stopped.json");
        match state {
            "stopped" => {
                assert_eq!(rung["kept"], false);
                assert_eq!(checkpoint_time(&s, p, 2), None, "{p} stopped at 1");
                let record: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&stopped).unwrap()).unwrap();
                assert_eq!(record["at"], *rung);
            }
            "finished" => {
                assert_eq!(rung["kept"], true);
                assert!(checkpoint_time(&s, p, 2).is_some(), "{p} went on");
                assert!(!stopped.exists());
            }
            other => panic!("{p}: state {other}"),
        }
        fids.push((rung["score"].as_f64().unwrap(), state == "finished"));
    }
    let worst_kept = fids
        .iter()
        .filter(|f| f.1)
        .map(|f| f.0)
        .fold(f64::MIN, f64::max);
    let best_stopped = fids
        .iter()
        .filter(|f| !f.1)
        .map(|f| f.0)
        .fold(f64::MAX, f64::min);
    assert!(worst_kept <= best_stopped, "{fids:?}");

    // Run again: nothing trains, the same decisions.
    let again = s.ok(&[&["sweep", &sweep], &common[..]].concat());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
    let again_stamps: Vec<_> = points
        .iter()
        .map(|p| (checkpoint_time(&s, p, 1), checkpoint_time(&s, p, 2)))
        .collect();
    assert_eq!(again_stamps, stamps);

    // compare shows where each stopped.
    let table = s.ok(&["compare", "runs/hs", "--csv"]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert_eq!(table.matches(",stopped@1,").count(), 2, "{table}");
    assert_eq!(table.matches(",finished,").count(), 2, "{table}");
}

#[test]
fn halving_needs_scores_at_its_rungs() {
    let s = Scratch::new();
    let text = std::fs::read_to_string(halving_sweep(&s))
        .unwrap()
        .replace("\"evaluation.every\" = 1\n", "");
    let sweep = s.write("halving.toml", &text).display().to_string();
    let err = s.fails(&["sweep", &sweep, "--plan"]);
    assert!(err.contains("halving.metric"), "{err}");
    assert!(err.contains("\"evaluation.every\""), "{err}");
    let late = text.replace("rungs = [1]", "rungs = [2]");
    let sweep = s.write("halving.toml", &late).display().to_string();
    let err = s.fails(&["sweep", &sweep, "--plan"]);
    assert!(err.contains("ends at epoch 2"), "{err}");
}

#[test]
fn the_shipped_beta1_study_plans_its_rungs() {
    let s = Scratch::new();
    let study = config("beta1-study.toml").display().to_string();
    let out = s.ok(&["sweep", &study, "--plan", "--runs-dir", "runs"]);
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        plan.contains(
            "epoch 5: best 3 of 8 go on; epoch 20: best 1 of 3 go on; 1 trains to epoch 71"
        ),
        "{plan}"
    );
    assert_eq!(plan.matches("to run").count(), 8, "{plan}");
}

#[test]
fn a_point_that_trained_another_config_is_left_alone_and_reported() {
    let s = Scratch::new();
    let sweep = smoke_sweep(&s);
    let data = format!("data.dir={}", data_dir());
    let first = [
        "--set",
        &data,
        "--set",
        "training.epochs=1",
        "--set",
        "data.train_size=500",
        "--runs-dir",
        "runs",
    ];
    s.ok(&[&["sweep", &sweep], &first[..]].concat());
    let index = std::fs::read_to_string(s.path().join("runs/sw/index.json")).unwrap();
    assert!(index.contains("data.train_size=500"), "{index}");

    // The same sweep without that --set: nothing is reused or retrained.
    let second = [
        "--set",
        &data,
        "--set",
        "training.epochs=1",
        "--runs-dir",
        "runs",
    ];
    let plan = s.ok(&[&["sweep", &sweep, "--plan"], &second[..]].concat());
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(plan.matches(" other ").count(), 3, "{plan}");
    assert!(plan.contains("data.train_size"), "{plan}");
    let metrics = s.path().join("runs/sw/beta1=0.1/metrics.csv");
    let before = std::fs::read(&metrics).unwrap();
    let out = s.run(&[&["sweep", &sweep], &second[..]].concat());
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.matches("other_config").count(), 3, "{stdout}");
    assert!(stderr.contains("data.train_size"), "{stderr}");
    assert_eq!(
        std::fs::read(&metrics).unwrap(),
        before,
        "a point was retrained"
    );
}

/// A smoke sweep over D's beta1 with every setting over seeds 1 and 2 (`more`: further lines
/// of the sweep file).
fn seeded_sweep(s: &Scratch, more: &str) -> String {
    let text = format!(
        "name = \"seeded\"\nbase = \"{}\"\nseeds = [1, 2]\n\
         [grid]\n\"optimizer.discriminator.beta1\" = [0.1, 0.9]\n{more}",
        config("smoke.toml").display()
    );
    s.write("seeded.toml", &text).display().to_string()
}

#[test]
fn seeds_make_runs_of_their_own_that_compare_groups_by_setting() {
    let s = Scratch::new();
    let sweep = seeded_sweep(&s, "");
    let data = format!("data.dir={}", data_dir());
    let common = [
        "--set",
        &data,
        "--set",
        "training.epochs=1",
        "--set",
        "data.train_size=500",
        "--runs-dir",
        "runs",
    ];
    let plan = s.ok(&[&["sweep", &sweep, "--plan"], &common[..]].concat());
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan.contains("2 settings x seeds [1, 2] = 4 points"),
        "{plan}"
    );
    assert_eq!(plan.matches("to run").count(), 4, "{plan}");
    assert!(plan.contains("beta1=0.9,seed=2"), "{plan}");
    let out = s.ok(&[&["sweep", &sweep, "--emit", "slurm"], &common[..]].concat());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("#SBATCH --array=0-3"), "{script}");
    assert!(script.contains("seeds [1, 2]"), "{script}");

    s.ok(&[&["sweep", &sweep, "--jobs", "2"], &common[..]].concat());
    for (point, seed) in [("beta1=0.1,seed=1", 1), ("beta1=0.9,seed=2", 2)] {
        let saved =
            std::fs::read_to_string(s.path().join("runs/seeded").join(point).join("config.toml"));
        assert!(
            saved.unwrap().contains(&format!("seed = {seed}\n")),
            "{point}"
        );
    }
    let index = std::fs::read_to_string(s.path().join("runs/seeded/index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(index["points"][1]["setting"], "beta1=0.1");
    assert_eq!(index["points"][1]["seed"], 2);
    assert_eq!(index["points"][1]["state"], "finished");

    // One row per setting, with its seed count and each metric's mean and spread: for people
    // `mean ± sd`, in CSV the mean, `<metric>_sd` and `<metric>_n` as numbers.
    let out = s.ok(&["compare", "runs/seeded", "--sort", "d_loss"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().nth(1).unwrap().contains("1 ± 0"), "{text}");
    let out = s.ok(&["compare", "runs/seeded", "--csv", "--sort", "d_loss"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with(
            "setting,seeds,optimizer.discriminator.beta1,state,epochs,epochs_sd,epochs_n,\
             d_loss,d_loss_sd,d_loss_n,"
        ),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");
    for line in &lines[1..] {
        assert!(
            line.starts_with("beta1=0.1,2,0.1,finished,1,0,2,")
                || line.starts_with("beta1=0.9,2,0.9,finished,1,0,2,"),
            "{table}"
        );
        let sd: f64 = line.split(',').nth(8).unwrap().parse().unwrap();
        assert!(sd > 0.0, "the seeds trained differently: {table}");
    }
    // --per-seed: each run, and the seeds trained differently.
    let out = s.ok(&["compare", "runs/seeded", "--json", "--per-seed"]);
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let columns = table["columns"].as_array().unwrap();
    assert_eq!(
        columns[..3],
        ["run", "optimizer.discriminator.beta1", "seed"],
        "{table}"
    );
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{table}");
    assert_eq!(rows[1][0], "beta1=0.1,seed=2", "{table}");
    let d_loss = columns.iter().position(|c| c == "d_loss").unwrap();
    assert_ne!(rows[0][d_loss], rows[1][d_loss], "{table}");
    // The report gains the table by setting beside its table of runs.
    s.ok(&["report", "runs/seeded", "--out", "r.html"]);
    let page = std::fs::read_to_string(s.path().join("r.html")).unwrap();
    let by_setting = page
        .split("<h2>By setting")
        .nth(1)
        .expect("a table by setting");
    assert!(by_setting.contains("<th>seeds</th>"), "{by_setting}");
    assert_eq!(
        by_setting.matches("<td>beta1=0.").count(),
        2,
        "{by_setting}"
    );
}

#[test]
fn a_halving_sweep_with_seeds_keeps_or_stops_a_setting_s_seeds_together() {
    let s = Scratch::new();
    let sweep = seeded_sweep(
        &s,
        "[set]\n\"evaluation.every\" = 1\n\"evaluation.samples\" = 300\n\"training.epochs\" = 2\n\
         \"data.train_size\" = 500\n[halving]\nmetric = \"fid\"\nrungs = [1]\nkeep = 0.5\n",
    );
    let data = format!("data.dir={}", data_dir());
    let common = ["--set", &data, "--runs-dir", "runs"];
    let plan = s.ok(&[&["sweep", &sweep, "--plan"], &common[..]].concat());
    let plan = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan.contains("epoch 1: best 1 of 2 go on; 1 trains to epoch 2"),
        "{plan}"
    );
    assert!(plan.contains("mean over their 2 seeds"), "{plan}");
    s.ok(&[&["sweep", &sweep, "--jobs", "2"], &common[..]].concat());
    let index = std::fs::read_to_string(s.path().join("runs/seeded/index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let states: Vec<&str> = (0..4)
        .map(|i| index["points"][i]["state"].as_str().unwrap())
        .collect();
    assert!(
        states == ["finished", "finished", "stopped", "stopped"]
            || states == ["stopped", "stopped", "finished", "finished"],
        "{index}"
    );
    // Each seed records the setting's mean, by which it was ranked, beside its own score.
    for setting in [0, 2] {
        let (a, b) = (
            &index["points"][setting]["rungs"][0],
            &index["points"][setting + 1]["rungs"][0],
        );
        let (own_a, own_b) = (
            a["seed_score"].as_f64().unwrap(),
            b["seed_score"].as_f64().unwrap(),
        );
        let mean = a["score"].as_f64().unwrap();
        assert!((mean - (own_a + own_b) / 2.0).abs() < 1e-9, "{index}");
        assert_eq!(a["score"], b["score"]);
        assert_eq!(a["of"], 2);
    }
    let stopped = if states[0] == "stopped" {
        "beta1=0.1,seed=2"
    } else {
        "beta1=0.9,seed=2"
    };
    let record = std::fs::read_to_string(
        s.path()
            .join("runs/seeded")
            .join(stopped)
            .join("stopped.json"),
    );
    assert!(record.unwrap().contains("seed_score"));
    let out = s.ok(&["ls", "runs"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.matches("stopped@1").count(), 2, "{listing}");
}

#[test]
fn seeds_beside_a_swept_seed_are_refused() {
    let s = Scratch::new();
    let sweep = seeded_sweep(&s, "seed = [3, 4]\n");
    let err = s.fails(&["sweep", &sweep, "--plan"]);
    assert!(
        err.contains("seeded.toml") && err.contains("grid.seed"),
        "{err}"
    );
    assert!(err.contains("seeds = [1, 2]"), "{err}");
}
