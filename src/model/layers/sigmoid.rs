//! The logistic sigmoid `1 / (1 + exp(-x))`.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::{smooth_penalty_chain, Activation};
use crate::model::kernels::{map_in_place, zip_map};
use crate::model::Matrix;

/// `{type = "sigmoid"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sigmoid {}

impl Activation for Sigmoid {
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, x: Matrix<T>) -> Matrix<T> {
        x.sigmoid()
    }
    fn apply(&self, x: &mut [f32]) {
        map_in_place(x, |v| *v = 1.0 / (1.0 + (-*v).exp()));
    }
    fn chain(&self, g: &mut [f32], y: &[f32]) {
        zip_map(g, y, |d, y| *d *= y * (1.0 - y));
    }
    /// `f' = y (1 - y)`, `f'' = f' (1 - 2 y)`.
    fn penalty_chain(&self, adjoint: &mut [f32], x: &[f32], g: &[f32]) -> Option<Vec<f32>> {
        let mut y = x.to_vec();
        self.apply(&mut y);
        smooth_penalty_chain(adjoint, &y, g, |y| {
            let first = y * (1.0 - y);
            (first, first * (1.0 - 2.0 * y))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "sigmoid"}"#, true);
    }
}
