//! Gradient penalties on D, one file each: R1 (Mescheder et al. 2018) on real images, R2 on
//! generated ones, WGAN-GP (Gulrajani et al. 2017) on random interpolates between the two. A
//! penalty's file says which images it is computed on and its value and gradient as a function
//! of D's input gradient there; the gradient with respect to D's parameters (double
//! backpropagation) is the fast path's, `model::backprop::PlainNet::penalty_gradients`, which
//! each layer kind's `FastLayer::penalty_pass` serves. This file lists the penalties
//! ([`penalties!`]'s call) and holds the `[gradient_penalty]` table. Adding a penalty is its
//! file plus one line there.

mod r1;
mod r2;
mod wgan_gp;

pub use r1::R1;
pub use r2::R2;
pub use wgan_gp::WganGp;

use serde::{Deserialize, Serialize};

/// The images a penalty looks at D's input gradient on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenaltyInput {
    /// The step's real batch.
    Real,
    /// The step's generated batch.
    Generated,
    /// Per row, `e * real + (1 - e) * generated` with `e` uniform in [0, 1).
    Interpolates,
}

/// A gradient penalty.
pub trait Penalty {
    /// Its name in configs.
    const NAME: &'static str;
    /// Which images it is computed on.
    fn input(&self) -> PenaltyInput;
    /// Its value for D's input gradient `g` (`rows` rows) with `weight`, and the value's
    /// gradient with respect to `g`.
    fn of_input_gradient(&self, g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>);
}

/// Lists the penalties: `Variant(Type)`, one line each; `Type::NAME` is the variant in snake
/// case.
macro_rules! penalties {
    ($($(#[$doc:meta])* $kind:ident($ty:ident),)*) => {
        /// Which gradient penalty (`[gradient_penalty] kind = "..."`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum PenaltyKind {
            $($(#[$doc])* $kind,)*
        }

        impl PenaltyKind {
            /// Every penalty, in listing order.
            pub const ALL: &'static [PenaltyKind] = &[$(PenaltyKind::$kind,)*];
            /// The name a config uses for it.
            pub fn name(self) -> &'static str {
                match self { $(PenaltyKind::$kind => $ty::NAME,)* }
            }
            /// See [`Penalty::input`].
            pub fn input(self) -> PenaltyInput {
                match self { $(PenaltyKind::$kind => $ty.input(),)* }
            }
            /// See [`Penalty::of_input_gradient`].
            pub fn of_input_gradient(self, g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>) {
                match self { $(PenaltyKind::$kind => $ty.of_input_gradient(g, rows, weight),)* }
            }
        }
    };
}

penalties! {
    /// `weight / 2 * mean |grad D(x)|^2` on real images (Mescheder et al. 2018).
    R1(R1),
    /// The same on generated images.
    R2(R2),
    /// `weight * mean (|grad D(x^)| - 1)^2` on interpolates (Gulrajani et al. 2017).
    WganGp(WganGp),
}

/// `[gradient_penalty]`: a penalty on D's input gradient, added to D's loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradientPenaltyConfig {
    /// Which penalty.
    pub kind: PenaltyKind,
    /// Its weight (gamma for R1 and R2, lambda for WGAN-GP: 10 in the papers).
    pub weight: f64,
    /// Lazy regularisation (Karras et al. 2020): computed every N-th D step, its weight
    /// multiplied by N.
    #[serde(default = "one")]
    pub every: usize,
}

fn one() -> usize {
    1
}

/// `weight / 2 * mean over rows of |g_row|^2` and its gradient `weight / rows * g`: R1 and R2.
pub(crate) fn half_mean_square(g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>) {
    let n = rows as f32;
    let value = weight * g.iter().map(|v| v * v).sum::<f32>() / (2.0 * n);
    (value, g.iter().map(|v| weight * v / n).collect())
}

#[cfg(test)]
pub(crate) mod testing {
    //! The check each penalty's file runs: its gradient against central differences, in f64.

    use super::*;

    pub(crate) fn gradient_matches_finite_differences(kind: PenaltyKind) {
        let (rows, width) = (3, 4);
        let g: Vec<f32> = (0..rows * width)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let (_, grad) = kind.of_input_gradient(&g, rows, 2.0);
        for i in 0..g.len() {
            let at = |d: f32| {
                let mut h = g.clone();
                h[i] += d;
                kind.of_input_gradient(&h, rows, 2.0).0 as f64
            };
            let numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
            assert!(
                (grad[i] as f64 - numeric).abs() < 1e-3 * (1.0 + numeric.abs()),
                "{}: {} vs {numeric}",
                kind.name(),
                grad[i]
            );
        }
    }
}
