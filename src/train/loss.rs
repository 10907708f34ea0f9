//! The GAN losses: binary cross-entropy from discriminator logits, or the tutorial's
//! double-sigmoid variant.

use dfdx::prelude::*;

use crate::config::LossKind;
use crate::model::Matrix;

/// Mean binary cross-entropy of `[batch, 1]` logits against a constant label (1 real, 0 fake).
///
/// `BceLogits` is dfdx's numerically stable with-logits form. `TutorialDoubleSigmoid` feeds
/// `sigmoid(logits)` to the same with-logits loss, as the TensorFlow tutorial did by mistake:
/// its gradients shrink by the sigmoid's slope, which flattens the loss curves.
pub fn gan_bce<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    logits: Matrix<T>,
    label: f32,
    kind: LossKind,
) -> Tensor<Rank0, f32, Cpu, T> {
    let targets = logits.device().ones_like(logits.shape()) * label;
    let input = match kind {
        LossKind::BceLogits => logits,
        LossKind::TutorialDoubleSigmoid => logits.sigmoid(),
    };
    binary_cross_entropy_with_logits_loss(input, targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_formula_and_is_stable() {
        let dev = Cpu::default();
        let logits: Matrix = dev.tensor_from_vec(vec![2.0, -1.0, 0.0], (3, 1));
        let l1 = gan_bce(logits.clone(), 1.0, LossKind::BceLogits).array();
        let direct = [2.0f32, -1.0, 0.0]
            .iter()
            .map(|&x| -(1.0 / (1.0 + (-x).exp())).ln())
            .sum::<f32>()
            / 3.0;
        assert!((l1 - direct).abs() < 1e-6, "{l1} vs {direct}");
        // Large logits stay finite.
        let big: Matrix = dev.tensor_from_vec(vec![-200.0], (1, 1));
        let l = gan_bce(big, 1.0, LossKind::BceLogits).array();
        assert!((l - 200.0).abs() < 1e-3, "{l}");
        // The double sigmoid squeezes the loss into [ln 2 - ..., ...]: at logit 0 it is
        // BCE(sigmoid(0.5)) rather than ln 2.
        let zero: Matrix = dev.tensor_from_vec(vec![0.0], (1, 1));
        let d = gan_bce(zero, 1.0, LossKind::TutorialDoubleSigmoid).array();
        let expect = -(1.0f32 / (1.0 + (-0.5f32).exp())).ln();
        assert!((d - expect).abs() < 1e-6, "{d} vs {expect}");
    }
}
