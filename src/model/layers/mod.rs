//! The layer kinds a network is built from, one file each. A kind's file holds everything about
//! it: its config entry and checks ([`LayerKind`], implemented by its spec), its reference layer
//! on dfdx's tape with its tensors in one traversal ([`ReferenceLayer`]), and its fast forward
//! and backward passes on plain buffers ([`FastLayer`]). This file lists the kinds and turns the
//! list into the three enums the rest of gan-run holds ([`LayerSpec`], [`Layer`],
//! [`FastLayerKind`]), whose methods dispatch with exhaustive matches: a kind that misses a part
//! does not compile, and adding a kind is its file plus one line in [`layer_kinds!`]'s call.
//!
//! Why traits behind generated enums rather than trait objects: the reference forward pass is
//! generic over dfdx's tape type, which a trait object cannot carry, and enums keep layers
//! `Clone` and `Debug` for free.

mod batch_norm;
mod conv2d;
mod conv_transpose2d;
mod dropout;
mod elu;
mod flatten;
mod identity;
mod layer_norm;
mod leaky_relu;
mod linear;
mod normalise_penalty;
mod patches;
mod relu;
mod reshape;
mod shape;
mod sigmoid;
mod spectral;
mod tanh;
mod upsample;

pub use batch_norm::{BatchNorm, BatchNormMode, BatchNormSpec};
pub use conv2d::{Conv2d, Conv2dSpec};
#[cfg(test)]
pub(crate) use conv_transpose2d::Grouping;
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dSpec};
pub use dropout::{Dropout, DropoutSpec};
pub use elu::Elu;
pub use flatten::Flatten;
pub use identity::Identity;
pub use layer_norm::{LayerNorm, LayerNormSpec};
pub use leaky_relu::{LeakyRelu, LeakyReluSpec};
pub use linear::{Linear, LinearSpec};
pub use relu::Relu;
pub use reshape::Reshape;
pub use shape::FeatureShape;
pub use sigmoid::Sigmoid;
pub use tanh::Tanh;
pub use upsample::{Upsample, UpsampleSpec};

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::init::InitConfig;
use super::kernels::BufferPool;
use super::{Matrix, Mode, TensorVisitor};

/// A layer kind's config entry: its settings, their checks and what it builds.
pub trait LayerKind {
    /// The layer it builds.
    type Layer: ReferenceLayer;
    /// What is wrong with the layer's own settings, if anything: the key under the layer and
    /// the message. (Whether its input fits is [`LayerKind::output_shape`]'s job.)
    fn check(&self) -> Result<(), (&'static str, String)>;
    /// The shape it outputs for `input`, or why that input does not fit it.
    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String>;
    /// The numbers it keeps, from `input` to `output`: trainable parameters and other state
    /// (running statistics). In floating point, so that absurd sizes cannot overflow: for
    /// memory estimates.
    fn sizes(&self, input: FeatureShape, output: FeatureShape) -> (f64, f64);
    /// Scratch numbers per sample beyond its output that its passes hold (a convolution's
    /// unfolded patches): for memory estimates.
    fn scratch_per_row(&self, _input: FeatureShape, _output: FeatureShape) -> f64 {
        0.0
    }
    /// Builds it for `input`, drawing initial values from `rng`.
    fn build(
        &self,
        input: FeatureShape,
        init: &InitConfig,
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
    ) -> Self::Layer;
}

/// A layer on dfdx's tensors: the reference every fast pass is tested against, and the form
/// checkpoints, sampling and evaluation work on.
pub trait ReferenceLayer {
    /// Its twin on plain buffers.
    type Fast: FastLayer;
    /// Runs `x`, recording on whatever tape `x` carries.
    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        mode: &mut Mode<'_>,
    ) -> Matrix<T>;
    /// Visits every tensor it keeps under its name within the layer (`weight`), in a fixed
    /// order with the trainable ones first. The one traversal: checkpoints, both optimizers,
    /// parameter counts and the fast path's buffers all follow it.
    fn visit<V: TensorVisitor>(&mut self, v: &mut V);
    /// The width it outputs for `input` features.
    fn output_width(&self, input: usize) -> usize;
    /// Multiply-adds of its matrix products per input row (for the bench's FLOP counts).
    fn macs_per_row(&self) -> f64;
    /// Its settings on the fast path (its tensors are copied by [`ReferenceLayer::visit`]).
    fn fast(&self) -> Self::Fast;
    /// Called once at the start of each of its network's own updates, before any forward
    /// pass of the step: where state that moves once per step moves (spectral norm's power
    /// iteration). The fast path's [`FastLayer::start_step`] must do the same arithmetic.
    fn start_step(&mut self);
    /// Spectral norm's current estimate of its weights' largest singular value, for a layer
    /// that has one (logged per epoch); `None` otherwise, the default.
    fn spectral_sigma(&self) -> Option<f64> {
        None
    }
}

/// How a layer ties a batch's rows together, which decides whether two batches may run through
/// the network's own update as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCoupling {
    /// Each row on its own.
    None,
    /// Statistics over the batch (batch-norm): batches must run apart.
    BatchStatistics,
    /// Random masks drawn row by row in the network's own update (dropout): the order of the
    /// draws changes when batches are joined and more than one layer draws.
    RandomMask,
}

/// A layer's forward and backward passes on plain row-major buffers. Its tensors live in the
/// [`super::backprop::PlainNet`] and are lent to each call, in [`ReferenceLayer::visit`] order.
pub trait FastLayer {
    /// Runs `x` (`pass.rows` rows) in place or into a buffer from `pass.pool`, returning what
    /// its backward pass needs (only when `pass.keep`).
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved;
    /// Turns `g`, the gradient of its output, into the gradient of its input (when
    /// `pass.propagate`), and hands its parameter gradients to `pass` (when
    /// `pass.param_grads`). Returns its kept input when the layer below may use it as its kept
    /// output ([`Saved::OutputIsNextInput`]).
    fn backward(
        &mut self,
        tensors: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>>;
    /// How it ties a batch's rows together.
    fn row_coupling(&self) -> RowCoupling;
    /// Whether it keeps its input for its backward pass and hands it down (so that the layer
    /// below need not copy its output).
    fn keeps_its_input(&self) -> bool;
    /// See [`ReferenceLayer::start_step`]; `tensors` are the layer's.
    fn start_step(&mut self, tensors: &mut [Vec<f32>]);
    /// One layer of a gradient penalty's second pass, from the input up (double
    /// backpropagation), run outside the network's own update (see [`PenaltyPass`] for what it
    /// reads and writes). Returns false for a kind that cannot take part (its penalty would
    /// need terms this pass does not compute): validation refuses penalties on networks
    /// holding one. The default answers false: a kind that forgets it is refused, never
    /// differentiated wrongly.
    fn penalty_pass(&self, _tensors: &[Vec<f32>], _pass: PenaltyPass<'_>) -> bool {
        false
    }
}

/// One layer's part of a gradient penalty's second pass. The penalty `P` is a function of
/// the gradient `dx` of D's (weighted) outputs with respect to its input; each layer turned
/// the gradient of its output `dy` into `dx = J(x, tensors)^T dy` in the first backward pass.
/// The second pass walks the layers from the input up, so each layer gets `dP/d(dx)` and
/// hands on `dP/d(dy)`.
pub struct PenaltyPass<'a> {
    /// The layer's input (`rows` rows).
    pub input: &'a [f32],
    /// Rows of the batch.
    pub rows: usize,
    /// The gradient its output got in the first backward pass (`dy`).
    pub out_grad: &'a [f32],
    /// In: `dP/d(dx)`. Out: `dP/d(dy)`, the layer's Jacobian times what came in.
    pub adjoint: &'a mut Vec<f32>,
    /// One per tensor of the layer (trainable first): `dP/d(tensor)` through `J`'s
    /// dependence on the tensor is added to it.
    pub grads: &'a mut [Vec<f32>],
    /// `dP/dx` through `J`'s dependence on `x` (where the layer's second derivatives do not
    /// vanish: a smooth activation, a normalisation over statistics of its input), left empty
    /// where it is zero. The caller back-propagates it through the layers below.
    pub curvature: &'a mut Vec<f32>,
}

/// An element-wise layer without tensors (an activation; or a reshape, which moves nothing):
/// its config entry, reference layer and fast layer are one type, and everything but its
/// arithmetic follows from this trait.
pub trait Activation: Clone + std::fmt::Debug {
    /// What is wrong with its settings, if anything (see [`LayerKind::check`]).
    fn check(&self) -> Result<(), (&'static str, String)>;
    /// The shape it outputs for `input` (see [`LayerKind::output_shape`]): the same, unless it
    /// reshapes.
    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        Ok(input)
    }
    /// Applies it on dfdx's tape.
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, x: Matrix<T>) -> Matrix<T>;
    /// Applies it in place on the fast path.
    fn apply(&self, x: &mut [f32]);
    /// Multiplies `g` by its derivative, given its output `y` (every activation here can tell
    /// its derivative from its output).
    fn chain(&self, g: &mut [f32], y: &[f32]);
    /// Its part of a gradient penalty's second pass ([`PenaltyPass`]): multiplies `adjoint`
    /// by its derivative at its input `x`, and returns `adjoint * out_grad * f''(x)` (taken
    /// before the multiplication) where its second derivative does not vanish.
    fn penalty_chain(&self, adjoint: &mut [f32], x: &[f32], out_grad: &[f32]) -> Option<Vec<f32>>;
}

/// [`Activation::penalty_chain`] of a smooth activation, from its values `y = f(x)` and
/// `derivatives(y) = (f'(x), f''(x))`.
pub(super) fn smooth_penalty_chain(
    adjoint: &mut [f32],
    y: &[f32],
    out_grad: &[f32],
    derivatives: impl Fn(f32) -> (f32, f32),
) -> Option<Vec<f32>> {
    let mut curvature = vec![0.0; y.len()];
    for (((a, &y), &g), c) in adjoint.iter_mut().zip(y).zip(out_grad).zip(&mut curvature) {
        let (first, second) = derivatives(y);
        *c = *a * g * second;
        *a *= first;
    }
    Some(curvature)
}

impl<A: Activation + ReferenceLayer<Fast = A>> LayerKind for A {
    type Layer = A;
    fn check(&self) -> Result<(), (&'static str, String)> {
        Activation::check(self)
    }
    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        Activation::output_shape(self, input)
    }
    fn sizes(&self, _: FeatureShape, _: FeatureShape) -> (f64, f64) {
        (0.0, 0.0)
    }
    fn build(&self, _: FeatureShape, _: &InitConfig, _: &Cpu, _: &mut ChaCha8Rng) -> A {
        self.clone()
    }
}

impl<A: Activation> ReferenceLayer for A {
    type Fast = A;
    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        self.reference(x)
    }
    fn visit<V: TensorVisitor>(&mut self, _: &mut V) {}
    fn output_width(&self, input: usize) -> usize {
        input
    }
    fn macs_per_row(&self) -> f64 {
        0.0
    }
    fn fast(&self) -> A {
        self.clone()
    }
    fn start_step(&mut self) {}
}

impl<A: Activation> FastLayer for A {
    fn forward(
        &mut self,
        _: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        self.apply(x);
        pass.kept_output(x)
    }
    fn backward(
        &mut self,
        _: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        if let (true, Saved::Output(y)) = (pass.propagate, saved) {
            self.chain(g, &y);
            pass.pool.give(y);
        }
        None
    }
    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::None
    }
    fn keeps_its_input(&self) -> bool {
        false
    }
    fn start_step(&mut self, _: &mut [Vec<f32>]) {}
    fn penalty_pass(&self, _: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        if let Some(c) = self.penalty_chain(pass.adjoint, pass.input, pass.out_grad) {
            *pass.curvature = c;
        }
        true
    }
}

/// What a layer's backward pass needs from its forward pass.
pub enum Saved {
    /// Nothing (identity, bypassed layers, passes that keep nothing).
    Nothing,
    /// The layer's input.
    Input(Vec<f32>),
    /// The layer's output.
    Output(Vec<f32>),
    /// The layer's output, which the next layer keeps as its input: resolved to
    /// [`Saved::Output`] before the backward pass reaches the layer.
    OutputIsNextInput,
    /// The normalised input and `1 / sqrt(var + eps)` per feature or per row.
    Normalised {
        /// Centred and scaled to unit variance.
        normalised: Vec<f32>,
        /// The scale that did it.
        inv_std: Vec<f32>,
    },
    /// One factor per feature, and the input normalised by fixed statistics (empty unless
    /// kept).
    Factor {
        /// The factor.
        factor: Vec<f32>,
        /// The normalised input.
        normalised: Vec<f32>,
    },
    /// A random mask.
    Mask(Vec<f32>),
    /// The layer's input rearranged for its products: a convolution's unfolded patches, a
    /// transposed convolution's channels side by side.
    Rearranged(Vec<f32>),
}

/// A fast forward pass's settings and buffers, lent to each layer.
pub struct ForwardPass<'a> {
    /// Rows of the batch.
    pub rows: usize,
    /// `Some(rng)` in the network's own update (batch statistics, running averages updated,
    /// dropout masks drawn), `None` outside it.
    pub train: Option<&'a mut ChaCha8Rng>,
    /// Whether to keep what a backward pass needs.
    pub keep: bool,
    /// Whether that backward pass asks for parameter gradients outside the network's own
    /// update (a gradient penalty's last pass): running batch-norm then keeps its normalised
    /// input too.
    pub keep_for_parameters: bool,
    /// Whether the next layer keeps this layer's output as its input.
    pub next_keeps_input: bool,
    /// Where buffers come from and go back to.
    pub pool: &'a mut BufferPool,
}

impl ForwardPass<'_> {
    /// What to keep of an output the backward pass needs: nothing when nothing is kept, a
    /// reference to the next layer's kept input when it keeps one, else a copy.
    pub fn kept_output(&mut self, y: &[f32]) -> Saved {
        match (self.keep, self.next_keeps_input) {
            (false, _) => Saved::Nothing,
            (true, true) => Saved::OutputIsNextInput,
            (true, false) => Saved::Output(self.pool.copy_of(y)),
        }
    }
}

/// What happens to parameter gradients in a fast backward pass.
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

/// Gradients of a network's trainable tensors, in [`ReferenceLayer::visit`] order.
pub type ParamGrads = Vec<Vec<f32>>;

/// Something that updates one trainable tensor from its gradient: an optimizer.
pub trait ParamUpdate {
    /// Updates the tensor at `index` (among the network's trainable tensors, in visit order).
    fn apply(&mut self, index: usize, param: &mut [f32], grad: &[f32]);
}

/// A fast backward pass's settings and buffers, lent to each layer.
pub struct BackwardPass<'a, 'p> {
    /// Rows of the batch.
    pub rows: usize,
    /// Whether this layer must compute its input gradient.
    pub propagate: bool,
    /// Whether parameter gradients are wanted.
    pub param_grads: bool,
    /// What happens to them.
    pub(crate) params: ParamGradUse<'p>,
    /// The index of this layer's first tensor among the network's trainable ones.
    pub(crate) first_trainable: usize,
    /// Where buffers come from and go back to.
    pub pool: &'a mut BufferPool,
    /// Room for one weight gradient at a time (the largest layer's).
    pub weight_grad: &'a mut Vec<f32>,
    /// Room for one transposed layer input at a time.
    pub transposed_input: &'a mut Vec<f32>,
}

impl BackwardPass<'_, '_> {
    /// Hands over the gradient of the layer's tensor `local` (its index within the layer).
    pub fn hand_over(&mut self, local: usize, param: &mut [f32], grad: &[f32]) {
        let index = self.first_trainable + local;
        match &mut self.params {
            ParamGradUse::Skip => {}
            ParamGradUse::Collect(grads) => {
                grads[index].clear();
                grads[index].extend_from_slice(grad);
            }
            ParamGradUse::Apply(update) => update.apply(index, param, grad),
        }
    }
}

/// Lists the layer kinds: `Variant(SpecType)`, one line each. Generates the config enum, the
/// reference and fast enums and their dispatching methods.
macro_rules! layer_kinds {
    ($($(#[$doc:meta])* $kind:ident($spec:ty),)*) => {
        /// One layer of a config, written in TOML as an inline table tagged by `type`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum LayerSpec {
            $($(#[$doc])* $kind($spec),)*
        }

        /// One layer with its dfdx tensors.
        #[derive(Debug, Clone)]
        pub enum Layer {
            $($(#[$doc])* $kind(<$spec as LayerKind>::Layer),)*
        }

        /// One layer's settings on the fast path.
        #[derive(Debug, Clone)]
        pub enum FastLayerKind {
            $($(#[$doc])* $kind(<<$spec as LayerKind>::Layer as ReferenceLayer>::Fast),)*
        }

        impl LayerSpec {
            /// See [`LayerKind::check`].
            pub fn check(&self) -> Result<(), (&'static str, String)> {
                match self { $(LayerSpec::$kind(s) => LayerKind::check(s),)* }
            }
            /// See [`LayerKind::output_shape`].
            pub fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
                match self { $(LayerSpec::$kind(s) => LayerKind::output_shape(s, input),)* }
            }
            /// See [`LayerKind::sizes`].
            pub fn sizes(&self, input: FeatureShape, output: FeatureShape) -> (f64, f64) {
                match self { $(LayerSpec::$kind(s) => LayerKind::sizes(s, input, output),)* }
            }
            /// See [`LayerKind::scratch_per_row`].
            pub fn scratch_per_row(&self, input: FeatureShape, output: FeatureShape) -> f64 {
                match self { $(LayerSpec::$kind(s) => LayerKind::scratch_per_row(s, input, output),)* }
            }
            /// See [`LayerKind::build`].
            pub fn build(
                &self,
                input: FeatureShape,
                init: &InitConfig,
                dev: &Cpu,
                rng: &mut ChaCha8Rng,
            ) -> Layer {
                match self { $(LayerSpec::$kind(s) => Layer::$kind(LayerKind::build(s, input, init, dev, rng)),)* }
            }
        }

        impl Layer {
            /// See [`ReferenceLayer::forward`].
            pub fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
                &mut self,
                x: Matrix<T>,
                mode: &mut Mode<'_>,
            ) -> Matrix<T> {
                match self { $(Layer::$kind(l) => ReferenceLayer::forward(l, x, mode),)* }
            }
            /// See [`ReferenceLayer::visit`].
            pub fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
                match self { $(Layer::$kind(l) => ReferenceLayer::visit(l, v),)* }
            }
            /// See [`ReferenceLayer::output_width`].
            pub fn output_width(&self, input: usize) -> usize {
                match self { $(Layer::$kind(l) => ReferenceLayer::output_width(l, input),)* }
            }
            /// See [`ReferenceLayer::macs_per_row`].
            pub fn macs_per_row(&self) -> f64 {
                match self { $(Layer::$kind(l) => ReferenceLayer::macs_per_row(l),)* }
            }
            /// See [`ReferenceLayer::fast`].
            pub fn fast(&self) -> FastLayerKind {
                match self { $(Layer::$kind(l) => FastLayerKind::$kind(ReferenceLayer::fast(l)),)* }
            }
            /// See [`ReferenceLayer::start_step`].
            pub fn start_step(&mut self) {
                match self { $(Layer::$kind(l) => ReferenceLayer::start_step(l),)* }
            }
            /// See [`ReferenceLayer::spectral_sigma`].
            pub fn spectral_sigma(&self) -> Option<f64> {
                match self { $(Layer::$kind(l) => ReferenceLayer::spectral_sigma(l),)* }
            }
        }

        impl FastLayerKind {
            /// See [`FastLayer::forward`].
            pub fn forward(
                &mut self,
                tensors: &mut [Vec<f32>],
                x: &mut Vec<f32>,
                pass: &mut ForwardPass<'_>,
            ) -> Saved {
                match self { $(FastLayerKind::$kind(l) => FastLayer::forward(l, tensors, x, pass),)* }
            }
            /// See [`FastLayer::backward`].
            pub fn backward(
                &mut self,
                tensors: &mut [Vec<f32>],
                saved: Saved,
                g: &mut Vec<f32>,
                pass: &mut BackwardPass<'_, '_>,
            ) -> Option<Vec<f32>> {
                match self { $(FastLayerKind::$kind(l) => FastLayer::backward(l, tensors, saved, g, pass),)* }
            }
            /// See [`FastLayer::row_coupling`].
            pub fn row_coupling(&self) -> RowCoupling {
                match self { $(FastLayerKind::$kind(l) => FastLayer::row_coupling(l),)* }
            }
            /// See [`FastLayer::keeps_its_input`].
            pub fn keeps_its_input(&self) -> bool {
                match self { $(FastLayerKind::$kind(l) => FastLayer::keeps_its_input(l),)* }
            }
            /// See [`FastLayer::start_step`].
            pub fn start_step(&mut self, tensors: &mut [Vec<f32>]) {
                match self { $(FastLayerKind::$kind(l) => FastLayer::start_step(l, tensors),)* }
            }
            /// See [`FastLayer::penalty_pass`].
            pub fn penalty_pass(&self, tensors: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
                match self {
                    $(FastLayerKind::$kind(l) => FastLayer::penalty_pass(l, tensors, pass),)*
                }
            }
        }
    };
}

layer_kinds! {
    /// Fully connected `y = x W + b`.
    Linear(LinearSpec),
    /// `x` for `x >= 0`, `slope * x` below.
    LeakyRelu(LeakyReluSpec),
    /// `max(x, 0)`.
    Relu(Relu),
    /// `x` for `x > 0`, `alpha * (exp(x) - 1)` below (Clevert et al. 2016).
    Elu(Elu),
    /// Hyperbolic tangent.
    Tanh(Tanh),
    /// Logistic sigmoid.
    Sigmoid(Sigmoid),
    /// No activation; lets a layer list say so explicitly.
    Identity(Identity),
    /// Batch normalisation over the batch axis.
    BatchNorm(BatchNormSpec),
    /// Layer normalisation over each row's features.
    LayerNorm(LayerNormSpec),
    /// Inverted dropout, active only in the network's own update.
    Dropout(DropoutSpec),
    /// Reads flat features as an image `[channels, height, width]`; moves no data.
    Reshape(Reshape),
    /// Reads an image as flat features; moves no data.
    Flatten(Flatten),
    /// 2-D convolution over an image's channels.
    Conv2d(Conv2dSpec),
    /// Transposed 2-D convolution (the adjoint of a convolution): upsamples by its stride.
    ConvTranspose2d(ConvTranspose2dSpec),
    /// Nearest-neighbour upsampling of an image by a whole factor.
    Upsample(UpsampleSpec),
}

/// The shapes along a layer list, starting with `input`; or the index of the first layer whose
/// input does not fit it, and why. Works on the specs alone: nothing is allocated.
pub fn plan_shapes(
    layers: &[LayerSpec],
    input: FeatureShape,
) -> Result<Vec<FeatureShape>, (usize, String)> {
    let mut shapes = vec![input];
    let mut shape = input;
    for (i, layer) in layers.iter().enumerate() {
        shape = layer.output_shape(shape).map_err(|message| (i, message))?;
        shapes.push(shape);
    }
    Ok(shapes)
}

/// Tensors a layer visits, collected with their trainability (for the fast path's buffers).
#[derive(Default)]
pub(crate) struct CollectTensors {
    pub(crate) tensors: Vec<Vec<f32>>,
    pub(crate) trainable: Vec<bool>,
}

impl TensorVisitor for CollectTensors {
    fn visit<S: Shape>(&mut self, _: &str, tensor: &mut Tensor<S, f32, Cpu>, trainable: bool) {
        self.tensors.push(tensor.as_vec());
        self.trainable.push(trainable);
    }
}

/// Copies buffers back into the tensors a layer visits, in order.
pub(crate) struct RestoreTensors<'a> {
    pub(crate) tensors: std::slice::Iter<'a, Vec<f32>>,
}

impl TensorVisitor for RestoreTensors<'_> {
    fn visit<S: Shape>(&mut self, name: &str, tensor: &mut Tensor<S, f32, Cpu>, _: bool) {
        let values = self
            .tensors
            .next()
            .unwrap_or_else(|| panic!("no buffer for {name}"));
        tensor.copy_from(values);
    }
}

#[cfg(test)]
pub(crate) mod testing;
