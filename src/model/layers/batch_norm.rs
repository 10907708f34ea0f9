//! Batch normalisation over the batch axis, in the three modes a config can name. On images
//! it normalises each channel over the batch and the channel's positions (PyTorch's
//! `BatchNorm2d`). The tape reads a batch of `[C, H, W]` images as `B * H * W` rows of `C`
//! features and runs the same arithmetic as on flat features; the fast path works on the images
//! as they lie, channel plane by plane, because regrouping them into rows and back cost more
//! than the arithmetic (so on images its sums run in another order than the tape's, and its
//! backward pass scales by `ds / n` once per channel).

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    normalise_penalty, BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass,
    ReferenceLayer, RowCoupling, Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::{
    column_reduce, column_sums, for_planes, for_rows, plane_sums, transpose_into, BufferPool,
};
use crate::model::{Matrix, Mode, TensorVisitor, Vector};

/// `{type = "batch_norm", mode = "batch"}`, with optional `momentum` and `eps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {
    /// Which statistics it uses, see [`BatchNormMode`].
    pub mode: BatchNormMode,
    /// Running-average update rate (PyTorch convention: new = (1-m) old + m batch).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Added to the variance before the square root.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

/// Batch-norm's running-average rate unless a config says otherwise (PyTorch's).
pub fn default_momentum() -> f64 {
    0.1
}

/// The variance guard of batch-norm and layer-norm unless a config says otherwise.
pub fn default_eps() -> f64 {
    1e-5
}

/// Which statistics a batch-norm layer normalises with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchNormMode {
    /// Ordinary batch-norm: batch statistics in the network's own update (which also update
    /// running averages), running statistics otherwise.
    Running,
    /// The current batch's statistics whenever the network runs, in its own update or not (the
    /// D step, the G step and the end-of-epoch losses alike), with no running statistics. This is
    /// what the TensorFlow tutorial's graph computes: its helper skips normalisation only for the
    /// Python literal `False`, and the graph hands it a placeholder.
    Batch,
    /// Retired: batch statistics in the network's own update, bypassed otherwise. It described
    /// nothing the tutorial did. Saved configs of old runs still read (so they can be listed,
    /// compared, diffed, reported and sampled); new configs and resumes are refused.
    BatchStatsOnly,
}

/// The variance guard's check, shared with layer-norm.
pub(super) fn check_eps(eps: f64) -> Result<(), (&'static str, String)> {
    match (1e-30..=1.0).contains(&eps) {
        true => Ok(()),
        false => Err(("eps", format!("must be between 1e-30 and 1, got {eps}"))),
    }
}

impl LayerKind for BatchNormSpec {
    type Layer = BatchNorm;

    fn check(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err((
                "momentum",
                format!("must be in [0, 1], got {}", self.momentum),
            ));
        }
        check_eps(self.eps)
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        Ok(input)
    }

    fn sizes(&self, _: FeatureShape, output: FeatureShape) -> (f64, f64) {
        let channels = output.channels_and_positions().0 as f64;
        (2.0 * channels, 2.0 * channels)
    }

    fn build(
        &self,
        input: FeatureShape,
        _: &InitConfig,
        dev: &Cpu,
        _: &mut ChaCha8Rng,
    ) -> BatchNorm {
        let (width, positions) = input.channels_and_positions();
        BatchNorm {
            positions,
            mode: self.mode,
            scale: dev.ones_like(&(width,)),
            offset: dev.zeros_like(&(width,)),
            running_mean: dev.zeros_like(&(width,)),
            running_var: dev.ones_like(&(width,)),
            momentum: self.momentum as f32,
            eps: self.eps as f32,
        }
    }
}

/// A batch-norm layer's tensors and settings.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// See [`BatchNormMode`].
    pub mode: BatchNormMode,
    /// Positions per channel: `height * width` of an image, 1 for flat features.
    pub positions: usize,
    /// `[width]` (one per channel of an image), starts at 1.
    pub scale: Vector,
    /// `[width]`, starts at 0.
    pub offset: Vector,
    /// `[width]`, only used (and checkpointed) in [`BatchNormMode::Running`].
    pub running_mean: Vector,
    /// `[width]`, only used in [`BatchNormMode::Running`].
    pub running_var: Vector,
    /// Running-average rate.
    pub momentum: f32,
    /// Variance guard.
    pub eps: f32,
}

impl ReferenceLayer for BatchNorm {
    type Fast = FastBatchNorm;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        mode: &mut Mode<'_>,
    ) -> Matrix<T> {
        on_channel_rows(x, self.positions, |rows| self.normalise_rows(rows, mode))
    }

    fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
        v.visit("scale", &mut self.scale, true);
        v.visit("offset", &mut self.offset, true);
        if self.mode == BatchNormMode::Running {
            v.visit("running_mean", &mut self.running_mean, false);
            v.visit("running_var", &mut self.running_var, false);
        }
    }

    fn output_width(&self, input: usize) -> usize {
        input
    }

    fn macs_per_row(&self) -> f64 {
        0.0
    }

    fn fast(&self) -> FastBatchNorm {
        FastBatchNorm {
            mode: self.mode,
            positions: self.positions,
            momentum: self.momentum,
            eps: self.eps,
        }
    }

    fn start_step(&mut self) {}
}

impl BatchNorm {
    /// Normalises each feature (column) of `x` over its rows, as the mode says.
    fn normalise_rows<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        mode: &mut Mode<'_>,
    ) -> Matrix<T> {
        let (scale, offset, eps) = (&self.scale, &self.offset, self.eps);
        match (&*mode, self.mode) {
            (Mode::BypassBatchNorm, _) | (Mode::Eval, BatchNormMode::BatchStatsOnly) => x,
            (Mode::Train { .. }, BatchNormMode::Running) => batch_statistics(
                x,
                scale,
                offset,
                eps,
                Some((&mut self.running_mean, &mut self.running_var, self.momentum)),
            ),
            (Mode::Train { .. }, _) | (Mode::Eval, BatchNormMode::Batch) => {
                batch_statistics(x, scale, offset, eps, None)
            }
            (Mode::Eval, BatchNormMode::Running) => {
                let shape = *x.shape();
                let std = (self.running_var.clone() + eps).sqrt();
                let scale = (scale.clone() / std).broadcast_like::<_, Axis<0>>(&shape);
                let x = x - self
                    .running_mean
                    .clone()
                    .broadcast_like::<_, Axis<0>>(&shape);
                x * scale + offset.clone().broadcast_like::<_, Axis<0>>(&shape)
            }
        }
    }
}

/// Batch-norm with the batch's statistics (biased variance), on the tape; updates running
/// statistics when given. The arithmetic follows dfdx's own `BatchNorm1D` training forward, with
/// runtime widths.
fn batch_statistics<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    x: Matrix<T>,
    scale: &Vector,
    offset: &Vector,
    eps: f32,
    running: Option<(&mut Vector, &mut Vector, f32)>,
) -> Matrix<T> {
    let shape = *x.shape();
    let n = shape.0 as f32;
    let mut running = running;
    let mean = x.retaped::<T>().mean::<(usize,), Axis<0>>(); // [width]
    if let Some((running_mean, _, momentum)) = &mut running {
        running_mean.axpy(1.0 - *momentum, &mean, *momentum);
    }
    let centered = x - mean.broadcast_like::<_, Axis<0>>(&shape);
    let var = centered.retaped::<T>().square().mean::<(usize,), Axis<0>>(); // [width]
    if let Some((_, running_var, momentum)) = &mut running {
        // The running estimate uses the unbiased variance, as dfdx and PyTorch do.
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        running_var.axpy(1.0 - *momentum, &var, *momentum * unbiased);
    }
    let std = (var + eps).sqrt();
    let scale = (scale.retaped::<T>() / std).broadcast_like::<_, Axis<0>>(&shape);
    let offset = offset.retaped::<T>().broadcast_like::<_, Axis<0>>(&shape);
    centered * scale + offset
}

/// Batch-norm's settings on the fast path; its tensors are `[scale, offset]`, and
/// `[running_mean, running_var]` after them in mode `running`.
#[derive(Debug, Clone)]
pub struct FastBatchNorm {
    mode: BatchNormMode,
    /// Positions per channel (1 for flat features).
    positions: usize,
    momentum: f32,
    eps: f32,
}

impl FastBatchNorm {
    /// From a batch's mean and (biased) variance per channel, over `n` values each: updates the
    /// running statistics (`running`, empty unless mode `running`) when training, and returns
    /// `1 / std` and `scale / std`, as the tape computes them.
    fn factors(
        &self,
        scale: &[f32],
        running: &mut [Vec<f32>],
        (mean, var, n): (&[f32], &[f32], f32),
        train: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        if let (true, [running_mean, running_var]) = (train, running) {
            let m = self.momentum;
            let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
            for j in 0..scale.len() {
                running_mean[j] = running_mean[j] * (1.0 - m) + mean[j] * m;
                running_var[j] = running_var[j] * (1.0 - m) + var[j] * (m * unbiased);
            }
        }
        let std: Vec<f32> = var.iter().map(|v| (v + self.eps).sqrt()).collect();
        let inv_std = std.iter().map(|s| 1.0 / s).collect();
        // The tape path computes centered * (scale / std) + offset.
        let factor = scale.iter().zip(&std).map(|(s, d)| s / d).collect();
        (inv_std, factor)
    }

    /// `scale / sqrt(running_var + eps)`, mode `running` outside training.
    fn running_factor(&self, tensors: &[Vec<f32>]) -> Vec<f32> {
        let [scale, _, _, running_var] = tensors else {
            unreachable!("running batch-norm visits four tensors")
        };
        scale
            .iter()
            .zip(running_var)
            .map(|(s, v)| s / (v + self.eps).sqrt())
            .collect()
    }

    /// `(x - running_mean) / sqrt(running_var + eps)`, mode `running` outside training.
    fn running_normalised(
        &self,
        tensors: &[Vec<f32>],
        x: &[f32],
        pool: &mut BufferPool,
    ) -> Vec<f32> {
        let [_, _, mean, var] = tensors else {
            unreachable!("running batch-norm visits four tensors")
        };
        let mut normalised = pool.take(x.len());
        normalised.copy_from_slice(x);
        for_planes(
            &mut normalised,
            mean.len(),
            self.positions,
            |_, c, plane| {
                let (m, inv_std) = (mean[c], 1.0 / (var[c] + self.eps).sqrt());
                plane.iter_mut().for_each(|v| *v = (*v - m) * inv_std)
            },
        );
        normalised
    }

    /// Normalises `x` with its own statistics (updating the running ones when asked), keeping
    /// the normalised input when `keep`.
    fn batch_statistics(
        &self,
        tensors: &mut [Vec<f32>],
        x: &mut [f32],
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let (params, running) = tensors.split_at_mut(2);
        let (scale, offset) = (&params[0], &params[1]);
        let cols = scale.len();
        let n = pass.rows as f32;
        let mut mean = vec![0.0; cols];
        column_sums(x, cols, &mut mean);
        mean.iter_mut().for_each(|m| *m /= n);
        let mean_ref = &mean;
        for_rows(x, cols, |_, r| {
            r.iter_mut().zip(mean_ref).for_each(|(v, m)| *v -= m)
        });
        let mut var = vec![0.0; cols];
        column_reduce(x, cols, &mut var, |acc, v| acc + v * v);
        var.iter_mut().for_each(|v| *v /= n);
        let (inv_std, factor) =
            self.factors(scale, running, (&mean, &var, n), pass.train.is_some());
        let normalised = if pass.keep {
            let mut normalised = pass.pool.take(x.len());
            let (centred, is) = (&*x, &inv_std);
            for_rows(&mut normalised, cols, |i, r| {
                let c = &centred[i * cols..(i + 1) * cols];
                for ((v, &x), k) in r.iter_mut().zip(c).zip(is) {
                    *v = x * k;
                }
            });
            normalised
        } else {
            Vec::new()
        };
        let (f, o) = (&factor, offset);
        for_rows(x, cols, |_, r| {
            r.iter_mut()
                .zip(f)
                .zip(o)
                .for_each(|((v, f), o)| *v = *v * f + o)
        });
        Saved::Normalised {
            normalised,
            inv_std,
        }
    }
}

impl FastLayer for FastBatchNorm {
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        match (pass.train.is_some(), self.mode) {
            (true, _) | (false, BatchNormMode::Batch) => match self.positions {
                1 => self.batch_statistics(tensors, x, pass),
                _ => self.plane_statistics(tensors, x, pass),
            },
            (false, BatchNormMode::BatchStatsOnly) => Saved::Nothing,
            (false, BatchNormMode::Running) => {
                let factor = self.running_factor(tensors);
                // Kept for the scale's gradient (a gradient penalty's last pass asks for it).
                let normalised = match pass.keep && pass.keep_for_parameters {
                    true => self.running_normalised(tensors, x, pass.pool),
                    false => Vec::new(),
                };
                let (f, o, m) = (&factor, &tensors[1], &tensors[2]);
                for_planes(x, factor.len(), self.positions, |_, c, plane| {
                    let (m, f, o) = (m[c], f[c], o[c]);
                    plane.iter_mut().for_each(|v| *v = (*v - m) * f + o)
                });
                Saved::Factor { factor, normalised }
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
        let grads = match saved {
            Saved::Normalised {
                normalised,
                inv_std,
            } => {
                let grads = match self.positions {
                    1 => self.backward_rows(&tensors[0], &normalised, &inv_std, g, pass),
                    _ => self.backward_planes(&tensors[0], &normalised, &inv_std, g, pass),
                };
                pass.pool.give(normalised);
                Some(grads)
            }
            Saved::Factor {
                factor: f,
                normalised,
            } => {
                let (channels, positions) = (f.len(), self.positions);
                let grads = pass.param_grads.then(|| {
                    assert_eq!(normalised.len(), g.len(), "the normalised input kept");
                    let d_offset = plane_sums(g, g, channels, positions, |d, _| d);
                    let d_scale = plane_sums(g, &normalised, channels, positions, |d, x| d * x);
                    (d_scale, d_offset)
                });
                if pass.propagate {
                    for_planes(g, channels, positions, |_, c, plane| {
                        plane.iter_mut().for_each(|d| *d *= f[c])
                    });
                }
                pass.pool.give(normalised);
                grads
            }
            // Bypassed: no gradient flows to its parameters (zeros, as the tape gives).
            Saved::Nothing if pass.param_grads => {
                let zeros = vec![0.0; tensors[0].len()];
                Some((zeros.clone(), zeros))
            }
            _ => None,
        };
        if let (true, Some((d_scale, d_offset))) = (pass.param_grads, grads) {
            let [scale, offset, ..] = tensors else {
                unreachable!("batch-norm visits scale and offset first")
            };
            pass.hand_over(0, scale, &d_scale);
            pass.hand_over(1, offset, &d_offset);
        }
        None
    }

    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::BatchStatistics
    }

    fn keeps_its_input(&self) -> bool {
        false
    }

    fn start_step(&mut self, _: &mut [Vec<f32>]) {}

    fn penalty_pass(&self, tensors: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        normalise_penalty::batch_norm(self.mode, self.positions, self.eps, tensors, pass);
        true
    }
}

/// `normalise` run on `x` (`[B, C * P]`, each row an image's channels of `P` positions) read
/// as `B * P` rows of `C` channels, and its output read back: how batch-norm and layer-norm
/// normalise per channel of an image on the tape. With one position, `normalise(x)`.
pub(super) fn on_channel_rows<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    x: Matrix<T>,
    positions: usize,
    normalise: impl FnOnce(Matrix<T>) -> Matrix<T>,
) -> Matrix<T> {
    if positions == 1 {
        return normalise(x);
    }
    let (batch, width) = *x.shape();
    let channels = width / positions;
    let rows = x
        .reshape_like(&(batch, channels, positions))
        .permute::<_, Axes3<0, 2, 1>>()
        .reshape_like(&(batch * positions, channels));
    normalise(rows)
        .reshape_like(&(batch, positions, channels))
        .permute::<_, Axes3<0, 2, 1>>()
        .reshape_like(&(batch, width))
}

/// Each of `rows` samples' `[a, b]` block transposed to `[b, a]`: a batch of `[C, P]` images
/// to `B * P` rows of `C` channels, and back.
pub(super) fn regroup(x: &[f32], rows: usize, a: usize, b: usize, out: &mut [f32]) {
    for (from, to) in x
        .chunks_exact(a * b)
        .zip(out.chunks_exact_mut(a * b))
        .take(rows)
    {
        transpose_into(from, a, b, to);
    }
}

impl FastBatchNorm {
    /// The backward pass of [`FastBatchNorm::batch_statistics`]: the scale's and offset's
    /// gradients, and `g` turned into the input gradient when the pass propagates.
    fn backward_rows(
        &self,
        scale: &[f32],
        normalised: &[f32],
        inv_std: &[f32],
        g: &mut [f32],
        pass: &mut BackwardPass<'_, '_>,
    ) -> (Vec<f32>, Vec<f32>) {
        let cols = scale.len();
        let n = pass.rows as f32;
        let (d_scale, d_offset) = scale_offset_grads(g, normalised, cols, pass.pool);
        if pass.propagate {
            let (ds, dof, s, is) = (&d_scale, &d_offset, scale, inv_std);
            for_rows(g, cols, |i, r| {
                let xr = &normalised[i * cols..(i + 1) * cols];
                for j in 0..cols {
                    r[j] = s[j] * is[j] * (r[j] - dof[j] / n - xr[j] * ds[j] / n);
                }
            });
        }
        (d_scale, d_offset)
    }

    /// [`FastBatchNorm::batch_statistics`] on a batch of `[C, H, W]` images as they lie: each
    /// channel's statistics summed over its planes ([`plane_sums`]), the element-wise work done
    /// plane by plane.
    fn plane_statistics(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut [f32],
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let (channels, positions) = (tensors[0].len(), self.positions);
        let n = (pass.rows * positions) as f32;
        let per_channel =
            |sums: Vec<f32>| -> Vec<f32> { sums.into_iter().map(|s| s / n).collect() };
        let mean = per_channel(plane_sums(x, x, channels, positions, |v, _| v));
        let centre = &mean;
        for_planes(x, channels, positions, |_, c, plane| {
            plane.iter_mut().for_each(|v| *v -= centre[c])
        });
        let var = per_channel(plane_sums(x, x, channels, positions, |v, _| v * v));
        let (params, running) = tensors.split_at_mut(2);
        let train = pass.train.is_some();
        let (inv_std, factor) = self.factors(&params[0], running, (&mean, &var, n), train);
        let normalised = if pass.keep {
            let mut normalised = pass.pool.take(x.len());
            let (centred, is) = (&*x, &inv_std);
            for_planes(&mut normalised, channels, positions, |i, c, plane| {
                let from = &centred[(i * channels + c) * positions..][..positions];
                plane
                    .iter_mut()
                    .zip(from)
                    .for_each(|(v, &x)| *v = x * is[c]);
            });
            normalised
        } else {
            Vec::new()
        };
        let (f, o) = (&factor, &params[1]);
        for_planes(x, channels, positions, |_, c, plane| {
            let (f, o) = (f[c], o[c]);
            plane.iter_mut().for_each(|v| *v = *v * f + o)
        });
        Saved::Normalised {
            normalised,
            inv_std,
        }
    }

    /// The backward pass of [`FastBatchNorm::plane_statistics`], as [`FastBatchNorm::backward_rows`].
    fn backward_planes(
        &self,
        scale: &[f32],
        normalised: &[f32],
        inv_std: &[f32],
        g: &mut [f32],
        pass: &mut BackwardPass<'_, '_>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (channels, positions) = (scale.len(), self.positions);
        let n = (pass.rows * positions) as f32;
        let d_offset = plane_sums(g, g, channels, positions, |d, _| d);
        let d_scale = plane_sums(g, normalised, channels, positions, |d, x| d * x);
        if pass.propagate {
            let (ds, dof) = (&d_scale, &d_offset);
            for_planes(g, channels, positions, |i, c, plane| {
                let xs = &normalised[(i * channels + c) * positions..][..positions];
                let (k, a, b) = (scale[c] * inv_std[c], dof[c] / n, ds[c] / n);
                plane
                    .iter_mut()
                    .zip(xs)
                    .for_each(|(d, &x)| *d = k * (*d - a - x * b));
            });
        }
        (d_scale, d_offset)
    }
}

/// The gradients of a normalisation's scale and offset: the column sums of `g * normalised`
/// and of `g` (batch norm and layer norm alike).
pub(super) fn scale_offset_grads(
    g: &[f32],
    normalised: &[f32],
    cols: usize,
    pool: &mut BufferPool,
) -> (Vec<f32>, Vec<f32>) {
    let mut d_offset = vec![0.0; cols];
    column_sums(g, cols, &mut d_offset);
    let mut gx = pool.take(g.len());
    for_rows(&mut gx, cols, |i, r| {
        let (gr, xr) = (
            &g[i * cols..(i + 1) * cols],
            &normalised[i * cols..(i + 1) * cols],
        );
        for ((v, &d), &x) in r.iter_mut().zip(gr).zip(xr) {
            *v = d * x;
        }
    });
    let mut d_scale = vec![0.0; cols];
    column_sums(&gx, cols, &mut d_scale);
    pool.give(gx);
    (d_scale, d_offset)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fast_matches_image_tape, fast_matches_tape};
    use super::*;

    #[test]
    fn gradients_match_the_tape_in_every_mode() {
        for mode in ["batch", "running"] {
            let layer = format!(r#"{{type = "batch_norm", mode = "{mode}"}}"#);
            fast_matches_tape(&layer, true);
            fast_matches_tape(&layer, false);
            fast_matches_image_tape(&layer, true);
            fast_matches_image_tape(&layer, false);
        }
    }

    /// On images, one scale and offset per channel, and each channel normalised over the batch
    /// and its positions: every channel of the output has mean 0 and variance 1 (almost: eps).
    #[test]
    fn images_are_normalised_per_channel() {
        use rand::SeedableRng;
        let dev = Cpu::default();
        let spec = BatchNormSpec {
            mode: BatchNormMode::Batch,
            momentum: 0.1,
            eps: 1e-5,
        };
        let image = FeatureShape::Image {
            channels: 3,
            height: 2,
            width: 5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut layer = spec.build(image, &InitConfig::default(), &dev, &mut rng);
        assert_eq!(layer.scale.shape().0, 3);
        let x: Matrix = dev.sample_normal_like(&(4, 30));
        let x = x * 3.0 + 1.0;
        let y = layer.forward(x, &mut Mode::Eval).as_vec();
        for c in 0..3 {
            let values: Vec<f32> = y
                .chunks(30)
                .flat_map(|row| row[c * 10..(c + 1) * 10].to_vec())
                .collect();
            let mean = values.iter().sum::<f32>() / 40.0;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 40.0;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
                "{c}: {mean} {var}"
            );
        }
    }
}
