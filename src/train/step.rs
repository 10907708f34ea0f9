//! The training step as gan-run runs it: one D step and one G step on plain buffers
//! ([`PlainNet`]), with only the gradients each step needs and Adam on the same buffers.
//!
//! Compared with the tape-based [`super::d_step`] / [`super::g_step`] (kept as the reference
//! the tests and `gan-run bench` compare against), this path skips the first layer's input
//! gradient, skips D's weight gradients in the G step, runs D once on the real and generated
//! batches together when that changes nothing (no batch-norm, at most one dropout layer: one
//! product of 200 rows instead of two of 100),
//! and parallelises the element-wise work. It draws from the RNG in the same order (noise, then
//! dropout masks), so with the same starting state both paths compute the same step up to
//! floating-point rounding.

use std::time::Instant;

use rand_chacha::ChaCha8Rng;

use super::d_inputs::{add_instance_noise, penalty_batch, penalty_due, perturb_d_inputs};
use super::state::{
    g_step_input_values, generator_input_values, noise_columns, DStep, GStep, GanState, PhaseTimes,
};
use crate::config::conditioning::{discriminator_input, head, image_gradient};
use crate::config::{Experiment, IMAGE_PIXELS};
use crate::loss::{mean_probability, Term};
use crate::model::backprop::{ParamGradUse, ParamGrads, ParamUpdate, PlainNet, Workspace};
use crate::model::kernels::adam;
use crate::model::optim::AdamState;
use crate::model::{Network, TensorVisitor};
use dfdx::prelude::*;

/// Adam's state for a [`PlainNet`]: moments in the same order as its parameters.
#[derive(Debug, Clone)]
pub struct PlainAdam {
    lr: f32,
    betas: [f32; 2],
    eps: f32,
    steps: i32,
    moment1: Vec<Vec<f32>>,
    moment2: Vec<Vec<f32>>,
}

impl PlainAdam {
    fn check_out(state: &mut AdamState, net: &mut Network) -> PlainAdam {
        struct Take<'a>(&'a mut AdamState, Vec<Vec<f32>>, Vec<Vec<f32>>);
        impl TensorVisitor for Take<'_> {
            fn visit<S: Shape>(&mut self, _: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
                if trainable {
                    let (m, v) = self.0.moments_of(t);
                    self.1.push(std::mem::take(m));
                    self.2.push(std::mem::take(v));
                }
            }
        }
        let mut take = Take(state, Vec::new(), Vec::new());
        net.visit(&mut take);
        let (moment1, moment2) = (take.1, take.2);
        // The moments are moved, not copied, so that they are held once: dfdx's entries stay,
        // empty, until check-in moves them back (dfdx's tensor cache, which would keep the
        // emptied buffers, is never enabled).
        let cfg = &state.cfg;
        PlainAdam {
            lr: cfg.lr as f32,
            betas: cfg.betas.map(|b| b as f32),
            eps: cfg.eps as f32,
            steps: state.steps,
            moment1,
            moment2,
        }
    }

    /// Moves the moments back into dfdx's buffers.
    fn check_in(mut self, state: &mut AdamState, net: &mut Network) {
        struct Give<'a>(&'a mut AdamState, &'a mut PlainAdam, usize);
        impl TensorVisitor for Give<'_> {
            fn visit<S: Shape>(&mut self, _: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
                if trainable {
                    // The entries check-out emptied: filled without a copy.
                    let (m, v) = self.0.moments_of(t);
                    *m = std::mem::take(&mut self.1.moment1[self.2]);
                    *v = std::mem::take(&mut self.1.moment2[self.2]);
                    self.2 += 1;
                }
            }
        }
        state.steps = self.steps;
        net.visit(&mut Give(state, &mut self, 0));
    }

    /// Starts one optimizer step (Adam's `t` counts steps, not tensors) and returns the
    /// updater for its tensors.
    fn begin_step(&mut self) -> &mut Self {
        self.steps += 1;
        self
    }

    /// One optimizer step from collected gradients.
    fn update(&mut self, net: &mut PlainNet, grads: &ParamGrads) {
        let step = self.begin_step();
        for (i, param) in net.params_mut().into_iter().enumerate() {
            step.apply(i, param, &grads[i]);
        }
    }
}

impl ParamUpdate for PlainAdam {
    /// Updates one tensor within the step [`PlainAdam::begin_step`] started.
    fn apply(&mut self, index: usize, param: &mut [f32], grad: &[f32]) {
        adam(
            self.steps,
            self.lr,
            self.betas,
            self.eps,
            param,
            &mut self.moment1[index],
            &mut self.moment2[index],
            grad,
        );
    }
}

/// Both networks and both optimizers as plain buffers, checked out of a [`GanState`].
#[derive(Debug, Clone)]
pub struct PlainGan {
    generator: PlainNet,
    discriminator: PlainNet,
    g_opt: PlainAdam,
    d_opt: PlainAdam,
    /// The buffers both networks' passes work in.
    workspace: Workspace,
    /// The generator's moving average, and its decay in the epoch being trained.
    ema: Option<(PlainNet, f32)>,
    /// The standard deviation of the instance noise in the epoch being trained.
    instance_noise: f32,
    /// The 1-based epoch being trained (top-k's share follows it).
    epoch: usize,
    /// D's parameter gradients from its real and its generated batch, kept from step to step:
    /// allocated afresh, a wide D's (DCGAN's 6272 x 1024 weight) cost the kernel 4% of a step
    /// zeroing new pages (perf).
    d_grads: (ParamGrads, ParamGrads),
}

impl PlainGan {
    /// Copies the networks out of `state` and moves the optimizers' moments out (`state`'s
    /// moments are empty until [`PlainGan::check_in`]).
    pub fn check_out(state: &mut GanState) -> PlainGan {
        PlainGan {
            generator: PlainNet::check_out(&state.generator),
            discriminator: PlainNet::check_out(&state.discriminator),
            g_opt: PlainAdam::check_out(&mut state.g_opt, &mut state.generator),
            d_opt: PlainAdam::check_out(&mut state.d_opt, &mut state.discriminator),
            workspace: Workspace::default(),
            ema: state
                .ema
                .as_ref()
                .map(|ema| (PlainNet::check_out(ema), 0.0)),
            instance_noise: 0.0,
            epoch: state.epoch + 1,
            d_grads: Default::default(),
        }
    }

    /// Sets what changes from epoch to epoch for the steps of the 1-based `epoch`: the moving
    /// average's decay ([`GanState::ema_decay`]), the instance noise's standard deviation and
    /// both learning rates.
    pub fn begin_epoch(&mut self, config: &Experiment, epoch: usize) {
        let optimizers = &config.optimizer;
        self.g_opt.lr = optimizers.generator.lr_in(epoch) as f32;
        self.d_opt.lr = optimizers.discriminator.lr_in(epoch) as f32;
        if let (Some((_, d)), Some(decay)) = (&mut self.ema, GanState::ema_decay(config, epoch)) {
            *d = decay;
        }
        self.instance_noise = config.instance_noise.std_in(epoch);
        self.epoch = epoch;
    }

    /// Writes everything back into `state`.
    pub fn check_in(self, state: &mut GanState) {
        self.generator.check_in(&mut state.generator);
        self.discriminator.check_in(&mut state.discriminator);
        self.g_opt.check_in(&mut state.g_opt, &mut state.generator);
        self.d_opt
            .check_in(&mut state.d_opt, &mut state.discriminator);
        if let (Some((plain, _)), Some(ema)) = (&self.ema, &mut state.ema) {
            plain.check_in(ema);
        }
    }

    /// One discriminator step on `batch` real images (with their `labels` where the config is
    /// class-conditional; ignored otherwise): G outside its own update, D in its own; only D's
    /// parameters move.
    pub fn d_step(
        &mut self,
        rng: &mut ChaCha8Rng,
        config: &Experiment,
        real: Vec<f32>,
        labels: &[u8],
        times: &mut PhaseTimes,
    ) -> DStep {
        let batch = real.len() / IMAGE_PIXELS;
        let phase = Instant::now();
        let (z, fake_labels) = generator_input_values(config, batch, rng);
        let (mut fake, _) = self
            .generator
            .forward(z, batch, None, false, &mut self.workspace);
        let mut real = real;
        perturb_d_inputs(config, self.instance_noise, (&mut real, &mut fake), rng);
        let c = config.conditioning.as_ref();
        let real = discriminator_input(c, real, labels);
        let fake = discriminator_input(c, fake, &fake_labels);
        times.g_forward += phase.elapsed();

        let phase = Instant::now();
        let d = &mut self.discriminator;
        d.start_step();
        let head = head(c);
        let real_term = Term::real(config.label_smoothing);
        let penalty = penalty_due(config, self.d_opt.steps);
        let penalty_inputs = penalty.map(|_| (real.clone(), fake.clone()));
        let mut penalty_value = None;
        let (loss, d_real, d_fake) = if !d.batches_combine() || penalty.is_some() {
            // Batch-norm must see each batch alone, and dropout masks come in the tape path's
            // order: two passes (and a penalty's gradients join the loss's before the update).
            let (real_logits, real_trace) =
                d.forward(real, batch, Some(rng), true, &mut self.workspace);
            let (fake_logits, fake_trace) =
                d.forward(fake, batch, Some(rng), true, &mut self.workspace);
            let r = head.fast(config.loss, &real_logits, labels, real_term);
            let f = head.fast(config.loss, &fake_logits, &fake_labels, Term::Fake);
            let probabilities = (
                mean_probability(&head.scores(&real_logits, labels)),
                mean_probability(&head.scores(&fake_logits, &fake_labels)),
            );
            let (mut grads, mut fake_grads) = std::mem::take(&mut self.d_grads);
            let workspace = &mut self.workspace;
            d.backward(
                real_trace,
                r.grad,
                false,
                ParamGradUse::Collect(&mut grads),
                workspace,
            );
            d.backward(
                fake_trace,
                f.grad,
                false,
                ParamGradUse::Collect(&mut fake_grads),
                workspace,
            );
            for (g, h) in grads.iter_mut().zip(&fake_grads) {
                g.iter_mut().zip(h).for_each(|(a, b)| *a += b);
            }
            if let (Some((kind, weight)), Some((real, fake))) = (penalty, penalty_inputs) {
                let real = (real, labels);
                let (x, x_labels) = penalty_batch(kind, real, (fake, &fake_labels), batch, rng);
                let along = head.score_gradient(x_labels);
                let (value, penalty_grads) = d
                    .penalty_gradients(x, batch, along, workspace, |g| {
                        kind.of_image_gradient(g, batch, IMAGE_PIXELS, weight)
                    })
                    .expect("validation refuses penalties through layers without a penalty pass");
                for (g, h) in grads.iter_mut().zip(penalty_grads) {
                    g.iter_mut().zip(h).for_each(|(a, b)| *a += b);
                }
                let every = config.gradient_penalty.as_ref().map_or(1, |gp| gp.every);
                penalty_value = Some(value / every as f32);
            }
            times.d_step += phase.elapsed();
            let phase = Instant::now();
            self.d_opt.update(d, &grads);
            self.d_grads = (grads, fake_grads);
            times.optimizer += phase.elapsed();
            (r.loss + f.loss, probabilities.0, probabilities.1)
        } else {
            let mut both = self.workspace.take(real.len() + fake.len());
            let (real_rows, fake_rows) = both.split_at_mut(real.len());
            real_rows.copy_from_slice(&real);
            fake_rows.copy_from_slice(&fake);
            self.workspace.give(fake);
            let (logits, trace) = d.forward(both, 2 * batch, Some(rng), true, &mut self.workspace);
            let (real_logits, fake_logits) = logits.split_at(batch * head.width());
            let r = head.fast(config.loss, real_logits, labels, real_term);
            let f = head.fast(config.loss, fake_logits, &fake_labels, Term::Fake);
            let probabilities = (
                mean_probability(&head.scores(real_logits, labels)),
                mean_probability(&head.scores(fake_logits, &fake_labels)),
            );
            let mut grad = r.grad;
            grad.extend(f.grad);
            // The update runs inside the backward pass (its time counts as D's).
            let step = self.d_opt.begin_step();
            d.backward(
                trace,
                grad,
                false,
                ParamGradUse::Apply(step),
                &mut self.workspace,
            );
            times.d_step += phase.elapsed();
            (r.loss + f.loss, probabilities.0, probabilities.1)
        };
        DStep {
            loss,
            d_real,
            d_fake,
            penalty: penalty_value,
        }
    }

    /// One generator step: G in its own update, D outside its own; D is only differentiated
    /// with respect to its input, and only G's parameters move.
    pub fn g_step(
        &mut self,
        rng: &mut ChaCha8Rng,
        config: &Experiment,
        batch: usize,
        times: &mut PhaseTimes,
    ) -> GStep {
        let phase = Instant::now();
        self.generator.start_step();
        let (z, labels) = g_step_input_values(config, batch, rng);
        let noise = config
            .mode_seeking
            .map(|_| noise_columns(config, &z, batch));
        let (mut fake, g_trace) =
            self.generator
                .forward(z, batch, Some(rng), true, &mut self.workspace);
        // Mode seeking reads G's images before augmentation and instance noise.
        let mode_seeking = config
            .mode_seeking
            .zip(noise)
            .map(|(term, noise)| term.of_images(&fake, &noise, batch));
        let augmentation = config.augment.map(|a| a.draw(batch, rng));
        if let Some(augmentation) = &augmentation {
            augmentation.apply(&mut fake);
        }
        add_instance_noise(&mut fake, self.instance_noise, rng);
        let c = config.conditioning.as_ref();
        let fake = discriminator_input(c, fake, &labels);
        let (logits, d_trace) =
            self.discriminator
                .forward(fake, batch, None, true, &mut self.workspace);
        let l = match config.top_k {
            Some(top_k) => {
                let keep = top_k.count(batch, self.epoch);
                crate::loss::top_k::fast(head(c), config.loss, &logits, &labels, keep)
            }
            None => head(c).fast(config.loss, &logits, &labels, Term::Generator),
        };
        let d_fake = self
            .discriminator
            .backward(
                d_trace,
                l.grad,
                true,
                ParamGradUse::Skip,
                &mut self.workspace,
            )
            .expect("asked for the input gradient");
        let mut d_fake = image_gradient(c, d_fake);
        if let Some(augmentation) = &augmentation {
            augmentation.adjoint(&mut d_fake);
        }
        let mode_seeking = mode_seeking.map(|(value, grad)| {
            d_fake.iter_mut().zip(grad).for_each(|(g, m)| *g += m);
            value
        });
        // G's update runs inside its backward pass (its time counts as the G step's).
        let step = self.g_opt.begin_step();
        self.generator.backward(
            g_trace,
            d_fake,
            false,
            ParamGradUse::Apply(step),
            &mut self.workspace,
        );
        if let Some((ema, decay)) = &mut self.ema {
            ema.move_average_towards(&self.generator, *decay);
        }
        times.g_step += phase.elapsed();
        GStep {
            loss: l.loss,
            mode_seeking,
        }
    }
}

impl PlainGan {
    /// D's and G's losses on `real` and one batch of noise from `rng`, neither network in its
    /// own update (nothing moves, no dropout, no augmentation): the losses the tutorial printed
    /// after each epoch; and D's mean input-gradient norm on both batches.
    pub fn losses(
        &mut self,
        rng: &mut ChaCha8Rng,
        config: &Experiment,
        real: Vec<f32>,
        labels: &[u8],
    ) -> EndOfEpoch {
        let batch = real.len() / IMAGE_PIXELS;
        let (z, fake_labels) = generator_input_values(config, batch, rng);
        let (fake, _) = self
            .generator
            .forward(z, batch, None, false, &mut self.workspace);
        let c = config.conditioning.as_ref();
        let (real, fake) = (
            discriminator_input(c, real, labels),
            discriminator_input(c, fake, &fake_labels),
        );
        let d = &mut self.discriminator;
        let head = head(c);
        let grad_norms = [(&real, labels), (&fake, &fake_labels[..])].map(|(x, labels)| {
            let along = head.score_gradient(labels);
            // The image's part of each row: a label D reads beside it is not an input G moves.
            let image = IMAGE_PIXELS;
            d.mean_input_gradient_norm(x.clone(), batch, image, along, &mut self.workspace)
        });
        let (real_logits, _) =
            self.discriminator
                .forward(real, batch, None, false, &mut self.workspace);
        let (fake_logits, _) =
            self.discriminator
                .forward(fake, batch, None, false, &mut self.workspace);
        let loss =
            |outputs: &[f32], labels, term| head.fast(config.loss, outputs, labels, term).loss;
        let d = loss(&real_logits, labels, Term::real(config.label_smoothing))
            + loss(&fake_logits, &fake_labels, Term::Fake);
        EndOfEpoch {
            d_loss: d,
            g_loss: loss(&fake_logits, &fake_labels, Term::Generator),
            d_grad_norm_real: grad_norms[0],
            d_grad_norm_fake: grad_norms[1],
        }
    }
}

/// What [`PlainGan::losses`] measures after an epoch.
#[derive(Debug, Clone, Copy)]
pub struct EndOfEpoch {
    /// D's loss.
    pub d_loss: f32,
    /// G's loss.
    pub g_loss: f32,
    /// D's mean input-gradient norm on the real batch.
    pub d_grad_norm_real: f32,
    /// The same on the generated batch.
    pub d_grad_norm_fake: f32,
}

#[cfg(test)]
mod test_configs;
#[cfg(test)]
mod tests;
