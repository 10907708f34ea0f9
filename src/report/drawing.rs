//! The report's drawings: its charts (the runs' losses, one chart per loss kind; D's outputs
//! on log scales; the end-of-epoch losses with imported logs) as SVG, and a run's loss curves
//! as a PNG. A value that is not finite is a gap in a line, never a point at infinity.

use std::fmt::Write as _;

use super::{escape, ImportedLog};
use crate::compare::RunRecord;
use crate::config::LossKind;
use crate::train::EpochMetrics;

/// Line colours, one per run (RGB).
pub(super) const PALETTE: [[u8; 3]; 8] = [
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
/// One line of a chart: a label, its colour (its place in the page's legend) and
/// `(epoch, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Series {
    pub(super) label: String,
    pub(super) colour: usize,
    pub(super) points: Vec<(usize, f64)>,
}

/// How a chart's values map to its height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Scale {
    Linear,
    /// Powers of ten: for D's outputs, whose interesting values run from 0.5 down to 1e-6.
    Log,
}

/// One chart of the page: its file name, caption, scale and lines.
#[derive(Debug, Clone)]
pub(super) struct Chart {
    pub(super) name: String,
    pub(super) caption: String,
    pub(super) scale: Scale,
    pub(super) series: Vec<Series>,
}

/// The charts of the page: the runs' losses, one chart per loss kind among them (their values
/// mean different things), D's outputs on log scales, and, where any run measured them or a log
/// is imported, the end-of-epoch losses (imported logs join those of every loss kind, marked).
pub(super) fn charts(runs: &[RunRecord], logs: &[ImportedLog]) -> Vec<Chart> {
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

/// One line chart, each series in its palette colour; non-finite values (and, on a log
/// scale, values that are not positive) are gaps in its line. `legend` adds the series'
/// labels (for a chart shown on its own).
pub(super) fn svg_chart(chart: &Chart, legend: bool) -> String {
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
        let on_axis: Vec<(usize, f64)> =
            line.points.iter().map(|&(e, v)| (e, to_axis(v))).collect();
        // Runs of drawable points; a value that is not (inf, NaN, or not positive on a log
        // scale) is a gap. A series with none still gets its (empty) line.
        let mut segments: Vec<&[(usize, f64)]> = on_axis
            .split(|(_, a)| !a.is_finite())
            .filter(|run| !run.is_empty())
            .collect();
        if segments.is_empty() {
            segments.push(&[]);
        }
        for segment in segments {
            let coords: Vec<String> = segment
                .iter()
                .map(|&(e, a)| format!("{:.1},{:.1}", x(e), y(a)))
                .collect();
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"rgb({cr},{cg},{cb})\" stroke-width=\"2\" points=\"{}\"/>",
                coords.join(" ")
            );
            // A lone point has no line to show it: a dot.
            if let [(e, a)] = segment[..] {
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"rgb({cr},{cg},{cb})\"/>",
                    x(e),
                    y(a)
                );
            }
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

/// A PNG of a run's D loss (blue) and G loss (orange) by epoch; a value that is not finite is
/// a gap.
pub fn curves_png(run: &RunRecord) -> Vec<u8> {
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
            if ![x0, y0, x1, y1].iter().all(|c| c.is_finite()) {
                continue;
            }
            // Finite points lie inside the image: a few hundred pixels per segment at most.
            let length = (x1 - x0).abs().max((y1 - y0).abs()).min((w + h) as f64);
            let steps = (length.ceil() as usize).max(1);
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
    bytes.into_inner()
}
