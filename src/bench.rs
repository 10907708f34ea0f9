//! `gan-run bench`: times a config's training steps (warm-up excluded) and puts them beside
//! this machine's own matrix-product peak, measured in the same run, with a per-phase
//! breakdown so that the next bottleneck is visible.

use std::time::Instant;

use dfdx::prelude::*;
use serde::Serialize;

use crate::config::{Experiment, IMAGE_PIXELS};
use crate::error::Result;
use crate::model::kernels::{matmul, on_worker, Mat};
use crate::model::{Matrix, Network, TensorVisitor};
use crate::train::step::PlainGan;
use crate::train::{d_step, g_step, GanState, PhaseTimes};

/// What a benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Timed steps (one D step and, per `d_steps_per_g_step`, G steps).
    pub steps: usize,
    /// Steps per second of the training step gan-run runs ([`crate::train::step`]).
    pub steps_per_sec: f64,
    /// Steps per second of the plain dfdx tape path ([`crate::train::d_step`] and
    /// [`crate::train::g_step`]), measured in the same run: the baseline (unless skipped).
    pub tape_steps_per_sec: Option<f64>,
    /// Seconds per epoch of the config's training set at `steps_per_sec`.
    pub seconds_per_epoch: f64,
    /// Matrix-product arithmetic the step executes (forward and backward), in GFLOP.
    pub gflop_per_step: f64,
    /// The same for the tape path, which also computes gradients nobody uses.
    pub tape_gflop_per_step: f64,
    /// Achieved matrix-product GFLOP/s.
    pub gflops: f64,
    /// A large f32 matrix product's GFLOP/s on this machine, measured in the same run
    /// (gan-run's own product kernel, 1024 x 1024 x 1024).
    pub peak_gflops: f64,
    /// Share of the seconds in each phase.
    pub phases: Vec<(String, f64)>,
    /// Peak resident memory of the process up to the end of gan-run's timed steps (before the
    /// baseline runs), in MB (Linux only).
    pub peak_rss_mb: Option<f64>,
    /// Threads the products and element-wise work run on.
    pub threads: usize,
}

/// Times `steps` training steps of `config` after `warmup` untimed ones, on random images (the
/// arithmetic does not depend on the pixel values): first gan-run's step, then the plain dfdx
/// tape path as the baseline.
pub fn run(
    config: &Experiment,
    steps: usize,
    warmup: usize,
    baseline: bool,
) -> Result<BenchReport> {
    // All of it on a rayon worker, as training runs its steps (see `on_worker`): the dfdx
    // baseline too (its products use rayon), so that the ratio compares the steps only.
    on_worker(|| measure(config, steps, warmup, baseline))
}

fn measure(
    config: &Experiment,
    steps: usize,
    warmup: usize,
    baseline: bool,
) -> Result<BenchReport> {
    let dev = Cpu::seed_from_u64(config.seed);
    let peak_gflops = peak_matmul_gflops();
    let batch = config.training.batch_size;
    let real: Matrix = dev.sample_uniform_like(&(batch, IMAGE_PIXELS));
    let real_pixels = real.as_vec();
    // Labels for a class-conditional config (ignored otherwise): every digit in turn.
    let labels: Vec<u8> = (0..batch).map(|i| (i % 10) as u8).collect();
    let every = config.training.d_steps_per_g_step;

    let mut state = GanState::new(config, &dev);
    let mut plain = PlainGan::check_out(&mut state);
    // As training's first epoch sets them: a moving average of G updates at its decay (before
    // `begin_epoch` the decay is 0, a plain copy, which would time less than training runs).
    plain.begin_epoch(config, 1);
    let mut rng = state.rng.clone();
    let mut times = PhaseTimes::default();
    let mut plain_step = |i: usize, times: &mut PhaseTimes| {
        plain.d_step(&mut rng, config, real_pixels.clone(), &labels, times);
        if (i + 1).is_multiple_of(every) {
            plain.g_step(&mut rng, config, batch, times);
        }
    };
    for i in 0..warmup {
        plain_step(i, &mut PhaseTimes::default());
    }
    let start = Instant::now();
    for i in 0..steps {
        plain_step(i, &mut times);
    }
    let seconds = start.elapsed().as_secs_f64();
    // Read before the baseline runs, so that it is gan-run's step's own peak.
    let peak_rss_mb = peak_rss_mb();
    // Measured again after the steps and the best kept: on a shared VM one measurement can
    // land in a slow moment (one gave half the usual figure, and a share above 100%).
    let peak_gflops = peak_gflops.max(peak_matmul_gflops());

    let tape_steps_per_sec = baseline.then(|| {
        let mut tape_state = GanState::new(config, &dev);
        let tape_step = |state: &mut GanState, i: usize| {
            let mut t = PhaseTimes::default();
            d_step(state, config, real.clone(), &labels, &dev, &mut t);
            if (i + 1).is_multiple_of(every) {
                g_step(state, config, batch, &dev, &mut t);
            }
        };
        for i in 0..warmup {
            tape_step(&mut tape_state, i);
        }
        let tape_start = Instant::now();
        for i in 0..steps {
            tape_step(&mut tape_state, i);
        }
        steps as f64 / tape_start.elapsed().as_secs_f64()
    });

    let steps_per_sec = steps as f64 / seconds;
    let (gflop, tape_gflop) = flop_per_step(&mut state, batch, every);
    let train_size = config.data.train_size.unwrap_or(0);
    // Adam runs inside the backward passes (its time counts with them), except where D's
    // batch-norm makes the D step add up two passes' gradients first.
    let phases = [
        ("data", times.data),
        ("G forward (in D steps)", times.g_forward),
        ("D step: forward, backward, Adam", times.d_step),
        ("G step: forward, backward, Adam", times.g_step),
        ("Adam (separate)", times.optimizer),
    ]
    .into_iter()
    .filter(|(_, d)| !d.is_zero())
    .map(|(n, d)| (n.to_string(), d.as_secs_f64() / seconds))
    .collect();
    Ok(BenchReport {
        steps,
        steps_per_sec,
        tape_steps_per_sec,
        seconds_per_epoch: (train_size / batch) as f64 / steps_per_sec,
        gflop_per_step: gflop / 1e9,
        tape_gflop_per_step: tape_gflop / 1e9,
        gflops: gflop / 1e9 * steps_per_sec,
        peak_gflops,
        phases,
        peak_rss_mb,
        threads: rayon::current_num_threads(),
    })
}

/// Matrix-product FLOP of one step: (gan-run's step, the tape path). Per row, a forward pass
/// costs one product per layer that has one (linear, convolution, transposed convolution), a
/// weight gradient one, an input gradient one, each of the same size. gan-run's step skips the
/// input gradient of the first layer with trainable tensors and, in the G step, D's weight
/// gradients; the tape path computes both.
fn flop_per_step(state: &mut GanState, batch: usize, every: usize) -> (f64, f64) {
    let (g, d) = (
        state.generator.macs_per_row(),
        state.discriminator.macs_per_row(),
    );
    let (g_first, d_first) = (
        first_trainable_macs(&mut state.generator),
        first_trainable_macs(&mut state.discriminator),
    );
    let b = 2.0 * batch as f64; // 2 FLOP per multiply-add
                                // D step: G forward; D forward, weight and input gradients on the real and fake batches.
    let plain_d = b * g + 2.0 * b * (d + d + (d - d_first));
    let tape_d = b * g + 2.0 * b * (3.0 * d);
    // G step: G forward, D forward, D input gradient, G weight and input gradients.
    let plain_g = b * (g + d + d + g + (g - g_first));
    let tape_g = b * (3.0 * g + 3.0 * d);
    (
        plain_d + plain_g / every as f64,
        tape_d + tape_g / every as f64,
    )
}

/// Multiply-adds per row of the first layer holding trainable tensors: below it gan-run's
/// backward pass propagates nothing ([`crate::model::backprop::PlainNet::backward`]), so its
/// input gradient is the one skipped. Not simply the first product: layers without tensors
/// (a DCGAN D's leading `reshape`) pass it by, and one with tensors but no product (a
/// `batch_norm` first) takes the skip itself, so that the first product's input gradient is
/// computed.
fn first_trainable_macs(net: &mut Network) -> f64 {
    struct Trainable(bool);
    impl TensorVisitor for Trainable {
        fn visit<S: Shape>(&mut self, _: &str, _: &mut Tensor<S, f32, Cpu>, trainable: bool) {
            self.0 |= trainable;
        }
    }
    net.layers
        .iter_mut()
        .find_map(|layer| {
            let mut trainable = Trainable(false);
            layer.visit(&mut trainable);
            trainable.0.then(|| layer.macs_per_row())
        })
        .unwrap_or(0.0)
}

/// GFLOP/s of a 1024 x 1024 x 1024 product with gan-run's kernel, best of five.
fn peak_matmul_gflops() -> f64 {
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 17) as f32 * 0.1).collect();
    let mut c = vec![0.0; n * n];
    let product = |c: &mut [f32]| matmul(Mat::new(&a, n, n), Mat::new(&a, n, n), c);
    product(&mut c); // warm up the thread pool
    (0..5)
        .map(|_| {
            let t = Instant::now();
            product(&mut c);
            2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn peak_rss_mb() -> Option<f64> {
    let status =
        crate::files::read_string("/proc/self/status".as_ref(), crate::files::SMALL).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "steps timed         {}", self.steps)?;
        writeln!(f, "steps/s             {:.2}", self.steps_per_sec)?;
        if let Some(tape) = self.tape_steps_per_sec {
            writeln!(
                f,
                "dfdx tape baseline  {tape:.2} steps/s (same run): gan-run is {:.2}x",
                self.steps_per_sec / tape
            )?;
        }
        writeln!(f, "seconds per epoch   {:.1}", self.seconds_per_epoch)?;
        writeln!(
            f,
            "GFLOP per step      {:.2} (matrix products; the tape path does {:.2})",
            self.gflop_per_step, self.tape_gflop_per_step
        )?;
        writeln!(
            f,
            "GFLOP/s             {:.1} of a {:.1} peak (1024^3 matmul, same run): {:.0}%",
            self.gflops,
            self.peak_gflops,
            100.0 * self.gflops / self.peak_gflops
        )?;
        if let Some(rss) = self.peak_rss_mb {
            writeln!(f, "peak RSS            {rss:.0} MB")?;
        }
        writeln!(f, "threads             {}", self.threads)?;
        writeln!(f, "where the time goes:")?;
        for (name, share) in &self.phases {
            writeln!(f, "  {name:<34}{:>5.1}%", 100.0 * share)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_runs_and_counts_the_arithmetic_by_hand() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let config = crate::config::load(&path, &[]).unwrap();
        let report = run(&config, 3, 1, true).unwrap();
        // Smoke: G 16->64->784, D 784->64->1, batch 50. Per row: G 51,200 and D 50,240
        // multiply-adds; the first layers 1,024 (G) and 50,176 (D).
        let (g, d, b) = (51_200.0, 50_240.0, 100.0);
        let (g1, d1) = (1_024.0, 50_176.0);
        // Tape: D step G fwd + 2 x (D fwd + D bwd of 2 products); G step 3 x (G + D).
        let tape = b * g + 2.0 * (b * d + 2.0 * b * d) + 3.0 * b * (g + d);
        // gan-run: no first-layer input gradients, no D weight gradients in the G step.
        let plain = b * g + 2.0 * b * (3.0 * d - d1) + b * (3.0 * g - g1 + 2.0 * d);
        assert!(
            (report.tape_gflop_per_step * 1e9 - tape).abs() < 1.0,
            "{report:?}"
        );
        assert!(
            (report.gflop_per_step * 1e9 - plain).abs() < 1.0,
            "{report:?}"
        );
        assert!(report.steps_per_sec > 0.0 && report.tape_steps_per_sec.unwrap() > 0.0);
        assert!(report.peak_gflops > 0.0);
        let shares: f64 = report.phases.iter().map(|(_, s)| s).sum();
        // Not a timing threshold (on a loaded machine the time between phases grows): the
        // phases are measured, and never add up to more than the step.
        assert!(
            shares > 0.0 && shares <= 1.0 + 1e-9,
            "phase shares sum to {shares}"
        );
    }

    #[test]
    fn dcgan_flop_count_takes_its_convolutions_and_skips_the_right_input_gradient() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dcgan.toml");
        let config = crate::config::load(&path, &[]).unwrap();
        let mut state = GanState::new(&config, &Cpu::seed_from_u64(0));
        // G: linear 100x1024, linear 1024x6272; conv_transpose2d 128->64 (k4, 7x7 -> 14x14),
        // 128 x 64*16 per input position; conv_transpose2d 64->1 (14x14 -> 28x28), 64 x 16 per
        // position.
        let (g1, g2) = (100.0 * 1024.0, 1024.0 * 6272.0);
        let (g3, g4) = (128.0 * 1024.0 * 49.0, 64.0 * 16.0 * 196.0);
        // D: conv2d 1->64 (28x28 -> 14x14), 64 x 16 per output position; conv2d 64->128
        // (14x14 -> 7x7), 128 x 1024 per position; linear 6272x1024; linear 1024x1.
        let (d1, d2) = (64.0 * 16.0 * 196.0, 128.0 * 1024.0 * 49.0);
        let (d3, d4) = (6272.0 * 1024.0, 1024.0);
        let (g, d) = (g1 + g2 + g3 + g4, d1 + d2 + d3 + d4);
        assert_eq!(state.generator.macs_per_row(), g);
        assert_eq!(state.discriminator.macs_per_row(), d);
        // D's first layer is a reshape: the input gradient skipped is the first conv's.
        assert_eq!(first_trainable_macs(&mut state.discriminator), d1);
        assert_eq!(first_trainable_macs(&mut state.generator), g1);
        let b = 100.0;
        let tape = b * g + 2.0 * (b * d + 2.0 * b * d) + 3.0 * b * (g + d);
        let plain = b * g + 2.0 * b * (3.0 * d - d1) + b * (3.0 * g - g1 + 2.0 * d);
        let (gflop, tape_gflop) = flop_per_step(&mut state, 100, 1);
        assert_eq!((gflop, tape_gflop), (2.0 * plain, 2.0 * tape));
    }

    #[test]
    fn a_leading_batch_norm_takes_the_skipped_input_gradient() {
        #[derive(serde::Deserialize)]
        struct L {
            layers: Vec<crate::model::LayerSpec>,
        }
        let build = |text: &str| {
            let specs = toml::from_str::<L>(text).unwrap().layers;
            let mut rng = rand::SeedableRng::seed_from_u64(0);
            let init = crate::model::init::InitConfig::default();
            Network::build("n", &specs, 4, &init, &Cpu::default(), &mut rng)
        };
        let linear = r#"{type = "linear", out = 3}"#;
        let mut plain = build(&format!("layers = [{linear}]"));
        assert_eq!(first_trainable_macs(&mut plain), 12.0);
        // The batch-norm's own input gradient is skipped; the product above it needs its own.
        let mut normed = build(&format!(
            r#"layers = [{{type = "batch_norm", mode = "batch"}}, {linear}]"#
        ));
        assert_eq!(first_trainable_macs(&mut normed), 0.0);
        // A layer without tensors is passed by.
        let mut shaped = build(&format!(r#"layers = [{{type = "relu"}}, {linear}]"#));
        assert_eq!(first_trainable_macs(&mut shaped), 12.0);
    }
}
