//! Mode seeking (Mao et al. 2019, MSGAN): a term in G's loss that rewards drawing different
//! images from different noise. G's batch is taken as pairs, row `i` with row `i + rows / 2`
//! (given the same label in a class-conditional run), and G's loss gains
//! `weight / (mean |G(z1) - G(z2)| / mean |z1 - z2| + 1e-5)`, as the paper's code writes it.
//! Why: a conditional G, knowing the digit, tends to draw few kinds of each (the conditional
//! MLP's recall stays near 0.8 while its precision passes the real digits'); this is the
//! standard remedy.
//!
//! The term reads G's output only, so its gradient is added to the image gradient that D hands
//! back to G: the fast path's ([`ModeSeeking::of_images`]) and the tape's
//! ([`ModeSeeking::on_tape`]) are the same function, tested against each other and against
//! central differences.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::Matrix;

/// Reads `[mode_seeking]`, whose `weight = 0` is read as no table at all (the same config,
/// fingerprint and bits as a config without it), so that a sweep's grid can switch it off.
pub(crate) fn mode_seeking_or_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ModeSeeking>, D::Error> {
    let term = ModeSeeking::deserialize(d)?;
    Ok((term.weight != 0.0).then_some(term))
}

/// MSGAN's constant under the ratio.
const EPS: f32 = 1e-5;

/// `[mode_seeking]`: a diversity term in G's loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeSeeking {
    /// The term's weight (lambda; 1 in the paper).
    pub weight: f64,
}

impl ModeSeeking {
    /// The term's value for G's `images` (`rows` rows, paired first half with second) drawn
    /// from `noise` (`rows` rows of noise only, no label), and its gradient with respect to
    /// the images.
    pub fn of_images(&self, images: &[f32], noise: &[f32], rows: usize) -> (f32, Vec<f32>) {
        let (image_diff, image_n) = mean_abs_pair_difference(images, rows);
        let (noise_diff, _) = mean_abs_pair_difference(noise, rows);
        let ratio = image_diff / noise_diff;
        let weight = self.weight as f32;
        let value = weight / (ratio + EPS);
        // d value / d ratio, then d ratio / d image: +-1 / (n * noise_diff) by the sign of
        // the pair's difference.
        let scale = -weight / ((ratio + EPS) * (ratio + EPS)) / (image_n as f32 * noise_diff);
        let half = images.len() / 2;
        let mut grad = vec![0.0; images.len()];
        let (first, second) = grad.split_at_mut(half);
        for (i, (a, b)) in first.iter_mut().zip(second.iter_mut()).enumerate() {
            let sign = sign(images[half + i] - images[i]);
            *b = scale * sign;
            *a = -scale * sign;
        }
        (value, grad)
    }

    /// The same term on dfdx's tape, from `images` (`[rows, width]`, on any tape).
    pub fn on_tape<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        images: Matrix<T>,
        noise: &[f32],
        rows: usize,
    ) -> Tensor<(), f32, Cpu, T> {
        let dev = images.device().clone();
        let (noise_diff, _) = mean_abs_pair_difference(noise, rows);
        let half = rows / 2;
        // `images^T P` with P's column i picking row i + half minus row i: the pairs'
        // differences, transposed (the taped operand must come first).
        let mut pick = vec![0.0; rows * half];
        for i in 0..half {
            pick[i * half + i] = -1.0;
            pick[(i + half) * half + i] = 1.0;
        }
        let pick = dev.tensor_from_vec(pick, (rows, half));
        let differences = images.permute::<_, Axes2<1, 0>>().matmul(pick);
        let ratio = differences.abs().mean() / noise_diff;
        (ratio + EPS).recip() * self.weight as f32
    }
}

/// The mean over every number of `|x[i + rows/2] - x[i]|`, `x` holding `rows` rows, and how
/// many numbers that is.
fn mean_abs_pair_difference(x: &[f32], rows: usize) -> (f32, usize) {
    let half = (rows / 2) * (x.len() / rows.max(1));
    let (first, second) = x.split_at(half);
    let sum: f64 = first
        .iter()
        .zip(&second[..half])
        .map(|(a, b)| (b - a).abs() as f64)
        .sum();
    ((sum / half.max(1) as f64) as f32, half)
}

/// `x`'s sign, 0 at 0 (the subgradient dfdx's `abs` takes).
fn sign(x: f32) -> f32 {
    match x {
        x if x > 0.0 => 1.0,
        x if x < 0.0 => -1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `weight = 0` is a config without the table, to the fingerprint.
    #[test]
    fn weight_zero_reads_as_no_term() {
        let text = std::fs::read_to_string("configs/smoke.toml").unwrap();
        let read = |table: &str| {
            let path = std::path::Path::new("exp.toml");
            crate::config::from_str(&format!("{text}\n{table}"), path, &[]).unwrap()
        };
        let off = read("[mode_seeking]\nweight = 0.0\n");
        assert_eq!(off.mode_seeking, None);
        assert_eq!(off.to_toml(), read("").to_toml());
        let on = read("[mode_seeking]\nweight = 0.5\n");
        assert_eq!(on.mode_seeking, Some(ModeSeeking { weight: 0.5 }));
    }

    /// Four images of five numbers, from noise of three, with no pair equal anywhere.
    fn batch() -> (Vec<f32>, Vec<f32>) {
        let images = (0..20).map(|i| ((i * 7 % 13) as f32) / 13.0).collect();
        let noise = (0..12).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
        (images, noise)
    }

    /// The gradient against central differences of the value, computed in f64.
    #[test]
    fn the_gradient_matches_finite_differences() {
        let (images, noise) = batch();
        let term = ModeSeeking { weight: 2.0 };
        let value64 = |x: &[f64]| {
            let half = x.len() / 2;
            let diff = (0..half).map(|i| (x[half + i] - x[i]).abs()).sum::<f64>() / half as f64;
            let (z, _) = mean_abs_pair_difference(&noise, 4);
            2.0 / (diff / z as f64 + 1e-5)
        };
        let x: Vec<f64> = images.iter().map(|&v| v as f64).collect();
        let (value, grad) = term.of_images(&images, &noise, 4);
        assert!((value as f64 - value64(&x)).abs() < 1e-4 * value64(&x));
        for i in 0..x.len() {
            let at = |d: f64| {
                let mut y = x.clone();
                y[i] += d;
                value64(&y)
            };
            let numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!(
                (grad[i] as f64 - numeric).abs() < 1e-3 * (1.0 + numeric.abs()),
                "{i}: {} vs {numeric}",
                grad[i]
            );
        }
        // Pulling a pair apart lowers the term: G is rewarded for differing.
        let mut apart = images.clone();
        apart[10] += 0.5;
        assert!(term.of_images(&apart, &noise, 4).0 < value);
    }

    /// The tape's value and gradient are the fast path's.
    #[test]
    fn the_tape_computes_what_the_fast_path_does() {
        let (images, noise) = batch();
        let term = ModeSeeking { weight: 1.5 };
        let dev = Cpu::default();
        let x: Matrix = dev.tensor_from_vec(images.clone(), (4, 5));
        let value = term.on_tape(x.clone().leaky_traced(), &noise, 4);
        let tape_value = value.array();
        let grads = value.backward();
        let tape_grad = grads.get(&x).as_vec();
        let (fast_value, fast_grad) = term.of_images(&images, &noise, 4);
        assert!((tape_value - fast_value).abs() < 1e-5 * fast_value.abs());
        for (a, b) in tape_grad.iter().zip(&fast_grad) {
            assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
