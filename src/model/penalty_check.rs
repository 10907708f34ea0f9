//! The gradient penalty's double backpropagation (`PlainNet::penalty_gradients`) against
//! central finite differences of the penalty computed in f64, per layer kind a discriminator
//! can hold: dfdx 0.13 has no second-order gradients, so this is the penalty's reference.
//! Convolutions enter the f64 computation as the dense matrices their patches define.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::backprop::{PlainNet, Workspace};
use super::layers::Grouping;
use super::{Layer, LayerSpec, Network};

/// The penalty `mean(|grad_x D(x)|^2) / 2` of a D made of piecewise-linear layers (`same`
/// passes through), in f64, D's outputs summed with the weights `along` (all 1 without), from
/// the plain network's tensors: `(kind, tensors)` per layer, as the test builds it.
fn penalty_f64(
    layers: &[(&str, Vec<Vec<f64>>)],
    x: &[f64],
    rows: usize,
    width: usize,
    along: Option<&[f64]>,
) -> f64 {
    // Forward, keeping each layer's input.
    let mut inputs = Vec::new();
    let (mut h, mut w_in) = (x.to_vec(), width);
    let mut effective = Vec::new(); // each linear layer's W / sigma
    for (kind, t) in layers {
        inputs.push(h.clone());
        match *kind {
            "linear" => {
                let out = t[1].len();
                let mut w = t[0].clone();
                if t.len() == 4 {
                    let (u, v) = (&t[2], &t[3]);
                    let sigma: f64 = (0..w_in)
                        .map(|i| v[i] * (0..out).map(|j| w[i * out + j] * u[j]).sum::<f64>())
                        .sum();
                    w.iter_mut().for_each(|x| *x /= sigma);
                }
                let mut y = vec![0.0; rows * out];
                for r in 0..rows {
                    for j in 0..out {
                        y[r * out + j] = t[1][j]
                            + (0..w_in)
                                .map(|i| h[r * w_in + i] * w[i * out + j])
                                .sum::<f64>();
                    }
                }
                effective.push(w);
                h = y;
                w_in = out;
            }
            "leaky" => h
                .iter_mut()
                .for_each(|v| *v = if *v < 0.0 { 0.2 * *v } else { *v }),
            "same" => {}
            _ => h.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
    // Backward from `along`.
    let mut g = along.map_or_else(|| vec![1.0; h.len()], <[f64]>::to_vec);
    assert_eq!(g.len(), h.len(), "one weight per output");
    let mut linear = effective.len();
    for ((kind, t), input) in layers.iter().zip(&inputs).rev() {
        match *kind {
            "linear" => {
                linear -= 1;
                let (out, w) = (t[1].len(), &effective[linear]);
                let w_in = w.len() / out;
                let mut d = vec![0.0; rows * w_in];
                for r in 0..rows {
                    for i in 0..w_in {
                        d[r * w_in + i] = (0..out)
                            .map(|j| g[r * out + j] * w[i * out + j])
                            .sum::<f64>();
                    }
                }
                g = d;
            }
            "leaky" => g.iter_mut().zip(input).for_each(|(d, v)| {
                if *v < 0.0 {
                    *d *= 0.2
                }
            }),
            "same" => {}
            _ => g.iter_mut().zip(input).for_each(|(d, v)| {
                if *v <= 0.0 {
                    *d = 0.0
                }
            }),
        }
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
        if trainable {
            t.iter_mut().for_each(|v| *v = rng.gen_range(-1.0..1.0));
        }
    }
    plain.start_step();
    plain.check_in(&mut net);
    (net, plain)
}

/// The layers as [`penalty_f64`] takes them, from every tensor of the network in f64:
/// convolutions become dense linear layers (their matrix and their bias repeated over
/// positions), reshapes pass through.
fn layers_f64(
    net: &Network,
    plain: &PlainNet,
    tensors: &[Vec<f64>],
) -> Vec<(&'static str, Vec<Vec<f64>>)> {
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
                Layer::Linear(_) => ("linear", t.to_vec()),
                Layer::LeakyRelu(l) => {
                    assert_eq!(l.slope, 0.2, "the f64 penalty's leaky slope");
                    ("leaky", vec![])
                }
                Layer::Relu(_) => ("relu", vec![]),
                Layer::Reshape(_) | Layer::Flatten(_) => ("same", vec![]),
                Layer::Conv2d(c) => {
                    let (filters, p) = (c.weight.shape().0, c.patches);
                    let w = match c.spectral {
                        Some(_) => divided_f64(&t[0], &t[t.len() - 2], &t[t.len() - 1]),
                        None => t[0].clone(),
                    };
                    let m = dense(&p.dense_index(filters), &w);
                    (
                        "linear",
                        vec![
                            m,
                            repeated(c.bias.is_some().then(|| &t[1]), filters, p.positions()),
                        ],
                    )
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
                    let bias = repeated(bias, p.channels, p.height * p.width);
                    ("linear", vec![dense(&transposed, &w), bias])
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
                    ("linear", vec![m, vec![0.0; outputs]])
                }
                other => panic!("no f64 penalty for {other:?}"),
            }
        })
        .collect()
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
        .expect("piecewise-linear layers");
    let tensors: Vec<Vec<f64>> = plain
        .tensors
        .iter()
        .map(|t| t.iter().map(|&v| v as f64).collect())
        .collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let penalty = |tensors: &[Vec<f64>]| {
        let layers = layers_f64(&net, &plain, tensors);
        penalty_f64(&layers, &x64, rows, input, along64.as_deref())
    };
    let exact = penalty(&tensors);
    assert!(
        (value as f64 - exact).abs() < 1e-4 * exact.max(1.0),
        "{layers}: {value} vs {exact}"
    );
    let largest = grads.iter().flatten().fold(0.0f32, |m, g| m.max(g.abs()));
    assert!(largest > 1e-2, "a penalty with gradients to check");
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
    // Tanh's second derivative does not vanish: no penalty.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (_, mut curved) = network(
        r#"{type = "linear", out = 2}, {type = "tanh"}"#,
        5,
        &mut rng,
    );
    assert_eq!(curved.first_curved_layer(), Some(1));
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
