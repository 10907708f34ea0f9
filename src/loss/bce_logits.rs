//! Binary cross-entropy from D's logits: D tells real (1) from generated (0); G's term asks D
//! to call its images real (the paper's non-saturating form).

use dfdx::prelude::*;

use super::{Objective, Term, TermValue};
use crate::model::Matrix;

/// `loss = "bce_logits"`.
#[derive(Debug, Clone, Copy)]
pub struct BceLogits;

/// The target a term asks D's output to match: 1 (or the smoothed target) for real, 0 for
/// generated, 1 for G's term.
pub(super) fn label(term: Term) -> f32 {
    match term {
        Term::Real { target } => target,
        Term::Generator => 1.0,
        Term::Fake => 0.0,
    }
}

/// dfdx's stable with-logits cross-entropy of one logit against `label`.
pub(super) fn with_logits(x: f32, label: f32) -> f32 {
    x.max(0.0) - x * label + (1.0 + (-x.abs()).exp()).ln()
}

pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Objective for BceLogits {
    const NAME: &'static str = "bce_logits";

    fn takes_raw_scores(&self) -> bool {
        true
    }

    fn has_targets(&self) -> bool {
        true
    }

    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        outputs: Matrix<T>,
        term: Term,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        let targets = outputs.device().ones_like(outputs.shape()) * label(term);
        binary_cross_entropy_with_logits_loss(outputs, targets)
    }

    fn fast(&self, outputs: &[f32], term: Term) -> TermValue {
        let (n, label) = (outputs.len() as f32, label(term));
        let mut loss = 0.0;
        let grad = outputs
            .iter()
            .map(|&x| {
                loss += with_logits(x, label);
                (sigmoid(x) - label) / n
            })
            .collect();
        TermValue {
            loss: loss / n,
            grad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::fast_matches_tape, LossKind};
    use super::*;

    #[test]
    fn matches_direct_formula_and_is_stable() {
        let dev = Cpu::default();
        let logits: Matrix = dev.tensor_from_vec(vec![2.0, -1.0, 0.0], (3, 1));
        let l1 = BceLogits.reference(logits, Term::REAL).array();
        let direct = [2.0f32, -1.0, 0.0]
            .iter()
            .map(|&x| -(1.0 / (1.0 + (-x).exp())).ln())
            .sum::<f32>()
            / 3.0;
        assert!((l1 - direct).abs() < 1e-6, "{l1} vs {direct}");
        // Large logits stay finite.
        let big: Matrix = dev.tensor_from_vec(vec![-200.0], (1, 1));
        let l = BceLogits.reference(big, Term::REAL).array();
        assert!((l - 200.0).abs() < 1e-3, "{l}");
        assert!((BceLogits.fast(&[-200.0], Term::REAL).loss - 200.0).abs() < 1e-3);
    }

    #[test]
    fn fast_matches_the_tape() {
        fast_matches_tape(LossKind::BceLogits);
    }
}
