//! D's head: how D's outputs and a batch's labels become the score each loss reads, and the
//! auxiliary classifier's own term. Unconditional runs, and runs whose D reads the label as an
//! input, have the plain head: D outputs one score per image, read as it is.
//!
//! The projection discriminator (Miyato & Koyama 2018) scores an image x with label y as
//! `psi(phi(x)) + embed(y) . phi(x)`. With D's last layer a linear map from phi(x) to
//! `1 + classes` outputs, that is output 0 plus output `1 + y`: row 0 of the last weights is
//! psi, row `1 + y` the embedding of y (and the layer's bias adds a learned constant per
//! class). The auxiliary classifier (ACGAN, Odena et al. 2017) reads output 0 as the score and
//! the rest as class logits, whose cross-entropy with the label, times `classifier_weight`,
//! joins D's loss on real and on generated images (both, as Odena et al. and TF-GAN do) and
//! G's loss on its images. Where the labels are G's latent code rather than digits (InfoGAN,
//! Chen et al. 2016: `conditioning.discriminator = "latent_code"`), real images have no label,
//! so the class term joins D's loss on generated images and G's loss only: together they
//! maximise a lower bound on the mutual information between the code and G's images, which
//! makes G draw a different kind of image for each code without ever reading a digit's label.
//!
//! Why a head and not a layer: the label meets D after its last layer as a fixed function of
//! the label, so every layer kind, both paths and the checkpoints stay as they are.

use std::borrow::Cow;

use dfdx::prelude::*;

use super::{LossKind, Term, TermValue};
use crate::model::Matrix;

/// How D's outputs are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    /// One output per image: the score.
    Score,
    /// `1 + classes` outputs; the score is output 0 plus output `1 + label`.
    Projection {
        /// The classes.
        classes: usize,
    },
    /// `1 + classes` outputs: the score, then class logits.
    AuxiliaryClassifier {
        /// The classes.
        classes: usize,
        /// The cross-entropy's weight in each loss.
        weight: f32,
        /// Whether the class term joins D's loss on real images: the data's labels (ACGAN),
        /// or not, where the labels are G's latent code and real images have none (InfoGAN).
        on_real: bool,
    },
}

impl Head {
    /// D's outputs per image.
    pub fn width(self) -> usize {
        match self {
            Head::Score => 1,
            Head::Projection { classes } | Head::AuxiliaryClassifier { classes, .. } => 1 + classes,
        }
    }

    /// Per row of `outputs`, d score / d output: the score's place(s) in the row.
    fn score_weights(self, labels: &[u8]) -> Vec<f32> {
        let width = self.width();
        let mut weights = vec![0.0; labels.len() * width];
        for (row, &label) in weights.chunks_exact_mut(width).zip(labels) {
            row[0] = 1.0;
            if let Head::Projection { .. } = self {
                row[1 + label as usize] = 1.0;
            }
        }
        weights
    }

    /// Each image's score from D's outputs (`labels`: one per image; unread by the plain
    /// head, which borrows `outputs`).
    pub fn scores<'a>(self, outputs: &'a [f32], labels: &[u8]) -> Cow<'a, [f32]> {
        let width = self.width();
        match self {
            Head::Score => Cow::Borrowed(outputs),
            _ => Cow::Owned(weighted_rows(outputs, &self.score_weights(labels), width)),
        }
    }

    /// The gradient with respect to D's outputs of the sum of the scores: what D's
    /// input-gradient norm differentiates. `None` for the plain head (all ones).
    pub fn score_gradient(self, labels: &[u8]) -> Option<Vec<f32>> {
        match self {
            Head::Score => None,
            _ => Some(self.score_weights(labels)),
        }
    }

    /// The weight of the auxiliary classifier's cross-entropy in `term`, where it has one.
    fn class_weight(self, term: Term) -> Option<f32> {
        match (self, term) {
            (Head::AuxiliaryClassifier { on_real: false, .. }, Term::Real { .. }) => None,
            (Head::AuxiliaryClassifier { weight, .. }, _) => Some(weight),
            _ => None,
        }
    }

    /// `term` of `loss` on D's `outputs` for images with `labels`, and its gradient with
    /// respect to the outputs, as [`Head::reference`] computes them.
    pub fn fast(self, loss: LossKind, outputs: &[f32], labels: &[u8], term: Term) -> TermValue {
        if self == Head::Score {
            return loss.fast(outputs, term);
        }
        let width = self.width();
        let mut grad = self.score_weights(labels);
        let adversarial = loss.fast(&weighted_rows(outputs, &grad, width), term);
        for (row, g) in grad.chunks_exact_mut(width).zip(&adversarial.grad) {
            row.iter_mut().for_each(|w| *w *= g);
        }
        let mut value = adversarial.loss;
        if let Some(weight) = self.class_weight(term) {
            let n = labels.len() as f32;
            let mut total = 0.0;
            for ((row, out), &label) in grad
                .chunks_exact_mut(width)
                .zip(outputs.chunks_exact(width))
                .zip(labels)
            {
                let logits = &out[1..];
                let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
                let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
                let log_sum = max + sum.ln();
                total += log_sum - logits[label as usize];
                // d cross-entropy / d logit: softmax minus the one-hot, per row of the mean.
                for (k, (g, &l)) in row[1..].iter_mut().zip(logits).enumerate() {
                    let target = if k == label as usize { 1.0 } else { 0.0 };
                    *g = weight * ((l - log_sum).exp() - target) / n;
                }
            }
            value += weight * total / n;
        }
        TermValue { loss: value, grad }
    }

    /// `term` of `loss` on dfdx's tape, from D's `[batch, width]` outputs.
    pub fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        self,
        loss: LossKind,
        outputs: Matrix<T>,
        labels: &[u8],
        term: Term,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        if self == Head::Score {
            return loss.reference(outputs, term);
        }
        let dev = outputs.device().clone();
        let (rows, width) = *outputs.shape();
        let weights = dev.tensor_from_vec(self.score_weights(labels), (rows, width));
        let ones = dev.tensor_from_vec(vec![1.0; width], (width, 1));
        match (self, self.class_weight(term)) {
            (Head::AuxiliaryClassifier { classes, .. }, Some(weight)) => {
                // The class logits: the outputs times the identity below a zero first row.
                let mut select = vec![0.0; width * classes];
                (0..classes).for_each(|k| select[(1 + k) * classes + k] = 1.0);
                let select = dev.tensor_from_vec(select, (width, classes));
                let mut targets = vec![0.0; rows * classes];
                for (i, &label) in labels.iter().enumerate() {
                    targets[i * classes + label as usize] = 1.0;
                }
                let targets = dev.tensor_from_vec(targets, (rows, classes));
                let logits = outputs.with_empty_tape().matmul(select);
                let adversarial = loss.reference((outputs * weights).matmul(ones), term);
                adversarial + cross_entropy_with_logits_loss(logits, targets) * weight
            }
            _ => loss.reference((outputs * weights).matmul(ones), term),
        }
    }
}

/// Per row of `width`, the sum of `outputs` times `weights`.
fn weighted_rows(outputs: &[f32], weights: &[f32], width: usize) -> Vec<f32> {
    outputs
        .chunks_exact(width)
        .zip(weights.chunks_exact(width))
        .map(|(row, w)| row.iter().zip(w).map(|(o, w)| o * w).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both heads' fast values and gradients match the tape's, for every loss and term, on
    /// outputs spanning both signs.
    #[test]
    fn heads_match_the_tape() {
        let dev = Cpu::default();
        let (rows, classes) = (6, 10);
        let labels: Vec<u8> = (0..rows).map(|i| (i * 7 % classes) as u8).collect();
        let outputs: Vec<f32> = (0..rows * (1 + classes))
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.4)
            .collect();
        for head in [
            Head::Projection { classes },
            Head::AuxiliaryClassifier {
                classes,
                weight: 0.7,
                on_real: true,
            },
            Head::AuxiliaryClassifier {
                classes,
                weight: 0.7,
                on_real: false,
            },
        ] {
            for &loss in LossKind::ALL {
                for term in [Term::real(0.1), Term::Fake, Term::Generator] {
                    let fast = head.fast(loss, &outputs, &labels, term);
                    let x = dev.tensor_from_vec(outputs.clone(), (rows, 1 + classes));
                    let tape = head.reference(loss, x.clone().leaky_traced(), &labels, term);
                    let value = tape.array();
                    let grads = tape.backward();
                    let what = format!("{head:?} {loss:?} {term:?}");
                    assert!(
                        (fast.loss - value).abs() < 1e-5,
                        "{what}: {fast:?} vs {value}"
                    );
                    crate::model::kernels::assert_close(
                        &fast.grad,
                        &grads.get(&x).as_vec(),
                        1e-6,
                        &what,
                    );
                }
            }
        }
    }

    /// The projection's score is output 0 plus the label's output; the auxiliary
    /// classifier's cross-entropy falls as the label's logit rises, and is weighted.
    #[test]
    fn scores_and_the_class_term_read_the_label() {
        let outputs = [0.5, 1.0, -2.0, 3.0, 0.25, 0.0, 4.0, -1.0];
        let projection = Head::Projection { classes: 3 };
        assert_eq!(*projection.scores(&outputs, &[2, 1]), [3.5, 4.25]);
        assert_eq!(Head::Score.scores(&outputs, &[]).len(), 8);
        let term = |weight, logits: [f32; 3]| {
            let aux = Head::AuxiliaryClassifier {
                classes: 3,
                weight,
                on_real: true,
            };
            let row = [0.0, logits[0], logits[1], logits[2]];
            aux.fast(LossKind::LeastSquares, &row, &[1], Term::Generator)
                .loss
        };
        let plain = Head::Score
            .fast(LossKind::LeastSquares, &[0.0], &[], Term::Generator)
            .loss;
        let (confident, confused) = (term(1.0, [0.0, 5.0, 0.0]), term(1.0, [5.0, 0.0, 0.0]));
        assert!(confident < plain + 0.02 && confused > plain + 4.9);
        assert!((term(2.0, [5.0, 0.0, 0.0]) - plain - 2.0 * (confused - plain)).abs() < 1e-5);

        // A latent code's class term is in D's loss on generated images and G's, never on
        // real ones (which have no code): there the head reads the score alone.
        let code = Head::AuxiliaryClassifier {
            classes: 3,
            weight: 1.0,
            on_real: false,
        };
        let row = [0.5, 5.0, 0.0, 0.0];
        let loss = LossKind::LeastSquares;
        let real = code.fast(loss, &row, &[1], Term::REAL);
        let plain = Head::Score.fast(loss, &[0.5], &[], Term::REAL);
        assert_eq!(real.loss, plain.loss);
        assert_eq!(real.grad, [plain.grad[0], 0.0, 0.0, 0.0]);
        for term in [Term::Fake, Term::Generator] {
            let with_class = code.fast(loss, &row, &[1], term).loss;
            assert!(with_class > Head::Score.fast(loss, &[0.5], &[], term).loss + 4.9);
        }
    }

    /// What a gradient penalty differentiates (the layout `model::penalty_check` spells out):
    /// the projection's score reads output 0 and the label's, the auxiliary classifier's
    /// output 0 alone, the plain head every output.
    #[test]
    fn the_score_gradient_marks_the_outputs_the_score_reads() {
        let labels = [0, 1, 2];
        let projection = Head::Projection { classes: 3 }.score_gradient(&labels);
        let expected = [1., 1., 0., 0., 1., 0., 1., 0., 1., 0., 0., 1.];
        assert_eq!(projection.as_deref(), Some(&expected[..]));
        let aux = Head::AuxiliaryClassifier {
            classes: 3,
            weight: 1.0,
            on_real: true,
        };
        let expected = [1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 0., 0.];
        assert_eq!(aux.score_gradient(&labels).as_deref(), Some(&expected[..]));
        assert_eq!(Head::Score.score_gradient(&labels), None);
    }
}
