//! Reading runs back from their run directories alone, for the commands that only read:
//! `compare` of many runs (one row a run, with the keys that vary across them), `ls`
//! ([`listing`]), `diff` of two ([`diff`](mod@diff)) and the report. A damaged run is skipped
//! with a warning that names it and its file, so that one bad folder does not hide the rest
//! ([`read_runs`]); nothing here writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{self, Experiment};
use crate::error::{Error, Result};
use crate::eval::EvalRecord;
use crate::experiment::progress::Progress;
use crate::run_dir::{RunDir, CONFIG_FILE, SAMPLES_DIR};
use crate::train::EpochMetrics;

mod diff;
mod grids;
pub mod listing;
pub mod networks;
mod seeds;
mod table;

pub use diff::{diff, render_diff, RunDiff};
pub use grids::diff_png;
pub use listing::listing;
pub use seeds::by_setting;
pub use table::{render_table, Cell, Comparison, Scalar, Spread, Style, TableFormat};

/// A finished or unfinished run, read back from its directory.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run directory.
    pub dir: PathBuf,
    /// Its resolved config.
    pub config: Experiment,
    /// Its metrics, one per epoch.
    pub metrics: Vec<EpochMetrics>,
    /// Its `eval.json` (the last `gan-run eval` in its own generation mode), if it has one.
    pub eval: Option<EvalRecord>,
    /// Its `progress.json` (where its training process is or stopped), if it has one.
    pub progress: Option<Progress>,
}

impl RunRecord {
    /// Reads `config.toml` and `metrics.csv` of a run directory, and its `eval.json` and
    /// `progress.json` where they are (one that does not parse is left out with a warning,
    /// since the run itself is whole).
    pub fn read(dir: &Path) -> Result<RunRecord> {
        if !dir.join(CONFIG_FILE).exists() {
            return Err(Error::RunDir {
                path: dir.to_path_buf(),
                message: format!("has no {CONFIG_FILE}: not a gan-run run directory"),
            });
        }
        let config = config::load_saved(&dir.join(CONFIG_FILE))?;
        let metrics = RunDir::read_metrics(dir)?;
        let eval_path = dir.join(crate::run_dir::eval_file_name(None, false, false));
        let eval = EvalRecord::read(&eval_path);
        if eval.is_none() && eval_path.exists() {
            tracing::warn!(
                "run {}: {} does not parse, so its scores are left out; run `gan-run eval {}` \
                 again to rewrite it",
                dir.display(),
                eval_path.display(),
                dir.display()
            );
        }
        let progress = Progress::read(dir).unwrap_or_else(|e| {
            tracing::warn!(
                "run {}: {e}; it is rewritten when the run trains",
                dir.display()
            );
            None
        });
        Ok(RunRecord {
            dir: dir.to_path_buf(),
            config,
            metrics,
            eval,
            progress,
        })
    }

    /// A short label: the directory's name.
    pub fn label(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// Epochs that have a sample grid.
    pub fn sample_epochs(&self) -> Vec<usize> {
        let mut v: Vec<usize> = std::fs::read_dir(self.dir.join(SAMPLES_DIR))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                crate::run_dir::sample_grid_epoch(&n)
            })
            .collect();
        v.sort();
        v
    }
}

/// The runs under `paths` ([`expand_runs`]), read; a run that cannot be read (a damaged
/// `config.toml` or `metrics.csv`) is skipped with a warning naming it and the file. Fails
/// only when no run can be read, or when a stop is requested (Ctrl-C, SIGTERM).
pub fn read_runs(paths: &[PathBuf]) -> Result<Vec<RunRecord>> {
    let dirs = expand_runs(paths)?;
    let mut runs = Vec::new();
    let mut first_error = None;
    for dir in &dirs {
        match RunRecord::read(dir) {
            Ok(run) => runs.push(run),
            Err(e) => {
                tracing::warn!(
                    "skipped run {}: {e}; fix that file, or move the run out of the folder",
                    dir.display()
                );
                first_error.get_or_insert(e);
            }
        }
    }
    match (runs.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(runs),
    }
}

/// Expands arguments to run directories: a run directory stays; any other folder (a sweep, a
/// runs root holding sweeps) becomes the run directories found inside it, sorted.
pub fn expand_runs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.join(CONFIG_FILE).exists() {
            out.push(p.clone());
            continue;
        }
        let mut inner = Vec::new();
        find_runs(p, 3, &mut inner)?;
        if inner.is_empty() {
            return Err(Error::RunDir {
                path: p.clone(),
                message: "is neither a run directory nor a folder of runs".into(),
            });
        }
        inner.sort();
        out.extend(inner);
    }
    Ok(out)
}

/// Collects the run directories under `dir`, looking `depth` levels down; does not look inside
/// run directories.
fn find_runs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || !path.is_dir() {
            continue;
        }
        if path.join(CONFIG_FILE).exists() {
            out.push(path);
        } else if depth > 1 {
            find_runs(&path, depth - 1, out)?;
        }
    }
    Ok(())
}

/// The metric columns shown for each run: where it stands, its last epoch's training metrics,
/// then its latest sample-quality scores (from `metrics.csv` or `eval.json`, whichever scored
/// a later epoch: FID, classifier score, modes, Parzen nats, improved precision and recall,
/// KID and its standard error) and the epoch they are from.
pub const METRIC_COLUMNS: [&str; 15] = [
    "state",
    "epochs",
    "d_loss",
    "g_loss",
    "d_real",
    "d_fake",
    "fid",
    "score",
    "modes",
    "parzen",
    "precision",
    "recall",
    "kid",
    "kid_se",
    "scored_at",
];

/// The metric columns only class-conditional runs have (label accuracy, mean per-label FID):
/// shown where any compared run is class-conditional.
pub const CONDITIONAL_COLUMNS: [&str; 2] = ["label_acc", "label_fid"];

/// The metric column only runs with a moving average of G have: the raw generator's FID.
pub const RAW_FID_COLUMN: &str = "raw_fid";

/// The metric columns a comparison of `runs` shows: [`METRIC_COLUMNS`], then
/// [`CONDITIONAL_COLUMNS`] where any run draws digits by label, then [`RAW_FID_COLUMN`] where
/// any keeps a moving average.
pub fn metric_columns(runs: &[&RunRecord]) -> Vec<&'static str> {
    let mut columns = METRIC_COLUMNS.to_vec();
    if runs.iter().any(|r| r.config.draws_digits_by_label()) {
        columns.extend(CONDITIONAL_COLUMNS);
    }
    if runs.iter().any(|r| r.config.model.generator.ema.is_some()) {
        columns.push(RAW_FID_COLUMN);
    }
    columns
}

/// Whether `column` is a metric (of any list), not a config key.
pub fn is_metric_column(column: &str) -> bool {
    METRIC_COLUMNS.contains(&column)
        || CONDITIONAL_COLUMNS.contains(&column)
        || column == RAW_FID_COLUMN
}

/// The kinds of state a run can be in, as `ls --state` filters them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateKind {
    /// A live process trains it.
    Running,
    /// All its planned epochs are done.
    Finished,
    /// A halving sweep stopped it at a rung.
    Stopped,
    /// It trained to the epoch its last start was asked to stop at (a halving sweep's rung,
    /// `--max-epochs`), short of its last: the sweep, or the same command, carries it on.
    Waiting,
    /// A signal (Ctrl-C, SIGTERM) stopped it before the epoch its start was to reach; the same
    /// command resumes it.
    #[value(alias = "paused")]
    Interrupted,
    /// Its last start failed (a diverging loss, a run that stopped stuck), or its process
    /// ended without releasing it (killed with SIGKILL, crashed, its machine went down).
    Failed,
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// A live process holds it.
    Running,
    /// All its planned epochs are done.
    Finished,
    /// A halving sweep stopped it after this epoch.
    Stopped(usize),
    /// Its last start trained to this epoch, as asked (a rung still to be decided,
    /// `--max-epochs`), short of its last.
    Waiting(usize),
    /// It stopped before its last epoch, resumably.
    Interrupted,
    /// It failed, and why.
    Failed(String),
}

impl RunState {
    /// Its kind.
    pub fn kind(&self) -> StateKind {
        match self {
            RunState::Running => StateKind::Running,
            RunState::Finished => StateKind::Finished,
            RunState::Stopped(_) => StateKind::Stopped,
            RunState::Waiting(_) => StateKind::Waiting,
            RunState::Interrupted => StateKind::Interrupted,
            RunState::Failed(_) => StateKind::Failed,
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunState::Running => f.write_str("running"),
            RunState::Finished => f.write_str("finished"),
            RunState::Stopped(epoch) => write!(f, "stopped@{epoch}"),
            RunState::Waiting(epoch) => write!(f, "waiting@{epoch}"),
            RunState::Interrupted => f.write_str("interrupted"),
            RunState::Failed(_) => f.write_str("failed"),
        }
    }
}

/// Where a run stands: `running` (a live process holds it), `failed` (its process ended
/// without releasing it, or its last start failed), `stopped@EPOCH` (by a halving sweep),
/// `finished`, `waiting@EPOCH` (its last start trained to the epoch it was asked to stop at),
/// or else `interrupted`.
pub fn run_state(r: &RunRecord) -> RunState {
    match crate::run_dir::RunLock::holder(&r.dir) {
        Some(Ok(_)) => return RunState::Running,
        Some(Err(owner)) => {
            return RunState::Failed(format!(
                "its process ({owner}) ended without releasing the run: killed or crashed"
            ))
        }
        None => {}
    }
    if let Some(s) = crate::sweep::halving::StoppedRecord::read(&r.dir) {
        return RunState::Stopped(s.at.epoch);
    }
    let done = r.metrics.last().map_or(0, |m| m.epoch);
    if done >= r.config.training.epochs {
        return RunState::Finished;
    }
    // Without progress.json (a run of an older gan-run) nothing says why the
    // run stopped short: `interrupted`, which the same command resumes, is the safe reading.
    let Some(progress) = &r.progress else {
        return RunState::Interrupted;
    };
    match &progress.failed {
        Some(why) => RunState::Failed(why.clone()),
        None if done > 0 && progress.until_epoch == done => RunState::Waiting(done),
        None => RunState::Interrupted,
    }
}

/// A run's sample-quality scores of one epoch, from `metrics.csv` or `eval.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The epoch scored.
    pub epoch: usize,
    /// Classifier FID.
    pub fid: f64,
    /// Classifier score.
    pub score: f64,
    /// Digits with at least 1% of the samples.
    pub modes: f64,
    /// Parzen-window log-likelihood, nats.
    pub parzen: f64,
    /// Improved precision; absent in rows and files written before it was measured.
    pub precision: Option<f64>,
    /// Improved recall; likewise.
    pub recall: Option<f64>,
    /// KID; likewise.
    pub kid: Option<f64>,
    /// KID's standard error; likewise.
    pub kid_se: Option<f64>,
    /// A class-conditional run's label accuracy; absent for other runs.
    pub label_accuracy: Option<f64>,
    /// Its mean per-label FID; likewise.
    pub label_fid: Option<f64>,
    /// The raw generator's FID beside a moving average's (training's scorings only).
    pub raw_fid: Option<f64>,
}

/// Every scoring of a run, the one place `compare`, `ls` and `diff` read scores from: its
/// scored epochs in `metrics.csv`, in order, then its `eval.json` (when it names its epoch).
pub fn scorings(r: &RunRecord) -> Vec<Scored> {
    let trained = r.metrics.iter().filter_map(|m| {
        Some(Scored {
            epoch: m.epoch,
            fid: m.fid?,
            score: m.classifier_score?,
            modes: m.modes? as f64,
            parzen: m.parzen_nats?,
            precision: m.precision,
            recall: m.recall,
            kid: m.kid,
            kid_se: m.kid_se,
            label_accuracy: m.label_accuracy,
            label_fid: m.label_fid,
            raw_fid: m.raw_fid,
        })
    });
    let evaluated = r.eval.as_ref().and_then(|e| {
        let s = &e.scores;
        let epoch = e.epoch?;
        Some(Scored {
            epoch,
            fid: s.fid,
            score: s.classifier_score,
            modes: s.coverage.modes as f64,
            parzen: s.parzen.test.mean,
            precision: s.precision_recall.map(|p| p.precision),
            recall: s.precision_recall.map(|p| p.recall),
            kid: s.kid.map(|k| k.mean),
            kid_se: s.kid.map(|k| k.se),
            label_accuracy: s.label_accuracy,
            label_fid: s.mean_label_fid(),
            // `eval` scores the average alone: training's scoring of that epoch has the raw
            // generator's FID, if it scored it.
            raw_fid: r
                .metrics
                .iter()
                .find(|m| m.epoch == epoch)
                .and_then(|m| m.raw_fid),
        })
    });
    trained.chain(evaluated).collect()
}

/// The run's latest scores: those of its last scored epoch, or of its `eval.json` when that
/// scored the same epoch or a later one.
pub fn latest_scores(r: &RunRecord) -> Option<Scored> {
    latest_scores_until(r, usize::MAX)
}

/// [`latest_scores`] among the scorings of epochs up to `until`.
fn latest_scores_until(r: &RunRecord, until: usize) -> Option<Scored> {
    scorings(r)
        .into_iter()
        .filter(|s| s.epoch <= until)
        .reduce(|latest, s| if s.epoch >= latest.epoch { s } else { latest })
}

/// Whether the run trained epoch `epoch` (it has that epoch's `metrics.csv` row).
pub fn reached(r: &RunRecord, epoch: usize) -> bool {
    r.metrics.iter().any(|m| m.epoch == epoch)
}

/// The run's lowest finite FID over all its scorings, with its epoch.
pub fn best_fid(r: &RunRecord) -> Option<(f64, usize)> {
    scorings(r)
        .into_iter()
        .map(|s| (s.fid, s.epoch))
        .filter(|(f, _)| f.is_finite())
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// The run's final metrics by [`METRIC_COLUMNS`] name (those it has).
fn final_metrics(r: &RunRecord) -> BTreeMap<&'static str, f64> {
    metrics_at(r, usize::MAX)
}

/// The run's metrics as they stood after epoch `at` (or its last, if earlier): that epoch's
/// losses and the latest scores up to it.
fn metrics_at(r: &RunRecord, at: usize) -> BTreeMap<&'static str, f64> {
    let mut m = BTreeMap::new();
    if let Some(last) = r.metrics.iter().rev().find(|m| m.epoch <= at) {
        m.insert("epochs", last.epoch as f64);
        m.insert("d_loss", last.d_loss);
        m.insert("g_loss", last.g_loss);
        m.insert("d_real", last.d_real);
        m.insert("d_fake", last.d_fake);
    }
    if let Some(s) = latest_scores_until(r, at) {
        m.insert("scored_at", s.epoch as f64);
        m.insert("fid", s.fid);
        m.insert("score", s.score);
        m.insert("modes", s.modes);
        m.insert("parzen", s.parzen);
        let optional = [
            ("precision", s.precision),
            ("recall", s.recall),
            ("kid", s.kid),
            ("kid_se", s.kid_se),
            ("label_acc", s.label_accuracy),
            ("label_fid", s.label_fid),
            (RAW_FID_COLUMN, s.raw_fid),
        ];
        m.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    }
    m
}

/// How a metric column's numbers are shown to people.
fn metric_style(column: &str) -> Style {
    match column {
        "epochs" | "modes" | "scored_at" => Style::Count,
        "fid" | "score" | "parzen" => Style::Fixed(2),
        "precision" | "recall" | "label_acc" => Style::Fixed(3),
        "label_fid" | RAW_FID_COLUMN => Style::Fixed(2),
        _ => Style::Small,
    }
}

/// Builds the comparison of several runs: `run`, the config keys whose values vary across
/// them (a network's layer list as one key, [`networks::table_settings`]), then
/// [`METRIC_COLUMNS`] as they stood after epoch `at` (each run's last, when `None`; the state
/// is always the run's own now); sorted by `sort_by` (a column name) if given, ascending or
/// `descending`, rows without a value in that column last either way.
pub fn compare(
    runs: &[RunRecord],
    at: Option<usize>,
    sort_by: Option<&str>,
    descending: bool,
) -> Result<Comparison> {
    let flats: Vec<BTreeMap<String, String>> = runs
        .iter()
        .map(|r| networks::table_settings(&r.config))
        .collect();
    let mut varying: Vec<String> = flats
        .iter()
        .flat_map(|f| f.keys().cloned())
        .filter(|k| flats.iter().any(|f| f.get(k) != flats[0].get(k)))
        .collect();
    varying.sort();
    varying.dedup();
    let mut columns = vec!["run".to_string()];
    columns.extend(varying.iter().cloned());
    let metrics = metric_columns(&runs.iter().collect::<Vec<_>>());
    columns.extend(metrics.iter().map(|s| s.to_string()));
    let rows = runs
        .iter()
        .zip(&flats)
        .map(|(r, f)| {
            let m = metrics_at(r, at.unwrap_or(usize::MAX));
            let mut row = vec![Cell::Text(r.label())];
            row.extend(varying.iter().map(|k| match f.get(k) {
                Some(v) => Cell::Setting(v.clone()),
                None => Cell::Missing,
            }));
            row.extend(metrics.iter().map(|c| match *c {
                "state" => Cell::Text(run_state(r).to_string()),
                c => Cell::number(m.get(c).copied(), metric_style(c)),
            }));
            row
        })
        .collect();
    let mut table = Comparison { columns, rows };
    if let Some(col) = sort_by {
        table.sort_by(col, descending)?;
    }
    Ok(table)
}
