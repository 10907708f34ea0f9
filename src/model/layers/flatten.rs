//! `flatten`: reads an image's features as one vector (before a discriminator's linear head).
//! Like `reshape`, it moves no data.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Activation, FeatureShape};
use crate::model::Matrix;

/// `{type = "flatten"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatten {}

impl Activation for Flatten {
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        Ok(FeatureShape::Flat(input.len()))
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
    use super::*;

    #[test]
    fn flatten_counts_every_number() {
        let image = FeatureShape::Image {
            channels: 128,
            height: 7,
            width: 7,
        };
        assert_eq!(Flatten {}.output_shape(image), Ok(FeatureShape::Flat(6272)));
    }
}
