//! The measures that look at images through gan-run's MNIST classifier: the classifier FID
//! (Fréchet distance between Gaussians fitted to penultimate-layer features), the classifier
//! score (the Inception score's formula with an MNIST classifier) and mode coverage (which
//! digits the samples are, and how sure the classifier is). All sums are in f64.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::classifier::{argmax, CLASSES};

/// A Gaussian fitted to feature vectors: their mean and (unbiased) covariance.
#[derive(Debug, Clone)]
pub struct Gaussian {
    /// Mean feature vector.
    pub mean: DVector<f64>,
    /// Covariance matrix.
    pub cov: DMatrix<f64>,
}

impl Gaussian {
    /// Fits `features` (row-major, `dim` columns, at least two rows).
    pub fn fit(features: &[f32], dim: usize) -> Gaussian {
        let n = features.len() / dim;
        let x = DMatrix::from_iterator(dim, n, features.iter().map(|&v| v as f64)); // [dim, n]
        let mean = x.column_mean();
        let mut centered = x;
        for mut column in centered.column_iter_mut() {
            column -= &mean;
        }
        let cov = &centered * centered.transpose() / (n.max(2) - 1) as f64;
        Gaussian { mean, cov }
    }
}

/// `|m1 - m2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2))`, with the trace of the root taken as
/// that of `(C1^(1/2) C2 C1^(1/2))^(1/2)`, a symmetric matrix similar to it, so that both roots
/// come from symmetric eigendecompositions.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let root_a = symmetric_sqrt(&a.cov);
    let middle = &root_a * &b.cov * &root_a;
    let middle = (&middle + middle.transpose()) * 0.5; // remove rounding asymmetry
    let trace_root: f64 = SymmetricEigen::new(middle)
        .eigenvalues
        .iter()
        .map(|&l| l.max(0.0).sqrt())
        .sum();
    let d = (&a.mean - &b.mean).norm_squared() + a.cov.trace() + b.cov.trace() - 2.0 * trace_root;
    d.max(0.0)
}

/// Square root of a symmetric positive semi-definite matrix (negative rounding noise clipped).
fn symmetric_sqrt(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(m.clone());
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// `exp(E_x KL(p(y|x) || p(y)))`: 1 when every image gets the same class distribution, 10 when
/// each is one confident digit and the digits are balanced. `probs` is `n * 10`.
pub fn classifier_score(probs: &[f32]) -> f64 {
    let n = (probs.len() / CLASSES).max(1) as f64;
    let mut marginal = [0f64; CLASSES];
    for row in probs.chunks_exact(CLASSES) {
        for (m, &p) in marginal.iter_mut().zip(row) {
            *m += p as f64 / n;
        }
    }
    let mean_kl: f64 = probs
        .chunks_exact(CLASSES)
        .map(|row| {
            row.iter()
                .zip(&marginal)
                .filter(|(&p, _)| p > 0.0)
                .map(|(&p, &m)| p as f64 * ((p as f64).ln() - m.ln()))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    mean_kl.exp()
}

/// Which digits the images are, as the classifier sees them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModeCoverage {
    /// Share of images classified as each digit.
    pub histogram: [f64; CLASSES],
    /// Digits that get at least 1% of the images.
    pub modes: usize,
    /// KL divergence of the histogram from uniform, in nats (0 for balanced, ln 10 = 2.30 for
    /// a single digit).
    pub kl_from_uniform: f64,
    /// Share of images whose most probable digit has probability above 0.9.
    pub confident_share: f64,
}

/// Mode coverage of `probs` (`n * 10`).
pub fn mode_coverage(probs: &[f32]) -> ModeCoverage {
    let n = probs.len() / CLASSES;
    // Counted in integers, so that "at least 1%" holds exactly at the boundary.
    let mut counts = [0usize; CLASSES];
    let mut confident = 0usize;
    for row in probs.chunks_exact(CLASSES) {
        let k = argmax(row);
        counts[k] += 1;
        confident += usize::from(row[k] > 0.9);
    }
    let total = n.max(1) as f64;
    let histogram = counts.map(|c| c as f64 / total);
    let uniform = 1.0 / CLASSES as f64;
    ModeCoverage {
        histogram,
        modes: counts.iter().filter(|&&c| c > 0 && c * 100 >= n).count(),
        kl_from_uniform: histogram
            .iter()
            .filter(|&&h| h > 0.0)
            .map(|&h| h * (h / uniform).ln())
            .sum(),
        confident_share: confident as f64 / total,
    }
}

/// For images drawn with a latent code (InfoGAN's, `conditioning.discriminator =
/// "latent_code"`): the digit each code draws most, and how purely. G chooses what a code
/// means, so this is the code's only reading against digits (unsupervised clustering's purity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeDigits {
    /// Per code, the digit the classifier calls most of its images.
    pub digit: Vec<u8>,
    /// Per code, that digit's share of the code's images (0 for a code with none).
    pub share: Vec<f64>,
    /// The share of all images that are their code's digit: 1 when each code draws one digit.
    pub purity: f64,
}

impl CodeDigits {
    /// Digits that no code (with images) draws most, in order.
    pub fn unclaimed(&self) -> Vec<usize> {
        let claimed = |d: usize| {
            self.digit
                .iter()
                .zip(&self.share)
                .any(|(&c, &share)| share > 0.0 && c as usize == d)
        };
        (0..CLASSES).filter(|&d| !claimed(d)).collect()
    }
}

/// [`CodeDigits`] of images with class probabilities `probs` (rows of [`CLASSES`]), drawn with
/// `codes` (one per image) out of `classes` codes.
pub fn code_digits(probs: &[f32], codes: &[u8], classes: usize) -> CodeDigits {
    let mut counts = vec![[0usize; CLASSES]; classes];
    for (p, &code) in probs.chunks_exact(CLASSES).zip(codes) {
        counts[code as usize][argmax(p)] += 1;
    }
    let (mut digit, mut share, mut pure) = (Vec::new(), Vec::new(), 0);
    for count in &counts {
        let (best, &most) = count
            .iter()
            .enumerate()
            .max_by_key(|&(d, &c)| (c, std::cmp::Reverse(d)))
            .expect("ten digits");
        let total: usize = count.iter().sum();
        digit.push(best as u8);
        share.push(most as f64 / total.max(1) as f64);
        pure += most;
    }
    CodeDigits {
        digit,
        share,
        purity: pure as f64 / codes.len().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(mean: &[f64], diag: &[f64]) -> Gaussian {
        Gaussian {
            mean: DVector::from_column_slice(mean),
            cov: DMatrix::from_diagonal(&DVector::from_column_slice(diag)),
        }
    }

    /// For diagonal covariances the distance is a sum over axes of
    /// `(m1 - m2)^2 + (s1 - s2)^2`, with `s` the standard deviations.
    #[test]
    fn frechet_distance_matches_the_diagonal_closed_form() {
        let a = gaussian(&[0.0, 1.0], &[1.0, 4.0]);
        let b = gaussian(&[1.0, 1.0], &[4.0, 9.0]);
        let expect = (1.0 + 1.0) + (0.0 + 1.0);
        assert!((frechet_distance(&a, &b) - expect).abs() < 1e-9);
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
    }

    /// A rotation of the space leaves the distance unchanged, which a wrong matrix root
    /// (e.g. element-wise) would not.
    #[test]
    fn frechet_distance_is_invariant_under_rotation() {
        let (c, s) = (0.6f64, 0.8f64);
        let r = DMatrix::from_row_slice(2, 2, &[c, -s, s, c]);
        let a = gaussian(&[0.0, 0.0], &[1.0, 9.0]);
        let b = gaussian(&[2.0, 0.0], &[4.0, 1.0]);
        let rotate = |g: &Gaussian| Gaussian {
            mean: &r * &g.mean,
            cov: &r * &g.cov * r.transpose(),
        };
        let direct = frechet_distance(&a, &b);
        let rotated = frechet_distance(&rotate(&a), &rotate(&b));
        assert!((direct - rotated).abs() < 1e-9, "{direct} vs {rotated}");
    }

    #[test]
    fn fit_recovers_mean_and_unbiased_covariance() {
        let g = Gaussian::fit(&[1.0, 0.0, 3.0, 2.0], 2); // rows (1, 0), (3, 2)
        assert_eq!(g.mean.as_slice(), &[2.0, 1.0]);
        assert_eq!(g.cov.as_slice(), &[2.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn score_and_coverage_of_extreme_cases() {
        let one_hot = |k: usize| {
            let mut v = [0f32; CLASSES];
            v[k] = 1.0;
            v
        };
        let balanced: Vec<f32> = (0..100).flat_map(|i| one_hot(i % 10)).collect();
        assert!((classifier_score(&balanced) - 10.0).abs() < 1e-9);
        let c = mode_coverage(&balanced);
        assert_eq!((c.modes, c.confident_share), (10, 1.0));
        assert!(c.kl_from_uniform.abs() < 1e-12);

        let collapsed: Vec<f32> = (0..100).flat_map(|_| one_hot(3)).collect();
        assert!((classifier_score(&collapsed) - 1.0).abs() < 1e-9);
        let c = mode_coverage(&collapsed);
        assert_eq!(c.modes, 1);
        assert!((c.kl_from_uniform - 10f64.ln()).abs() < 1e-12);

        // Exactly 1% of 10,000 is a mode (summing 1/n shares would fall just short).
        let mut edge: Vec<f32> = (0..9_900).flat_map(|_| one_hot(0)).collect();
        edge.extend((0..100).flat_map(|_| one_hot(7)));
        assert_eq!(mode_coverage(&edge).modes, 2);
        edge.truncate((10_000 - 1) * CLASSES); // 99 of 9,999: below 1%
        assert_eq!(mode_coverage(&edge).modes, 1);

        let unsure = vec![0.1f32; 100 * CLASSES];
        assert!((classifier_score(&unsure) - 1.0).abs() < 1e-6);
        assert_eq!(mode_coverage(&unsure).confident_share, 0.0);
    }

    /// Codes that each draw one digit are pure; a code split between two digits counts its
    /// larger part, and a digit no code draws most is named.
    #[test]
    fn code_digits_read_each_codes_most_common_digit() {
        let one_hot = |k: usize| {
            let mut v = [0f32; CLASSES];
            v[k] = 1.0;
            v
        };
        // Code 0 draws sevens; code 1 draws three twos and one five.
        let digits = [7, 7, 2, 2, 2, 5];
        let codes = [0, 0, 1, 1, 1, 1];
        let probs: Vec<f32> = digits.iter().flat_map(|&d| one_hot(d)).collect();
        let c = code_digits(&probs, &codes, 2);
        assert_eq!(c.digit, [7, 2]);
        assert_eq!(c.share, [1.0, 0.75]);
        assert!((c.purity - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(c.unclaimed(), [0, 1, 3, 4, 5, 6, 8, 9]);
        // A tie goes to the smaller digit; a code with no images has share 0.
        let tie = code_digits(&[one_hot(4), one_hot(1)].concat(), &[0, 0], 2);
        assert_eq!((tie.digit, tie.share), (vec![1, 0], vec![0.5, 0.0]));
    }
}
