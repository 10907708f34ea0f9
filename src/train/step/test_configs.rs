//! The configs the step tests run over: together they hold every layer kind, loss,
//! regulariser, conditioning and the moving average (its own file so that the tests read as
//! tests).

use super::*;

/// Convolutional layer lists for the step tests: G, D with running batch-norm, D bare, D
/// reading labels as planes through spectrally normalised convolutions, and G upsampling.
pub(super) fn conv_layers() -> [String; 5] {
    // Convolutions: G projects and upsamples twice through batch-norm of both modes; D
    // downsamples twice, with running batch-norm (also under a gradient penalty), or bare. (A bias
    // before batch-norm gets a zero gradient, which rounding makes noise that Adam at eps 1
    // turns into steps: as in DCGAN, those convolutions have none.)
    let conv_g = r#"model.generator.layers=[{type = "linear", out = 196},
        {type = "reshape", shape = [4, 7, 7]}, {type = "batch_norm", mode = "running"},
        {type = "relu"}, {type = "conv_transpose2d", out = 2, kernel = 4, stride = 2, padding = 1},
        {type = "batch_norm", mode = "batch"}, {type = "leaky_relu", slope = 0.2},
        {type = "conv_transpose2d", out = 1, kernel = 4, stride = 2, padding = 1, bias = false},
        {type = "sigmoid"}]"#;
    let conv_d = |batch_norm: &str| {
        let bias = batch_norm.is_empty();
        format!(
            r#"model.discriminator.layers=[{{type = "reshape", shape = [1, 28, 28]}},
            {{type = "conv2d", out = 3, kernel = 4, stride = 2, padding = 1}},
            {{type = "leaky_relu", slope = 0.2}},
            {{type = "conv2d", out = 4, kernel = 3, stride = 2, padding = 1, bias = {bias}}},
            {batch_norm} {{type = "leaky_relu", slope = 0.2}},
            {{type = "flatten"}}, {{type = "linear", out = 1}}]"#
        )
    };
    // G upsampling by `upsample` and a stride-1 convolution in place of its first transposed
    // convolution (spectrally normalised), then layer-norm over channels in place of its
    // batch-norm.
    let upsample_g = conv_g
        .replace(
            r#"{type = "conv_transpose2d", out = 2, kernel = 4, stride = 2, padding = 1}"#,
            r#"{type = "upsample"}, {type = "conv2d", out = 3, kernel = 3, padding = 1}"#,
        )
        .replace(
            r#"{type = "batch_norm", mode = "batch"}"#,
            r#"{type = "layer_norm", over_channels = true}"#,
        )
        .replace(
            "kernel = 3, padding = 1}",
            "kernel = 3, padding = 1, spectral_norm = true}",
        );
    assert!(["upsample", "over_channels", "spectral_norm"]
        .iter()
        .all(|k| upsample_g.contains(k)));
    [
        conv_g.to_string(),
        conv_d(r#"{type = "batch_norm", mode = "running"},"#),
        conv_d(""),
        // Reading the label as ten planes after the image (class conditioning), both
        // convolutions spectrally normalised.
        conv_d("")
            .replace("[1, 28, 28]", "[11, 28, 28]")
            .replace("padding = 1}", "padding = 1, spectral_norm = true}")
            .replace("bias = true}", "bias = true, spectral_norm = true}"),
        upsample_g,
    ]
}

/// The configs the plain steps are tested on: the paper's, and small ones covering every
/// layer kind and each way D's real and generated batches can run.
/// A shipped config with `--set` overrides, so that it is validated as a user's would be;
/// Adam's lr and eps are 1.
pub(super) fn load(file: &str, sets: &[&str]) -> Experiment {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let adam = [
        "optimizer.generator.lr=1.0",
        "optimizer.generator.eps=1.0",
        "optimizer.discriminator.lr=1.0",
        "optimizer.discriminator.eps=1.0",
    ];
    let overrides: Vec<crate::config::Override> = adam
        .iter()
        .chain(sets)
        .map(|o| o.parse().unwrap())
        .collect();
    crate::config::load(&root.join("configs").join(file), &overrides).unwrap()
}

/// An MLP D with every layer kind, batch-norm in `batch_norm_mode`, ending in `outputs`.
pub(super) fn every_kind_d(batch_norm_mode: &str, outputs: usize) -> String {
    format!(
        r#"model.discriminator.layers=[{{type = "linear", out = 32}},
        {{type = "batch_norm", mode = "{batch_norm_mode}"}}, {{type = "tanh"}},
        {{type = "dropout", rate = 0.3}}, {{type = "linear", out = 16}}, {{type = "relu"}},
        {{type = "layer_norm", eps = 1e-3}}, {{type = "identity"}},
        {{type = "linear", out = {outputs}}}]"#
    )
}

/// Class-conditional configs: a label one-hot into both MLPs, label planes into a
/// convolutional D, the projection discriminator on a convolutional D whose batches combine,
/// the auxiliary classifier on an MLP D whose batches do not (it has batch-norm), and a latent
/// code read by an auxiliary classifier.
pub(super) fn conditional_configs(
    conv_d: &str,
    conv_d_planes: &str,
    upsample_g: &str,
) -> Vec<Experiment> {
    vec![
        load("smoke.toml", &["conditioning={classes = 10}"]),
        load(
            "smoke.toml",
            &[
                upsample_g,
                conv_d_planes,
                "conditioning={discriminator = \"channels\"}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                &conv_d.replace("out = 1}", "out = 11}"),
                "conditioning={discriminator = \"projection\"}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                &every_kind_d("running", 11),
                "loss=\"hinge\"",
                "conditioning={discriminator = \"auxiliary_classifier\", classifier_weight = 0.5}",
            ],
        ),
        // Gradient penalties on a D that reads the label as input, on the image's part of its
        // input gradient: one-hot beside the pixels (R1 on augmented images), planes beside
        // the image (WGAN-GP's interpolates keep the real rows' planes).
        load(
            "smoke.toml",
            &[
                "conditioning={classes = 10}",
                "gradient_penalty={kind = \"r1\", weight = 10.0}",
                "augment={translation = 0.125, cutout = 0.5}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                upsample_g,
                conv_d_planes,
                "conditioning={discriminator = \"channels\"}",
                "gradient_penalty={kind = \"wgan_gp\", weight = 1.0}",
            ],
        ),
        // Gradient penalties through the heads: each image scored with its own label (R1 the
        // real batch's, WGAN-GP's interpolates the real batch's, R2 the generated batch's).
        load(
            "smoke.toml",
            &[
                "model.discriminator.layers[2].out=11",
                "conditioning={discriminator = \"projection\"}",
                "gradient_penalty={kind = \"r1\", weight = 10.0}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                "model.discriminator.layers[2]={type = \"linear\", out = 11, spectral_norm = true}",
                "loss=\"wasserstein\"",
                "conditioning={discriminator = \"projection\"}",
                "gradient_penalty={kind = \"wgan_gp\", weight = 10.0, every = 2}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                "model.discriminator.layers[2].out=11",
                "conditioning={discriminator = \"auxiliary_classifier\"}",
                "gradient_penalty={kind = \"r2\", weight = 1.0}",
            ],
        ),
        // InfoGAN's latent code: the class term on generated images only, spectral norm.
        load(
            "smoke.toml",
            &[
                "model.discriminator.layers[2]={type = \"linear\", out = 11, spectral_norm = true}",
                "conditioning={discriminator = \"latent_code\", classifier_weight = 2.0}",
            ],
        ),
        // Mode seeking in a conditional G with batch statistics (pairs share their labels),
        // under augmentation and instance noise (which the term does not see).
        load(
            "smoke.toml",
            &[
                "model.discriminator.layers[2].out=11",
                "conditioning={discriminator = \"projection\"}",
                "mode_seeking={weight = 1.0}",
                "augment={translation = 0.2, cutout = 0.3}",
                "instance_noise.std=0.1",
            ],
        ),
    ]
}

pub(super) fn step_test_configs() -> Vec<Experiment> {
    // Every layer kind, with batch-norm of both modes in G and running batch-norm in D.
    let every_kind_g = r#"model.generator.layers=[{type = "linear", out = 32},
        {type = "batch_norm", mode = "running"}, {type = "leaky_relu", slope = 0.2},
        {type = "layer_norm"}, {type = "linear", out = 48}, {type = "batch_norm", mode = "batch"},
        {type = "dropout", rate = 0.5}, {type = "linear", out = 784}, {type = "sigmoid"}]"#;
    let every_kind_d = |batch_norm_mode: &str| every_kind_d(batch_norm_mode, 1);
    let layer_norm_g = r#"model.generator.layers=[{type = "linear", out = 32},
        {type = "layer_norm"}, {type = "leaky_relu", slope = 0.2},
        {type = "linear", out = 784}, {type = "sigmoid"}]"#;
    let layer_norm_d = r#"model.discriminator.layers=[{type = "linear", out = 32},
        {type = "leaky_relu", slope = 0.2}, {type = "layer_norm", eps = 1e-3},
        {type = "dropout", rate = 0.3}, {type = "linear", out = 1}]"#;
    let squashing_g = r#"model.generator.layers=[{type = "linear", out = 32},
        {type = "sigmoid"}, {type = "linear", out = 784}, {type = "sigmoid"}]"#;
    let squashing_d = r#"model.discriminator.layers=[{type = "linear", out = 32},
        {type = "tanh"}, {type = "linear", out = 1}]"#;
    // A D that combines its batches with a dropout layer, two that do not (the masks would
    // come in another order), ReLU straight into a linear layer, and slopes of 0 and below.
    let simple_g = r#"model.generator.layers=[{type = "linear", out = 32},
        {type = "leaky_relu", slope = 0.0}, {type = "linear", out = 784}, {type = "sigmoid"}]"#;
    let dropout_d = |second_dropout: &str| {
        format!(
            r#"model.discriminator.layers=[{{type = "linear", out = 32}}, {{type = "relu"}},
            {second_dropout} {{type = "linear", out = 16}},
            {{type = "leaky_relu", slope = -0.1}}, {{type = "dropout", rate = 0.3}},
            {{type = "linear", out = 1}}]"#
        )
    };
    let elu_g = r#"model.generator.layers=[{type = "linear", out = 32},
        {type = "elu"}, {type = "linear", out = 784}, {type = "sigmoid"}]"#;
    let elu_d = r#"model.discriminator.layers=[{type = "linear", out = 32},
        {type = "elu", alpha = 0.5}, {type = "dropout", rate = 0.3}, {type = "linear", out = 1}]"#;
    let spectral_g = r#"model.generator.layers=[{type = "linear", out = 32, spectral_norm = true},
        {type = "leaky_relu", slope = 0.2}, {type = "linear", out = 784}, {type = "sigmoid"}]"#;
    let spectral_d = r#"model.discriminator.layers=[
        {type = "linear", out = 32, spectral_norm = true}, {type = "leaky_relu", slope = 0.2},
        {type = "linear", out = 16, spectral_norm = true}, {type = "elu"},
        {type = "linear", out = 1, spectral_norm = true}]"#;
    let [conv_g, conv_d_bn, conv_d, conv_d_planes, upsample_g] = conv_layers();
    let conv_g = conv_g.as_str();
    let mut configs = vec![
        load("paper.toml", &[]),
        load("smoke.toml", &[conv_g, &conv_d_bn]),
        // Spectral norm on both of G's transposed convolutions (PyTorch's grouping).
        load(
            "smoke.toml",
            &[
                &conv_g
                    .replace("padding = 1}", "padding = 1, spectral_norm = true}")
                    .replace("bias = false}", "bias = false, spectral_norm = true}"),
                &conv_d,
            ],
        ),
        // R1 on the augmented real images, through convolutions.
        load(
            "smoke.toml",
            &[
                &conv_d,
                "gradient_penalty={kind = \"r1\", weight = 10.0}",
                "augment={translation = 0.125, cutout = 0.5}",
            ],
        ),
        load("smoke.toml", &[every_kind_g, &every_kind_d("running")]),
        load(
            "smoke.toml",
            &[simple_g, &dropout_d(r#"{type = "dropout", rate = 0.2},"#)],
        ),
        load("smoke.toml", &[simple_g, &dropout_d("")]),
        // Batch statistics in D outside its own update too: the G step back-propagates
        // through them without updating D.
        load("smoke.toml", &[every_kind_g, &every_kind_d("batch")]),
        // Layer norm in both networks, D's batches combined.
        load("smoke.toml", &[layer_norm_g, layer_norm_d]),
        // Sigmoid and tanh straight into a linear layer (the linear layer keeps their output).
        load("smoke.toml", &[squashing_g, squashing_d]),
        // The hinge loss, with ELU in both networks (into a linear layer and not).
        load("smoke.toml", &["loss=\"hinge\"", elu_g, elu_d]),
        load("paper.toml", &["loss=\"hinge\""]),
        // Spectral norm on every linear layer of D (and one of G's), D's batches combined.
        load("smoke.toml", &[spectral_g, spectral_d]),
        // The other losses on the shipped smoke networks, Wasserstein's with a Lipschitz D.
        load("smoke.toml", &["loss=\"minimax\"", "label_smoothing=0.1"]),
        load(
            "smoke.toml",
            &["loss=\"least_squares\"", "instance_noise.std=0.1"],
        ),
        load("smoke.toml", &["loss=\"wasserstein\"", spectral_d]),
        // Each gradient penalty, R1 every step and the others lazily on the second.
        load(
            "smoke.toml",
            &[
                "gradient_penalty={kind = \"r1\", weight = 10.0}",
                "model.discriminator.layers[0].spectral_norm=true",
            ],
        ),
        load(
            "smoke.toml",
            &["gradient_penalty={kind = \"r2\", weight = 1.0, every = 2}"],
        ),
        load(
            "smoke.toml",
            &[
                "loss=\"wasserstein\"",
                "gradient_penalty={kind = \"wgan_gp\", weight = 10.0}",
            ],
        ),
        // Top-k: G's term over 32 of the batch's 50 rows in epoch 3 (50, 40, 32, 25 in epochs
        // 1-4, so that an epoch off by one on either path fails), with the hinge loss, and in
        // a conditional run through the projection head.
        load(
            "smoke.toml",
            &["top_k={decay = 0.8, min_fraction = 0.3}", "loss=\"hinge\""],
        ),
        load(
            "smoke.toml",
            &[
                "model.discriminator.layers[2].out=11",
                "conditioning={discriminator = \"projection\"}",
                "top_k={decay = 0.8, min_fraction = 0.3}",
            ],
        ),
        // Mode seeking through every layer kind of G.
        load("smoke.toml", &[every_kind_g, "mode_seeking={weight = 2.0}"]),
        // A moving average of a G with running batch-norm (its statistics copied).
        load(
            "smoke.toml",
            &[every_kind_g, "model.generator.ema={decay = 0.9}"],
        ),
    ];
    configs.extend(conditional_configs(&conv_d, &conv_d_planes, &upsample_g));
    let d_layers = [layer_norm_d, squashing_d, elu_d, &conv_d_bn];
    configs.extend(curved_penalty_configs(every_kind_g, d_layers, conv_g));
    configs
}

/// Penalties through the layers whose Jacobian depends on their input: batch-norm on the
/// penalty batch's statistics and on running ones, layer-norm, tanh, ELU, and a
/// convolutional D with batch-norm.
pub(super) fn curved_penalty_configs(
    every_kind_g: &str,
    [layer_norm_d, squashing_d, elu_d, conv_d_bn]: [&str; 4],
    conv_g: &str,
) -> Vec<Experiment> {
    vec![
        load(
            "smoke.toml",
            &[
                every_kind_g,
                &every_kind_d("running", 1),
                "gradient_penalty={kind = \"r1\", weight = 10.0}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                &every_kind_d("batch", 1),
                "gradient_penalty={kind = \"wgan_gp\", weight = 0.1}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                layer_norm_d,
                "gradient_penalty={kind = \"r2\", weight = 1.0}",
            ],
        ),
        load(
            "smoke.toml",
            &[
                squashing_d,
                "gradient_penalty={kind = \"r1\", weight = 10.0}",
            ],
        ),
        load(
            "smoke.toml",
            &[elu_d, "gradient_penalty={kind = \"r1\", weight = 10.0}"],
        ),
        load(
            "smoke.toml",
            &[
                conv_g,
                conv_d_bn,
                "gradient_penalty={kind = \"r1\", weight = 10.0}",
            ],
        ),
    ]
}
