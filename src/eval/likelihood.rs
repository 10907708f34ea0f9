//! The measures in pixel space: the Parzen-window log-likelihood of held-out images (the
//! protocol of Goodfellow et al. 2014, Table 1) and memorisation (how close samples come to
//! training images). Both rest on squared distances computed as one large matrix
//! product per block, `|a|^2 + |b|^2 - 2 a.b`, and sum in f64 with log-sum-exp.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::IMAGE_PIXELS;
use crate::model::kernels::{for_rows, matmul, Mat};

/// Squared Euclidean distances between every row of `a` and every row of `b` (both row-major
/// with `dim` columns), as `a.len()/dim` rows of `b.len()/dim` values.
///
/// The product runs on gan-run's training kernels (faer, both cores): scoring 10,000 samples
/// is about 250 GFLOP of these products, and took 5.2 s in all there against 12.5 s on
/// dfdx's (BENCHMARKS.md, Evaluation speed).
pub fn squared_distances(a: &[f32], b: &[f32], dim: usize) -> Vec<f32> {
    distances_to(a, b, &squared_norms(b, dim), dim)
}

fn squared_norms(x: &[f32], dim: usize) -> Vec<f32> {
    x.chunks_exact(dim)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

/// [`squared_distances`] with `b`'s squared norms given: the callers walk `a` in blocks
/// against the same `b`.
fn distances_to(a: &[f32], b: &[f32], b_norm: &[f32], dim: usize) -> Vec<f32> {
    let (na, nb) = (a.len() / dim, b.len() / dim);
    let a_norm = squared_norms(a, dim);
    // [na, dim] x [dim, nb] -> [na, nb]
    let mut out = vec![0.0; na * nb];
    matmul(Mat::new(a, na, dim), Mat::new(b, nb, dim).t(), &mut out);
    for_rows(&mut out, nb.max(1), |i, row| {
        for (d, &bn) in row.iter_mut().zip(b_norm) {
            *d = (a_norm[i] + bn - 2.0 * *d).max(0.0);
        }
    });
    out
}

/// Mean and standard error.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct MeanSe {
    /// Mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub se: f64,
}

fn mean_se(v: &[f64]) -> MeanSe {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    MeanSe {
        mean,
        se: (var / n).sqrt(),
    }
}

/// Log-density of each query under a Gaussian Parzen window of width `sigma` centred on the
/// samples: `log mean_i N(x; s_i, sigma^2 I)`.
pub fn parzen_log_likelihoods(
    samples: &[f32],
    queries: &[f32],
    sigma: f64,
    dim: usize,
) -> Vec<f64> {
    parzen_many(samples, queries, &[sigma], dim).remove(0)
}

/// [`parzen_log_likelihoods`] for several widths, sharing the distance computation.
fn parzen_many(samples: &[f32], queries: &[f32], sigmas: &[f64], dim: usize) -> Vec<Vec<f64>> {
    let ns = samples.len() / dim;
    let mut out = vec![Vec::new(); sigmas.len()];
    const BLOCK: usize = 500;
    let sample_norms = squared_norms(samples, dim);
    for block in queries.chunks(BLOCK * dim) {
        let d = distances_to(block, samples, &sample_norms, dim);
        for (k, &sigma) in sigmas.iter().enumerate() {
            let norm = (ns as f64).ln()
                + 0.5 * dim as f64 * (2.0 * std::f64::consts::PI * sigma * sigma).ln();
            let scale = 1.0 / (2.0 * sigma * sigma);
            // Rows in parallel, each summed in order: the same figures on any thread count.
            let rows: Vec<f64> = d
                .par_chunks_exact(ns)
                .map(|row| {
                    let max = row
                        .iter()
                        .map(|&x| -(x as f64) * scale)
                        .fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = row.iter().map(|&x| (-(x as f64) * scale - max).exp()).sum();
                    max + sum.ln() - norm
                })
                .collect();
            out[k].extend(rows);
        }
    }
    out
}

/// The Parzen estimate of Goodfellow et al.: width chosen from `logspace(-1, 0, 10)` by the
/// mean log-likelihood of `validation`, then the mean and standard error over `test`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParzenReport {
    /// The chosen width.
    pub sigma: f64,
    /// Mean validation log-likelihood of each candidate width.
    pub validation: Vec<(f64, f64)>,
    /// Test log-likelihood in nats, mean and standard error.
    pub test: MeanSe,
}

/// Runs the Parzen protocol.
pub fn parzen(samples: &[f32], validation: &[f32], test: &[f32]) -> ParzenReport {
    let sigmas: Vec<f64> = (0..10).map(|i| 10f64.powf(-1.0 + i as f64 / 9.0)).collect();
    let per_sigma = parzen_many(samples, validation, &sigmas, IMAGE_PIXELS);
    let validation: Vec<(f64, f64)> = sigmas
        .iter()
        .zip(&per_sigma)
        .map(|(&s, v)| (s, mean_se(v).mean))
        .collect();
    let sigma = validation
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|v| v.0)
        .expect("ten widths");
    let test = mean_se(&parzen_log_likelihoods(samples, test, sigma, IMAGE_PIXELS));
    ParzenReport {
        sigma,
        validation,
        test,
    }
}

/// How close samples come to the training images.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memorisation {
    /// Samples examined.
    pub samples: usize,
    /// Median Euclidean distance from a sample to its nearest training image.
    pub median_distance: f64,
    /// The same for real held-out images: what "new" looks like.
    pub reference_median_distance: f64,
    /// Distance below which a sample counts as a near-copy: the 1st percentile of the
    /// held-out images' nearest-training distances (closer than 99% of genuinely new digits).
    pub near_copy_threshold: f64,
    /// Share of samples closer than that.
    pub near_copy_share: f64,
}

/// Euclidean distance from each query to its nearest training image.
pub fn nearest_distances(queries: &[f32], train: &[f32]) -> Vec<f64> {
    let nt = train.len() / IMAGE_PIXELS;
    let mut best = Vec::new();
    let train_norms = squared_norms(train, IMAGE_PIXELS);
    for block in queries.chunks(100 * IMAGE_PIXELS) {
        let d = distances_to(block, train, &train_norms, IMAGE_PIXELS);
        let nearest: Vec<f64> = d
            .par_chunks_exact(nt)
            .map(|r| (r.iter().cloned().fold(f32::INFINITY, f32::min) as f64).sqrt())
            .collect();
        best.extend(nearest);
    }
    best
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Memorisation of `samples` against `train`, with real held-out images' nearest-training
/// distances (`nearest_distances(held_out, train)`, the same for every set scored) as the
/// reference.
pub fn memorisation(samples: &[f32], held_out_nearest: &[f64], train: &[f32]) -> Memorisation {
    let mut s = nearest_distances(samples, train);
    let mut r = held_out_nearest.to_vec();
    let threshold = quantile(&mut r, 0.01);
    let near = s.iter().filter(|&&d| d < threshold).count() as f64 / s.len() as f64;
    Memorisation {
        samples: s.len(),
        median_distance: quantile(&mut s, 0.5),
        reference_median_distance: quantile(&mut r, 0.5),
        near_copy_threshold: threshold,
        near_copy_share: near,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_direct_computation() {
        let a = [0.0, 0.0, 1.0, 2.0];
        let b = [3.0, 4.0, 1.0, 1.0, 0.0, 0.0];
        let d = squared_distances(&a, &b, 2);
        assert_eq!(d, vec![25.0, 2.0, 0.0, 8.0, 1.0, 5.0]);
    }

    /// A tiny Parzen case computed by hand: two 1-D samples at 0 and 2, query at 1, sigma 1:
    /// log(0.5 * (N(1; 0, 1) + N(1; 2, 1))) = log N(1; 0, 1) = -0.5 - 0.5 ln(2 pi).
    #[test]
    fn parzen_matches_a_hand_computation() {
        let ll = parzen_log_likelihoods(&[0.0, 2.0], &[1.0], 1.0, 1);
        let expect = -0.5 - 0.5 * (2.0 * std::f64::consts::PI).ln();
        assert!((ll[0] - expect).abs() < 1e-9, "{} vs {expect}", ll[0]);
        // Far queries stay finite thanks to log-sum-exp.
        let far = parzen_log_likelihoods(&[0.0], &[1000.0], 0.1, 1);
        assert!(far[0].is_finite() && far[0] < -1e7);
    }
}
