//! The identity: lets a layer list say "no activation" explicitly.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::Activation;
use crate::model::Matrix;

/// `{type = "identity"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {}

impl Activation for Identity {
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
    fn reference<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, x: Matrix<T>) -> Matrix<T> {
        x
    }
    fn apply(&self, _: &mut [f32]) {}
    fn chain(&self, _: &mut [f32], _: &[f32]) {}
    fn penalty_chain(&self, _: &mut [f32], _: &[f32], _: &[f32]) -> Option<Vec<f32>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "identity"}"#, true);
    }
}
