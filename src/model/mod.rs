//! The model builder: turns a layer list from the config into a network of dfdx tensors with
//! runtime dimensions, checking every width before allocating anything.
//!
//! dfdx's `nn` layers take their sizes as const generics, which a TOML file cannot supply, so a
//! [`Network`] holds `Tensor<(usize, usize), f32, Cpu>` parameters and runs dfdx's tensor ops
//! (matmul, broadcasts, activations, the batch-norm arithmetic) itself. Each layer takes an
//! explicit [`Mode`], rather than inferring train/eval from the tape type as dfdx's modules do,
//! and dropout masks come from an RNG that gan-run owns, so that a run can be checkpointed and
//! resumed exactly.

pub mod backprop;
pub mod kernels;
pub mod optim;

use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::config::{plan_widths, BatchNormMode, InitConfig, InitKind, LayerSpec};

/// A batch of row vectors: `[batch, width]`.
pub type Matrix<T = NoneTape> = Tensor<(usize, usize), f32, Cpu, T>;
/// A per-feature vector: `[width]`.
pub type Vector = Tensor<(usize,), f32, Cpu>;

/// How a network runs: in its own update, outside it, or as the tutorial's image dump.
pub enum Mode<'a> {
    /// The network's own update: batch-norm uses batch statistics (updating running averages in
    /// mode `running`), dropout draws masks from `rng`.
    Train {
        /// Source of dropout masks.
        rng: &'a mut ChaCha8Rng,
    },
    /// Outside its own update (the other network's step, losses, generating as trained):
    /// batch-norm uses batch statistics in mode `batch`, running statistics in mode `running`,
    /// and is bypassed in the retired `batch_stats_only`; no dropout.
    Eval,
    /// The tutorial's image dump: every batch-norm layer passes its input through; no dropout.
    BypassBatchNorm,
}

/// One layer with its parameters.
#[derive(Debug, Clone)]
pub enum Layer {
    /// `y = x W + b`, with `W` stored `[in, out]`.
    Linear {
        /// `[in, out]`
        weight: Matrix,
        /// `[out]`
        bias: Vector,
    },
    /// `x` for `x >= 0`, `slope x` below.
    LeakyRelu(f32),
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x`.
    Identity,
    /// Batch normalisation over the batch axis.
    BatchNorm {
        /// See [`BatchNormMode`].
        mode: BatchNormMode,
        /// `[width]`, starts at 1.
        scale: Vector,
        /// `[width]`, starts at 0.
        offset: Vector,
        /// `[width]`, only used (and checkpointed) in [`BatchNormMode::Running`].
        running_mean: Vector,
        /// `[width]`, only used in [`BatchNormMode::Running`].
        running_var: Vector,
        /// Running-average rate.
        momentum: f32,
        /// Variance guard.
        eps: f32,
    },
    /// Layer normalisation over each row's features.
    LayerNorm {
        /// `[width]`, starts at 1.
        scale: Vector,
        /// `[width]`, starts at 0.
        offset: Vector,
        /// Variance guard.
        eps: f32,
    },
    /// Inverted dropout.
    Dropout(f32),
}

/// A network built from a layer list.
#[derive(Debug, Clone)]
pub struct Network {
    /// `generator` or `discriminator`: prefixes parameter names in checkpoints.
    pub name: String,
    /// Width of the input.
    pub input_width: usize,
    /// The layers, in order.
    pub layers: Vec<Layer>,
}

/// Something that walks a network's tensors, e.g. an optimizer or a checkpoint writer.
pub trait TensorVisitor {
    /// Called once per tensor, in a fixed order. `trainable` is false for running statistics.
    fn visit<S: Shape>(&mut self, name: &str, tensor: &mut Tensor<S, f32, Cpu>, trainable: bool);
}

impl Network {
    /// Builds a network; the layer list must have passed [`plan_widths`] (config validation does).
    pub fn build(
        name: &str,
        layers: &[LayerSpec],
        input_width: usize,
        init: &InitConfig,
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let widths = plan_widths(layers, input_width).expect("layer widths checked by validation");
        let layers = layers
            .iter()
            .zip(&widths)
            .map(|(spec, &width)| match *spec {
                LayerSpec::Linear { out, .. } => Layer::Linear {
                    weight: dev.tensor_from_vec(
                        sample_init(&init.weights, width * out, rng),
                        (width, out),
                    ),
                    bias: dev.tensor_from_vec(sample_init(&init.biases, out, rng), (out,)),
                },
                LayerSpec::LeakyRelu { slope } => Layer::LeakyRelu(slope as f32),
                LayerSpec::Relu => Layer::Relu,
                LayerSpec::Tanh => Layer::Tanh,
                LayerSpec::Sigmoid => Layer::Sigmoid,
                LayerSpec::Identity => Layer::Identity,
                LayerSpec::BatchNorm {
                    mode,
                    momentum,
                    eps,
                } => Layer::BatchNorm {
                    mode,
                    scale: dev.ones_like(&(width,)),
                    offset: dev.zeros_like(&(width,)),
                    running_mean: dev.zeros_like(&(width,)),
                    running_var: dev.ones_like(&(width,)),
                    momentum: momentum as f32,
                    eps: eps as f32,
                },
                LayerSpec::LayerNorm { eps } => Layer::LayerNorm {
                    scale: dev.ones_like(&(width,)),
                    offset: dev.zeros_like(&(width,)),
                    eps: eps as f32,
                },
                LayerSpec::Dropout { rate } => Layer::Dropout(rate as f32),
            })
            .collect();
        Network {
            name: name.to_string(),
            input_width,
            layers,
        }
    }

    /// Runs the network on `[batch, input_width]` and returns `[batch, output_width]`.
    ///
    /// Takes `&mut self` because batch-norm in [`BatchNormMode::Running`] updates its running
    /// statistics in [`Mode::Train`]. Batch-norm in [`BatchNormMode::Batch`] makes each output
    /// row depend on the whole batch, so generate in batches of the training size. Whatever tape `x` carries records every operation, so the
    /// caller decides which gradients exist by what it traces.
    pub fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        mut mode: Mode<'_>,
    ) -> Matrix<T> {
        let mut x = x;
        for layer in &mut self.layers {
            x = match layer {
                Layer::Linear { weight, bias } => {
                    let (batch, out) = (x.shape().0, weight.shape().1);
                    // [batch, in] x [in, out] + [out] -> [batch, out]
                    x.matmul(weight.clone())
                        + bias.clone().broadcast_like::<_, Axis<0>>(&(batch, out))
                }
                Layer::LeakyRelu(slope) => dfdx::tensor_ops::leakyrelu(x, *slope),
                Layer::Relu => x.relu(),
                Layer::Tanh => x.tanh(),
                Layer::Sigmoid => x.sigmoid(),
                Layer::Identity => x,
                Layer::BatchNorm {
                    mode: bn_mode,
                    scale,
                    offset,
                    running_mean,
                    running_var,
                    momentum,
                    eps,
                } => match (&mode, *bn_mode) {
                    (Mode::BypassBatchNorm, _) | (Mode::Eval, BatchNormMode::BatchStatsOnly) => x,
                    (Mode::Train { .. }, BatchNormMode::Running) => batch_norm_batch_stats(
                        x,
                        scale,
                        offset,
                        *eps,
                        Some((running_mean, running_var, *momentum)),
                    ),
                    (Mode::Train { .. }, _) | (Mode::Eval, BatchNormMode::Batch) => {
                        batch_norm_batch_stats(x, scale, offset, *eps, None)
                    }
                    (Mode::Eval, BatchNormMode::Running) => {
                        batch_norm_running_stats(x, scale, offset, running_mean, running_var, *eps)
                    }
                },
                Layer::LayerNorm { scale, offset, eps } => {
                    let shape = *x.shape();
                    // dfdx's normalize: (x - mean) / sqrt(mean((x - mean)^2) + eps) per row.
                    x.normalize::<Axis<1>>(*eps)
                        * scale.clone().broadcast_like::<_, Axis<0>>(&shape)
                        + offset.clone().broadcast_like::<_, Axis<0>>(&shape)
                }
                Layer::Dropout(rate) => match &mut mode {
                    Mode::Train { rng } if *rate > 0.0 => {
                        let shape = *x.shape();
                        let mask = dropout_mask(shape.0 * shape.1, *rate, rng);
                        let mask = x.device().tensor_from_vec(mask, shape);
                        x * mask
                    }
                    _ => x,
                },
            };
        }
        x
    }

    /// Width of the output.
    pub fn output_width(&self) -> usize {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                Layer::Linear { weight, .. } => Some(weight.shape().1),
                _ => None,
            })
            .unwrap_or(self.input_width)
    }

    /// Visits every tensor under stable dotted names such as `layers.0.weight`.
    pub fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            match layer {
                Layer::Linear { weight, bias } => {
                    v.visit(&format!("layers.{i}.weight"), weight, true);
                    v.visit(&format!("layers.{i}.bias"), bias, true);
                }
                Layer::BatchNorm {
                    scale,
                    offset,
                    running_mean,
                    running_var,
                    mode,
                    ..
                } => {
                    v.visit(&format!("layers.{i}.scale"), scale, true);
                    v.visit(&format!("layers.{i}.offset"), offset, true);
                    if *mode == BatchNormMode::Running {
                        v.visit(&format!("layers.{i}.running_mean"), running_mean, false);
                        v.visit(&format!("layers.{i}.running_var"), running_var, false);
                    }
                }
                Layer::LayerNorm { scale, offset, .. } => {
                    v.visit(&format!("layers.{i}.scale"), scale, true);
                    v.visit(&format!("layers.{i}.offset"), offset, true);
                }
                _ => {}
            }
        }
    }

    /// Number of trainable parameters.
    pub fn num_params(&mut self) -> usize {
        struct Count(usize);
        impl TensorVisitor for Count {
            fn visit<S: Shape>(&mut self, _: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
                if trainable {
                    self.0 += t.shape().num_elements();
                }
            }
        }
        let mut c = Count(0);
        self.visit(&mut c);
        c.0
    }
}

/// Inverted dropout's mask for `n` values, row-major: `1 / keep` or 0. Both training paths
/// draw their masks here, so that they take the same numbers from the RNG.
///
/// Each value is `rng.gen::<f32>() < keep`, as rand 0.8 draws it (one `u32` per value, its top
/// 24 bits scaled to [0, 1)); the words are drawn in one `fill`, the same words in the same
/// order as one `next_u32` each (drawing them one at a time was 1% of a paper step).
pub(crate) fn dropout_mask(n: usize, rate: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let keep = 1.0 - rate;
    let mut words = vec![0u32; n];
    rng.fill(&mut words[..]);
    let scale = 1.0 / (1u32 << 24) as f32;
    words
        .iter()
        .map(|&w| {
            if scale * ((w >> 8) as f32) < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect()
}

/// Batch-norm with the batch's statistics (biased variance), on the tape; updates running
/// statistics when given. The arithmetic follows dfdx's own `BatchNorm1D` training forward, with
/// runtime widths.
fn batch_norm_batch_stats<T: Tape<f32, Cpu> + Merge<NoneTape>>(
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

/// Batch-norm with running statistics.
fn batch_norm_running_stats<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    x: Matrix<T>,
    scale: &Vector,
    offset: &Vector,
    running_mean: &Vector,
    running_var: &Vector,
    eps: f32,
) -> Matrix<T> {
    let shape = *x.shape();
    let std = (running_var.clone() + eps).sqrt();
    let scale = (scale.clone() / std).broadcast_like::<_, Axis<0>>(&shape);
    let x = x - running_mean.clone().broadcast_like::<_, Axis<0>>(&shape);
    x * scale + offset.clone().broadcast_like::<_, Axis<0>>(&shape)
}

/// Draws `n` initial values.
fn sample_init(kind: &InitKind, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    match *kind {
        InitKind::Zeros => vec![0.0; n],
        InitKind::Normal { std } if std > 0.0 => {
            let d = Normal::new(0.0, std).expect("std checked positive");
            (0..n).map(|_| d.sample(rng) as f32).collect()
        }
        InitKind::TruncatedNormal { std } if std > 0.0 => {
            let d = Normal::new(0.0, std).expect("std checked positive");
            (0..n)
                .map(|_| loop {
                    let v: f64 = d.sample(rng);
                    if v.abs() <= 2.0 * std {
                        break v as f32;
                    }
                })
                .collect()
        }
        _ => vec![0.0; n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn spec(text: &str) -> Vec<LayerSpec> {
        #[derive(serde::Deserialize)]
        struct L {
            layers: Vec<LayerSpec>,
        }
        toml::from_str::<L>(text).unwrap().layers
    }

    /// The mask takes the RNG's numbers as `rng.gen::<f32>()` does, one value at a time, and
    /// leaves the RNG where that would.
    #[test]
    fn dropout_masks_draw_what_one_value_at_a_time_draws() {
        for (n, rate) in [(1, 0.5), (1000, 0.5), (102_400, 0.3), (7, 0.9)] {
            let mut fast = ChaCha8Rng::seed_from_u64(n as u64);
            let mut slow = fast.clone();
            let keep = 1.0 - rate;
            let expected: Vec<f32> = (0..n)
                .map(|_| {
                    if (slow.gen::<f32>()) < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_eq!(dropout_mask(n, rate, &mut fast), expected, "{n} values");
            assert_eq!(
                fast.gen::<u64>(),
                slow.gen::<u64>(),
                "the RNG after {n} values"
            );
        }
    }

    #[test]
    fn widths_chain_and_mismatches_are_named() {
        let layers = spec(
            r#"layers = [{type = "linear", out = 3}, {type = "relu"}, {type = "linear", in = 3, out = 1}]"#,
        );
        assert_eq!(plan_widths(&layers, 5).unwrap(), vec![5, 3, 3, 1]);
        let bad =
            spec(r#"layers = [{type = "linear", out = 3}, {type = "linear", in = 4, out = 1}]"#);
        let (i, msg) = plan_widths(&bad, 5).unwrap_err();
        assert_eq!(i, 1);
        assert!(msg.contains("in = 4") && msg.contains('3'), "{msg}");
    }

    /// A 2 -> 2 -> 1 network with hand-set weights, checked against arithmetic done by hand.
    #[test]
    fn forward_matches_hand_computation() {
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let layers = spec(
            r#"layers = [
                {type = "linear", out = 2}, {type = "leaky_relu", slope = 0.2},
                {type = "linear", out = 1}, {type = "sigmoid"}]"#,
        );
        let mut net = Network::build("t", &layers, 2, &InitConfig::default(), &dev, &mut rng);
        if let Layer::Linear { weight, bias } = &mut net.layers[0] {
            weight.copy_from(&[1.0, -1.0, 2.0, 0.5]); // [[1, -1], [2, 0.5]]
            bias.copy_from(&[0.5, -1.0]);
        }
        if let Layer::Linear { weight, bias } = &mut net.layers[2] {
            weight.copy_from(&[1.0, 2.0]);
            bias.copy_from(&[0.25]);
        }
        let x: Matrix = dev.tensor_from_vec(vec![1.0, 1.0, -1.0, 0.0], (2, 2));
        let y = net.forward(x, Mode::Eval).as_vec();
        // Row 1: h = [1 + 2 + 0.5, -1 + 0.5 - 1] = [3.5, -1.5] -> leaky [3.5, -0.3]
        //        logit = 3.5 - 0.6 + 0.25 = 3.15
        // Row 2: h = [-1 + 0.5, 1 - 1] = [-0.5, 0] -> leaky [-0.1, 0] -> logit = 0.15
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        assert!((y[0] - sigmoid(3.15)).abs() < 1e-6, "{y:?}");
        assert!((y[1] - sigmoid(0.15)).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn batch_norm_modes_differ_only_as_documented() {
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x: Matrix = dev.tensor_from_vec(vec![1.0, 10.0, 3.0, 30.0], (2, 2));
        // Batch mode (the tutorial's graph): the batch's statistics in and out of the own
        // update; only the tutorial's image dump bypasses it.
        let layers = spec(r#"layers = [{type = "batch_norm", mode = "batch", eps = 0.0}]"#);
        let mut net = Network::build("t", &layers, 2, &InitConfig::default(), &dev, &mut rng);
        let train = net
            .forward(x.clone(), Mode::Train { rng: &mut rng })
            .as_vec();
        assert_eq!(train, vec![-1.0, -1.0, 1.0, 1.0]);
        assert_eq!(net.forward(x.clone(), Mode::Eval).as_vec(), train);
        let bypassed = net.forward(x.clone(), Mode::BypassBatchNorm).as_vec();
        assert_eq!(bypassed, x.as_vec());
        // The retired mode, still read for old runs: bypassed outside the own update.
        let layers =
            spec(r#"layers = [{type = "batch_norm", mode = "batch_stats_only", eps = 0.0}]"#);
        let mut net = Network::build("t", &layers, 2, &InitConfig::default(), &dev, &mut rng);
        assert_eq!(net.forward(x.clone(), Mode::Eval).as_vec(), x.as_vec());
        // Running mode: training moves the running statistics, which eval then uses.
        let layers = spec(
            r#"layers = [{type = "batch_norm", mode = "running", momentum = 1.0, eps = 0.0}]"#,
        );
        let mut net = Network::build("t", &layers, 2, &InitConfig::default(), &dev, &mut rng);
        net.forward(x.clone(), Mode::Train { rng: &mut rng });
        if let Layer::BatchNorm {
            running_mean,
            running_var,
            ..
        } = &net.layers[0]
        {
            assert_eq!(running_mean.as_vec(), vec![2.0, 20.0]);
            assert_eq!(running_var.as_vec(), vec![2.0, 200.0]); // unbiased: n/(n-1) * biased
        }
        let y = net.forward(x, Mode::Eval).as_vec();
        let expect = [-1.0 / 2f32.sqrt(), -10.0 / 200f32.sqrt()];
        assert!(
            (y[0] - expect[0]).abs() < 1e-6 && (y[1] - expect[1]).abs() < 1e-6,
            "{y:?}"
        );
    }

    #[test]
    fn dropout_only_in_train_mode_and_scales_kept_units() {
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let layers = spec(r#"layers = [{type = "dropout", rate = 0.5}]"#);
        let mut net = Network::build("t", &layers, 1000, &InitConfig::default(), &dev, &mut rng);
        let x: Matrix = dev.ones_like(&(1, 1000));
        assert_eq!(net.forward(x.clone(), Mode::Eval).as_vec(), vec![1.0; 1000]);
        let y = net.forward(x, Mode::Train { rng: &mut rng }).as_vec();
        assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
        let kept = y.iter().filter(|&&v| v == 2.0).count();
        assert!((400..600).contains(&kept), "kept {kept} of 1000");
    }

    #[test]
    fn truncated_normal_stays_within_two_std() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let v = sample_init(&InitKind::TruncatedNormal { std: 0.02 }, 100_000, &mut rng);
        assert!(v.iter().all(|x| x.abs() <= 0.04));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        // A normal truncated at 2 sigma has std 0.88 sigma.
        assert!((std - 0.02 * 0.88).abs() < 0.0005, "std {std}");
    }
}
