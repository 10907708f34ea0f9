//! Improved precision and recall (Kynkäänniemi et al. 2019): quality and coverage as two
//! numbers. Each set of feature vectors stands for its distribution's support as the union of
//! balls around its points, each ball reaching the point's k-th nearest neighbour in its own
//! set. Precision is the share of generated points inside the real support (are the samples
//! realistic?); recall is the share of real points inside the generated support (is all of
//! the real distribution produced?). A collapsed generator keeps precision and loses recall;
//! a blurry one the other way round.
//!
//! Distances come from [`squared_distances`] (one matrix product per block of rows), compared
//! squared, so no root is taken.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::likelihood::squared_distances;

/// Neighbours that set each ball's radius: the paper's k = 3.
pub const K: usize = 3;

/// Rows per block of distances: 1,000 rows against 10,000 points are 40 MB of `f32`.
const BLOCK: usize = 1000;

/// Improved precision and recall of one set of generated images against real ones.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PrecisionRecall {
    /// Share of generated images inside the real images' k-NN balls, 0 to 1.
    pub precision: f64,
    /// Share of real images inside the generated images' k-NN balls, 0 to 1.
    pub recall: f64,
    /// The neighbour that set the radii.
    pub k: usize,
    /// Images in each set compared (the same number of generated and real images).
    pub images: usize,
}

/// Squared distance from each row of `x` (row-major, `dim` columns) to its `k`-th nearest
/// other row: the squared radius of its ball. The row itself is left out by index, so a
/// duplicate point counts as a neighbour at distance 0. Needs more than `k` rows.
pub fn knn_radii(x: &[f32], dim: usize, k: usize) -> Vec<f32> {
    let n = x.len() / dim;
    assert!(n > k, "{n} points have no {k}-th nearest other point");
    let mut radii = Vec::with_capacity(n);
    for (b, block) in x.chunks(BLOCK * dim).enumerate() {
        let mut d = squared_distances(block, x, dim);
        let block_radii: Vec<f32> = d
            .par_chunks_exact_mut(n)
            .enumerate()
            .map(|(i, row)| {
                // Below every distance, so that the point itself is the 0th smallest.
                row[b * BLOCK + i] = f32::NEG_INFINITY;
                *row.select_nth_unstable_by(k, f32::total_cmp).1
            })
            .collect();
        radii.extend(block_radii);
    }
    radii
}

/// Precision and recall of `generated` against `real` (both row-major with `dim` columns),
/// with the real balls' squared radii given (`knn_radii(real, dim, k)`), since a caller
/// scoring many sets against the same real set computes them once. One pass over the
/// generated-to-real distances, a block of generated rows at a time, answers both questions.
pub fn precision_recall_with(
    generated: &[f32],
    real: &[f32],
    real_radii: &[f32],
    dim: usize,
    k: usize,
) -> PrecisionRecall {
    let (ng, nr) = (generated.len() / dim, real.len() / dim);
    assert_eq!(real_radii.len(), nr, "one radius per real point");
    let generated_radii = knn_radii(generated, dim, k);
    let mut realistic = 0usize;
    let mut covered = vec![false; nr];
    for (block, radii) in generated
        .chunks(BLOCK * dim)
        .zip(generated_radii.chunks(BLOCK))
    {
        let d = squared_distances(block, real, dim);
        realistic += d
            .par_chunks_exact(nr)
            .filter(|row| row.iter().zip(real_radii).any(|(&x, &r)| x <= r))
            .count();
        // Columns in parallel: each real point asks whether some generated ball holds it.
        covered.par_iter_mut().enumerate().for_each(|(j, c)| {
            *c = *c || d.chunks_exact(nr).zip(radii).any(|(row, &r)| row[j] <= r);
        });
    }
    let recalled = covered.iter().filter(|&&c| c).count();
    PrecisionRecall {
        precision: realistic as f64 / ng.max(1) as f64,
        recall: recalled as f64 / nr.max(1) as f64,
        k,
        images: ng,
    }
}

/// [`precision_recall_with`], computing the real radii.
pub fn precision_recall(generated: &[f32], real: &[f32], dim: usize, k: usize) -> PrecisionRecall {
    precision_recall_with(generated, real, &knn_radii(real, dim, k), dim, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn gaussian_points(n: usize, dim: usize, shift: f32, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim)
            .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal) + shift)
            .collect()
    }

    /// 1-D points 0, 1, 3, 6, 10. Distances from 0: 1, 3, 6, 10; from 1: 1, 2, 5, 9;
    /// from 3: 3, 2, 3, 7; from 6: 6, 5, 3, 4; from 10: 10, 9, 7, 4.
    #[test]
    fn knn_radii_match_a_hand_computation() {
        let x = [0.0, 1.0, 3.0, 6.0, 10.0];
        assert_eq!(knn_radii(&x, 1, 1), vec![1.0, 1.0, 4.0, 9.0, 16.0]);
        assert_eq!(knn_radii(&x, 1, 2), vec![9.0, 4.0, 9.0, 16.0, 49.0]);
        assert_eq!(knn_radii(&x, 1, 3), vec![36.0, 25.0, 9.0, 25.0, 81.0]);
        // A duplicate is a neighbour at distance 0, and the point itself is not.
        assert_eq!(knn_radii(&[2.0, 2.0, 5.0], 1, 1), vec![0.0, 0.0, 9.0]);
    }

    /// Radii computed across blocks agree with a direct sort, with the point itself left out
    /// in every block (a wrong block offset would leave some point its own neighbour).
    #[test]
    fn knn_radii_agree_with_a_direct_sort_across_blocks() {
        let (n, dim) = (2 * BLOCK + 7, 3);
        let x = gaussian_points(n, dim, 0.0, 5);
        let radii = knn_radii(&x, dim, K);
        for i in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 6] {
            let p = &x[i * dim..(i + 1) * dim];
            let mut d: Vec<f64> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let q = &x[j * dim..(j + 1) * dim];
                    p.iter().zip(q).map(|(a, b)| ((a - b) as f64).powi(2)).sum()
                })
                .collect();
            d.sort_by(f64::total_cmp);
            let expect = d[K - 1];
            assert!(
                (radii[i] as f64 - expect).abs() <= 1e-4 * expect.max(1.0),
                "point {i}: {} vs {expect}",
                radii[i]
            );
        }
    }

    #[test]
    fn a_set_against_itself_is_all_precision_and_recall() {
        let x = gaussian_points(1500, 8, 0.0, 1);
        let pr = precision_recall(&x, &x, 8, K);
        assert_eq!((pr.precision, pr.recall), (1.0, 1.0), "{pr:?}");
        assert_eq!((pr.k, pr.images), (K, 1500));
    }

    #[test]
    fn far_apart_sets_have_neither() {
        let a = gaussian_points(300, 8, 0.0, 1);
        let b = gaussian_points(300, 8, 100.0, 2);
        let pr = precision_recall(&a, &b, 8, K);
        assert_eq!((pr.precision, pr.recall), (0.0, 0.0), "{pr:?}");
    }

    /// A set that covers only part of the real one (a collapsed generator): every sample is
    /// realistic, but most real points are missed. And the hand case: generated points at 0
    /// and 10 against real points 0, 1, 2, 3 with k = 1 (real radii 1, 1, 1, 1; generated
    /// radii 10, 10): 0 is within 1 of real 0, 10 is not within reach of any real point, so
    /// precision 1/2; each generated ball reaches all four real points, so recall 1.
    #[test]
    fn partial_sets_separate_precision_from_recall() {
        let real = gaussian_points(2000, 2, 0.0, 3);
        // The real points in one quadrant only.
        let collapsed: Vec<f32> = real
            .chunks_exact(2)
            .filter(|p| p[0] > 0.5 && p[1] > 0.5)
            .flatten()
            .copied()
            .collect();
        let pr = precision_recall(&collapsed, &real, 2, K);
        assert_eq!(pr.precision, 1.0, "{pr:?}");
        assert!(pr.recall < 0.4, "{pr:?}");
        let hand = precision_recall(&[0.0, 10.0], &[0.0, 1.0, 2.0, 3.0], 1, 1);
        assert_eq!((hand.precision, hand.recall), (0.5, 1.0), "{hand:?}");
    }
}
