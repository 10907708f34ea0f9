//! Batch-norm's and layer-norm's part of a gradient penalty's second pass
//! ([`super::PenaltyPass`]). Their input gradient depends on their input through the
//! statistics they normalise with, so besides moving the adjoint on they give the penalty a
//! gradient with respect to their input (the pass's `curvature`). Both normalise groups of
//! numbers (batch-norm a feature or channel over the batch, layer-norm a row), so the
//! arithmetic is written once, on numbers laid out group by group.
//!
//! Per group of `n` numbers, with `s = 1 / sqrt(var + eps)` and `z = (x - mean) s`, the first
//! backward pass gave `dx = N h`, where `h` is the gradient that reached `z` (the scale times
//! the output gradient) and `N = s (I - 1 1^T / n - z z^T / n)` is the Jacobian of `z`, which
//! is symmetric. For an adjoint `a = dP/d(dx)`: `dP/dh = N a`, and the gradient of `<a, N h>`
//! with respect to `x`, `h` held, is
//! `-s^2 (z (mean(a h) - mean(a) mean(h) - 3 mean(h z) mean(a z)) + mean(a z) (h - mean(h))
//! + mean(h z) (a - mean(a)))`. The finite-difference tests of `model::penalty_check` check it.

use super::BatchNormMode;

/// For `x`, `h` and `a` laid out group by group (`len` numbers each): `N a` and the gradient
/// of `<a, N h>` with respect to `x` (see the module docs).
pub(super) fn grouped(
    x: &[f32],
    h: &[f32],
    a: &[f32],
    len: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (mut jacobian_a, mut curvature) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let n = len as f32;
    let mean = |v: &mut dyn Iterator<Item = f32>| v.sum::<f32>() / n;
    let groups = x
        .chunks_exact(len)
        .zip(h.chunks_exact(len))
        .zip(a.chunks_exact(len));
    let outputs = jacobian_a
        .chunks_exact_mut(len)
        .zip(curvature.chunks_exact_mut(len));
    for (((x, h), a), (na, c)) in groups.zip(outputs) {
        let centre = mean(&mut x.iter().copied());
        let var = mean(&mut x.iter().map(|v| (v - centre) * (v - centre)));
        let s = 1.0 / (var + eps).sqrt();
        let z: Vec<f32> = x.iter().map(|v| (v - centre) * s).collect();
        let (mean_a, mean_h) = (mean(&mut a.iter().copied()), mean(&mut h.iter().copied()));
        let mean_az = mean(&mut a.iter().zip(&z).map(|(a, z)| a * z));
        let mean_hz = mean(&mut h.iter().zip(&z).map(|(h, z)| h * z));
        let mean_ah = mean(&mut a.iter().zip(h).map(|(a, h)| a * h));
        let along_z = mean_ah - mean_a * mean_h - 3.0 * mean_hz * mean_az;
        for i in 0..len {
            na[i] = s * (a[i] - mean_a - z[i] * mean_az);
            c[i] =
                -s * s * (z[i] * along_z + mean_az * (h[i] - mean_h) + mean_hz * (a[i] - mean_a));
        }
    }
    (jacobian_a, curvature)
}

/// `x` read as an `[a, b]` grid of blocks of `block` numbers, laid out as `[b, a]`: a batch
/// of `rows` images of `channels` planes (`swap_outer(x, rows, channels, positions)`) channel
/// by channel, each channel's numbers over the batch together; the same call with `a` and `b`
/// exchanged undoes it.
fn swap_outer(x: &[f32], a: usize, b: usize, block: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for (k, from) in x.chunks_exact(block).enumerate() {
        let (i, j) = (k / b, k % b);
        out[(j * a + i) * block..][..block].copy_from_slice(from);
    }
    out
}

/// Batch-norm's penalty pass, outside the network's own update: with the batch's own
/// statistics in mode `batch`, an affine map per channel in mode `running`, nothing in the
/// retired mode (bypassed there). `tensors` start with the scale; the offset gets no gradient
/// (the input gradient does not depend on it).
pub(super) fn batch_norm(
    mode: BatchNormMode,
    positions: usize,
    eps: f32,
    tensors: &[Vec<f32>],
    pass: super::PenaltyPass<'_>,
) {
    let (scale, rows) = (&tensors[0], pass.rows);
    let channels = scale.len();
    let group = rows * positions;
    match mode {
        BatchNormMode::BatchStatsOnly => {}
        BatchNormMode::Running => {
            let inv_std: Vec<f32> = tensors[3].iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            for (i, (a, g)) in pass.adjoint.iter_mut().zip(pass.out_grad).enumerate() {
                let c = (i / positions) % channels;
                pass.grads[0][c] += *a * g * inv_std[c];
                *a *= scale[c] * inv_std[c];
            }
        }
        BatchNormMode::Batch => {
            let x = swap_outer(pass.input, rows, channels, positions);
            let g = swap_outer(pass.out_grad, rows, channels, positions);
            let a = swap_outer(pass.adjoint, rows, channels, positions);
            let h: Vec<f32> = g
                .iter()
                .enumerate()
                .map(|(i, g)| g * scale[i / group])
                .collect();
            let (mut na, curvature) = grouped(&x, &h, &a, group, eps);
            for (c, (na, g)) in na.chunks_exact_mut(group).zip(g.chunks(group)).enumerate() {
                pass.grads[0][c] += na.iter().zip(g).map(|(n, g)| n * g).sum::<f32>();
                na.iter_mut().for_each(|v| *v *= scale[c]);
            }
            *pass.adjoint = swap_outer(&na, channels, rows, positions);
            *pass.curvature = swap_outer(&curvature, channels, rows, positions);
        }
    }
}
