//! `[instance_noise]`: noise on D's inputs, annealed away; its own file to keep the config's
//! main file a table of contents.

use serde::{Deserialize, Serialize};

/// `[instance_noise]`: every image D sees, real or generated, in D's step and in G's, gets
/// Gaussian noise of standard deviation `std * (1 - (epoch - 1) / epochs)` (none from epoch
/// `epochs + 1` on), so that early in training the two distributions overlap and D's gradients
/// carry information (Sønderby et al. 2016; Arjovsky & Bottou 2017). A key left out takes its
/// value from the `Default` impl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceNoiseConfig {
    /// The noise's standard deviation in the first epoch; 0 turns it off.
    pub std: f64,
    /// Epochs over which it falls linearly to zero.
    pub epochs: usize,
}

impl Default for InstanceNoiseConfig {
    fn default() -> Self {
        InstanceNoiseConfig {
            std: 0.0,
            epochs: 10,
        }
    }
}

impl InstanceNoiseConfig {
    /// The standard deviation in the 1-based `epoch`.
    pub fn std_in(&self, epoch: usize) -> f32 {
        let left = 1.0 - (epoch.saturating_sub(1) as f64) / self.epochs.max(1) as f64;
        (self.std * left.max(0.0)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The noise falls in equal steps from `std` in epoch 1 to none from epoch `epochs + 1`.
    #[test]
    fn the_noise_falls_linearly_to_zero_over_its_epochs() {
        let noise = InstanceNoiseConfig {
            std: 0.4,
            epochs: 4,
        };
        let stds: Vec<f32> = (1..=6).map(|e| noise.std_in(e)).collect();
        assert_eq!(stds, [0.4, 0.3, 0.2, 0.1, 0.0, 0.0]);
        assert_eq!(
            InstanceNoiseConfig::default().std_in(1),
            0.0,
            "off by default"
        );
    }
}
