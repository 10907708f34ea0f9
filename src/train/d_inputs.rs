//! What D's images go through in a training step before D sees them: differentiable
//! augmentation and instance noise, and the gradient penalty's cadence and batch. Both training
//! paths call these, so that they draw the same values from the same stream in the same order.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::config::{Experiment, IMAGE_PIXELS};
use crate::regularizer::{PenaltyInput, PenaltyKind};

/// D's view of a D step's `real` and generated images: augmented where the config says
/// (`[augment]`), then with instance noise of standard deviation `std`.
pub fn perturb_d_inputs(
    config: &Experiment,
    std: f32,
    (real, fake): (&mut [f32], &mut [f32]),
    rng: &mut ChaCha8Rng,
) {
    let rows = real.len() / IMAGE_PIXELS;
    if let Some(augment) = &config.augment {
        augment.draw(rows, rng).apply(real);
        augment.draw(rows, rng).apply(fake);
    }
    add_instance_noise(real, std, rng);
    add_instance_noise(fake, std, rng);
}

/// Adds instance noise of standard deviation `std` to every value of `x` (nothing, and no
/// draws, when `std` is 0), from `rng`: both training paths draw it here, in the same order.
pub fn add_instance_noise(x: &mut [f32], std: f32, rng: &mut ChaCha8Rng) {
    if std > 0.0 {
        let d = Normal::new(0.0f32, std).expect("std validated finite");
        x.iter_mut().for_each(|v| *v += d.sample(rng));
    }
}

/// The gradient penalty due in a D step, with its weight (scaled by its cadence, for lazy
/// regularisation), when one is: every `every`-th D step, counting from the first.
pub fn penalty_due(config: &Experiment, d_steps_before: i32) -> Option<(PenaltyKind, f32)> {
    let gp = config.gradient_penalty.as_ref()?;
    (d_steps_before as usize)
        .is_multiple_of(gp.every)
        .then_some((gp.kind, (gp.weight * gp.every as f64) as f32))
}

/// The images a penalty of `kind` looks at, and the labels a class-conditional head scores
/// them with: the real batch and its labels, the generated batch and its labels, or per row
/// `e * real + (1 - e) * generated` with `e` drawn from `rng` (both training paths draw here)
/// and the real batch's labels (as PyTorch-StudioGAN's WGAN-GP does). The batches are D's
/// `rows` input rows (each image followed by what D reads of its label, if it reads one;
/// interpolates keep the real row's), the step's own copies, moved rather than copied again.
pub fn penalty_batch<'a>(
    kind: PenaltyKind,
    (real, labels): (Vec<f32>, &'a [u8]),
    (fake, fake_labels): (Vec<f32>, &'a [u8]),
    rows: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, &'a [u8]) {
    match kind.input() {
        PenaltyInput::Real => (real, labels),
        PenaltyInput::Generated => (fake, fake_labels),
        PenaltyInput::Interpolates => {
            let width = real.len() / rows;
            let mut mixed = real;
            for (row, from) in mixed.chunks_exact_mut(width).zip(fake.chunks_exact(width)) {
                let e: f32 = rng.gen();
                let image = row[..IMAGE_PIXELS].iter_mut().zip(from);
                image.for_each(|(a, b)| *a = e * *a + (1.0 - e) * b);
            }
            (mixed, labels)
        }
    }
}
