//! Sample quality: the measures of a set of generated images, against the same real images
//! every time, beside reference rows (real training images, uniform noise) that give the
//! numbers meaning. GAN losses say little about samples; these are what sweeps and diffs compare.
//!
//! - [`classifier_measures`]: classifier FID, classifier score, mode coverage, and which digit
//!   each latent code draws.
//! - [`likelihood`]: Parzen-window log-likelihood (Goodfellow et al. 2014) and memorisation.
//! - [`precision_recall`]: improved precision and recall (Kynkäänniemi et al. 2019, k = 3),
//!   which tell sample quality (precision) from coverage (recall).
//! - [`kid`]: kernel inception distance (Bińkowski et al. 2018), FID's unbiased cousin.
//!
//! The last two compare the classifier's features (those FID uses) of the first
//! `min(n, 10,000)` images scored with as many of the 10,000 test images, taken in a fixed
//! shuffled order (seed 0): the same real set every time for a given `n`, and equal-sized sets,
//! since both measures depend on the sizes.

pub mod classifier_measures;
pub mod kid;
pub mod likelihood;
pub mod precision_recall;

use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::config::{GenerationMode, IMAGE_PIXELS};
use crate::error::Result;
use classifier_measures::{
    classifier_score, code_digits, frechet_distance, mode_coverage, CodeDigits, Gaussian,
    ModeCoverage,
};
use kid::Kid;
use likelihood::{memorisation, parzen, Memorisation, ParzenReport};
use precision_recall::{knn_radii, precision_recall_with, PrecisionRecall};

pub use likelihood::{parzen_log_likelihoods, squared_distances, MeanSe};

/// The real images the measures compare against, split so that none is used twice.
pub struct EvalData {
    /// 1,000 validation images (held out from training): choose the Parzen width.
    pub parzen_validation: Vec<f32>,
    /// 1,000 other validation images: what "new" looks like for memorisation.
    pub held_out: Vec<f32>,
    /// The training images.
    pub train: Vec<f32>,
    /// The 10,000 test images.
    pub test: Vec<f32>,
    /// Their labels.
    pub test_labels: Vec<u8>,
}

impl EvalData {
    /// Loads MNIST from `dir` with the default split (5,000 validation images).
    pub fn load(dir: &Path) -> Result<EvalData> {
        let data = crate::data::load_train(&crate::config::DataConfig {
            dir: dir.to_path_buf(),
            ..Default::default()
        })?;
        let test = crate::data::load_test(dir)?;
        let v = data.validation.pixels();
        Ok(EvalData {
            parzen_validation: v[..1000 * IMAGE_PIXELS].to_vec(),
            held_out: v[1000 * IMAGE_PIXELS..2000 * IMAGE_PIXELS].to_vec(),
            train: data.train.pixels(),
            test: test.pixels(),
            test_labels: test.labels,
        })
    }
}

/// The most images of each set that precision, recall and KID compare (all the test images).
pub const FEATURE_SET_CAP: usize = 10_000;

/// The fewest images `eval` scores: below it FID's covariance and the k-nearest-neighbour
/// measures say nothing (`--n 0` once scored two images and overwrote eval.json).
pub const MIN_SCORED_IMAGES: usize = 100;

/// All the measures of one set of images.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scores {
    /// Images scored.
    pub images: usize,
    /// Classifier FID against the 10,000 test images (0 is identical statistics).
    pub fid: f64,
    /// Classifier score, `exp(E KL(p(y|x) || p(y)))`, between 1 and 10.
    pub classifier_score: f64,
    /// Which digits the images are.
    pub coverage: ModeCoverage,
    /// Parzen-window log-likelihood of the test set.
    pub parzen: ParzenReport,
    /// Memorisation of (up to) the first 1,000 images.
    pub memorisation: Memorisation,
    /// Improved precision and recall (k = 3) against as many test images (up to 10,000);
    /// absent in files written before it existed, and for fewer than four images.
    #[serde(default)]
    pub precision_recall: Option<PrecisionRecall>,
    /// KID against the same test images; absent as `precision_recall` is.
    #[serde(default)]
    pub kid: Option<Kid>,
    /// For images generated with labels (a class-conditional run): the share that the
    /// classifier calls their label. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_accuracy: Option<f64>,
    /// For images generated with labels: per label k, the FID of the images asked to be k
    /// against the test images of digit k. Absent otherwise, and when a label has fewer than
    /// two images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_fid: Option<Vec<f64>>,
    /// For images drawn with a latent code: the digit each code draws most, and how purely.
    /// Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_digits: Option<CodeDigits>,
    /// Seconds the scoring took.
    pub seconds: f64,
}

/// The share of rows of `probs` (one per image, a probability per digit) whose most likely
/// digit is the image's label.
fn label_accuracy(probs: &[f32], labels: &[u8]) -> f64 {
    let rows = probs.len() / crate::classifier::CLASSES;
    let hits = probs
        .chunks_exact(crate::classifier::CLASSES)
        .zip(labels)
        .filter(|(p, &l)| crate::classifier::argmax(p) == l as usize)
        .count();
    hits as f64 / rows.max(1) as f64
}

impl Scores {
    /// The mean of the per-label FIDs, where they were measured.
    pub fn mean_label_fid(&self) -> Option<f64> {
        let fids = self.label_fid.as_ref()?;
        Some(fids.iter().sum::<f64>() / fids.len().max(1) as f64)
    }
}

/// The features of `labels.len()` images (rows of `dim`) grouped by label: one Gaussian per
/// label `0..classes`; `None` when a label has fewer than two images.
fn gaussians_by_label(
    features: &[f32],
    dim: usize,
    labels: &[u8],
    classes: usize,
) -> Option<Vec<Gaussian>> {
    let mut groups = vec![Vec::new(); classes];
    for (row, &label) in features.chunks_exact(dim).zip(labels) {
        groups.get_mut(label as usize)?.extend_from_slice(row);
    }
    groups
        .iter()
        .map(|g| (g.len() >= 2 * dim).then(|| Gaussian::fit(g, dim)))
        .collect()
}

/// The labels a conditional run's G is asked for when `n` images are generated, for label
/// accuracy and per-label FID (none for an unconditional config, or a latent code's, whose
/// labels are not digits): see `train::generation_label`.
pub fn generation_labels(config: &crate::config::Experiment, n: usize) -> Option<Vec<u8>> {
    let c = config
        .conditioning
        .as_ref()
        .filter(|c| c.labels_are_digits())?;
    Some(
        (0..n)
            .map(|i| crate::train::generation_label(c.classes, i))
            .collect(),
    )
}

/// What a conditional G was asked for, one per image scored.
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    /// Digits: label accuracy and per-label FID measure how G drew them.
    Digits(&'a [u8]),
    /// A latent code's values, out of the given number of codes: [`CodeDigits`] reads them.
    Codes(&'a [u8], usize),
}

/// Scores images against fixed real data with a fixed classifier; build once, score many times.
pub struct Evaluator {
    data: EvalData,
    classifier: Classifier,
    test_features: Gaussian,
    /// The test images' features by digit: per-label FID's reference.
    test_features_by_label: Vec<Gaussian>,
    /// The test images' features in a fixed shuffled order: precision, recall and KID take
    /// the first `n` (see the module documentation).
    real_features: Vec<f32>,
    feature_dim: usize,
    /// The k-NN radii of the first `n` of `real_features`, for the last `n` scored (training
    /// scores the same number every time).
    real_radii: Option<(usize, Vec<f32>)>,
    /// The held-out images' distances to their nearest training images: memorisation's
    /// reference, the same for every set scored, so computed once (86 GFLOP).
    held_out_nearest: Vec<f64>,
    dev: Cpu,
}

impl Evaluator {
    /// Loads the real images from `data_dir` and fits the test set's feature Gaussian.
    pub fn new(data_dir: &Path, classifier: Classifier) -> Result<Evaluator> {
        let data = EvalData::load(data_dir)?;
        let dev = Cpu::default();
        let mut classifier = classifier;
        let out = classifier.outputs(&data.test, &dev);
        let test_features = Gaussian::fit(&out.features, out.feature_dim);
        let classes = crate::classifier::CLASSES;
        let test_features_by_label =
            gaussians_by_label(&out.features, out.feature_dim, &data.test_labels, classes)
                .expect("MNIST's test set holds every digit");
        let real_features = shuffled_rows(&out.features, out.feature_dim, 0);
        let held_out_nearest = likelihood::nearest_distances(&data.held_out, &data.train);
        Ok(Evaluator {
            data,
            classifier,
            test_features,
            test_features_by_label,
            real_features,
            feature_dim: out.feature_dim,
            real_radii: None,
            held_out_nearest,
            dev,
        })
    }

    /// The test images' labels, in the order of the test file.
    pub fn test_labels(&self) -> &[u8] {
        &self.data.test_labels
    }

    /// The classifier in use.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The real images in use.
    pub fn data(&self) -> &EvalData {
        &self.data
    }

    /// Scores `images` (row-major, 784 pixels each, in [0, 1]; at least two).
    pub fn score(&mut self, images: &[f32]) -> Scores {
        self.score_labelled(images, None)
    }

    /// The classifier FID of `images` alone (for a second generator beside the one
    /// [`Evaluator::score`] scores in full).
    pub fn fid(&mut self, images: &[f32]) -> f64 {
        let out = self.classifier.outputs(images, &self.dev);
        frechet_distance(
            &Gaussian::fit(&out.features, out.feature_dim),
            &self.test_features,
        )
    }

    /// [`Evaluator::score`], and where `labels` are given (one per image, what a conditional
    /// G was asked for), the share of images the classifier calls their label.
    pub fn score_labelled(&mut self, images: &[f32], labels: Option<&[u8]>) -> Scores {
        self.score_asked(images, labels.map(Asked::Digits))
    }

    /// [`Evaluator::score`], and the measures of what G was `asked` for, where given.
    pub fn score_asked(&mut self, images: &[f32], asked: Option<Asked>) -> Scores {
        let labels = match asked {
            Some(Asked::Digits(labels)) => Some(labels),
            _ => None,
        };
        let started = std::time::Instant::now();
        let out = self.classifier.outputs(images, &self.dev);
        let fid = frechet_distance(
            &Gaussian::fit(&out.features, out.feature_dim),
            &self.test_features,
        );
        let parzen = parzen(images, &self.data.parzen_validation, &self.data.test);
        let n = (images.len() / IMAGE_PIXELS).min(1000);
        let memorisation = memorisation(
            &images[..n * IMAGE_PIXELS],
            &self.held_out_nearest,
            &self.data.train,
        );
        let (precision_recall, kid) = self.feature_set_measures(&out.features);
        Scores {
            images: images.len() / IMAGE_PIXELS,
            fid,
            classifier_score: classifier_score(&out.probs),
            coverage: mode_coverage(&out.probs),
            parzen,
            memorisation,
            precision_recall,
            kid,
            label_accuracy: labels.map(|l| label_accuracy(&out.probs, l)),
            label_fid: labels.and_then(|l| self.label_fids(&out.features, l)),
            code_digits: match asked {
                Some(Asked::Codes(codes, classes)) => Some(code_digits(&out.probs, codes, classes)),
                _ => None,
            },
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Per label, the FID of the images of that label against the test images of that digit.
    fn label_fids(&self, features: &[f32], labels: &[u8]) -> Option<Vec<f64>> {
        let classes = self.test_features_by_label.len();
        let generated = gaussians_by_label(features, self.feature_dim, labels, classes)?;
        Some(
            generated
                .iter()
                .zip(&self.test_features_by_label)
                .map(|(g, real)| frechet_distance(g, real))
                .collect(),
        )
    }

    /// Precision, recall and KID of the first `min(n, 10,000)` of `features` against as many
    /// real ones; `None` for fewer than four images (a point needs three neighbours).
    fn feature_set_measures(&mut self, features: &[f32]) -> (Option<PrecisionRecall>, Option<Kid>) {
        let dim = self.feature_dim;
        let n = (features.len() / dim)
            .min(FEATURE_SET_CAP)
            .min(self.real_features.len() / dim);
        if n <= precision_recall::K {
            return (None, None);
        }
        let generated = &features[..n * dim];
        let real = &self.real_features[..n * dim];
        if self.real_radii.as_ref().map(|(cached, _)| *cached) != Some(n) {
            self.real_radii = Some((n, knn_radii(real, dim, precision_recall::K)));
        }
        let (_, radii) = self.real_radii.as_ref().expect("just computed");
        let pr = precision_recall_with(generated, real, radii, dim, precision_recall::K);
        (Some(pr), Some(kid::kid(generated, real, dim, 0)))
    }

    /// The reference rows: 10,000 real training images and 10,000 images of uniform noise.
    /// Taken from `classifier/reference.json` when that was computed with this classifier,
    /// computed afresh otherwise (also when that file predates a measure).
    pub fn reference(&mut self) -> Reference {
        if let Some(stored) = Reference::builtin() {
            let complete = [&stored.real_train, &stored.uniform_noise]
                .iter()
                .all(|s| s.precision_recall.is_some() && s.kid.is_some());
            if stored.classifier_sha256 == self.classifier.sha256 && complete {
                return stored;
            }
        }
        self.compute_reference()
    }

    /// Computes the reference rows (about two evaluations' time).
    pub fn compute_reference(&mut self) -> Reference {
        let real = self.data.train[..10_000 * IMAGE_PIXELS].to_vec();
        Reference {
            classifier_sha256: self.classifier.sha256.clone(),
            real_train: self.score(&real),
            uniform_noise: self.score(&uniform_noise(10_000, 0)),
        }
    }
}

/// What `eval.json` (and `eval-<mode>.json`) holds: one scoring of a run's samples, or of an
/// image file, with what it was scored against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The checkpoint's epoch, for a run's samples.
    pub epoch: Option<usize>,
    /// How the run's generator drew them; absent in files written before the choice existed
    /// (which generated as the run's batch-norm mode did outside training).
    #[serde(default)]
    pub generation: Option<GenerationMode>,
    /// The checkpoint given with `--checkpoint`, if any (otherwise the run's newest).
    pub checkpoint: Option<PathBuf>,
    /// The image file scored with `--samples`, if any.
    pub samples_file: Option<PathBuf>,
    /// Whether a run that keeps a moving average of its generator was scored on the generator
    /// itself (`--raw-generator`).
    #[serde(default)]
    pub raw_generator: bool,
    /// For a class-conditional run's samples, which labels G was asked for: `balanced` or
    /// `test` (`eval --labels`); absent for others and in files written before the choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelSource>,
    /// The classifier the measures used.
    pub classifier: ClassifierIdentity,
    /// The samples' scores.
    pub scores: Scores,
    /// The reference rows, with the same classifier.
    pub reference: Reference,
    /// Seconds the whole command took.
    pub seconds: f64,
}

/// Which classifier scored, so that scores from different classifiers are not compared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierIdentity {
    /// SHA-256 of its weights file.
    pub sha256: String,
    /// Its accuracy on the MNIST test set.
    pub test_accuracy: f64,
}

/// What a scoring scored, as [`EvalRecord`] keeps it: a run's samples (the checkpoint's epoch,
/// how the generator drew them) or an image file, and the `--checkpoint` given, if any.
#[derive(Debug, Clone, Default)]
pub struct EvalSource {
    /// The checkpoint's epoch, for a run's samples.
    pub epoch: Option<usize>,
    /// How the run's generator drew them.
    pub generation: Option<GenerationMode>,
    /// The checkpoint given with `--checkpoint`, if any.
    pub checkpoint: Option<PathBuf>,
    /// The image file scored with `--samples`, if any.
    pub samples_file: Option<PathBuf>,
    /// Whether a run that keeps a moving average of its generator was scored on the generator
    /// itself.
    pub raw_generator: bool,
    /// Which labels a class-conditional run's generator was asked for.
    pub labels: Option<LabelSource>,
}

/// Which labels a class-conditional run's generator is asked for when scored (`eval
/// --labels`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// Every class equally often.
    Balanced,
    /// The test set's labels in order.
    Test,
}

impl EvalRecord {
    /// The record of `scores`, made by `evaluator`'s classifier, of the images `source`
    /// names, beside the `reference` rows; `seconds` is what the whole scoring took.
    pub fn new(
        evaluator: &Evaluator,
        source: EvalSource,
        scores: Scores,
        reference: Reference,
        seconds: f64,
    ) -> EvalRecord {
        let c = evaluator.classifier();
        EvalRecord {
            epoch: source.epoch,
            generation: source.generation,
            checkpoint: source.checkpoint,
            samples_file: source.samples_file,
            raw_generator: source.raw_generator,
            labels: source.labels,
            classifier: ClassifierIdentity {
                sha256: c.sha256.clone(),
                test_accuracy: c.test_accuracy,
            },
            scores,
            reference,
            seconds,
        }
    }

    /// Reads an `eval.json`; `None` when there is none or it does not parse.
    pub fn read(path: &Path) -> Option<EvalRecord> {
        serde_json::from_str(&crate::files::read_string(path, crate::files::RECORD).ok()?).ok()
    }

    /// Writes the record into the run directory `run`, atomically, as
    /// [`crate::run_dir::eval_file_name`] names it: `eval.json` for samples drawn in the run's
    /// own generation mode (`own_mode`), `eval-<mode>.json` for another, `-raw` for the raw
    /// generator, `-test-labels` for the test set's labels. Returns its path.
    pub fn write_into_run(&self, run: &Path, own_mode: bool) -> Result<PathBuf> {
        let other_mode = self.generation.filter(|_| !own_mode);
        let test_labels = self.labels == Some(LabelSource::Test);
        let path = run.join(crate::run_dir::eval_file_name(
            other_mode,
            self.raw_generator,
            test_labels,
        ));
        let text = serde_json::to_string_pretty(self).expect("the record serialises");
        crate::files::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// What real digits and pure noise score: the two ends of every scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reference {
    /// The classifier these were computed with.
    pub classifier_sha256: String,
    /// 10,000 real training images (their memorisation is 0 by construction: they are the
    /// training set).
    pub real_train: Scores,
    /// 10,000 images of uniform noise in [0, 1].
    pub uniform_noise: Scores,
}

impl Reference {
    /// The rows stored beside the built-in classifier, if they parse.
    pub fn builtin() -> Option<Reference> {
        serde_json::from_str(include_str!("../../classifier/reference.json")).ok()
    }

    /// Writes the rows as JSON to `path` (e.g. `classifier/reference.json`), atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("the reference serialises");
        crate::files::write_atomic(path, text.as_bytes())
    }
}

/// The rows of `x` (`dim` columns) in an order shuffled with `seed`.
fn shuffled_rows(x: &[f32], dim: usize, seed: u64) -> Vec<f32> {
    use rand::{seq::SliceRandom, SeedableRng};
    let mut order: Vec<usize> = (0..x.len() / dim).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    order
        .iter()
        .flat_map(|&i| &x[i * dim..(i + 1) * dim])
        .copied()
        .collect()
}

/// `n` images of uniform noise, the reference row for "no model at all".
pub fn uniform_noise(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n * IMAGE_PIXELS).map(|_| rng.gen()).collect()
}

/// What the columns of [`render_table`] mean.
pub const TABLE_LEGEND: &str = "n: images scored (FID and Parzen depend on it: compare like \
with like; the reference rows use 10,000). FID: classifier FID vs the 10,000 test images (lower is better). score: classifier score \
(1-10). modes: digits with at least 1% of the images. KL(u): KL of the digit histogram from uniform. \
confident: p(top digit) > 0.9. Parzen: log-likelihood of the test set (GAN paper protocol). \
nearest: median distance to the nearest training image (first 1,000). copies: share closer than \
99% of real held-out digits. prec, recall: improved precision (samples inside the real \
digits' 3-NN balls) and recall (real digits inside the samples' balls) in classifier \
features, against as many test images (up to 10,000). KID: kernel inception distance on \
the same features (x 1000; 0 is the same distribution), +/- its standard error.";

/// A table of scored image sets, one row each, with a header.
pub fn render_table(rows: &[(&str, &Scores)]) -> String {
    // The first column is as wide as its longest label.
    let w = rows
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(24);
    let mut out = format!(
        "{:<w$} {:>6} {:>8} {:>6} {:>5} {:>7} {:>9} {:>17} {:>8} {:>7} {:>6} {:>6} {:>16} {:>6}\n",
        "images",
        "n",
        "FID",
        "score",
        "modes",
        "KL(u)",
        "confident",
        "Parzen (nats)",
        "nearest",
        "copies",
        "prec",
        "recall",
        "KID x 1000",
        "secs"
    );
    for (name, s) in rows {
        let (p, m, c) = (&s.parzen, &s.memorisation, &s.coverage);
        out += &format!(
            "{:<w$} {:>6} {:>8.2} {:>6.2} {:>5} {:>7.3} {:>8.1}% {:>9.1} +/- {:<4.1} {:>8.2} {:>6.1}% {} {:>6.1}\n",
            name,
            s.images,
            s.fid,
            s.classifier_score,
            c.modes,
            c.kl_from_uniform,
            100.0 * c.confident_share,
            p.test.mean,
            p.test.se,
            m.median_distance,
            100.0 * m.near_copy_share,
            feature_set_cells(s),
            s.seconds
        );
    }
    out
}

/// The precision, recall and KID cells of a table row ("-" where not computed).
fn feature_set_cells(s: &Scores) -> String {
    let (p, r) = match &s.precision_recall {
        Some(pr) => (format!("{:.3}", pr.precision), format!("{:.3}", pr.recall)),
        None => ("-".into(), "-".into()),
    };
    let kid = match &s.kid {
        Some(k) => format!("{:.2} +/- {:<4.2}", 1000.0 * k.mean, 1000.0 * k.se),
        None => "-".into(),
    };
    format!("{p:>6} {r:>6} {kid:>16}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files written before precision, recall and KID existed still read, without them.
    #[test]
    fn scores_without_the_newer_measures_still_read() {
        let stored = Reference::builtin().expect("classifier/reference.json parses");
        let mut old = serde_json::to_value(&stored.real_train).unwrap();
        let fields = old.as_object_mut().unwrap();
        assert!(fields.remove("precision_recall").is_some() && fields.remove("kid").is_some());
        let read: Scores = serde_json::from_value(old).unwrap();
        assert!(read.precision_recall.is_none() && read.kid.is_none());
        assert_eq!(read.fid, stored.real_train.fid);
        assert!(render_table(&[("old", &read)]).contains(" - "));
    }
}
