//! The gradient penalty's double backpropagation (`PlainNet::penalty_gradients`) against
//! central finite differences of the penalty computed in f64, per layer kind a discriminator
//! can hold: dfdx 0.13 has no second-order gradients, so this is the penalty's reference.
//! Convolutions enter the f64 computation as the dense matrices their patches define.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::backprop::{PlainNet, Workspace};
use super::layers::Grouping;
use super::layers::LayerNorm;
use super::{BatchNorm, BatchNormMode, Layer, LayerSpec, Network};

/// One layer of the f64 reference, its tensors in f64.
enum F64Layer {
    /// `y = x W + b` (a convolution's or upsampling's dense matrix), `W` already divided by
    /// spectral norm's sigma.
    Linear {
        w: Vec<f64>,
        b: Vec<f64>,
    },
    LeakyRelu,
    Relu,
    /// Reshape, flatten, dropout outside training.
    Same,
    Tanh,
    Sigmoid,
    Elu(f64),
    /// `scale[k] * (x - mean) / sqrt(var + eps) + offset[k]` over each group of indices, `k`
    /// the element's scale index; with `fixed`, each group's mean and variance given (running
    /// batch-norm).
    Normalise {
        groups: Vec<Vec<usize>>,
        scale_index: Vec<usize>,
        scale: Vec<f64>,
        offset: Vec<f64>,
        fixed: Option<(Vec<f64>, Vec<f64>)>,
        eps: f64,
    },
}

impl F64Layer {
    fn forward(&self, x: &[f64], rows: usize) -> Vec<f64> {
        match self {
            F64Layer::Linear { w, b } => {
                let (out, w_in) = (b.len(), w.len() / b.len());
                let mut y = vec![0.0; rows * out];
                for r in 0..rows {
                    for j in 0..out {
                        y[r * out + j] = b[j]
                            + (0..w_in)
                                .map(|i| x[r * w_in + i] * w[i * out + j])
                                .sum::<f64>();
                    }
                }
                y
            }
            F64Layer::LeakyRelu => x
                .iter()
                .map(|&v| if v < 0.0 { 0.2 * v } else { v })
                .collect(),
            F64Layer::Relu => x.iter().map(|v| v.max(0.0)).collect(),
            F64Layer::Same => x.to_vec(),
            F64Layer::Tanh => x.iter().map(|v| v.tanh()).collect(),
            F64Layer::Sigmoid => x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
            F64Layer::Elu(alpha) => x
                .iter()
                .map(|&v| if v <= 0.0 { alpha * (v.exp() - 1.0) } else { v })
                .collect(),
            F64Layer::Normalise {
                groups,
                scale_index,
                scale,
                offset,
                ..
            } => {
                let mut y = vec![0.0; x.len()];
                for (k, group) in groups.iter().enumerate() {
                    let (mean, s) = self.statistics(x, k);
                    for &i in group {
                        let z = (x[i] - mean) * s;
                        y[i] = scale[scale_index[i]] * z + offset[scale_index[i]];
                    }
                }
                y
            }
        }
    }

    /// A normalisation's group `k`: its mean and `1 / sqrt(var + eps)`.
    fn statistics(&self, x: &[f64], k: usize) -> (f64, f64) {
        let F64Layer::Normalise {
            groups, fixed, eps, ..
        } = self
        else {
            unreachable!("a normalisation")
        };
        let (mean, var) = match fixed {
            Some((m, v)) => (m[k], v[k]),
            None => {
                let n = groups[k].len() as f64;
                let mean = groups[k].iter().map(|&i| x[i]).sum::<f64>() / n;
                let var = groups[k]
                    .iter()
                    .map(|&i| (x[i] - mean).powi(2))
                    .sum::<f64>()
                    / n;
                (mean, var)
            }
        };
        (mean, 1.0 / (var + eps).sqrt())
    }

    /// The input gradient from the output gradient `g`, at input `x`.
    fn backward(&self, x: &[f64], g: &[f64], rows: usize) -> Vec<f64> {
        match self {
            F64Layer::Linear { w, b } => {
                let (out, w_in) = (b.len(), w.len() / b.len());
                let mut d = vec![0.0; rows * w_in];
                for r in 0..rows {
                    for i in 0..w_in {
                        d[r * w_in + i] = (0..out)
                            .map(|j| g[r * out + j] * w[i * out + j])
                            .sum::<f64>();
                    }
                }
                d
            }
            F64Layer::LeakyRelu => g
                .iter()
                .zip(x)
                .map(|(d, &v)| if v < 0.0 { 0.2 * d } else { *d })
                .collect(),
            F64Layer::Relu => g
                .iter()
                .zip(x)
                .map(|(d, &v)| if v <= 0.0 { 0.0 } else { *d })
                .collect(),
            F64Layer::Same => g.to_vec(),
            F64Layer::Tanh => g
                .iter()
                .zip(x)
                .map(|(d, v)| d * (1.0 - v.tanh().powi(2)))
                .collect(),
            F64Layer::Sigmoid => g
                .iter()
                .zip(x)
                .map(|(d, v)| {
                    let y = 1.0 / (1.0 + (-v).exp());
                    d * y * (1.0 - y)
                })
                .collect(),
            F64Layer::Elu(alpha) => g
                .iter()
                .zip(x)
                .map(|(d, &v)| if v <= 0.0 { d * alpha * v.exp() } else { *d })
                .collect(),
            F64Layer::Normalise {
                groups,
                scale_index,
                scale,
                fixed,
                ..
            } => {
                let mut d = vec![0.0; x.len()];
                for (k, group) in groups.iter().enumerate() {
                    let (mean, s) = self.statistics(x, k);
                    let h = |i: usize| g[i] * scale[scale_index[i]];
                    if fixed.is_some() {
                        group.iter().for_each(|&i| d[i] = s * h(i));
                        continue;
                    }
                    let n = group.len() as f64;
                    let z = |i: usize| (x[i] - mean) * s;
                    let mean_h = group.iter().map(|&i| h(i)).sum::<f64>() / n;
                    let mean_hz = group.iter().map(|&i| h(i) * z(i)).sum::<f64>() / n;
                    for &i in group {
                        d[i] = s * (h(i) - mean_h - z(i) * mean_hz);
                    }
                }
                d
            }
        }
    }
}

/// The penalty `mean(|grad_x D(x)|^2) / 2` of a D in f64, D's outputs summed with the
/// weights `along` (all 1 without).
fn penalty_f64(layers: &[F64Layer], x: &[f64], rows: usize, along: Option<&[f64]>) -> f64 {
    let mut inputs = Vec::new();
    let mut h = x.to_vec();
    for layer in layers {
        let next = layer.forward(&h, rows);
        inputs.push(std::mem::replace(&mut h, next));
    }
    let mut g = along.map_or_else(|| vec![1.0; h.len()], <[f64]>::to_vec);
    assert_eq!(g.len(), h.len(), "one weight per output");
    for (layer, input) in layers.iter().zip(&inputs).rev() {
        g = layer.backward(input, &g, rows);
    }
    g.iter().map(|v| v * v).sum::<f64>() / (2.0 * rows as f64)
}

/// A network of `layers` on `input` features, weights drawn from -1..1 (large enough that the
/// penalty is far from zero) and one step of power iteration taken (so that spectral norm's u
/// and v are not the initial ones).
fn network(layers: &str, input: usize, rng: &mut ChaCha8Rng) -> (Network, PlainNet) {
    #[derive(serde::Deserialize)]
    struct L {
        layers: Vec<LayerSpec>,
    }
    let specs = toml::from_str::<L>(&format!("layers = [{layers}]"))
        .unwrap()
        .layers;
    let init = crate::model::init::InitConfig::default();
    let mut net = Network::build("d", &specs, input, &init, &Cpu::default(), rng);
    let mut plain = PlainNet::check_out(&net);
    for (t, &trainable) in plain.tensors.iter_mut().zip(&plain.trainable) {
        // Running statistics too (a variance must stay positive): each channel its own.
        let range = if trainable { -1.0..1.0 } else { 0.5..1.5 };
        t.iter_mut().for_each(|v| *v = rng.gen_range(range.clone()));
    }
    plain.start_step();
    plain.check_in(&mut net);
    (net, plain)
}

/// The layers as [`penalty_f64`] takes them, from every tensor of the network in f64:
/// convolutions become dense linear layers (their matrix and their bias repeated over
/// positions), normalisations groups of indices, reshapes pass through. `rows` rows.
fn layers_f64(net: &Network, plain: &PlainNet, tensors: &[Vec<f64>], rows: usize) -> Vec<F64Layer> {
    let dense = |index: &[Option<usize>], w: &[f64]| -> Vec<f64> {
        index.iter().map(|i| i.map_or(0.0, |k| w[k])).collect()
    };
    let repeated = |bias: Option<&Vec<f64>>, channels: usize, positions: usize| -> Vec<f64> {
        (0..channels * positions)
            .map(|i| bias.map_or(0.0, |b| b[i / positions]))
            .collect()
    };
    net.layers
        .iter()
        .zip(&plain.ranges)
        .map(|(layer, range)| {
            let t = &tensors[range.clone()];
            match layer {
                Layer::Linear(_) => {
                    let w = match t.len() {
                        4 => divided_f64(&t[0], &t[2], &t[3]),
                        _ => t[0].clone(),
                    };
                    F64Layer::Linear { w, b: t[1].clone() }
                }
                Layer::LeakyRelu(l) => {
                    assert_eq!(l.slope, 0.2, "the f64 penalty's leaky slope");
                    F64Layer::LeakyRelu
                }
                Layer::Relu(_) => F64Layer::Relu,
                Layer::Tanh(_) => F64Layer::Tanh,
                Layer::Sigmoid(_) => F64Layer::Sigmoid,
                Layer::Elu(e) => F64Layer::Elu(e.alpha),
                Layer::Reshape(_) | Layer::Flatten(_) | Layer::Dropout(_) | Layer::Identity(_) => {
                    F64Layer::Same
                }
                Layer::BatchNorm(b) => batch_norm_f64(b, t, rows),
                Layer::LayerNorm(l) => layer_norm_f64(l, t, rows),
                Layer::Conv2d(c) => {
                    let (filters, p) = (c.weight.shape().0, c.patches);
                    let w = match c.spectral {
                        Some(_) => divided_f64(&t[0], &t[t.len() - 2], &t[t.len() - 1]),
                        None => t[0].clone(),
                    };
                    F64Layer::Linear {
                        w: dense(&p.dense_index(filters), &w),
                        b: repeated(c.bias.is_some().then(|| &t[1]), filters, p.positions()),
                    }
                }
                Layer::ConvTranspose2d(c) => {
                    let (channels, p) = (c.weight.shape().0, c.patches);
                    let (inputs, outputs) = (channels * p.positions(), p.image_len());
                    let index = p.dense_index(channels);
                    let transposed: Vec<Option<usize>> = (0..inputs * outputs)
                        .map(|e| index[(e % outputs) * inputs + e / outputs])
                        .collect();
                    // Spectral norm on PyTorch's grouping of the weight.
                    let grouping = Grouping::of(channels, &p);
                    let w = match c.spectral {
                        Some(_) => grouping.stored(&divided_f64(
                            &grouping.filters_first(&t[0]),
                            &t[t.len() - 2],
                            &t[t.len() - 1],
                        )),
                        None => t[0].clone(),
                    };
                    let bias = c.bias.is_some().then(|| &t[1]);
                    F64Layer::Linear {
                        w: dense(&transposed, &w),
                        b: repeated(bias, p.channels, p.height * p.width),
                    }
                }
                Layer::Upsample(u) => {
                    // The 0/1 matrix that copies each input number to its outputs.
                    let (inputs, sources) = (u.image.0 * u.image.1 * u.image.2, u.sources());
                    let outputs = sources.len();
                    let mut m = vec![0.0; inputs * outputs];
                    sources
                        .iter()
                        .enumerate()
                        .for_each(|(o, &i)| m[i * outputs + o] = 1.0);
                    F64Layer::Linear {
                        w: m,
                        b: vec![0.0; outputs],
                    }
                }
            }
        })
        .collect()
}

/// Batch-norm: one group per channel, over the batch and the channel's positions.
fn batch_norm_f64(b: &BatchNorm, t: &[Vec<f64>], rows: usize) -> F64Layer {
    let (channels, positions) = (t[0].len(), b.positions);
    let groups = (0..channels)
        .map(|c| {
            (0..rows * positions)
                .map(|k| ((k / positions) * channels + c) * positions + k % positions)
                .collect()
        })
        .collect();
    let len = rows * channels * positions;
    let fixed = match b.mode {
        BatchNormMode::Running => Some((t[2].clone(), t[3].clone())),
        _ => None,
    };
    F64Layer::Normalise {
        groups,
        scale_index: (0..len).map(|i| (i / positions) % channels).collect(),
        scale: t[0].clone(),
        offset: t[1].clone(),
        fixed,
        eps: b.eps as f64,
    }
}

/// Layer-norm: one group per row, or (over channels) per position's channels.
fn layer_norm_f64(l: &LayerNorm, t: &[Vec<f64>], rows: usize) -> F64Layer {
    let (cols, positions) = (t[0].len(), l.positions);
    let per_row = cols * positions;
    let groups = (0..rows * positions)
        .map(|k| {
            let (r, p) = (k / positions, k % positions);
            (0..cols).map(|c| r * per_row + c * positions + p).collect()
        })
        .collect();
    F64Layer::Normalise {
        groups,
        scale_index: (0..rows * per_row)
            .map(|i| (i % per_row) / positions)
            .collect(),
        scale: t[0].clone(),
        offset: t[1].clone(),
        fixed: None,
        eps: l.eps as f64,
    }
}

/// `W / sigma` in f64, `sigma = v^T W u` over `W`'s rows (as long as `u`).
fn divided_f64(w: &[f64], u: &[f64], v: &[f64]) -> Vec<f64> {
    let sigma: f64 = w
        .chunks(u.len())
        .zip(v)
        .map(|(row, vi)| vi * row.iter().zip(u).map(|(a, b)| a * b).sum::<f64>())
        .sum();
    w.iter().map(|x| x / sigma).collect()
}

/// Checks the fast penalty gradients of the network of `layers` on `input` features against
/// central finite differences of [`penalty_f64`], D's outputs summed with the weights `along`
/// (a class-conditional head's score) where given. Tolerance: 1e-3 of the largest gradient
/// (the fast path is f32).
fn penalty_matches_finite_differences(layers: &str, input: usize) {
    penalty_along_matches_finite_differences(layers, input, |_| None)
}

fn penalty_along_matches_finite_differences(
    layers: &str,
    input: usize,
    along: impl Fn(usize) -> Option<Vec<f32>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (net, mut plain) = network(layers, input, &mut rng);
    let rows = 6;
    let x: Vec<f32> = (0..rows * input)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let along = along(rows);
    let along64: Option<Vec<f64>> = along
        .as_ref()
        .map(|a| a.iter().map(|&v| v as f64).collect());
    let mut workspace = Workspace::default();
    let (value, grads) = plain
        .penalty_gradients(x.clone(), rows, along, &mut workspace, |g| {
            let n = rows as f32;
            let value = g.iter().map(|v| v * v).sum::<f32>() / (2.0 * n);
            (value, g.iter().map(|v| v / n).collect())
        })
        .expect("every layer kind takes part");
    let tensors: Vec<Vec<f64>> = plain
        .tensors
        .iter()
        .map(|t| t.iter().map(|&v| v as f64).collect())
        .collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let penalty = |tensors: &[Vec<f64>]| {
        let layers = layers_f64(&net, &plain, tensors, rows);
        penalty_f64(&layers, &x64, rows, along64.as_deref())
    };
    let exact = penalty(&tensors);
    assert!(
        (value as f64 - exact).abs() < 1e-4 * exact.max(1.0),
        "{layers}: {value} vs {exact}"
    );
    let largest = grads.iter().flatten().fold(0.0f32, |m, g| m.max(g.abs()));
    assert!(
        largest > 1e-2,
        "a penalty with gradients to check: largest {largest}"
    );
    let trainable: Vec<usize> = (0..tensors.len()).filter(|&i| plain.trainable[i]).collect();
    assert_eq!(trainable.len(), grads.len());
    for (&index, grad) in trainable.iter().zip(&grads) {
        for (e, &fast) in grad.iter().enumerate() {
            let eps = 1e-6;
            let at = |delta: f64| {
                let mut moved = tensors.clone();
                moved[index][e] += delta;
                penalty(&moved)
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (fast as f64 - numeric).abs() < 1e-3 * largest as f64,
                "{layers}: tensor {index} element {e}: {fast} vs finite differences {numeric}"
            );
        }
    }
}

/// Linear layers with and without spectral norm, leaky ReLU and ReLU.
#[test]
fn penalty_gradients_match_finite_differences() {
    penalty_matches_finite_differences(
        r#"{type = "linear", out = 4, spectral_norm = true}, {type = "leaky_relu", slope = 0.2},
           {type = "linear", out = 3}, {type = "relu"}, {type = "linear", out = 1, spectral_norm = true}"#,
        5,
    );
}

/// A convolutional D: reshape, a strided padded convolution, a transposed convolution without
/// bias, flatten and a linear head.
#[test]
fn penalty_gradients_through_convolutions_match_finite_differences() {
    penalty_matches_finite_differences(
        r#"{type = "reshape", shape = [2, 4, 4]},
           {type = "conv2d", out = 3, kernel = 3, stride = 2, padding = 1},
           {type = "leaky_relu", slope = 0.2},
           {type = "conv_transpose2d", out = 2, kernel = 2, stride = 2, bias = false},
           {type = "relu"}, {type = "flatten"}, {type = "linear", out = 1}"#,
        32,
    );
    // Upsampling between convolutions.
    penalty_matches_finite_differences(
        r#"{type = "reshape", shape = [2, 3, 3]}, {type = "upsample"},
           {type = "conv2d", out = 2, kernel = 3, stride = 2},
           {type = "leaky_relu", slope = 0.2}, {type = "flatten"}, {type = "linear", out = 1}"#,
        18,
    );
    // Spectral norm on a convolution, with and without a bias.
    penalty_matches_finite_differences(
        r#"{type = "reshape", shape = [2, 4, 4]},
           {type = "conv2d", out = 3, kernel = 3, stride = 2, padding = 1, spectral_norm = true},
           {type = "leaky_relu", slope = 0.2},
           {type = "conv2d", out = 2, kernel = 2, bias = false, spectral_norm = true},
           {type = "flatten"}, {type = "linear", out = 1}"#,
        32,
    );
    // Spectral norm on transposed convolutions (PyTorch's grouping), with and without a bias.
    penalty_matches_finite_differences(
        r#"{type = "reshape", shape = [2, 3, 3]},
           {type = "conv_transpose2d", out = 3, kernel = 2, stride = 2, spectral_norm = true},
           {type = "leaky_relu", slope = 0.2},
           {type = "conv_transpose2d", out = 2, kernel = 3, bias = false, spectral_norm = true},
           {type = "flatten"}, {type = "linear", out = 1}"#,
        18,
    );
}

/// Class-conditional heads (`loss::Head`, after this module, so its weights are spelt out
/// here): the projection discriminator's score is output 0 plus output `1 + label`, the
/// auxiliary classifier's output 0 alone; 4 outputs (3 classes), row r labelled r % 3.
#[test]
fn penalty_gradients_through_class_conditional_heads_match_finite_differences() {
    let d = r#"{type = "linear", out = 4, spectral_norm = true}, {type = "leaky_relu", slope = 0.2},
               {type = "linear", out = 4, spectral_norm = true}"#;
    let weights = |rows: usize, projection: bool| {
        let mut w = vec![0.0; rows * 4];
        for (r, row) in w.chunks_exact_mut(4).enumerate() {
            row[0] = 1.0;
            if projection {
                row[1 + r % 3] = 1.0;
            }
        }
        Some(w)
    };
    penalty_along_matches_finite_differences(d, 5, |rows| weights(rows, true));
    penalty_along_matches_finite_differences(d, 5, |rows| weights(rows, false));
}

/// Smooth activations, whose second derivatives do not vanish: the penalty's gradient has a
/// part through each one's dependence on its input (the last backward pass).
#[test]
fn penalty_gradients_through_smooth_activations_match_finite_differences() {
    penalty_matches_finite_differences(
        r#"{type = "linear", out = 4}, {type = "tanh"}, {type = "linear", out = 4},
           {type = "elu", alpha = 0.7}, {type = "linear", out = 3, spectral_norm = true},
           {type = "sigmoid"}, {type = "linear", out = 1}"#,
        5,
    );
}

/// Batch-norm on the batch's own statistics and on running ones (then an affine map whose
/// scale still gets a gradient through the smooth layer above it), layer-norm, flat and on
/// images, with dropout (which passes through outside training) and identity; D's outputs
/// weighted unequally.
#[test]
fn penalty_gradients_through_normalisations_match_finite_differences() {
    // Unequal weights per row: under batch statistics, equal ones would nearly cancel the
    // input gradient (a batch-normalised feature sums to zero over the batch).
    let weights = |rows: usize| Some((0..rows).map(|r| r as f32 - 2.0).collect());
    penalty_along_matches_finite_differences(
        r#"{type = "linear", out = 4}, {type = "batch_norm", mode = "batch"},
           {type = "leaky_relu", slope = 0.2}, {type = "linear", out = 3},
           {type = "batch_norm", mode = "batch", eps = 1e-3}, {type = "tanh"},
           {type = "linear", out = 1}"#,
        5,
        weights,
    );
    penalty_along_matches_finite_differences(
        r#"{type = "linear", out = 4}, {type = "batch_norm", mode = "running"}, {type = "tanh"},
           {type = "dropout", rate = 0.5}, {type = "linear", out = 1}"#,
        5,
        weights,
    );
    penalty_along_matches_finite_differences(
        r#"{type = "linear", out = 4}, {type = "layer_norm"}, {type = "elu"},
           {type = "identity"}, {type = "linear", out = 3}, {type = "layer_norm"},
           {type = "linear", out = 1}"#,
        5,
        weights,
    );
    penalty_along_matches_finite_differences(
        r#"{type = "reshape", shape = [2, 4, 4]},
           {type = "conv2d", out = 3, kernel = 3, stride = 2, padding = 1},
           {type = "batch_norm", mode = "batch"}, {type = "leaky_relu", slope = 0.2},
           {type = "conv2d", out = 3, kernel = 2, padding = 1},
           {type = "layer_norm", over_channels = true}, {type = "tanh"},
           {type = "layer_norm"}, {type = "flatten"}, {type = "linear", out = 1}"#,
        32,
        weights,
    );
    // Running batch-norm on images, each channel with its own statistics.
    penalty_along_matches_finite_differences(
        r#"{type = "reshape", shape = [2, 3, 3]},
           {type = "conv2d", out = 3, kernel = 2, padding = 1},
           {type = "batch_norm", mode = "running"}, {type = "elu"}, {type = "flatten"},
           {type = "linear", out = 1}"#,
        18,
        weights,
    );
}
