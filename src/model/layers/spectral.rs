//! Spectral normalisation (Miyato et al. 2018), shared by `linear`, `conv2d` and
//! `conv_transpose2d` (not a layer kind): a weight matrix divided by an estimate of its largest singular value,
//! `sigma = v^T W u`, with `u` and `v` moved by one power iteration at the start of each of the
//! network's own updates and held fixed within it. Gradients flow through `sigma` as in
//! PyTorch's `spectral_norm`; `u` and `v` are checkpointed, so a resumed run continues exactly.
//!
//! A weight is taken as the row-major matrix it is stored as (`[in, out]` for a linear layer,
//! `[filters, in_channels * kernel * kernel]` for a convolution, as Miyato et al. reshape it),
//! or, for a transposed convolution, regrouped by its layer into PyTorch's
//! `[out, in_channels * kernel * kernel]`: `u` has a row's length, `v` one number per row.

use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::model::kernels::{for_rows, BufferPool};
use crate::model::{Matrix, Vector};

/// The power iteration's estimates of a weight's top singular vectors: `sigma = v^T W u`.
#[derive(Debug, Clone)]
pub struct Spectral {
    /// `[row length]`, unit length.
    pub u: Vector,
    /// `[rows]`, unit length.
    pub v: Vector,
}

impl Spectral {
    /// Fresh vectors for the row-major `weight` with rows of `row_len`: `u` a random unit
    /// vector drawn from `rng` (after the layer's weights and biases, so that a config without
    /// spectral norm draws what it always drew), `v` following from it.
    pub fn new(weight: &[f32], row_len: usize, dev: &Cpu, rng: &mut ChaCha8Rng) -> Spectral {
        let normal = rand_distr::Normal::new(0.0f32, 1.0).expect("unit normal");
        let mut u: Vec<f32> = (0..row_len).map(|_| rng.sample(normal)).collect();
        normalise(&mut u);
        let mut v = vec![0.0; weight.len() / row_len];
        weight_times(weight, row_len, &u, &mut v);
        normalise(&mut v);
        Spectral {
            v: dev.tensor_from_vec(v, (weight.len() / row_len,)),
            u: dev.tensor_from_vec(u, (row_len,)),
        }
    }

    /// `sigma = v^T W u` from the kept vectors (what the next forward pass divides by, before
    /// its power iteration).
    pub fn sigma(&self, weight: &Matrix) -> f64 {
        self.sigma_of(&weight.as_vec())
    }

    /// `sigma = v^T M u` for the row-major matrix `M` the weight is normalised as.
    pub fn sigma_of(&self, matrix: &[f32]) -> f64 {
        let u = self.u.as_vec();
        sigma(matrix, u.len(), &u, &self.v.as_vec()) as f64
    }

    /// `v u^T`, row-major: `d sigma / d M`.
    pub fn outer(&self) -> Vec<f32> {
        outer_product(&self.v.as_vec(), &self.u.as_vec())
    }

    /// `W / sigma`, on the tape of `T` (`u` and `v` are constants): the reference's weight.
    pub fn divide<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, weight: &Matrix) -> Matrix<T> {
        self.divide_along(weight, self.outer())
    }

    /// `W / sigma` with `sigma = <W, outer>`, on the tape of `T`: `outer` is [`Spectral::outer`]
    /// laid out as `W` is stored (for a weight normalised as another grouping of it).
    pub fn divide_along<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        weight: &Matrix,
        outer: Vec<f32>,
    ) -> Matrix<T> {
        let shape = *weight.shape();
        let outer: Matrix = weight.device().tensor_from_vec(outer, shape);
        let sigma = (weight.retaped::<T>() * outer).sum::<Rank0, _>();
        weight.retaped::<T>() / sigma.broadcast_like::<_, Axes2<0, 1>>(&shape)
    }

    /// One power iteration on `weight`'s current values.
    pub fn start_step(&mut self, weight: &Matrix) {
        self.start_step_on(&weight.as_vec());
    }

    /// One power iteration on the row-major matrix `M` the weight is normalised as.
    pub fn start_step_on(&mut self, matrix: &[f32]) {
        let (mut u, mut v) = (self.u.as_vec(), self.v.as_vec());
        power_iteration(matrix, u.len(), &mut u, &mut v);
        self.u.copy_from(&u);
        self.v.copy_from(&v);
    }
}

/// For a layer whose tensors are its weight first and spectral norm's `u`, `v` last: with
/// `spectral`, `W / sigma` (divided as the reference divides) in a buffer of `pool`, and
/// `1 / sigma`; `None` without, where the layer applies `W` itself.
pub fn divided(
    spectral: bool,
    tensors: &[Vec<f32>],
    pool: &mut BufferPool,
) -> Option<(Vec<f32>, f32)> {
    let [weight, .., u, v] = tensors else {
        return None;
    };
    if !spectral {
        return None;
    }
    Some(divided_by(weight, sigma(weight, u.len(), u, v), pool))
}

/// `W / sigma` in a buffer of `pool`, and `1 / sigma`: what [`divided`] returns, for a layer
/// that computes `sigma` on another grouping of its weight.
pub fn divided_by(weight: &[f32], sigma: f32, pool: &mut BufferPool) -> (Vec<f32>, f32) {
    let mut divided = pool.take(weight.len());
    divided
        .iter_mut()
        .zip(weight)
        .for_each(|(d, w)| *d = w / sigma);
    (divided, 1.0 / sigma)
}

/// `v u^T`, row-major `[v.len(), u.len()]`.
fn outer_product(v: &[f32], u: &[f32]) -> Vec<f32> {
    v.iter()
        .flat_map(|&vi| u.iter().map(move |&uj| vi * uj))
        .collect()
}

/// One power iteration from `u`: `v = W u / |W u|`, then `u = W^T v / |W^T v|` (`W` row-major
/// with rows of `row_len`). Both paths run this same sequential arithmetic, so that `u` and `v`
/// are the same bits on either and on any number of threads.
pub fn power_iteration(weight: &[f32], row_len: usize, u: &mut [f32], v: &mut [f32]) {
    weight_times(weight, row_len, u, v);
    normalise(v);
    u.fill(0.0);
    for (row, &vi) in weight.chunks(row_len).zip(&*v) {
        u.iter_mut().zip(row).for_each(|(uj, w)| *uj += w * vi);
    }
    normalise(u);
}

/// `v = W u`.
fn weight_times(weight: &[f32], row_len: usize, u: &[f32], v: &mut [f32]) {
    for (vi, row) in v.iter_mut().zip(weight.chunks(row_len)) {
        *vi = row.iter().zip(u).map(|(w, u)| w * u).sum();
    }
}

/// Scales `x` to unit length (PyTorch's guard of 1e-12 against a zero vector).
fn normalise(x: &mut [f32]) {
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    x.iter_mut().for_each(|v| *v /= norm);
}

/// `sigma = v^T W u`, accumulated in f64.
pub fn sigma(weight: &[f32], row_len: usize, u: &[f32], v: &[f32]) -> f32 {
    weight
        .chunks(row_len)
        .zip(v)
        .map(|(row, &vi)| vi as f64 * row.iter().zip(u).map(|(w, u)| (w * u) as f64).sum::<f64>())
        .sum::<f64>() as f32
}

/// Turns `dw`, the gradient of `W / sigma` (as computed for an unnormalised layer), into the
/// gradient of `W`: `(dw - <dw, W / sigma> v u^T) / sigma`, since `d sigma / dW = v u^T`.
pub fn through_sigma(dw: &mut [f32], weight: &[f32], scale: f32, u: &[f32], v: &[f32]) {
    let row_len = u.len();
    let along: f64 = dw.iter().zip(weight).map(|(d, w)| (d * w) as f64).sum();
    let c = (along as f32) * scale * scale;
    for_rows(dw, row_len, |i, r| {
        let cv = c * v[i];
        r.iter_mut()
            .zip(u)
            .for_each(|(d, uj)| *d = *d * scale - cv * uj);
    });
}
