//! The original minimax objective of Goodfellow et al. 2014: D as in binary cross-entropy, and
//! G minimising log(1 - D(G(z))), which saturates (its gradient vanishes) while D rejects G's
//! images confidently: the reason the paper proposed the non-saturating form.

use dfdx::prelude::*;

use super::bce_logits::{label, sigmoid, with_logits};
use super::{Objective, Term, TermValue};
use crate::model::Matrix;

/// `loss = "minimax"`.
#[derive(Debug, Clone, Copy)]
pub struct Minimax;

impl Objective for Minimax {
    const NAME: &'static str = "minimax";

    fn takes_raw_scores(&self) -> bool {
        true
    }

    fn has_targets(&self) -> bool {
        true
    }

    /// G's term is log(1 - sigmoid(x)) = -BCE(x, 0).
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        outputs: Matrix<T>,
        term: Term,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        let zeros = outputs.device().zeros_like(outputs.shape());
        match term {
            Term::Real { .. } | Term::Fake => {
                let targets = outputs.device().ones_like(outputs.shape()) * label(term);
                binary_cross_entropy_with_logits_loss(outputs, targets)
            }
            Term::Generator => binary_cross_entropy_with_logits_loss(outputs, zeros).negate(),
        }
    }

    fn fast(&self, outputs: &[f32], term: Term) -> TermValue {
        let n = outputs.len() as f32;
        // G's term flips the sign of D's loss on generated images.
        let (label, sign) = match term {
            Term::Generator => (0.0, -1.0),
            Term::Real { .. } | Term::Fake => (label(term), 1.0),
        };
        let mut loss = 0.0;
        let grad = outputs
            .iter()
            .map(|&x| {
                loss += with_logits(x, label);
                sign * (sigmoid(x) - label) / n
            })
            .collect();
        TermValue {
            loss: sign * loss / n,
            grad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::fast_matches_tape, LossKind};
    use super::*;

    /// G's term is log(1 - D(G(z))): at output 0, log(1/2).
    #[test]
    fn the_generator_term_is_log_one_minus_d() {
        let l = Minimax.fast(&[0.0, 3.0], Term::Generator).loss;
        let expect = ((0.5f32).ln() + (1.0 - sigmoid(3.0)).ln()) / 2.0;
        assert!((l - expect).abs() < 1e-6, "{l} vs {expect}");
    }

    #[test]
    fn fast_matches_the_tape() {
        fast_matches_tape(LossKind::Minimax);
    }
}
