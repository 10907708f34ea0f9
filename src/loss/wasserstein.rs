//! The Wasserstein loss (Arjovsky et al. 2017): D (a critic) raises its raw score of real
//! images and lowers that of generated ones, G raises the critic's score of its images. It
//! estimates the Wasserstein distance only when D is Lipschitz: pair it with spectral norm or
//! a gradient penalty (`[gradient_penalty] kind = "wgan_gp"`); alone it diverges.

use dfdx::prelude::*;

use super::{Objective, Term, TermValue};
use crate::model::Matrix;

/// `loss = "wasserstein"`.
#[derive(Debug, Clone, Copy)]
pub struct Wasserstein;

/// The sign each term gives D's mean output: D minimises mean(D(G(z))) - mean(D(x)), G
/// minimises -mean(D(G(z))).
fn sign(term: Term) -> f32 {
    match term {
        Term::Real { .. } | Term::Generator => -1.0,
        Term::Fake => 1.0,
    }
}

impl Objective for Wasserstein {
    const NAME: &'static str = "wasserstein";

    fn takes_raw_scores(&self) -> bool {
        true
    }

    fn has_targets(&self) -> bool {
        false
    }

    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        outputs: Matrix<T>,
        term: Term,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        outputs.mean::<Rank0, _>() * sign(term)
    }

    fn fast(&self, outputs: &[f32], term: Term) -> TermValue {
        let (n, sign) = (outputs.len() as f32, sign(term));
        TermValue {
            loss: sign * outputs.iter().sum::<f32>() / n,
            grad: vec![sign / n; outputs.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::fast_matches_tape, LossKind};
    use super::*;

    #[test]
    fn the_critic_separates_means() {
        let (real, fake) = ([2.0, 4.0], [-1.0, 1.0]);
        let d = Wasserstein.fast(&real, Term::REAL).loss + Wasserstein.fast(&fake, Term::Fake).loss;
        assert!((d - (0.0 - 3.0)).abs() < 1e-6, "{d}");
    }

    #[test]
    fn fast_matches_the_tape() {
        fast_matches_tape(LossKind::Wasserstein);
    }
}
