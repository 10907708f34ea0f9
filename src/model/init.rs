//! How linear layers' weights and biases start: the `[init]` table and the draws.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// How weights and biases of linear layers start. Normalisation layers always start at scale 1,
/// offset 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// Linear weights.
    #[serde(default = "default_init")]
    pub weights: InitKind,
    /// Linear biases.
    #[serde(default = "default_init")]
    pub biases: InitKind,
}

/// TensorFlow's `truncated_normal(stddev=0.02)`, the tutorial's.
fn default_init() -> InitKind {
    InitKind::TruncatedNormal { std: 0.02 }
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            weights: default_init(),
            biases: default_init(),
        }
    }
}

/// An initialisation distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InitKind {
    /// TensorFlow's `truncated_normal`: normal, redrawn beyond two standard deviations.
    TruncatedNormal {
        /// Standard deviation before truncation.
        std: f64,
    },
    /// Plain normal.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// All zeros.
    Zeros,
}

impl InitKind {
    /// Draws `n` initial values (a standard deviation that is not positive draws zeros; validation
    /// refuses it in configs).
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        match *self {
            InitKind::Zeros => vec![0.0; n],
            InitKind::Normal { std } | InitKind::TruncatedNormal { std }
                if std <= 0.0 || std.is_nan() =>
            {
                vec![0.0; n]
            }
            InitKind::Normal { std } => {
                let d = Normal::new(0.0, std).expect("std checked positive");
                (0..n).map(|_| d.sample(rng) as f32).collect()
            }
            InitKind::TruncatedNormal { std } => {
                let d = Normal::new(0.0, std).expect("std checked positive");
                (0..n)
                    .map(|_| loop {
                        let v: f64 = d.sample(rng);
                        if v.abs() <= 2.0 * std {
                            break v as f32;
                        }
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn truncated_normal_stays_within_two_std() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let v = InitKind::TruncatedNormal { std: 0.02 }.sample(100_000, &mut rng);
        assert!(v.iter().all(|x| x.abs() <= 0.04));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        // A normal truncated at 2 sigma has std 0.88 sigma.
        assert!((std - 0.02 * 0.88).abs() < 0.0005, "std {std}");
    }
}
