//! R1 (Mescheder et al. 2018): D's input gradient on real images pushed towards zero, so that
//! D is flat where the data is and the game converges locally.

use super::{half_mean_square, Penalty, PenaltyInput};

/// `kind = "r1"`.
#[derive(Debug, Clone, Copy)]
pub struct R1;

impl Penalty for R1 {
    const NAME: &'static str = "r1";

    fn input(&self) -> PenaltyInput {
        PenaltyInput::Real
    }

    fn of_input_gradient(&self, g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>) {
        half_mean_square(g, rows, weight)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::gradient_matches_finite_differences, PenaltyKind};
    use super::*;

    #[test]
    fn value_is_half_the_mean_squared_norm() {
        // Rows (3, 4) and (0, 0): norms 25 and 0, mean 12.5, weight 2: 12.5.
        let (value, grad) = R1.of_input_gradient(&[3.0, 4.0, 0.0, 0.0], 2, 2.0);
        assert!((value - 12.5).abs() < 1e-6, "{value}");
        assert_eq!(grad, vec![3.0, 4.0, 0.0, 0.0]);
        gradient_matches_finite_differences(PenaltyKind::R1);
    }
}
