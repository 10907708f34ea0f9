//! What training refuses, losing nothing: damaged checkpoints and data files, a diverging
//! run, directories that are not a run's own or are in use, a log planted as a link.

use crate::util::*;

#[test]
fn a_damaged_checkpoint_is_refused_not_replaced() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    let ckpt = s
        .path()
        .join("runs/smoke/checkpoints/epoch-0001.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();

    // Truncated.
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &data));
    assert!(
        err.contains("epoch-0001.safetensors") && err.contains("truncated"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&ckpt).unwrap().len(),
        bytes.len() / 2,
        "the file was touched"
    );

    // One flipped bit in the tensor data.
    let mut flipped = bytes.clone();
    let at = bytes.len() - 10;
    flipped[at] ^= 1;
    std::fs::write(&ckpt, &flipped).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &data));
    assert!(err.contains("checksum"), "{err}");

    // A changed digit in the header's metadata (the epoch count) is caught too.
    // Searched in the bytes: a lossy text conversion would shift offsets at invalid UTF-8.
    let key = b"\"epoch\":\"1\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("epoch in header")
        + key.len()
        - 2;
    let mut edited = bytes.clone();
    edited[at] = b'2';
    std::fs::write(&ckpt, &edited).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &data));
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn damaged_data_files_are_refused_clearly() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let copy = s.path().join("mnist");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(repo().join("data/mnist")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
    }
    let copy_s = copy.display().to_string();
    let labels = copy.join("train-labels-idx1-ubyte.gz");

    // A truncated gzip.
    let bytes = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &bytes[..bytes.len() - 100]).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &copy_s));
    assert!(
        err.contains("train-labels-idx1-ubyte.gz") && err.contains("truncated"),
        "{err}"
    );

    // A raw file that decompresses fine but has other content than SHA256SUMS says.
    std::fs::remove_file(&labels).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut raw).unwrap();
    raw[100] ^= 1;
    std::fs::write(copy.join("train-labels-idx1-ubyte"), &raw).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &copy_s));
    assert!(err.contains("checksum mismatch"), "{err}");

    // A missing file.
    std::fs::remove_file(copy.join("train-labels-idx1-ubyte")).unwrap();
    let err = s.fails(&smoke_args(&[&smoke], &copy_s));
    assert!(
        err.contains("train-labels-idx1-ubyte") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_naming_epoch_and_step_and_keeps_its_last_checkpoint() {
    let s = Scratch::new();
    let data = data_dir();
    let smoke = config("smoke.toml").display().to_string();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    let run = s.path().join("runs/smoke");
    let good = std::fs::read(run.join("checkpoints/epoch-0001.safetensors")).unwrap();
    // A learning rate of 1e30 sends the weights to infinity within a step or two. It changes
    // the config, so it runs under another name from the same start.
    let err = s.fails(&smoke_args(
        &[
            &smoke,
            "--set",
            "optimizer.discriminator.lr=1e30",
            "--set",
            "optimizer.generator.lr=1e30",
        ],
        &data,
    ));
    assert!(err.contains("different config"), "{err}");
    let err = s.fails(&smoke_args(
        &[
            &smoke,
            "--name",
            "boom",
            "--set",
            "optimizer.discriminator.lr=1e30",
            "--set",
            "optimizer.generator.lr=1e30",
        ],
        &data,
    ));
    assert!(err.contains("diverged at epoch 1, step"), "{err}");
    // The hint tells the truth: no checkpoint exists yet, and a lower rate is a new run.
    assert!(
        err.contains("no checkpoint was written") && err.contains("--force"),
        "{err}"
    );
    assert!(!err.contains("resume"), "{err}");
    assert!(!s
        .path()
        .join("runs/boom/checkpoints/epoch-0001.safetensors")
        .exists());
    assert_eq!(
        good,
        std::fs::read(run.join("checkpoints/epoch-0001.safetensors")).unwrap()
    );
}

#[test]
fn a_foreign_directory_is_not_overwritten() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("runs/smoke")).unwrap();
    s.write("runs/smoke/notes.txt", "mine");
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    for extra in [&[][..], &["--force"][..]] {
        let err = s.fails(&smoke_args(&[&[smoke.as_str()], extra].concat(), &data));
        assert!(err.contains("not a gan-run run"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(s.path().join("runs/smoke/notes.txt")).unwrap(),
        "mine"
    );
    // --name is a directory name, never a path.
    for bad in ["..", ".", "", "a/b", "/tmp"] {
        let err = s.fails(&smoke_args(&[&smoke, "--name", bad, "--force"], &data));
        assert!(err.contains("cannot name a run directory"), "{bad}: {err}");
    }
    assert!(s.path().join("runs/smoke/notes.txt").exists());
}

#[test]
fn a_run_directory_in_use_is_refused_and_a_stale_lock_taken_over() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    std::fs::create_dir_all(s.path().join("runs/smoke")).unwrap();
    // This test process is alive: its pid in the lock means "in use".
    s.write("runs/smoke/.lock", &std::process::id().to_string());
    let err = s.fails(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    assert!(err.contains("in use by process"), "{err}");
    // A pid that cannot exist is a stale lock.
    s.write("runs/smoke/.lock", "4294967295");
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    assert!(
        !s.path().join("runs/smoke/.lock").exists(),
        "lock left behind"
    );
}

#[test]
fn temporaries_of_a_dead_writer_are_cleared_and_a_half_made_directory_starts() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    // A start killed while writing its first file (pid 4194304 is above Linux's maximum).
    let dir = s.path().join("runs/smoke");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml.tmp-4194304"), "half").unwrap();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    assert!(!dir.join("config.toml.tmp-4194304").exists());
    // A run killed while rewriting its metrics: the leftover goes at the next start.
    std::fs::write(dir.join("metrics.csv.tmp-4194304"), "partial").unwrap();
    s.ok(&smoke_args(&[&smoke, "--max-epochs", "1"], &data));
    assert!(!dir.join("metrics.csv.tmp-4194304").exists());
    // A folder that is not a run is not touched, temporaries or not.
    let foreign = s.path().join("runs/mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt.tmp-4194304"), "mine").unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    s.fails(&smoke_args(&[&smoke, "--name", "mine"], &data));
    assert!(foreign.join("notes.txt.tmp-4194304").exists());
}

/// A run whose log is a symbolic link is not resumed: the log is appended to only as a file of
/// its own (it once appended to whatever the link pointed to).
#[test]
fn a_log_planted_as_a_link_is_never_appended_through() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    s.ok(&smoke_args(&[&smoke, "--set", "training.epochs=1"], &data));
    let victim = s.write("victim.txt", "precious");
    let log = s.path().join("runs/smoke/train.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let err = s.fails(&smoke_args(&[&smoke, "--set", "training.epochs=2"], &data));
    assert!(
        err.contains("train.log") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!s
        .path()
        .join("runs/smoke/checkpoints/epoch-0002.safetensors")
        .exists());
}
