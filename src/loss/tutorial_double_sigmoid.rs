//! The TensorFlow tutorial's bug: D already ends in a sigmoid, and its output goes to a
//! with-logits cross-entropy, so the sigmoid is applied twice. Its gradients shrink by the
//! sigmoid's slope, which flattens the loss curves. Kept to reproduce the tutorial.

use dfdx::prelude::*;

use super::bce_logits::{label, sigmoid, with_logits};
use super::{Objective, Term, TermValue};
use crate::model::Matrix;

/// `loss = "tutorial_double_sigmoid"`.
#[derive(Debug, Clone, Copy)]
pub struct TutorialDoubleSigmoid;

impl Objective for TutorialDoubleSigmoid {
    const NAME: &'static str = "tutorial_double_sigmoid";

    fn takes_raw_scores(&self) -> bool {
        false
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
        binary_cross_entropy_with_logits_loss(outputs.sigmoid(), targets)
    }

    fn fast(&self, outputs: &[f32], term: Term) -> TermValue {
        let (n, label) = (outputs.len() as f32, label(term));
        let mut loss = 0.0;
        let grad = outputs
            .iter()
            .map(|&x| {
                let p = sigmoid(x);
                loss += with_logits(p, label);
                (sigmoid(p) - label) * p * (1.0 - p) / n
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

    /// At output 0 it is BCE(sigmoid(0.5)) rather than ln 2.
    #[test]
    fn applies_the_sigmoid_twice() {
        let dev = Cpu::default();
        let zero: Matrix = dev.tensor_from_vec(vec![0.0], (1, 1));
        let d = TutorialDoubleSigmoid.reference(zero, Term::REAL).array();
        let expect = -(1.0f32 / (1.0 + (-0.5f32).exp())).ln();
        assert!((d - expect).abs() < 1e-6, "{d} vs {expect}");
    }

    #[test]
    fn fast_matches_the_tape() {
        fast_matches_tape(LossKind::TutorialDoubleSigmoid);
    }
}
