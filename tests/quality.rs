//! The sample-quality yardstick itself: the built-in classifier is the one its checksum names and
//! as accurate as claimed, and the measures separate real digits, noise and a collapsed generator.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use gan_run::checksum::sha256_hex;
use gan_run::classifier::{Classifier, BUILTIN_SHA256, BUILTIN_WEIGHTS};
use gan_run::config::IMAGE_PIXELS;
use gan_run::eval::{uniform_noise, Evaluator, Reference};

fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

/// One evaluator for the whole file: loading MNIST and fitting the test features takes seconds.
fn evaluator() -> std::sync::MutexGuard<'static, Evaluator> {
    static EVALUATOR: OnceLock<Mutex<Evaluator>> = OnceLock::new();
    EVALUATOR
        .get_or_init(|| {
            let classifier = Classifier::builtin().expect("built-in classifier loads");
            Mutex::new(Evaluator::new(&mnist_dir(), classifier).expect("MNIST loads"))
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

#[test]
fn builtin_classifier_is_the_checksummed_one_and_as_accurate_as_claimed() {
    assert_eq!(sha256_hex(BUILTIN_WEIGHTS), BUILTIN_SHA256.trim());
    let mut classifier = Classifier::builtin().unwrap();
    let test = gan_run::data::load_test(&mnist_dir()).unwrap();
    let accuracy = classifier.accuracy(&test, &dfdx::prelude::Cpu::default());
    assert_eq!(accuracy, classifier.test_accuracy, "recorded accuracy");
    assert!(accuracy >= 0.988, "test accuracy {accuracy}");
}

#[test]
fn real_digits_score_near_ten_and_close_to_the_test_set_noise_far() {
    let mut ev = evaluator();
    let real = ev.data().train[..5000 * IMAGE_PIXELS].to_vec();
    let test = ev.data().test.clone();
    let real_scores = ev.score(&real);
    let noise_scores = ev.score(&uniform_noise(5000, 1));
    let test_scores = ev.score(&test);
    assert!(test_scores.classifier_score > 9.5, "{test_scores:?}");
    assert_eq!(test_scores.coverage.modes, 10);
    assert!(
        test_scores.fid < 1e-3,
        "the test set against itself: {}",
        test_scores.fid
    );
    assert!(
        noise_scores.fid > 100.0 * real_scores.fid,
        "real {} vs noise {}",
        real_scores.fid,
        noise_scores.fid
    );
    assert!(real_scores.parzen.test.mean > noise_scores.parzen.test.mean + 500.0);
    // The test images against themselves (all 10,000, the real set precision and recall
    // use): every point is inside its own ball.
    let pr = test_scores.precision_recall.unwrap();
    assert_eq!((pr.precision, pr.recall), (1.0, 1.0), "{pr:?}");
    let (real_pr, noise_pr) = (
        real_scores.precision_recall.unwrap(),
        noise_scores.precision_recall.unwrap(),
    );
    assert!(
        real_pr.precision > 0.8 && real_pr.recall > 0.8,
        "{real_pr:?}"
    );
    assert_eq!((noise_pr.precision, noise_pr.recall), (0.0, 0.0));
    let (real_kid, noise_kid) = (real_scores.kid.unwrap(), noise_scores.kid.unwrap());
    assert!(real_kid.mean.abs() < 3.0 * real_kid.se, "{real_kid:?}");
    assert!(noise_kid.mean > 1000.0 * real_kid.se, "{noise_kid:?}");
}

/// A "generator" that always draws the same digit (with a little pixel noise, so the feature
/// covariance is not degenerate).
#[test]
fn a_collapsed_generator_shows_one_mode() {
    let mut ev = evaluator();
    let one = ev.data().test[..IMAGE_PIXELS].to_vec();
    let noise = uniform_noise(1000, 2);
    let images: Vec<f32> = noise
        .chunks_exact(IMAGE_PIXELS)
        .flat_map(|n| {
            one.iter()
                .zip(n)
                .map(|(p, e)| (p + 0.02 * (e - 0.5)).clamp(0.0, 1.0))
                .collect::<Vec<_>>()
        })
        .collect();
    let s = ev.score(&images);
    assert_eq!(s.coverage.modes, 1, "{:?}", s.coverage);
    assert!((s.coverage.kl_from_uniform - 10f64.ln()).abs() < 1e-9);
    assert!(s.classifier_score < 1.1, "{}", s.classifier_score);
}

/// The reference rows shipped beside the classifier are what gan-run computes today.
#[test]
fn stored_reference_rows_match_a_fresh_computation() {
    let stored = Reference::builtin().expect("classifier/reference.json parses");
    let mut ev = evaluator();
    assert_eq!(stored.classifier_sha256, ev.classifier().sha256);
    let real = ev.data().train[..10_000 * IMAGE_PIXELS].to_vec();
    let fresh = ev.score(&real);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(1.0);
    assert!(close(fresh.fid, stored.real_train.fid), "{fresh:?}");
    assert!(close(
        fresh.classifier_score,
        stored.real_train.classifier_score
    ));
    assert!(close(
        fresh.parzen.test.mean,
        stored.real_train.parzen.test.mean
    ));
    assert_eq!(
        fresh.coverage.histogram,
        stored.real_train.coverage.histogram
    );
    assert_eq!(fresh.precision_recall, stored.real_train.precision_recall);
    let (k, stored_k) = (fresh.kid.unwrap(), stored.real_train.kid.unwrap());
    assert!(
        close(k.mean, stored_k.mean) && close(k.se, stored_k.se),
        "{k:?}"
    );
}

/// Per-label FID and label accuracy: the test images with their own labels are every digit
/// they claim to be (FID 0 per label, accuracy the classifier's); the same images with their
/// labels shifted by one are real digits of the wrong class (every per-label FID large, accuracy
/// near zero), which the overall FID cannot see.
#[test]
fn per_label_fid_and_label_accuracy_see_the_wrong_digit() {
    let mut ev = evaluator();
    let test = ev.data().test.clone();
    let labels = ev.data().test_labels.clone();
    let right = ev.score_labelled(&test, Some(&labels));
    let fids = right.label_fid.clone().expect("every label has images");
    assert_eq!(fids.len(), 10);
    assert!(fids.iter().all(|&f| f < 1e-3), "{fids:?}");
    assert!(right.label_accuracy.unwrap() >= 0.988, "{right:?}");

    let shifted: Vec<u8> = labels.iter().map(|&l| (l + 1) % 10).collect();
    let wrong = ev.score_labelled(&test, Some(&shifted));
    assert!(wrong.fid < 1e-3, "the same images overall: {}", wrong.fid);
    assert!(wrong.label_accuracy.unwrap() < 0.02, "{wrong:?}");
    let wrong_fids = wrong.label_fid.clone().unwrap();
    let real = ev.data().train[..10_000 * IMAGE_PIXELS].to_vec();
    let real_fid = ev.score(&real).fid;
    assert!(
        wrong_fids.iter().all(|&f| f > 100.0 * real_fid),
        "{wrong_fids:?} against real {real_fid}"
    );
    assert_eq!(
        wrong.mean_label_fid(),
        Some(wrong_fids.iter().sum::<f64>() / 10.0)
    );

    // A label with fewer than two images has no per-label FID.
    let mut few = vec![0u8; 10_000];
    few[1] = 1;
    assert!(ev.score_labelled(&test, Some(&few)).label_fid.is_none());
}
