//! `diff` of two runs: only what differs (config keys layer by layer, with values in each), the
//! final metrics with their deltas, the best values over the epochs, and the loss curves where
//! the epochs overlap; [`super::diff_png`] draws their losses and sample grids.

use serde::Serialize;

use super::{final_metrics, metric_style, render_table, RunRecord, Style, TableFormat};
use crate::config;
use crate::train::EpochMetrics;

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
    let final_metrics = super::metric_columns(&[a, b])
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
    if let (Some(x), Some(y)) = (&a.eval, &b.eval) {
        let (ex, ey) = (x.epoch.unwrap_or(0), y.epoch.unwrap_or(0));
        let eval_file = crate::run_dir::eval_file_name(None, false, false);
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
        .map(|(k, a, b, _)| {
            let style = metric_style(k);
            vec![
                k.clone(),
                style.show(*a),
                style.show(*b),
                change(*a, *b, style),
            ]
        })
        .collect();
    out += &render_table(&[s("metric"), s("A"), s("B"), s("B - A")], &rows, format);
    if !d.best_metrics.is_empty() {
        out += &heading(&format!(
            "Best over the epochs (lowest loss and FID), and {}",
            crate::run_dir::eval_file_name(None, false, false)
        ));
        let rows: Vec<Vec<String>> = d
            .best_metrics
            .iter()
            .map(|(k, a, ea, b, eb)| {
                let style =
                    metric_style(k.split(' ').next().unwrap_or(k).trim_end_matches("_nats"));
                vec![
                    k.clone(),
                    format!("{} (epoch {ea})", style.show(*a)),
                    format!("{} (epoch {eb})", style.show(*b)),
                    change(*a, *b, style),
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

/// B - A as people read it: `same` where the values are equal (both NaN included), else signed
/// in the metric's style (`+2` epochs, `-1.63` FID, `+0.0123` loss).
fn change(a: f64, b: f64, style: Style) -> String {
    if a == b || (a.is_nan() && b.is_nan()) {
        return "same".to_string();
    }
    let delta = b - a;
    match delta.is_nan() {
        true => "-".to_string(),
        false => format!(
            "{}{}",
            if delta > 0.0 { "+" } else { "-" },
            style.show(delta.abs())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole numbers print whole and an unchanged value says so (it printed
    /// `epochs 3.0000 3.0000 +0.0000`).
    #[test]
    fn final_metrics_print_counts_whole_and_unchanged_values_as_same() {
        let d = RunDiff {
            runs: ["a".into(), "b".into()],
            config: vec![],
            final_metrics: vec![
                ("epochs".into(), 3.0, 3.0, 0.0),
                ("modes".into(), 8.0, 10.0, 2.0),
                ("fid".into(), 12.29, 10.861, -1.429),
                ("d_loss".into(), 1.0, 0.5, -0.5),
            ],
            best_metrics: vec![("fid (scored epochs)".into(), 12.0, 5, 10.5, 20)],
            curves: vec![],
            common_sample_epochs: vec![],
            provenance: vec![],
        };
        let text = render_diff(&d, TableFormat::Text);
        let row = |name: &str| -> Vec<String> {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().map(String::from).collect()
        };
        assert_eq!(row("epochs"), ["epochs", "3", "3", "same"], "{text}");
        assert_eq!(row("modes"), ["modes", "8", "10", "+2"], "{text}");
        assert_eq!(row("fid "), ["fid", "12.29", "10.86", "-1.43"], "{text}");
        assert_eq!(
            row("d_loss"),
            ["d_loss", "1.0000", "0.5000", "-0.5000"],
            "{text}"
        );
        assert!(
            text.contains("12.00 (epoch 5)") && text.contains("-1.50"),
            "{text}"
        );
        assert_eq!(change(f64::NAN, f64::NAN, Style::Small), "same");
        assert_eq!(change(f64::INFINITY, 1.0, Style::Small), "-inf");
    }
}
