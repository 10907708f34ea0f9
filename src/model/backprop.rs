//! A network's training-time twin on plain buffers, with hand-written backward passes.
//!
//! dfdx's tape computes every gradient it can reach: the first layer's input gradient (nobody
//! needs it), and in the generator's step all of the discriminator's weight gradients (thrown
//! away). Here the caller says which gradients it wants, so the training step does only the
//! arithmetic it needs; products and element-wise passes run on [`super::kernels`], each layer
//! kind's in its own file under [`super::layers`].
//!
//! A [`PlainNet`] is checked out of a [`Network`] (copying its tensors) for an epoch and checked
//! back in at the end, so that checkpoints, sampling and evaluation keep working on dfdx tensors.
//! Both copies follow the layers' one traversal ([`super::layers::ReferenceLayer::visit`]). The
//! arithmetic of each layer is the same as [`Network::forward`]'s; tests compare the two.

use std::ops::Range;

use rand_chacha::ChaCha8Rng;

use super::kernels::{zip_map, BufferPool};
use super::layers::{
    BackwardPass, CollectTensors, FastLayerKind, ForwardPass, PenaltyPass, RestoreTensors,
    RowCoupling, Saved,
};
pub use super::layers::{ParamGradUse, ParamGrads, ParamUpdate};
use super::Network;

/// What a backward pass does beside back-propagating (the gradient penalty's passes).
enum Recording<'a> {
    /// Nothing.
    None,
    /// Keeps the gradient each layer's output got, by layer.
    OutputGradients(&'a mut Vec<Vec<f32>>),
    /// Adds a gradient to each layer's input gradient (none where empty), by layer.
    AddAtInputs(&'a [Vec<f32>]),
}

/// The activations a forward pass kept for its backward pass.
pub struct Trace {
    saved: Vec<Saved>,
    rows: usize,
}

/// A network as plain buffers; see the module docs.
#[derive(Debug, Clone)]
pub struct PlainNet {
    layers: Vec<FastLayerKind>,
    /// Every layer's tensors, in visit order.
    pub(super) tensors: Vec<Vec<f32>>,
    /// Which of them are trained (not running statistics).
    pub(super) trainable: Vec<bool>,
    /// Each layer's tensors in `tensors`.
    pub(super) ranges: Vec<Range<usize>>,
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

impl PlainNet {
    /// Copies a network's tensors into plain buffers.
    pub fn check_out(net: &Network) -> PlainNet {
        let mut collect = CollectTensors::default();
        let mut ranges = Vec::with_capacity(net.layers.len());
        let mut layers = Vec::with_capacity(net.layers.len());
        for layer in &net.layers {
            let start = collect.tensors.len();
            // Visiting needs `&mut`; the copy is visited so that `net` stays untouched.
            layer.clone().visit(&mut collect);
            let range = start..collect.tensors.len();
            assert!(
                collect.trainable[range.clone()]
                    .windows(2)
                    .all(|w| w[0] || !w[1]),
                "a layer visits its trainable tensors first"
            );
            ranges.push(range);
            layers.push(layer.fast());
        }
        PlainNet {
            layers,
            tensors: collect.tensors,
            trainable: collect.trainable,
            ranges,
            input_width: net.input_width,
        }
    }

    /// Writes the buffers back into the network's tensors.
    pub fn check_in(&self, net: &mut Network) {
        let mut restore = RestoreTensors {
            tensors: self.tensors.iter(),
        };
        for layer in &mut net.layers {
            layer.visit(&mut restore);
        }
        assert!(
            restore.tensors.next().is_none(),
            "every buffer written back"
        );
    }

    /// The trainable buffers, in [`Network::visit`] order.
    pub fn params_mut(&mut self) -> Vec<&mut Vec<f32>> {
        self.tensors
            .iter_mut()
            .zip(&self.trainable)
            .filter_map(|(t, &trainable)| trainable.then_some(t))
            .collect()
    }

    /// Moves this network (a moving average) towards `other`, a network of the same layers:
    /// each trained tensor to `decay * self + (1 - decay) * other`, the others (running
    /// statistics, spectral norm's vectors) copied. Element by element, so the same bits on any
    /// number of threads; a decay of 0 copies.
    pub fn move_average_towards(&mut self, other: &PlainNet, decay: f32) {
        for ((mine, theirs), &trainable) in self
            .tensors
            .iter_mut()
            .zip(&other.tensors)
            .zip(&self.trainable)
        {
            if trainable && decay > 0.0 {
                zip_map(mine, theirs, |a, b| *a = decay * *a + (1.0 - decay) * b);
            } else {
                mine.copy_from_slice(theirs);
            }
        }
    }

    /// A gradient penalty on the network's input gradient and its gradient with respect to
    /// every trainable tensor (double backpropagation), outside the network's own update.
    /// `penalty` takes the gradient of the summed outputs (each weighted by `along`, or all by
    /// 1: a class-conditional head's score) with respect to `x` (`rows` rows) and gives the
    /// penalty and its gradient with respect to that input gradient. `along` is a constant, so
    /// the second pass is the same for any. Fails with the index of the first layer that
    /// cannot take part ([`super::layers::FastLayer::penalty_pass`]).
    ///
    /// Three passes: forward and backward outside the network's own update, keeping each
    /// layer's output gradient; then the penalty's pass from the input up
    /// ([`super::layers::PenaltyPass`]), layer by layer beside a forward pass that recomputes
    /// each layer's input; then, where a layer's Jacobian depends on its input (a smooth
    /// activation, a normalisation), one more backward pass carries that dependence
    /// (`curvature`, added at each such layer's input) down to the tensors of the layers below.
    pub fn penalty_gradients(
        &mut self,
        x: Vec<f32>,
        rows: usize,
        along: Option<Vec<f32>>,
        workspace: &mut Workspace,
        penalty: impl FnOnce(&[f32]) -> (f32, Vec<f32>),
    ) -> Result<(f32, ParamGrads), usize> {
        let (out, trace) = self.forward(x.clone(), rows, None, true, workspace);
        let seed = along.unwrap_or_else(|| vec![1.0; out.len()]);
        assert_eq!(seed.len(), out.len(), "one weight per output");
        let out_len = out.len();
        workspace.give(out);
        let mut out_grads = Vec::new();
        let input_grad = self
            .backward_recording(
                trace,
                seed,
                true,
                ParamGradUse::Skip,
                workspace,
                Recording::OutputGradients(&mut out_grads),
            )
            .expect("asked for the input gradient");
        let (value, mut adjoint) = penalty(&input_grad);
        let mut grads: Vec<Vec<f32>> = self.tensors.iter().map(|t| vec![0.0; t.len()]).collect();
        let mut curvatures = vec![Vec::new(); self.layers.len()];
        let mut h = x.clone();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let range = self.ranges[i].clone();
            let tensors = &mut self.tensors[range.clone()];
            let pass = PenaltyPass {
                input: &h,
                rows,
                out_grad: &out_grads[i],
                adjoint: &mut adjoint,
                grads: &mut grads[range],
                curvature: &mut curvatures[i],
            };
            if !layer.penalty_pass(tensors, pass) {
                return Err(i);
            }
            let mut pass = ForwardPass {
                rows,
                train: None,
                keep: false,
                keep_for_parameters: false,
                next_keeps_input: false,
                pool: &mut workspace.pool,
            };
            if let Saved::Input(b) | Saved::Output(b) | Saved::Mask(b) | Saved::Rearranged(b) =
                layer.forward(tensors, &mut h, &mut pass)
            {
                workspace.pool.give(b);
            }
        }
        let mut trainable: ParamGrads = grads
            .into_iter()
            .zip(&self.trainable)
            .filter_map(|(g, &t)| t.then_some(g))
            .collect();
        if curvatures.iter().any(|c| !c.is_empty()) {
            let (out, trace) = self.forward_keeping(x, rows, None, true, true, workspace);
            workspace.give(out);
            let mut through_inputs = ParamGrads::new();
            self.backward_recording(
                trace,
                vec![0.0; out_len],
                false,
                ParamGradUse::Collect(&mut through_inputs),
                workspace,
                Recording::AddAtInputs(&curvatures),
            );
            for (total, more) in trainable.iter_mut().zip(&through_inputs) {
                zip_map(total, more, |t, m| *t += m);
            }
        }
        Ok((value, trainable))
    }

    /// The mean over `rows` rows of the norm of the gradient of the summed outputs (each
    /// weighted by `along`, or all by 1) with respect to the first `measured` numbers of each
    /// row of `x` (the image, where a label follows it), outside the network's own update: how
    /// steep D is there.
    pub fn mean_input_gradient_norm(
        &mut self,
        x: Vec<f32>,
        rows: usize,
        measured: usize,
        along: Option<Vec<f32>>,
        workspace: &mut Workspace,
    ) -> f32 {
        let (out, trace) = self.forward(x, rows, None, true, workspace);
        let along = along.unwrap_or_else(|| vec![1.0; out.len()]);
        assert_eq!(along.len(), out.len(), "one weight per output");
        workspace.give(out);
        let g = self
            .backward(trace, along, true, ParamGradUse::Skip, workspace)
            .expect("asked for the input gradient");
        let width = g.len() / rows;
        let norms: f32 = g
            .chunks(width)
            .map(|row| row[..measured].iter().map(|v| v * v).sum::<f32>().sqrt())
            .sum();
        workspace.give(g);
        norms / rows as f32
    }

    /// The first layer [`PlainNet::penalty_gradients`] cannot differentiate through (a kind
    /// without a penalty pass), if any: one penalty pass on a row of zeros.
    pub fn first_layer_refusing_penalty(&mut self) -> Option<usize> {
        let mut workspace = Workspace::default();
        self.penalty_gradients(vec![0.0; self.input_width], 1, None, &mut workspace, |g| {
            (0.0, vec![0.0; g.len()])
        })
        .err()
    }

    /// Starts one of the network's own updates, as [`Network::start_step`] does.
    pub fn start_step(&mut self) {
        for (layer, range) in self.layers.iter_mut().zip(&self.ranges) {
            layer.start_step(&mut self.tensors[range.clone()]);
        }
    }

    /// Whether two batches can run through the network's own update as one and give what two
    /// passes give: not with batch statistics (each batch's would mix), nor with more than one
    /// layer drawing random masks (they would be drawn in another order: all rows layer by
    /// layer, rather than one batch's layers, then the other's).
    pub fn batches_combine(&self) -> bool {
        let coupling = |c| self.layers.iter().filter(|l| l.row_coupling() == c).count();
        coupling(RowCoupling::BatchStatistics) == 0 && coupling(RowCoupling::RandomMask) <= 1
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
        train: Option<&mut ChaCha8Rng>,
        keep: bool,
        workspace: &mut Workspace,
    ) -> (Vec<f32>, Trace) {
        self.forward_keeping(x, rows, train, keep, false, workspace)
    }

    /// [`PlainNet::forward`]; with `for_parameters`, keeping what parameter gradients outside
    /// the network's own update need too (a gradient penalty's last pass).
    fn forward_keeping(
        &mut self,
        x: Vec<f32>,
        rows: usize,
        train: Option<&mut ChaCha8Rng>,
        keep: bool,
        for_parameters: bool,
        workspace: &mut Workspace,
    ) -> (Vec<f32>, Trace) {
        assert_eq!(x.len(), rows * self.input_width, "input size");
        let mut x = x;
        let mut saved = Vec::with_capacity(self.layers.len());
        let keeps_input: Vec<bool> = self.layers.iter().map(|l| l.keeps_its_input()).collect();
        let mut pass = ForwardPass {
            rows,
            train,
            keep,
            keep_for_parameters: for_parameters,
            next_keeps_input: false,
            pool: &mut workspace.pool,
        };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            pass.next_keeps_input = keeps_input.get(i + 1).copied().unwrap_or(false);
            let save = layer.forward(&mut self.tensors[self.ranges[i].clone()], &mut x, &mut pass);
            match save {
                _ if keep => saved.push(save),
                Saved::Input(b) | Saved::Output(b) | Saved::Mask(b) | Saved::Rearranged(b) => {
                    pass.pool.give(b)
                }
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
        self.backward_recording(trace, grad, input_grad, params, workspace, Recording::None)
    }

    /// [`PlainNet::backward`], with what `recording` asks for beside it.
    fn backward_recording(
        &mut self,
        trace: Trace,
        grad: Vec<f32>,
        input_grad: bool,
        params: ParamGradUse<'_>,
        workspace: &mut Workspace,
        mut recording: Recording<'_>,
    ) -> Option<Vec<f32>> {
        if let Recording::OutputGradients(record) = &mut recording {
            record.clear();
            record.resize(self.layers.len(), Vec::new());
        }
        let mut params = params;
        let param_grads = !matches!(params, ParamGradUse::Skip);
        let trainable_count = self.trainable.iter().filter(|&&t| t).count();
        if let ParamGradUse::Collect(grads) = &mut params {
            // Emptied, their room kept for this pass's gradients.
            grads.iter_mut().for_each(Vec::clear);
            grads.resize(trainable_count, Vec::new());
        }
        // The first layer that needs an input gradient: below it, nothing is propagated.
        let has_trainable = |r: &Range<usize>| self.trainable[r.clone()].iter().any(|&t| t);
        let first_needed = if input_grad {
            0
        } else {
            self.ranges
                .iter()
                .position(has_trainable)
                .map_or(self.layers.len(), |i| i + 1)
        };
        let Workspace {
            pool,
            weight_grad,
            transposed_input,
        } = workspace;
        let mut pass = BackwardPass {
            rows: trace.rows,
            propagate: false,
            param_grads,
            params,
            first_trainable: 0,
            pool,
            weight_grad,
            transposed_input,
        };
        let mut g = grad;
        // The input the layer above kept, when the layer below may use it as its kept output.
        let mut next_input: Option<Vec<f32>> = None;
        for (i, (layer, saved)) in self.layers.iter_mut().zip(trace.saved).enumerate().rev() {
            let range = self.ranges[i].clone();
            pass.propagate = i >= first_needed;
            pass.first_trainable = self.trainable[..range.start].iter().filter(|&&t| t).count();
            let saved = match saved {
                Saved::OutputIsNextInput => {
                    Saved::Output(next_input.take().expect("the next layer kept it"))
                }
                saved => saved,
            };
            if let Recording::OutputGradients(record) = &mut recording {
                record[i] = g.clone();
            }
            let kept = layer.backward(&mut self.tensors[range], saved, &mut g, &mut pass);
            if let Recording::AddAtInputs(added) = &recording {
                // Below the last layer that propagates, no tensor needs it.
                if pass.propagate && !added[i].is_empty() {
                    zip_map(&mut g, &added[i], |d, a| *d += a);
                }
            }
            if let Some(unused) = std::mem::replace(&mut next_input, kept) {
                pass.pool.give(unused);
            }
        }
        if let Some(unused) = next_input {
            pass.pool.give(unused);
        }
        if input_grad {
            Some(g)
        } else {
            pass.pool.give(g);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LayerSpec;
    use rand::SeedableRng;

    fn build(layers: &str) -> Network {
        #[derive(serde::Deserialize)]
        struct L {
            layers: Vec<LayerSpec>,
        }
        let specs = toml::from_str::<L>(&format!("layers = [{layers}]"))
            .unwrap()
            .layers;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let init = crate::model::init::InitConfig::default();
        Network::build(
            "n",
            &specs,
            5,
            &init,
            &dfdx::prelude::Cpu::default(),
            &mut rng,
        )
    }

    /// The moving average against its definition: each trained number becomes
    /// `decay * average + (1 - decay) * current`; running statistics and spectral norm's
    /// vectors are the current network's; a decay of 0 copies everything.
    #[test]
    fn the_moving_average_mixes_trained_numbers_and_copies_the_rest() {
        let layers = r#"{type = "linear", out = 4, spectral_norm = true},
            {type = "batch_norm", mode = "running"}, {type = "linear", out = 2}"#;
        let (average, current) = (build(layers), build(layers));
        let mut current = PlainNet::check_out(&current);
        for t in current.tensors.iter_mut() {
            t.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = i as f32 + 0.5);
        }
        let before = PlainNet::check_out(&average);
        let mut moved = before.clone();
        moved.move_average_towards(&current, 0.9);
        let tensors = moved
            .tensors
            .iter()
            .zip(&before.tensors)
            .zip(&current.tensors);
        for (((got, old), new), &trained) in tensors.zip(&moved.trainable) {
            for ((g, o), n) in got.iter().zip(old).zip(new) {
                let d = 0.9f32;
                let want = if trained { d * o + (1.0 - d) * n } else { *n };
                assert_eq!(*g, want, "trained: {trained}");
            }
        }
        assert!(
            moved.trainable.iter().any(|t| !t),
            "statistics and vectors are copied"
        );
        let mut copied = before;
        copied.move_average_towards(&current, 0.0);
        assert_eq!(copied.tensors, current.tensors);
    }

    /// The input-gradient norm measures the first `measured` numbers of each row only (the
    /// image, where a label follows it): the mean of those parts' norms.
    #[test]
    fn the_input_gradient_norm_measures_the_leading_part_of_each_row() {
        let net =
            build(r#"{type = "linear", out = 4}, {type = "tanh"}, {type = "linear", out = 1}"#);
        let mut plain = PlainNet::check_out(&net);
        let x: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut workspace = Workspace::default();
        let (out, trace) = plain.forward(x.clone(), 3, None, true, &mut workspace);
        let dx = plain
            .backward(
                trace,
                vec![1.0; out.len()],
                true,
                ParamGradUse::Skip,
                &mut workspace,
            )
            .unwrap();
        let norm = |row: &[f32]| row.iter().map(|v| v * v).sum::<f32>().sqrt();
        for measured in [5, 3] {
            let want: f32 = dx.chunks(5).map(|r| norm(&r[..measured])).sum::<f32>() / 3.0;
            let got = plain.mean_input_gradient_norm(x.clone(), 3, measured, None, &mut workspace);
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "{measured}: {got} vs {want}"
            );
        }
        let whole = plain.mean_input_gradient_norm(x.clone(), 3, 5, None, &mut workspace);
        assert!(plain.mean_input_gradient_norm(x, 3, 3, None, &mut workspace) < whole);
    }

    /// Checking out and in again gives back every tensor, running statistics included, and
    /// the trainable ones are the optimizer's in visit order.
    #[test]
    fn check_out_and_in_follow_the_one_traversal() {
        let mut net = build(
            r#"{type = "linear", out = 4}, {type = "batch_norm", mode = "running"},
               {type = "elu"}, {type = "layer_norm"}, {type = "linear", out = 2}"#,
        );
        let mut plain = PlainNet::check_out(&net);
        assert_eq!(plain.tensors.len(), 10);
        assert_eq!(
            plain.params_mut().len(),
            8,
            "running statistics are not trained"
        );
        for (i, t) in plain.tensors.iter_mut().enumerate() {
            t.iter_mut().for_each(|v| *v = i as f32);
        }
        plain.check_in(&mut net);
        let again = PlainNet::check_out(&net);
        assert_eq!(again.tensors, plain.tensors);
    }

    #[test]
    fn batches_combine_only_without_batch_statistics_and_with_one_mask() {
        let combine = |layers| PlainNet::check_out(&build(layers)).batches_combine();
        assert!(combine(
            r#"{type = "linear", out = 4}, {type = "dropout", rate = 0.5}"#
        ));
        assert!(combine(
            r#"{type = "dropout", rate = 0.5}, {type = "dropout", rate = 0.0}, {type = "relu"}"#
        ));
        assert!(!combine(
            r#"{type = "dropout", rate = 0.5}, {type = "dropout", rate = 0.1}"#
        ));
        assert!(!combine(r#"{type = "batch_norm", mode = "batch"}"#));
    }
}
