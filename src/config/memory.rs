//! What a config will cost in memory, estimated from its shapes alone, so that a width of 1e9
//! or a billion evaluation samples is refused by `check` and before a run directory is made,
//! rather than aborting an allocation hours in.

use super::{plan_shapes, ExperimentConfig, FeatureShape, LayerSpec, IMAGE_PIXELS};

/// The memory a config needs, by what needs it, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    /// (what, bytes), largest first.
    pub parts: Vec<(&'static str, f64)>,
}

impl MemoryEstimate {
    /// All parts together.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|(_, b)| b).sum()
    }

    /// E.g. `12.3 GB (parameters, ...: 11.0 GB; activations ...: 1.3 GB)`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .parts
            .iter()
            .filter(|(_, b)| *b >= 1e6)
            .map(|(what, b)| format!("{what}: {}", gigabytes(*b)))
            .collect();
        format!("{} ({})", gigabytes(self.total()), parts.join("; "))
    }
}

/// `12.3 GB`.
pub fn gigabytes(bytes: f64) -> String {
    format!("{:.1} GB", bytes / 1e9)
}

const F32: f64 = 4.0;

/// Trainable numbers and the sum of the widths along a layer list (in floating point, so that
/// absurd sizes cannot overflow). A list whose shapes do not fit counts its input alone:
/// validation refuses it before anything is allocated.
fn shape_cost(layers: &[LayerSpec], input: usize) -> (f64, f64) {
    let input = FeatureShape::Flat(input);
    let shapes = plan_shapes(layers, input).unwrap_or_else(|_| vec![input]);
    let (mut params, mut scratch) = (0.0, 0.0);
    for (layer, pair) in layers.iter().zip(shapes.windows(2)) {
        let (trainable, state) = layer.sizes(pair[0], pair[1]);
        params += trainable + state;
        scratch += layer.scratch_per_row(pair[0], pair[1]);
    }
    let widths: f64 = shapes.iter().map(|s| s.len() as f64).sum();
    (params, widths + scratch)
}

/// Estimates the memory a training run of `c` needs at its peak.
pub fn estimate(c: &ExperimentConfig) -> MemoryEstimate {
    // A class-conditional network reads the label beside the noise or the pixels.
    let (g_input, d_input) = c.input_widths();
    let (g_params, g_widths) = shape_cost(&c.model.generator.layers, g_input);
    let (d_params, d_widths) = shape_cost(&c.model.discriminator.layers, d_input);
    let batch = c.training.batch_size as f64;
    // Weights, gradients, two Adam moments and the copy a checkpoint is built from, and a
    // moving average's copy of G.
    let average = c.model.generator.ema.as_ref().map_or(0.0, |_| g_params);
    let parameters = ((g_params + d_params) * 5.0 + average) * F32;
    // Each layer's output and its gradient, kept for the backward pass; D runs on real and
    // generated batches.
    let activations = batch * (g_widths + 2.0 * d_widths) * F32 * 3.0;
    // MNIST as bytes and the packed training set.
    let data = 70_000.0 * IMAGE_PIXELS as f64 * 1.5;
    let mut parts = vec![
        ("parameters, gradients and Adam moments", parameters),
        ("activations at the batch size", activations),
        ("MNIST", data),
    ];
    if c.evaluation.every > 0 {
        // The generated images, as pixels and as the classifier's inputs.
        let images = c.evaluation.samples as f64 * IMAGE_PIXELS as f64 * F32 * 2.0;
        parts.push(("images generated for scoring", images));
        parts.push((
            "precision/recall and KID distances",
            feature_set_blocks(c.evaluation.samples),
        ));
    }
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    MemoryEstimate { parts }
}

/// Bytes of the distance blocks precision and recall work through when `n` images are scored:
/// 1,000 rows of f32 distances against as many real images (up to 10,000, so 40 MB at most);
/// KID's 1,000 x 1,000 kernel blocks are smaller.
pub fn feature_set_blocks(n: usize) -> f64 {
    1000.0 * n.min(10_000) as f64 * F32
}

/// Bytes of `n` generated images as `sample` and `eval` hold them.
pub fn generated_images(n: usize) -> f64 {
    n as f64 * IMAGE_PIXELS as f64 * F32 * 2.0
}

/// The default limit: 80% of this machine's memory (16 GB where it cannot be read).
pub fn default_limit() -> f64 {
    let total_kb = crate::files::read_string("/proc/meminfo".as_ref(), crate::files::SMALL)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        });
    total_kb.map_or(16e9, |kb| kb * 1024.0 * 0.8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_config_needs_little_and_absurd_widths_a_lot() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/paper.toml"),
        )
        .unwrap();
        let mut c: ExperimentConfig =
            (*crate::config::from_str(&text, std::path::Path::new("paper.toml"), &[]).unwrap())
                .clone();
        let paper = estimate(&c).total();
        // 2.95 M parameters x 20 bytes + activations + MNIST: well under 1 GB.
        assert!(paper > 59e6 && paper < 1e9, "{paper}");
        c.model.generator.layers[0] = LayerSpec::Linear(crate::model::layers::LinearSpec {
            input: None,
            out: 1_000_000_000,
            spectral_norm: false,
        });
        assert!(estimate(&c).total() > 1e12);
        c.evaluation.every = 1;
        c.evaluation.samples = 1_000_000_000_000;
        let e = estimate(&c);
        assert_eq!(e.parts[0].0, "images generated for scoring");
        let blocks = e.parts.iter().find(|p| p.0.starts_with("precision/recall"));
        assert_eq!(blocks.unwrap().1, 40e6, "capped at 10,000 real images");
        assert_eq!(feature_set_blocks(200), 800e3);
        assert!(e.describe().contains("images generated for scoring"));
    }
}
