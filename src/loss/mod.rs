//! The GAN objectives, one file each. A loss's file holds its reference on dfdx's tape, its fast
//! value and gradient with respect to D's outputs, and its tests; this file lists them
//! ([`losses!`]'s call) and turns the list into [`LossKind`], the config's `loss` key, whose
//! methods dispatch with exhaustive matches. Adding a loss is its file plus one line there.
//!
//! Every loss is a sum of three terms, each a mean over one batch of D's outputs: D's on real
//! images, D's on generated ones, and G's on generated ones ([`Term`]). A class-conditional D
//! may have a [`Head`] between its outputs and the loss.

mod bce_logits;
mod head;
mod hinge;
mod least_squares;
mod minimax;
pub mod top_k;
mod tutorial_double_sigmoid;
mod wasserstein;

pub use bce_logits::BceLogits;
pub use head::Head;
pub use hinge::Hinge;
pub use least_squares::LeastSquares;
pub use minimax::Minimax;
pub use top_k::TopK;
pub use tutorial_double_sigmoid::TutorialDoubleSigmoid;
pub use wasserstein::Wasserstein;

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::Matrix;

/// One term of a GAN loss: whose loss it is and on which batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Term {
    /// D's loss on a real batch, whose target (for the losses that have targets) is 1, or less
    /// with one-sided label smoothing (Salimans et al. 2016).
    Real {
        /// D's target on real images: `1 - label_smoothing`.
        target: f32,
    },
    /// D's loss on a generated batch.
    Fake,
    /// G's loss on a generated batch.
    Generator,
}

impl Term {
    /// D's term on real images with target 1.
    pub const REAL: Term = Term::Real { target: 1.0 };

    /// D's term on real images with one-sided label smoothing `smoothing`.
    pub fn real(smoothing: f64) -> Term {
        Term::Real {
            target: 1.0 - smoothing as f32,
        }
    }
}

/// A term's value over a batch and its gradient with respect to each of D's outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct TermValue {
    /// The mean over the batch.
    pub loss: f32,
    /// d loss / d output, per row.
    pub grad: Vec<f32>,
}

/// A GAN objective.
pub trait Objective {
    /// Its name in configs.
    const NAME: &'static str;
    /// Whether D's last layer must output a raw score (no sigmoid): validation refuses a
    /// discriminator ending in a sigmoid otherwise.
    fn takes_raw_scores(&self) -> bool;
    /// Whether its terms regress D's output to targets, which label smoothing can soften.
    fn has_targets(&self) -> bool;
    /// The term on dfdx's tape, from `[batch, 1]` outputs of D.
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        outputs: Matrix<T>,
        term: Term,
    ) -> Tensor<Rank0, f32, Cpu, T>;
    /// The term and its gradient on plain buffers, as [`Objective::reference`] computes them.
    fn fast(&self, outputs: &[f32], term: Term) -> TermValue;
}

/// Lists the losses: `Variant(Type)`, one line each; `Type` is a unit struct implementing
/// [`Objective`] whose `NAME` is the variant in snake case.
macro_rules! losses {
    ($($(#[$doc:meta])* $kind:ident($ty:ident),)*) => {
        /// The GAN loss (`loss = "..."` in a config).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum LossKind {
            $($(#[$doc])* $kind,)*
        }

        impl LossKind {
            /// Every loss, in listing order.
            pub const ALL: &'static [LossKind] = &[$(LossKind::$kind,)*];

            /// The name a config uses for it.
            pub fn name(self) -> &'static str {
                match self { $(LossKind::$kind => $ty::NAME,)* }
            }
            /// See [`Objective::takes_raw_scores`].
            pub fn takes_raw_scores(self) -> bool {
                match self { $(LossKind::$kind => $ty.takes_raw_scores(),)* }
            }
            /// See [`Objective::has_targets`].
            pub fn has_targets(self) -> bool {
                match self { $(LossKind::$kind => $ty.has_targets(),)* }
            }
            /// See [`Objective::reference`].
            pub fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
                self,
                outputs: Matrix<T>,
                term: Term,
            ) -> Tensor<Rank0, f32, Cpu, T> {
                match self { $(LossKind::$kind => $ty.reference(outputs, term),)* }
            }
            /// See [`Objective::fast`].
            pub fn fast(self, outputs: &[f32], term: Term) -> TermValue {
                match self { $(LossKind::$kind => $ty.fast(outputs, term),)* }
            }
        }
    };
}

losses! {
    /// Binary cross-entropy computed from D's logits (numerically stable), with G maximising
    /// log D(G(z)): the paper's non-saturating loss, which configs may also call
    /// `non_saturating` (saved as `bce_logits`, the name runs have always recorded).
    #[default]
    #[serde(alias = "non_saturating")]
    BceLogits(BceLogits),
    /// The paper's original minimax objective: G minimises log(1 - D(G(z))).
    Minimax(Minimax),
    /// Least squares on D's raw output (Mao et al. 2017).
    LeastSquares(LeastSquares),
    /// The TensorFlow tutorial's bug: D's sigmoid output fed to a with-logits loss, so the
    /// sigmoid is applied twice. Kept to reproduce the tutorial's results.
    TutorialDoubleSigmoid(TutorialDoubleSigmoid),
    /// The hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimises
    /// mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))), G minimises -mean(D(G(z))).
    Hinge(Hinge),
    /// The Wasserstein critic's loss (Arjovsky et al. 2017); needs a Lipschitz D.
    Wasserstein(Wasserstein),
}

/// Mean of `sigmoid(output)`: D's mean belief that a batch is real, logged whatever the loss.
pub fn mean_probability(outputs: &[f32]) -> f32 {
    let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
    outputs.iter().map(|&x| sigmoid(x)).sum::<f32>() / outputs.len() as f32
}

#[cfg(test)]
pub(crate) mod testing {
    //! The check every loss's file runs: fast values and gradients against the tape.

    use super::*;

    /// Each term of `kind` on outputs spanning both signs and large magnitudes.
    pub(crate) fn fast_matches_tape(kind: LossKind) {
        let dev = Cpu::default();
        let values = vec![-7.0, -1.0, -0.3, 0.0, 0.4, 0.99, 1.7, 12.0];
        let n = values.len();
        let smoothed = Term::Real { target: 0.9 };
        for term in [Term::REAL, smoothed, Term::Fake, Term::Generator] {
            let outputs: Matrix = dev.tensor_from_vec(values.clone(), (n, 1));
            let loss = kind.reference(outputs.clone().leaky_traced(), term);
            let value = loss.array();
            let grads = loss.backward();
            let fast = kind.fast(&values, term);
            let what = format!("{} {term:?}", kind.name());
            assert!(
                (fast.loss - value).abs() <= 1e-6 * (1.0 + value.abs()),
                "{what}: {} vs {value}",
                fast.loss
            );
            let tape = grads.get(&outputs).as_vec();
            crate::model::kernels::assert_close(&fast.grad, &tape, 1e-6, &what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each loss's name is what serde reads and writes.
    #[test]
    fn names_are_the_config_spelling() {
        for &kind in LossKind::ALL {
            let text = format!("loss = \"{}\"", kind.name());
            #[derive(Deserialize)]
            struct C {
                loss: LossKind,
            }
            assert_eq!(toml::from_str::<C>(&text).unwrap().loss, kind);
        }
    }

    #[test]
    fn non_saturating_is_read_as_bce_logits() {
        #[derive(Deserialize)]
        struct C {
            loss: LossKind,
        }
        let c: C = toml::from_str("loss = \"non_saturating\"").unwrap();
        assert_eq!(c.loss, LossKind::BceLogits);
    }

    #[test]
    fn mean_probability_is_the_mean_sigmoid() {
        let p = mean_probability(&[0.0, 100.0]);
        assert!((p - 0.75).abs() < 1e-6, "{p}");
    }
}
