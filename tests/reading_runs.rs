//! Runs read back: the HTML report, the run list, the comparison table.

use crate::util::*;

#[test]
fn report_is_one_self_contained_page_that_a_browser_renders() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    for (name, beta1) in [("a", "0.1"), ("b", "0.9")] {
        let b = format!("optimizer.discriminator.beta1={beta1}");
        s.ok(&smoke_args(
            &[
                &smoke,
                "--name",
                name,
                "--set",
                &b,
                "--set",
                "training.epochs=2",
            ],
            &data,
        ));
    }
    s.ok(&["report", "runs/a", "runs/b", "--out", "report.html"]);
    let page = std::fs::read_to_string(s.path().join("report.html")).unwrap();
    // The reference rows for scale, as eval prints them.
    assert!(page.contains("<td>real training images</td><td>0.20</td><td>9.77</td>"));
    // The four step metrics and the two end-of-epoch losses.
    assert_eq!(page.matches("<svg").count(), 6, "one chart per metric");
    assert_eq!(data_lines(&page), 12, "one line per run and metric");
    assert_eq!(
        page.matches("src=\"data:image/png;base64,").count(),
        4,
        "2 runs x 2 epochs"
    );
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no network"
    );
    assert!(page.contains("optimizer.discriminator.beta1"));
    assert!(
        !s.path().join("runs/a/curves.png").exists(),
        "nothing into a run"
    );

    // In a real headless browser: the DOM it builds has the charts and images, and the
    // screenshot is not blank.
    let browser = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if !tool_available(
        browser.is_some(),
        "chromium",
        "the browser half of this test",
    ) {
        return;
    }
    let browser = browser.unwrap();
    let url = format!("file://{}", s.path().join("report.html").display());
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let user_dir = format!("--user-data-dir={}", s.path().join("chrome").display());
    let run = |extra: &[&str]| {
        run_tool(
            std::process::Command::new(browser)
                .args(flags)
                .arg(&user_dir)
                .args(extra)
                .arg(&url),
        )
    };
    let dom = String::from_utf8_lossy(&run(&["--dump-dom"]).stdout).to_string();
    assert_eq!(data_lines(&dom), 12, "{dom:.300}");
    assert_eq!(dom.matches("<img").count(), 4);
    let shot = s.path().join("shot.png");
    run(&[
        "--window-size=1200,1600",
        &format!("--screenshot={}", shot.display()),
    ]);
    let img = image::open(&shot).unwrap().to_rgb8();
    // The first chart's lines are coloured: some pixel of the palette's blue is on screen.
    let blue = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
    assert!(blue > 50, "only {blue} line pixels in the screenshot");
}

/// How many of a page's `<polyline>`s are data lines, drawn 2 pixels wide (axes and ticks are
/// polylines 1 pixel wide).
fn data_lines(page: &str) -> usize {
    page.split("<polyline")
        .skip(1)
        .filter(|p| p[..p.find('>').unwrap()].contains("stroke-width=\"2\""))
        .count()
}

#[test]
fn ls_and_compare_list_runs_inside_sweep_folders_with_plain_output() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    for (name, beta1, epochs) in [("a", "0.1", "1"), ("b", "0.9", "2")] {
        let b = format!("optimizer.discriminator.beta1={beta1}");
        let e = format!("training.epochs={epochs}");
        let out = s.ok(&[
            "train",
            &smoke,
            "--data-dir",
            &data,
            "--runs-dir",
            "runs/sweep",
            "--name",
            name,
            "--set",
            &b,
            "--set",
            &e,
        ]);
        // Piped output carries no colour codes.
        assert!(!out.stderr.contains(&0x1b), "ANSI codes in piped output");
    }
    let out = s.ok(&["ls"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("run") && lines[0].contains("best_fid"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("sweep/a") && lines[1].contains("finished"),
        "{text}"
    );
    assert!(lines[1].contains("1/1"), "{text}");
    assert!(
        lines[2].starts_with("sweep/b") && lines[2].contains("2/2"),
        "{text}"
    );

    // compare recurses the same way and sorts either way, by a numeric column.
    let order = |args: &[&str]| -> Vec<String> {
        let out = s.ok(args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    let up = order(&["compare", "runs", "--csv", "--sort", "epochs"]);
    assert_eq!(up, ["a", "b"]);
    let down = order(&["compare", "runs", "--csv", "--sort", "epochs", "--desc"]);
    assert_eq!(down, ["b", "a"]);
}

/// `diff`'s config rows, as (key, A, B).
fn diff_config_rows(s: &Scratch, a: &str, b: &str) -> Vec<(String, String, String)> {
    let out = s.ok(&["diff", a, b, "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(d["config"].clone()).unwrap()
}

/// Saved configs hold every key, so `diff` shows a key only where the runs' values differ:
/// none for runs differing only in their name, only `extra_grids` where that alone differs (no
/// `generation.mode as_trained | -`), and at most the data folder between a run written before
/// saved configs held every key (tests/fixtures/run-1f55346) and a run of its config now.
#[test]
fn diff_shows_no_config_difference_for_runs_differing_only_in_their_name() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    for (name, set) in [
        ("a", "training.epochs=1"),
        ("b", "training.epochs=1"),
        ("c", "generation.extra_grids=[\"tutorial_bypass\"]"),
    ] {
        s.ok(&[
            "train",
            &smoke,
            "--data-dir",
            &data,
            "--runs-dir",
            "runs",
            "--name",
            name,
            "--set",
            "training.epochs=1",
            "--set",
            set,
        ]);
    }
    assert_eq!(diff_config_rows(&s, "runs/a", "runs/b"), []);
    let out = s.ok(&["diff", "runs/a", "runs/b"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Config keys that differ\n(none)"), "{text}");
    assert_eq!(
        diff_config_rows(&s, "runs/a", "runs/c"),
        [(
            "generation.extra_grids[0]".to_string(),
            "-".to_string(),
            "tutorial_bypass".to_string()
        )]
    );

    let fixture = repo().join("tests/fixtures/run-1f55346");
    let source = fixture.join("tiny.toml").display().to_string();
    s.ok(&[
        "train",
        &source,
        "--data-dir",
        &data,
        "--runs-dir",
        "runs",
        "--name",
        "tiny-now",
    ]);
    let old = fixture.join("tiny").display().to_string();
    // The fixture as B: `diff` writes its side-by-side PNG into A.
    let rows = diff_config_rows(&s, "runs/tiny-now", &old);
    assert!(rows.iter().all(|(key, _, _)| key == "data.dir"), "{rows:?}");
}

/// FIFOs where a run keeps its files do not hang `ls` (it once waited for a writer forever):
/// the listing ends at once, naming the file it could not read.
#[test]
fn ls_ends_at_once_when_a_run_holds_fifos() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=1"],
        &data_dir(),
    ));
    let fifo = |name: &str| {
        let path = s.path().join("runs/smoke").join(name);
        let _ = std::fs::remove_file(&path);
        run_tool(std::process::Command::new("mkfifo").arg(&path));
    };
    for name in [
        "metrics.csv",
        "summary.json",
        "eval.json",
        "checkpoints/interrupted.safetensors",
    ] {
        fifo(name);
    }
    let out = s.run_within(&["ls", "runs"], 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.csv") && err.contains("FIFO"), "{err}");
    fifo("config.toml");
    let out = s.run_within(&["ls", "runs"], 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("config.toml") && err.contains("FIFO"), "{err}");
}

/// The text of a table's cell by column name, from `gan-run ls` or `compare` text output.
fn text_cell(table: &str, row: usize, column: &str) -> String {
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    let i = header.iter().position(|c| *c == column).expect(column);
    lines[row + 1]
        .split_whitespace()
        .nth(i)
        .unwrap_or("")
        .to_string()
}

/// `compare --csv` and `--json` give numbers as numbers at full precision (the metrics.csv
/// values to the last digit) and missing values empty or null: Python's csv module (and
/// pandas, where installed) reads them back as floats and blanks.
#[test]
fn compare_exports_numbers_that_read_back_as_numbers() {
    let s = Scratch::new();
    train_smoke(&s, "a", &["optimizer.discriminator.beta1=0.1"]);
    train_smoke(&s, "b", &["optimizer.discriminator.beta1=0.9"]);
    let metrics = |run: &str| loss_columns(&s.path().join("runs").join(run).join("metrics.csv"));
    let out = s.ok(&["compare", "runs", "--json"]);
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let columns = json_columns(&table);
    let cell = |row: usize, name: &str| {
        let i = columns.iter().position(|c| *c == name).expect(name);
        table["rows"][row][i].clone()
    };
    assert!(cell(0, "run").is_string());
    assert_eq!(cell(0, "epochs"), serde_json::json!(1), "{table}");
    assert_eq!(cell(1, "optimizer.discriminator.beta1").as_f64(), Some(0.9));
    let d_loss: f64 = metrics("a")[0][1].parse().unwrap();
    assert_eq!(cell(0, "d_loss").as_f64(), Some(d_loss), "full precision");
    for missing in ["fid", "kid", "scored_at"] {
        assert!(cell(0, missing).is_null(), "{missing}: {table}");
    }

    let out = s.ok(&["compare", "runs", "--csv"]);
    let csv_text = String::from_utf8_lossy(&out.stdout).to_string();
    let path = s.write("compare.csv", &csv_text);
    let a = &csv_text.lines().nth(1).unwrap();
    assert!(
        a.contains(&format!(",{},", metrics("a")[0][1])),
        "{csv_text}"
    );
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if !tool_available(
        python.is_ok_and(|o| o.status.success()),
        "python3",
        "LOUDLY: the check of compare --csv with Python's csv module",
    ) {
        return;
    }
    let script = r#"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 2, rows
for r in rows:
    for k in ["epochs", "d_loss", "g_loss", "d_real", "d_fake", "optimizer.discriminator.beta1"]:
        float(r[k])
    for k in ["fid", "score", "kid", "scored_at"]:
        assert r[k] == "", (k, r[k])
    assert float(r["epochs"]) == 1 and r["epochs"] == "1", r["epochs"]
try:
    import pandas
except ImportError:
    print("pandas not installed: its half of the check skipped", file=sys.stderr)
    sys.exit(0)
df = pandas.read_csv(sys.argv[1])
assert df["d_loss"].dtype.kind == "f", df.dtypes
assert df["epochs"].dtype.kind in "iu", df.dtypes
assert df["fid"].isna().all(), df["fid"]
print("pandas read it")
"#;
    let out = run_tool(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&path),
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs with other layer lists differ in one column per network in `compare` (one readable
/// value: kinds, widths and settings) and one row in the report, not one per layer setting;
/// `diff` still names each layer's key.
#[test]
fn architectures_compare_as_one_value_per_network() {
    let s = Scratch::new();
    train_smoke(&s, "narrow", &[]);
    train_smoke(
        &s,
        "wide",
        &[
            "model.generator.layers[0].out=128",
            "model.generator.layers[2].mode=running",
            "model.discriminator.layers[1].slope=0.1",
        ],
    );
    let out = s.ok(&["compare", "runs", "--csv"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "run,model.discriminator.layers,model.generator.layers,state,epochs,d_loss,g_loss,\
         d_real,d_fake,fid,score,modes,parzen,precision,recall,kid,kid_se,scored_at"
    );
    assert!(
        text.contains(
            "\"linear 16>128, leaky_relu 0.2, batch_norm running, dropout 0.5, linear 128>784, \
             sigmoid\""
        ),
        "{text}"
    );
    assert!(
        text.contains("\"linear 784>64, leaky_relu 0.1, linear 64>1\""),
        "{text}"
    );
    s.ok(&["report", "runs", "--out", "r.html"]);
    let page = std::fs::read_to_string(s.path().join("r.html")).unwrap();
    assert!(
        page.contains("<th>model.generator.layers</th>"),
        "{page:.2000}"
    );
    assert!(!page.contains("layers["), "per-layer rows in the report");
    let out = s.ok(&["diff", "runs/narrow", "runs/wide", "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = d["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"model.generator.layers[0].out"), "{keys:?}");
}

/// `ls` takes scores from `eval.json` as `compare` does: a run scored only by `gan-run eval`
/// shows that FID as its best in both.
#[test]
fn ls_reads_eval_json_as_compare_does() {
    let s = Scratch::new();
    train_smoke(&s, "smoke", &[]);
    let data = data_dir();
    s.ok(&["eval", "runs/smoke", "--n", "200", "--data-dir", &data]);
    let ls = String::from_utf8_lossy(&s.ok(&["ls"]).stdout).to_string();
    let compared = String::from_utf8_lossy(&s.ok(&["compare", "runs"]).stdout).to_string();
    let fid = text_cell(&compared, 0, "fid");
    assert!(fid.parse::<f64>().is_ok(), "{compared}");
    assert_eq!(text_cell(&ls, 0, "best_fid"), format!("{fid}@1"), "{ls}");
}

/// `ls` shows a running run's step and time to go, filters by state and sorts; an interrupted
/// run is `interrupted` (and `--state paused` still finds it), one whose process died holding
/// it `failed`.
#[test]
fn ls_shows_progress_filters_by_state_and_sorts() {
    let s = Scratch::new();
    train_smoke(&s, "done", &[]);
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    // Epochs of a few seconds, so that progress.json is often about the epoch in progress.
    let long = [
        "train",
        &smoke,
        "--data-dir",
        &data,
        "--runs-dir",
        "runs",
        "--name",
        "long",
        "--set",
        "training.epochs=500",
        "--set",
        "data.train_size=50000",
        "--set",
        "output.sample_every=0",
    ];
    let child = spawn(&s, &long);
    let ls = |args: &[&str]| {
        let mut full = vec!["ls"];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&s.ok(&full).stdout).to_string()
    };
    let mut table = String::new();
    poll_until("ls to show the run's step and time to go", 120, || {
        table = ls(&["--state", "running"]);
        table.lines().count() == 2
            && text_cell(&table, 0, "step").contains('/')
            && text_cell(&table, 0, "eta") != "-"
    });
    assert_eq!(text_cell(&table, 0, "run"), "long", "{table}");
    assert_eq!(text_cell(&table, 0, "state"), "running", "{table}");
    assert!(text_cell(&table, 0, "step").ends_with("/1000"), "{table}");
    let finished = ls(&["--state", "finished"]);
    assert_eq!(finished.lines().count(), 2, "{finished}");
    assert_eq!(text_cell(&finished, 0, "run"), "done");
    let by_state = ls(&["--sort", "state"]);
    assert_eq!(text_cell(&by_state, 0, "run"), "done", "{by_state}");
    let by_name = ls(&["--sort", "name", "--desc"]);
    assert_eq!(text_cell(&by_name, 0, "run"), "long", "{by_name}");

    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out = finish_within(child, 120, "the interrupted run");
    assert_eq!(out.status.code(), Some(130));
    let interrupted = ls(&["--state", "paused"]);
    assert_eq!(
        text_cell(&interrupted, 0, "state"),
        "interrupted",
        "{interrupted}"
    );
    assert!(!ls(&[]).contains("paused"));

    // Killed outright, the process leaves its lock: `failed`.
    let child = spawn(&s, &long);
    wait_for(&s.path().join("runs/long/.lock"));
    poll_until("the resumed run to train", 120, || {
        ls(&["--state", "running"]).lines().count() == 2
    });
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    finish_within(child, 60, "the killed run");
    let failed = ls(&["--state", "failed"]);
    assert_eq!(text_cell(&failed, 0, "run"), "long", "{failed}");
    let why = s.ok(&["ls", "--state", "failed"]).stderr;
    let why = String::from_utf8_lossy(&why);
    assert!(
        why.contains("runs/long failed: ") && why.contains("killed"),
        "{why}"
    );
    let err = s.fails(&["ls", "--state", "sleeping"]);
    assert!(err.contains("interrupted"), "{err}");
}

/// The read-only commands write nothing into the runs they read: every file of both runs
/// (and its modification time) is the same after diff, report, compare and ls.
#[test]
fn read_only_commands_leave_the_runs_as_they_were() {
    let s = Scratch::new();
    train_smoke(&s, "a", &[]);
    train_smoke(&s, "b", &["seed=3"]);
    let listing = || {
        let mut files = Vec::new();
        let mut dirs = vec![s.path().join("runs")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    dirs.push(entry.path());
                }
                files.push((entry.path(), meta.modified().unwrap(), meta.len()));
            }
        }
        files.sort();
        files
    };
    let before = listing();
    let out = s.ok(&["diff", "runs/a", "runs/b"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--png FILE"),
        "diff says how to get the grids"
    );
    s.ok(&["diff", "runs/a", "runs/b", "--png", "d.png"]);
    s.ok(&["report", "runs/a"]);
    s.ok(&["report", "runs/a", "runs/b", "--charts", "charts"]);
    s.ok(&["compare", "runs"]);
    s.ok(&["ls"]);
    assert_eq!(listing(), before, "a read-only command wrote into a run");
    for made in [
        "d.png",
        "report.html",
        "charts/curves-a.png",
        "charts/d_loss.svg",
    ] {
        assert!(s.path().join(made).is_file(), "{made}");
    }
    // One folder of runs given: the page goes into it, beside the runs.
    s.ok(&["report", "runs"]);
    assert!(s.path().join("runs/report.html").is_file());
}

/// A loss that reached inf or NaN is drawn as a gap, and the report ends (it once looped
/// without end at full CPU).
#[test]
fn report_draws_infinite_and_nan_losses_as_gaps_and_ends() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(
        &[&smoke, "--set", "training.epochs=3"],
        &data_dir(),
    ));
    let metrics = s.path().join("runs/smoke/metrics.csv");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for (row, value) in [(1, "inf"), (2, "NaN")] {
        let mut cells: Vec<&str> = lines[row].split(',').collect();
        cells[1] = value; // d_loss
        cells[2] = value; // g_loss
        lines[row] = cells.join(",");
    }
    std::fs::write(&metrics, lines.join("\n") + "\n").unwrap();
    let child = spawn(
        &s,
        &["report", "runs/smoke", "--out", "r.html", "--charts", "c"],
    );
    let out = finish_within(child, 60, "report of a run with inf and NaN losses");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.path().join("r.html").is_file());
    let d_loss = std::fs::read_to_string(s.path().join("c/d_loss.svg")).unwrap();
    assert!(
        !d_loss.contains("NaN") && !d_loss.contains("inf,"),
        "{d_loss}"
    );
    assert!(
        d_loss.contains("<circle"),
        "the last epoch alone, a dot: {d_loss}"
    );
}

/// Runs `args` and sends `sig` as soon as the command has installed its handler (read from
/// `/proc/PID/status`), before it can have read a run or written anything; checks that it
/// ended with status 130 and printed nothing, and returns the output.
/// (A FIFO held it reading once; reads now refuse FIFOs.)
fn signalled_at_start(
    s: &Scratch,
    args: &[&str],
    sig: nix::sys::signal::Signal,
) -> std::process::Output {
    use nix::sys::signal::Signal::{SIGCONT, SIGSTOP};
    let child = spawn(s, args);
    let bit = 1u64 << (sig as i32 - 1);
    let catches = || {
        std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .ok()
            .and_then(|t| {
                let line = t.lines().find(|l| l.starts_with("SigCgt:"))?.to_string();
                u64::from_str_radix(line.trim_start_matches("SigCgt:").trim(), 16).ok()
            })
            .is_some_and(|caught| caught & bit != 0)
    };
    let started = std::time::Instant::now();
    while !catches() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the command never caught signals"
        );
        std::thread::yield_now();
    }
    // Stopped at once, the signal waits for it; continued, it meets the signal first.
    signal(&child, SIGSTOP);
    signal(&child, sig);
    signal(&child, SIGCONT);
    let out = finish_within(child, 60, "the signalled command");
    // Stopped by the signal, having printed nothing.
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// `report` and `compare` stop on SIGTERM or SIGINT with status 130 and print or write
/// nothing (each signalled as soon as it catches signals).
#[test]
fn report_and_compare_stop_on_a_signal_leaving_no_output() {
    use nix::sys::signal::Signal;
    let s = Scratch::new();
    train_smoke(&s, "a", &[]);
    // Long inputs (millions of rows, well under the size limits) keep each command reading
    // for a good while after it catches signals, so that the signal meets it at work.
    let rows: String = (0..2_000_000).map(|i| format!("{i},1.0,0.7\n")).collect();
    s.write("log.csv", &format!("epoch,d_loss,g_loss\n{rows}"));
    signalled_at_start(
        &s,
        &["report", "runs/a", "--out", "r.html", "--log", "t=log.csv"],
        Signal::SIGTERM,
    );
    let left: Vec<_> = std::fs::read_dir(s.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("r.html"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let metrics = s.path().join("runs/a/metrics.csv");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let (header, last) = (text.lines().next().unwrap(), text.lines().last().unwrap());
    let long: String = std::iter::repeat_n(format!("{last}\n"), 500_000).collect();
    std::fs::write(&metrics, format!("{header}\n{long}")).unwrap();
    signalled_at_start(&s, &["compare", "runs/a"], Signal::SIGINT);
}
