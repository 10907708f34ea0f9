//! The reference training steps, on dfdx's tape: every gradient dfdx can reach is computed and
//! the unwanted ones dropped. The fast path (`step.rs`) is tested against these steps, and
//! `gan-run bench` measures its speed against them.

use std::time::Instant;

use dfdx::prelude::*;

use super::d_inputs::{add_instance_noise, penalty_batch, penalty_due, perturb_d_inputs};
use super::state::{
    g_step_input_values, generator_input_values, noise_columns, DStep, GStep, GanState, PhaseTimes,
};
use crate::config::conditioning::{discriminator_input, head};
use crate::config::{Experiment, IMAGE_PIXELS};
use crate::loss::{mean_probability, Term};
use crate::model::backprop::{PlainNet, Workspace};
use crate::model::{Matrix, Mode};
use crate::model::{Network, TensorVisitor};

/// G's input for `rows` samples and their labels, as the fast path draws them.
fn generator_input(
    state: &mut GanState,
    config: &Experiment,
    rows: usize,
    dev: &Cpu,
) -> (Matrix, Vec<u8>) {
    let (z, labels) = generator_input_values(config, rows, &mut state.rng);
    let width = z.len() / rows;
    (dev.tensor_from_vec(z, (rows, width)), labels)
}

/// `x` (images, on any tape) followed by `labels` as D reads them: `x E + L`, with `E` the
/// identity padded with zero columns and `L` the labels' part, so that the gradient flows to
/// the images only. `x` itself without conditioning.
fn discriminator_input_on_tape<T: Tape<f32, Cpu> + Merge<NoneTape>>(
    config: &Experiment,
    x: Matrix<T>,
    labels: &[u8],
    dev: &Cpu,
) -> Matrix<T> {
    let Some(c) = config
        .conditioning
        .as_ref()
        .filter(|c| c.discriminator_extra() > 0)
    else {
        return x;
    };
    let rows = x.shape().0;
    let width = IMAGE_PIXELS + c.discriminator_extra();
    let mut embed = vec![0.0; IMAGE_PIXELS * width];
    (0..IMAGE_PIXELS).for_each(|i| embed[i * width + i] = 1.0);
    let labels_part = discriminator_input(Some(c), vec![0.0; rows * IMAGE_PIXELS], labels);
    x.matmul(dev.tensor_from_vec(embed, (IMAGE_PIXELS, width)))
        + dev.tensor_from_vec(labels_part, (rows, width))
}

/// One discriminator step on a real batch (with its `labels` where the config is
/// class-conditional): G runs outside its own update (no tape, no dropout; batch-norm on the
/// batch's statistics in mode `batch`, on running ones in mode `running`), D in its own; only
/// D's optimizer moves.
pub fn d_step(
    state: &mut GanState,
    config: &Experiment,
    real: Matrix,
    labels: &[u8],
    dev: &Cpu,
    times: &mut PhaseTimes,
) -> DStep {
    let phase = Instant::now();
    let (z, fake_labels) = generator_input(state, config, real.shape().0, dev);
    let fake = state.generator.forward(z, Mode::Eval);
    let std = config.instance_noise.std_in(state.epoch + 1);
    let (mut real_values, mut fake_values) = (real.as_vec(), fake.as_vec());
    let both = (&mut real_values[..], &mut fake_values[..]);
    perturb_d_inputs(config, std, both, &mut state.rng);
    let penalty = penalty_due(config, state.d_opt.steps);
    let c = config.conditioning.as_ref();
    let (real_values, fake_values) = (
        discriminator_input(c, real_values, labels),
        discriminator_input(c, fake_values, &fake_labels),
    );
    let penalty_inputs = penalty.map(|_| (real_values.clone(), fake_values.clone()));
    let shape = (real.shape().0, real_values.len() / real.shape().0);
    let real = dev.tensor_from_vec(real_values, shape);
    let fake = dev.tensor_from_vec(fake_values, shape);
    times.g_forward += phase.elapsed();

    let phase = Instant::now();
    state.discriminator.start_step();
    // Two passes (not one batch of both) so that batch-norm in D sees each batch alone.
    let real_logits = state.discriminator.forward(
        real.leaky_traced(),
        Mode::Train {
            rng: &mut state.rng,
        },
    );
    let fake_logits = state.discriminator.forward(
        fake.leaky_traced(),
        Mode::Train {
            rng: &mut state.rng,
        },
    );
    let head = head(c);
    let mean_prob = |logits: &Matrix<OwnedTape<f32, Cpu>>, labels| {
        mean_probability(&head.scores(&logits.as_vec(), labels))
    };
    let (d_real, d_fake) = (
        mean_prob(&real_logits, labels),
        mean_prob(&fake_logits, &fake_labels),
    );
    let real_term = Term::real(config.label_smoothing);
    let loss = head.reference(config.loss, real_logits, labels, real_term)
        + head.reference(config.loss, fake_logits, &fake_labels, Term::Fake);
    let value = loss.array();
    let mut grads = loss.backward();
    let mut penalty_value = None;
    if let (Some((kind, weight)), Some((real, fake))) = (penalty, penalty_inputs) {
        // dfdx has no second-order gradients: the penalty's come from the fast path (tested
        // against finite differences), added to the tape's.
        let rows = shape.0;
        let (x, x_labels) = penalty_batch(
            kind,
            (real, labels),
            (fake, &fake_labels),
            rows,
            &mut state.rng,
        );
        let along = head.score_gradient(x_labels);
        let mut plain = PlainNet::check_out(&state.discriminator);
        let (value_p, penalty_grads) = plain
            .penalty_gradients(x, rows, along, &mut Workspace::default(), |g| {
                kind.of_image_gradient(g, rows, IMAGE_PIXELS, weight)
            })
            .expect("validation refuses penalties through layers without a penalty pass");
        add_to_gradients(&mut state.discriminator, &mut grads, &penalty_grads);
        let every = config.gradient_penalty.as_ref().map_or(1, |gp| gp.every);
        penalty_value = Some(value_p / every as f32);
    }
    times.d_step += phase.elapsed();

    let phase = Instant::now();
    state.d_opt.cfg.lr = config.optimizer.discriminator.lr_in(state.epoch + 1);
    state.d_opt.update(&mut state.discriminator, &mut grads);
    times.optimizer += phase.elapsed();
    DStep {
        loss: value,
        d_real,
        d_fake,
        penalty: penalty_value,
    }
}

/// Adds `extra` (one buffer per trainable tensor of `net`, in visit order) to the tape's
/// gradients of those tensors.
fn add_to_gradients(net: &mut Network, grads: &mut Gradients<f32, Cpu>, extra: &[Vec<f32>]) {
    struct Add<'a>(&'a mut Gradients<f32, Cpu>, std::slice::Iter<'a, Vec<f32>>);
    impl TensorVisitor for Add<'_> {
        fn visit<S: Shape>(&mut self, _: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
            if trainable {
                let extra = self.1.next().expect("one buffer per trainable tensor");
                let grad = self.0.get_or_alloc_mut(t).expect("cpu allocation");
                grad.iter_mut().zip(extra).for_each(|(g, e)| *g += e);
            }
        }
    }
    net.visit(&mut Add(grads, extra.iter()));
}

/// One generator step: G in its own update, D outside its own. The backward pass also
/// computes gradients for D's parameters; they are dropped, and only G's optimizer moves.
pub fn g_step(
    state: &mut GanState,
    config: &Experiment,
    batch: usize,
    dev: &Cpu,
    times: &mut PhaseTimes,
) -> GStep {
    let phase = Instant::now();
    state.generator.start_step();
    let (z, labels) = g_step_input_values(config, batch, &mut state.rng);
    let noise = config
        .mode_seeking
        .map(|_| noise_columns(config, &z, batch));
    let z = dev.tensor_from_vec(z, (batch, config.input_widths().0));
    let fake = state.generator.forward(
        z.leaky_traced(),
        Mode::Train {
            rng: &mut state.rng,
        },
    );
    // Mode seeking reads G's images before augmentation and instance noise; the same images,
    // on the same tape.
    let mode_seeking = config
        .mode_seeking
        .zip(noise)
        .map(|(term, noise)| term.on_tape(fake.with_empty_tape(), &noise, batch));
    let fake = match config.augment {
        Some(augment) => augment.draw(batch, &mut state.rng).on_tape(fake),
        None => fake,
    };
    // Instance noise is a constant on the tape: the gradient passes through unchanged.
    let std = config.instance_noise.std_in(state.epoch + 1);
    let fake = match std > 0.0 {
        true => {
            let shape = *fake.shape();
            let mut noise = vec![0.0; shape.0 * shape.1];
            add_instance_noise(&mut noise, std, &mut state.rng);
            fake + dev.tensor_from_vec(noise, shape)
        }
        false => fake,
    };
    let fake = discriminator_input_on_tape(config, fake, &labels, dev);
    let logits = state.discriminator.forward(fake, Mode::Eval);
    let head = head(config.conditioning.as_ref());
    let loss = match config.top_k {
        Some(top_k) => {
            let keep = top_k.count(batch, state.epoch + 1);
            crate::loss::top_k::reference(head, config.loss, logits, &labels, keep)
        }
        None => head.reference(config.loss, logits, &labels, Term::Generator),
    };
    let value = loss.array();
    let mode_seeking_value = mode_seeking.as_ref().map(|term| term.array());
    let mut grads = match mode_seeking {
        Some(term) => (loss + term).backward(),
        None => loss.backward(),
    };
    times.g_step += phase.elapsed();

    let phase = Instant::now();
    state.g_opt.cfg.lr = config.optimizer.generator.lr_in(state.epoch + 1);
    state.g_opt.update(&mut state.generator, &mut grads);
    if let (Some(ema), Some(decay)) = (&mut state.ema, GanState::ema_decay(config, state.epoch + 1))
    {
        // The fast path's arithmetic, on copies of the tensors.
        let mut average = PlainNet::check_out(ema);
        average.move_average_towards(&PlainNet::check_out(&state.generator), decay);
        average.check_in(ema);
    }
    times.optimizer += phase.elapsed();
    GStep {
        loss: value,
        mode_seeking: mode_seeking_value,
    }
}
