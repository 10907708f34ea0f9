//! Convolutional networks end to end: a small DCGAN-shaped run trains, resumes bit for bit
//! after `kill -9` in the middle of an epoch, and its generator samples.

use std::time::{Duration, Instant};

use crate::util::*;

/// The smoke config with a convolutional G (projection, reshape, two transposed convolutions
/// with batch-norm between) and D (two strided convolutions, batch-norm, a linear head), a
/// moving average of G, 3 epochs.
fn conv_args<'a>(name: &'a str, data: &'a str, smoke: &'a str) -> Vec<&'a str> {
    smoke_args(
        &[
            smoke,
            "--name",
            name,
            "--set",
            "training.epochs=3",
            "--set",
            r#"model.generator.layers=[{type = "linear", out = 392},
              {type = "reshape", shape = [8, 7, 7]}, {type = "batch_norm", mode = "batch"},
              {type = "relu"},
              {type = "conv_transpose2d", out = 4, kernel = 4, stride = 2, padding = 1, bias = false},
              {type = "batch_norm", mode = "batch"}, {type = "relu"},
              {type = "conv_transpose2d", out = 1, kernel = 4, stride = 2, padding = 1},
              {type = "sigmoid"}]"#,
            "--set",
            r#"model.discriminator.layers=[{type = "reshape", shape = [1, 28, 28]},
              {type = "conv2d", out = 4, kernel = 4, stride = 2, padding = 1},
              {type = "leaky_relu", slope = 0.2},
              {type = "conv2d", out = 8, kernel = 4, stride = 2, padding = 1, bias = false},
              {type = "batch_norm", mode = "batch"}, {type = "leaky_relu", slope = 0.2},
              {type = "flatten"}, {type = "linear", out = 1}]"#,
            "--set",
            "model.generator.ema={decay = 0.9}",
        ],
        data,
    )
}

#[test]
fn a_conv_run_killed_mid_epoch_resumes_bit_for_bit() {
    let s = Scratch::new();
    let (data, smoke) = (data_dir(), config("smoke.toml").display().to_string());
    s.ok(&conv_args("whole", &data, &smoke));

    // The same run, killed with SIGKILL once its first epoch is committed and its second is
    // under way, then started again: it resumes from the first epoch's checkpoint.
    let child = spawn(&s, &conv_args("parts", &data, &smoke));
    let parts = s.path().join("runs/parts");
    let first = parts.join("checkpoints/epoch-0001.safetensors");
    let start = Instant::now();
    while !first.exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no first epoch");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "killed");
    assert!(
        !parts.join("checkpoints/epoch-0003.safetensors").exists(),
        "killed before its end"
    );
    s.ok(&conv_args("parts", &data, &smoke));

    let whole = s.path().join("runs/whole");
    assert_eq!(
        loss_columns(&whole.join("metrics.csv")),
        loss_columns(&parts.join("metrics.csv"))
    );
    let last = "checkpoints/epoch-0003.safetensors";
    let tensors_whole = tensors(&whole.join(last));
    assert!(
        tensors_whole.iter().any(|(name, _)| name.contains("ema")),
        "the average is checkpointed"
    );
    assert!(tensors_whole == tensors(&parts.join(last)), "final tensors");
    assert_eq!(
        std::fs::read(whole.join("samples/epoch-0003.png")).unwrap(),
        std::fs::read(parts.join("samples/epoch-0003.png")).unwrap()
    );

    // The trained convolutional G samples (off the tape: the fast convolution).
    s.ok(&["sample", "runs/whole", "--n", "16", "--out", "grid.png"]);
    assert!(s.path().join("grid.png").exists());
}
