//! R2: R1's penalty on generated images instead of real ones.

use super::{half_mean_square, Penalty, PenaltyInput};

/// `kind = "r2"`.
#[derive(Debug, Clone, Copy)]
pub struct R2;

impl Penalty for R2 {
    const NAME: &'static str = "r2";

    fn input(&self) -> PenaltyInput {
        PenaltyInput::Generated
    }

    fn of_input_gradient(&self, g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>) {
        half_mean_square(g, rows, weight)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::gradient_matches_finite_differences, PenaltyKind};

    #[test]
    fn gradient_matches_finite_differences_of_its_value() {
        gradient_matches_finite_differences(PenaltyKind::R2);
    }
}
