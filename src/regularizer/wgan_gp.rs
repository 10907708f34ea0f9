//! WGAN-GP (Gulrajani et al. 2017): D's input gradient norm pulled to 1 on random points
//! between real and generated images, a soft form of the 1-Lipschitz constraint the
//! Wasserstein loss needs.

use super::{Penalty, PenaltyInput};

/// `kind = "wgan_gp"`.
#[derive(Debug, Clone, Copy)]
pub struct WganGp;

impl Penalty for WganGp {
    const NAME: &'static str = "wgan_gp";

    fn input(&self) -> PenaltyInput {
        PenaltyInput::Interpolates
    }

    /// `weight * mean over rows of (|g_row| - 1)^2`; a row's gradient is
    /// `2 weight / rows * (|g_row| - 1) * g_row / |g_row|` (0 for a zero row).
    fn of_input_gradient(&self, g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>) {
        let (n, width) = (rows as f32, g.len() / rows);
        let mut value = 0.0;
        let mut grad = vec![0.0; g.len()];
        for (row, out) in g.chunks(width).zip(grad.chunks_mut(width)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            value += (norm - 1.0) * (norm - 1.0);
            if norm > 0.0 {
                let scale = 2.0 * weight * (norm - 1.0) / (n * norm);
                out.iter_mut().zip(row).for_each(|(o, v)| *o = scale * v);
            }
        }
        (weight * value / n, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::gradient_matches_finite_differences, PenaltyKind};
    use super::*;

    #[test]
    fn unit_norms_cost_nothing() {
        let (value, grad) = WganGp.of_input_gradient(&[0.6, 0.8, 3.0, 4.0], 2, 10.0);
        // Norms 1 and 5: (0 + 16) / 2 * 10.
        assert!((value - 80.0).abs() < 1e-4, "{value}");
        assert_eq!(&grad[..2], &[0.0, 0.0]);
        gradient_matches_finite_differences(PenaltyKind::WganGp);
    }
}
