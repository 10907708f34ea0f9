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
    // The four step metrics and the two end-of-epoch losses.
    assert_eq!(page.matches("<svg").count(), 6, "one chart per metric");
    assert_eq!(
        page.matches("<polyline").count(),
        12,
        "one line per run and metric"
    );
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
    assert!(s.path().join("runs/a/curves.png").exists());

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
    assert_eq!(dom.matches("<polyline").count(), 12, "{dom:.300}");
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
