//! Differentiable augmentation (`[augment]`; Zhao et al. 2020, DiffAugment): every image D
//! sees, real or generated, in D's step and in G's, is shifted by a few pixels and has a square
//! cut out, each image its own draw; G's step back-propagates through the same draw. Why: a D
//! that never sees the same training image twice memorises less, and a D that memorises pulls
//! G towards copies of training digits (the recipes' near-copies stay above 1.5%). Because
//! both are augmented alike, G is not taught to draw shifted or cut images.
//!
//! A draw is a map from each output pixel to the input pixel it copies, or to none (zero: the
//! shift's border and the cut square; MNIST's background is 0). Applying it and its adjoint
//! are the fast path's ([`Augmentation::apply`], [`Augmentation::adjoint`]); on dfdx's tape it
//! is a gather then a mask ([`Augmentation::on_tape`]), so the step-equivalence test checks
//! the fast path's gradient through it against dfdx's. The arithmetic follows the authors'
//! PyTorch code (`DiffAugment_pytorch.py`, policy `translation,cutout`); its colour transforms
//! are for RGB and are left out.

use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::Matrix;

/// An MNIST image's side, in pixels.
const SIDE: usize = 28;

/// Its pixels (`config::IMAGE_PIXELS`, which this module, below `config`, does not read).
const IMAGE_PIXELS: usize = SIDE * SIDE;

/// The source of an output pixel that copies nothing (it is 0).
const NONE: u32 = u32::MAX;

/// Reads `[augment]`, whose `translation = 0` and `cutout = 0` together are read as no table
/// at all (the same config, fingerprint and bits as a config without it), so that a sweep's
/// grid can switch it off.
pub(crate) fn augment_or_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Augment>, D::Error> {
    let augment = Augment::deserialize(d)?;
    Ok((augment.translation != 0.0 || augment.cutout != 0.0).then_some(augment))
}

/// `[augment]`: DiffAugment's translation and cutout on D's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// The largest shift along each axis, as a share of the image's side, rounded to pixels
    /// (DiffAugment's 0.125: up to 4 of 28); 0: no shift.
    #[serde(default = "default_translation")]
    pub translation: f64,
    /// The side of the square cut out, as a share of the image's side (DiffAugment's 0.5: 14
    /// of 28 pixels), centred anywhere on the image and clipped by its edges; 0: no cut.
    #[serde(default = "default_cutout")]
    pub cutout: f64,
}

fn default_translation() -> f64 {
    0.125
}

fn default_cutout() -> f64 {
    0.5
}

/// A share of the image's side in whole pixels, rounded as DiffAugment rounds it.
pub fn pixels(share: f64) -> usize {
    (SIDE as f64 * share + 0.5) as usize
}

impl Augment {
    /// One draw for `rows` images from `rng`: per image, its shift (x, then y), then the cut
    /// square's centre (x, then y).
    pub fn draw(&self, rows: usize, rng: &mut ChaCha8Rng) -> Augmentation {
        let shift = pixels(self.translation) as i64;
        let cut = pixels(self.cutout) as i64;
        let side = SIDE as i64;
        let mut sources = vec![NONE; rows * IMAGE_PIXELS];
        for row in sources.chunks_exact_mut(IMAGE_PIXELS) {
            let (dx, dy) = match shift {
                0 => (0, 0),
                s => (rng.gen_range(-s..=s), rng.gen_range(-s..=s)),
            };
            // An even square's centre may also sit one past the last pixel (DiffAugment's
            // `size + (1 - cut % 2)`).
            let centre_range = 0..side + (1 - cut % 2);
            let (cx, cy) = match cut {
                0 => (-side, -side),
                _ => (
                    rng.gen_range(centre_range.clone()),
                    rng.gen_range(centre_range),
                ),
            };
            let (x0, y0) = (cx - cut / 2, cy - cut / 2);
            for y in 0..side {
                for x in 0..side {
                    let (sx, sy) = (x + dx, y + dy);
                    let inside = (0..side).contains(&sx) && (0..side).contains(&sy);
                    let cut_out = (x0..x0 + cut).contains(&x) && (y0..y0 + cut).contains(&y);
                    if inside && !cut_out {
                        row[(y * side + x) as usize] = (sy * side + sx) as u32;
                    }
                }
            }
        }
        Augmentation { sources }
    }
}

/// One batch's augmentation: for each row's output pixel, the input pixel it copies, or
/// [`NONE`]. Shifts are one to one, so no input pixel is copied twice.
pub struct Augmentation {
    sources: Vec<u32>,
}

impl Augmentation {
    /// Augments `images` (rows of [`IMAGE_PIXELS`]) in place.
    pub fn apply(&self, images: &mut [f32]) {
        let mut input = [0.0; IMAGE_PIXELS];
        for (row, sources) in images
            .chunks_exact_mut(IMAGE_PIXELS)
            .zip(self.sources.chunks_exact(IMAGE_PIXELS))
        {
            input.copy_from_slice(row);
            for (out, &s) in row.iter_mut().zip(sources) {
                *out = if s == NONE { 0.0 } else { input[s as usize] };
            }
        }
    }

    /// Turns the gradient with respect to the augmented images into the gradient with respect
    /// to the images, in place: each output pixel's gradient goes back to its source.
    pub fn adjoint(&self, grad: &mut [f32]) {
        let mut output = [0.0; IMAGE_PIXELS];
        for (row, sources) in grad
            .chunks_exact_mut(IMAGE_PIXELS)
            .zip(self.sources.chunks_exact(IMAGE_PIXELS))
        {
            output.copy_from_slice(row);
            row.fill(0.0);
            for (&g, &s) in output.iter().zip(sources) {
                if s != NONE {
                    row[s as usize] += g;
                }
            }
        }
    }

    /// The same augmentation on dfdx's tape: a gather of each row's sources (pixel 0 for
    /// none), times a mask that zeroes the pixels copying none.
    pub fn on_tape<T: Tape<f32, Cpu> + Merge<NoneTape>>(&self, images: Matrix<T>) -> Matrix<T> {
        let dev = images.device().clone();
        let shape = *images.shape();
        let index: Vec<usize> = self
            .sources
            .iter()
            .map(|&s| if s == NONE { 0 } else { s as usize })
            .collect();
        let mask: Vec<f32> = self
            .sources
            .iter()
            .map(|&s| if s == NONE { 0.0 } else { 1.0 })
            .collect();
        let gathered: Matrix<T> = images.gather(dev.tensor_from_vec(index, shape));
        gathered * dev.tensor_from_vec(mask, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A draw of `augment` for `rows` images from a stream seeded with `seed`, and two batches
    /// of uniform values drawn before it (images, and gradients or weights).
    fn draw_with_batches(
        augment: Augment,
        rows: usize,
        seed: u64,
    ) -> (Augmentation, Vec<f32>, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut batch = || -> Vec<f32> { (0..rows * IMAGE_PIXELS).map(|_| rng.gen()).collect() };
        let (x, g) = (batch(), batch());
        (augment.draw(rows, &mut rng), x, g)
    }

    fn image_with(pixels: &[(usize, usize)]) -> Vec<f32> {
        let mut image = vec![0.0; IMAGE_PIXELS];
        for &(x, y) in pixels {
            image[y * SIDE + x] = 1.0 + (y * SIDE + x) as f32;
        }
        image
    }

    /// Translation alone moves every pixel by the draw's shift, at most 4 pixels each way at
    /// DiffAugment's 0.125, and every shift from -4 to 4 turns up.
    #[test]
    fn translation_moves_the_image_by_at_most_its_shift() {
        let augment = Augment {
            translation: 0.125,
            cutout: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut image = image_with(&[(14, 14)]);
            augment.draw(1, &mut rng).apply(&mut image);
            let lit: Vec<usize> = (0..IMAGE_PIXELS).filter(|&i| image[i] != 0.0).collect();
            assert_eq!(lit.len(), 1, "one pixel in, one out (far from the edges)");
            assert_eq!(
                image[lit[0]],
                1.0 + (14 * SIDE + 14) as f32,
                "its value moved"
            );
            let (x, y) = ((lit[0] % SIDE) as i64 - 14, (lit[0] / SIDE) as i64 - 14);
            assert!(x.abs() <= 4 && y.abs() <= 4, "shifted by ({x}, {y})");
            seen.insert(x);
        }
        assert_eq!(seen.len(), 9, "shifts seen along x: {seen:?}");
    }

    /// Cutout alone zeroes one square of 14 by 14 pixels (fewer at the edges) and keeps the
    /// rest of the image where it was.
    #[test]
    fn cutout_zeroes_one_square_and_keeps_the_rest() {
        let augment = Augment {
            translation: 0.0,
            cutout: 0.5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut largest = 0;
        for _ in 0..100 {
            let full: Vec<f32> = (0..IMAGE_PIXELS).map(|i| 1.0 + i as f32).collect();
            let mut image = full.clone();
            augment.draw(1, &mut rng).apply(&mut image);
            let zeroed: Vec<usize> = (0..IMAGE_PIXELS).filter(|&i| image[i] == 0.0).collect();
            let kept = (0..IMAGE_PIXELS).filter(|&i| image[i] == full[i]).count();
            assert_eq!(zeroed.len() + kept, IMAGE_PIXELS, "a pixel is kept or cut");
            let xs = zeroed.iter().map(|i| i % SIDE);
            let ys = zeroed.iter().map(|i| i / SIDE);
            let (w, h) = (
                xs.clone().max().unwrap() - xs.min().unwrap() + 1,
                ys.clone().max().unwrap() - ys.min().unwrap() + 1,
            );
            assert_eq!(w * h, zeroed.len(), "the cut is a rectangle");
            assert!(w <= 14 && h <= 14, "{w} x {h}");
            largest = largest.max(zeroed.len());
        }
        assert_eq!(largest, 14 * 14, "a whole square inside the image");
    }

    /// The adjoint is the transpose: <A x, g> = <x, A^T g> for random images and gradients,
    /// with both transforms and several rows.
    #[test]
    fn the_adjoint_is_the_transpose() {
        let augment = Augment {
            translation: 0.2,
            cutout: 0.3,
        };
        let (draw, x, g) = draw_with_batches(augment, 5, 3);
        let (mut ax, mut atg) = (x.clone(), g.clone());
        draw.apply(&mut ax);
        draw.adjoint(&mut atg);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
        let (left, right) = (dot(&ax, &g), dot(&x, &atg));
        assert!(
            (left - right).abs() < 1e-3 * left.abs(),
            "{left} vs {right}"
        );
        assert_ne!(ax, x, "the draw changed the images");
    }

    /// The tape's gather and mask give the fast path's images, and dfdx's gradient through
    /// them is the fast path's adjoint.
    #[test]
    fn the_tape_matches_the_fast_path() {
        let augment = Augment {
            translation: 0.125,
            cutout: 0.5,
        };
        let rows = 3;
        let (draw, x, weights) = draw_with_batches(augment, rows, 4);
        let dev: Cpu = Default::default();
        let shape = (rows, IMAGE_PIXELS);
        let input = dev.tensor_from_vec(x.clone(), shape);
        let out = draw.on_tape(input.clone().leaky_traced());
        let mut fast = x;
        draw.apply(&mut fast);
        assert_eq!(out.as_vec(), fast);
        let grads = (out * dev.tensor_from_vec(weights.clone(), shape))
            .sum()
            .backward();
        let mut adjoint = weights;
        draw.adjoint(&mut adjoint);
        assert_eq!(grads.get(&input).as_vec(), adjoint);
    }

    /// Both shares at 0 read as no table.
    #[test]
    fn zero_shares_read_as_no_augmentation() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(default, deserialize_with = "augment_or_none")]
            augment: Option<Augment>,
        }
        let read = |text: &str| toml::from_str::<Holder>(text).unwrap().augment;
        assert_eq!(read("[augment]\ntranslation = 0.0\ncutout = 0.0\n"), None);
        assert_eq!(
            read("[augment]\ncutout = 0.0\n"),
            Some(Augment {
                translation: 0.125,
                cutout: 0.0
            })
        );
        assert_eq!(read(""), None);
    }
}
