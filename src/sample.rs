//! `gan-run sample`: a run's generator writes images that any other tool can read — an
//! MNIST-format IDX3 file (gzipped when the name ends in `.gz`) or a PNG grid.

use std::io::Write;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{Experiment, GenerationMode, IMAGE_PIXELS};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::run_dir::{checkpoint, grid_png, RunDir};
use crate::train::{generate_recording_inputs, Draw, DrawnInputs, GanState, GenerationLabels};

/// A run's config and its training state restored from `checkpoint` (default: the newest).
pub fn load_run(run: &Path, checkpoint_path: Option<&Path>) -> Result<(Experiment, GanState)> {
    let dir = RunDir {
        path: run.to_path_buf(),
    };
    let config = dir.read_config()?;
    let path: PathBuf = match checkpoint_path {
        Some(p) => p.to_path_buf(),
        None => dir.latest_checkpoint()?.ok_or_else(|| Error::RunDir {
            path: run.to_path_buf(),
            message: "has no checkpoint yet: train it first".into(),
        })?,
    };
    let dev = Cpu::default();
    let mut state = GanState::new(&config, &dev);
    let bytes = crate::files::read(&path, crate::files::CHECKPOINT)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    checkpoint::restore(
        &mut state,
        &bytes,
        &path,
        Some(&config.training_fingerprint()),
    )?;
    // A checkpoint of an interrupted epoch holds the raw generator's statistics in its
    // average; an epoch's end already re-estimated them, and doing it again changes nothing.
    state.refresh_ema_statistics(&config, &dev);
    Ok((config, state))
}

/// Images a run's generator drew, with what made them.
pub struct Generated {
    /// The run's config.
    pub config: Experiment,
    /// `n` images in [0, 1], row-major.
    pub pixels: Vec<f32>,
    /// Every input row G was given: whole batches, at least `n` rows.
    pub inputs: DrawnInputs,
    /// The checkpoint's epoch.
    pub epoch: usize,
    /// How they were generated.
    pub mode: GenerationMode,
    /// Which labels a class-conditional generator was asked for.
    pub labels: GenerationLabels,
    /// Whether the generator's moving average drew them (rather than the generator itself).
    pub moving_average: bool,
}

/// What `sample` and `eval` ask of a run's generator.
#[derive(Debug, Clone)]
pub struct Request {
    /// How many images.
    pub n: usize,
    /// Seed of the noise.
    pub seed: u64,
    /// How the generator draws them (default: the run's `generation.mode`).
    pub mode: Option<GenerationMode>,
    /// Which labels a class-conditional generator is asked for; refused for a run without
    /// conditioning unless balanced or by grid rows (which such a run ignores).
    pub labels: GenerationLabels,
    /// Draw with the generator itself even where the run keeps a moving average.
    pub raw_generator: bool,
}

/// Loads a run's generator from `checkpoint` (default: the newest) and draws images as
/// `request` says, by the generator's moving average when the run keeps one and
/// `request.raw_generator` is false.
pub fn generate_from_run(
    run: &Path,
    checkpoint_path: Option<&Path>,
    request: Request,
) -> Result<Generated> {
    let (config, mut state) = load_run(run, checkpoint_path)?;
    check_labels(run, &config, &request.labels)?;
    let dev = Cpu::seed_from_u64(request.seed);
    let draw = Draw {
        n: request.n,
        mode: request.mode.unwrap_or(config.generation.mode),
        labels: request.labels.clone(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
    let mut inputs = DrawnInputs::default();
    let sampler = state.sampler(request.raw_generator);
    let pixels =
        generate_recording_inputs(&config, sampler, &draw, &mut rng, &dev, Some(&mut inputs));
    Ok(Generated {
        moving_average: state.ema.is_some() && !request.raw_generator,
        config,
        pixels,
        inputs,
        epoch: state.epoch,
        mode: draw.mode,
        labels: draw.labels,
    })
}

/// Refuses a label the run's generator cannot be asked for.
fn check_labels(run: &Path, config: &Experiment, labels: &GenerationLabels) -> Result<()> {
    let &GenerationLabels::Only(label) = labels else {
        return Ok(());
    };
    let message = match &config.conditioning {
        None => "is not class-conditional (its config has no [conditioning]): its generator \
                 takes no label; drop --label"
            .to_string(),
        Some(c) if label as usize >= c.classes => format!(
            "has {} classes (labels 0 to {}): --label {label} is not one of them",
            c.classes,
            c.classes - 1
        ),
        Some(_) => return Ok(()),
    };
    Err(Error::RunDir {
        path: run.to_path_buf(),
        message,
    })
}

/// The bytes of an IDX3 image file: magic 2051, count, 28, 28, one byte a pixel (0 background,
/// 255 ink).
pub fn idx3_bytes(pixels: &[f32]) -> Vec<u8> {
    let n = pixels.len() / IMAGE_PIXELS;
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [2051u32, n as u32, 28, 28] {
        out.extend(v.to_be_bytes());
    }
    out.extend(
        pixels
            .iter()
            .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8),
    );
    out
}

/// The most images a side of a PNG grid holds: a grid shows at most 32 x 32 = 1,024 images
/// (a 962-pixel square).
pub const MAX_GRID_SIDE: usize = 32;

/// The side of the square PNG grid that shows `n` images (or the first 1,024).
pub fn grid_side(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).clamp(1, MAX_GRID_SIDE)
}

/// Writes images to `out`: `.png` a grid (up to [`MAX_GRID_SIDE`] x [`MAX_GRID_SIDE`]: the
/// first 1,024 images), `.gz` a gzipped IDX3, else raw IDX3. Returns how many images the file
/// holds, fewer than given only for a grid.
pub fn write_images(out: &Path, pixels: &[f32]) -> Result<usize> {
    let name = out.to_string_lossy();
    let n = pixels.len() / IMAGE_PIXELS;
    let mut written = n;
    let bytes = if name.ends_with(".png") {
        let side = grid_side(n);
        written = n.min(side * side);
        grid_png(pixels, side)
    } else if name.ends_with(".gz") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&idx3_bytes(pixels))
            .and_then(|_| gz.finish())
            .map_err(|e| Error::io("cannot compress", out, e))?
    } else {
        idx3_bytes(pixels)
    };
    write_atomic(out, &bytes)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx3_round_trips_through_the_mnist_reader() {
        let pixels: Vec<f32> = (0..2 * IMAGE_PIXELS)
            .map(|i| (i % 256) as f32 / 255.0)
            .collect();
        let bytes = idx3_bytes(&pixels);
        let (dims, body) = crate::data::parse_idx(&bytes, Path::new("x"), 2051).unwrap();
        assert_eq!(dims, vec![2, 28, 28]);
        assert_eq!(body[300] as usize, 300 % 256);
    }

    /// A grid holds at most 32 x 32 images and says how many it shows.
    #[test]
    fn a_grid_reports_how_many_images_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let pixels = vec![0.5; 1100 * IMAGE_PIXELS];
        assert_eq!(
            write_images(&dir.path().join("a.png"), &pixels).unwrap(),
            1024
        );
        assert_eq!(
            write_images(&dir.path().join("a.idx"), &pixels).unwrap(),
            1100
        );
        let few = &pixels[..5 * IMAGE_PIXELS];
        assert_eq!(write_images(&dir.path().join("b.png"), few).unwrap(), 5);
    }
}
