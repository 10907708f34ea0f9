//! Test helpers: a scratch directory per test and a runner for the built `gan-run` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's MNIST folder.
pub fn data_dir() -> String {
    repo().join("data/mnist").display().to_string()
}

/// The paper config with one line replaced, written into the scratch dir as `exp.toml` (its
/// data folder, relative to `configs/`, made absolute).
pub fn paper_with(s: &Scratch, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(config("paper.toml")).unwrap();
    assert!(text.contains(from), "paper.toml has no `{from}`");
    let text =
        text.replacen(from, to, 1)
            .replacen("\"../data/mnist\"", &format!("{:?}", data_dir()), 1);
    s.write("exp.toml", &text).display().to_string()
}

/// `exp.toml:LINE:` for the line of the file written by [`paper_with`] that holds `needle`, so
/// that position tests do not depend on the shipped config's layout.
pub fn position_of(path: &str, needle: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    format!("exp.toml:{line}:")
}

/// A checked-in config.
pub fn config(name: &str) -> PathBuf {
    repo().join("configs").join(name)
}

/// A scratch directory that is the working directory of the commands run in it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the scratch directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `gan-run ARGS` here, with the repository's MNIST.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gan-run"))
            .args(args)
            .current_dir(self.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Like [`run`](Self::run), but fails the test if the command has not ended within `secs`
    /// seconds (it is killed then): for inputs that once made gan-run wait forever.
    pub fn run_within(&self, args: &[&str], secs: u64) -> Output {
        use std::io::Read;
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_gan-run"))
            .args(args)
            .current_dir(self.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Drained while it runs, so that a full pipe cannot stall it.
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed().as_secs() >= secs {
                let _ = child.kill();
                let _ = child.wait();
                panic!("gan-run {args:?} had not ended after {secs} s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    /// Like [`run`](Self::run) but expects success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gan-run {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Like [`run`](Self::run) but expects failure, and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "gan-run {args:?} succeeded:\n{stderr}"
        );
        stderr
    }
}

/// Training arguments for the smoke config, with the repository's data.
pub fn smoke_args<'a>(extra: &[&'a str], data: &'a str) -> Vec<&'a str> {
    let mut args = vec!["train", "--data-dir", data, "--runs-dir", "runs"];
    args.extend_from_slice(extra);
    args
}

/// The loss columns of a metrics.csv (timings dropped).
pub fn loss_columns(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (0..5).map(|i| rec[i].to_string()).collect()
        })
        .collect()
}

/// All tensors of a safetensors checkpoint, by name.
pub fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    out.sort();
    out
}

/// Runs an external program, expecting success (its stderr in the failure message).
///
/// A program this test process has just written (a copied binary, a script) can be refused
/// with "Text file busy" for a moment: a child that another test thread forks meanwhile holds
/// the still-open file until it execs. That is retried for up to two seconds.
pub fn run_tool(cmd: &mut Command) -> Output {
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    succeeded(out, &format!("{cmd:?}"))
}

/// Waits for a child process, expecting success (its stderr in the failure message).
pub fn finished_ok(child: std::process::Child) -> Output {
    succeeded(child.wait_with_output().unwrap(), "the child")
}

fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether an optional tool a test needs is here: where it is not, the test skips that part
/// with a message, except in CI, which must install it (`.ci/run`).
pub fn tool_available(available: bool, what: &str, skipped: &str) -> bool {
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {what} for this test"
        );
        eprintln!("{what} not found: {skipped} skipped");
    }
    available
}

/// Polls `done` every 50 ms until it holds, failing after `secs` seconds with `what`.
pub fn poll_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed().as_secs() < secs,
            "waited {secs} s for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits until `path` exists (a run has got that far).
pub fn wait_for(path: &Path) {
    poll_until(&format!("{} to appear", path.display()), 120, || {
        path.exists()
    });
}

/// Trains the smoke config into `runs/<name>` with `sets` (`KEY=VALUE`) for one epoch.
pub fn train_smoke(s: &Scratch, name: &str, sets: &[&str]) {
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let mut args = smoke_args(
        &[&smoke, "--name", name, "--set", "training.epochs=1"],
        &data,
    );
    for set in sets {
        args.extend(["--set", set]);
    }
    s.ok(&args);
}

/// `gan-run ARGS` as a child process, its output piped.
pub fn spawn(s: &Scratch, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_gan-run"))
        .args(args)
        .current_dir(s.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `signal` to a child process.
pub fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Waits for a child at most `secs` seconds (killing it and failing after), and returns its
/// output.
pub fn finish_within(
    mut child: std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= secs {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} still ran after {secs} s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The column names of a `compare --json` table.
pub fn json_columns(table: &serde_json::Value) -> Vec<&str> {
    table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect()
}

/// Each point's state in the sweep directory `dir`'s `index.json`, in point order.
pub fn sweep_states(dir: &Path) -> Vec<String> {
    let index = std::fs::read_to_string(dir.join("index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    index["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap().to_string())
        .collect()
}
