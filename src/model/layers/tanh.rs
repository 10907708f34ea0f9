//! The hyperbolic tangent.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::Activation;
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
    fn chain_at_input(&self, _: &mut [f32], _: &[f32]) -> bool {
        false
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
