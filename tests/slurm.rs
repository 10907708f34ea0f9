//! Sweeps on a cluster: the emitted Slurm script survives paths and values a shell would
//! mangle, and the run-directory lock holds across hosts sharing a filesystem.

use std::path::Path;

use crate::util::*;

/// A smoke sweep of two points in `dir` (a folder whose name needs quoting).
fn quoted_sweep(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "name = \"sw\"\nbase = \"{}\"\n[set]\n\"training.epochs\" = 1\n\"data.train_size\" = 500\n\
         [grid]\nseed = [1, 2]\n",
        config("smoke.toml").display()
    );
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The script quotes the executable, the sweep file, the runs folder and every `--set`, all
/// made absolute; run as Slurm would run one array task, from another folder, it trains that
/// point where it belongs. Resources come from the flags, the logs folder exists beforehand.
#[test]
fn the_slurm_script_survives_quotes_and_spaces_and_runs_from_any_folder() {
    let s = Scratch::new();
    let odd = s.path().join("it's a dir");
    let sweep = quoted_sweep(&odd);
    // The binary itself in a folder with a space and a quote.
    let bin_dir = s.path().join("the bin's place");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("gan-run");
    std::fs::copy(env!("CARGO_BIN_EXE_gan-run"), &exe).unwrap();
    let data = format!("data.dir={}", data_dir());
    let out = run_tool(
        std::process::Command::new(&exe)
            .current_dir(s.path())
            .env("RUST_LOG", "warn")
            .args(["sweep"])
            .arg(&sweep)
            .args(["--emit", "slurm", "--runs-dir", "my runs", "--set", &data])
            .args([
                "--set",
                r#"model.generator.layers[0]={type = "linear", out = 48}"#,
            ])
            .args(["--time", "00:10:00", "--mem", "2G"]),
    );
    let script = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(script.contains("#SBATCH --time=00:10:00"), "{script}");
    assert!(script.contains("#SBATCH --mem=2G"), "{script}");
    assert!(script.contains("%A_%a.log"), "per-attempt logs: {script}");
    assert!(
        s.path().join("my runs/sw/logs").is_dir(),
        "the logs folder is made before submission"
    );
    assert!(!script.contains("\x1b["), "no colour codes");
    // A binary built for this machine's wider instruction sets is said to be one.
    let warned = String::from_utf8_lossy(&out.stderr).contains("built for this machine's CPU");
    assert_eq!(
        warned,
        cfg!(target_feature = "avx2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Run it as one array task, from elsewhere, with a shell.
    let elsewhere = s.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let script_path = s.path().join("job.sh");
    std::fs::write(&script_path, &script).unwrap();
    run_tool(
        std::process::Command::new("bash")
            .arg(&script_path)
            .current_dir(&elsewhere)
            .env("SLURM_ARRAY_TASK_ID", "1")
            .env("SLURM_CPUS_PER_TASK", "1"),
    );
    let point = s.path().join("my runs/sw/seed=2");
    assert!(
        point.join("checkpoints/epoch-0001.safetensors").exists(),
        "the point trained where the sweep keeps it"
    );
    let saved = std::fs::read_to_string(point.join("config.toml")).unwrap();
    assert!(
        saved.contains("out = 48"),
        "the quoted --set arrived whole: {saved}"
    );
    // The point brought the sweep's index up to date itself.
    assert_eq!(
        sweep_states(&s.path().join("my runs/sw")),
        ["pending", "finished"]
    );
}

fn spawn_train(s: &Scratch, host: &str, epochs: &str) -> std::process::Child {
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let mut args = smoke_args(&[&smoke], &data);
    args.extend(["--set", epochs, "--set", "data.train_size=20000"]);
    std::process::Command::new(env!("CARGO_BIN_EXE_gan-run"))
        .args(&args)
        .current_dir(s.path())
        .env("RUST_LOG", "warn")
        .env("GAN_RUN_HOST", host)
        .env("GAN_RUN_LOCK_LEASE_SECS", "2")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Two hosts on one shared run directory: the second is refused while the first holds it (and
/// renews its lease), even after the first dies, until the lease runs out; then it takes over.
/// On one host, a killed run's zombie does not hold the directory.
#[test]
fn the_lock_holds_across_hosts_by_lease_and_a_zombie_does_not_hold_it() {
    let s = Scratch::new();
    let lock = s.path().join("runs/smoke/.lock");
    let mut first = spawn_train(&s, "node1", "training.epochs=200");
    wait_for(
        &s.path()
            .join("runs/smoke/checkpoints/epoch-0001.safetensors"),
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        text.contains("host=node1") && text.contains("pid="),
        "{text}"
    );
    // Longer than the lease: the holder's renewals keep it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let second = spawn_train(&s, "node2", "training.epochs=200")
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(
        err.contains("in use by process") && err.contains("node1"),
        "{err}"
    );
    // Killed without a word: from node2 it counts as held until the lease runs out.
    first.kill().unwrap();
    let _ = first.wait();
    assert!(lock.exists(), "a killed run leaves its lock");
    std::thread::sleep(std::time::Duration::from_secs(3));
    finished_ok(spawn_train(&s, "node2", "training.epochs=2"));

    // Same host: a killed run not yet reaped by its parent (a zombie) does not hold the lock.
    let mut zombie = spawn_train(&s, "node1", "training.epochs=200");
    let pid_line = format!("pid={}\n", zombie.id());
    poll_until("the second run to take the lock", 120, || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&pid_line))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(zombie.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    finished_ok(spawn_train(&s, "node1", "training.epochs=3"));
    let _ = zombie.wait();
}

/// A process stopped past its lease loses the run to another host. Continued, it notices
/// before its next write and stops without writing (both once wrote, and `train.log` showed
/// epochs done twice); the run goes on in the new holder, each epoch's row once.
#[test]
fn a_process_stopped_past_its_lease_stops_without_writing_when_continued() {
    let s = Scratch::new();
    let run = s.path().join("runs/smoke");
    let signal = |child: &std::process::Child, sig| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap()
    };
    use nix::sys::signal::Signal;
    let first = spawn_train(&s, "node1", "training.epochs=200");
    wait_for(&run.join("checkpoints/epoch-0001.safetensors"));
    signal(&first, Signal::SIGSTOP);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let second = spawn_train(&s, "node2", "training.epochs=200");
    poll_until("node2 to take the lock over", 60, || {
        std::fs::read_to_string(run.join(".lock")).is_ok_and(|t| t.contains("host=node2"))
    });
    let rows_before = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    signal(&first, Signal::SIGCONT);
    let out = first.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("lost its lock") && err.contains("node2"),
        "{err}"
    );
    // The new holder's lock is still there, and it trains on.
    let lock = std::fs::read_to_string(run.join(".lock")).unwrap();
    assert!(lock.contains("host=node2"), "{lock}");
    let grown = run.join("metrics.csv");
    poll_until("the new holder to write an epoch", 120, || {
        std::fs::read_to_string(&grown)
            .is_ok_and(|t| t.lines().count() > rows_before.lines().count())
    });
    signal(&second, Signal::SIGINT);
    let _ = second.wait_with_output();
    let epochs: Vec<String> = std::fs::read_to_string(&grown)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=epochs.len()).map(|e| e.to_string()).collect();
    assert_eq!(epochs, expected, "each epoch's row once, in order");
}

/// A one-node Slurm of the test's own (`.ci/slurm-up`): its configuration, munge key, state
/// and logs live in a temporary folder that clients find through `SLURM_CONF`, and dropping
/// it stops every daemon it started (`.ci/slurm-down`). System configuration is never read or
/// written, so a cluster's login node keeps its own.
struct PrivateSlurm {
    dir: tempfile::TempDir,
}

impl PrivateSlurm {
    /// Starts one where asked (`GAN_RUN_SLURM_TEST=1`, which CI sets; it needs root and the
    /// Slurm and munge packages, which `.ci/run` installs); elsewhere says loudly that the test
    /// is skipped. In CI, a Slurm that does not come up fails the test.
    fn start() -> Option<PrivateSlurm> {
        if std::env::var_os("GAN_RUN_SLURM_TEST").is_none_or(|v| v != "1") {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set GAN_RUN_SLURM_TEST=1 for the Slurm test"
            );
            eprintln!(
                "SKIPPED the Slurm test: set GAN_RUN_SLURM_TEST=1 to run it (as root, with \
                 Debian's slurmctld, slurmd, slurm-client and munge installed); it starts a \
                 private one-node Slurm and stops it after"
            );
            return None;
        }
        // Under /tmp: the munge user must reach the folder, which a scratch folder under the
        // build tree may not allow.
        let dir = tempfile::Builder::new()
            .prefix("gan-run-slurm.")
            .tempdir_in("/tmp")
            .unwrap();
        let slurm = PrivateSlurm { dir };
        let up = std::process::Command::new(repo().join(".ci/slurm-up"))
            .arg(slurm.dir.path())
            .output();
        let ok = up.as_ref().is_ok_and(|o| o.status.success());
        if let Ok(o) = &up {
            if !ok {
                eprintln!("{}", String::from_utf8_lossy(&o.stdout));
            }
        }
        if !tool_available(ok, "a local Slurm (.ci/slurm-up)", "the Slurm test") {
            return None;
        }
        // Every Slurm client this test runs, gan-run's `--submit` included, inherits it.
        std::env::set_var("SLURM_CONF", slurm.dir.path().join("slurm.conf"));
        Some(slurm)
    }

    /// The pids of the daemons it started, from their pid files.
    fn daemons(&self) -> Vec<String> {
        ["slurmd.pid", "slurmctld.pid", "munge-socket/munged.pid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
            .map(|pid| pid.trim().to_string())
            .collect()
    }
}

impl Drop for PrivateSlurm {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join(".ci/slurm-down"))
            .arg(self.dir.path())
            .status();
    }
}

/// Waits until Slurm has no task of `job` left.
fn wait_for_job(job: &str) {
    poll_until(&format!("job {job} to leave the queue"), 300, || {
        let out = run_tool(std::process::Command::new("squeue").args(["-h", "-j", job]));
        out.stdout.iter().all(|b| b.is_ascii_whitespace())
    });
}

/// A sweep submitted to a real Slurm (slurmctld and slurmd on localhost): every point trains
/// into its run directory; a task cancelled mid-run resumes from its checkpoint when the same
/// script is submitted again, and the finished point is not retrained.
#[test]
fn a_sweep_runs_on_a_real_slurm_and_a_cancelled_task_resumes() {
    let system_conf = std::fs::metadata("/etc/slurm/slurm.conf").and_then(|m| m.modified());
    let Some(slurm) = PrivateSlurm::start() else {
        return;
    };
    let s = Scratch::new();
    let text = format!(
        "name = \"sl\"\nbase = \"{}\"\n[set]\n\"data.train_size\" = 20000\n\"data.dir\" = \"{}\"\n\
         [grid]\n\"training.epochs\" = [2, 40]\n[slurm]\ncpus_per_task = 1\n",
        config("smoke.toml").display(),
        data_dir()
    );
    let sweep = s.write("sweep.toml", &text).display().to_string();
    let script = s.ok(&["sweep", &sweep, "--emit", "slurm", "--runs-dir", "runs"]);
    let script_path = s.write("sl.sh", &String::from_utf8_lossy(&script.stdout));
    let submit = || {
        let out = run_tool(
            std::process::Command::new("sbatch")
                .arg("--parsable")
                .arg(&script_path)
                .current_dir("/"),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let short = s.path().join("runs/sl/epochs=2");
    let long = s.path().join("runs/sl/epochs=40");
    // The first time through `--submit`, which prints the job id.
    let submitted = s.ok(&[
        "sweep",
        &sweep,
        "--emit",
        "slurm",
        "--runs-dir",
        "runs",
        "--submit",
    ]);
    let job = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .to_string();
    assert!(job.parse::<u64>().is_ok(), "job id {job:?}");
    wait_for(&long.join("checkpoints/epoch-0002.safetensors"));
    run_tool(std::process::Command::new("scancel").arg(format!("{job}_1")));
    wait_for_job(&job);
    assert!(
        short.join("summary.json").exists(),
        "the short point finished"
    );
    let done = std::fs::read_to_string(long.join("metrics.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert!(
        (2..40).contains(&done),
        "the long point stopped at epoch {done}"
    );
    // Slurm's own record of the tasks of this test (its working folder is the scratch one).
    let jobcomp =
        std::fs::read_to_string(slurm.dir.path().join("log/jobcomp.log")).unwrap_or_default();
    let ours: Vec<&str> = jobcomp
        .lines()
        .filter(|l| l.contains(&format!("WorkDir={} ", s.path().display())))
        .collect();
    assert_eq!(
        ours.iter()
            .filter(|l| l.contains("JobState=CANCELLED"))
            .count(),
        1,
        "{ours:?}"
    );
    assert_eq!(
        ours.iter()
            .filter(|l| l.contains("JobState=COMPLETED"))
            .count(),
        1,
        "{ours:?}"
    );
    let short_ckpt = short.join("checkpoints/epoch-0002.safetensors");
    let finished_at = std::fs::metadata(&short_ckpt).unwrap().modified().unwrap();

    let again = submit();
    wait_for_job(&again);
    let epochs = std::fs::read_to_string(long.join("metrics.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(epochs, 40, "the cancelled point resumed and finished");
    let log = std::fs::read_to_string(long.join("train.log")).unwrap();
    assert!(log.contains("resuming"), "{log}");
    assert_eq!(
        std::fs::metadata(&short_ckpt).unwrap().modified().unwrap(),
        finished_at,
        "the finished point was not retrained"
    );
    // One log per attempt, none overwritten: two jobs' logs for each task.
    let logs = std::fs::read_dir(s.path().join("runs/sl/logs"))
        .unwrap()
        .count();
    assert_eq!(logs, 4, "logs of both submissions");
    let table = s.ok(&["compare", "runs/sl"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("epochs=2") && table.contains("epochs=40"),
        "{table}"
    );
    let index = std::fs::read_to_string(s.path().join("runs/sl/index.json")).unwrap();
    assert_eq!(index.matches("\"finished\"").count(), 2, "{index}");

    // The machine is left as it was found: no daemon of the test's still runs, and the
    // system's Slurm configuration (if any) was not touched.
    let daemons = slurm.daemons();
    assert_eq!(daemons.len(), 3, "every daemon wrote its pid file");
    drop(slurm);
    for pid in daemons {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} still runs after the test"
        );
    }
    assert_eq!(
        std::fs::metadata("/etc/slurm/slurm.conf")
            .and_then(|m| m.modified())
            .ok(),
        system_conf.ok(),
        "/etc/slurm/slurm.conf was changed"
    );
}
