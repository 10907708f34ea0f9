//! Layer normalisation: each row (one sample) normalised over its own features, then a learned
//! scale and offset per feature. No batch statistics, so the same in training and generation,
//! and each image independent of its batch.
//!
//! With `over_channels = true`, on an image: at each position, the channels normalised over
//! each other, with one scale and offset per channel (ConvNeXt's `LayerNorm2d`, PyTorch's
//! `LayerNorm(C)` on channels-last images). Both paths regroup the batch as `B * H * W` rows of
//! channels, as batch-norm's tape path does on images, and normalise those rows.

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batch_norm::{check_eps, default_eps, on_channel_rows, regroup, scale_offset_grads};
use super::{
    normalise_penalty, BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass,
    ReferenceLayer, RowCoupling, Saved,
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
    /// On an image, normalise the channels at each position (scale and offset per channel)
    /// rather than all of a sample's numbers. Off, it is left out of the text the fingerprint
    /// hashes, like spectral norm.
    #[serde(default)]
    pub over_channels: bool,
}

impl LayerKind for LayerNormSpec {
    type Layer = LayerNorm;

    fn check(&self) -> Result<(), (&'static str, String)> {
        check_eps(self.eps)
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        match (self.over_channels, input.image()) {
            (true, None) => Err(format!(
                "layer_norm with over_channels = true takes images, but flat features ({input}) \
                 reach it: drop over_channels, or put it after a reshape"
            )),
            _ => Ok(input),
        }
    }

    fn sizes(&self, input: FeatureShape, output: FeatureShape) -> (f64, f64) {
        (2.0 * (output.len() / self.positions(input)) as f64, 0.0)
    }

    fn build(
        &self,
        input: FeatureShape,
        _: &InitConfig,
        dev: &Cpu,
        _: &mut ChaCha8Rng,
    ) -> LayerNorm {
        let positions = self.positions(input);
        let width = input.len() / positions;
        LayerNorm {
            scale: dev.ones_like(&(width,)),
            offset: dev.zeros_like(&(width,)),
            eps: self.eps as f32,
            positions,
        }
    }
}

impl LayerNormSpec {
    /// Positions each normalised group of numbers repeats over: an image's `H * W` with
    /// `over_channels`, else 1.
    fn positions(&self, input: FeatureShape) -> usize {
        match (self.over_channels, input.image()) {
            (true, Some((_, height, width))) => height * width,
            _ => 1,
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
    /// Positions per channel with `over_channels` (1 otherwise): scale and offset are then
    /// `[channels]`.
    pub positions: usize,
}

impl LayerNorm {
    /// Each row normalised, scaled and offset, on the tape of `x`.
    fn normalise_rows<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, x: Matrix<T>) -> Matrix<T> {
        let shape = *x.shape();
        // dfdx's normalize: (x - mean) / sqrt(mean((x - mean)^2) + eps) per row.
        x.normalize::<Axis<1>>(self.eps) * self.scale.clone().broadcast_like::<_, Axis<0>>(&shape)
            + self.offset.clone().broadcast_like::<_, Axis<0>>(&shape)
    }
}

impl ReferenceLayer for LayerNorm {
    type Fast = FastLayerNorm;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        on_channel_rows(x, self.positions, |rows| self.normalise_rows(rows))
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
        FastLayerNorm {
            eps: self.eps,
            positions: self.positions,
        }
    }

    fn start_step(&mut self) {}
}

/// Layer-norm's variance guard on the fast path; its tensors are `[scale, offset]`.
#[derive(Debug, Clone)]
pub struct FastLayerNorm {
    eps: f32,
    positions: usize,
}

impl FastLayer for FastLayerNorm {
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        if self.positions == 1 {
            return self.forward_rows(tensors, x, pass.rows, pass);
        }
        let (rows, channels) = (pass.rows, tensors[0].len());
        let mut by_position = pass.pool.take(x.len());
        regroup(x, rows, channels, self.positions, &mut by_position);
        let saved = self.forward_rows(tensors, &mut by_position, rows * self.positions, pass);
        regroup(&by_position, rows, self.positions, channels, x);
        pass.pool.give(by_position);
        saved
    }

    fn backward(
        &mut self,
        tensors: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        if self.positions == 1 {
            self.backward_rows(tensors, saved, g, pass);
            return None;
        }
        let (rows, channels) = (pass.rows, tensors[0].len());
        let mut by_position = pass.pool.take(g.len());
        regroup(g, rows, channels, self.positions, &mut by_position);
        self.backward_rows(tensors, saved, &mut by_position, pass);
        regroup(&by_position, rows, self.positions, channels, g);
        pass.pool.give(by_position);
        None
    }

    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::None
    }

    fn keeps_its_input(&self) -> bool {
        false
    }

    fn start_step(&mut self, _: &mut [Vec<f32>]) {}

    /// Each row (or each position's channels) is a group of
    /// [`normalise_penalty::grouped`], the scale one number per column.
    fn penalty_pass(&self, tensors: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        let (scale, rows) = (&tensors[0], pass.rows);
        let cols = scale.len();
        let by_rows = |x: &[f32]| -> Vec<f32> {
            let mut out = vec![0.0; x.len()];
            regroup(x, rows, cols, self.positions, &mut out);
            out
        };
        let back = |x: &[f32]| -> Vec<f32> {
            let mut out = vec![0.0; x.len()];
            regroup(x, rows, self.positions, cols, &mut out);
            out
        };
        // One position (flat rows, or over all numbers) regroups as a plain copy.
        let (x, g, a) = (
            by_rows(pass.input),
            by_rows(pass.out_grad),
            by_rows(pass.adjoint),
        );
        let h: Vec<f32> = g
            .iter()
            .enumerate()
            .map(|(i, g)| g * scale[i % cols])
            .collect();
        let (mut na, curvature) = normalise_penalty::grouped(&x, &h, &a, cols, self.eps);
        for (i, (na, g)) in na.iter_mut().zip(&g).enumerate() {
            pass.grads[0][i % cols] += *na * g;
            *na *= scale[i % cols];
        }
        (*pass.adjoint, *pass.curvature) = (back(&na), back(&curvature));
        true
    }
}

impl FastLayerNorm {
    /// Normalises each of the `rows` rows of `x` (as wide as the scale), keeping what the
    /// backward pass needs (in buffers of the pass's pool) when the pass keeps anything.
    fn forward_rows(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut [f32],
        rows: usize,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let keep = pass.keep;
        let [scale, offset] = tensors else {
            unreachable!("layer-norm visits two tensors")
        };
        let cols = scale.len();
        let mut inv_std = pass.pool.take(rows);
        let mut normalised = if keep {
            pass.pool.take(x.len())
        } else {
            Vec::new()
        };
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

    /// The backward pass of [`FastLayerNorm::forward_rows`] on `g`, in its rows.
    fn backward_rows(
        &mut self,
        tensors: &mut [Vec<f32>],
        saved: Saved,
        g: &mut [f32],
        pass: &mut BackwardPass<'_, '_>,
    ) {
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
        pass.pool.give(normalised);
        pass.pool.give(inv_std);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fast_matches_image_tape, fast_matches_tape, network_matches_tape};

    /// Between two linear layers: the plain backward pass gives the tape's gradients for the
    /// input and every parameter, the scale and offset included.
    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "layer_norm"}"#, true);
        fast_matches_tape(r#"{type = "layer_norm", eps = 1e-3}"#, false);
        fast_matches_image_tape(r#"{type = "layer_norm"}"#, true);
        // Over channels, with five of them (over two, each position's pair normalises to about
        // +-1 whatever the input, and rounding dominates the tiny input gradient).
        let over = r#"{type = "layer_norm", over_channels = true}"#;
        for train in [true, false] {
            let layers = format!(
                r#"{{type = "reshape", shape = [5, 3, 4]}}, {over}, {{type = "flatten"}},
                   {{type = "linear", out = 3}}"#
            );
            network_matches_tape(&layers, 60, over, train);
        }
    }

    /// Over channels: one scale and offset per channel, each position's channels with mean 0;
    /// flat features are refused.
    #[test]
    fn over_channels_normalises_each_position() {
        use super::*;
        let spec = LayerNormSpec {
            eps: 1e-5,
            over_channels: true,
        };
        let image = FeatureShape::Image {
            channels: 3,
            height: 2,
            width: 2,
        };
        let dev = Cpu::default();
        let mut rng = rand::SeedableRng::seed_from_u64(0);
        let mut layer = spec.build(image, &InitConfig::default(), &dev, &mut rng);
        assert_eq!(layer.scale.shape().0, 3);
        let x: Vec<f32> = (0..12).map(|i| (i * i) as f32).collect();
        let y = layer
            .forward(dev.tensor_from_vec(x, (1, 12)), &mut Mode::Eval)
            .as_vec();
        for position in 0..4 {
            let mean: f32 = (0..3).map(|c| y[c * 4 + position]).sum::<f32>() / 3.0;
            assert!(mean.abs() < 1e-5, "{y:?}");
        }
        assert!(spec.output_shape(FeatureShape::Flat(12)).is_err());
    }
}
