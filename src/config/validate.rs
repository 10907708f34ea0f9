//! Value checks on a deserialized config, each naming the key it concerns, and the filling in of
//! defaults that depend on other keys. Network shapes are checked by the model builder's planner.

use super::conditioning::DiscriminatorLabel;
use super::*;
use crate::model::layers::BatchNormSpec;

/// A failed check: the key path and the message.
pub(super) type Problem = (String, String);

/// Fills in defaults that depend on other values, so that the saved config is complete.
pub(super) fn fill_in(config: &mut ExperimentConfig) {
    if config.data.train_size.is_none() {
        config.data.train_size =
            Some(MNIST_TRAIN_IMAGES.saturating_sub(config.data.validation_size));
    }
}

/// Refuses settings that gan-run has retired but still reads in old runs' saved configs (so
/// that those runs can still be listed, compared, reported and sampled).
pub(super) fn refuse_retired(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    check_ema_start(c)?;
    for (net, spec) in [
        ("generator", &c.model.generator),
        ("discriminator", &c.model.discriminator),
    ] {
        for (i, layer) in spec.layers.iter().enumerate() {
            if let LayerSpec::BatchNorm(BatchNormSpec {
                mode: BatchNormMode::BatchStatsOnly,
                ..
            }) = layer
            {
                return Err((
                    format!("model.{net}.layers[{i}].mode"),
                    "batch-norm mode \"batch_stats_only\" is retired: it bypassed batch-norm \
                     outside the network's own update, which the tutorial never did. Use \
                     mode = \"batch\" (batch statistics in every step, the tutorial's graph) or \
                     \"running\"; runs made with it can still be compared, reported and sampled, \
                     not resumed"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

/// A failed check of `key`.
fn p(key: &str, message: String) -> std::result::Result<(), Problem> {
    Err((key.to_string(), message))
}

/// Checks every value a run depends on; the first problem found is returned.
pub(super) fn validate(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    if let Err(message) = check_run_name(&c.name) {
        return p("name", message);
    }
    if c.device == DeviceKind::Cuda {
        return p(
            "device",
            "this build of gan-run runs on the CPU only; set device = \"cpu\"".into(),
        );
    }

    check_data(c)?;
    check_noise_and_init(c)?;
    check_conditioning(c)?;
    check_networks(c)?;
    check_ema(c)?;
    check_label_smoothing(c)?;
    check_instance_noise(&c.instance_noise)?;
    check_gradient_penalty(c)?;
    check_mode_seeking(c)?;
    check_augment(c)?;
    check_top_k(c)?;
    check_generation(&c.generation)?;
    check_optimizers(&c.optimizer, c.training.epochs)?;
    check_schedule(c)
}

/// The training images a config trains on.
fn train_size(c: &ExperimentConfig) -> usize {
    let available = MNIST_TRAIN_IMAGES.saturating_sub(c.data.validation_size);
    c.data.train_size.unwrap_or(available)
}

/// The data split and what scoring needs of it.
fn check_data(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    if c.data.validation_size >= MNIST_TRAIN_IMAGES {
        return p(
            "data.validation_size",
            format!("must be below the {MNIST_TRAIN_IMAGES} MNIST training images"),
        );
    }
    let available = MNIST_TRAIN_IMAGES - c.data.validation_size;
    let train_size = train_size(c);
    if train_size == 0 || train_size > available {
        return p(
            "data.train_size",
            format!(
                "must be between 1 and {available} (the training images left after validation), got {train_size}"
            ),
        );
    }

    // Evaluation.
    if c.evaluation.every > 0 && c.data.validation_size < 2000 {
        return p(
            "data.validation_size",
            "scoring samples (evaluation.every > 0) needs at least 2000 validation images: \
             the Parzen width and the memorisation reference use 2,000 images training never saw"
                .into(),
        );
    }
    if c.evaluation.every > 0 && c.evaluation.samples < 2 {
        return p(
            "evaluation.samples",
            "must be at least 2 (a covariance needs two images)".into(),
        );
    }
    Ok(())
}

/// The largest noise bound, mean or spread a config may give.
const MAX_NOISE_MAGNITUDE: f64 = 1e6;

/// The largest learning rate a config may give: the largest f32, in which Adam steps. Far
/// smaller rates already diverge; the tests rely on 1e30 doing so at once.
const MAX_LR: f64 = f32::MAX as f64;

/// The noise and the initial values' distributions.
fn check_noise_and_init(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    if c.noise.dim == 0 {
        return p("noise.dim", "must be at least 1".into());
    }
    // The sampler draws in f32: bounds must stay apart and finite there, which a range within
    // +-1e6 guarantees (noise that large only saturates G's first layer anyway).
    let sane = |x: f64| x.is_finite() && x.abs() <= MAX_NOISE_MAGNITUDE;
    match c.noise.distribution {
        NoiseDistribution::Uniform { low, high }
            if !(sane(low) && sane(high) && (low as f32) < (high as f32)) =>
        {
            return p(
                "noise.distribution",
                format!(
                    "uniform needs low < high, both within +-{MAX_NOISE_MAGNITUDE:e} (and apart \
                     in f32), got low = {low:?}, high = {high:?}"
                ),
            )
        }
        NoiseDistribution::Normal { mean, std } if !(std > 0.0 && sane(std) && sane(mean)) => {
            return p(
                "noise.distribution",
                format!(
                    "normal needs std > 0, mean and std within +-{MAX_NOISE_MAGNITUDE:e}, got \
                     mean = {mean:?}, std = {std:?}"
                ),
            )
        }
        _ => {}
    }
    for (key, init) in [
        ("init.weights", &c.init.weights),
        ("init.biases", &c.init.biases),
    ] {
        if let InitKind::TruncatedNormal { std } | InitKind::Normal { std } = init {
            if !(*std >= 0.0 && *std <= 1e3) {
                return p(
                    &format!("{key}.std"),
                    format!("must be between 0 and 1000, got {std}"),
                );
            }
        }
    }
    Ok(())
}

/// For a shape error in a class-conditional network: what its input holds beside the noise
/// or the image, so that the numbers in the message add up.
fn label_inputs(c: &ExperimentConfig, net: &str, input: usize) -> String {
    let Some(k) = &c.conditioning else {
        return String::new();
    };
    let (what, base, how) = match net {
        "generator" => ("the noise", c.noise.dim, "one_hot"), // G's only way
        _ => ("the image", IMAGE_PIXELS, k.discriminator.name()),
    };
    if input == base {
        return String::new();
    }
    format!(
        " (the {net} reads {input} numbers: {what}'s {base}, then {} for the label, as \
         conditioning.{net} = \"{how}\" gives it)",
        input - base
    )
}

/// Each layer's values, then the widths along each network, then what the loss needs of D.
fn check_networks(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let (g_input, d_input) = c.input_widths();
    let d_output = c
        .conditioning
        .as_ref()
        .map_or(1, |k| k.discriminator_outputs());
    for (net, spec, input, output) in [
        ("generator", &c.model.generator, g_input, IMAGE_PIXELS),
        ("discriminator", &c.model.discriminator, d_input, d_output),
    ] {
        let base = format!("model.{net}.layers");
        for (i, layer) in spec.layers.iter().enumerate() {
            let key = |k: &str| format!("{base}[{i}].{k}");
            if let Err((k, message)) = layer.check() {
                return p(&key(k), message);
            }
        }
        match plan_shapes(&spec.layers, FeatureShape::Flat(input)) {
            Err((i, message)) => {
                return p(
                    &format!("{base}[{i}]"),
                    message + &label_inputs(c, net, input),
                )
            }
            Ok(shapes) => {
                let got = shapes.last().expect("plan includes the input shape").len();
                if got != output {
                    let what = match (net, output) {
                        ("generator", _) => "an MNIST image (784 pixels)".to_string(),
                        (_, 1) => "one logit".to_string(),
                        (_, n) => format!(
                            "{n} numbers (a score, then one per class, as conditioning.\
                             discriminator = \"{}\" reads them)",
                            c.conditioning
                                .as_ref()
                                .map_or("", |k| k.discriminator.name())
                        ),
                    };
                    return p(
                        &base,
                        format!("the {net} must output {what}, but its layers end at width {got}"),
                    );
                }
            }
        }
    }
    let head = c
        .conditioning
        .as_ref()
        .filter(|k| k.discriminator_outputs() > 1);
    if let (Some(k), Some(LayerSpec::Sigmoid(_))) = (head, c.model.discriminator.layers.last()) {
        return p(
            &format!(
                "model.discriminator.layers[{}]",
                c.model.discriminator.layers.len() - 1
            ),
            format!(
                "conditioning.discriminator = \"{}\" reads D's raw outputs (a score and class \
                 outputs): remove this sigmoid",
                k.discriminator.name()
            ),
        );
    }
    if c.loss.takes_raw_scores()
        && matches!(
            c.model.discriminator.layers.last(),
            Some(LayerSpec::Sigmoid(_))
        )
    {
        return p(
            &format!(
                "model.discriminator.layers[{}]",
                c.model.discriminator.layers.len() - 1
            ),
            format!(
                "the discriminator must end in a raw score: loss \"{}\" takes D's output before \
                 any sigmoid. Remove this layer, or set loss = \"tutorial_double_sigmoid\" to \
                 reproduce the tutorial's bug",
                c.loss.name()
            ),
        );
    }
    Ok(())
}

/// One-sided label smoothing: below one half, and only for a loss with targets.
fn check_label_smoothing(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let s = c.label_smoothing;
    if !(0.0..0.5).contains(&s) {
        return p(
            "label_smoothing",
            format!("must be in [0, 0.5) (D's target on real images is 1 minus it), got {s}"),
        );
    }
    if s > 0.0 && !c.loss.has_targets() {
        return p(
            "label_smoothing",
            format!(
                "loss \"{}\" has no targets to smooth: set label_smoothing = 0, or use a loss \
                 with targets (bce_logits, minimax, least_squares, tutorial_double_sigmoid)",
                c.loss.name()
            ),
        );
    }
    Ok(())
}

/// A regulariser's weight at `key`: positive and at most 1e6 (`off` says how to turn it off).
fn check_weight(key: &str, weight: f64, off: &str) -> std::result::Result<(), Problem> {
    match weight > 0.0 && weight <= 1e6 {
        true => Ok(()),
        false => p(
            key,
            format!("must be positive and at most 1e6{off}, got {weight}"),
        ),
    }
}

/// Top-k: a factor and a floor that are shares.
fn check_top_k(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let Some(top_k) = &c.top_k else {
        return Ok(());
    };
    for (key, share) in [
        ("top_k.decay", top_k.decay),
        ("top_k.min_fraction", top_k.min_fraction),
    ] {
        if !(share > 0.0 && share <= 1.0) {
            return p(
                key,
                format!(
                    "must be a share of G's batch, above 0 and at most 1 (the paper: decay \
                     0.99, min_fraction 0.5 to 0.75), got {share}"
                ),
            );
        }
    }
    Ok(())
}

/// Mode seeking: a positive weight and a batch of pairs.
fn check_mode_seeking(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let Some(ms) = &c.mode_seeking else {
        return Ok(());
    };
    check_weight("mode_seeking.weight", ms.weight, " (0 turns the term off)")?;
    // G's batch is taken as pairs, row i with row i + batch / 2.
    if !c.training.batch_size.is_multiple_of(2) {
        return p(
            "training.batch_size",
            format!(
                "mode seeking pairs G's samples, so the batch must be even, got {}: make it \
                 even or remove [mode_seeking]",
                c.training.batch_size
            ),
        );
    }
    Ok(())
}

/// Differentiable augmentation: shares of the image's side within bounds, each 0 or at least
/// one pixel (a share that rounds to none would change the fingerprint and nothing else).
fn check_augment(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let Some(a) = &c.augment else {
        return Ok(());
    };
    for (key, share, most, hint) in [
        (
            "augment.translation",
            a.translation,
            0.5,
            "DiffAugment's is 0.125",
        ),
        ("augment.cutout", a.cutout, 1.0, "DiffAugment's is 0.5"),
    ] {
        if !(0.0..=most).contains(&share) {
            return p(
                key,
                format!(
                    "must be a share of the image's side from 0 to {most} ({hint}; 0 turns it \
                     off), got {share}"
                ),
            );
        }
        if share > 0.0 && crate::regularizer::augment_pixels(share) == 0 {
            return p(
                key,
                format!(
                    "{share} of 28 pixels rounds to none: use at least 0.018 (one pixel), or 0 \
                     to turn it off"
                ),
            );
        }
    }
    Ok(())
}

/// A gradient penalty: a positive weight, a step cadence, and a D whose layers it can
/// differentiate through twice.
fn check_gradient_penalty(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let Some(gp) = &c.gradient_penalty else {
        return Ok(());
    };
    check_weight("gradient_penalty.weight", gp.weight, "")?;
    if gp.every == 0 {
        return p("gradient_penalty.every", "must be at least 1".into());
    }
    // D's input: the image, and the label where D reads it (the penalty looks at the image's
    // part of the input gradient alone).
    let layers = &c.model.discriminator.layers;
    if let Some(i) = crate::model::first_layer_refusing_penalty(layers, c.input_widths().1) {
        return p(
            &format!("model.discriminator.layers[{i}]"),
            "a gradient penalty cannot be differentiated through this layer kind (it has no \
             penalty pass): remove [gradient_penalty] or the layer"
                .into(),
        );
    }
    Ok(())
}

/// Class conditioning: MNIST's ten classes (checked before the networks, whose input widths
/// depend on it).
fn check_conditioning(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let Some(k) = &c.conditioning else {
        return Ok(());
    };
    if k.classes != 10 {
        return p(
            "conditioning.classes",
            format!("MNIST has 10 classes (its digits), got {}", k.classes),
        );
    }
    let auxiliary = matches!(
        k.discriminator,
        DiscriminatorLabel::AuxiliaryClassifier | DiscriminatorLabel::LatentCode
    );
    if !(k.classifier_weight > 0.0 && k.classifier_weight <= 1e3) {
        return p(
            "conditioning.classifier_weight",
            format!(
                "must be positive and at most 1000, got {}",
                k.classifier_weight
            ),
        );
    }
    if !auxiliary && k.classifier_weight != 1.0 {
        return p(
            "conditioning.classifier_weight",
            format!(
                "only an auxiliary classifier has a weight, and D reads the label as \
                 \"{}\": set conditioning.discriminator = \"auxiliary_classifier\" (or \
                 \"latent_code\"), or remove classifier_weight",
                k.discriminator.name()
            ),
        );
    }
    Ok(())
}

/// Instance noise: a finite, non-negative standard deviation, annealed over at least one epoch.
fn check_instance_noise(n: &InstanceNoiseConfig) -> std::result::Result<(), Problem> {
    if !(n.std >= 0.0 && n.std <= 10.0) {
        return p(
            "instance_noise.std",
            format!(
                "must be between 0 and 10 (pixels are in [0, 1]), got {}",
                n.std
            ),
        );
    }
    if n.std > 0.0 && n.epochs == 0 {
        return p(
            "instance_noise.epochs",
            "must be at least 1: the noise falls to zero over this many epochs".into(),
        );
    }
    Ok(())
}

/// The generator's moving average: a decay below 1, starting within the run.
fn check_ema(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    if c.model.discriminator.ema.is_some() {
        return p(
            "model.discriminator.ema",
            "a moving average is kept of the generator only: move this table to \
             [model.generator.ema]"
                .into(),
        );
    }
    if let Some(ema) = &c.model.generator.ema {
        if !(0.0..1.0).contains(&ema.decay) {
            return p(
                "model.generator.ema.decay",
                format!("must be in [0, 1) (e.g. 0.999), got {}", ema.decay),
            );
        }
        if ema.start_epoch == 0 {
            return p(
                "model.generator.ema.start_epoch",
                "epochs count from 1".into(),
            );
        }
    }
    Ok(())
}

/// A moving average that starts after the last epoch is silently a copy of G: refused for
/// new configs and resumes (runs made before this check still read).
fn check_ema_start(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let (Some(ema), epochs) = (&c.model.generator.ema, c.training.epochs) else {
        return Ok(());
    };
    if ema.start_epoch > epochs {
        return p(
            "model.generator.ema.start_epoch",
            format!(
                "must name an epoch of the run (1 to training.epochs = {epochs}), got {}: an \
                 average that never starts is a copy of G; drop [model.generator.ema] for none",
                ema.start_epoch
            ),
        );
    }
    Ok(())
}

/// The further grid modes, each drawn once.
fn check_generation(g: &GenerationConfig) -> std::result::Result<(), Problem> {
    for (i, mode) in g.extra_grids.iter().enumerate() {
        if *mode == g.mode || g.extra_grids[..i].contains(mode) {
            return p(
                &format!("generation.extra_grids[{i}]"),
                format!(
                    "\"{}\" is already drawn (generation.mode or an earlier entry): list each \
                     further mode once",
                    mode.name()
                ),
            );
        }
    }
    Ok(())
}

/// Both Adams' settings.
fn check_optimizers(o: &OptimizersConfig, epochs: usize) -> std::result::Result<(), Problem> {
    for (net, a) in [
        ("generator", &o.generator),
        ("discriminator", &o.discriminator),
    ] {
        let key = |k: &str| format!("optimizer.{net}.{k}");
        if !(a.lr > 0.0 && a.lr <= MAX_LR) {
            return p(
                &key("lr"),
                format!(
                    "must be above 0 and finite as an f32 (at most {MAX_LR:.1e}); GANs train \
                     with about 1e-4 to 1e-3, got {:e}",
                    a.lr
                ),
            );
        }
        if !(0.0..1.0).contains(&a.beta1) {
            return p(&key("beta1"), format!("must be in [0, 1), got {}", a.beta1));
        }
        if !(0.0..1.0).contains(&a.beta2) {
            return p(&key("beta2"), format!("must be in [0, 1), got {}", a.beta2));
        }
        if !(1e-30..=1.0).contains(&a.eps) {
            return p(
                &key("eps"),
                format!("must be between 1e-30 and 1, got {}", a.eps),
            );
        }
        let decay = a.lr_decay;
        if decay.epochs > 0 && !(1..=epochs).contains(&decay.start_epoch) {
            return p(
                &key("lr_decay.start_epoch"),
                format!(
                    "must name an epoch of the run (1 to training.epochs = {epochs}) for the \
                     rate to fall over lr_decay.epochs = {}, got {}; set lr_decay.epochs = 0 \
                     to keep the rate constant",
                    decay.epochs, decay.start_epoch
                ),
            );
        }
    }
    Ok(())
}

/// The schedule and the outputs' cadence.
fn check_schedule(c: &ExperimentConfig) -> std::result::Result<(), Problem> {
    let train_size = train_size(c);
    let t = &c.training;
    if t.epochs == 0 {
        return p("training.epochs", "must be at least 1".into());
    }
    if t.batch_size == 0 || t.batch_size > train_size {
        return p(
            "training.batch_size",
            format!(
                "must be between 1 and the {train_size} training images, got {}",
                t.batch_size
            ),
        );
    }
    if t.d_steps_per_g_step == 0 {
        return p("training.d_steps_per_g_step", "must be at least 1".into());
    }
    if train_size / t.batch_size < t.d_steps_per_g_step {
        return p(
            "training.d_steps_per_g_step",
            format!(
                "an epoch has only {} batches, too few for {} discriminator steps per generator step",
                train_size / t.batch_size,
                t.d_steps_per_g_step
            ),
        );
    }
    if c.output.checkpoint_every == 0 {
        return p("output.checkpoint_every", "must be at least 1".into());
    }
    if c.output.keep_checkpoints == 0 {
        return p(
            "output.keep_checkpoints",
            "must be at least 1 (resuming needs one)".into(),
        );
    }
    if c.output.sample_grid == 0 || c.output.sample_grid > 32 {
        return p("output.sample_grid", "must be between 1 and 32".into());
    }
    Ok(())
}
