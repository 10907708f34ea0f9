//! A network's training-time twin on plain buffers, with hand-written backward passes.
//!
//! dfdx's tape computes every gradient it can reach: the first layer's input gradient (nobody
//! needs it), and in the generator's step all of the discriminator's weight gradients (thrown
//! away). Here the caller says which gradients it wants, so the training step does only the
//! arithmetic it needs; products and element-wise passes run on [`super::kernels`].
//!
//! A [`PlainNet`] is checked out of a [`Network`] (copying its tensors) for an epoch and checked
//! back in at the end, so that checkpoints, sampling and evaluation keep working on dfdx tensors.
//! The arithmetic of each layer is the same as [`Network::forward`]'s; tests compare the two.

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;

use super::kernels::{
    column_reduce, column_sums, for_rows, map_in_place, matmul, matmul_add, transpose_into,
    zip_map, BufferPool, Mat,
};
use super::{dropout_mask, Layer, Network};
use crate::config::BatchNormMode;

/// One layer with plain parameter buffers.
#[derive(Debug, Clone)]
enum PlainLayer {
    Linear {
        weight: Vec<f32>, // [in, out]
        bias: Vec<f32>,
        input: usize,
        out: usize,
    },
    LeakyRelu(f32),
    Relu,
    Tanh,
    Sigmoid,
    Identity,
    BatchNorm {
        mode: BatchNormMode,
        scale: Vec<f32>,
        offset: Vec<f32>,
        running_mean: Vec<f32>,
        running_var: Vec<f32>,
        momentum: f32,
        eps: f32,
    },
    LayerNorm {
        scale: Vec<f32>,
        offset: Vec<f32>,
        eps: f32,
    },
    Dropout(f32),
}

impl PlainLayer {
    /// How many trainable tensors it has (in [`Network::visit`] order).
    fn trainable_tensors(&self) -> usize {
        match self {
            PlainLayer::Linear { .. }
            | PlainLayer::BatchNorm { .. }
            | PlainLayer::LayerNorm { .. } => 2,
            _ => 0,
        }
    }
}

/// What a layer's backward pass needs from its forward pass.
enum Saved {
    /// The layer's input (linear; leaky ReLU with a slope of 0 or less).
    Input(Vec<f32>),
    /// The layer's output (tanh, sigmoid).
    Output(Vec<f32>),
    /// Normalised input and `1 / sqrt(var + eps)` per feature (batch statistics).
    BatchStats {
        normalised: Vec<f32>,
        inv_std: Vec<f32>,
    },
    /// `scale / sqrt(running_var + eps)` per feature (running statistics).
    RunningScale(Vec<f32>),
    /// Normalised input and `1 / sqrt(var + eps)` per row (layer norm).
    RowStats {
        normalised: Vec<f32>,
        inv_std: Vec<f32>,
    },
    /// The layer's output, which the next (linear) layer keeps as its input.
    OutputIsNextInput,
    /// Dropout's mask (0 or 1 / keep).
    Mask(Vec<f32>),
    /// Nothing (identity, bypassed layers).
    Nothing,
}

/// The activations a forward pass kept for its backward pass.
pub struct Trace {
    saved: Vec<Saved>,
    rows: usize,
}

/// A network as plain buffers; see the module docs.
#[derive(Debug, Clone)]
pub struct PlainNet {
    layers: Vec<PlainLayer>,
    input_width: usize,
}

/// The buffers forward and backward passes work in, kept from one call to the next. One
/// workspace serves every network a caller runs (a GAN's two), so that buffers that pass from
/// one network to the other (G's output is D's input; D's input gradient is G's) come back to
/// the same pool.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    /// Layer outputs, the copies a backward pass keeps, and input gradients.
    pool: BufferPool,
    /// Room for one weight gradient and one transposed layer input at a time (the largest
    /// layer's): a pool would hold every layer's at once.
    weight_grad: Vec<f32>,
    transposed_input: Vec<f32>,
}

impl Workspace {
    /// A buffer of `len` values holding old values: for a caller that overwrites it in full
    /// (e.g. a batch built from two others).
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        self.pool.take(len)
    }

    /// Keeps a buffer (e.g. a network's output, once used) for a later pass.
    pub fn give(&mut self, buffer: Vec<f32>) {
        self.pool.give(buffer);
    }

    /// Fills every kept buffer with NaN (see [`BufferPool::poison`]).
    #[cfg(test)]
    pub(crate) fn poison(&mut self) {
        self.pool.poison();
        self.weight_grad.fill(f32::NAN);
        self.transposed_input.fill(f32::NAN);
    }
}

/// Gradients of a network's trainable tensors, in [`Network::visit`] order.
pub type ParamGrads = Vec<Vec<f32>>;

/// Something that updates one trainable tensor from its gradient: an optimizer.
pub trait ParamUpdate {
    /// Updates the tensor at `index` (in [`Network::visit`] order).
    fn apply(&mut self, index: usize, param: &mut [f32], grad: &[f32]);
}

/// What a backward pass does with the parameter gradients.
pub enum ParamGradUse<'a> {
    /// Nothing: they are not computed (the network is not the one being trained).
    Skip,
    /// Store them (e.g. to add up several passes before one update).
    Collect(&'a mut ParamGrads),
    /// Hand each to the optimizer as soon as it is computed, while the parameter and its
    /// gradient are still in cache. Input gradients are computed from the weights before
    /// their update.
    Apply(&'a mut dyn ParamUpdate),
}

impl PlainNet {
    /// Copies a network's tensors into plain buffers.
    pub fn check_out(net: &Network) -> PlainNet {
        let layers = net
            .layers
            .iter()
            .map(|l| match l {
                Layer::Linear { weight, bias } => PlainLayer::Linear {
                    weight: weight.as_vec(),
                    bias: bias.as_vec(),
                    input: weight.shape().0,
                    out: weight.shape().1,
                },
                Layer::LeakyRelu(s) => PlainLayer::LeakyRelu(*s),
                Layer::Relu => PlainLayer::Relu,
                Layer::Tanh => PlainLayer::Tanh,
                Layer::Sigmoid => PlainLayer::Sigmoid,
                Layer::Identity => PlainLayer::Identity,
                Layer::BatchNorm {
                    mode,
                    scale,
                    offset,
                    running_mean,
                    running_var,
                    momentum,
                    eps,
                } => PlainLayer::BatchNorm {
                    mode: *mode,
                    scale: scale.as_vec(),
                    offset: offset.as_vec(),
                    running_mean: running_mean.as_vec(),
                    running_var: running_var.as_vec(),
                    momentum: *momentum,
                    eps: *eps,
                },
                Layer::LayerNorm { scale, offset, eps } => PlainLayer::LayerNorm {
                    scale: scale.as_vec(),
                    offset: offset.as_vec(),
                    eps: *eps,
                },
                Layer::Dropout(r) => PlainLayer::Dropout(*r),
            })
            .collect();
        PlainNet {
            layers,
            input_width: net.input_width,
        }
    }

    /// Writes the buffers back into the network's tensors.
    pub fn check_in(&self, net: &mut Network) {
        for (plain, layer) in self.layers.iter().zip(&mut net.layers) {
            match (plain, layer) {
                (
                    PlainLayer::Linear {
                        weight: w, bias: b, ..
                    },
                    Layer::Linear { weight, bias },
                ) => {
                    weight.copy_from(w);
                    bias.copy_from(b);
                }
                (
                    PlainLayer::BatchNorm {
                        scale: s,
                        offset: o,
                        running_mean: rm,
                        running_var: rv,
                        ..
                    },
                    Layer::BatchNorm {
                        scale,
                        offset,
                        running_mean,
                        running_var,
                        ..
                    },
                ) => {
                    scale.copy_from(s);
                    offset.copy_from(o);
                    running_mean.copy_from(rm);
                    running_var.copy_from(rv);
                }
                (
                    PlainLayer::LayerNorm {
                        scale: s,
                        offset: o,
                        ..
                    },
                    Layer::LayerNorm { scale, offset, .. },
                ) => {
                    scale.copy_from(s);
                    offset.copy_from(o);
                }
                _ => {}
            }
        }
    }

    /// The trainable buffers, in [`Network::visit`] order (weight, bias; scale, offset).
    pub fn params_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut out = Vec::new();
        for layer in &mut self.layers {
            match layer {
                PlainLayer::Linear { weight, bias, .. } => {
                    out.push(weight);
                    out.push(bias);
                }
                PlainLayer::BatchNorm { scale, offset, .. }
                | PlainLayer::LayerNorm { scale, offset, .. } => {
                    out.push(scale);
                    out.push(offset);
                }
                _ => {}
            }
        }
        out
    }

    /// Whether two batches can run through the network's own update as one and give what two
    /// passes give: not with batch-norm (each batch's statistics would mix), nor with more
    /// than one active dropout layer (the masks would be drawn in another order: all rows
    /// layer by layer, rather than one batch's layers, then the other's).
    pub fn batches_combine(&self) -> bool {
        let dropouts = self
            .layers
            .iter()
            .filter(|l| matches!(l, PlainLayer::Dropout(r) if *r > 0.0))
            .count();
        let batch_norm = self
            .layers
            .iter()
            .any(|l| matches!(l, PlainLayer::BatchNorm { .. }));
        !batch_norm && dropouts <= 1
    }

    /// Runs `x` (`rows x input_width`). `train` is `Some(rng)` in the network's own update
    /// (batch statistics, running averages updated, dropout masks drawn in row-major order) and
    /// `None` outside it ([`super::Mode::Eval`]: batch statistics in mode `batch`, running ones in
    /// mode `running`), as [`Network::forward`] does; `keep` says whether to keep what a
    /// backward pass needs. Buffers come from, and go back to, `workspace`.
    pub fn forward(
        &mut self,
        x: Vec<f32>,
        rows: usize,
        mut train: Option<&mut ChaCha8Rng>,
        keep: bool,
        workspace: &mut Workspace,
    ) -> (Vec<f32>, Trace) {
        assert_eq!(x.len(), rows * self.input_width, "input size");
        let mut x = x;
        let mut saved = Vec::with_capacity(self.layers.len());

        let next_is_linear: Vec<bool> = (0..self.layers.len())
            .map(|i| matches!(self.layers.get(i + 1), Some(PlainLayer::Linear { .. })))
            .collect();
        let pool = &mut workspace.pool;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            // What the backward pass needs; anything that would cost a copy is only made when
            // `keep` asks for it.
            let mut kept_output = |y: &Vec<f32>| match (keep, next_is_linear[i]) {
                (false, _) => Saved::Nothing,
                // The next (linear) layer keeps this same buffer as its input.
                (true, true) => Saved::OutputIsNextInput,
                (true, false) => Saved::Output(pool.copy_of(y)),
            };
            let save = match layer {
                PlainLayer::Linear {
                    weight,
                    bias,
                    input,
                    out,
                } => {
                    let mut y = pool.take(rows * *out);
                    let b = &*bias;
                    for_rows(&mut y, *out, |_, r| r.copy_from_slice(b));
                    matmul_add(
                        Mat::new(&x, rows, *input),
                        Mat::new(weight, *input, *out),
                        &mut y,
                    );
                    Saved::Input(std::mem::replace(&mut x, y))
                }
                // Positive slopes (and ReLU) keep the sign, so the output tells the gradient.
                PlainLayer::LeakyRelu(slope) if *slope > 0.0 => {
                    let slope = *slope;
                    map_in_place(&mut x, |v| {
                        if *v <= 0.0 {
                            *v *= slope
                        }
                    });
                    kept_output(&x)
                }
                PlainLayer::LeakyRelu(slope) => {
                    let slope = *slope;
                    let mut y = pool.take(x.len());
                    zip_map(&mut y, &x, |y, v| *y = if v > 0.0 { v } else { v * slope });
                    Saved::Input(std::mem::replace(&mut x, y))
                }
                PlainLayer::Relu => {
                    map_in_place(&mut x, |v| *v = v.max(0.0));
                    kept_output(&x)
                }
                PlainLayer::Tanh => {
                    map_in_place(&mut x, |v| *v = v.tanh());
                    kept_output(&x)
                }
                PlainLayer::Sigmoid => {
                    map_in_place(&mut x, |v| *v = 1.0 / (1.0 + (-*v).exp()));
                    kept_output(&x)
                }
                PlainLayer::Identity => Saved::Nothing,
                PlainLayer::BatchNorm {
                    mode,
                    scale,
                    offset,
                    running_mean,
                    running_var,
                    momentum,
                    eps,
                } => {
                    let cols = scale.len();
                    match (train.is_some(), *mode) {
                        (true, _) | (false, BatchNormMode::Batch) => {
                            let n = rows as f32;
                            let mut mean = vec![0.0; cols];
                            column_sums(&x, cols, &mut mean);
                            mean.iter_mut().for_each(|m| *m /= n);
                            let mean_ref = &mean;
                            for_rows(&mut x, cols, |_, r| {
                                r.iter_mut().zip(mean_ref).for_each(|(v, m)| *v -= m)
                            });
                            let mut var = vec![0.0; cols];
                            column_reduce(&x, cols, &mut var, |acc, v| acc + v * v);
                            var.iter_mut().for_each(|v| *v /= n);
                            if train.is_some() && *mode == BatchNormMode::Running {
                                let m = *momentum;
                                let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
                                for j in 0..cols {
                                    running_mean[j] = running_mean[j] * (1.0 - m) + mean[j] * m;
                                    running_var[j] =
                                        running_var[j] * (1.0 - m) + var[j] * (m * unbiased);
                                }
                            }
                            let std: Vec<f32> = var.iter().map(|v| (v + *eps).sqrt()).collect();
                            let inv_std: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
                            // The tape path computes centered * (scale / std) + offset.
                            let factor: Vec<f32> =
                                scale.iter().zip(&std).map(|(s, d)| s / d).collect();
                            let normalised = if keep {
                                let mut normalised = pool.take(x.len());
                                let (centred, is) = (&x, &inv_std);
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
                            let (f, o) = (&factor, &*offset);
                            for_rows(&mut x, cols, |_, r| {
                                r.iter_mut()
                                    .zip(f)
                                    .zip(o)
                                    .for_each(|((v, f), o)| *v = *v * f + o)
                            });
                            Saved::BatchStats {
                                normalised,
                                inv_std,
                            }
                        }
                        (false, BatchNormMode::BatchStatsOnly) => Saved::Nothing,
                        (false, BatchNormMode::Running) => {
                            let factor: Vec<f32> = scale
                                .iter()
                                .zip(&*running_var)
                                .map(|(s, v)| s / (v + *eps).sqrt())
                                .collect();
                            let (f, o, rm) = (&factor, &*offset, &*running_mean);
                            for_rows(&mut x, cols, |_, r| {
                                for (((v, f), o), m) in r.iter_mut().zip(f).zip(o).zip(rm) {
                                    *v = (*v - m) * f + o;
                                }
                            });
                            Saved::RunningScale(factor)
                        }
                    }
                }
                PlainLayer::LayerNorm { scale, offset, eps } => {
                    let cols = scale.len();
                    let mut inv_std = vec![0.0; rows];
                    let mut normalised = if keep { vec![0.0; x.len()] } else { Vec::new() };
                    // As dfdx's normalize: centre, mean square, then divide by the std.
                    for (r, row) in x.chunks_mut(cols).enumerate() {
                        let mean = row.iter().sum::<f32>() / cols as f32;
                        row.iter_mut().for_each(|v| *v -= mean);
                        let var = row.iter().map(|v| v * v).sum::<f32>() / cols as f32;
                        let std = (var + *eps).sqrt();
                        inv_std[r] = 1.0 / std;
                        row.iter_mut().for_each(|v| *v /= std);
                        if keep {
                            normalised[r * cols..(r + 1) * cols].copy_from_slice(row);
                        }
                        for ((v, s), o) in row.iter_mut().zip(&*scale).zip(&*offset) {
                            *v = *v * s + o;
                        }
                    }
                    Saved::RowStats {
                        normalised,
                        inv_std,
                    }
                }
                PlainLayer::Dropout(rate) => match &mut train {
                    Some(rng) if *rate > 0.0 => {
                        let mask = dropout_mask(x.len(), *rate, rng);
                        zip_map(&mut x, &mask, |v, m| *v *= m);
                        Saved::Mask(mask)
                    }
                    _ => Saved::Nothing,
                },
            };
            match save {
                _ if keep => saved.push(save),
                Saved::Input(b) | Saved::Output(b) | Saved::Mask(b) => pool.give(b),
                _ => {}
            }
        }
        (x, Trace { saved, rows })
    }

    /// Back-propagates `grad` (the loss gradient of the output) through a kept forward pass.
    /// Returns the gradient of the input when `input_grad`; `params` says what happens to the
    /// parameter gradients. Nothing is computed that is not asked for.
    pub fn backward(
        &mut self,
        trace: Trace,
        grad: Vec<f32>,
        input_grad: bool,
        params: ParamGradUse<'_>,
        workspace: &mut Workspace,
    ) -> Option<Vec<f32>> {
        let mut params = params;
        let param_grads = !matches!(params, ParamGradUse::Skip);
        // Index (in visit order) of each layer's first trainable tensor.
        let mut next = 0;
        let first_param: Vec<usize> = self
            .layers
            .iter()
            .map(|l| {
                let i = next;
                next += l.trainable_tensors();
                i
            })
            .collect();
        if let ParamGradUse::Collect(grads) = &mut params {
            grads.clear();
            grads.resize(next, Vec::new());
        }
        let mut hand_over = |index: usize, param: &mut [f32], grad: &[f32]| match &mut params {
            ParamGradUse::Skip => {}
            ParamGradUse::Collect(grads) => grads[index] = grad.to_vec(),
            ParamGradUse::Apply(update) => update.apply(index, param, grad),
        };
        let rows = trace.rows;
        let mut g = grad;
        // The input the last linear layer visited kept: the output of the layer before it.
        let mut next_input: Option<Vec<f32>> = None;
        // The first layer that needs an input gradient: below it, nothing is propagated.
        let first_needed = if input_grad {
            0
        } else {
            self.layers
                .iter()
                .position(|l| l.trainable_tensors() > 0)
                .map_or(self.layers.len(), |i| i + 1)
        };
        let Workspace {
            pool,
            weight_grad,
            transposed_input,
        } = workspace;
        for (i, (layer, saved)) in self.layers.iter_mut().zip(trace.saved).enumerate().rev() {
            let propagate = i >= first_needed;
            let p = first_param[i];
            // An activation whose output the next (linear) layer kept as its input.
            let saved = match saved {
                Saved::OutputIsNextInput => {
                    Saved::Output(next_input.take().expect("the next layer kept it"))
                }
                saved => saved,
            };
            match (layer, saved) {
                (
                    PlainLayer::Linear {
                        weight,
                        bias,
                        input,
                        out,
                    },
                    Saved::Input(x),
                ) => {
                    let w_mat = Mat::new(weight, *input, *out).t();
                    // Both products split over both threads, one after the other. In the step
                    // that measured the same as one thread each side by side, with one way
                    // instead of four.
                    let dw_db = if param_grads {
                        let dw = room(weight_grad, *input * *out);
                        weight_gradient(&x, rows, *input, &g, *out, dw, transposed_input);
                        let mut db = vec![0.0; *out];
                        column_sums(&g, *out, &mut db);
                        Some((dw, db))
                    } else {
                        None
                    };
                    // Computed from the weights before their update.
                    if propagate {
                        let mut dx = pool.take(rows * *input);
                        matmul(Mat::new(&g, rows, *out), w_mat, &mut dx);
                        pool.give(std::mem::replace(&mut g, dx));
                    }
                    if let Some((dw, db)) = dw_db {
                        hand_over(p, weight, dw);
                        hand_over(p + 1, bias, &db);
                    }
                    if let Some(unused) = next_input.replace(x) {
                        pool.give(unused);
                    }
                    continue;
                }
                (PlainLayer::LeakyRelu(slope), Saved::Output(y)) if propagate => {
                    let slope = *slope;
                    // dfdx's gradient at exactly 0 is 1.
                    zip_map(&mut g, &y, |d, v| {
                        if v < 0.0 {
                            *d *= slope
                        }
                    });
                    pool.give(y);
                }
                (PlainLayer::Relu, Saved::Output(y)) if propagate => {
                    zip_map(&mut g, &y, |d, v| {
                        if v <= 0.0 {
                            *d = 0.0
                        }
                    });
                    pool.give(y);
                }
                (PlainLayer::LeakyRelu(slope), Saved::Input(x)) if propagate => {
                    let slope = *slope;
                    zip_map(&mut g, &x, |d, v| {
                        if v < 0.0 {
                            *d *= slope
                        }
                    });
                    pool.give(x);
                }
                (PlainLayer::Tanh, Saved::Output(y)) if propagate => {
                    zip_map(&mut g, &y, |d, y| *d *= 1.0 - y * y);
                    pool.give(y);
                }
                (PlainLayer::Sigmoid, Saved::Output(y)) if propagate => {
                    zip_map(&mut g, &y, |d, y| *d *= y * (1.0 - y));
                    pool.give(y);
                }
                (
                    PlainLayer::BatchNorm { scale, offset, .. },
                    Saved::BatchStats {
                        normalised,
                        inv_std,
                    },
                ) => {
                    let cols = scale.len();
                    let n = rows as f32;
                    let (d_scale, d_offset) = scale_offset_grads(&g, &normalised, cols, pool);
                    if propagate {
                        let (ds, dof, s, is) = (&d_scale, &d_offset, &*scale, &inv_std);
                        let nz = &normalised;
                        for_rows(&mut g, cols, |i, r| {
                            let xr = &nz[i * cols..(i + 1) * cols];
                            for j in 0..cols {
                                r[j] = s[j] * is[j] * (r[j] - dof[j] / n - xr[j] * ds[j] / n);
                            }
                        });
                    }
                    if param_grads {
                        hand_over(p, scale, &d_scale);
                        hand_over(p + 1, offset, &d_offset);
                    }
                    pool.give(normalised);
                }
                (PlainLayer::BatchNorm { .. }, Saved::RunningScale(f)) => {
                    assert!(
                        !param_grads,
                        "running statistics only outside the own update"
                    );
                    if propagate {
                        let cols = f.len();
                        for_rows(&mut g, cols, |_, r| {
                            r.iter_mut().zip(&f).for_each(|(d, f)| *d *= f)
                        });
                    }
                }
                (PlainLayer::BatchNorm { scale, offset, .. }, Saved::Nothing) if param_grads => {
                    // Bypassed: no gradient flows to its parameters (zeros, as the tape gives).
                    let zeros = vec![0.0; scale.len()];
                    hand_over(p, scale, &zeros);
                    hand_over(p + 1, offset, &zeros);
                }
                (
                    PlainLayer::LayerNorm { scale, offset, .. },
                    Saved::RowStats {
                        normalised,
                        inv_std,
                    },
                ) => {
                    let cols = scale.len();
                    // The parameter gradients from the incoming gradient, handed over only after
                    // the input gradient is computed from the scale before its update.
                    let param_grads =
                        param_grads.then(|| scale_offset_grads(&g, &normalised, cols, pool));
                    if propagate {
                        let n = cols as f32;
                        let (nz, s, is) = (&normalised, &*scale, &inv_std);
                        for_rows(&mut g, cols, |r, row| {
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
                        hand_over(p, scale, &d_scale);
                        hand_over(p + 1, offset, &d_offset);
                    }
                }
                (PlainLayer::Dropout(_), Saved::Mask(mask)) if propagate => {
                    zip_map(&mut g, &mask, |d, m| *d *= m);
                    pool.give(mask);
                }
                _ => {}
            }
            if let Some(unused) = next_input.take() {
                pool.give(unused);
            }
        }
        if let Some(unused) = next_input {
            pool.give(unused);
        }
        if input_grad {
            Some(g)
        } else {
            pool.give(g);
            None
        }
    }
}

/// The gradients of a normalisation's scale and offset: the column sums of `g * normalised`
/// and of `g` (batch norm and layer norm alike).
fn scale_offset_grads(
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

/// `dw = x^T g` for a layer input `x` (`rows x input`) and output gradient `g` (`rows x out`),
/// over both threads, with `x` transposed first.
///
/// Why transposed: faer packs the left operand but reads the right one in place, and `x^T` read
/// in place strides by whole rows: at batch 1024 the transposed product runs at 93-113 GFLOP/s
/// against 72-97 in place (`examples/product_shapes.rs`). At batch 100 reading `x^T` in place
/// was faster alone (105-128 against 95-118) but no faster in the step, and it sums in another
/// order: the paper config's results would change in their last bits from earlier versions',
/// so the transposed product is kept for every batch.
fn weight_gradient(
    x: &[f32],
    rows: usize,
    input: usize,
    g: &[f32],
    out: usize,
    dw: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let x_t = room(scratch, rows * input);
    transpose_into(x, rows, input, x_t);
    matmul(Mat::new(x_t, input, rows), Mat::new(g, rows, out), dw);
}

/// The first `len` values of `buffer`, grown (with zeros) when shorter: scratch space whose
/// old contents the caller overwrites.
fn room(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InitConfig, InitKind, LayerSpec};
    use crate::model::Mode;
    // This module's `Trace` (a forward pass's record) hides dfdx's trait of that name.
    use dfdx::tensor::Trace as _;
    use rand::SeedableRng;

    /// A layer norm between two linear layers: the plain backward pass gives the tape's
    /// gradients for the input and every parameter, the scale and offset included.
    #[test]
    fn layer_norm_gradients_match_the_tape() {
        let dev = Cpu::seed_from_u64(3);
        let specs = [
            LayerSpec::Linear {
                input: None,
                out: 6,
            },
            LayerSpec::LayerNorm { eps: 1e-5 },
            LayerSpec::Linear {
                input: None,
                out: 3,
            },
        ];
        let init = InitConfig {
            weights: InitKind::Normal { std: 0.5 },
            ..InitConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut net = Network::build("n", &specs, 5, &init, &dev, &mut rng);
        if let Layer::LayerNorm { scale, offset, .. } = &mut net.layers[1] {
            *scale = dev.sample_uniform_like(&(6,));
            *offset = dev.sample_uniform_like(&(6,));
        }
        let x: crate::model::Matrix = dev.sample_uniform_like(&(4, 5));
        let w: crate::model::Matrix = dev.sample_uniform_like(&(4, 3));
        let y = net.forward(x.clone().leaky_traced(), Mode::Eval);
        let grads = (y * w.clone()).sum::<Rank0, _>().backward();
        let mut plain = PlainNet::check_out(&net);
        let mut workspace = Workspace::default();
        let (_, trace) = plain.forward(x.as_vec(), 4, None, true, &mut workspace);
        let mut collected = Vec::new();
        let dx = plain
            .backward(
                trace,
                w.as_vec(),
                true,
                ParamGradUse::Collect(&mut collected),
                &mut workspace,
            )
            .unwrap();
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{what}");
            for (p, q) in a.iter().zip(b) {
                assert!(
                    (p - q).abs() < 1e-5 * (1.0 + q.abs()),
                    "{what}: {a:?} vs {b:?}"
                );
            }
        };
        close(&dx, &grads.get(&x).as_vec(), "input");
        let Layer::LayerNorm { scale, offset, .. } = &net.layers[1] else {
            unreachable!()
        };
        close(&collected[2], &grads.get(scale).as_vec(), "scale");
        close(&collected[3], &grads.get(offset).as_vec(), "offset");
        let Layer::Linear { weight, .. } = &net.layers[0] else {
            unreachable!()
        };
        close(&collected[0], &grads.get(weight).as_vec(), "first weight");
    }
}
