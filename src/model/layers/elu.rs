//! The exponential linear unit (Clevert et al. 2016): `x` for `x > 0`, `alpha * (exp(x) - 1)`
//! below. Smooth where ReLU has a kink, with negative outputs that pull mean activations
//! towards zero.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::{smooth_penalty_chain, Activation};
use crate::model::kernels::{map_in_place, zip_map};
use crate::model::Matrix;

/// `{type = "elu"}` or `{type = "elu", alpha = 0.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Elu {
    /// The value negative inputs saturate towards is `-alpha`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_alpha() -> f64 {
    1.0
}

impl Activation for Elu {
    fn check(&self) -> Result<(), (&'static str, String)> {
        match self.alpha.is_finite() && self.alpha > 0.0 {
            true => Ok(()),
            false => Err((
                "alpha",
                format!("must be positive and finite, got {}", self.alpha),
            )),
        }
    }

    /// dfdx 0.13 has no ELU: `relu(x) + alpha * (exp(-relu(-x)) - 1)`, the same function
    /// built from its operations (`-relu(-x)` is `min(x, 0)`).
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, x: Matrix<T>) -> Matrix<T> {
        let alpha = self.alpha as f32;
        let negative_part = x.retaped::<T>().negate().relu().negate();
        x.relu() + (negative_part.exp() - 1.0) * alpha
    }

    fn apply(&self, x: &mut [f32]) {
        let alpha = self.alpha as f32;
        map_in_place(x, |v| {
            if *v <= 0.0 {
                *v = alpha * (v.exp() - 1.0)
            }
        });
    }

    /// Below 0 the derivative `alpha * exp(x)` is `y + alpha`; an output above 0 means an
    /// input above 0 (at exactly 0 the tape's derivative is 0, from both of its relus).
    fn chain(&self, g: &mut [f32], y: &[f32]) {
        let alpha = self.alpha as f32;
        zip_map(g, y, |d, y| {
            if y == 0.0 {
                *d = 0.0
            } else if y < 0.0 {
                *d *= y + alpha
            }
        });
    }
    /// Below 0 both derivatives are `alpha * exp(x) = y + alpha`; above 0, 1 and 0; at
    /// exactly 0, 0 and 0 (as [`Elu::chain`] has it).
    fn penalty_chain(&self, adjoint: &mut [f32], x: &[f32], g: &[f32]) -> Option<Vec<f32>> {
        let alpha = self.alpha as f32;
        let mut y = x.to_vec();
        self.apply(&mut y);
        smooth_penalty_chain(adjoint, &y, g, |y| match y {
            _ if y > 0.0 => (1.0, 0.0),
            _ if y < 0.0 => (y + alpha, y + alpha),
            _ => (0.0, 0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;
    use super::*;

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "elu"}"#, true);
        fast_matches_tape(r#"{type = "elu", alpha = 0.3}"#, true);
    }

    #[test]
    fn values_are_the_formula_and_alpha_is_checked() {
        let mut x = vec![-2.0f32, 0.0, 1.5];
        Elu { alpha: 0.5 }.apply(&mut x);
        assert_eq!(x, vec![0.5 * ((-2.0f32).exp() - 1.0), 0.0, 1.5]);
        assert!(Activation::check(&Elu { alpha: 0.0 }).is_err());
        assert!(Activation::check(&Elu { alpha: f64::NAN }).is_err());
    }
}
