//! The plain step against dfdx's tape step, buffer reuse and thread counts, over configs
//! that together hold every layer kind, loss, regulariser and the moving average.

use super::test_configs::*;
use super::*;
use crate::model::Mode;
use crate::train::{d_step, g_step};
use rand::SeedableRng;

fn params(net: &mut Network) -> Vec<Vec<f32>> {
    struct All(Vec<Vec<f32>>);
    impl TensorVisitor for All {
        fn visit<S: Shape>(&mut self, _: &str, t: &mut Tensor<S, f32, Cpu>, _: bool) {
            self.0.push(t.as_vec());
        }
    }
    let mut all = All(Vec::new());
    net.visit(&mut all);
    all.0
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (t, (x, y)) in a.iter().zip(b).enumerate() {
        crate::model::kernels::assert_close(x, y, tol, &format!("{what}: tensor {t}"));
    }
}

/// Two D and G steps of the plain path against the dfdx tape path, from the same state
/// and RNG: the same parameters, running statistics and losses up to rounding. Run on the
/// paper config, on one with every layer kind (batch-norm in D included, so that D's real
/// and fake passes run apart), on two whose D has one or two dropout layers, and on one whose
/// D normalises with batch statistics in every step. Adam's eps and lr are set to 1 so that
/// each update is close to the gradient itself (with the default eps Adam moves every
/// parameter by about lr whatever its gradient, and rounding can flip the sign of a near-zero
/// one).
#[test]
fn plain_steps_match_the_dfdx_tape_steps() {
    let cases = step_test_configs();
    // Relative beyond 1: the unbounded losses grow large under Adam at lr 1.
    let close = |a: f32, b: f32| (a - b).abs() < 1e-4 * (1.0 + a.abs());
    for config in cases {
        let dev = Cpu::seed_from_u64(0);
        let batch = config.training.batch_size;
        let real: crate::model::Matrix = dev.sample_uniform_like(&(batch, IMAGE_PIXELS));
        let labels: Vec<u8> = (0..batch).map(|i| (i * 7 % 10) as u8).collect();
        let mut tape = GanState::new(&config, &dev);
        // Top-k keeps the whole batch in epoch 1: its cases run in epoch 3.
        tape.epoch = if config.top_k.is_some() { 2 } else { 0 };
        let mut fast = tape.clone();
        let mut plain = PlainGan::check_out(&mut fast);
        plain.begin_epoch(&config, tape.epoch + 1);
        let mut times = PhaseTimes::default();
        for it in 0..2 {
            let a = d_step(&mut tape, &config, real.clone(), &labels, &dev, &mut times);
            let b = plain.d_step(&mut fast.rng, &config, real.as_vec(), &labels, &mut times);
            assert!(close(a.loss, b.loss), "step {it}: {a:?} vs {b:?}");
            assert!((a.d_real - b.d_real).abs() < 1e-5 && (a.d_fake - b.d_fake).abs() < 1e-5);
            // A penalty is reported in the steps that compute it, on both paths.
            let due = penalty_due(&config, it);
            assert_eq!(
                (a.penalty.is_some(), b.penalty.is_some()),
                (due.is_some(), due.is_some())
            );
            if let (Some(x), Some(y)) = (a.penalty, b.penalty) {
                assert!(close(x, y) && y > 0.0, "penalty {x} vs {y}");
            }
            let a = g_step(&mut tape, &config, batch, &dev, &mut times);
            let b = plain.g_step(&mut fast.rng, &config, batch, &mut times);
            assert!(close(a.loss, b.loss), "g loss {a:?} vs {b:?}");
            assert_eq!(
                (a.mode_seeking.is_some(), b.mode_seeking.is_some()),
                (config.mode_seeking.is_some(), config.mode_seeking.is_some())
            );
            if let (Some(x), Some(y)) = (a.mode_seeking, b.mode_seeking) {
                assert!(close(x, y) && y > 0.0, "mode seeking {x} vs {y}");
            }
        }
        // The end-of-epoch losses, against the tape path's networks outside their updates.
        let mut probe = ChaCha8Rng::seed_from_u64(7);
        let end = plain.losses(&mut probe.clone(), &config, real.as_vec(), &labels);
        let (d_end, g_end) = (end.d_loss, end.g_loss);
        let (z, fake_labels) = crate::train::generator_input_values(&config, batch, &mut probe);
        let z = dev.tensor_from_vec(z, (batch, config.input_widths().0));
        let fake = tape.generator.forward(z, Mode::Eval).as_vec();
        let c = config.conditioning.as_ref();
        let d_input = |x, labels: &[u8]| {
            let x = crate::config::conditioning::discriminator_input(c, x, labels);
            dev.tensor_from_vec(x, (batch, config.input_widths().1))
        };
        let real_logits = tape
            .discriminator
            .forward(d_input(real.as_vec(), &labels), Mode::Eval);
        let fake_logits = tape
            .discriminator
            .forward(d_input(fake, &fake_labels), Mode::Eval);
        let head = crate::config::conditioning::head(c);
        let real_term = Term::real(config.label_smoothing);
        let d_tape = head
            .reference(config.loss, real_logits, &labels, real_term)
            .array()
            + head
                .reference(config.loss, fake_logits.clone(), &fake_labels, Term::Fake)
                .array();
        let g_tape = head
            .reference(config.loss, fake_logits, &fake_labels, Term::Generator)
            .array();
        assert!(close(d_end, d_tape), "end D loss {d_end} vs {d_tape}");
        assert!(close(g_end, g_tape), "end G loss {g_end} vs {g_tape}");
        plain.check_in(&mut fast);
        assert_eq!(tape.rng.get_word_pos(), fast.rng.get_word_pos(), "RNG use");
        assert_eq!(
            (tape.d_opt.steps, tape.g_opt.steps),
            (fast.d_opt.steps, fast.g_opt.steps)
        );
        let tol = 1e-4;
        assert_close(
            &params(&mut tape.discriminator),
            &params(&mut fast.discriminator),
            tol,
            "discriminator",
        );
        assert_close(
            &params(&mut tape.generator),
            &params(&mut fast.generator),
            tol,
            "generator",
        );
        if let (Some(a), Some(b)) = (&mut tape.ema, &mut fast.ema) {
            assert_close(&params(a), &params(b), tol, "moving average");
            assert_ne!(params(a), params(&mut tape.generator), "the average is G");
        }
    }
}

/// The step reuses its buffers without clearing them: a step whose kept buffers all hold
/// NaN gives the same bits as one whose buffers hold the last step's values.
#[test]
fn reused_buffers_do_not_change_a_step() {
    for (case, config) in step_test_configs().into_iter().enumerate() {
        let dev = Cpu::seed_from_u64(0);
        let batch = config.training.batch_size;
        let real: crate::model::Matrix = dev.sample_uniform_like(&(batch, IMAGE_PIXELS));
        let labels: Vec<u8> = (0..batch).map(|i| (i * 7 % 10) as u8).collect();
        let mut state = GanState::new(&config, &dev);
        let mut warm = PlainGan::check_out(&mut state);
        let mut times = PhaseTimes::default();
        warm.d_step(&mut state.rng, &config, real.as_vec(), &labels, &mut times);
        warm.g_step(&mut state.rng, &config, batch, &mut times);
        let mut poisoned = warm.clone();
        poisoned.workspace.poison();
        let mut outcomes = Vec::new();
        for plain in [&mut warm, &mut poisoned] {
            let mut rng = state.rng.clone();
            let d = plain.d_step(&mut rng, &config, real.as_vec(), &labels, &mut times);
            let g = plain.g_step(&mut rng, &config, batch, &mut times);
            let mut after = GanState::new(&config, &dev);
            plain.clone().check_in(&mut after);
            outcomes.push((
                d.loss.to_bits(),
                g.loss.to_bits(),
                params(&mut after.generator),
                params(&mut after.discriminator),
            ));
        }
        assert!(
            outcomes[0] == outcomes[1],
            "case {case}: poisoned buffers changed the step"
        );
    }
}

/// The same steps on one thread and on two give the same bits: the paper's MLP, the
/// convolutional DCGAN (with its moving average), and `mlp-best`'s spectrally normalised D and
/// moving average under each gradient penalty, the DCGAN under R1 and the cDCGAN under
/// WGAN-GP, lazily every second step (so that steps with and without it both run).
#[test]
fn steps_do_not_depend_on_the_thread_count() {
    let penalty =
        |kind: &str| format!("gradient_penalty={{kind = \"{kind}\", weight = 10.0, every = 2}}");
    let cases: [(&str, usize, Vec<String>); 7] = [
        ("paper.toml", 100, vec![]),
        // Without the R1 that configs/dcgan.toml has (it runs lazily below).
        (
            "dcgan.toml",
            32,
            vec!["gradient_penalty={kind = \"none\"}".into()],
        ),
        (
            "mlp-best.toml",
            50,
            vec!["loss=\"least_squares\"".into(), penalty("r1")],
        ),
        (
            "mlp-best.toml",
            50,
            vec!["loss=\"wasserstein\"".into(), penalty("wgan_gp")],
        ),
        ("mlp-best.toml", 50, vec![penalty("r2")]),
        // Through batch-norm on images (the penalty's curvature pass), and on a D that reads
        // label planes beside the image.
        ("dcgan.toml", 32, vec![penalty("r1")]),
        ("cdcgan.toml", 32, vec![penalty("wgan_gp")]),
    ];
    for (file, batch, sets) in cases {
        same_steps_on_one_thread_and_two(file, batch, &sets);
    }
}

fn same_steps_on_one_thread_and_two(file: &str, batch: usize, sets: &[String]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let overrides: Vec<crate::config::Override> =
        std::iter::once(format!("training.batch_size={batch}"))
            .chain(sets.iter().cloned())
            .map(|o| o.parse().unwrap())
            .collect();
    let config = crate::config::load(&root.join("configs").join(file), &overrides).unwrap();
    let dev = Cpu::seed_from_u64(0);
    let real: crate::model::Matrix = dev.sample_uniform_like(&(batch, IMAGE_PIXELS));
    let labels: Vec<u8> = (0..batch).map(|i| (i * 7 % 10) as u8).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut state = GanState::new(&config, &dev);
            let mut plain = PlainGan::check_out(&mut state);
            plain.begin_epoch(&config, 1);
            let mut times = PhaseTimes::default();
            for _ in 0..2 {
                plain.d_step(&mut state.rng, &config, real.as_vec(), &labels, &mut times);
                plain.g_step(&mut state.rng, &config, batch, &mut times);
            }
            plain.check_in(&mut state);
            (
                params(&mut state.generator),
                params(&mut state.discriminator),
                state.ema.as_mut().map(params),
            )
        })
    };
    let (one, two) = (run(1), run(2));
    assert!(
        one.2.is_some() || file == "paper.toml",
        "{file}: no moving average to compare"
    );
    assert!(one == two, "{file} {sets:?}: one thread and two differ");
}

/// A latent code's run never reads the data's labels: a D step with the real batch's labels
/// shuffled gives the same bits, where the auxiliary classifier's (which reads them) does not.
#[test]
fn a_latent_code_never_reads_the_data_labels() {
    let cases = [
        ("latent_code", "", false),
        // R1 scores the real batch with its labels: through the head, still unread.
        (
            "latent_code",
            "gradient_penalty={kind = \"r1\", weight = 10.0}",
            false,
        ),
        ("auxiliary_classifier", "", true),
    ];
    for (head, penalty, reads_labels) in cases {
        let conditioning = format!("conditioning={{discriminator = \"{head}\"}}");
        let mut sets = vec!["model.discriminator.layers[2].out=11", &conditioning];
        if !penalty.is_empty() {
            sets.push(penalty);
        }
        let config = load("smoke.toml", &sets);
        let dev = Cpu::seed_from_u64(0);
        let batch = config.training.batch_size;
        let real: crate::model::Matrix = dev.sample_uniform_like(&(batch, IMAGE_PIXELS));
        let mut outcomes = Vec::new();
        for shift in [0, 3] {
            let labels: Vec<u8> = (0..batch).map(|i| ((i + shift) * 7 % 10) as u8).collect();
            let mut state = GanState::new(&config, &dev);
            let mut plain = PlainGan::check_out(&mut state);
            let mut times = PhaseTimes::default();
            let d = plain.d_step(&mut state.rng, &config, real.as_vec(), &labels, &mut times);
            plain.check_in(&mut state);
            outcomes.push((d.loss.to_bits(), params(&mut state.discriminator)));
        }
        assert_eq!(outcomes[0] != outcomes[1], reads_labels, "{head} {penalty}");
    }
}

/// WGAN-GP's interpolates mix each row's image with `e` drawn per row, and keep the real
/// row's label part where D reads the label; R1's and R2's batches are the real and the
/// generated one as they are.
#[test]
fn interpolates_mix_the_images_and_keep_the_real_labels() {
    use crate::regularizer::PenaltyKind;
    let (rows, width) = (3, IMAGE_PIXELS + 2);
    let real: Vec<f32> = (0..rows * width).map(|i| (i % 5) as f32).collect();
    let fake: Vec<f32> = (0..rows * width).map(|i| -((i % 3) as f32)).collect();
    let (labels, fake_labels) = ([1u8, 2, 3], [4u8, 5, 6]);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut draws = rng.clone();
    let (mixed, used) = penalty_batch(
        PenaltyKind::WganGp,
        (real.clone(), &labels),
        (fake.clone(), &fake_labels),
        rows,
        &mut rng,
    );
    assert_eq!(used, &labels);
    for r in 0..rows {
        let e: f32 = rand::Rng::gen(&mut draws);
        let row = r * width..(r + 1) * width;
        let (m, a, b) = (&mixed[row.clone()], &real[row.clone()], &fake[row]);
        for i in 0..IMAGE_PIXELS {
            assert_eq!(m[i], e * a[i] + (1.0 - e) * b[i], "row {r} pixel {i}");
        }
        assert_eq!(
            &m[IMAGE_PIXELS..],
            &a[IMAGE_PIXELS..],
            "row {r}: the real label part"
        );
    }
    let mut batches = |kind| {
        let (real, fake) = (
            (real.clone(), &labels[..]),
            (fake.clone(), &fake_labels[..]),
        );
        penalty_batch(kind, real, fake, rows, &mut rng)
    };
    assert_eq!(batches(PenaltyKind::R1), (real.clone(), &labels[..]));
    assert_eq!(batches(PenaltyKind::R2), (fake.clone(), &fake_labels[..]));
}
