//! `reshape`: reads a sample's features as an image `[channels, height, width]` (a generator's
//! projection before its transposed convolutions, a discriminator's flat input before its
//! convolutions). Buffers are rows in channel-major order either way, so it moves no data: it
//! changes only the shape that the layers after it plan with.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Activation, FeatureShape};
use crate::model::Matrix;

/// `{type = "reshape", shape = [128, 7, 7]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshape {
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
}

impl Activation for Reshape {
    fn check(&self) -> Result<(), (&'static str, String)> {
        let [c, h, w] = self.shape;
        let size = c.checked_mul(h).and_then(|n| n.checked_mul(w));
        match size {
            Some(n) if n > 0 => Ok(()),
            Some(_) => Err(("shape", "every size must be at least 1".into())),
            None => Err(("shape", format!("{c} x {h} x {w} is too large"))),
        }
    }
    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        let [channels, height, width] = self.shape;
        let output = FeatureShape::Image {
            channels,
            height,
            width,
        };
        let reaching = match input {
            FeatureShape::Flat(n) => format!("{n}"),
            FeatureShape::Image { .. } => format!("{input} ({})", input.len()),
        };
        match output.len() == input.len() {
            true => Ok(output),
            false => Err(format!(
                "reshape to {output} needs {} numbers, but {reaching} reach it",
                output.len()
            )),
        }
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
    use super::super::testing::network_matches_tape;
    use super::*;

    /// A reshape between two images and a flatten after it pass values and gradients through
    /// in the tape's order (both are views of the same channel-major numbers).
    #[test]
    fn reshape_and_flatten_pass_gradients_through() {
        let layers = r#"{type = "reshape", shape = [2, 3, 4]}, {type = "reshape", shape = [4, 3, 2]},
            {type = "flatten"}, {type = "linear", out = 3}"#;
        network_matches_tape(layers, 24, "reshape", true);
    }

    #[test]
    fn reshape_keeps_the_count_and_names_a_mismatch() {
        let reshape = Reshape { shape: [2, 3, 4] };
        let image = reshape.output_shape(FeatureShape::Flat(24)).unwrap();
        assert_eq!(image.to_string(), "[2, 3, 4]");
        let message = reshape.output_shape(FeatureShape::Flat(25)).unwrap_err();
        assert!(
            message.contains("24") && message.contains("25"),
            "{message}"
        );
        assert!(Reshape { shape: [0, 3, 4] }.check().is_err());
        assert!(Reshape {
            shape: [usize::MAX, 2, 2]
        }
        .check()
        .is_err());
    }
}
