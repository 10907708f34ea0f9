//! Kernel inception distance (Bińkowski et al. 2018), with the MNIST classifier's features:
//! the unbiased estimate of the squared maximum mean discrepancy between the two feature
//! distributions, with the cubic polynomial kernel `k(x, y) = (x.y / d + 1)^3`. Unlike FID it
//! has no bias that depends on the number of images, so sets of different sizes compare, and
//! it can come out slightly negative when the distributions are the same.
//!
//! As the reference implementations do, it is averaged over [`SUBSETS`] random subsets (drawn
//! with a fixed seed, without replacement within a subset) of each set. Our subsets hold
//! `min(1,000, n / 2)` images, `n` the smaller set's size, so that even small sets give
//! subsets that differ. The standard error treats the subsets as `n / m` independent ones,
//! `sd * sqrt(m / n)`: the 100 subsets overlap, so `sd / sqrt(100)` would understate it.

use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::kernels::{matmul, Mat};

/// Subsets averaged over.
pub const SUBSETS: usize = 100;

/// The most images in a subset.
pub const MAX_SUBSET: usize = 1000;

/// The kernel inception distance of one set of images against real ones.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Kid {
    /// Mean over the subsets of the unbiased MMD^2 estimate (0 is the same distribution).
    pub mean: f64,
    /// Its standard error (see the module documentation).
    pub se: f64,
    /// Subsets averaged over.
    pub subsets: usize,
    /// Images drawn from each set per subset.
    pub subset_size: usize,
}

/// The unbiased MMD^2 estimate between `x` and `y` (row-major, `dim` columns, at least two
/// rows each) with the cubic polynomial kernel:
///
/// ```text
/// sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
///     - 2 sum_{i, j} k(x_i, y_j) / (m n)
/// ```
///
/// Dot products in one matrix product each (f32), kernel sums in f64.
pub fn mmd2_unbiased(x: &[f32], y: &[f32], dim: usize) -> f64 {
    let (m, n) = ((x.len() / dim) as f64, (y.len() / dim) as f64);
    let xx = kernel_sum(x, x, dim, true);
    let yy = kernel_sum(y, y, dim, true);
    let xy = kernel_sum(x, y, dim, false);
    xx / (m * (m - 1.0)) + yy / (n * (n - 1.0)) - 2.0 * xy / (m * n)
}

/// `sum k(a_i, b_j)` over all pairs, or over `i != j` when `off_diagonal`.
fn kernel_sum(a: &[f32], b: &[f32], dim: usize, off_diagonal: bool) -> f64 {
    let (na, nb) = (a.len() / dim, b.len() / dim);
    let mut dots = vec![0.0; na * nb];
    matmul(Mat::new(a, na, dim), Mat::new(b, nb, dim).t(), &mut dots);
    let kernel = |dot: f32| (dot as f64 / dim as f64 + 1.0).powi(3);
    // Rows in parallel, each summed in order: the same figure on any thread count.
    let rows: Vec<f64> = dots
        .par_chunks_exact(nb.max(1))
        .enumerate()
        .map(|(i, row)| {
            let all: f64 = row.iter().map(|&d| kernel(d)).sum();
            if off_diagonal {
                all - kernel(row[i])
            } else {
                all
            }
        })
        .collect();
    rows.iter().sum()
}

/// The KID of `generated` against `real` (row-major, `dim` columns, at least four rows each),
/// over [`SUBSETS`] subsets drawn with `seed`.
pub fn kid(generated: &[f32], real: &[f32], dim: usize, seed: u64) -> Kid {
    let (ng, nr) = (generated.len() / dim, real.len() / dim);
    let n = ng.min(nr);
    assert!(n >= 4, "KID needs at least four images in each set");
    let m = (n / 2).min(MAX_SUBSET);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let estimates: Vec<f64> = (0..SUBSETS)
        .map(|_| {
            let g = gather(generated, &rand::seq::index::sample(&mut rng, ng, m), dim);
            let r = gather(real, &rand::seq::index::sample(&mut rng, nr, m), dim);
            mmd2_unbiased(&g, &r, dim)
        })
        .collect();
    let k = SUBSETS as f64;
    let mean = estimates.iter().sum::<f64>() / k;
    let var = estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (k - 1.0);
    Kid {
        mean,
        se: (var * m as f64 / n as f64).sqrt(),
        subsets: SUBSETS,
        subset_size: m,
    }
}

/// The rows of `x` at `indices`, in that order.
fn gather(x: &[f32], indices: &rand::seq::index::IndexVec, dim: usize) -> Vec<f32> {
    indices
        .iter()
        .flat_map(|i| &x[i * dim..(i + 1) * dim])
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn gaussian_points(n: usize, dim: usize, shift: f32, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim)
            .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal) + shift)
            .collect()
    }

    /// The estimator's formula written out pair by pair, in f64.
    fn direct_mmd2(x: &[f32], y: &[f32], dim: usize) -> f64 {
        let k = |a: &[f32], b: &[f32]| {
            let dot: f64 = a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum();
            (dot / dim as f64 + 1.0).powi(3)
        };
        let rows = |v: &[f32]| v.chunks_exact(dim).map(|r| r.to_vec()).collect::<Vec<_>>();
        let (x, y) = (rows(x), rows(y));
        let (m, n) = (x.len() as f64, y.len() as f64);
        let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
        for (i, a) in x.iter().enumerate() {
            for (j, b) in x.iter().enumerate() {
                if i != j {
                    xx += k(a, b);
                }
            }
            for b in &y {
                xy += k(a, b);
            }
        }
        for (i, a) in y.iter().enumerate() {
            for (j, b) in y.iter().enumerate() {
                if i != j {
                    yy += k(a, b);
                }
            }
        }
        xx / (m * (m - 1.0)) + yy / (n * (n - 1.0)) - 2.0 * xy / (m * n)
    }

    #[test]
    fn mmd2_matches_the_pairwise_formula() {
        let x = gaussian_points(7, 5, 0.0, 1);
        let y = gaussian_points(9, 5, 0.5, 2);
        let (fast, direct) = (mmd2_unbiased(&x, &y, 5), direct_mmd2(&x, &y, 5));
        assert!(
            (fast - direct).abs() < 1e-5 * direct.abs().max(1.0),
            "{fast} vs {direct}"
        );
        // And a case small enough to check by hand: 1-D, x = (0, 1), y = (1, 2), d = 1:
        // k(x, y) = (xy + 1)^3. xx: 2 k(0, 1) = 2; yy: 2 k(1, 2) = 54; xy: k(0, 1) + k(0, 2)
        // + k(1, 1) + k(1, 2) = 1 + 1 + 8 + 27 = 37. 2/2 + 54/2 - 2 * 37 / 4 = 9.5.
        let hand = mmd2_unbiased(&[0.0, 1.0], &[1.0, 2.0], 1);
        assert!((hand - 9.5).abs() < 1e-9, "{hand}");
    }

    /// Two samples of one distribution: the unbiased estimate sits around 0, within its
    /// error; a shifted distribution is far above it. A set against itself is near 0 too, a
    /// little below: subsets drawn from the same points share some (half, here), and a
    /// shared point's `k(x, x)` enters the cross term, about `-2 (m / n) (E k(x, x) -
    /// E k(x, y)) / m` = -0.007 here (the reference implementations do the same).
    #[test]
    fn kid_is_near_zero_for_one_distribution_and_positive_for_shifted_ones() {
        let a = gaussian_points(2000, 16, 0.0, 1);
        let fresh = kid(&a, &gaussian_points(2000, 16, 0.0, 2), 16, 0);
        let same = kid(&a, &a, 16, 0);
        let shifted = kid(&a, &gaussian_points(2000, 16, 0.5, 3), 16, 0);
        assert!(fresh.mean.abs() < 3.0 * fresh.se, "{fresh:?}");
        assert!(same.mean < 0.0 && same.mean > -0.01, "{same:?}");
        for k in [same, fresh] {
            assert!(k.mean.abs() < 0.02 * shifted.mean, "{k:?} vs {shifted:?}");
        }
        assert!(shifted.mean > 10.0 * shifted.se, "{shifted:?}");
        assert_eq!((same.subsets, same.subset_size), (SUBSETS, MAX_SUBSET));
        // Small sets: subsets of half the smaller set.
        let small = kid(&a[..16 * 10], &a[..16 * 30], 16, 0);
        assert_eq!(small.subset_size, 5);
    }

    #[test]
    fn kid_is_deterministic_for_a_seed() {
        let a = gaussian_points(300, 4, 0.0, 1);
        let b = gaussian_points(200, 4, 0.2, 2);
        assert_eq!(kid(&a, &b, 4, 7), kid(&a, &b, 4, 7));
        assert_ne!(kid(&a, &b, 4, 7).mean, kid(&a, &b, 4, 8).mean);
    }
}
