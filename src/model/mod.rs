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
pub mod init;
pub mod kernels;
pub mod layers;
pub mod optim;
#[cfg(test)]
mod penalty_check;

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;

use init::InitConfig;
pub use layers::{plan_shapes, BatchNorm, BatchNormMode, FeatureShape, Layer, LayerSpec};

/// The index of the first layer a gradient penalty cannot be differentiated through (a kind
/// without a penalty pass), if any, found by building the network from `layers` (whose widths
/// fit `input`) once and running a one-row penalty through it.
pub fn first_layer_refusing_penalty(layers: &[LayerSpec], input: usize) -> Option<usize> {
    let (dev, mut rng) = (Cpu::default(), rand::SeedableRng::seed_from_u64(0));
    let shapes = plan_shapes(layers, FeatureShape::Flat(input)).ok()?;
    let init = InitConfig::default();
    let net = Network::build_planned("d", layers, &shapes, &init, &dev, &mut rng);
    backprop::PlainNet::check_out(&net).first_layer_refusing_penalty()
}

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

/// Passes a layer's tensors on under the network's names (`layers.3.weight`).
struct LayerNames<'a, V> {
    index: usize,
    inner: &'a mut V,
}

impl<V: TensorVisitor> TensorVisitor for LayerNames<'_, V> {
    fn visit<S: Shape>(&mut self, name: &str, tensor: &mut Tensor<S, f32, Cpu>, trainable: bool) {
        let name = format!("layers.{}.{name}", self.index);
        self.inner.visit(&name, tensor, trainable);
    }
}

impl Network {
    /// Builds a network on flat inputs of `input_width`, planning its shapes; the layer list
    /// must have passed [`plan_shapes`] (validation does).
    pub fn build(
        name: &str,
        layers: &[LayerSpec],
        input_width: usize,
        init: &InitConfig,
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let shapes = plan_shapes(layers, FeatureShape::Flat(input_width))
            .expect("layer shapes checked by validation");
        Self::build_planned(name, layers, &shapes, init, dev, rng)
    }

    /// Builds a network from shapes already planned: `shapes[0]` is the input's, then one per
    /// layer, as [`plan_shapes`] gives them (an `Experiment` keeps its networks').
    pub fn build_planned(
        name: &str,
        layers: &[LayerSpec],
        shapes: &[FeatureShape],
        init: &InitConfig,
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        assert_eq!(
            shapes.len(),
            layers.len() + 1,
            "one shape per layer and the input's"
        );
        let input_width = shapes[0].len();
        let layers = layers
            .iter()
            .zip(shapes)
            .map(|(spec, &shape)| spec.build(shape, init, dev, rng))
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
    /// row depend on the whole batch, so generate in batches of the training size. Whatever
    /// tape `x` carries records every operation, so the caller decides which gradients exist by
    /// what it traces.
    pub fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        mut mode: Mode<'_>,
    ) -> Matrix<T> {
        let mut x = x;
        for layer in &mut self.layers {
            x = layer.forward(x, &mut mode);
        }
        x
    }

    /// Width of the output.
    pub fn output_width(&self) -> usize {
        self.layers
            .iter()
            .fold(self.input_width, |width, layer| layer.output_width(width))
    }

    /// Visits every tensor under stable dotted names such as `layers.0.weight`.
    pub fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
        for (index, layer) in self.layers.iter_mut().enumerate() {
            layer.visit(&mut LayerNames { index, inner: v });
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

    /// Starts one of the network's own updates: see [`layers::ReferenceLayer::start_step`].
    pub fn start_step(&mut self) {
        self.layers.iter_mut().for_each(Layer::start_step);
    }

    /// Each spectrally normalised layer's sigma ([`layers::ReferenceLayer::spectral_sigma`]), named as its
    /// tensors are in checkpoints without the tensor's name (`discriminator.layers.0`).
    pub fn spectral_sigmas(&self) -> Vec<(String, f64)> {
        let sigmas = self.layers.iter().enumerate().filter_map(|(i, layer)| {
            Some((format!("{}.layers.{i}", self.name), layer.spectral_sigma()?))
        });
        sigmas.collect()
    }

    /// The largest of [`Network::spectral_sigmas`]; `None` without spectrally normalised layers.
    pub fn largest_sigma(&self) -> Option<f64> {
        let sigmas = self.spectral_sigmas().into_iter().map(|(_, s)| s);
        sigmas.reduce(f64::max)
    }

    /// Re-estimates every running batch-norm layer's statistics as the plain average over
    /// `batches` of their batch statistics, in the network's own update mode (dropout drawn
    /// from `rng`), as PyTorch's `swa_utils.update_bn` does; whether it has such a layer. A
    /// moving average of weights needs it: the statistics it carries were the raw network's,
    /// which do not describe the averaged weights' activations.
    pub fn reestimate_running_statistics(
        &mut self,
        batches: impl IntoIterator<Item = Matrix>,
        rng: &mut ChaCha8Rng,
    ) -> bool {
        let momenta: Vec<f32> = self.running_batch_norms().map(|bn| bn.momentum).collect();
        if momenta.is_empty() {
            return false;
        }
        for bn in self.running_batch_norms() {
            bn.running_mean.fill_with_zeros();
            bn.running_var.fill_with_ones();
        }
        for (k, z) in batches.into_iter().enumerate() {
            // Rate 1/(k+1): after batch k the statistics are the mean over batches 0..=k.
            for bn in self.running_batch_norms() {
                bn.momentum = 1.0 / (k as f32 + 1.0);
            }
            self.forward(z, Mode::Train { rng: &mut *rng });
        }
        for (bn, m) in self.running_batch_norms().zip(momenta) {
            bn.momentum = m;
        }
        true
    }

    fn running_batch_norms(&mut self) -> impl Iterator<Item = &mut BatchNorm> {
        self.layers.iter_mut().filter_map(|layer| match layer {
            Layer::BatchNorm(bn) if bn.mode == BatchNormMode::Running => Some(bn),
            _ => None,
        })
    }

    /// Multiply-adds of its matrix products per input row.
    pub fn macs_per_row(&self) -> f64 {
        self.layers.iter().map(Layer::macs_per_row).sum()
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

    #[test]
    fn widths_chain_and_mismatches_are_named() {
        let layers = spec(
            r#"layers = [{type = "linear", out = 3}, {type = "relu"}, {type = "linear", in = 3, out = 1}]"#,
        );
        let flat = FeatureShape::Flat;
        let shapes = plan_shapes(&layers, flat(5)).unwrap();
        assert_eq!(shapes, vec![flat(5), flat(3), flat(3), flat(1)]);
        let bad =
            spec(r#"layers = [{type = "linear", out = 3}, {type = "linear", in = 4, out = 1}]"#);
        let (i, msg) = plan_shapes(&bad, flat(5)).unwrap_err();
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
        if let Layer::Linear(l) = &mut net.layers[0] {
            l.weight.copy_from(&[1.0, -1.0, 2.0, 0.5]); // [[1, -1], [2, 0.5]]
            l.bias.copy_from(&[0.5, -1.0]);
        }
        if let Layer::Linear(l) = &mut net.layers[2] {
            l.weight.copy_from(&[1.0, 2.0]);
            l.bias.copy_from(&[0.25]);
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

    /// Re-estimated running statistics are the plain mean over the batches of each batch's
    /// mean and unbiased variance (here of an identity layer's input, done by hand), whatever
    /// they held before; the layer's own rate is kept; a network without running batch-norm
    /// is left alone.
    #[test]
    fn running_statistics_are_reestimated_as_the_mean_over_batches() {
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let layers = spec(r#"layers = [{type = "batch_norm", mode = "running", momentum = 0.1}]"#);
        let mut net = Network::build("t", &layers, 2, &InitConfig::default(), &dev, &mut rng);
        if let Layer::BatchNorm(bn) = &mut net.layers[0] {
            bn.running_mean.copy_from(&[5.0, 5.0]);
        }
        // Two batches of three rows: column means 1 and 4, then 3 and 0.
        let batches: Vec<Matrix> = [
            vec![0.0, 4.0, 1.0, 3.0, 2.0, 5.0],
            vec![3.0, -1.0, 3.0, 1.0, 3.0, 0.0],
        ]
        .into_iter()
        .map(|v| dev.tensor_from_vec(v, (3, 2)))
        .collect();
        assert!(net.reestimate_running_statistics(batches, &mut rng));
        let Layer::BatchNorm(bn) = &net.layers[0] else {
            unreachable!()
        };
        let close = |a: Vec<f32>, b: [f32; 2]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(
            close(bn.running_mean.as_vec(), [2.0, 2.0]),
            "{:?}",
            bn.running_mean.as_vec()
        );
        // Unbiased variances: batch 1 (1, 1), batch 2 (0, 1).
        assert!(
            close(bn.running_var.as_vec(), [0.5, 1.0]),
            "{:?}",
            bn.running_var.as_vec()
        );
        assert_eq!(bn.momentum, 0.1);
        let plain = spec(r#"layers = [{type = "batch_norm", mode = "batch"}]"#);
        let mut net = Network::build("t", &plain, 2, &InitConfig::default(), &dev, &mut rng);
        assert!(!net.reestimate_running_statistics(Vec::new(), &mut rng));
    }

    /// Only spectrally normalised layers report a sigma, named by network and index, equal to
    /// `v^T W u` done by hand; the largest is what metrics.csv keeps.
    #[test]
    fn spectral_sigmas_name_each_normalised_layer() {
        let dev = Cpu::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let layers = spec(
            r#"layers = [
                {type = "linear", out = 2, spectral_norm = true}, {type = "relu"},
                {type = "linear", out = 2}, {type = "linear", out = 1, spectral_norm = true}]"#,
        );
        let mut net = Network::build("d", &layers, 2, &InitConfig::default(), &dev, &mut rng);
        if let Layer::Linear(l) = &mut net.layers[0] {
            l.weight.copy_from(&[1.0, -1.0, 2.0, 0.5]); // [[1, -1], [2, 0.5]]
            let s = l.spectral.as_mut().unwrap();
            s.u.copy_from(&[0.6, 0.8]);
            s.v.copy_from(&[0.0, 1.0]);
        }
        if let Layer::Linear(l) = &mut net.layers[3] {
            l.weight.copy_from(&[3.0, -4.0]);
            let s = l.spectral.as_mut().unwrap();
            s.u.copy_from(&[1.0]);
            s.v.copy_from(&[0.6, -0.8]);
        }
        // v^T W u: [0, 1] . [[1, -1], [2, 0.5]] [0.6, 0.8] = 2 * 0.6 + 0.5 * 0.8 = 1.6;
        // [0.6, -0.8] . [3, -4] = 5.
        let sigmas = net.spectral_sigmas();
        let names: Vec<&str> = sigmas.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["d.layers.0", "d.layers.3"]);
        assert!((sigmas[0].1 - 1.6).abs() < 1e-6 && (sigmas[1].1 - 5.0).abs() < 1e-6);
        assert!((net.largest_sigma().unwrap() - 5.0).abs() < 1e-6);
        let plain = spec(r#"layers = [{type = "linear", out = 1}]"#);
        let plain = Network::build("g", &plain, 2, &InitConfig::default(), &dev, &mut rng);
        assert!(plain.spectral_sigmas().is_empty() && plain.largest_sigma().is_none());
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
        if let Layer::BatchNorm(bn) = &net.layers[0] {
            assert_eq!(bn.running_mean.as_vec(), vec![2.0, 20.0]);
            assert_eq!(bn.running_var.as_vec(), vec![2.0, 200.0]); // unbiased: n/(n-1) * biased
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
}
