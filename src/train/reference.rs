//! The reference training steps, on dfdx's tape: every gradient dfdx can reach is computed and
//! the unwanted ones dropped. The fast path (`step.rs`) is tested against these steps, and
//! `gan-run bench` measures its speed against them.

use std::time::Instant;

use dfdx::prelude::*;

use super::state::{add_instance_noise, sample_noise, DStep, GanState, PhaseTimes};
use crate::config::Experiment;
use crate::loss::Term;
use crate::model::backprop::PlainNet;
use crate::model::{Matrix, Mode};

/// One discriminator step on a real batch: G runs outside its own update (no tape, no
/// dropout; batch-norm on the batch's statistics in mode `batch`, on running ones in mode
/// `running`), D in its own; only D's optimizer moves.
pub fn d_step(
    state: &mut GanState,
    config: &Experiment,
    real: Matrix,
    dev: &Cpu,
    times: &mut PhaseTimes,
) -> DStep {
    let phase = Instant::now();
    let z = sample_noise(config, real.shape().0, &mut state.rng, dev);
    let fake = state.generator.forward(z, Mode::Eval);
    let std = config.instance_noise.std_in(state.epoch + 1);
    let (mut real_values, mut fake_values) = (real.as_vec(), fake.as_vec());
    add_instance_noise(&mut real_values, std, &mut state.rng);
    add_instance_noise(&mut fake_values, std, &mut state.rng);
    let real = dev.tensor_from_vec(real_values, *real.shape());
    let fake = dev.tensor_from_vec(fake_values, *fake.shape());
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
    let mean_prob = |logits: &Matrix<OwnedTape<f32, Cpu>>| {
        logits
            .retaped::<NoneTape>()
            .sigmoid()
            .mean::<Rank0, _>()
            .array()
    };
    let (d_real, d_fake) = (mean_prob(&real_logits), mean_prob(&fake_logits));
    let loss = config
        .loss
        .reference(real_logits, Term::real(config.label_smoothing))
        + config.loss.reference(fake_logits, Term::Fake);
    let value = loss.array();
    let mut grads = loss.backward();
    times.d_step += phase.elapsed();

    let phase = Instant::now();
    state.d_opt.update(&mut state.discriminator, &mut grads);
    times.optimizer += phase.elapsed();
    DStep {
        loss: value,
        d_real,
        d_fake,
    }
}

/// One generator step: G in its own update, D outside its own. The backward pass also
/// computes gradients for D's parameters; they are dropped, and only G's optimizer moves.
pub fn g_step(
    state: &mut GanState,
    config: &Experiment,
    batch: usize,
    dev: &Cpu,
    times: &mut PhaseTimes,
) -> f32 {
    let phase = Instant::now();
    state.generator.start_step();
    let z = sample_noise(config, batch, &mut state.rng, dev);
    let fake = state.generator.forward(
        z.leaky_traced(),
        Mode::Train {
            rng: &mut state.rng,
        },
    );
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
    let logits = state.discriminator.forward(fake, Mode::Eval);
    let loss = config.loss.reference(logits, Term::Generator);
    let value = loss.array();
    let mut grads = loss.backward();
    times.g_step += phase.elapsed();

    let phase = Instant::now();
    state.g_opt.update(&mut state.generator, &mut grads);
    if let (Some(ema), Some(decay)) = (&mut state.ema, GanState::ema_decay(config, state.epoch + 1))
    {
        // The fast path's arithmetic, on copies of the tensors.
        let mut average = PlainNet::check_out(ema);
        average.move_average_towards(&PlainNet::check_out(&state.generator), decay);
        average.check_in(ema);
    }
    times.optimizer += phase.elapsed();
    value
}
