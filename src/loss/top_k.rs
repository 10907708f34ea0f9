//! Top-k training (Sinha et al. 2020, "Top-k Training of GANs: Improving GAN Performance by
//! Throwing Away Bad Samples"): G's loss counts only the k generated images of its batch that
//! D scores most real, k falling from the whole batch by a factor each epoch to a floor.
//! Why: late in training the images D rejects hardest are the ones between digits, and their
//! gradient pulls G back towards those blends; the k best tell G where the digits are. Not an
//! objective of its own: it picks the rows any loss's G term is taken over (with any head), so
//! it lives beside them. Both paths pick the rows from their own scores and take the term on
//! those rows only: the tape through a selection product, the fast path by gathering them and
//! scattering the gradient back (zero for the rows left out).

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Head, LossKind, Term, TermValue};
use crate::model::Matrix;

/// `[top_k]`: the share of G's batch its loss counts in epoch e (counted from the run's
/// start) is `max(decay^(e - 1), min_fraction)`, floored to whole images and at least one
/// (StudioGAN's `topk_gamma` and `topk_nu` schedule; the paper's 0.99 and 0.5 to 0.75). With
/// an auxiliary classifier the class term, too, is taken over the kept images only (StudioGAN
/// keeps it over the whole batch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopK {
    /// The factor on the share per epoch, in (0, 1].
    pub decay: f64,
    /// The share it never falls below, in (0, 1].
    pub min_fraction: f64,
}

impl TopK {
    /// How many of `batch` generated images G's loss counts in the 1-based `epoch`: at least 1.
    pub fn count(&self, batch: usize, epoch: usize) -> usize {
        let share = self
            .decay
            .powi(epoch.saturating_sub(1) as i32)
            .max(self.min_fraction);
        // The small margin keeps a share that is exact in decimal (0.5 of 100) from rounding
        // down a row.
        ((batch as f64 * share + 1e-9).floor() as usize).clamp(1, batch)
    }
}

/// The `keep` rows of `scores` D rates most real, in row order (ties to the earlier row), so
/// that both paths pick the same rows from the same scores. A score that is not a number
/// ranks first: a diverging D must reach G's loss, where training notices it, not be dropped.
pub fn best_rows(scores: &[f32], keep: usize) -> Vec<usize> {
    let rank = |s: f32| if s.is_nan() { f32::INFINITY } else { s };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| rank(scores[b]).total_cmp(&rank(scores[a])).then(a.cmp(&b)));
    let mut rows = order[..keep.min(scores.len())].to_vec();
    rows.sort_unstable();
    rows
}

/// G's term of `loss` through `head` over the `keep` best of D's `outputs` (rows of `width`):
/// its mean over those rows, and its gradient with respect to every output, zero on the rows
/// left out.
pub fn fast(head: Head, loss: LossKind, outputs: &[f32], labels: &[u8], keep: usize) -> TermValue {
    let width = head.width();
    let rows = best_rows(&head.scores(outputs, labels), keep);
    let picked: Vec<f32> = rows
        .iter()
        .flat_map(|&r| &outputs[r * width..(r + 1) * width])
        .copied()
        .collect();
    let term = head.fast(loss, &picked, &labels_of(labels, &rows), Term::Generator);
    let mut grad = vec![0.0; outputs.len()];
    for (&r, g) in rows.iter().zip(term.grad.chunks_exact(width)) {
        grad[r * width..(r + 1) * width].copy_from_slice(g);
    }
    TermValue {
        loss: term.loss,
        grad,
    }
}

/// The same term on dfdx's tape: the best rows picked by a product with a selection matrix.
pub fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    head: Head,
    loss: LossKind,
    outputs: Matrix<T>,
    labels: &[u8],
    keep: usize,
) -> Tensor<Rank0, f32, Cpu, T> {
    let dev = outputs.device().clone();
    let batch = outputs.shape().0;
    let rows = best_rows(&head.scores(&outputs.as_vec(), labels), keep);
    // outputs^T S, S's column j picking row rows[j] (the taped operand first), then back.
    let mut pick = vec![0.0; batch * rows.len()];
    for (j, &r) in rows.iter().enumerate() {
        pick[r * rows.len() + j] = 1.0;
    }
    let pick = dev.tensor_from_vec(pick, (batch, rows.len()));
    let picked = outputs
        .permute::<_, Axes2<1, 0>>()
        .matmul(pick)
        .permute::<_, Axes2<1, 0>>();
    head.reference(loss, picked, &labels_of(labels, &rows), Term::Generator)
}

/// The labels of the picked `rows`; none in an unconditional run.
fn labels_of(labels: &[u8], rows: &[usize]) -> Vec<u8> {
    match labels.is_empty() {
        true => Vec::new(),
        false => rows.iter().map(|&r| labels[r]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_falls_by_its_factor_each_epoch_to_its_floor() {
        let top_k = TopK {
            decay: 0.9,
            min_fraction: 0.5,
        };
        let counts: Vec<usize> = (1..=9).map(|e| top_k.count(100, e)).collect();
        assert_eq!(counts, [100, 90, 81, 72, 65, 59, 53, 50, 50]);
        assert_eq!(top_k.count(3, 50), 1);
        assert_eq!(top_k.count(1, 50), 1);
    }

    #[test]
    fn the_best_rows_are_the_highest_scores_in_row_order() {
        assert_eq!(best_rows(&[0.1, 3.0, -2.0, 3.0, 0.5], 3), [1, 3, 4]);
        assert_eq!(best_rows(&[1.0, 1.0, 1.0], 2), [0, 1]);
        assert_eq!(best_rows(&[1.0, -f32::NAN, 2.0], 1), [1]);
    }

    /// The fast term and gradient equal the tape's, for each head and a loss with targets and
    /// one without; the rows left out get no gradient, the kept ones the term over k rows.
    #[test]
    fn the_fast_term_matches_the_tape_and_leaves_the_worst_rows_out() {
        let dev: Cpu = Default::default();
        let labels: Vec<u8> = (0..8).map(|i| (i * 3 % 10) as u8).collect();
        let heads = [
            Head::Score,
            Head::Projection { classes: 10 },
            Head::AuxiliaryClassifier {
                classes: 10,
                weight: 0.5,
                on_real: true,
            },
        ];
        for head in heads {
            for loss in [LossKind::BceLogits, LossKind::Hinge] {
                let width = head.width();
                let outputs: Vec<f32> = (0..8 * width)
                    .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                    .collect();
                let labels = if head == Head::Score {
                    &[][..]
                } else {
                    &labels[..]
                };
                let fast = fast(head, loss, &outputs, labels, 5);
                let x = dev.tensor_from_vec(outputs.clone(), (8, width));
                let value = reference(head, loss, x.clone().leaky_traced(), labels, 5);
                let tape_loss = value.array();
                let grads = value.backward();
                let tape_grad = grads.get(&x).as_vec();
                assert!((fast.loss - tape_loss).abs() < 1e-5, "{head:?} {loss:?}");
                for (a, b) in fast.grad.iter().zip(&tape_grad) {
                    assert!((a - b).abs() < 1e-6, "{head:?} {loss:?}: {a} vs {b}");
                }
                let scores = head.scores(&outputs, labels);
                let kept = best_rows(&scores, 5);
                for (row, g) in fast.grad.chunks_exact(width).enumerate() {
                    let zero = g.iter().all(|&v| v == 0.0);
                    assert_eq!(zero, !kept.contains(&row), "{head:?} {loss:?} row {row}");
                }
                // The term over the kept rows alone, as if they were the batch.
                let picked: Vec<f32> = kept
                    .iter()
                    .flat_map(|&r| outputs[r * width..(r + 1) * width].to_vec())
                    .collect();
                let picked_labels: Vec<u8> = kept
                    .iter()
                    .filter_map(|&r| labels.get(r))
                    .copied()
                    .collect();
                let alone = head.fast(loss, &picked, &picked_labels, Term::Generator);
                assert_eq!(alone.loss, fast.loss);
            }
        }
    }
}
