//! The HTML report: one self-contained page (inline SVG curves, images as data URIs, no
//! network) built from run directories only, plus a `curves.png` written into each run.

use std::fmt::Write as _;

use base64::Engine;

use crate::compare::{compare, RunRecord};
use crate::error::Result;
use crate::run_dir::{atomic_write, SAMPLES_DIR};
use crate::train::EpochMetrics;

/// File name of the per-run curves plot.
pub const CURVES_FILE: &str = "curves.png";

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

/// Builds the page.
pub fn html(runs: &[RunRecord]) -> Result<String> {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>gan-run report</title><style>\
         body{font-family:sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
         .charts{display:flex;flex-wrap:wrap;gap:1em}svg{background:#fafafa;border:1px solid #ddd}\
         img{image-rendering:pixelated;width:200px}\
         </style></head><body>\n<h1>gan-run report</h1>\n",
    );
    // Legend.
    page += "<p>";
    for (i, r) in runs.iter().enumerate() {
        let [cr, cg, cb] = PALETTE[i % PALETTE.len()];
        let _ = write!(
            page,
            "<span style=\"color:rgb({cr},{cg},{cb})\">&#9632; {}</span> &nbsp; ",
            escape(&r.label())
        );
    }
    page += "</p>\n<h2>Curves</h2>\n<div class=\"charts\">\n";
    for (name, get) in METRICS {
        page += &svg_chart(name, runs, get);
    }
    page += "</div>\n<h2>Config keys that differ, and final metrics</h2>\n<table>\n";
    let table = compare(runs, None)?;
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
            let p = r.dir.join(SAMPLES_DIR).join(format!("epoch-{e:04}.png"));
            match std::fs::read(&p) {
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

/// One metric of all runs as an SVG line chart.
fn svg_chart(name: &str, runs: &[RunRecord], get: fn(&EpochMetrics) -> f64) -> String {
    let (w, h, pad) = (420.0, 240.0, 40.0);
    let values: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(get))
        .collect();
    let max_epoch = runs
        .iter()
        .flat_map(|r| r.metrics.iter().map(|m| m.epoch))
        .max()
        .unwrap_or(1);
    let (lo, hi) = bounds(&values);
    let x =
        |e: usize| pad + (e as f64 - 1.0) / ((max_epoch as f64 - 1.0).max(1.0)) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{name}\">\
         <text x=\"{pad}\" y=\"20\" font-size=\"14\">{name}</text>\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{ylo}\" font-size=\"10\">{lo:.3}</text><text x=\"2\" y=\"{yhi}\" font-size=\"10\">{hi:.3}</text>\
         <text x=\"{pad}\" y=\"{xl}\" font-size=\"10\">1</text><text x=\"{r}\" y=\"{xl}\" font-size=\"10\" text-anchor=\"end\">epoch {max_epoch}</text>",
        b = h - pad,
        r = w - pad,
        ylo = h - pad,
        yhi = pad + 4.0,
        xl = h - pad + 14.0,
    );
    for (i, r) in runs.iter().enumerate() {
        let [cr, cg, cb] = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = r
            .metrics
            .iter()
            .map(|m| format!("{:.1},{:.1}", x(m.epoch), y(get(m))))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"rgb({cr},{cg},{cb})\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        if let [only] = r.metrics.as_slice() {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"rgb({cr},{cg},{cb})\"/>",
                x(only.epoch),
                y(get(only))
            );
        }
    }
    s + "</svg>\n"
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
    atomic_write(&run.dir.join(CURVES_FILE), &bytes.into_inner())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
