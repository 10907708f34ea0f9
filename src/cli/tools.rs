//! Tools around training: the speed benchmark and the evaluation classifier.

use std::path::PathBuf;

use clap::Args;

use super::*;

/// Time a config's training steps against this machine's matrix-product peak.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The experiment file, then any KEY=VALUE overrides (as `--set KEY=VALUE`).
    #[arg(required = true, value_name = "CONFIG [KEY=VALUE]")]
    pub positional: Vec<String>,
    /// `--set` overrides and the data folder.
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Steps to time.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip the baseline (the same steps on dfdx's tape path).
    #[arg(long)]
    pub no_baseline: bool,
}

/// `gan-run bench`: time a config's training steps against this machine's matrix-product peak.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        positional,
        common,
        steps,
        warmup,
        json,
        no_baseline,
    } = args;
    let resolved = positional::resolve(&positional, &common.set)?;
    let [config] = &resolved.files[..] else {
        anyhow::bail!(
            "bench times one experiment file; it was given {}",
            resolved.files.len()
        );
    };
    let common = ConfigArgs {
        set: resolved.set,
        ..common
    };
    let experiment = common.load(config)?;
    let report = crate::bench::run(&experiment, steps.max(1), warmup, !no_baseline)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Train gan-run's MNIST classifier (the yardstick of the classifier-based measures).
#[derive(Args, Debug, Clone)]
pub struct TrainClassifierArgs {
    /// The classifier file, e.g. configs/classifier.toml.
    pub config: PathBuf,
    /// Where to write the weights (safetensors); an existing file is not replaced without
    /// --force.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing weights file.
    #[arg(long)]
    pub force: bool,
}

/// `gan-run train-classifier`: train the evaluation classifier.
pub fn train_classifier(args: TrainClassifierArgs) -> anyhow::Result<()> {
    let TrainClassifierArgs { config, out, force } = args;
    use crate::classifier;
    if out.exists() && !force {
        anyhow::bail!("{} exists; pass --force to replace it", out.display());
    }
    crate::run_dir::check_output(&out)?;
    let cfg = classifier::ClassifierConfig::load(&config)?;
    let mut trained = classifier::train(&cfg, |e| {
        println!(
            "epoch {:>3}  loss {:.4}  validation accuracy {:.2}%  {:.1} s",
            e.epoch,
            e.loss,
            100.0 * e.validation_accuracy,
            e.seconds
        )
    })?;
    let bytes = trained.to_bytes();
    crate::files::write_atomic(&out, &bytes)?;
    println!(
        "test accuracy {:.2}%\n{}  {}",
        100.0 * trained.test_accuracy,
        crate::checksum::sha256_hex(&bytes),
        out.display()
    );
    Ok(())
}
