//! Gradient penalties on D, one file each: R1 (Mescheder et al. 2018) on real images, R2 on
//! generated ones, WGAN-GP (Gulrajani et al. 2017) on random interpolates between the two. A
//! penalty's file says which images it is computed on and its value and gradient as a function
//! of D's input gradient there; the gradient with respect to D's parameters (double
//! backpropagation) is the fast path's, `model::backprop::PlainNet::penalty_gradients`, which
//! each layer kind's `FastLayer::penalty_pass` serves. This file lists the penalties
//! ([`penalties!`]'s call) and holds the `[gradient_penalty]` table. Adding a penalty is its
//! file plus one line there. G's one regulariser, mode seeking (`[mode_seeking]`), is a term
//! on G's images rather than on D's gradient, in its own file; so is differentiable
//! augmentation (`[augment]`), a transform of every image D sees.

mod augment;
mod mode_seeking;
mod r1;
mod r2;
mod wgan_gp;

pub(crate) use augment::augment_or_none;
pub use augment::{pixels as augment_pixels, Augment, Augmentation};
pub(crate) use mode_seeking::mode_seeking_or_none;
pub use mode_seeking::ModeSeeking;
pub use r1::R1;
pub use r2::R2;
pub use wgan_gp::WganGp;

use serde::{Deserialize, Serialize};

/// The images a penalty looks at D's input gradient on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenaltyInput {
    /// The step's real batch.
    Real,
    /// The step's generated batch.
    Generated,
    /// Per row, `e * real + (1 - e) * generated` with `e` uniform in [0, 1).
    Interpolates,
}

/// A gradient penalty.
pub trait Penalty {
    /// Its name in configs.
    const NAME: &'static str;
    /// Which images it is computed on.
    fn input(&self) -> PenaltyInput;
    /// Its value for D's input gradient `g` (`rows` rows) with `weight`, and the value's
    /// gradient with respect to `g`.
    fn of_input_gradient(&self, g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>);
}

/// Lists the penalties: `Variant(Type)`, one line each; `Type::NAME` is the variant in snake
/// case.
macro_rules! penalties {
    ($($(#[$doc:meta])* $kind:ident($ty:ident),)*) => {
        /// Which gradient penalty (`[gradient_penalty] kind = "..."`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum PenaltyKind {
            $($(#[$doc])* $kind,)*
        }

        /// `kind` as a config writes it: a penalty, or `none` (compare_gan's `no_penalty`), so
        /// that a sweep's grid can hold "no penalty" beside the penalties.
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum KindOrNone {
            #[serde(rename = "none")]
            Off,
            $($kind,)*
        }

        impl KindOrNone {
            fn penalty(self) -> Option<PenaltyKind> {
                match self {
                    KindOrNone::Off => None,
                    $(KindOrNone::$kind => Some(PenaltyKind::$kind),)*
                }
            }
        }

        impl PenaltyKind {
            /// Every penalty, in listing order.
            pub const ALL: &'static [PenaltyKind] = &[$(PenaltyKind::$kind,)*];
            /// The name a config uses for it.
            pub fn name(self) -> &'static str {
                match self { $(PenaltyKind::$kind => $ty::NAME,)* }
            }
            /// See [`Penalty::input`].
            pub fn input(self) -> PenaltyInput {
                match self { $(PenaltyKind::$kind => $ty.input(),)* }
            }
            /// See [`Penalty::of_input_gradient`].
            pub fn of_input_gradient(self, g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>) {
                match self { $(PenaltyKind::$kind => $ty.of_input_gradient(g, rows, weight),)* }
            }
            /// [`PenaltyKind::of_input_gradient`] on the first `image` numbers of each of the
            /// `rows` rows of `g`: the image's part of D's input gradient where the label D
            /// reads follows it. The label's part neither counts nor gets a gradient (labels
            /// are given, not drawn: no one moves them).
            pub fn of_image_gradient(
                self,
                g: &[f32],
                rows: usize,
                image: usize,
                weight: f32,
            ) -> (f32, Vec<f32>) {
                let width = g.len() / rows;
                if width == image {
                    return self.of_input_gradient(g, rows, weight);
                }
                let part: Vec<f32> =
                    g.chunks_exact(width).flat_map(|row| row[..image].to_vec()).collect();
                let (value, part_grad) = self.of_input_gradient(&part, rows, weight);
                let mut grad = vec![0.0; g.len()];
                for (row, from) in grad.chunks_exact_mut(width).zip(part_grad.chunks_exact(image)) {
                    row[..image].copy_from_slice(from);
                }
                (value, grad)
            }
        }
    };
}

penalties! {
    /// `weight / 2 * mean |grad D(x)|^2` on real images (Mescheder et al. 2018).
    R1(R1),
    /// The same on generated images.
    R2(R2),
    /// `weight * mean (|grad D(x^)| - 1)^2` on interpolates (Gulrajani et al. 2017).
    WganGp(WganGp),
}

/// `[gradient_penalty]`: a penalty on D's input gradient, added to D's loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradientPenaltyConfig {
    /// Which penalty.
    pub kind: PenaltyKind,
    /// Its weight (gamma for R1 and R2, lambda for WGAN-GP: 10 in the papers).
    pub weight: f64,
    /// Lazy regularisation (Karras et al. 2020): computed every N-th D step, its weight
    /// multiplied by N.
    #[serde(default = "one")]
    pub every: usize,
}

fn one() -> usize {
    1
}

/// `[gradient_penalty]` as a config may write it: a penalty, or `kind = "none"` with an
/// optional weight.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PenaltyTable {
    kind: KindOrNone,
    weight: Option<f64>,
    #[serde(default = "one")]
    every: usize,
}

/// Reads `[gradient_penalty]`, whose `kind = "none"` is read as no table at all: the same
/// config, fingerprint and bits as a config without it, whatever its weight and `every` say.
pub(crate) fn penalty_or_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<GradientPenaltyConfig>, D::Error> {
    let table = PenaltyTable::deserialize(d)?;
    let Some(kind) = table.kind.penalty() else {
        return Ok(None);
    };
    let weight = table
        .weight
        .ok_or_else(|| serde::de::Error::missing_field("weight"))?;
    Ok(Some(GradientPenaltyConfig {
        kind,
        weight,
        every: table.every,
    }))
}

/// `weight / 2 * mean over rows of |g_row|^2` and its gradient `weight / rows * g`: R1 and R2.
pub(crate) fn half_mean_square(g: &[f32], rows: usize, weight: f32) -> (f32, Vec<f32>) {
    let n = rows as f32;
    let value = weight * g.iter().map(|v| v * v).sum::<f32>() / (2.0 * n);
    (value, g.iter().map(|v| weight * v / n).collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn read(table: &str) -> crate::error::Result<crate::config::Experiment> {
        let text = std::fs::read_to_string("configs/smoke.toml").unwrap();
        crate::config::from_str(&format!("{text}\n{table}"), Path::new("exp.toml"), &[])
    }

    /// `kind = "none"` is a config without the table, to the fingerprint, so that a grid's
    /// "no penalty" point is the run it would be without one.
    #[test]
    fn kind_none_reads_as_no_penalty() {
        let none = read("[gradient_penalty]\nkind = \"none\"\nweight = 10.0\n").unwrap();
        let without = read("").unwrap();
        assert_eq!(none.gradient_penalty, None);
        assert_eq!(none.to_toml(), without.to_toml());
        let r1 = read("[gradient_penalty]\nkind = \"r1\"\nweight = 10.0\nevery = 4\n").unwrap();
        assert_eq!(
            r1.gradient_penalty,
            Some(GradientPenaltyConfig {
                kind: PenaltyKind::R1,
                weight: 10.0,
                every: 4
            })
        );
    }

    /// On rows of an image and a label, each penalty is its value on the images alone, and
    /// its gradient is the images' with zeros on the labels.
    #[test]
    fn a_penalty_on_the_image_part_ignores_the_labels() {
        let (rows, image, label) = (3, 4, 2);
        let g: Vec<f32> = (0..rows * (image + label))
            .map(|i| ((i * 5 % 7) as f32 - 3.0) / 2.0)
            .collect();
        let images: Vec<f32> = g
            .chunks_exact(image + label)
            .flat_map(|row| row[..image].to_vec())
            .collect();
        for &kind in PenaltyKind::ALL {
            let (want, want_grad) = kind.of_input_gradient(&images, rows, 2.0);
            let (got, grad) = kind.of_image_gradient(&g, rows, image, 2.0);
            assert_eq!(got, want, "{}", kind.name());
            let (with_labels, _) = kind.of_input_gradient(&g, rows, 2.0);
            assert_ne!(
                got,
                with_labels,
                "{}: the labels' part is left out",
                kind.name()
            );
            for (row, want) in grad
                .chunks_exact(image + label)
                .zip(want_grad.chunks(image))
            {
                assert_eq!(&row[..image], want);
                assert_eq!(&row[image..], &[0.0; 2]);
            }
            assert_eq!(kind.of_image_gradient(&images, rows, image, 2.0).0, want);
        }
    }

    /// A misspelt kind names the key and every kind, `none` included; a stray key beside
    /// `none` is refused as it is beside a penalty.
    #[test]
    fn a_wrong_kind_or_key_names_the_table_and_the_choices() {
        let e = read("[gradient_penalty]\nkind = \"r3\"\nweight = 1.0\n")
            .unwrap_err()
            .to_string();
        for word in ["gradient_penalty", "r3", "wgan_gp", "none"] {
            assert!(e.contains(word), "{word} missing from: {e}");
        }
        for table in [
            "[gradient_penalty]\nkind = \"none\"\nwieght = 1.0\n",
            "[gradient_penalty]\nkind = \"r1\"\nwieght = 1.0\n",
        ] {
            let e = read(table).unwrap_err().to_string();
            assert!(
                e.contains("wieght") && e.contains("gradient_penalty"),
                "{e}"
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! The check each penalty's file runs: its gradient against central differences, in f64.

    use super::*;

    pub(crate) fn gradient_matches_finite_differences(kind: PenaltyKind) {
        let (rows, width) = (3, 4);
        let g: Vec<f32> = (0..rows * width)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let (_, grad) = kind.of_input_gradient(&g, rows, 2.0);
        for i in 0..g.len() {
            let at = |d: f32| {
                let mut h = g.clone();
                h[i] += d;
                kind.of_input_gradient(&h, rows, 2.0).0 as f64
            };
            let numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
            assert!(
                (grad[i] as f64 - numeric).abs() < 1e-3 * (1.0 + numeric.abs()),
                "{}: {} vs {numeric}",
                kind.name(),
                grad[i]
            );
        }
    }
}
