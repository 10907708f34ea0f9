//! Class conditioning (Mirza & Osindero 2014): the `[conditioning]` table, and how a label
//! enters each network. G reads its noise followed by the label one-hot (a learned embedding
//! of the label is that one-hot times G's first weights). D reads the image followed by the
//! label, as a one-hot (for a flat D) or as one constant 28x28 plane per class (for a
//! convolutional D, whose first layer reshapes to `[1 + classes, 28, 28]`); or D reads the
//! image alone and the label meets D's outputs in a head (`crate::loss::head`: the projection
//! discriminator, or an auxiliary classifier).
//!
//! Why inputs and outputs and not layers: each way is a fixed function of the label appended
//! to a network's input or applied to its outputs, so every layer kind, both paths and the
//! checkpoints stay as they are. Gradients flow to the image part alone (the label part is a
//! constant).

use serde::{Deserialize, Serialize};

use super::{ExperimentConfig, IMAGE_PIXELS};
use crate::loss::Head;

/// `[conditioning]`: how many classes, and how the label enters each network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditioningConfig {
    /// Classes (10 for MNIST's digits).
    #[serde(default = "ten")]
    pub classes: usize,
    /// How G reads the label.
    #[serde(default)]
    pub generator: GeneratorLabel,
    /// How D reads the label.
    #[serde(default)]
    pub discriminator: DiscriminatorLabel,
    /// The weight of the auxiliary classifier's cross-entropy in D's and G's losses (read
    /// with `discriminator = "auxiliary_classifier"` or `"latent_code"` only).
    #[serde(default = "one")]
    pub classifier_weight: f64,
}

fn one() -> f64 {
    1.0
}

fn ten() -> usize {
    10
}

/// How G reads a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorLabel {
    /// The label one-hot after the noise: G's input is `noise.dim + classes` wide.
    #[default]
    OneHot,
}

/// How D reads a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscriminatorLabel {
    /// The label one-hot after the 784 pixels: D's input is `784 + classes` wide.
    #[default]
    OneHot,
    /// One 28x28 plane per class after the image, all ones for the label's and zeros
    /// elsewhere: D's input is the image `[1 + classes, 28, 28]`, channel-major.
    Channels,
    /// The projection discriminator (Miyato & Koyama 2018): D reads the image alone and ends
    /// in `1 + classes` outputs; its score for label y is output 0 plus output `1 + y`.
    Projection,
    /// The auxiliary classifier (ACGAN, Odena et al. 2017): D reads the image alone and ends
    /// in `1 + classes` outputs, output 0 its score and the rest class logits.
    AuxiliaryClassifier,
    /// InfoGAN's categorical code (Chen et al. 2016): G's "label" is a latent code drawn
    /// uniformly, and D, read as an auxiliary classifier, learns to tell the code from G's
    /// images alone (its class term is left out of D's loss on real images). The data's labels
    /// are never read: the run is unsupervised, and G is free to give each code its own kind
    /// of image, so that its images need not be one continuous family.
    LatentCode,
}

impl DiscriminatorLabel {
    /// Its name in configs.
    pub fn name(self) -> &'static str {
        match self {
            DiscriminatorLabel::OneHot => "one_hot",
            DiscriminatorLabel::Channels => "channels",
            DiscriminatorLabel::Projection => "projection",
            DiscriminatorLabel::AuxiliaryClassifier => "auxiliary_classifier",
            DiscriminatorLabel::LatentCode => "latent_code",
        }
    }
}

impl ConditioningConfig {
    /// Width of G's input for noise of `noise_dim`.
    pub fn generator_input(&self, noise_dim: usize) -> usize {
        noise_dim + self.classes
    }

    /// Numbers D reads after each image's 784 pixels.
    pub fn discriminator_extra(&self) -> usize {
        match self.discriminator {
            DiscriminatorLabel::OneHot => self.classes,
            DiscriminatorLabel::Channels => self.classes * IMAGE_PIXELS,
            DiscriminatorLabel::Projection
            | DiscriminatorLabel::AuxiliaryClassifier
            | DiscriminatorLabel::LatentCode => 0,
        }
    }

    /// How many numbers D outputs per image: a score, and one per class where D reads the
    /// image alone and a head reads the label from D's outputs.
    pub fn discriminator_outputs(&self) -> usize {
        match self.discriminator_extra() {
            0 => 1 + self.classes,
            _ => 1,
        }
    }

    /// Whether the labels are digits (what the data's labels say, so that a sample's label
    /// can be checked against the classifier's digit), or a latent code whose meaning G
    /// chooses.
    pub fn labels_are_digits(&self) -> bool {
        self.discriminator != DiscriminatorLabel::LatentCode
    }
}

impl ExperimentConfig {
    /// Whether G draws digits asked for by label, so that label accuracy and per-label FID
    /// measure it: class-conditional, and not a latent code.
    pub fn draws_digits_by_label(&self) -> bool {
        self.conditioning
            .as_ref()
            .is_some_and(ConditioningConfig::labels_are_digits)
    }

    /// The widths of G's and D's inputs: the noise and the 784 pixels, each followed by the
    /// label where the config is class-conditional.
    pub fn input_widths(&self) -> (usize, usize) {
        match &self.conditioning {
            None => (self.noise.dim, IMAGE_PIXELS),
            Some(c) => (
                c.generator_input(self.noise.dim),
                IMAGE_PIXELS + c.discriminator_extra(),
            ),
        }
    }
}

/// The head between D's outputs and the loss that `conditioning` asks for (the plain score
/// without conditioning, or where D reads the label as an input).
pub fn head(conditioning: Option<&ConditioningConfig>) -> Head {
    let Some(c) = conditioning else {
        return Head::Score;
    };
    match c.discriminator {
        DiscriminatorLabel::OneHot | DiscriminatorLabel::Channels => Head::Score,
        DiscriminatorLabel::Projection => Head::Projection { classes: c.classes },
        DiscriminatorLabel::AuxiliaryClassifier | DiscriminatorLabel::LatentCode => {
            Head::AuxiliaryClassifier {
                classes: c.classes,
                weight: c.classifier_weight as f32,
                on_real: c.labels_are_digits(),
            }
        }
    }
}

/// Rows of `width` numbers each followed by `extra(label)`: `rows` is `labels.len()`.
fn append(
    rows: &[f32],
    width: usize,
    labels: &[u8],
    extra: usize,
    fill: impl Fn(u8, &mut [f32]),
) -> Vec<f32> {
    assert_eq!(rows.len(), labels.len() * width, "one label per row");
    let mut out = vec![0.0; labels.len() * (width + extra)];
    for ((to, from), &label) in out
        .chunks_exact_mut(width + extra)
        .zip(rows.chunks_exact(width))
        .zip(labels)
    {
        to[..width].copy_from_slice(from);
        fill(label, &mut to[width..]);
    }
    out
}

/// G's input: each row of `noise` (`noise_dim` wide) followed by its label one-hot; the noise
/// alone without conditioning.
pub fn generator_input(
    c: Option<&ConditioningConfig>,
    noise: Vec<f32>,
    noise_dim: usize,
    labels: &[u8],
) -> Vec<f32> {
    let Some(c) = c else {
        return noise;
    };
    append(&noise, noise_dim, labels, c.classes, |label, to| {
        to[label as usize] = 1.0
    })
}

/// D's input: each image followed by its label as `c.discriminator` says; the images alone
/// without conditioning.
pub fn discriminator_input(
    c: Option<&ConditioningConfig>,
    images: Vec<f32>,
    labels: &[u8],
) -> Vec<f32> {
    let Some(c) = c.filter(|c| c.discriminator_extra() > 0) else {
        return images;
    };
    let extra = c.discriminator_extra();
    match c.discriminator {
        DiscriminatorLabel::Projection
        | DiscriminatorLabel::AuxiliaryClassifier
        | DiscriminatorLabel::LatentCode => unreachable!("D reads the image alone"),
        DiscriminatorLabel::OneHot => append(&images, IMAGE_PIXELS, labels, extra, |label, to| {
            to[label as usize] = 1.0
        }),
        DiscriminatorLabel::Channels => {
            append(&images, IMAGE_PIXELS, labels, extra, |label, to| {
                let plane = label as usize * IMAGE_PIXELS;
                to[plane..plane + IMAGE_PIXELS].fill(1.0)
            })
        }
    }
}

/// The image part of a gradient with respect to D's input (what flows back into G).
pub fn image_gradient(c: Option<&ConditioningConfig>, grad: Vec<f32>) -> Vec<f32> {
    let Some(c) = c.filter(|c| c.discriminator_extra() > 0) else {
        return grad;
    };
    let width = IMAGE_PIXELS + c.discriminator_extra();
    grad.chunks_exact(width)
        .flat_map(|row| row[..IMAGE_PIXELS].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_each_row_as_one_hot_or_planes_and_gradients_drop_them() {
        let c = ConditioningConfig {
            classes: 3,
            generator: GeneratorLabel::OneHot,
            discriminator: DiscriminatorLabel::OneHot,
            classifier_weight: 1.0,
        };
        let z = generator_input(Some(&c), vec![0.5, -0.5, 0.25, 0.75], 2, &[2, 0]);
        assert_eq!(z, [0.5, -0.5, 0., 0., 1., 0.25, 0.75, 1., 0., 0.]);
        assert_eq!(generator_input(None, vec![0.5], 1, &[1]), [0.5]);

        let images: Vec<f32> = (0..2 * IMAGE_PIXELS).map(|i| i as f32).collect();
        let x = discriminator_input(Some(&c), images.clone(), &[1, 2]);
        assert_eq!(x.len(), 2 * (IMAGE_PIXELS + 3));
        assert_eq!(&x[IMAGE_PIXELS..IMAGE_PIXELS + 3], [0., 1., 0.]);
        assert_eq!(image_gradient(Some(&c), x), images);

        let planes = ConditioningConfig {
            discriminator: DiscriminatorLabel::Channels,
            ..c
        };
        let x = discriminator_input(Some(&planes), images.clone(), &[1, 0]);
        let first = &x[..4 * IMAGE_PIXELS];
        assert!(first[IMAGE_PIXELS..2 * IMAGE_PIXELS]
            .iter()
            .all(|&v| v == 0.0));
        assert!(first[2 * IMAGE_PIXELS..3 * IMAGE_PIXELS]
            .iter()
            .all(|&v| v == 1.0));
        assert!(first[3 * IMAGE_PIXELS..].iter().all(|&v| v == 0.0));
        assert_eq!(image_gradient(Some(&planes), x), images);

        // With a head, D reads the image alone.
        for head in [
            DiscriminatorLabel::Projection,
            DiscriminatorLabel::AuxiliaryClassifier,
            DiscriminatorLabel::LatentCode,
        ] {
            let c = ConditioningConfig {
                discriminator: head,
                ..c.clone()
            };
            assert_eq!(
                discriminator_input(Some(&c), images.clone(), &[1, 0]),
                images
            );
            assert_eq!(image_gradient(Some(&c), images.clone()), images);
            assert_eq!(c.discriminator_outputs(), 4);
        }
    }
}
