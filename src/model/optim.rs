//! Adam with moment buffers that gan-run owns, so that checkpoints can hold them and a resumed
//! run continues exactly. dfdx's own `Adam` keeps its moments private; its public kernel
//! `AdamConfig::try_update` does the arithmetic on buffers we pass in.

use dfdx::prelude::*;

use serde::{Deserialize, Serialize};

use crate::model::{Network, TensorVisitor};

/// Adam's hyper-parameters: one `[optimizer.generator]` or `[optimizer.discriminator]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamSettings {
    /// Learning rate.
    #[serde(default = "defaults::lr")]
    pub lr: f64,
    /// First-moment decay.
    #[serde(default = "defaults::beta1")]
    pub beta1: f64,
    /// Second-moment decay.
    #[serde(default = "defaults::beta2")]
    pub beta2: f64,
    /// Denominator guard (TensorFlow's and PyTorch's default 1e-8).
    #[serde(default = "defaults::eps")]
    pub eps: f64,
    /// A linear fall of the learning rate towards zero late in training; off by default.
    #[serde(default)]
    pub lr_decay: LrDecay,
}

/// `lr_decay = { start_epoch = S, epochs = N }`: from epoch `S` on, each epoch trains at
/// `lr * (1 - k / (N + 1))`, k = 1 in epoch `S` up to N in epoch `S + N - 1` and after, so the
/// rate falls in N equal steps to `lr / (N + 1)` (CycleGAN's linear decay, by epochs). Late,
/// small steps let both networks settle where a constant rate keeps them circling. The schedule
/// names its epochs rather than "the last N", so that extending a run's `training.epochs`
/// never changes the rate of an epoch already trained. `epochs = 0` (the default) is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LrDecay {
    /// The first epoch (1-based) trained at a lower rate.
    pub start_epoch: usize,
    /// Epochs over which the rate falls; 0 keeps it constant.
    pub epochs: usize,
}

impl LrDecay {
    /// The factor on the learning rate in the 1-based `epoch`.
    pub fn factor_in(&self, epoch: usize) -> f64 {
        if self.epochs == 0 || epoch < self.start_epoch {
            return 1.0;
        }
        let k = (epoch + 1 - self.start_epoch).min(self.epochs);
        1.0 - k as f64 / (self.epochs + 1) as f64
    }
}

impl AdamSettings {
    /// The learning rate in the 1-based `epoch`: exactly `lr` (times 1.0) without a decay.
    pub fn lr_in(&self, epoch: usize) -> f64 {
        self.lr * self.lr_decay.factor_in(epoch)
    }
}

/// The tutorial's Adam (the paper config sets D's beta1 itself).
mod defaults {
    pub fn lr() -> f64 {
        2e-4
    }
    pub fn beta1() -> f64 {
        0.5
    }
    pub fn beta2() -> f64 {
        0.999
    }
    pub fn eps() -> f64 {
        1e-8
    }
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self {
            lr: defaults::lr(),
            beta1: defaults::beta1(),
            beta2: defaults::beta2(),
            eps: defaults::eps(),
            lr_decay: LrDecay::default(),
        }
    }
}

/// One network's optimizer: hyper-parameters, step count and first and second moments.
#[derive(Debug, Clone)]
pub struct AdamState {
    /// dfdx's hyper-parameter struct, built from the config.
    pub cfg: AdamConfig,
    /// Updates applied so far (Adam's `t`).
    pub steps: i32,
    /// First moments, keyed by the parameter tensors' ids.
    pub(crate) moment1: Gradients<f32, Cpu>,
    /// Second moments, keyed likewise.
    pub(crate) moment2: Gradients<f32, Cpu>,
}

impl AdamState {
    /// Fresh state: zero moments, no steps.
    pub fn new(settings: &AdamSettings) -> Self {
        AdamState {
            cfg: AdamConfig {
                lr: settings.lr,
                betas: [settings.beta1, settings.beta2],
                eps: settings.eps,
                weight_decay: None,
            },
            steps: 0,
            moment1: Gradients::leaky(),
            moment2: Gradients::leaky(),
        }
    }

    /// Applies `grads` to the trainable tensors of `net`, and only those: gradients the same
    /// backward pass computed for the other network are never read.
    pub fn update(&mut self, net: &mut Network, grads: &mut Gradients<f32, Cpu>) {
        self.steps += 1;
        let mut visitor = Update { state: self, grads };
        net.visit(&mut visitor);
    }

    /// The two moment buffers of a tensor (allocated as zeros on first use).
    pub(crate) fn moments_of<S: Shape>(
        &mut self,
        t: &Tensor<S, f32, Cpu>,
    ) -> (&mut Vec<f32>, &mut Vec<f32>) {
        let m = self.moment1.get_or_alloc_mut(t).expect("cpu allocation");
        let v = self.moment2.get_or_alloc_mut(t).expect("cpu allocation");
        (m, v)
    }
}

struct Update<'a> {
    state: &'a mut AdamState,
    grads: &'a mut Gradients<f32, Cpu>,
}

impl TensorVisitor for Update<'_> {
    fn visit<S: Shape>(&mut self, _: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
        if !trainable {
            return;
        }
        // A parameter the loss did not reach gets a zero gradient (dfdx's Adam would skip it);
        // every layer type built today is reached by its network's loss.
        let grad = self.grads.get_or_alloc_mut(t).expect("cpu allocation");
        let m = self
            .state
            .moment1
            .get_or_alloc_mut(t)
            .expect("cpu allocation");
        let v = self
            .state
            .moment2
            .get_or_alloc_mut(t)
            .expect("cpu allocation");
        self.state
            .cfg
            .try_update(self.state.steps, t, m, v, grad)
            .expect("cpu adam kernel");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_falls_in_equal_steps_from_its_start_epoch_and_then_holds() {
        let settings = AdamSettings {
            lr: 2e-4,
            lr_decay: LrDecay {
                start_epoch: 3,
                epochs: 4,
            },
            ..AdamSettings::default()
        };
        let factors: Vec<f64> = (1..=8).map(|e| settings.lr_decay.factor_in(e)).collect();
        let expected = [1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.2];
        for (e, (f, want)) in (1..=8).zip(factors.iter().zip(expected)) {
            assert!((f - want).abs() < 1e-12, "epoch {e}: {f} for {want}");
            assert!((settings.lr_in(e) - 2e-4 * want).abs() < 1e-15, "epoch {e}");
        }
        // Off by default, and exactly the configured rate.
        assert_eq!(
            AdamSettings::default().lr_in(50),
            AdamSettings::default().lr
        );
    }
}
