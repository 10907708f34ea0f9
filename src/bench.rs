//! `gan-run bench`: times a config's training steps (warm-up excluded) and puts them beside
//! this machine's own matrix-product peak, measured in the same run, with a per-phase
//! breakdown so that the next bottleneck is visible.

use std::time::Instant;

use dfdx::prelude::*;
use serde::Serialize;

use crate::config::{ExperimentConfig, IMAGE_PIXELS};
use crate::error::Result;
use crate::model::{Layer, Matrix, Network};
use crate::train::{d_step, g_step, GanState, PhaseTimes};

/// What a benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Timed steps (one D step and, per `d_steps_per_g_step`, G steps).
    pub steps: usize,
    /// Steps per second.
    pub steps_per_sec: f64,
    /// Seconds per epoch of the config's training set at this rate.
    pub seconds_per_epoch: f64,
    /// Matrix-product arithmetic executed per step (forward and backward), in GFLOP.
    pub gflop_per_step: f64,
    /// Achieved matrix-product GFLOP/s.
    pub gflops: f64,
    /// A large f32 matrix product's GFLOP/s on this machine, measured in the same run.
    pub peak_gflops: f64,
    /// Share of the seconds in each phase.
    pub phases: Vec<(String, f64)>,
    /// Peak resident memory of the process, in MB (Linux only).
    pub peak_rss_mb: Option<f64>,
    /// Threads available to the matrix products.
    pub threads: usize,
}

/// Times `steps` training steps of `config` after `warmup` untimed ones, on random images (the
/// arithmetic does not depend on the pixel values).
pub fn run(config: &ExperimentConfig, steps: usize, warmup: usize) -> Result<BenchReport> {
    let dev = Cpu::seed_from_u64(config.seed);
    let peak_gflops = peak_matmul_gflops(&dev);
    let mut state = GanState::new(config, &dev);
    let batch = config.training.batch_size;
    let real: Matrix = dev.sample_uniform_like(&(batch, IMAGE_PIXELS));
    let every = config.training.d_steps_per_g_step;
    let mut times = PhaseTimes::default();
    let one_step = |state: &mut GanState, i: usize, times: &mut PhaseTimes| {
        d_step(state, config, real.clone(), &dev, times);
        if (i + 1).is_multiple_of(every) {
            g_step(state, config, batch, &dev, times);
        }
    };
    for i in 0..warmup {
        one_step(&mut state, i, &mut PhaseTimes::default());
    }
    let start = Instant::now();
    for i in 0..steps {
        one_step(&mut state, i, &mut times);
    }
    let seconds = start.elapsed().as_secs_f64();
    let steps_per_sec = steps as f64 / seconds;
    let gflop_per_step = flop_per_step(&state, batch, every) / 1e9;
    let train_size = config.data.train_size.unwrap_or(0);
    let phases = [
        ("data", times.data),
        ("G forward (in D steps)", times.g_forward),
        ("D forward + backward", times.d_step),
        ("G step forward + backward", times.g_step),
        ("optimizers", times.optimizer),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_string(), d.as_secs_f64() / seconds))
    .collect();
    Ok(BenchReport {
        steps,
        steps_per_sec,
        seconds_per_epoch: (train_size / batch) as f64 / steps_per_sec,
        gflop_per_step,
        gflops: gflop_per_step * steps_per_sec,
        peak_gflops,
        phases,
        peak_rss_mb: peak_rss_mb(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// Sum of `in * out` over a network's linear layers: multiply-adds per row.
fn macs_per_row(net: &Network) -> f64 {
    net.layers
        .iter()
        .map(|l| match l {
            Layer::Linear { weight, .. } => (weight.shape().0 * weight.shape().1) as f64,
            _ => 0.0,
        })
        .sum()
}

/// Matrix-product FLOP of one step as gan-run executes it: the D step runs G forward and D
/// forward and backward twice (weight and input gradients); the G step runs both forward and
/// both backward (D's weight gradients included, though unused).
fn flop_per_step(state: &GanState, batch: usize, every: usize) -> f64 {
    let (g, d) = (
        macs_per_row(&state.generator),
        macs_per_row(&state.discriminator),
    );
    let b = 2.0 * batch as f64; // 2 FLOP per multiply-add
    let d_step = b * g + 2.0 * (b * d + 2.0 * b * d);
    let g_step = 3.0 * b * g + 3.0 * b * d;
    d_step + g_step / every as f64
}

/// GFLOP/s of a 1024 x 1024 x 1024 f32 product, best of five.
fn peak_matmul_gflops(dev: &Cpu) -> f64 {
    let n = 1024;
    let a: Matrix = dev.sample_uniform_like(&(n, n));
    let b: Matrix = dev.sample_uniform_like(&(n, n));
    let _ = a.clone().matmul(b.clone()); // warm up the thread pool
    (0..5)
        .map(|_| {
            let t = Instant::now();
            let c = a.clone().matmul(b.clone());
            let s = t.elapsed().as_secs_f64();
            drop(c);
            2.0 * (n * n * n) as f64 / s / 1e9
        })
        .fold(0.0, f64::max)
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "steps timed         {}", self.steps)?;
        writeln!(f, "steps/s             {:.2}", self.steps_per_sec)?;
        writeln!(f, "seconds per epoch   {:.1}", self.seconds_per_epoch)?;
        writeln!(
            f,
            "GFLOP per step      {:.2} (matrix products)",
            self.gflop_per_step
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
            writeln!(f, "  {name:<28}{:>5.1}%", 100.0 * share)?;
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
        let report = run(&config, 3, 1).unwrap();
        // Smoke: G 16->64->784, D 784->64->1, batch 50. Per row: G 51,200 and D 50,240
        // multiply-adds. D step: G fwd + 2 x (D fwd + D bwd of 2 products); G step: 3 x (G + D).
        let (g, d, b) = (51_200.0, 50_240.0, 100.0);
        let expect = b * g + 2.0 * (b * d + 2.0 * b * d) + 3.0 * b * (g + d);
        assert!(
            (report.gflop_per_step * 1e9 - expect).abs() < 1.0,
            "{report:?}"
        );
        assert!(report.steps_per_sec > 0.0 && report.peak_gflops > 0.0);
        let shares: f64 = report.phases.iter().map(|(_, s)| s).sum();
        assert!(
            shares > 0.5 && shares <= 1.0 + 1e-9,
            "phase shares sum to {shares}"
        );
    }
}
