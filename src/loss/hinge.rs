//! The hinge loss (Lim & Ye 2017, as Miyato et al. 2018 use it with spectral norm): D pushes
//! real scores above 1 and generated ones below -1, and stops pushing once they are there; G
//! raises D's score of its images.

use dfdx::prelude::*;

use super::{Objective, Term, TermValue};
use crate::model::Matrix;

/// `loss = "hinge"`.
#[derive(Debug, Clone, Copy)]
pub struct Hinge;

impl Objective for Hinge {
    const NAME: &'static str = "hinge";

    fn takes_raw_scores(&self) -> bool {
        true
    }

    fn has_targets(&self) -> bool {
        false
    }

    /// D: mean(relu(1 - D(x))) on real, mean(relu(1 + D(G(z)))) on generated; G:
    /// -mean(D(G(z))).
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &self,
        outputs: Matrix<T>,
        term: Term,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        match term {
            Term::Real { .. } => (outputs.negate() + 1.0).relu().mean::<Rank0, _>(),
            Term::Fake => (outputs + 1.0).relu().mean::<Rank0, _>(),
            Term::Generator => outputs.mean::<Rank0, _>().negate(),
        }
    }

    fn fast(&self, outputs: &[f32], term: Term) -> TermValue {
        let n = outputs.len() as f32;
        // The margin each output must clear, signed so that the term is relu(margin): 1 - x
        // for real, 1 + x for generated. The derivative of relu at 0 is 0, as on the tape.
        let (sign, mut loss) = (
            if matches!(term, Term::Real { .. }) {
                -1.0
            } else {
                1.0
            },
            0.0,
        );
        let grad = outputs
            .iter()
            .map(|&x| match term {
                Term::Generator => {
                    loss -= x;
                    -1.0 / n
                }
                Term::Real { .. } | Term::Fake => {
                    let margin = 1.0 + sign * x;
                    loss += margin.max(0.0);
                    if margin > 0.0 {
                        sign / n
                    } else {
                        0.0
                    }
                }
            })
            .collect();
        TermValue {
            loss: loss / n,
            grad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{testing::fast_matches_tape, LossKind};
    use super::*;

    #[test]
    fn terms_are_the_formulas() {
        let x = [2.0, 0.5, -3.0];
        // relu(1 - x): 0, 0.5, 4
        assert!((Hinge.fast(&x, Term::REAL).loss - 4.5 / 3.0).abs() < 1e-6);
        // relu(1 + x): 3, 1.5, 0
        assert!((Hinge.fast(&x, Term::Fake).loss - 4.5 / 3.0).abs() < 1e-6);
        assert!((Hinge.fast(&x, Term::Generator).loss - 0.5 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn fast_matches_the_tape() {
        fast_matches_tape(LossKind::Hinge);
    }
}
