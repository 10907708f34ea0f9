//! The HTML report: one self-contained page (inline SVG curves, images as data URIs, no
//! network) built from run directories and, optionally, loss logs printed by other tools (such
//! as the TensorFlow tutorial's), plus a `curves.png` written into each run.

use std::fmt::Write as _;

use base64::Engine;

use crate::compare::{compare, RunRecord};
use crate::config::LossKind;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::run_dir::{sample_grid_name, SAMPLES_DIR};
use crate::train::EpochMetrics;

/// File name of the per-run curves plot.
pub use crate::run_dir::CURVES_FILE;

/// With more differing keys than this, the report's table is shown transposed.
const WIDEST_KEYS: usize = 4;

/// Line colours, one per run (RGB).
const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

type Metric = (&'static str, fn(&EpochMetrics) -> f64);
const METRICS: [Metric; 4] = [
    ("d_loss", |m| m.d_loss),
    ("g_loss", |m| m.g_loss),
    ("d_real", |m| m.d_real),
    ("d_fake", |m| m.d_fake),
];

/// A loss log printed by another tool, read from a CSV file with columns `epoch`, `d_loss` and
/// `g_loss`, to draw beside runs' end-of-epoch losses (`d_loss_end`, `g_loss_end`).
#[derive(Debug, Clone)]
pub struct ImportedLog {
    /// Its label in charts.
    pub name: String,
    /// `(epoch, d_loss, g_loss)`, epochs counted from 1 as gan-run counts them.
    pub rows: Vec<(usize, f64, f64)>,
}

impl ImportedLog {
    /// Reads `NAME=FILE`. A log whose epochs start at 0 (as the tutorial printed them) is
    /// shifted to count from 1, so that its epoch N is the state after N epochs, as in gan-run.
    pub fn read(arg: &str) -> Result<ImportedLog> {
        let bad = |path: &str, message: String| Error::ImportedLog {
            path: path.into(),
            message,
        };
        let (name, path) = arg
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| bad(arg, "write it as NAME=FILE, e.g. tutorial=log.csv".into()))?;
        #[derive(serde::Deserialize)]
        struct Row {
            epoch: usize,
            d_loss: f64,
            g_loss: f64,
        }
        let bytes = crate::files::read(path.as_ref(), crate::files::TABLE)
            .map_err(|e| bad(path, format!("cannot read: {e}")))?;
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(&bytes[..]);
        let mut rows = Vec::new();
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            let row = row.map_err(|e| {
                bad(
                    path,
                    format!("row {}: {e} (columns epoch, d_loss, g_loss)", i + 1),
                )
            })?;
            rows.push((row.epoch, row.d_loss, row.g_loss));
        }
        if rows.is_empty() {
            return Err(bad(path, "has no rows".into()));
        }
        if rows[0].0 == 0 {
            rows.iter_mut().for_each(|r| r.0 += 1);
        }
        Ok(ImportedLog {
            name: name.to_string(),
            rows,
        })
    }
}

/// One line of a chart: a label, its colour (its place in the page's legend) and
/// `(epoch, value)` points.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    label: String,
    colour: usize,
    points: Vec<(usize, f64)>,
}

/// How a chart's values map to its height.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    Linear,
    /// Powers of ten: for D's outputs, whose interesting values run from 0.5 down to 1e-6.
    Log,
}

/// One chart of the page: its file name, caption, scale and lines.
#[derive(Debug, Clone)]
struct Chart {
    name: String,
    caption: String,
    scale: Scale,
    series: Vec<Series>,
}

/// The charts of the page: the runs' losses, one chart per loss kind among them (their values
/// mean different things), D's outputs on log scales, and, where any run measured them or a log
/// is imported, the end-of-epoch losses (imported logs join those of every loss kind, marked).
fn charts(runs: &[RunRecord], logs: &[ImportedLog]) -> Vec<Chart> {
    let series_of = |runs: &[(usize, &RunRecord)], get: &dyn Fn(&EpochMetrics) -> Option<f64>| {
        runs.iter()
            .map(|&(colour, r)| Series {
                label: r.label(),
                colour,
                points: r
                    .metrics
                    .iter()
                    .filter_map(|m| Some((m.epoch, get(m)?)))
                    .collect(),
            })
            .collect::<Vec<_>>()
    };
    let all: Vec<(usize, &RunRecord)> = runs.iter().enumerate().collect();
    let mut kinds: Vec<LossKind> = runs.iter().map(|r| r.config.loss).collect();
    kinds.sort_by_key(|k| k.name());
    kinds.dedup();
    let split = kinds.len() > 1;
    let measured = runs
        .iter()
        .any(|r| r.metrics.iter().any(|m| m.d_loss_end.is_some()));
    let end_charts = measured || !logs.is_empty();
    type Get = fn(&EpochMetrics) -> Option<f64>;
    let mut losses: Vec<(&str, &str, Get)> = vec![
        ("d_loss", "the mean over the epoch's steps", |m| {
            Some(m.d_loss)
        }),
        ("g_loss", "the mean over the epoch's steps", |m| {
            Some(m.g_loss)
        }),
    ];
    if end_charts {
        losses.push((
            "d_loss_end",
            "on the epoch's last batch after it (as the tutorial printed)",
            |m| m.d_loss_end,
        ));
        losses.push((
            "g_loss_end",
            "on the epoch's last batch after it (as the tutorial printed)",
            |m| m.g_loss_end,
        ));
    }
    let mut out = Vec::new();
    for (name, how, get) in losses {
        let imported = name.ends_with("_end");
        // With no runs (imported logs alone) there is still one chart per loss.
        let groups: Vec<Option<LossKind>> = match kinds.is_empty() {
            true => vec![None],
            false => kinds.iter().copied().map(Some).collect(),
        };
        for kind in groups {
            let members: Vec<(usize, &RunRecord)> = all
                .iter()
                .copied()
                .filter(|(_, r)| kind.is_none_or(|k| r.config.loss == k))
                .collect();
            let mut series = series_of(&members, &get);
            if imported {
                series.extend(logs.iter().enumerate().map(|(j, l)| {
                    Series {
                        label: format!("{} (imported)", l.name),
                        colour: runs.len() + j,
                        points: l
                            .rows
                            .iter()
                            .map(|r| (r.0, if name == "d_loss_end" { r.1 } else { r.2 }))
                            .collect(),
                    }
                }));
            }
            let kind_text = kind.map_or(String::new(), |k| format!(", loss {}", k.name()));
            out.push(Chart {
                name: match (split, kind) {
                    (true, Some(k)) => format!("{name}-{}", k.name()),
                    _ => name.to_string(),
                },
                caption: format!("{name}{kind_text}, {how}"),
                scale: Scale::Linear,
                series,
            });
        }
    }
    let d_outputs: [(&str, &str, Get); 2] = [
        (
            "d_real",
            "1 - D(x) on real images, log scale (toward 0: D certain)",
            |m| Some(1.0 - m.d_real),
        ),
        (
            "d_fake",
            "D(G(z)) on generated images, log scale (toward 0: D certain)",
            |m| Some(m.d_fake),
        ),
    ];
    for (name, caption, get) in d_outputs {
        out.push(Chart {
            name: name.to_string(),
            caption: caption.to_string(),
            scale: Scale::Log,
            series: series_of(&all, &get),
        });
    }
    out
}

/// Writes every chart of the page as a standalone SVG file, `DIR/<chart>.svg`, for documents
/// that embed images; returns their paths.
pub fn write_chart_files(
    runs: &[RunRecord],
    logs: &[ImportedLog],
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    crate::files::create_dir_all(dir)?;
    let mut paths = Vec::new();
    let charts = charts(runs, logs);
    let path_of = |chart: &Chart| dir.join(format!("{}.svg", chart.name));
    // Every path checked before any is written.
    for chart in &charts {
        crate::run_dir::check_output(&path_of(chart))?;
    }
    for chart in charts {
        let path = path_of(&chart);
        write_atomic(&path, svg_chart(&chart, true).as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}

/// Builds the page.
pub fn html(runs: &[RunRecord], logs: &[ImportedLog]) -> Result<String> {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>gan-run report</title><style>\
         body{font-family:sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
         .charts{display:flex;flex-wrap:wrap;gap:1em}svg{background:#fafafa;border:1px solid #ddd}\
         img{image-rendering:pixelated;width:200px}\
         </style></head><body>\n<h1>gan-run report</h1>\n",
    );
    // Legend: runs, then imported logs, in chart colours.
    page += "<p>";
    let labels = runs
        .iter()
        .map(|r| r.label())
        .chain(logs.iter().map(|l| l.name.clone()));
    for (i, label) in labels.enumerate() {
        let [cr, cg, cb] = PALETTE[i % PALETTE.len()];
        let _ = write!(
            page,
            "<span style=\"color:rgb({cr},{cg},{cb})\">&#9632; {}</span> &nbsp; ",
            escape(&label)
        );
    }
    page += "</p>\n<h2>Curves</h2>\n<div class=\"charts\">\n";
    for chart in charts(runs, logs) {
        page += &svg_chart(&chart, false);
    }
    page += "</div>\n<h2>Config keys that differ, and final metrics</h2>\n<table>\n";
    let table = compare(runs, None, false)?;
    if table.columns.len() > 1 + crate::compare::METRIC_COLUMNS.len() + WIDEST_KEYS {
        // Many differing keys (e.g. other architectures): one row per key, one column per run,
        // so that the page stays as wide as the runs are many.
        page += "<tr>";
        for (i, c) in table.columns.iter().enumerate() {
            let cells = std::iter::once(c).chain(table.rows.iter().map(|r| &r[i]));
            let tag = if i == 0 { "th" } else { "td" };
            for (j, cell) in cells.enumerate() {
                let tag = if j == 0 { "th" } else { tag };
                let _ = write!(page, "<{tag}>{}</{tag}>", escape(cell));
            }
            page += "</tr>\n<tr>";
        }
        page.truncate(page.len() - "<tr>".len());
    } else {
        page += "<tr>";
        for c in &table.columns {
            let _ = write!(page, "<th>{}</th>", escape(c));
        }
        page += "</tr>\n";
        for row in &table.rows {
            page += "<tr>";
            for c in row {
                let _ = write!(page, "<td>{}</td>", escape(c));
            }
            page += "</tr>\n";
        }
    }
    page += "</table>\n<h2>Sample grids</h2>\n<table>\n<tr><th>epoch</th>";
    for r in runs {
        let _ = write!(page, "<th>{}</th>", escape(&r.label()));
    }
    page += "</tr>\n";
    let mut epochs: Vec<usize> = runs.iter().flat_map(|r| r.sample_epochs()).collect();
    epochs.sort();
    epochs.dedup();
    for e in epochs {
        let _ = write!(page, "<tr><td>{e}</td>");
        for r in runs {
            let p = r.dir.join(SAMPLES_DIR).join(sample_grid_name(e, None));
            match crate::files::read(&p, crate::files::IMAGE) {
                Ok(bytes) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                    let _ = write!(
                        page,
                        "<td><img alt=\"{} epoch {e}\" src=\"data:image/png;base64,{b64}\"></td>",
                        escape(&r.label())
                    );
                }
                Err(_) => page += "<td>-</td>",
            }
        }
        page += "</tr>\n";
    }
    page += "</table>\n</body></html>\n";
    Ok(page)
}

/// One line chart, each series in its palette colour; non-finite values (and, on a log
/// scale, values that are not positive) are left out. `legend` adds the series' labels (for a
/// chart shown on its own).
fn svg_chart(chart: &Chart, legend: bool) -> String {
    let (w, h, pad) = (460.0, 260.0, 40.0);
    let to_axis = |v: f64| match chart.scale {
        Scale::Linear => v,
        Scale::Log if v > 0.0 => v.log10(),
        Scale::Log => f64::NAN,
    };
    let from_axis = |a: f64| match chart.scale {
        Scale::Linear => a,
        Scale::Log => 10f64.powf(a),
    };
    let series = &chart.series;
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(_, v)| to_axis(v)))
        .collect();
    let max_epoch = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(e, _)| e))
        .max()
        .unwrap_or(1);
    let (lo, hi) = bounds(&values);
    let x =
        |e: usize| pad + (e as f64 - 1.0) / ((max_epoch as f64 - 1.0).max(1.0)) * (w - 2.0 * pad);
    let y = |a: f64| h - pad - (a - lo) / (hi - lo) * (h - 2.0 * pad);
    let name = escape(&chart.caption);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{name}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\
         <text x=\"{pad}\" y=\"20\" font-size=\"12\" font-family=\"sans-serif\">{name}</text>\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{ylo}\" font-size=\"10\">{lo}</text><text x=\"2\" y=\"{yhi}\" font-size=\"10\">{hi}</text>\
         <text x=\"{pad}\" y=\"{xl}\" font-size=\"10\">1</text><text x=\"{r}\" y=\"{xl}\" font-size=\"10\" text-anchor=\"end\">epoch {max_epoch}</text>",
        b = h - pad,
        r = w - pad,
        ylo = h - pad,
        yhi = pad + 4.0,
        xl = h - pad + 14.0,
        lo = axis_value(from_axis(lo)),
        hi = axis_value(from_axis(hi)),
    );
    for (i, line) in series.iter().enumerate() {
        let [cr, cg, cb] = PALETTE[line.colour % PALETTE.len()];
        let drawn: Vec<(usize, f64)> = line
            .points
            .iter()
            .map(|&(e, v)| (e, to_axis(v)))
            .filter(|(_, a)| a.is_finite())
            .collect();
        let coords: Vec<String> = drawn
            .iter()
            .map(|&(e, a)| format!("{:.1},{:.1}", x(e), y(a)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"rgb({cr},{cg},{cb})\" stroke-width=\"2\" points=\"{}\"/>",
            coords.join(" ")
        );
        // A lone point has no line to show it: a dot (never at NaN coordinates).
        if let [(e, a)] = drawn[..] {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"rgb({cr},{cg},{cb})\"/>",
                x(e),
                y(a)
            );
        }
        if legend {
            let _ = write!(
                s,
                "<text x=\"{lx}\" y=\"{ly}\" font-size=\"11\" font-family=\"sans-serif\" \
                 text-anchor=\"end\" fill=\"rgb({cr},{cg},{cb})\">&#9632; {}</text>",
                escape(&line.label),
                lx = w - pad,
                ly = 20.0 + 13.0 * (i as f64 + 1.0),
            );
        }
    }
    s + "</svg>\n"
}

/// An axis value with enough digits to tell small values apart (1.4e-6 is not 0.000).
fn axis_value(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-2 {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

fn bounds(values: &[f64]) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    (lo, hi)
}

/// Writes `curves.png` into a run directory: D loss (blue) and G loss (orange) by epoch.
pub fn write_curves_png(run: &RunRecord) -> Result<()> {
    let (w, h, pad) = (480u32, 240u32, 20u32);
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let values: Vec<f64> = run
        .metrics
        .iter()
        .flat_map(|m| [m.d_loss, m.g_loss])
        .collect();
    let (lo, hi) = bounds(&values);
    let n = run.metrics.len().max(2) as f64 - 1.0;
    let to_px = |i: usize, v: f64| {
        let x = pad as f64 + i as f64 / n * (w - 2 * pad) as f64;
        let y = (h - pad) as f64 - (v - lo) / (hi - lo) * (h - 2 * pad) as f64;
        (x, y)
    };
    for x in pad..w - pad {
        img.put_pixel(x, h - pad, image::Rgb([150, 150, 150]));
    }
    for y in pad..=h - pad {
        img.put_pixel(pad, y, image::Rgb([150, 150, 150]));
    }
    for (k, get) in [METRICS[0].1, METRICS[1].1].into_iter().enumerate() {
        let colour = image::Rgb(PALETTE[k]);
        let pts: Vec<(f64, f64)> = run
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| to_px(i, get(m)))
            .collect();
        for pair in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
            for s in 0..=steps {
                let t = s as f64 / steps as f64;
                let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
                for (dx, dy) in [(0, 0), (0, 1), (1, 0)] {
                    let (px, py) = (x.round() as u32 + dx, y.round() as u32 + dy);
                    if px < w && py < h {
                        img.put_pixel(px, py, colour);
                    }
                }
            }
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .expect("in-memory PNG");
    write_atomic(&run.dir.join(CURVES_FILE), &bytes.into_inner())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_logs_count_epochs_from_one_and_name_their_file_when_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        std::fs::write(&path, "epoch,d_loss,g_loss\n0,1.01,0.69\n1,1.2,0.6\n").unwrap();
        let log = ImportedLog::read(&format!("tf={}", path.display())).unwrap();
        assert_eq!(log.name, "tf");
        assert_eq!(log.rows, vec![(1, 1.01, 0.69), (2, 1.2, 0.6)]);

        std::fs::write(&path, "epoch,d_loss\n0,1.01\n").unwrap();
        let err = ImportedLog::read(&format!("tf={}", path.display())).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("log.csv") && err.contains("g_loss"), "{err}");
        let err = ImportedLog::read("no-equals-sign").unwrap_err().to_string();
        assert!(err.contains("NAME=FILE"), "{err}");
    }

    #[test]
    fn an_imported_log_joins_the_end_of_epoch_charts_with_a_legend() {
        let log = ImportedLog {
            name: "tutorial".into(),
            rows: vec![(1, 1.0, 0.7), (2, 1.1, 0.000_001_4)],
        };
        let charts = charts(&[], std::slice::from_ref(&log));
        let names: Vec<&str> = charts.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"d_loss_end") && names.contains(&"g_loss_end"));
        let chart = charts.iter().find(|c| c.name == "g_loss_end").unwrap();
        assert_eq!(chart.series[0].points, vec![(1, 0.7), (2, 0.000_001_4)]);
        let svg = svg_chart(chart, true);
        assert!(
            svg.contains("tutorial (imported)") && svg.contains("1.40e-6"),
            "{svg}"
        );
    }

    fn record(name: &str, overrides: &[&str], loss_d: f64) -> RunRecord {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let o: Vec<crate::config::Override> =
            overrides.iter().map(|s| s.parse().unwrap()).collect();
        let m = EpochMetrics {
            epoch: 1,
            d_loss: loss_d,
            g_loss: 0.7,
            d_real: 0.9,
            d_fake: 1e-5,
            seconds: 1.0,
            samples_per_sec: 1.0,
            fid: None,
            classifier_score: None,
            modes: None,
            parzen_nats: None,
            d_loss_end: None,
            g_loss_end: None,
            precision: None,
            recall: None,
            kid: None,
            kid_se: None,
            g_sigma_max: None,
            d_sigma_max: None,
            penalty: None,
            d_grad_norm_real: None,
            d_grad_norm_fake: None,
        };
        RunRecord {
            dir: std::path::PathBuf::from("/nonexistent").join(name),
            config: crate::config::load(&path, &o).unwrap(),
            metrics: vec![m],
        }
    }

    /// Runs of two loss kinds get a loss chart each, named by the kind; D's outputs share log
    /// charts; a table with many differing keys turns to one row per key.
    #[test]
    fn loss_kinds_get_their_own_charts_and_wide_tables_turn() {
        let runs = [
            record("a", &[], 1.3),
            record(
                "b",
                &[
                    "loss=tutorial_double_sigmoid",
                    "seed=3",
                    "noise.dim=8",
                    "training.batch_size=20",
                    "optimizer.generator.beta1=0.9",
                    "optimizer.generator.lr=1e-3",
                ],
                0.9,
            ),
        ];
        let names: Vec<String> = charts(&runs, &[]).into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "d_loss-bce_logits",
                "d_loss-tutorial_double_sigmoid",
                "g_loss-bce_logits",
                "g_loss-tutorial_double_sigmoid",
                "d_real",
                "d_fake"
            ]
        );
        let page = html(&runs, &[]).unwrap();
        assert!(
            page.contains("<tr><th>run</th><th>a</th><th>b</th></tr>"),
            "transposed"
        );
        assert!(page.contains("<tr><th>noise.dim</th><td>16</td><td>8</td></tr>"));
        let narrow = html(&[record("a", &[], 1.3), record("b", &["seed=3"], 0.9)], &[]).unwrap();
        assert!(
            narrow.contains("<tr><th>run</th><th>seed</th>"),
            "not transposed"
        );
    }

    /// On a log scale a value of 1e-6 sits two decades below 1e-4, where a linear axis would
    /// draw both on zero; values that are not positive are left out, not drawn at NaN.
    #[test]
    fn log_scale_charts_spread_small_values_and_skip_non_positive_ones() {
        let chart = Chart {
            name: "d_fake".into(),
            caption: "D(G(z))".into(),
            scale: Scale::Log,
            series: vec![Series {
                label: "a".into(),
                colour: 0,
                points: vec![(1, 1e-2), (2, 1e-4), (3, 1e-6), (4, 0.0)],
            }],
        };
        let svg = svg_chart(&chart, false);
        assert!(!svg.contains("NaN"), "{svg}");
        let points: Vec<(f64, f64)> = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 3, "the zero is left out");
        let (y0, y1, y2) = (points[0].1, points[1].1, points[2].1);
        assert!(
            ((y1 - y0) - (y2 - y1)).abs() < 0.2,
            "equal decades: {points:?}"
        );
        assert!(svg.contains("1.00e-6") && svg.contains("0.010"), "{svg}");
    }
}
