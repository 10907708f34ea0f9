//! `upsample`: nearest-neighbour upsampling of an image by a whole factor, each pixel repeated
//! `scale x scale` times (PyTorch's `Upsample(mode="nearest")`). The alternative to a
//! transposed convolution in a generator: upsample, then a stride-1 convolution, which avoids
//! the transposed convolution's checkerboard pattern (Odena et al. 2016).
//!
//! It is a fixed linear map that copies: its input gradient sums each output block back into
//! its pixel. The reference on dfdx's tape gathers the input's columns by [`Upsample::sources`]
//! (gather's gradient is that sum); the fast path copies and sums the same index map.

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::conv2d::image_of;
use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass, ReferenceLayer,
    RowCoupling, Saved,
};
use crate::model::init::InitConfig;
use crate::model::kernels::for_rows;
use crate::model::{Matrix, Mode, TensorVisitor};

/// `{type = "upsample", scale = 2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsampleSpec {
    /// How many times each side grows.
    #[serde(default = "two")]
    pub scale: usize,
}

fn two() -> usize {
    2
}

impl LayerKind for UpsampleSpec {
    type Layer = Upsample;

    fn check(&self) -> Result<(), (&'static str, String)> {
        match self.scale {
            1..=8 => Ok(()),
            s => Err(("scale", format!("{s}: must be 1 to 8"))),
        }
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        let (channels, height, width) = input.expect_image("upsample")?;
        image_of(channels, height * self.scale, width * self.scale)
    }

    fn sizes(&self, _: FeatureShape, _: FeatureShape) -> (f64, f64) {
        (0.0, 0.0)
    }

    fn build(&self, input: FeatureShape, _: &InitConfig, _: &Cpu, _: &mut ChaCha8Rng) -> Upsample {
        Upsample {
            image: input.image().expect("shapes checked by validation"),
            scale: self.scale,
        }
    }
}

/// An upsampling of `[channels, height, width]` images.
#[derive(Debug, Clone)]
pub struct Upsample {
    /// The input image's shape.
    pub image: (usize, usize, usize),
    /// The factor.
    pub scale: usize,
}

impl Upsample {
    /// For each output number (channel-major), the input number it copies.
    pub fn sources(&self) -> Vec<usize> {
        let (channels, height, width) = self.image;
        let (s, out_width) = (self.scale, width * self.scale);
        (0..channels * height * s * out_width)
            .map(|o| {
                let (plane, at) = (o / (height * s * out_width), o % (height * s * out_width));
                let (y, x) = (at / out_width, at % out_width);
                plane * height * width + (y / s) * width + x / s
            })
            .collect()
    }

    fn input_len(&self) -> usize {
        self.image.0 * self.image.1 * self.image.2
    }
}

impl ReferenceLayer for Upsample {
    type Fast = FastUpsample;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        // [batch, in] -> [in, batch], gather rows -> [out, batch] -> [batch, out].
        let sources = self.sources();
        let n = sources.len();
        let index = x.device().tensor_from_vec(sources, (n,));
        let columns = x.permute::<_, Axes2<1, 0>>().gather(index);
        columns.permute::<_, Axes2<1, 0>>()
    }

    fn visit<V: TensorVisitor>(&mut self, _: &mut V) {}

    fn output_width(&self, input: usize) -> usize {
        input * self.scale * self.scale
    }

    fn macs_per_row(&self) -> f64 {
        0.0
    }

    fn fast(&self) -> FastUpsample {
        FastUpsample {
            sources: self.sources(),
            input: self.input_len(),
        }
    }

    fn start_step(&mut self) {}
}

/// An upsampling on the fast path, by its index map.
#[derive(Debug, Clone)]
pub struct FastUpsample {
    sources: Vec<usize>,
    input: usize,
}

impl FastUpsample {
    /// `y[r, o] = x[r, sources[o]]` for `rows` rows.
    fn copy(&self, x: &[f32], y: &mut [f32]) {
        let input = self.input;
        for_rows(y, self.sources.len(), |r, row| {
            let x = &x[r * input..(r + 1) * input];
            row.iter_mut()
                .zip(&self.sources)
                .for_each(|(y, &i)| *y = x[i]);
        });
    }
}

impl FastLayer for FastUpsample {
    fn forward(
        &mut self,
        _: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let mut y = pass.pool.take(pass.rows * self.sources.len());
        self.copy(x, &mut y);
        pass.pool.give(std::mem::replace(x, y));
        Saved::Nothing
    }

    fn backward(
        &mut self,
        _: &mut [Vec<f32>],
        _: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        if pass.propagate {
            let (input, output) = (self.input, self.sources.len());
            let mut dx = pass.pool.take(pass.rows * input);
            for_rows(&mut dx, input, |r, row| {
                row.fill(0.0);
                let g = &g[r * output..(r + 1) * output];
                g.iter().zip(&self.sources).for_each(|(g, &i)| row[i] += g);
            });
            pass.pool.give(std::mem::replace(g, dx));
        }
        None
    }

    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::None
    }

    fn keeps_its_input(&self) -> bool {
        false
    }

    fn start_step(&mut self, _: &mut [Vec<f32>]) {}

    /// A fixed linear map: no tensors, and the adjoint moves on upsampled.
    fn penalty_pass(&self, _: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        let PenaltyPass { rows, adjoint, .. } = pass;
        let mut next = vec![0.0; rows * self.sources.len()];
        self.copy(adjoint, &mut next);
        *adjoint = next;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_image_tape;
    use super::*;

    /// Each pixel fills its `scale x scale` block, in every channel.
    #[test]
    fn each_pixel_fills_its_block() {
        let up = Upsample {
            image: (2, 2, 3),
            scale: 2,
        };
        let sources = up.sources();
        assert_eq!(sources.len(), 2 * 4 * 6);
        // Channel 0's first output row: pixels 0, 0, 1, 1, 2, 2; its second the same.
        assert_eq!(&sources[..12], &[0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]);
        // Channel 1's last output row reads its last input row (input numbers 9 to 11).
        assert_eq!(&sources[42..], &[9, 9, 10, 10, 11, 11]);
        let spec = UpsampleSpec { scale: 3 };
        let image = spec
            .output_shape(FeatureShape::Image {
                channels: 4,
                height: 7,
                width: 5,
            })
            .unwrap();
        assert_eq!(image.to_string(), "[4, 21, 15]");
        assert!(spec.output_shape(FeatureShape::Flat(10)).is_err());
        assert!(UpsampleSpec { scale: 0 }.check().is_err());
    }

    #[test]
    fn gradients_match_the_tape() {
        for layer in [
            r#"{type = "upsample"}"#,
            r#"{type = "upsample", scale = 3}"#,
        ] {
            fast_matches_image_tape(layer, true);
            fast_matches_image_tape(layer, false);
        }
    }
}
