//! Comparing runs from their run directories alone: `diff` of two runs (only what differs, with
//! metric deltas, curves where epochs overlap, and their sample grids side by side) and
//! `compare` of many (one row a run, with the keys that vary across them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{self, Experiment};
use crate::error::{Error, Result};
use crate::run_dir::{RunDir, CONFIG_FILE, SAMPLES_DIR};
use crate::train::EpochMetrics;

/// A finished or unfinished run, read back from its directory.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run directory.
    pub dir: PathBuf,
    /// Its resolved config.
    pub config: Experiment,
    /// Its metrics, one per epoch.
    pub metrics: Vec<EpochMetrics>,
}

impl RunRecord {
    /// Reads `config.toml` and `metrics.csv` of a run directory.
    pub fn read(dir: &Path) -> Result<RunRecord> {
        if !dir.join(CONFIG_FILE).exists() {
            return Err(Error::RunDir {
                path: dir.to_path_buf(),
                message: format!("has no {CONFIG_FILE}: not a gan-run run directory"),
            });
        }
        let config = config::load_saved(&dir.join(CONFIG_FILE))?;
        let metrics = RunDir::read_metrics(dir)?;
        Ok(RunRecord {
            dir: dir.to_path_buf(),
            config,
            metrics,
        })
    }

    /// The run's `eval.json`, if it has one that parses.
    pub fn eval(&self) -> Option<crate::eval::EvalRecord> {
        crate::eval::EvalRecord::read(&self.dir.join(crate::run_dir::eval_file_name(None, false)))
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

/// Where a run stands: `running` (a live process holds it), `finished`, `stopped@EPOCH` (by a
/// halving sweep), `interrupted` (its process died during a start) or `paused`.
pub fn run_state(r: &RunRecord) -> String {
    match crate::run_dir::RunLock::holder(&r.dir) {
        Some(Ok(_)) => return "running".into(),
        Some(Err(_)) => return "interrupted".into(),
        None => {}
    }
    if let Some(s) = crate::sweep::halving::StoppedRecord::read(&r.dir) {
        return format!("stopped@{}", s.at.epoch);
    }
    match r.metrics.last() {
        Some(m) if m.epoch >= r.config.training.epochs => "finished".into(),
        _ => "paused".into(),
    }
}

/// `gan-run ls`: one row per run under `root`, named by its path below it: state, epochs done
/// of planned, last losses, best FID so far (and its epoch), the latest scores' precision,
/// recall and KID (as `compare` takes them), time since it last wrote metrics.
pub fn listing(root: &Path, runs: &[RunRecord]) -> Comparison {
    let columns = [
        "run", "state", "epoch", "d_loss", "g_loss", "best_fid", "prec", "recall", "kid", "age",
    ]
    .map(String::from)
    .to_vec();
    let rows = runs
        .iter()
        .map(|r| {
            let name = r.dir.strip_prefix(root).unwrap_or(&r.dir);
            let last = r.metrics.last();
            let best = r
                .metrics
                .iter()
                .filter_map(|m| Some((m.fid?, m.epoch)))
                .filter(|(f, _)| f.is_finite())
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let age = std::fs::metadata(r.dir.join(crate::run_dir::METRICS_FILE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map_or("-".into(), |d| short_duration(d.as_secs()));
            let latest = latest_scores(r);
            let cell = |get: fn(&LatestScores) -> Option<f64>, format: fn(f64) -> String| {
                latest.as_ref().and_then(get).map_or("-".into(), format)
            };
            vec![
                name.display().to_string(),
                run_state(r),
                format!(
                    "{}/{}",
                    last.map_or(0, |m| m.epoch),
                    r.config.training.epochs
                ),
                last.map_or("-".into(), |m| format_small(m.d_loss)),
                last.map_or("-".into(), |m| format_small(m.g_loss)),
                best.map_or("-".into(), |(f, e)| format!("{f:.2}@{e}")),
                cell(|s| s.precision, |v| format!("{v:.3}")),
                cell(|s| s.recall, |v| format!("{v:.3}")),
                cell(|s| s.kid, format_small),
                age,
            ]
        })
        .collect();
    Comparison { columns, rows }
}

/// `42s`, `5m`, `3h`, `2d`.
fn short_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A run's latest scores, from `metrics.csv` or `eval.json`.
struct LatestScores {
    epoch: usize,
    fid: f64,
    score: f64,
    modes: f64,
    parzen: f64,
    /// Absent in rows and files written before they were measured.
    precision: Option<f64>,
    recall: Option<f64>,
    kid: Option<f64>,
    kid_se: Option<f64>,
}

/// The run's latest scores: those of its last scored epoch, or of its `eval.json` when that
/// scored the same epoch or a later one.
fn latest_scores(r: &RunRecord) -> Option<LatestScores> {
    let trained = r.metrics.iter().rev().find_map(|m| {
        Some(LatestScores {
            epoch: m.epoch,
            fid: m.fid?,
            score: m.classifier_score?,
            modes: m.modes? as f64,
            parzen: m.parzen_nats?,
            precision: m.precision,
            recall: m.recall,
            kid: m.kid,
            kid_se: m.kid_se,
        })
    });
    let evaluated = r.eval().and_then(|e| {
        let s = &e.scores;
        Some(LatestScores {
            epoch: e.epoch?,
            fid: s.fid,
            score: s.classifier_score,
            modes: s.coverage.modes as f64,
            parzen: s.parzen.test.mean,
            precision: s.precision_recall.map(|p| p.precision),
            recall: s.precision_recall.map(|p| p.recall),
            kid: s.kid.map(|k| k.mean),
            kid_se: s.kid.map(|k| k.se),
        })
    });
    match (trained, evaluated) {
        (Some(t), Some(e)) if e.epoch >= t.epoch => Some(e),
        (Some(t), _) => Some(t),
        (None, e) => e,
    }
}

fn final_metrics(r: &RunRecord) -> BTreeMap<&'static str, f64> {
    let mut m = BTreeMap::new();
    if let Some(last) = r.metrics.last() {
        m.insert("epochs", last.epoch as f64);
        m.insert("d_loss", last.d_loss);
        m.insert("g_loss", last.g_loss);
        m.insert("d_real", last.d_real);
        m.insert("d_fake", last.d_fake);
    }
    if let Some(s) = latest_scores(r) {
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
        ];
        m.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    }
    m
}

/// A table of runs: one row per run, columns for the keys that vary and the final metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Column names: `run`, the varying keys, then [`METRIC_COLUMNS`].
    pub columns: Vec<String>,
    /// One row per run, as text cells.
    pub rows: Vec<Vec<String>>,
}

/// Builds the comparison of several runs, sorted by `sort_by` (a column name) if given,
/// ascending or `descending`; rows without a value in that column come last either way.
pub fn compare(runs: &[RunRecord], sort_by: Option<&str>, descending: bool) -> Result<Comparison> {
    let flats: Vec<BTreeMap<String, String>> = runs
        .iter()
        .map(|r| {
            let mut f = config::flatten(&r.config);
            f.remove("name");
            f
        })
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
    columns.extend(METRIC_COLUMNS.iter().map(|s| s.to_string()));
    let mut rows: Vec<Vec<String>> = runs
        .iter()
        .zip(&flats)
        .map(|(r, f)| {
            let m = final_metrics(r);
            let mut row = vec![r.label()];
            row.extend(
                varying
                    .iter()
                    .map(|k| f.get(k).cloned().unwrap_or_else(|| "-".into())),
            );
            row.extend(METRIC_COLUMNS.iter().map(|c| match (*c, m.get(c)) {
                ("state", _) => run_state(r),
                ("epochs" | "modes" | "scored_at", Some(v)) => format!("{v}"),
                ("fid" | "score" | "parzen", Some(v)) => format!("{v:.2}"),
                ("precision" | "recall", Some(v)) => format!("{v:.3}"),
                (_, Some(v)) => format_small(*v),
                (_, None) => "-".into(),
            }));
            row
        })
        .collect();
    if let Some(col) = sort_by {
        let i = columns
            .iter()
            .position(|c| c == col)
            .ok_or_else(|| Error::UnknownColumn {
                column: col.to_string(),
                columns: columns.clone(),
            })?;
        use std::cmp::Ordering;
        let direction = |o: Ordering| if descending { o.reverse() } else { o };
        rows.sort_by(|a, b| match (a[i].as_str(), b[i].as_str()) {
            ("-", "-") => Ordering::Equal,
            ("-", _) => Ordering::Greater,
            (_, "-") => Ordering::Less,
            (x, y) => direction(match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => x.cmp(y),
            }),
        });
    }
    Ok(Comparison { columns, rows })
}

use crate::logging::format_small;

mod grids;
mod seeds;
pub use grids::side_by_side_png;
pub use seeds::by_setting;

/// What differs between two runs.
#[derive(Debug, Clone, Serialize)]
pub struct RunDiff {
    /// The two run directories.
    pub runs: [String; 2],
    /// Config keys whose values differ: key, value in A, value in B (`-` where absent).
    pub config: Vec<(String, String, String)>,
    /// Final metrics: name, A, B, B - A.
    pub final_metrics: Vec<(String, f64, f64, f64)>,
    /// Best values over the epochs: name, A, A's epoch, B, B's epoch. For the losses and the
    /// FID of scored epochs "best" is the lowest; then the FID and Parzen estimate of each
    /// run's `eval.json`, when both runs have one.
    pub best_metrics: Vec<(String, f64, usize, f64, usize)>,
    /// Where epochs overlap: epoch, then d_loss A, d_loss B, g_loss A, g_loss B.
    pub curves: Vec<(usize, f64, f64, f64, f64)>,
    /// Epochs for which both runs have a sample grid.
    pub common_sample_epochs: Vec<usize>,
    /// Where the runs' latest starts differ in `provenance.jsonl` (version, commit, host, CPU,
    /// threads, command line, time) and in their number of starts: key, A, B (`-` for a run
    /// without records).
    pub provenance: Vec<(String, String, String)>,
}

/// Diffs two runs.
pub fn diff(a: &RunRecord, b: &RunRecord) -> RunDiff {
    let (mut fa, mut fb) = (config::flatten(&a.config), config::flatten(&b.config));
    fa.remove("name");
    fb.remove("name");
    let config = config::differing_keys(&a.config, &b.config)
        .into_iter()
        .map(|k| {
            let va = fa.get(&k).cloned().unwrap_or_else(|| "-".into());
            let vb = fb.get(&k).cloned().unwrap_or_else(|| "-".into());
            (k, va, vb)
        })
        .collect();
    let (ma, mb) = (final_metrics(a), final_metrics(b));
    let final_metrics = METRIC_COLUMNS
        .iter()
        .filter_map(|c| {
            let (x, y) = (*ma.get(c)?, *mb.get(c)?);
            Some((c.to_string(), x, y, y - x))
        })
        .collect();
    let lowest = |r: &RunRecord, get: fn(&EpochMetrics) -> Option<f64>| {
        r.metrics
            .iter()
            .filter_map(|m| Some((get(m)?, m.epoch)))
            .min_by(|x, y| x.0.total_cmp(&y.0))
    };
    let mut best_metrics = Vec::new();
    for (name, get) in [
        (
            "d_loss",
            (|m| Some(m.d_loss)) as fn(&EpochMetrics) -> Option<f64>,
        ),
        ("g_loss", |m| Some(m.g_loss)),
        ("fid (scored epochs)", |m| m.fid),
    ] {
        if let (Some(x), Some(y)) = (lowest(a, get), lowest(b, get)) {
            best_metrics.push((name.to_string(), x.0, x.1, y.0, y.1));
        }
    }
    if let (Some(x), Some(y)) = (a.eval(), b.eval()) {
        let (ex, ey) = (x.epoch.unwrap_or(0), y.epoch.unwrap_or(0));
        let eval_file = crate::run_dir::eval_file_name(None, false);
        best_metrics.push((
            format!("fid ({eval_file})"),
            x.scores.fid,
            ex,
            y.scores.fid,
            ey,
        ));
        best_metrics.push((
            format!("parzen_nats ({eval_file})"),
            x.scores.parzen.test.mean,
            ex,
            y.scores.parzen.test.mean,
            ey,
        ));
    }
    let curves = a
        .metrics
        .iter()
        .filter_map(|ra| {
            let rb = b.metrics.iter().find(|rb| rb.epoch == ra.epoch)?;
            Some((ra.epoch, ra.d_loss, rb.d_loss, ra.g_loss, rb.g_loss))
        })
        .collect();
    let eb = b.sample_epochs();
    let common_sample_epochs = a
        .sample_epochs()
        .into_iter()
        .filter(|e| eb.contains(e))
        .collect();
    RunDiff {
        runs: [a.dir.display().to_string(), b.dir.display().to_string()],
        config,
        final_metrics,
        best_metrics,
        curves,
        common_sample_epochs,
        provenance: crate::run_dir::provenance::differences(
            &crate::run_dir::provenance::read(&a.dir),
            &crate::run_dir::provenance::read(&b.dir),
        ),
    }
}

/// Renders rows as an aligned text table, Markdown, or CSV.
pub fn render_table(columns: &[String], rows: &[Vec<String>], format: TableFormat) -> String {
    match format {
        TableFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(columns).expect("in-memory csv");
            for r in rows {
                w.write_record(r).expect("in-memory csv");
            }
            String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8")
        }
        TableFormat::Markdown => {
            let mut s = format!(
                "| {} |\n|{}\n",
                columns.join(" | "),
                " --- |".repeat(columns.len())
            );
            for r in rows {
                s += &format!("| {} |\n", r.join(" | "));
            }
            s
        }
        TableFormat::Text => {
            let widths: Vec<usize> = (0..columns.len())
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].len())
                        .chain([columns[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
                    + "\n"
            };
            let mut s = line(columns);
            for r in rows {
                s += &line(r);
            }
            s
        }
    }
}

/// Output form of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Aligned columns for a terminal.
    Text,
    /// A Markdown table.
    Markdown,
    /// CSV.
    Csv,
}

/// Renders a diff as text or Markdown.
pub fn render_diff(d: &RunDiff, format: TableFormat) -> String {
    let heading = |t: &str| match format {
        TableFormat::Markdown => format!("\n### {t}\n\n"),
        _ => format!("\n{t}\n"),
    };
    let s = |v: &str| v.to_string();
    let mut out = match format {
        TableFormat::Markdown => format!("## `{}` vs `{}`\n", d.runs[0], d.runs[1]),
        _ => format!("A = {}\nB = {}\n", d.runs[0], d.runs[1]),
    };
    out += &heading("Config keys that differ");
    if d.config.is_empty() {
        out += "(none)\n";
    } else {
        let rows: Vec<Vec<String>> = d
            .config
            .iter()
            .map(|(k, a, b)| vec![k.clone(), a.clone(), b.clone()])
            .collect();
        out += &render_table(&[s("key"), s("A"), s("B")], &rows, format);
    }
    if !d.provenance.is_empty() {
        out += &heading("Provenance that differs (latest start of each)");
        let rows: Vec<Vec<String>> = d
            .provenance
            .iter()
            .map(|(k, a, b)| vec![k.clone(), a.clone(), b.clone()])
            .collect();
        out += &render_table(&[s("key"), s("A"), s("B")], &rows, format);
    }
    out += &heading("Final metrics");
    let rows: Vec<Vec<String>> = d
        .final_metrics
        .iter()
        .map(|(k, a, b, delta)| {
            vec![
                k.clone(),
                format!("{a:.4}"),
                format!("{b:.4}"),
                format!("{delta:+.4}"),
            ]
        })
        .collect();
    out += &render_table(&[s("metric"), s("A"), s("B"), s("B - A")], &rows, format);
    if !d.best_metrics.is_empty() {
        out += &heading(&format!(
            "Best over the epochs (lowest loss and FID), and {}",
            crate::run_dir::eval_file_name(None, false)
        ));
        let rows: Vec<Vec<String>> = d
            .best_metrics
            .iter()
            .map(|(k, a, ea, b, eb)| {
                vec![
                    k.clone(),
                    format!("{a:.4} (epoch {ea})"),
                    format!("{b:.4} (epoch {eb})"),
                    format!("{:+.4}", b - a),
                ]
            })
            .collect();
        out += &render_table(&[s("metric"), s("A"), s("B"), s("B - A")], &rows, format);
    }
    if !d.curves.is_empty() {
        out += &heading("Curves where epochs overlap");
        let rows: Vec<Vec<String>> = d
            .curves
            .iter()
            .map(|(e, da, db, ga, gb)| {
                vec![
                    e.to_string(),
                    format!("{da:.4}"),
                    format!("{db:.4}"),
                    format!("{ga:.4}"),
                    format!("{gb:.4}"),
                ]
            })
            .collect();
        out += &render_table(
            &[
                s("epoch"),
                s("d_loss A"),
                s("d_loss B"),
                s("g_loss A"),
                s("g_loss B"),
            ],
            &rows,
            format,
        );
    }
    out
}
