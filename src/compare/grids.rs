//! `diff`'s picture: the two runs' losses by epoch as charts (A and B in the legend), and
//! below them their sample grids side by side, epoch by epoch, labelled: one PNG that says how
//! the runs differ in training and in what they draw.

use super::RunRecord;
use crate::error::{Error, Result};
use crate::plot::{Line, Plot, Scale, PALETTE};
use crate::run_dir::{sample_grid_name, SAMPLES_DIR};
use crate::train::EpochMetrics;

/// Each chart's width.
const CHART_WIDTH: u32 = 420;
/// Between the grids, and below each row of them.
const GAP: u32 = 8;
/// Above the grids, for the runs' names; left of them, for the epochs.
const HEADER: u32 = 26;
const MARGIN: u32 = 72;
const TEXT_SIZE: f64 = 15.0;

/// A PNG of two runs: their D and G losses by epoch, side by side as charts with A and B in
/// the legend, and below them, per epoch in `epochs`, A's sample grid on the left and B's on
/// the right, under a header naming A and B, each row labelled with its epoch.
pub fn diff_png(a: &RunRecord, b: &RunRecord, epochs: &[usize]) -> Result<Vec<u8>> {
    let mut pairs = Vec::new();
    for &e in epochs {
        pairs.push((e, load_grid(a, e)?, load_grid(b, e)?));
    }
    let charts = loss_charts(a, b);
    let left_width = pairs.iter().map(|(_, x, _)| x.width()).max().unwrap_or(0);
    let grids_width = pairs
        .iter()
        .map(|(_, x, y)| MARGIN + x.width() + GAP + y.width())
        .max()
        .unwrap_or(0);
    let charts_width = charts.iter().map(|c| c.width()).sum::<u32>();
    let charts_height = charts.iter().map(|c| c.height()).max().unwrap_or(0);
    let width = grids_width.max(charts_width);
    let rows_height: u32 = pairs
        .iter()
        .map(|(_, x, y)| x.height().max(y.height()) + GAP)
        .sum();
    let header = if pairs.is_empty() { 0 } else { HEADER };
    let height = charts_height + header + rows_height;
    let mut out = image::RgbImage::from_pixel(width, height, image::Rgb([250, 250, 250]));
    let mut x = 0;
    for chart in &charts {
        image::imageops::replace(&mut out, chart, x as i64, 0);
        x += chart.width();
    }
    if let Some((_, _, right)) = pairs.first() {
        let y = (charts_height + 4) as i32;
        let room = left_width + GAP;
        let a_text = format!("A: {}", a.label());
        crate::plot::label(&mut out, (MARGIN as i32, y), &a_text, TEXT_SIZE, room);
        let b_x = (MARGIN + left_width + GAP) as i32;
        let b_text = format!("B: {}", b.label());
        crate::plot::label(&mut out, (b_x, y), &b_text, TEXT_SIZE, right.width());
    }
    let mut top = charts_height + header;
    for (epoch, x, y) in &pairs {
        let text = format!("epoch {epoch}");
        crate::plot::label(&mut out, (4, top as i32 + 2), &text, TEXT_SIZE, MARGIN - 8);
        let gray = |g: &image::GrayImage| image::DynamicImage::ImageLuma8(g.clone()).to_rgb8();
        image::imageops::replace(&mut out, &gray(x), MARGIN as i64, top as i64);
        let b_left = (MARGIN + x.width() + GAP) as i64;
        image::imageops::replace(&mut out, &gray(y), b_left, top as i64);
        top += x.height().max(y.height()) + GAP;
    }
    Ok(crate::plot::encode_png(&out))
}

/// A run's sample grid of epoch `e`.
fn load_grid(r: &RunRecord, e: usize) -> Result<image::GrayImage> {
    let p = r.dir.join(SAMPLES_DIR).join(sample_grid_name(e, None));
    let failed = |err: String| Error::RunDir {
        path: p.clone(),
        message: format!("cannot read sample grid: {err}"),
    };
    let bytes = crate::files::read(&p, crate::files::IMAGE).map_err(|e| failed(e.to_string()))?;
    Ok(image::load_from_memory(&bytes)
        .map_err(|e| failed(e.to_string()))?
        .to_luma8())
}

/// The D loss and G loss charts of A (blue) and B (orange), every epoch of each.
fn loss_charts(a: &RunRecord, b: &RunRecord) -> Vec<image::RgbImage> {
    type Get = fn(&EpochMetrics) -> f64;
    let losses: [(&str, Get); 2] = [("d_loss", |m| m.d_loss), ("g_loss", |m| m.g_loss)];
    losses
        .iter()
        .map(|&(name, get)| {
            let lines: Vec<Line> = [("A", a), ("B", b)]
                .iter()
                .zip(PALETTE)
                .map(|(&(which, r), colour)| Line {
                    label: format!("{which}: {}", r.label()),
                    colour,
                    points: r.metrics.iter().map(|m| (m.epoch, get(m))).collect(),
                })
                .collect();
            let values = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
            let title = format!("{name}, the mean over each epoch's steps");
            let plot = Plot {
                title: &title,
                y_label: name,
                scale: Scale::for_values(values),
                lines: &lines,
                legend: true,
            };
            crate::plot::rgb(&plot, CHART_WIDTH)
        })
        .collect()
}
