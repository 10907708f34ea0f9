//! The hyperbolic tangent.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::{smooth_penalty_chain, Activation};
use crate::model::kernels::{map_in_place, zip_map};
use crate::model::Matrix;

/// `{type = "tanh"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tanh {}

impl Activation for Tanh {
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, x: Matrix<T>) -> Matrix<T> {
        x.tanh()
    }
    fn apply(&self, x: &mut [f32]) {
        map_in_place(x, |v| *v = v.tanh());
    }
    fn chain(&self, g: &mut [f32], y: &[f32]) {
        zip_map(g, y, |d, y| *d *= 1.0 - y * y);
    }
    /// `f' = 1 - y^2`, `f'' = -2 y f'`.
    fn penalty_chain(&self, adjoint: &mut [f32], x: &[f32], g: &[f32]) -> Option<Vec<f32>> {
        let mut y = x.to_vec();
        self.apply(&mut y);
        smooth_penalty_chain(adjoint, &y, g, |y| {
            let first = 1.0 - y * y;
            (first, -2.0 * y * first)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "tanh"}"#, true);
    }
}
