//! The least-squares loss (Mao et al. 2017, the 0-1-1 coding): D regresses its raw output to 1
//! on real images and 0 on generated ones, G pushes D's output on its images to 1. Its
//! gradients do not vanish for images D rejects confidently, as cross-entropy's do.

use dfdx::prelude::*;

use super::bce_logits::label;
use super::{Objective, Term, TermValue};
use crate::model::Matrix;

/// `loss = "least_squares"`.
#[derive(Debug, Clone, Copy)]
pub struct LeastSquares;

impl Objective for LeastSquares {
    const NAME: &'static str = "least_squares";

    fn takes_raw_scores(&self) -> bool {
        true
    }

    fn has_targets(&self) -> bool {
        true
    }

    /// `0.5 * mean((x - target)^2)`, target 1 for D on real and G, 0 for D on generated.
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        outputs: Matrix<T>,
        term: Term,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        ((outputs - label(term)).square().mean::<Rank0, _>()) * 0.5
    }

    fn fast(&self, outputs: &[f32], term: Term) -> TermValue {
        let (n, target) = (outputs.len() as f32, label(term));
        let mut loss = 0.0;
        let grad = outputs
            .iter()
            .map(|&x| {
                let d = x - target;
                loss += d * d;
                d / n
            })
            .collect();
        TermValue {
            loss: 0.5 * loss / n,
            grad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::fast_matches_tape, LossKind};
    use super::*;

    #[test]
    fn terms_are_half_mean_squares() {
        let x = [1.0, 3.0];
        assert!((LeastSquares.fast(&x, Term::REAL).loss - 1.0).abs() < 1e-6); // (0 + 4) / 4
        assert!((LeastSquares.fast(&x, Term::Fake).loss - 2.5).abs() < 1e-6); // (1 + 9) / 4
    }

    #[test]
    fn fast_matches_the_tape() {
        fast_matches_tape(LossKind::LeastSquares);
    }
}
