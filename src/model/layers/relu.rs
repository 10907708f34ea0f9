//! The rectifier `max(x, 0)`.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::Activation;
use crate::model::kernels::{map_in_place, zip_map};
use crate::model::Matrix;

/// `{type = "relu"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relu {}

impl Activation for Relu {
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, x: Matrix<T>) -> Matrix<T> {
        x.relu()
    }
    fn apply(&self, x: &mut [f32]) {
        map_in_place(x, |v| *v = v.max(0.0));
    }
    fn chain(&self, g: &mut [f32], y: &[f32]) {
        zip_map(g, y, |d, v| {
            if v <= 0.0 {
                *d = 0.0
            }
        });
    }
    fn penalty_chain(&self, d: &mut [f32], x: &[f32], _: &[f32]) -> Option<Vec<f32>> {
        zip_map(d, x, |d, v| {
            if v <= 0.0 {
                *d = 0.0
            }
        });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "relu"}"#, true);
    }
}
