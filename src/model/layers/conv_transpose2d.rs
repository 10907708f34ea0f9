//! The transposed 2-D convolution (PyTorch's `ConvTranspose2d` without output padding): the
//! adjoint of a convolution, so each input pixel spreads a `kernel x kernel` patch over the
//! output, `stride` apart. A `[c, h, w]` input gives `[out, (h - 1) stride - 2 padding +
//! kernel, ...]`. Weights are `[in_channels, out * kernel * kernel]` (PyTorch's `[in, out, kh,
//! kw]` flattened); spectral norm regroups them as PyTorch's `spectral_norm` does for this
//! layer (its `dim = 1`), `[out, in_channels * kernel * kernel]` ([`Grouping`]).
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
use super::spectral::{divided_by, power_iteration, sigma, through_sigma, Spectral};
use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass, ReferenceLayer,
    RowCoupling, Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::{for_rows, matmul, BufferPool, Mat};
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
    /// Divide the weights, regrouped as `[out, in_channels * kernel * kernel]` (as PyTorch's
    /// `spectral_norm` does for a transposed convolution), by their spectral norm (Miyato et
    /// al. 2018; see `spectral`). Off, it is left out of the text the fingerprint hashes.
    #[serde(default)]
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
        check_geometry(self.out, self.kernel, self.stride, self.padding)
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        let (_, p) = self.patches(input)?;
        image_of(self.out, p.height, p.width)
    }

    fn sizes(&self, input: FeatureShape, _: FeatureShape) -> (f64, f64) {
        let channels = input.image().map_or(1, |(c, _, _)| c) as f64;
        let (out, k) = (self.out as f64, self.kernel as f64);
        let singular_vectors = match self.spectral_norm {
            true => out + channels * k * k,
            false => 0.0,
        };
        (
            channels * out * k * k + if self.bias { out } else { 0.0 },
            singular_vectors,
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
        let grouping = Grouping::of(channels, &patches);
        let spectral = self.spectral_norm.then(|| {
            let regrouped = grouping.filters_first(&weight);
            Spectral::new(&regrouped, grouping.row_len(), dev, rng)
        });
        ConvTranspose2d {
            weight: dev.tensor_from_vec(weight, (channels, patches.patch_len())),
            bias,
            spectral,
            patches,
        }
    }
}

/// How spectral norm regroups a transposed convolution's weight: stored `[in, out * kk]`
/// (`kk` the kernel's area), normalised as `M = [out, in * kk]`, `M[o, i kk + s] = W[i, o kk +
/// s]`, PyTorch's grouping for this layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grouping {
    channels: usize,
    out: usize,
    area: usize,
}

impl Grouping {
    /// The grouping of a layer with `channels` inputs and output `patches`.
    pub(crate) fn of(channels: usize, patches: &Patches) -> Grouping {
        Grouping {
            channels,
            out: patches.channels,
            area: patches.patch_len() / patches.channels,
        }
    }

    /// The length of a row of `M`.
    fn row_len(self) -> usize {
        self.channels * self.area
    }

    /// `M` from `W` as stored.
    pub(crate) fn filters_first<T: Copy + Default>(self, weight: &[T]) -> Vec<T> {
        let mut m = vec![T::default(); weight.len()];
        for i in 0..self.channels {
            for o in 0..self.out {
                let (from, to) = (
                    (i * self.out + o) * self.area,
                    (o * self.channels + i) * self.area,
                );
                m[to..to + self.area].copy_from_slice(&weight[from..from + self.area]);
            }
        }
        m
    }

    /// `W` as stored from `M`.
    pub(crate) fn stored<T: Copy + Default>(self, m: &[T]) -> Vec<T> {
        let back = Grouping {
            channels: self.out,
            out: self.channels,
            area: self.area,
        };
        back.filters_first(m)
    }
}

/// A transposed convolution's tensors and geometry.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    /// `[in_channels, out * kernel * kernel]`.
    pub weight: Matrix,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Vector>,
    /// Spectral norm's singular vectors (of the weight as [`Grouping`] regroups it), when the
    /// layer has it.
    pub spectral: Option<Spectral>,
    /// The patches of its output image; their positions are its input's pixels.
    pub patches: Patches,
}

impl ConvTranspose2d {
    fn grouping(&self) -> Grouping {
        Grouping::of(self.weight.shape().0, &self.patches)
    }

    /// `W / sigma` on the tape of `T` with spectral norm, else `W`.
    fn applied<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self) -> Matrix<T> {
        match &self.spectral {
            None => self.weight.retaped::<T>(),
            Some(spectral) => {
                let outer = self.grouping().stored(&spectral.outer());
                spectral.divide_along::<T>(&self.weight, outer)
            }
        }
    }

    /// The weight the layer applies: `W`, or `W / sigma` with spectral norm (what an export
    /// hands to other tools).
    pub fn effective_weight(&self) -> Matrix {
        self.applied::<NoneTape>()
    }
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
                &self.effective_weight().as_vec(),
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
            self.applied::<T>(),
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
        if let Some(spectral) = &mut self.spectral {
            v.visit("spectral_u", &mut spectral.u, false);
            v.visit("spectral_v", &mut spectral.v, false);
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
            bias: self.bias.is_some(),
            spectral: self.spectral.is_some(),
        }
    }

    fn spectral_sigma(&self) -> Option<f64> {
        let spectral = self.spectral.as_ref()?;
        Some(spectral.sigma_of(&self.grouping().filters_first(&self.weight.as_vec())))
    }

    fn start_step(&mut self) {
        let grouping = self.grouping();
        if let Some(spectral) = &mut self.spectral {
            spectral.start_step_on(&grouping.filters_first(&self.weight.as_vec()));
        }
    }
}

/// A transposed convolution on the fast path; its tensors are `[weight]` or `[weight, bias]`,
/// then `[u, v]` with spectral norm.
#[derive(Debug, Clone)]
pub struct FastConvTranspose2d {
    patches: Patches,
    /// Input channels.
    channels: usize,
    bias: bool,
    spectral: bool,
}

impl FastConvTranspose2d {
    fn grouping(&self) -> Grouping {
        Grouping::of(self.channels, &self.patches)
    }

    /// With spectral norm, `W / sigma` in a buffer of `pool` and `1 / sigma`.
    fn divided(&self, tensors: &[Vec<f32>], pool: &mut BufferPool) -> Option<(Vec<f32>, f32)> {
        let [weight, .., u, v] = tensors else {
            return None;
        };
        if !self.spectral {
            return None;
        }
        let sigma = sigma(&self.grouping().filters_first(weight), u.len(), u, v);
        Some(divided_by(weight, sigma, pool))
    }

    /// Turns `dw`, the gradient of the applied `W / sigma`, into that of `W` (see
    /// [`through_sigma`]), in `M`'s grouping.
    fn through_sigma(&self, dw: &mut [f32], tensors: &[Vec<f32>], scale: f32) {
        let [weight, .., u, v] = tensors else {
            unreachable!("a spectrally normalised layer holds u and v")
        };
        let grouping = self.grouping();
        let mut dm = grouping.filters_first(dw);
        through_sigma(&mut dm, &grouping.filters_first(weight), scale, u, v);
        dw.copy_from_slice(&grouping.stored(&dm));
    }

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
        let bias = self.bias.then(|| tensors[1].as_slice());
        let divided = self.divided(tensors, pass.pool);
        let weight = divided.as_ref().map_or(&tensors[0], |(w, _)| w);
        self.fold_into(weight, bias, &side_by_side, rows, &mut columns, &mut y);
        if let Some((w, _)) = divided {
            pass.pool.give(w);
        }
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
        let mut phased = pass.pool.take(p.phased_len(rows));
        p.unfold_with(g, rows, &mut columns, &mut phased);
        pass.pool.give(phased);
        let divided = self.divided(tensors, pass.pool);
        let param_grads = pass.param_grads.then(|| {
            let mut dw = pass.pool.take(channels * k);
            matmul(
                Mat::new(&side_by_side, channels, n),
                Mat::new(&columns, k, n).t(),
                &mut dw,
            );
            if let Some((_, scale)) = &divided {
                self.through_sigma(&mut dw, tensors, *scale);
            }
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
            let weight = divided.as_ref().map_or(&tensors[0], |(w, _)| w);
            matmul(
                Mat::new(weight, channels, k),
                Mat::new(&columns, k, n),
                &mut dx_side_by_side,
            );
            let mut dx = pass.pool.take(rows * channels * p.positions());
            rows_first(&dx_side_by_side, rows, channels, p.positions(), &mut dx);
            pass.pool.give(dx_side_by_side);
            pass.pool.give(std::mem::replace(g, dx));
        }
        if let Some((w, _)) = divided {
            pass.pool.give(w);
        }
        if let Some((dw, db)) = param_grads {
            hand_over_weight_and_bias(pass, tensors, dw, (self.bias, &db));
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

    fn start_step(&mut self, tensors: &mut [Vec<f32>]) {
        let grouping = self.grouping();
        if let (true, [weight, .., u, v]) = (self.spectral, tensors) {
            power_iteration(&grouping.filters_first(weight), u.len(), u, v);
        }
    }

    /// The first backward pass made `g_in = W unfold(g_out)` (channels side by side): the
    /// penalty's gradient with respect to `W` is `adjoint unfold(g_out)^T`, none reaches the
    /// bias, and the adjoint moves on as `fold(W^T adjoint)`, the layer without bias.
    fn penalty_pass(&self, tensors: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        let PenaltyPass {
            rows,
            out_grad,
            adjoint,
            grads,
            ..
        } = pass;
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
        let divided = self.divided(tensors, &mut BufferPool::default());
        if let Some((_, scale)) = &divided {
            self.through_sigma(&mut dw, tensors, *scale);
        }
        grads[0].iter_mut().zip(&dw).for_each(|(g, d)| *g += d);
        let mut next = vec![0.0; rows * p.image_len()];
        self.fold_into(
            divided.as_ref().map_or(&tensors[0], |(w, _)| w),
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
    use super::super::{Layer, LayerSpec};
    use super::*;
    use crate::model::Network;
    use rand::SeedableRng;

    #[test]
    fn gradients_match_the_tape() {
        for layer in [
            r#"{type = "conv_transpose2d", out = 3, kernel = 4, stride = 2, padding = 1}"#,
            r#"{type = "conv_transpose2d", out = 2, kernel = 3, bias = false}"#,
            r#"{type = "conv_transpose2d", out = 2, kernel = 2, stride = 3, padding = 1}"#,
            r#"{type = "conv_transpose2d", out = 3, kernel = 4, stride = 2, spectral_norm = true}"#,
            r#"{type = "conv_transpose2d", out = 2, kernel = 3, bias = false, spectral_norm = true}"#,
        ] {
            fast_matches_image_tape(layer, true);
            fast_matches_image_tape(layer, false);
        }
    }

    /// The grouping puts `W[i, o kk + s]` at `M[o, i kk + s]`, and back.
    #[test]
    fn the_grouping_swaps_blocks_and_back() {
        let grouping = Grouping {
            channels: 2,
            out: 3,
            area: 4,
        };
        let w: Vec<usize> = (0..24).collect();
        let m = grouping.filters_first(&w);
        // M[1, 0 kk + 2] = W[0, 1 kk + 2]; M[2, 1 kk + 3] = W[1, 2 kk + 3].
        assert_eq!(m[2 * 4 + 2], w[4 + 2]);
        assert_eq!(m[5 * 4 + 3], w[5 * 4 + 3]);
        assert_eq!(m[4 + 1], w[12 + 1]);
        assert_eq!(grouping.stored(&m), w);
    }

    /// The top singular value, in f64, of the row-major matrix of `row_len`-long rows: power
    /// iteration on `A^T A`.
    fn top_singular_value(a: &[f32], row_len: usize) -> f64 {
        let rows: Vec<Vec<f64>> = a
            .chunks(row_len)
            .map(|r| r.iter().map(|&x| x as f64).collect())
            .collect();
        let mut x: Vec<f64> = (0..row_len).map(|j| 1.0 + j as f64 * 0.1).collect();
        let mut norm = 0.0;
        for _ in 0..2000 {
            let ax: Vec<f64> = rows
                .iter()
                .map(|r| r.iter().zip(&x).map(|(a, b)| a * b).sum())
                .collect();
            let mut y = vec![0.0; row_len];
            for (r, s) in rows.iter().zip(&ax) {
                y.iter_mut().zip(r).for_each(|(y, a)| *y += a * s);
            }
            norm = y.iter().map(|v| v * v).sum::<f64>().sqrt();
            x = y.iter().map(|v| v / norm).collect();
        }
        norm.sqrt()
    }

    /// After enough steps' power iterations, sigma is the top singular value of PyTorch's
    /// grouping `[out, in * k * k]`, not of the stored `[in, out * k * k]` (which differs).
    #[test]
    fn spectral_norm_normalises_pytorch_s_grouping() {
        #[derive(serde::Deserialize)]
        struct L {
            layers: Vec<LayerSpec>,
        }
        let text = r#"layers = [{type = "reshape", shape = [4, 3, 3]},
            {type = "conv_transpose2d", out = 3, kernel = 2, spectral_norm = true}]"#;
        let specs = toml::from_str::<L>(text).unwrap().layers;
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let init = InitConfig::default();
        let mut net = Network::build("n", &specs, 36, &init, &dev, &mut rng);
        let Layer::ConvTranspose2d(layer) = &mut net.layers[1] else {
            panic!("the second layer is the transposed convolution")
        };
        for _ in 0..300 {
            layer.start_step();
        }
        let weight = layer.weight.as_vec();
        let pytorch = top_singular_value(&layer.grouping().filters_first(&weight), 4 * 4);
        let stored = top_singular_value(&weight, 3 * 4);
        let sigma = layer.spectral_sigma().unwrap();
        assert!(
            (sigma - pytorch).abs() < 1e-4 * pytorch,
            "{sigma} vs {pytorch}"
        );
        assert!(
            (stored - pytorch).abs() > 1e-2 * pytorch,
            "{stored} vs {pytorch}"
        );
    }
}
