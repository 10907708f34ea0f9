//! Layer normalisation: each row (one sample) normalised over its own features, then a learned
//! scale and offset per feature. No batch statistics, so the same in training and generation,
//! and each image independent of its batch.

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batch_norm::{check_eps, default_eps, scale_offset_grads};
use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, ReferenceLayer, RowCoupling,
    Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::for_rows;
use crate::model::{Matrix, Mode, TensorVisitor, Vector};

/// `{type = "layer_norm"}`, optionally with `eps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNormSpec {
    /// Added to the variance before the square root.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

impl LayerKind for LayerNormSpec {
    type Layer = LayerNorm;

    fn check(&self) -> Result<(), (&'static str, String)> {
        check_eps(self.eps)
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        Ok(input)
    }

    fn sizes(&self, _: FeatureShape, output: FeatureShape) -> (f64, f64) {
        (2.0 * output.len() as f64, 0.0)
    }

    fn build(
        &self,
        input: FeatureShape,
        _: &InitConfig,
        dev: &Cpu,
        _: &mut ChaCha8Rng,
    ) -> LayerNorm {
        let width = input.len();
        LayerNorm {
            scale: dev.ones_like(&(width,)),
            offset: dev.zeros_like(&(width,)),
            eps: self.eps as f32,
        }
    }
}

/// A layer-norm layer's tensors and variance guard.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[width]`, starts at 1.
    pub scale: Vector,
    /// `[width]`, starts at 0.
    pub offset: Vector,
    /// Variance guard.
    pub eps: f32,
}

impl ReferenceLayer for LayerNorm {
    type Fast = FastLayerNorm;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        let shape = *x.shape();
        // dfdx's normalize: (x - mean) / sqrt(mean((x - mean)^2) + eps) per row.
        x.normalize::<Axis<1>>(self.eps) * self.scale.clone().broadcast_like::<_, Axis<0>>(&shape)
            + self.offset.clone().broadcast_like::<_, Axis<0>>(&shape)
    }

    fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
        v.visit("scale", &mut self.scale, true);
        v.visit("offset", &mut self.offset, true);
    }

    fn output_width(&self, input: usize) -> usize {
        input
    }

    fn macs_per_row(&self) -> f64 {
        0.0
    }

    fn fast(&self) -> FastLayerNorm {
        FastLayerNorm { eps: self.eps }
    }

    fn start_step(&mut self) {}
}

/// Layer-norm's variance guard on the fast path; its tensors are `[scale, offset]`.
#[derive(Debug, Clone)]
pub struct FastLayerNorm {
    eps: f32,
}

impl FastLayer for FastLayerNorm {
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let [scale, offset] = tensors else {
            unreachable!("layer-norm visits two tensors")
        };
        let cols = scale.len();
        let keep = pass.keep;
        let mut inv_std = vec![0.0; pass.rows];
        let mut normalised = if keep { vec![0.0; x.len()] } else { Vec::new() };
        // As dfdx's normalize: centre, mean square, then divide by the std.
        for (r, row) in x.chunks_mut(cols).enumerate() {
            let mean = row.iter().sum::<f32>() / cols as f32;
            row.iter_mut().for_each(|v| *v -= mean);
            let var = row.iter().map(|v| v * v).sum::<f32>() / cols as f32;
            let std = (var + self.eps).sqrt();
            inv_std[r] = 1.0 / std;
            row.iter_mut().for_each(|v| *v /= std);
            if keep {
                normalised[r * cols..(r + 1) * cols].copy_from_slice(row);
            }
            for ((v, s), o) in row.iter_mut().zip(&*scale).zip(&*offset) {
                *v = *v * s + o;
            }
        }
        Saved::Normalised {
            normalised,
            inv_std,
        }
    }

    fn backward(
        &mut self,
        tensors: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        let Saved::Normalised {
            normalised,
            inv_std,
        } = saved
        else {
            unreachable!("layer-norm keeps its normalised input")
        };
        let [scale, offset] = tensors else {
            unreachable!("layer-norm visits two tensors")
        };
        let cols = scale.len();
        // The parameter gradients from the incoming gradient, handed over only after the input
        // gradient is computed from the scale before its update.
        let param_grads = pass
            .param_grads
            .then(|| scale_offset_grads(g, &normalised, cols, pass.pool));
        if pass.propagate {
            let n = cols as f32;
            let (nz, s, is) = (&normalised, &*scale, &inv_std);
            for_rows(g, cols, |r, row| {
                let xr = &nz[r * cols..(r + 1) * cols];
                // d(normalised) = g * scale; then through the row's normalisation.
                row.iter_mut().zip(s).for_each(|(d, s)| *d *= s);
                let mean_d = row.iter().sum::<f32>() / n;
                let mean_dx = row.iter().zip(xr).map(|(d, x)| d * x).sum::<f32>() / n;
                for (d, x) in row.iter_mut().zip(xr) {
                    *d = is[r] * (*d - mean_d - x * mean_dx);
                }
            });
        }
        if let Some((d_scale, d_offset)) = param_grads {
            pass.hand_over(0, scale, &d_scale);
            pass.hand_over(1, offset, &d_offset);
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;

    /// Between two linear layers: the plain backward pass gives the tape's gradients for the
    /// input and every parameter, the scale and offset included.
    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "layer_norm"}"#, true);
        fast_matches_tape(r#"{type = "layer_norm", eps = 1e-3}"#, false);
    }
}
