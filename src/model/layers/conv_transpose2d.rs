//! The transposed 2-D convolution (PyTorch's `ConvTranspose2d` without output padding): the
//! adjoint of a convolution, so each input pixel spreads a `kernel x kernel` patch over the
//! output, `stride` apart. A `[c, h, w]` input gives `[out, (h - 1) stride - 2 padding +
//! kernel, ...]`. Weights are `[in_channels, out * kernel * kernel]` (PyTorch's `[in, out, kh,
//! kw]` flattened).
//!
//! It shares the convolution's geometry ([`Patches`], over its output image) with roles
//! swapped: its forward pass folds `W^T x`, its input gradient unfolds `g`. The reference is the
//! transpose of the convolution's dense matrix, on dfdx's tape; off the tape the fast
//! arithmetic (see `conv2d`).

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::conv2d::{
    check_geometry, dense_weights, hand_over_weight_and_bias, image_of, one, per_channel, yes,
};
use super::patches::{channels_first, rows_first, Patches};
use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, ReferenceLayer, RowCoupling,
    Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::{for_rows, matmul, Mat};
use crate::model::{Matrix, Mode, TensorVisitor, Vector};

/// `{type = "conv_transpose2d", out = 64, kernel = 4, stride = 2, padding = 1}`, with optional
/// `bias = false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvTranspose2dSpec {
    /// Output channels.
    pub out: usize,
    /// Side of each filter.
    pub kernel: usize,
    /// The upsampling factor: step between the patches an input pixel spreads.
    #[serde(default = "one")]
    pub stride: usize,
    /// Rows and columns cut from each side of the output.
    #[serde(default)]
    pub padding: usize,
    /// Whether each output channel adds a learned bias.
    #[serde(default = "yes")]
    pub bias: bool,
    /// Read only to refuse it with a way round (see [`LayerKind::check`]); never saved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spectral_norm: bool,
}

impl ConvTranspose2dSpec {
    /// Its output's patch geometry (whose positions are its input's pixels), or why the input
    /// does not fit.
    fn patches(&self, input: FeatureShape) -> Result<(usize, Patches), String> {
        let (channels, height, width) = input.expect_image("conv_transpose2d")?;
        let side = |n: usize| {
            ((n - 1) * self.stride + self.kernel)
                .checked_sub(2 * self.padding)
                .filter(|&s| s > 0)
                .ok_or_else(|| {
                    format!(
                        "padding {} cuts away the whole {n}-pixel side of its output",
                        self.padding
                    )
                })
        };
        let (out_height, out_width) = (side(height)?, side(width)?);
        image_of(self.out, out_height, out_width)?;
        let patches = Patches::new(
            (self.out, out_height, out_width),
            self.kernel,
            self.stride,
            self.padding,
        )?;
        debug_assert_eq!((patches.out_height, patches.out_width), (height, width));
        Ok((channels, patches))
    }
}

impl LayerKind for ConvTranspose2dSpec {
    type Layer = ConvTranspose2d;

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.spectral_norm {
            // PyTorch normalises a transposed convolution's weight as `[out, in * k * k]`,
            // a regrouping of how it is stored here; not built yet.
            return Err((
                "spectral_norm",
                "is not supported on conv_transpose2d: upsample, then a conv2d with \
                 spectral_norm = true ({ type = \"upsample\" }, { type = \"conv2d\", out = ..., \
                 kernel = 3, padding = 1, spectral_norm = true }), as BigGAN's generator does"
                    .into(),
            ));
        }
        check_geometry(self.out, self.kernel, self.stride, self.padding)
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        let (_, p) = self.patches(input)?;
        image_of(self.out, p.height, p.width)
    }

    fn sizes(&self, input: FeatureShape, _: FeatureShape) -> (f64, f64) {
        let channels = input.image().map_or(1, |(c, _, _)| c) as f64;
        let (out, k) = (self.out as f64, self.kernel as f64);
        (
            channels * out * k * k + if self.bias { out } else { 0.0 },
            0.0,
        )
    }

    fn scratch_per_row(&self, input: FeatureShape, _: FeatureShape) -> f64 {
        let (k, out) = (self.kernel as f64, self.out as f64);
        let positions = input.image().map_or(1, |(_, h, w)| h * w) as f64;
        // The input's channels side by side, and the patches folded into the output.
        input.len() as f64 + out * k * k * positions
    }

    fn build(
        &self,
        input: FeatureShape,
        init: &InitConfig,
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
    ) -> ConvTranspose2d {
        let (channels, patches) = self.patches(input).expect("shapes checked by validation");
        let weight = init.weights.sample(channels * patches.patch_len(), rng);
        let bias = self
            .bias
            .then(|| dev.tensor_from_vec(init.biases.sample(self.out, rng), (self.out,)));
        ConvTranspose2d {
            weight: dev.tensor_from_vec(weight, (channels, patches.patch_len())),
            bias,
            patches,
        }
    }
}

/// A transposed convolution's tensors and geometry.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    /// `[in_channels, out * kernel * kernel]`.
    pub weight: Matrix,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Vector>,
    /// The patches of its output image; their positions are its input's pixels.
    pub patches: Patches,
}

impl ReferenceLayer for ConvTranspose2d {
    type Fast = FastConvTranspose2d;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        let (batch, channels) = (x.shape().0, self.weight.shape().0);
        let p = self.patches;
        let (inputs, outputs) = (channels * p.positions(), p.image_len());
        let dev = x.device().clone();
        if !T::OWNS_TAPE {
            let (x, tape) = x.split_tape();
            let bias = self.bias.as_ref().map(|b| b.as_vec());
            let mut y = vec![0.0; batch * outputs];
            self.fast().spread(
                &self.weight.as_vec(),
                bias.as_deref(),
                &x.as_vec(),
                batch,
                &mut y,
            );
            return dev.tensor_from_vec(y, (batch, outputs)).put_tape(tape);
        }
        // The convolution of its output image by its weights maps outputs to inputs; this
        // layer is that map's transpose.
        let index = p.dense_index(channels);
        let transposed: Vec<Option<usize>> = (0..inputs * outputs)
            .map(|e| index[(e % outputs) * inputs + e / outputs])
            .collect();
        let y = x.matmul(dense_weights::<T>(
            self.weight.retaped::<T>(),
            &transposed,
            (inputs, outputs),
        ));
        match &self.bias {
            None => y,
            Some(bias) => {
                let positions = p.height * p.width;
                y + per_channel::<T>(bias, positions)
                    .broadcast_like::<_, Axis<0>>(&(batch, outputs))
            }
        }
    }

    fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
        v.visit("weight", &mut self.weight, true);
        if let Some(bias) = &mut self.bias {
            v.visit("bias", bias, true);
        }
    }

    fn output_width(&self, _: usize) -> usize {
        self.patches.image_len()
    }

    fn macs_per_row(&self) -> f64 {
        (self.weight.shape().0 * self.patches.patch_len() * self.patches.positions()) as f64
    }

    fn fast(&self) -> FastConvTranspose2d {
        FastConvTranspose2d {
            patches: self.patches,
            channels: self.weight.shape().0,
        }
    }

    fn start_step(&mut self) {}
}

/// A transposed convolution on the fast path; its tensors are `[weight]` or `[weight, bias]`.
#[derive(Debug, Clone)]
pub struct FastConvTranspose2d {
    patches: Patches,
    /// Input channels.
    channels: usize,
}

impl FastConvTranspose2d {
    /// `y = fold(W^T x) + b` for `rows` inputs, written into `y`.
    fn spread(&self, weight: &[f32], bias: Option<&[f32]>, x: &[f32], rows: usize, y: &mut [f32]) {
        let p = &self.patches;
        let mut side_by_side = vec![0.0; x.len()];
        channels_first(x, rows, self.channels, p.positions(), &mut side_by_side);
        let mut columns = vec![0.0; p.patch_len() * rows * p.positions()];
        self.fold_into(weight, bias, &side_by_side, rows, &mut columns, y);
    }

    /// `columns = W^T x` (channels side by side), folded into `y` with the bias.
    fn fold_into(
        &self,
        weight: &[f32],
        bias: Option<&[f32]>,
        side_by_side: &[f32],
        rows: usize,
        columns: &mut [f32],
        y: &mut [f32],
    ) {
        let p = &self.patches;
        let (k, n) = (p.patch_len(), rows * p.positions());
        matmul(
            Mat::new(weight, self.channels, k).t(),
            Mat::new(side_by_side, self.channels, n),
            columns,
        );
        p.fold(columns, rows, y);
        if let Some(bias) = bias {
            let out = bias.len();
            for_rows(y, p.height * p.width, |i, plane| {
                let b = bias[i % out];
                plane.iter_mut().for_each(|v| *v += b);
            });
        }
    }
}

impl FastLayer for FastConvTranspose2d {
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let (rows, p) = (pass.rows, self.patches);
        let mut side_by_side = pass.pool.take(x.len());
        channels_first(x, rows, self.channels, p.positions(), &mut side_by_side);
        let mut columns = pass.pool.take(p.patch_len() * rows * p.positions());
        let mut y = pass.pool.take(rows * p.image_len());
        let bias = tensors.get(1).map(Vec::as_slice);
        self.fold_into(&tensors[0], bias, &side_by_side, rows, &mut columns, &mut y);
        pass.pool.give(columns);
        pass.pool.give(std::mem::replace(x, y));
        match pass.keep {
            true => Saved::Rearranged(side_by_side),
            false => {
                pass.pool.give(side_by_side);
                Saved::Nothing
            }
        }
    }

    fn backward(
        &mut self,
        tensors: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        let Saved::Rearranged(side_by_side) = saved else {
            unreachable!("a transposed convolution keeps its input, channels side by side")
        };
        let (rows, p, channels) = (pass.rows, self.patches, self.channels);
        let (k, n) = (p.patch_len(), rows * p.positions());
        let mut columns = pass.pool.take(k * n);
        p.unfold(g, rows, &mut columns);
        let param_grads = pass.param_grads.then(|| {
            let mut dw = pass.pool.take(channels * k);
            matmul(
                Mat::new(&side_by_side, channels, n),
                Mat::new(&columns, k, n).t(),
                &mut dw,
            );
            let planes = p.height * p.width;
            let mut db = vec![0.0; p.channels];
            for (i, plane) in g.chunks_exact(planes).enumerate() {
                db[i % p.channels] += plane.iter().sum::<f32>();
            }
            (dw, db)
        });
        // Computed from the weights before their update.
        if pass.propagate {
            let mut dx_side_by_side = pass.pool.take(channels * n);
            matmul(
                Mat::new(&tensors[0], channels, k),
                Mat::new(&columns, k, n),
                &mut dx_side_by_side,
            );
            let mut dx = pass.pool.take(rows * channels * p.positions());
            rows_first(&dx_side_by_side, rows, channels, p.positions(), &mut dx);
            pass.pool.give(dx_side_by_side);
            pass.pool.give(std::mem::replace(g, dx));
        }
        if let Some((dw, db)) = param_grads {
            let bias = tensors.len() > 1;
            hand_over_weight_and_bias(pass, tensors, dw, (bias, &db));
        }
        pass.pool.give(columns);
        pass.pool.give(side_by_side);
        None
    }

    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::None
    }

    fn keeps_its_input(&self) -> bool {
        false
    }

    fn start_step(&mut self, _: &mut [Vec<f32>]) {}

    /// The first backward pass made `g_in = W unfold(g_out)` (channels side by side): the
    /// penalty's gradient with respect to `W` is `adjoint unfold(g_out)^T`, none reaches the
    /// bias, and the adjoint moves on as `fold(W^T adjoint)`, the layer without bias.
    fn penalty_pass(
        &self,
        tensors: &[Vec<f32>],
        _: &[f32],
        rows: usize,
        out_grad: &[f32],
        adjoint: &mut Vec<f32>,
        grads: &mut [Vec<f32>],
    ) -> bool {
        let (p, channels) = (self.patches, self.channels);
        let (k, n) = (p.patch_len(), rows * p.positions());
        let mut columns = vec![0.0; k * n];
        p.unfold(out_grad, rows, &mut columns);
        let mut side_by_side = vec![0.0; channels * n];
        channels_first(adjoint, rows, channels, p.positions(), &mut side_by_side);
        let mut dw = vec![0.0; channels * k];
        matmul(
            Mat::new(&side_by_side, channels, n),
            Mat::new(&columns, k, n).t(),
            &mut dw,
        );
        grads[0].iter_mut().zip(&dw).for_each(|(g, d)| *g += d);
        let mut next = vec![0.0; rows * p.image_len()];
        self.fold_into(
            &tensors[0],
            None,
            &side_by_side,
            rows,
            &mut columns,
            &mut next,
        );
        *adjoint = next;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_image_tape;

    #[test]
    fn gradients_match_the_tape() {
        for layer in [
            r#"{type = "conv_transpose2d", out = 3, kernel = 4, stride = 2, padding = 1}"#,
            r#"{type = "conv_transpose2d", out = 2, kernel = 3, bias = false}"#,
            r#"{type = "conv_transpose2d", out = 2, kernel = 2, stride = 3, padding = 1}"#,
        ] {
            fast_matches_image_tape(layer, true);
            fast_matches_image_tape(layer, false);
        }
    }
}
