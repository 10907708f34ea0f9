//! The HTML report: one self-contained page (inline SVG curves, images as data URIs, no
//! network) built from run directories and, optionally, loss logs printed by other tools (such
//! as the TensorFlow tutorial's); on request its charts as files, with each run's loss curves
//! as a PNG. It reads runs and never writes into them: everything goes where it is told.
//! Values that are not finite (a loss that reached inf or NaN) are gaps in the lines.

use std::fmt::Write as _;

use base64::Engine;

use crate::compare::{compare, RunRecord};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::run_dir::{curves_chart_name, sample_grid_name, SAMPLES_DIR};

mod drawing;
pub use drawing::curves_png;
use drawing::{charts, svg_chart, PALETTE};

/// With more differing keys than this, the report's table is shown transposed.
const WIDEST_KEYS: usize = 4;

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

/// Writes every chart of the page as a standalone SVG file, `DIR/<chart>.svg`, and each run's
/// D and G loss curves as a PNG, `DIR/curves-<run>.png`, for documents that embed images;
/// returns their paths. Every file is drawn and every path checked before any is written,
/// and a stop requested before the writes leaves none.
pub fn write_chart_files(
    runs: &[RunRecord],
    logs: &[ImportedLog],
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<(std::path::PathBuf, Vec<u8>)> = charts(runs, logs)
        .into_iter()
        .map(|chart| {
            let path = dir.join(format!("{}.svg", chart.name));
            (path, svg_chart(&chart, true).into_bytes())
        })
        .collect();
    for run in runs {
        files.push((dir.join(curves_chart_name(&run.label())), curves_png(run)));
    }
    for (path, _) in &files {
        crate::run_dir::check_output(path)?;
    }
    crate::files::create_dir_all(dir)?;
    for (path, bytes) in &files {
        write_atomic(path, bytes)?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
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
    page += &config_table(runs)?;
    page += "</table>\n";
    // Seeds of one setting say more together than apart (GANs amplify rounding).
    if let Some(settings) = crate::compare::by_setting(runs, None, None, false)? {
        page += "<h2>By setting: each metric's mean &plusmn; standard deviation over its \
                 seeds</h2>\n<table>\n";
        page += &html_rows(&settings.columns, &settings.shown());
        page += "</table>\n";
    }
    page += &reference_table();
    page += "<h2>Sample grids</h2>\n<table>\n<tr><th>epoch</th>";
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

/// The rows of the table of config keys that differ (a network's layer list as one key) and
/// final metrics: a column per key, or, when more than [`WIDEST_KEYS`] keys differ, a row per
/// key and a column per run, so that the page stays as wide as the runs are many.
fn config_table(runs: &[RunRecord]) -> Result<String> {
    let table = compare(runs, None, None, false)?;
    let rows = table.shown();
    let mut page = String::new();
    let metrics = table
        .columns
        .iter()
        .filter(|c| crate::compare::is_metric_column(c))
        .count();
    if table.columns.len() > 1 + metrics + WIDEST_KEYS {
        page += "<tr>";
        for (i, c) in table.columns.iter().enumerate() {
            let cells = std::iter::once(c).chain(rows.iter().map(|r| &r[i]));
            let tag = if i == 0 { "th" } else { "td" };
            for (j, cell) in cells.enumerate() {
                let tag = if j == 0 { "th" } else { tag };
                let _ = write!(page, "<{tag}>{}</{tag}>", escape(cell));
            }
            page += "</tr>\n<tr>";
        }
        page.truncate(page.len() - "<tr>".len());
    } else {
        page += &html_rows(&table.columns, &rows);
    }
    Ok(page)
}

/// The reference rows `gan-run eval` prints (real training digits, uniform noise), scored by
/// the built-in classifier, so that the runs' scores have their scale beside them.
fn reference_table() -> String {
    let Some(reference) = crate::eval::Reference::builtin() else {
        return String::new();
    };
    let columns: Vec<String> = ["images", "fid", "score", "modes", "parzen", "precision"]
        .into_iter()
        .chain(["recall", "kid"])
        .map(String::from)
        .collect();
    let rows: Vec<Vec<String>> = [
        ("real training images", &reference.real_train),
        ("uniform noise", &reference.uniform_noise),
    ]
    .into_iter()
    .map(|(name, s)| {
        let pr = s.precision_recall.as_ref();
        let fixed =
            |v: Option<f64>, places: usize| v.map_or("-".into(), |v| format!("{v:.places$}"));
        vec![
            name.to_string(),
            format!("{:.2}", s.fid),
            format!("{:.2}", s.classifier_score),
            s.coverage.modes.to_string(),
            format!("{:.1}", s.parzen.test.mean),
            fixed(pr.map(|p| p.precision), 3),
            fixed(pr.map(|p| p.recall), 3),
            fixed(s.kid.map(|k| k.mean), 5),
        ]
    })
    .collect();
    format!(
        "<h2>For scale: 10,000 real training digits and 10,000 images of noise</h2>\n\
         <table>\n{}</table>\n",
        html_rows(&columns, &rows)
    )
}

/// A header row of `columns`, then a row per entry of `rows`.
fn html_rows(columns: &[String], rows: &[Vec<String>]) -> String {
    let mut page = String::from("<tr>");
    for c in columns {
        let _ = write!(page, "<th>{}</th>", escape(c));
    }
    page += "</tr>\n";
    for row in rows {
        page += "<tr>";
        for c in row {
            let _ = write!(page, "<td>{}</td>", escape(c));
        }
        page += "</tr>\n";
    }
    page
}

/// Text as HTML shows it.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::drawing::{Chart, Scale, Series};
    use super::*;
    use crate::train::EpochMetrics;

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
        // 0.7 and 1.4e-6: a log axis, from 1e-6 to 1.
        assert!(
            svg.contains("tutorial (imported)") && svg_texts(&svg).contains(&"1e-6".to_string()),
            "{svg}"
        );
    }

    /// Where a run was scored, the page charts FID, the classifier score, precision and
    /// recall over the scored epochs; where none was, it has no such charts.
    #[test]
    fn scored_runs_get_charts_of_what_scoring_measured() {
        let unscored = record("a", &[], 1.0);
        let names = |runs: &[RunRecord]| -> Vec<String> {
            charts(runs, &[]).into_iter().map(|c| c.name).collect()
        };
        assert!(!names(std::slice::from_ref(&unscored)).contains(&"fid".to_string()));
        let mut scored = record("b", &[], 1.0);
        let at = |epoch, fid| EpochMetrics {
            epoch,
            fid: Some(fid),
            classifier_score: Some(9.0),
            modes: Some(10),
            parzen_nats: Some(200.0),
            ..scored.metrics[0].clone()
        };
        scored.metrics = vec![at(1, 150.0), at(2, 0.9)];
        let runs = [unscored, scored];
        let all = names(&runs);
        for name in ["fid", "classifier_score"] {
            assert!(all.contains(&name.to_string()), "{all:?}");
        }
        // Not measured by any run: no chart.
        assert!(!all.contains(&"precision".to_string()), "{all:?}");
        let fid = charts(&runs, &[])
            .into_iter()
            .find(|c| c.name == "fid")
            .unwrap();
        assert_eq!(fid.series[1].points, vec![(1, 150.0), (2, 0.9)]);
        assert!(fid.series[0].points.is_empty());
        assert_eq!(fid.scale, Scale::Log);
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
            ..Default::default()
        };
        RunRecord {
            dir: std::path::PathBuf::from("/nonexistent").join(name),
            config: crate::config::load(&path, &o).unwrap(),
            metrics: vec![m],
            eval: None,
            progress: None,
        }
    }

    /// A loss that reached inf or NaN is a gap in the chart's line and in the run's PNG, and
    /// drawing them ends (it once looped without end on an infinite loss).
    #[test]
    fn non_finite_values_are_gaps() {
        let chart = Chart {
            name: "d_loss".into(),
            caption: "D loss".into(),
            y_label: "d_loss".into(),
            scale: Scale::Linear,
            series: vec![Series {
                label: "a".into(),
                colour: 0,
                points: vec![
                    (1, 1.0),
                    (2, f64::INFINITY),
                    (3, 0.5),
                    (4, 0.7),
                    (5, f64::NAN),
                    (6, 0.6),
                ],
            }],
        };
        let svg = svg_chart(&chart, false);
        // Epochs 3-4 a line, epochs 1 and 6 dots (a lone point has no line to show it).
        assert_eq!(data_lines(&svg).len(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let mut run = record("a", &[], 1.0);
        let row = run.metrics[0].clone();
        run.metrics = [1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.5]
            .iter()
            .enumerate()
            .map(|(i, &v)| EpochMetrics {
                epoch: i + 1,
                d_loss: v,
                g_loss: v,
                ..row.clone()
            })
            .collect();
        let png = image::load_from_memory(&curves_png(&run)).unwrap();
        assert_eq!(png.width(), 480);
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
            y_label: "D(G(z))".into(),
            scale: Scale::Log,
            series: vec![Series {
                label: "a".into(),
                colour: 0,
                points: vec![(1, 1e-2), (2, 1e-4), (3, 1e-6), (4, 0.0)],
            }],
        };
        let svg = svg_chart(&chart, false);
        assert!(!svg.contains("NaN"), "{svg}");
        let points: Vec<(f64, f64)> = data_lines(&svg)[0]
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 3, "the zero is left out");
        let (y0, y1, y2) = (points[0].1, points[1].1, points[2].1);
        // Equal decades, to the pixel plotters rounds to.
        assert!(
            ((y1 - y0) - (y2 - y1)).abs() <= 1.0,
            "equal decades: {points:?}"
        );
        let texts = svg_texts(&svg);
        for decade in ["1e-6", "1e-5", "1e-4", "0.001", "0.01"] {
            assert!(texts.contains(&decade.to_string()), "{decade}: {texts:?}");
        }
    }

    /// The texts of an SVG's `<text>` elements, in order.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .map(|t| {
                let body = &t[t.find('>').unwrap() + 1..];
                let text = body[..body.find("</text>").unwrap()].trim();
                text.replace("&apos;", "'")
                    .replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            })
            .collect()
    }

    /// The `points` of an SVG's data lines (axes and ticks are drawn 1 pixel wide, lines 2).
    fn data_lines(svg: &str) -> Vec<String> {
        let width = format!("stroke-width=\"{}\"", crate::plot::LINE_WIDTH);
        svg.split("<polyline")
            .skip(1)
            .filter(|p| p[..p.find("/>").unwrap()].contains(&width))
            .map(|p| {
                p.split("points=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// A chart reads on its own: its y axis has ticks between its ends (the old chart labelled
    /// only the lowest and highest value), gridlines, both axes named, and a caption too long
    /// for one line drawn whole on lines that fit the width (the old one ran off the edge).
    #[test]
    fn charts_have_ticks_gridlines_axis_names_and_whole_titles() {
        let caption = "d_loss_end, loss tutorial_double_sigmoid, on the epoch's last batch after \
                       it (as the tutorial printed)";
        let chart = Chart {
            name: "d_loss_end".into(),
            caption: caption.into(),
            y_label: "d_loss_end".into(),
            scale: Scale::Linear,
            series: vec![Series {
                label: "a".into(),
                colour: 0,
                points: (1..=30).map(|e| (e, 0.5 + 1.0 / e as f64)).collect(),
            }],
        };
        let svg = svg_chart(&chart, true);
        let texts = svg_texts(&svg);
        let numbers: Vec<f64> = texts.iter().filter_map(|t| t.parse().ok()).collect();
        let y_ticks: Vec<f64> = numbers
            .iter()
            .copied()
            .filter(|v| v.fract() != 0.0)
            .collect();
        assert!(y_ticks.len() >= 4, "y tick labels: {texts:?}");
        let x_ticks = numbers.iter().filter(|v| v.fract() == 0.0).count();
        assert!(x_ticks >= 3, "x tick labels: {texts:?}");
        let grid = svg.matches("stroke=\"#DCDCDC\"").count();
        assert!(grid >= 7, "gridlines: {grid}");
        assert!(texts.contains(&"epoch".to_string()) && texts.contains(&"d_loss_end".to_string()));
        let title: Vec<&String> = texts
            .iter()
            .filter(|t| caption.contains(t.as_str()) && t.len() > 12)
            .collect();
        assert!(title.len() >= 2, "wrapped: {title:?}");
        assert_eq!(
            title
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            caption
        );
        for line in title {
            let width = crate::plot::text_width(line, 16.0);
            assert!(width <= drawing::CHART_WIDTH - 16, "{line}: {width} px");
        }
        assert!(texts.contains(&"a".to_string()), "the legend");
    }
}
