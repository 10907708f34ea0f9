//! The 2-D convolution (cross-correlation, as PyTorch's `Conv2d`): `out` filters of `kernel x
//! kernel` over every input channel, `stride` apart, the input padded with `padding` zeros.
//! Weights are `[out, in_channels * kernel * kernel]` (PyTorch's `[out, in, kh, kw]` flattened).
//!
//! Fast path: a batch's patches unfolded into columns ([`Patches::unfold`]) and multiplied by
//! the weights in one product; the input gradient folds `W^T g` back. Reference: the same map as
//! a dense matrix gathered from the weights on dfdx's tape ([`Patches::dense_index`]). Off the
//! tape (generating, scoring) the reference runs the fast arithmetic, which the tests check
//! against the dense one: the dense matrix of a real layer would be hundreds of megabytes.

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::patches::{channels_first, rows_first, Patches};
use super::spectral::{divided, power_iteration, through_sigma, Spectral};
use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass, ReferenceLayer,
    RowCoupling, Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::{for_rows, matmul, BufferPool, Mat};
use crate::model::{Matrix, Mode, TensorVisitor, Vector};

/// `{type = "conv2d", out = 64, kernel = 4, stride = 2, padding = 1}`, with optional
/// `bias = false` (before a batch-norm, whose offset does its job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2dSpec {
    /// Output channels (filters).
    pub out: usize,
    /// Side of each filter.
    pub kernel: usize,
    /// Step between patches.
    #[serde(default = "one")]
    pub stride: usize,
    /// Zeros around the input on each side.
    #[serde(default)]
    pub padding: usize,
    /// Whether each output channel adds a learned bias.
    #[serde(default = "yes")]
    pub bias: bool,
    /// Divide the weights, as the matrix `[out, in_channels * kernel * kernel]`, by their
    /// spectral norm (Miyato et al. 2018; see `spectral`). Off, it is left out of the text the
    /// fingerprint hashes, like a linear layer's.
    #[serde(default)]
    pub spectral_norm: bool,
}

/// A stride of 1 unless a config says otherwise (both convolutions).
pub(super) fn one() -> usize {
    1
}

/// A bias unless a config says otherwise (both convolutions).
pub(super) fn yes() -> bool {
    true
}

/// The checks `conv2d` and `conv_transpose2d` share: sizes of at least 1, kernels and strides
/// within what an MNIST network could use.
pub(super) fn check_geometry(
    out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<(), (&'static str, String)> {
    let within = |key, value: usize, low, high| match (low..=high).contains(&value) {
        true => Ok(()),
        false => Err((
            key,
            format!("must be between {low} and {high}, got {value}"),
        )),
    };
    within("out", out, 1, 1 << 16)?;
    within("kernel", kernel, 1, 64)?;
    within("stride", stride, 1, 64)?;
    within("padding", padding, 0, 64)
}

/// The image of `channels` planes over `patches`' positions, or why it is too large to plan.
pub(super) fn image_of(
    channels: usize,
    height: usize,
    width: usize,
) -> Result<FeatureShape, String> {
    let shape = FeatureShape::Image {
        channels,
        height,
        width,
    };
    match channels
        .checked_mul(height)
        .and_then(|n| n.checked_mul(width))
    {
        Some(n) if n <= 1 << 30 => Ok(shape),
        _ => Err(format!("its output {shape} is too large")),
    }
}

impl Conv2dSpec {
    fn patches(&self, input: FeatureShape) -> Result<Patches, String> {
        let image = input.expect_image("conv2d")?;
        Patches::new(image, self.kernel, self.stride, self.padding)
    }
}

impl LayerKind for Conv2dSpec {
    type Layer = Conv2d;

    fn check(&self) -> Result<(), (&'static str, String)> {
        check_geometry(self.out, self.kernel, self.stride, self.padding)
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        let p = self.patches(input)?;
        image_of(self.out, p.out_height, p.out_width)
    }

    fn sizes(&self, input: FeatureShape, _: FeatureShape) -> (f64, f64) {
        let channels = input.image().map_or(1, |(c, _, _)| c) as f64;
        let (out, k) = (self.out as f64, self.kernel as f64);
        let singular_vectors = match self.spectral_norm {
            true => out + channels * k * k,
            false => 0.0,
        };
        (
            out * channels * k * k + if self.bias { out } else { 0.0 },
            singular_vectors,
        )
    }

    fn scratch_per_row(&self, input: FeatureShape, output: FeatureShape) -> f64 {
        let channels = input.image().map_or(1, |(c, _, _)| c) as f64;
        let positions = (output.len() / self.out.max(1)) as f64;
        // The unfolded patches, and the output with its channels side by side.
        channels * (self.kernel * self.kernel) as f64 * positions + output.len() as f64
    }

    fn build(
        &self,
        input: FeatureShape,
        init: &InitConfig,
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
    ) -> Conv2d {
        let patches = self.patches(input).expect("shapes checked by validation");
        let len = self.out * patches.patch_len();
        let weight = init.weights.sample(len, rng);
        let bias = self
            .bias
            .then(|| dev.tensor_from_vec(init.biases.sample(self.out, rng), (self.out,)));
        let spectral = self
            .spectral_norm
            .then(|| Spectral::new(&weight, patches.patch_len(), dev, rng));
        Conv2d {
            weight: dev.tensor_from_vec(weight, (self.out, patches.patch_len())),
            bias,
            spectral,
            patches,
        }
    }
}

/// A convolution's tensors and geometry.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out, in_channels * kernel * kernel]`.
    pub weight: Matrix,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Vector>,
    /// Spectral norm's singular vectors, when the layer has it.
    pub spectral: Option<Spectral>,
    /// Where its patches lie.
    pub patches: Patches,
}

impl Conv2d {
    /// The weight the convolution applies: `W`, or `W / sigma` with spectral norm (what an
    /// export hands to other tools).
    pub fn effective_weight(&self) -> Matrix {
        match &self.spectral {
            None => self.weight.clone(),
            Some(spectral) => spectral.divide::<NoneTape>(&self.weight),
        }
    }
}

impl ReferenceLayer for Conv2d {
    type Fast = FastConv2d;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        let (batch, filters) = (x.shape().0, self.weight.shape().0);
        let columns = filters * self.patches.positions();
        let dev = x.device().clone();
        if !T::OWNS_TAPE {
            let (x, tape) = x.split_tape();
            let bias = self.bias.as_ref().map(|b| b.as_vec());
            let mut y = vec![0.0; batch * columns];
            self.fast().convolve(
                &self.effective_weight().as_vec(),
                bias.as_deref(),
                &x.as_vec(),
                batch,
                &mut y,
            );
            return dev.tensor_from_vec(y, (batch, columns)).put_tape(tape);
        }
        let weight = match &self.spectral {
            None => self.weight.retaped::<T>(),
            Some(spectral) => spectral.divide::<T>(&self.weight),
        };
        let dense = dense_weights::<T>(
            weight,
            &self.patches.dense_index(filters),
            (self.patches.image_len(), columns),
        );
        let y = x.matmul(dense);
        match &self.bias {
            None => y,
            Some(bias) => {
                let positions = self.patches.positions();
                y + per_channel::<T>(bias, positions)
                    .broadcast_like::<_, Axis<0>>(&(batch, columns))
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
        self.weight.shape().0 * self.patches.positions()
    }

    fn macs_per_row(&self) -> f64 {
        (self.weight.shape().0 * self.patches.patch_len() * self.patches.positions()) as f64
    }

    fn fast(&self) -> FastConv2d {
        FastConv2d {
            patches: self.patches,
            filters: self.weight.shape().0,
            bias: self.bias.is_some(),
            spectral: self.spectral.is_some(),
        }
    }

    fn spectral_sigma(&self) -> Option<f64> {
        Some(self.spectral.as_ref()?.sigma(&self.weight))
    }

    fn start_step(&mut self) {
        if let Some(spectral) = &mut self.spectral {
            spectral.start_step(&self.weight);
        }
    }
}

/// The dense `[rows, cols]` matrix whose entries are `weight`'s numbers at `index` (zero where
/// `None`), on the tape of `T`: how the reference writes a convolution as one product.
pub(super) fn dense_weights<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    weight: Matrix<T>,
    index: &[Option<usize>],
    (rows, cols): (usize, usize),
) -> Matrix<T> {
    let dev = weight.device().clone();
    let picks: Vec<usize> = index.iter().map(|i| i.unwrap_or(0)).collect();
    let mask: Vec<f32> = index.iter().map(|i| i.map_or(0.0, |_| 1.0)).collect();
    let n = index.len();
    let len = weight.shape().0 * weight.shape().1;
    let flat = weight.reshape_like(&(len,));
    let gathered = flat.gather(dev.tensor_from_vec(picks, (n,)));
    (gathered * dev.tensor_from_vec(mask, (n,))).reshape_like(&(rows, cols))
}

/// A per-channel vector repeated over each channel's `positions` (channel-major), on the tape
/// of `T`.
pub(super) fn per_channel<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    bias: &Vector,
    positions: usize,
) -> Tensor<(usize,), f32, Cpu, T> {
    let n = bias.shape().0 * positions;
    let index: Vec<usize> = (0..n).map(|i| i / positions).collect();
    bias.retaped::<T>()
        .gather(bias.device().tensor_from_vec(index, (n,)))
}

/// Hands a convolution's weight gradient `dw` (a pool buffer, given back) and, when the layer
/// has a `bias`, its gradient `db` to `pass`: what both convolutions' backward passes end with.
pub(super) fn hand_over_weight_and_bias(
    pass: &mut BackwardPass<'_, '_>,
    tensors: &mut [Vec<f32>],
    dw: Vec<f32>,
    (bias, db): (bool, &[f32]),
) {
    let (weight, rest) = tensors.split_at_mut(1);
    pass.hand_over(0, &mut weight[0], &dw);
    if bias {
        pass.hand_over(1, &mut rest[0], db);
    }
    pass.pool.give(dw);
}

/// A convolution on the fast path; its tensors are `[weight]` or `[weight, bias]`, then
/// `[u, v]` with spectral norm.
#[derive(Debug, Clone)]
pub struct FastConv2d {
    patches: Patches,
    filters: usize,
    bias: bool,
    spectral: bool,
}

impl FastConv2d {
    /// `W / sigma` and `1 / sigma` with spectral norm (see [`divided`]).
    fn divided(&self, tensors: &[Vec<f32>], pool: &mut BufferPool) -> Option<(Vec<f32>, f32)> {
        divided(self.spectral, tensors, pool)
    }

    /// The bias, when the layer has one.
    fn bias<'a>(&self, tensors: &'a [Vec<f32>]) -> Option<&'a [f32]> {
        self.bias.then(|| tensors[1].as_slice())
    }

    /// `y = conv(x) + b` for `rows` inputs, written into `y` (`rows x filters * positions`).
    fn convolve(
        &self,
        weight: &[f32],
        bias: Option<&[f32]>,
        x: &[f32],
        rows: usize,
        y: &mut [f32],
    ) {
        let p = &self.patches;
        let mut columns = vec![0.0; p.patch_len() * rows * p.positions()];
        p.unfold(x, rows, &mut columns);
        let mut side_by_side = vec![0.0; y.len()];
        self.multiply(weight, bias, &columns, rows, &mut side_by_side, y);
    }

    /// `W columns`, channels side by side, then rearranged into `y`'s rows with the bias.
    fn multiply(
        &self,
        weight: &[f32],
        bias: Option<&[f32]>,
        columns: &[f32],
        rows: usize,
        side_by_side: &mut [f32],
        y: &mut [f32],
    ) {
        let (k, n) = (self.patches.patch_len(), rows * self.patches.positions());
        matmul(
            Mat::new(weight, self.filters, k),
            Mat::new(columns, k, n),
            side_by_side,
        );
        let positions = self.patches.positions();
        rows_first(side_by_side, rows, self.filters, positions, y);
        if let Some(bias) = bias {
            let filters = self.filters;
            for_rows(y, positions, |i, plane| {
                let b = bias[i % filters];
                plane.iter_mut().for_each(|v| *v += b);
            });
        }
    }
}

impl FastLayer for FastConv2d {
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let (rows, p) = (pass.rows, self.patches);
        let mut columns = pass.pool.take(p.patch_len() * rows * p.positions());
        let mut phased = pass.pool.take(p.phased_len(rows));
        p.unfold_with(x, rows, &mut columns, &mut phased);
        pass.pool.give(phased);
        let out = rows * self.filters * p.positions();
        let (mut side_by_side, mut y) = (pass.pool.take(out), pass.pool.take(out));
        let divided = self.divided(tensors, pass.pool);
        let weight = divided.as_ref().map_or(&tensors[0], |(w, _)| w);
        let bias = self.bias(tensors);
        self.multiply(weight, bias, &columns, rows, &mut side_by_side, &mut y);
        if let Some((w, _)) = divided {
            pass.pool.give(w);
        }
        pass.pool.give(side_by_side);
        pass.pool.give(std::mem::replace(x, y));
        match pass.keep {
            true => Saved::Rearranged(columns),
            false => {
                pass.pool.give(columns);
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
        let Saved::Rearranged(columns) = saved else {
            unreachable!("a convolution keeps its unfolded input")
        };
        let (rows, p, filters) = (pass.rows, self.patches, self.filters);
        let (k, n) = (p.patch_len(), rows * p.positions());
        let mut grad = pass.pool.take(filters * n);
        channels_first(g, rows, filters, p.positions(), &mut grad);
        let divided = self.divided(tensors, pass.pool);
        let param_grads = pass.param_grads.then(|| {
            let mut dw = pass.pool.take(filters * k);
            matmul(
                Mat::new(&grad, filters, n),
                Mat::new(&columns, k, n).t(),
                &mut dw,
            );
            if let (Some((_, scale)), [w, .., u, v]) = (&divided, &*tensors) {
                through_sigma(&mut dw, w, *scale, u, v);
            }
            let db: Vec<f32> = grad.chunks_exact(n).map(|r| r.iter().sum()).collect();
            (dw, db)
        });
        // Computed from the weights before their update.
        if pass.propagate {
            let mut unfolded = pass.pool.take(k * n);
            let weight = divided.as_ref().map_or(&tensors[0], |(w, _)| w);
            matmul(
                Mat::new(weight, filters, k).t(),
                Mat::new(&grad, filters, n),
                &mut unfolded,
            );
            let mut dx = pass.pool.take(rows * p.image_len());
            p.fold(&unfolded, rows, &mut dx);
            pass.pool.give(unfolded);
            pass.pool.give(std::mem::replace(g, dx));
        }
        if let Some((w, _)) = divided {
            pass.pool.give(w);
        }
        if let Some((dw, db)) = param_grads {
            hand_over_weight_and_bias(pass, tensors, dw, (self.bias, &db));
        }
        pass.pool.give(grad);
        pass.pool.give(columns);
        None
    }

    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::None
    }

    fn keeps_its_input(&self) -> bool {
        false
    }

    fn start_step(&mut self, tensors: &mut [Vec<f32>]) {
        if let (true, [weight, .., u, v]) = (self.spectral, tensors) {
            power_iteration(weight, u.len(), u, v);
        }
    }

    /// The first backward pass made `g_in = fold(W^T g_out)`: the penalty's gradient with
    /// respect to `W` is `g_out unfold(adjoint)^T` (channels side by side), none reaches the
    /// bias, and the adjoint moves on as `W unfold(adjoint)`, the convolution without bias.
    fn penalty_pass(&self, tensors: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        let PenaltyPass {
            rows,
            out_grad,
            adjoint,
            grads,
            ..
        } = pass;
        let (p, filters) = (self.patches, self.filters);
        let (k, n) = (p.patch_len(), rows * p.positions());
        let mut unfolded = vec![0.0; k * n];
        p.unfold(adjoint, rows, &mut unfolded);
        let mut grad = vec![0.0; filters * n];
        channels_first(out_grad, rows, filters, p.positions(), &mut grad);
        let mut dw = vec![0.0; filters * k];
        matmul(
            Mat::new(&grad, filters, n),
            Mat::new(&unfolded, k, n).t(),
            &mut dw,
        );
        let divided = self.divided(tensors, &mut BufferPool::default());
        if let (Some((_, scale)), [w, .., u, v]) = (&divided, tensors) {
            through_sigma(&mut dw, w, *scale, u, v);
        }
        grads[0].iter_mut().zip(&dw).for_each(|(g, d)| *g += d);
        let mut next = vec![0.0; filters * n];
        let weight = divided.as_ref().map_or(&tensors[0], |(w, _)| w);
        self.multiply(weight, None, &unfolded, rows, &mut grad, &mut next);
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
            r#"{type = "conv2d", out = 3, kernel = 3, stride = 2, padding = 1}"#,
            r#"{type = "conv2d", out = 2, kernel = 2, bias = false}"#,
            r#"{type = "conv2d", out = 2, kernel = 4, stride = 3, padding = 2}"#,
            r#"{type = "conv2d", out = 3, kernel = 3, stride = 2, spectral_norm = true}"#,
            r#"{type = "conv2d", out = 2, kernel = 2, bias = false, spectral_norm = true}"#,
        ] {
            fast_matches_image_tape(layer, true);
            fast_matches_image_tape(layer, false);
        }
    }
}
