//! A run's generated images: written out, or scored.

use std::path::PathBuf;

use clap::Args;

use super::*;
use crate::eval::LabelSource;
use crate::train::GenerationLabels;

/// Write generated images of a run as an MNIST-format IDX3 file (.gz if named so) or a PNG grid.
#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// The run directory.
    pub run: PathBuf,
    /// How many images.
    #[arg(long, default_value_t = 10_000)]
    pub n: usize,
    /// Output file: NAME.png (a grid of at most 32 x 32, the first 1,024 images), NAME.gz
    /// (gzipped IDX3) or anything else (raw IDX3).
    #[arg(long)]
    pub out: PathBuf,
    /// Checkpoint to use (default: the run's newest).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How the generator draws them (default: the run's `generation.mode`).
    #[arg(long, value_enum)]
    pub generation: Option<GenerationMode>,
    /// Draw with the generator itself, not its moving average (for runs that keep one).
    #[arg(long)]
    pub raw_generator: bool,
    /// Refuse an `--n` needing more memory than this many GB (default: 80% of this machine's).
    #[arg(long, value_name = "GB")]
    pub memory_limit: Option<f64>,
    /// Also write the noise the images were drawn from (safetensors, tensor `noise`), e.g. for
    /// examples/generate.py to reproduce them.
    #[arg(long, value_name = "FILE")]
    pub noise_out: Option<PathBuf>,
    /// Ask a class-conditional generator for this class only (e.g. `--label 7`).
    #[arg(long, conflicts_with = "labels")]
    pub label: Option<u8>,
    /// Which labels a class-conditional generator is asked for: `balanced` (the default)
    /// gives image i the label (i / classes) % classes, every class equally often when `--n`
    /// is a multiple of classes squared. Into a PNG grid, row r shows digit r % classes
    /// whatever the grid's width, so classes come equally often only when its rows are a
    /// multiple of the classes (`--n 100`: ten rows of ten).
    #[arg(long, value_enum)]
    pub labels: Option<LabelChoice>,
}

/// `sample --labels`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelChoice {
    /// Every class equally often.
    Balanced,
}

/// `gan-run sample`: a run's generated images as an IDX3 file or a PNG grid.
pub fn sample(args: SampleArgs) -> anyhow::Result<()> {
    let SampleArgs {
        run,
        n,
        out,
        checkpoint,
        seed,
        generation,
        memory_limit,
        noise_out,
        raw_generator,
        label,
        labels: _,
    } = args;
    if n == 0 {
        anyhow::bail!("--n 0: no images to write; ask for at least one");
    }
    check_image_count(n, memory_limit)?;
    for path in std::iter::once(&out).chain(noise_out.as_ref()) {
        crate::run_dir::check_output(path)?;
    }
    let request = crate::sample::Request {
        n,
        seed,
        mode: generation,
        labels: match label {
            Some(label) => GenerationLabels::Only(label),
            // A grid shows one digit per row whatever its width.
            None if out.to_string_lossy().ends_with(".png") => GenerationLabels::GridRows {
                width: crate::sample::grid_side(n),
            },
            None => GenerationLabels::Balanced,
        },
        raw_generator,
    };
    let generated = crate::sample::generate_from_run(&run, checkpoint.as_deref(), request)?;
    let written = crate::sample::write_images(&out, &generated.pixels)?;
    println!("{}", out.display());
    if written < n {
        let side = crate::sample::MAX_GRID_SIDE;
        eprintln!(
            "note: {} shows the first {written} of the {n} images: a PNG grid holds at most \
             {side} x {side}; for all {n}, write an IDX3 file (--out NAME.gz or NAME.idx), or \
             ask for --n {written} or fewer",
            out.display()
        );
    }
    if let Some(path) = noise_out {
        crate::export::write_noise(&path, &generated)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Write a run's generator (or both networks) as plain safetensors for other tools.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The run directory.
    pub run: PathBuf,
    /// The file to write (default: `<RUN>/generator.safetensors`, or
    /// `<RUN>/networks.safetensors` with `--both`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Checkpoint to export (default: the run's newest).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Export the discriminator too.
    #[arg(long)]
    pub both: bool,
    /// Export the generator itself, not its moving average (for runs that keep one).
    #[arg(long)]
    pub raw_generator: bool,
}

/// `gan-run export`: a run's weights alone, with their architecture, for other tools.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs {
        run,
        out,
        checkpoint,
        both,
        raw_generator,
    } = args;
    use crate::export::Networks;
    let (networks, default_name) = match both {
        true => (Networks::Both, crate::run_dir::EXPORT_NETWORKS_FILE),
        false => (Networks::Generator, crate::run_dir::EXPORT_GENERATOR_FILE),
    };
    let out = out.unwrap_or_else(|| run.join(default_name));
    crate::run_dir::check_output(&out)?;
    let (config, mut state) = crate::sample::load_run(&run, checkpoint.as_deref())?;
    let generator = match (state.ema.as_mut(), raw_generator) {
        (Some(ema), false) => ema,
        _ => &mut state.generator,
    };
    crate::export::write_export(
        &config,
        generator,
        &mut state.discriminator,
        state.epoch,
        networks,
        &out,
    )?;
    println!("{}", out.display());
    Ok(())
}

/// Refuses an `--n` whose images would not fit in memory.
fn check_image_count(n: usize, limit_gb: Option<f64>) -> anyhow::Result<()> {
    let bytes = crate::config::memory::generated_images(n);
    check_bytes(bytes, limit_gb, || {
        format!(
            "--n {n}: the images need about {}",
            crate::config::memory::gigabytes(bytes)
        )
    })
}

/// Score generated images: classifier FID, classifier score, mode coverage, Parzen
/// log-likelihood (Goodfellow et al. 2014), memorisation, improved precision and recall
/// (Kynkäänniemi et al. 2019) and KID (Bińkowski et al. 2018), beside the reference rows.
/// Writes eval.json into the run (eval-<mode>.json for a --generation other than the
/// run's own; -raw with --raw-generator, -test-labels with --labels test).
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The run directory (its newest checkpoint generates the samples).
    pub run: Option<PathBuf>,
    /// Score the images of this IDX3 file (e.g. from `gan-run sample` or another tool)
    /// instead of a run's.
    #[arg(long, conflicts_with = "run")]
    pub samples: Option<PathBuf>,
    /// Checkpoint to use (default: the run's newest).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Samples to generate.
    #[arg(long, default_value_t = 10_000)]
    pub n: usize,
    /// How the run's generator draws them (default: the run's `generation.mode`).
    #[arg(long, value_enum, conflicts_with = "samples")]
    pub generation: Option<GenerationMode>,
    /// Score the generator itself, not its moving average (for runs that keep one); the
    /// scores go to `eval-raw.json`.
    #[arg(long, conflicts_with = "samples")]
    pub raw_generator: bool,
    /// MNIST folder.
    #[arg(long, default_value = "data/mnist")]
    pub data_dir: PathBuf,
    /// Classifier weights (default: the built-in classifier).
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Recompute the reference rows (real training images, uniform noise) and write them as
    /// JSON to this file, e.g. classifier/reference.json.
    #[arg(long, value_name = "FILE")]
    pub write_reference: Option<PathBuf>,
    /// Refuse an `--n` needing more memory than this many GB (default: 80% of this machine's).
    #[arg(long, value_name = "GB")]
    pub memory_limit: Option<f64>,
    /// Which labels a class-conditional run's generator is asked for: `balanced` (every digit
    /// equally often, what the digit shares and grids assume) or `test` (sample i gets the
    /// i-th test label, so the digits come as often as in the test images that FID, precision
    /// and recall compare against); `test` writes `eval-test-labels.json`.
    #[arg(
        long,
        value_enum,
        default_value = "balanced",
        conflicts_with_all = ["samples", "write_reference"]
    )]
    pub labels: LabelSource,
}

/// Warns when a run trained on some of the 2,000 validation images that scoring uses.
fn warn_of_validation_overlap(run: &std::path::Path, config: &crate::config::Experiment) {
    if config.data.validation_size < 2000 {
        eprintln!(
            "warning: {} trained with data.validation_size = {}: some of the 2,000 validation \
             images the Parzen width and the memorisation reference use were training images",
            run.display(),
            config.data.validation_size
        );
    }
}

/// A conditional run's label accuracy and per-label FID, or a latent code's digits, where
/// they were measured.
fn print_label_accuracy(scores: &crate::eval::Scores) {
    if let Some(c) = &scores.code_digits {
        let each: Vec<String> = (c.digit.iter().zip(&c.share).enumerate())
            .map(|(code, (digit, share))| format!("{code}: {digit} ({:.0}%)", 100.0 * share))
            .collect();
        let unclaimed: Vec<String> = c.unclaimed().iter().map(|d| d.to_string()).collect();
        println!(
            "latent code -> the digit it draws most (its share): {}; purity {:.1}%{}",
            each.join(", "),
            100.0 * c.purity,
            match unclaimed.is_empty() {
                true => String::new(),
                false => format!("; no code draws mostly {}", unclaimed.join(", ")),
            }
        );
    }
    if let Some(accuracy) = scores.label_accuracy {
        println!(
            "label accuracy: {:.2}% of the samples are the digit G was asked for",
            100.0 * accuracy
        );
    }
    if let (Some(fids), Some(mean)) = (&scores.label_fid, scores.mean_label_fid()) {
        let each: Vec<String> = fids
            .iter()
            .enumerate()
            .map(|(digit, fid)| format!("{digit}: {fid:.2}"))
            .collect();
        println!(
            "per-label FID (samples asked for k against test digits k): mean {mean:.2}; {}",
            each.join(", ")
        );
    }
}

/// What `eval` drew from a run.
struct RunSamples {
    pixels: Vec<f32>,
    epoch: usize,
    /// How G drew them, whether that is the run's own mode, and whether by the raw G of a run
    /// that keeps a moving average.
    drawn: (GenerationMode, bool, bool),
    /// The labels G was asked for, for a class-conditional run.
    labels: Option<Vec<u8>>,
    /// Where those labels are a latent code's, not digits: how many codes.
    codes: Option<usize>,
}

/// Refuses `--labels test` for a run whose generator takes no digit label (unconditional, or
/// a latent code), before anything is loaded or drawn.
fn refuse_test_labels_unless_digits(run: &std::path::Path) -> anyhow::Result<()> {
    let dir = crate::run_dir::RunDir {
        path: run.to_path_buf(),
    };
    match &dir.read_config()?.conditioning {
        None => anyhow::bail!(
            "{}: --labels test asks a class-conditional generator for the test set's labels, \
             but this run's config has no [conditioning]; drop --labels",
            run.display()
        ),
        Some(c) if !c.labels_are_digits() => anyhow::bail!(
            "{}: --labels test asks for the test set's digits, but this run's labels are \
             G's latent code (conditioning.discriminator = \"latent_code\"), not digits; \
             drop --labels",
            run.display()
        ),
        Some(_) => Ok(()),
    }
}

/// Draws `request.n` images from a run for `eval`.
fn draw_for_eval(
    run: &std::path::Path,
    checkpoint: Option<&std::path::Path>,
    request: crate::sample::Request,
) -> anyhow::Result<RunSamples> {
    let n = request.n;
    let crate::sample::Generated {
        config,
        pixels,
        epoch,
        mode,
        moving_average,
        inputs,
        ..
    } = crate::sample::generate_from_run(run, checkpoint, request)?;
    warn_of_validation_overlap(run, &config);
    let own_mode = mode == config.generation.mode;
    // A run without a moving average has one generator: its scores are not "raw".
    let raw = config.model.generator.ema.is_some() && !moving_average;
    Ok(RunSamples {
        pixels,
        epoch,
        drawn: (mode, own_mode, raw),
        labels: config
            .conditioning
            .is_some()
            .then(|| inputs.labels[..n].to_vec()),
        // A latent code's labels are not digits: read against digits only as its own measure.
        codes: config
            .conditioning
            .as_ref()
            .filter(|c| !c.labels_are_digits())
            .map(|c| c.classes),
    })
}

/// `gan-run eval`: score a run's samples, or an image file, with every measure.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let EvalArgs {
        run,
        samples,
        checkpoint,
        n,
        generation,
        data_dir,
        classifier,
        write_reference,
        memory_limit,
        raw_generator,
        labels: label_choice,
    } = args;
    use crate::eval::{render_table, Evaluator, MIN_SCORED_IMAGES};
    if samples.is_none() {
        if n < MIN_SCORED_IMAGES {
            anyhow::bail!(
                "--n {n}: scoring needs at least {MIN_SCORED_IMAGES} samples (FID's covariance \
                 and precision/recall's neighbours are meaningless on fewer); the default, \
                 10000, is what the reference rows use"
            );
        }
        check_image_count(n, memory_limit)?;
    }
    if let Some(out) = &write_reference {
        crate::run_dir::check_output(out)?;
    }
    if let (Some(run), LabelSource::Test) = (&run, label_choice) {
        refuse_test_labels_unless_digits(run)?;
    }
    let started = std::time::Instant::now();
    let classifier = match &classifier {
        Some(path) => crate::classifier::Classifier::load(path)?,
        None => crate::classifier::Classifier::builtin()?,
    };
    let mut evaluator = Evaluator::new(&data_dir, classifier)?;
    if let Some(out) = write_reference {
        let reference = evaluator.compute_reference();
        reference.write(&out)?;
        print!(
            "{}",
            render_table(&[
                ("real training images", &reference.real_train),
                ("uniform noise", &reference.uniform_noise),
            ])
        );
        println!("{}", out.display());
        return Ok(());
    }
    let test_labels = label_choice == LabelSource::Test;
    let (pixels, epoch, generated, labels, codes) = match (&run, &samples) {
        (Some(run), _) => {
            let request = crate::sample::Request {
                n,
                seed: 0,
                mode: generation,
                labels: match label_choice {
                    LabelSource::Balanced => GenerationLabels::Balanced,
                    LabelSource::Test => GenerationLabels::Listed(evaluator.test_labels().into()),
                },
                raw_generator,
            };
            let s = draw_for_eval(run, checkpoint.as_deref(), request)?;
            (s.pixels, Some(s.epoch), Some(s.drawn), s.labels, s.codes)
        }
        (None, Some(file)) => (crate::data::read_idx_images(file)?, None, None, None, None),
        (None, None) => anyhow::bail!("name a run directory or pass --samples FILE"),
    };
    let images = pixels.len() / crate::config::IMAGE_PIXELS;
    if images < MIN_SCORED_IMAGES {
        anyhow::bail!(
            "{}: {images} images; scoring needs at least {MIN_SCORED_IMAGES}",
            samples
                .as_deref()
                .unwrap_or(std::path::Path::new("samples"))
                .display()
        );
    }
    let asked = labels.as_deref().map(|l| match codes {
        Some(classes) => crate::eval::Asked::Codes(l, classes),
        None => crate::eval::Asked::Digits(l),
    });
    let scores = evaluator.score_asked(&pixels, asked);
    let reference = evaluator.reference();
    let label = match (epoch, generated) {
        (Some(e), Some((mode, _, raw))) => format!(
            "samples (epoch {e}, {}{}{})",
            mode.name(),
            if raw { ", raw generator" } else { "" },
            if test_labels { ", test labels" } else { "" }
        ),
        _ => "samples".to_string(),
    };
    print!(
        "{}",
        render_table(&[
            (&label, &scores),
            ("real training images", &reference.real_train),
            ("uniform noise", &reference.uniform_noise),
        ])
    );
    println!("{}", crate::eval::TABLE_LEGEND);
    print_label_accuracy(&scores);
    let source = crate::eval::EvalSource {
        epoch,
        generation: generated.map(|(mode, _, _)| mode),
        raw_generator: generated.is_some_and(|(_, _, raw)| raw),
        labels: labels.is_some().then_some(label_choice),
        checkpoint,
        samples_file: samples,
    };
    let seconds = started.elapsed().as_secs_f64();
    let record = crate::eval::EvalRecord::new(&evaluator, source, scores, reference, seconds);
    if let (Some(run), Some((_, own_mode, _))) = (&run, generated) {
        println!("{}", record.write_into_run(run, own_mode)?.display());
    }
    Ok(())
}
