//! The logistic sigmoid `1 / (1 + exp(-x))`.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::Activation;
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
    fn chain_at_input(&self, _: &mut [f32], _: &[f32]) -> bool {
        false
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
