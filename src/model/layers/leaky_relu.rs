//! The leaky rectifier: `x` for `x >= 0`, `slope * x` below.

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass, ReferenceLayer,
    RowCoupling, Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::{map_in_place, zip_map};
use crate::model::{Matrix, Mode, TensorVisitor};

/// `{type = "leaky_relu", slope = 0.2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyReluSpec {
    /// Slope for negative inputs (the paper config uses 0.2).
    pub slope: f64,
}

impl LayerKind for LeakyReluSpec {
    type Layer = LeakyRelu;

    fn check(&self) -> Result<(), (&'static str, String)> {
        match self.slope.is_finite() {
            true => Ok(()),
            false => Err(("slope", format!("must be finite, got {}", self.slope))),
        }
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        Ok(input)
    }

    fn sizes(&self, _: FeatureShape, _: FeatureShape) -> (f64, f64) {
        (0.0, 0.0)
    }

    fn build(&self, _: FeatureShape, _: &InitConfig, _: &Cpu, _: &mut ChaCha8Rng) -> LeakyRelu {
        LeakyRelu {
            slope: self.slope as f32,
        }
    }
}

/// A leaky rectifier (no tensors).
#[derive(Debug, Clone)]
pub struct LeakyRelu {
    /// Slope for negative inputs.
    pub slope: f32,
}

impl ReferenceLayer for LeakyRelu {
    type Fast = LeakyRelu;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        dfdx::tensor_ops::leakyrelu(x, self.slope)
    }

    fn visit<V: TensorVisitor>(&mut self, _: &mut V) {}

    fn output_width(&self, input: usize) -> usize {
        input
    }

    fn macs_per_row(&self) -> f64 {
        0.0
    }

    fn fast(&self) -> LeakyRelu {
        self.clone()
    }

    fn start_step(&mut self) {}
}

impl FastLayer for LeakyRelu {
    fn forward(
        &mut self,
        _: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let slope = self.slope;
        if slope > 0.0 {
            // A positive slope keeps the sign, so the output tells the gradient.
            map_in_place(x, |v| {
                if *v <= 0.0 {
                    *v *= slope
                }
            });
            pass.kept_output(x)
        } else {
            let mut y = pass.pool.take(x.len());
            zip_map(&mut y, x, |y, v| *y = if v > 0.0 { v } else { v * slope });
            Saved::Input(std::mem::replace(x, y))
        }
    }

    fn backward(
        &mut self,
        _: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        let slope = self.slope;
        // The output (positive slopes) or the input (the others): negative exactly where the
        // input is. dfdx's gradient at exactly 0 is 1.
        if let (true, Saved::Output(kept) | Saved::Input(kept)) = (pass.propagate, saved) {
            zip_map(g, &kept, |d, v| {
                if v < 0.0 {
                    *d *= slope
                }
            });
            pass.pool.give(kept);
        }
        None
    }

    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::None
    }

    fn keeps_its_input(&self) -> bool {
        false
    }

    fn start_step(&mut self, _: &mut [Vec<f32>]) {}

    /// Piecewise linear: the derivative at the input, as the backward pass takes it (1 at 0).
    fn penalty_pass(&self, _: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        let PenaltyPass { input, adjoint, .. } = pass;
        let slope = self.slope;
        zip_map(adjoint, input, |d, v| {
            if v < 0.0 {
                *d *= slope
            }
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;

    #[test]
    fn gradients_match_the_tape_for_every_sign_of_slope() {
        for slope in ["0.2", "0.0", "-0.1"] {
            fast_matches_tape(
                &format!(r#"{{type = "leaky_relu", slope = {slope}}}"#),
                true,
            );
        }
    }
}
