//! The shape of one sample's features between two layers: a flat vector, or an image of
//! `[channels, height, width]`. Every buffer stays a row per sample, an image
//! flattened channel-major (`c * height * width + y * width + x`, PyTorch's layout), so a shape
//! is planning information only: `reshape` and `flatten` move no data, and a layer that needs
//! an image (a convolution) reads its geometry from the shape that reaches it.

use std::fmt;

/// Features of one sample, as they reach a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureShape {
    /// A vector of this many features.
    Flat(usize),
    /// `[channels, height, width]`.
    Image {
        /// Channels (feature maps).
        channels: usize,
        /// Rows of pixels.
        height: usize,
        /// Columns of pixels.
        width: usize,
    },
}

impl FeatureShape {
    /// How many numbers a sample holds: the width of its row.
    pub fn len(&self) -> usize {
        match *self {
            FeatureShape::Flat(n) => n,
            FeatureShape::Image {
                channels,
                height,
                width,
            } => channels * height * width,
        }
    }

    /// Whether it holds no numbers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(channels, height, width)` of an image; `None` for a flat vector.
    pub fn image(&self) -> Option<(usize, usize, usize)> {
        match *self {
            FeatureShape::Flat(_) => None,
            FeatureShape::Image {
                channels,
                height,
                width,
            } => Some((channels, height, width)),
        }
    }

    /// `(channels, height, width)`, or the message a layer that needs an image gives when a
    /// flat vector reaches it.
    pub fn expect_image(&self, kind: &str) -> Result<(usize, usize, usize), String> {
        self.image().ok_or_else(|| {
            format!(
                "{kind} takes images [channels, height, width], but flat features ({self}) \
                 reach it: put {{type = \"reshape\", shape = [C, H, W]}} before it"
            )
        })
    }

    /// The width of a flat vector, or the message a layer that needs one gives when an image
    /// reaches it.
    pub fn expect_flat(&self, kind: &str) -> Result<usize, String> {
        match *self {
            FeatureShape::Flat(n) => Ok(n),
            FeatureShape::Image { .. } => Err(format!(
                "{kind} takes flat features, but an image {self} reaches it: put \
                 {{type = \"flatten\"}} before it"
            )),
        }
    }

    /// Channels, and positions per channel (`height * width`; 1 for a flat vector, whose every
    /// feature is its own channel): how per-channel layers (batch-norm) see it.
    pub fn channels_and_positions(&self) -> (usize, usize) {
        match *self {
            FeatureShape::Flat(n) => (n, 1),
            FeatureShape::Image {
                channels,
                height,
                width,
            } => (channels, height * width),
        }
    }
}

impl fmt::Display for FeatureShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FeatureShape::Flat(n) => write!(f, "{n}"),
            FeatureShape::Image {
                channels,
                height,
                width,
            } => write!(f, "[{channels}, {height}, {width}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_print_as_configs_write_them_and_name_the_fix_when_they_do_not_fit() {
        let image = FeatureShape::Image {
            channels: 128,
            height: 7,
            width: 7,
        };
        assert_eq!(image.to_string(), "[128, 7, 7]");
        assert_eq!(image.len(), 6272);
        assert_eq!(image.channels_and_positions(), (128, 49));
        assert_eq!(FeatureShape::Flat(784).channels_and_positions(), (784, 1));
        let flat_needed = image.expect_flat("linear").unwrap_err();
        assert!(flat_needed.contains("[128, 7, 7]") && flat_needed.contains("flatten"));
        let image_needed = FeatureShape::Flat(784).expect_image("conv2d").unwrap_err();
        assert!(image_needed.contains("784") && image_needed.contains("reshape"));
    }
}
