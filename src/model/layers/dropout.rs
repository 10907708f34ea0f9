//! Inverted dropout, active only in the network's own update, with masks from an RNG that
//! gan-run owns (dfdx's dropout RNG is private), so that a run resumes exactly.

use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass, ReferenceLayer,
    RowCoupling, Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::zip_map;
use crate::model::{Matrix, Mode, TensorVisitor};

/// `{type = "dropout", rate = 0.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutSpec {
    /// Share of units zeroed, in [0, 1).
    pub rate: f64,
}

impl LayerKind for DropoutSpec {
    type Layer = Dropout;

    fn check(&self) -> Result<(), (&'static str, String)> {
        match (0.0..1.0).contains(&self.rate) {
            true => Ok(()),
            false => Err((
                "rate",
                format!(
                    "dropout rate must be in [0, 1) (the share of units dropped), got {}",
                    self.rate
                ),
            )),
        }
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        Ok(input)
    }

    fn sizes(&self, _: FeatureShape, _: FeatureShape) -> (f64, f64) {
        (0.0, 0.0)
    }

    fn build(&self, _: FeatureShape, _: &InitConfig, _: &Cpu, _: &mut ChaCha8Rng) -> Dropout {
        Dropout {
            rate: self.rate as f32,
        }
    }
}

/// A dropout layer (no tensors).
#[derive(Debug, Clone)]
pub struct Dropout {
    /// Share of units zeroed.
    pub rate: f32,
}

impl ReferenceLayer for Dropout {
    type Fast = Dropout;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        mode: &mut Mode<'_>,
    ) -> Matrix<T> {
        match mode {
            Mode::Train { rng } if self.rate > 0.0 => {
                let shape = *x.shape();
                let mask = mask(shape.0 * shape.1, self.rate, rng);
                let mask = x.device().tensor_from_vec(mask, shape);
                x * mask
            }
            Mode::Train { .. } | Mode::Eval | Mode::BypassBatchNorm => x,
        }
    }

    fn visit<V: TensorVisitor>(&mut self, _: &mut V) {}

    fn output_width(&self, input: usize) -> usize {
        input
    }

    fn macs_per_row(&self) -> f64 {
        0.0
    }

    fn fast(&self) -> Dropout {
        self.clone()
    }

    fn start_step(&mut self) {}
}

impl FastLayer for Dropout {
    fn forward(
        &mut self,
        _: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        match &mut pass.train {
            Some(rng) if self.rate > 0.0 => {
                let mask = mask(x.len(), self.rate, rng);
                zip_map(x, &mask, |v, m| *v *= m);
                Saved::Mask(mask)
            }
            _ => Saved::Nothing,
        }
    }

    fn backward(
        &mut self,
        _: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        if let (true, Saved::Mask(mask)) = (pass.propagate, saved) {
            zip_map(g, &mask, |d, m| *d *= m);
            pass.pool.give(mask);
        }
        None
    }

    fn row_coupling(&self) -> RowCoupling {
        match self.rate > 0.0 {
            true => RowCoupling::RandomMask,
            false => RowCoupling::None,
        }
    }

    fn keeps_its_input(&self) -> bool {
        false
    }

    fn start_step(&mut self, _: &mut [Vec<f32>]) {}

    /// Outside its own update dropout is the identity.
    fn penalty_pass(&self, _: &[Vec<f32>], _: PenaltyPass<'_>) -> bool {
        true
    }
}

/// Inverted dropout's mask for `n` values, row-major: `1 / keep` or 0. Both training paths
/// draw their masks here, so that they take the same numbers from the RNG.
///
/// Each value is `rng.gen::<f32>() < keep`, as rand 0.8 draws it (one `u32` per value, its top
/// 24 bits scaled to [0, 1)); the words are drawn in one `fill`, the same words in the same
/// order as one `next_u32` each (drawing them one at a time was 1% of a paper step).
pub(crate) fn mask(n: usize, rate: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let keep = 1.0 - rate;
    let mut words = vec![0u32; n];
    rng.fill(&mut words[..]);
    let scale = 1.0 / (1u32 << 24) as f32;
    words
        .iter()
        .map(|&w| {
            if scale * ((w >> 8) as f32) < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fast_matches_image_tape, fast_matches_tape};
    use super::*;
    use rand::SeedableRng;

    /// The mask takes the RNG's numbers as `rng.gen::<f32>()` does, one value at a time, and
    /// leaves the RNG where that would.
    #[test]
    fn masks_draw_what_one_value_at_a_time_draws() {
        for (n, rate) in [(1, 0.5), (1000, 0.5), (102_400, 0.3), (7, 0.9)] {
            let mut fast = ChaCha8Rng::seed_from_u64(n as u64);
            let mut slow = fast.clone();
            let keep = 1.0 - rate;
            let expected: Vec<f32> = (0..n)
                .map(|_| {
                    if (slow.gen::<f32>()) < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_eq!(mask(n, rate, &mut fast), expected, "{n} values");
            assert_eq!(
                fast.gen::<u64>(),
                slow.gen::<u64>(),
                "the RNG after {n} values"
            );
        }
    }

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "dropout", rate = 0.5}"#, true);
        // On images as on flat features: the fast path's masks and gradients are the tape's.
        fast_matches_image_tape(r#"{type = "dropout", rate = 0.3}"#, true);
        fast_matches_image_tape(r#"{type = "dropout", rate = 0.3}"#, false);
    }
}
