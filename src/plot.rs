//! Line charts by epoch that people can read, for the report's SVG charts and the PNGs of
//! `report --charts` and `diff --png`: a title wrapped to fit the width, both axes with ticks,
//! labels and gridlines, the axis names (`epoch` and the value), a legend below the plot that
//! wraps too, and a log axis with decade ticks where values span decades. The hand-written SVG
//! it replaced showed a clipped title and only the extremes of each axis.
//!
//! Drawn once through plotters for both backends. Text is measured (for the wrapping) and, in
//! PNGs, rasterised with the font embedded in the binary (`plot/DejaVuSans-subset.ttf`, ASCII
//! and a few symbols of DejaVu Sans; its licence beside it), so nothing depends on the fonts
//! installed on a machine. SVG text is drawn by the browser's own sans-serif. A value that is
//! not finite (or, on a log axis, not positive) is a gap in its line; a point without a
//! neighbour on either side is a dot.

use plotters::coord::ranged1d::Ranged;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Line colours, one per run or line (RGB).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The font's family name for plotters, and its bytes.
const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("plot/DejaVuSans-subset.ttf");

/// Text sizes (plotters' units: the SVG font size is this / 1.24).
const TITLE_SIZE: f64 = 16.0;
const LABEL_SIZE: f64 = 13.0;
const LEGEND_SIZE: f64 = 13.0;
/// The plot's own height (axes, ticks and their labels), below the title and above the legend.
const PLOT_HEIGHT: u32 = 230;
/// Space left free at each side of the title and legend.
const PAD: u32 = 8;
/// Gridlines, and the background.
const GRID: RGBColor = RGBColor(220, 220, 220);
const BACKGROUND: RGBColor = RGBColor(250, 250, 250);
/// About how many ticks the y axis gets.
const Y_LABELS: usize = 8;
/// The stroke width of data lines (axes and ticks are 1: tests tell them apart by it).
pub const LINE_WIDTH: u32 = 2;

/// How values map to a chart's height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Values as they are.
    Linear,
    /// Powers of ten, with a tick at each decade: for values that span decades (D's outputs
    /// run from 0.5 down to 1e-6).
    Log,
}

impl Scale {
    /// Log where every finite value is positive and they span more than two decades (a loss
    /// falling from 2 to 1e-5 is a line on a log axis and a corner on a linear one); linear
    /// otherwise, and always where a value is zero or negative, which a log axis cannot show.
    pub fn for_values(values: impl IntoIterator<Item = f64>) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            if v <= 0.0 {
                return Scale::Linear;
            }
            (lo, hi) = (lo.min(v), hi.max(v));
        }
        match lo.is_finite() && hi / lo > 100.0 {
            true => Scale::Log,
            false => Scale::Linear,
        }
    }
}

/// One line: its legend label, colour and `(epoch, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its name in the legend.
    pub label: String,
    /// RGB.
    pub colour: [u8; 3],
    /// `(epoch, value)`, in order of epochs.
    pub points: Vec<(usize, f64)>,
}

/// A chart: its title, the name of its values (the y axis's label), scale and lines, and
/// whether it shows its own legend (a chart on a page with a shared legend does not).
#[derive(Debug, Clone, Copy)]
pub struct Plot<'a> {
    /// Drawn whole, wrapped to the width.
    pub title: &'a str,
    /// What the values are (the x axis is always the epoch).
    pub y_label: &'a str,
    /// How values map to the height.
    pub scale: Scale,
    /// The lines, drawn in order.
    pub lines: &'a [Line],
    /// Whether the chart shows its lines' labels below the plot.
    pub legend: bool,
}

/// Registers the embedded font with plotters, once per process.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is part of the binary and tested (`the_embedded_font_measures_text`).
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// The width of `text` at `size`, in pixels, as the embedded font sets it (an estimate from its
/// length if the font cannot measure it).
pub fn text_width(text: &str, size: f64) -> u32 {
    register_font();
    (FONT, size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or_else(|_| (text.chars().count() as f64 * size * 0.6).ceil() as u32)
}

/// `text` broken at spaces into lines no wider than `width` pixels at `size`; a single word
/// wider than that is a line of its own, shrunk by [`fit_size`] where it is drawn.
pub fn wrap(text: &str, size: f64, width: u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), size) <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// The size, at most `size`, at which `text` fits in `width` pixels.
fn fit_size(text: &str, size: f64, width: u32) -> f64 {
    let w = text_width(text, size);
    match w <= width {
        true => size,
        false => (size * width as f64 / w as f64).floor().max(6.0),
    }
}

/// Where a chart's parts go: the title's lines, the legend's rows (indices into the lines)
/// and the canvas height they make.
struct Layout {
    title: Vec<String>,
    legend: Vec<Vec<usize>>,
    height: u32,
}

const TITLE_LINE: u32 = 20;
const LEGEND_ROW: u32 = 18;
/// A legend entry: a swatch, a gap, the label, and space before the next entry.
const SWATCH: u32 = 14;

fn layout(plot: &Plot, width: u32) -> Layout {
    let inner = width - 2 * PAD;
    let title = wrap(plot.title, TITLE_SIZE, inner);
    let mut legend: Vec<Vec<usize>> = Vec::new();
    if plot.legend {
        let mut used = inner;
        for (i, line) in plot.lines.iter().enumerate() {
            let w = SWATCH + 6 + text_width(&line.label, LEGEND_SIZE) + 16;
            match legend.last_mut() {
                Some(row) if used + w <= inner => row.push(i),
                _ => {
                    legend.push(vec![i]);
                    used = 0;
                }
            }
            used += w;
        }
    }
    let height = PAD
        + TITLE_LINE * title.len() as u32
        + PLOT_HEIGHT
        + LEGEND_ROW * legend.len() as u32
        + PAD;
    Layout {
        title,
        legend,
        height,
    }
}

/// The chart as a standalone SVG document, `width` pixels wide (its height follows from the
/// title's and legend's lines).
pub fn svg(plot: &Plot, width: u32) -> String {
    let layout = layout(plot, width);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, layout.height)).into_drawing_area();
        // Drawing into a string cannot fail but for a font error, which the tests rule out.
        let _ = draw(&root, plot, &layout).and_then(|_| root.present());
    }
    out
}

/// The chart as an RGB image `width` pixels wide.
pub fn rgb(plot: &Plot, width: u32) -> image::RgbImage {
    let layout = layout(plot, width);
    let mut buf = vec![0u8; width as usize * layout.height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, layout.height)).into_drawing_area();
        let _ = draw(&root, plot, &layout).and_then(|_| root.present());
    }
    image::RgbImage::from_raw(width, layout.height, buf).expect("buffer of the image's size")
}

/// An image as PNG bytes.
pub fn encode_png(img: &image::RgbImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .expect("in-memory PNG");
    bytes.into_inner()
}

/// Writes `text` onto `img` in the embedded font, in black, its top left corner at `(x, y)`,
/// shrunk to fit in `width` pixels.
pub fn label(img: &mut image::RgbImage, (x, y): (i32, i32), text: &str, size: f64, width: u32) {
    let (w, h) = img.dimensions();
    let size = fit_size(text, size, width);
    let root = BitMapBackend::with_buffer(img.as_mut(), (w, h)).into_drawing_area();
    let style = TextStyle::from((FONT, size).into_font()).color(&BLACK);
    let _ = root
        .draw(&Text::new(text.to_string(), (x, y), style))
        .and_then(|_| root.present());
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws the chart on `root`: title, plot, legend, top to bottom.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &Plot,
    layout: &Layout,
) -> DrawResult<DB> {
    register_font();
    root.fill(&BACKGROUND)?;
    let width = root.dim_in_pixel().0;
    let title_height = PAD + TITLE_LINE * layout.title.len() as u32;
    let (title_area, rest) = root.split_vertically(title_height);
    for (i, line) in layout.title.iter().enumerate() {
        let size = fit_size(line, TITLE_SIZE, width - 2 * PAD);
        let style = TextStyle::from((FONT, size).into_font()).color(&BLACK);
        let y = (PAD + TITLE_LINE * i as u32) as i32;
        title_area.draw(&Text::new(line.clone(), (PAD as i32, y), style))?;
    }
    let (plot_area, legend_area) = rest.split_vertically(PLOT_HEIGHT);
    draw_plot(&plot_area, plot)?;
    for (row, members) in layout.legend.iter().enumerate() {
        let y = (LEGEND_ROW * row as u32) as i32 + 2;
        let mut x = PAD as i32;
        for &i in members {
            let line = &plot.lines[i];
            let [r, g, b] = line.colour;
            let colour = RGBColor(r, g, b);
            let swatch = [(x, y + 2), (x + SWATCH as i32, y + 12)];
            legend_area.draw(&Rectangle::new(swatch, colour.filled()))?;
            let style = TextStyle::from((FONT, LEGEND_SIZE).into_font()).color(&BLACK);
            let at = (x + SWATCH as i32 + 6, y);
            legend_area.draw(&Text::new(line.label.clone(), at, style))?;
            x += (SWATCH + 6 + text_width(&line.label, LEGEND_SIZE) + 16) as i32;
        }
    }
    Ok(())
}

/// The y axis's range, in axis units (log10 of the value on a log scale, from decade to
/// decade).
fn y_range(values: &[f64], scale: Scale) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return match scale {
            Scale::Linear => (0.0, 1.0),
            Scale::Log => (-1.0, 0.0),
        };
    }
    match scale {
        Scale::Log => (lo.floor(), hi.ceil().max(lo.floor() + 1.0)),
        Scale::Linear if hi - lo < 1e-12 => (lo - 0.5, hi + 0.5),
        Scale::Linear => {
            let margin = (hi - lo) * 0.05;
            (lo - margin, hi + margin)
        }
    }
}

/// The y axis for plotters: linear (plotters' own ticks), or log10 of the values with a tick at
/// every decade (every second, fifth, ... when there are too many), and at 2 and 5 times each
/// where the axis spans two decades or fewer.
struct YAxis {
    lo: f64,
    hi: f64,
    scale: Scale,
}

impl Ranged for YAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        plotters::coord::types::RangedCoordf64::from(self.lo..self.hi).map(value, limit)
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        match self.scale {
            Scale::Linear => {
                plotters::coord::types::RangedCoordf64::from(self.lo..self.hi).key_points(hint)
            }
            Scale::Log => log_ticks(self.lo, self.hi, hint.max_num_points()),
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// The ticks of a log axis from decade `lo` to decade `hi` (log10 units), at most about
/// `max` of them.
fn log_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let (lo, hi) = (lo.round() as i32, hi.round() as i32);
    let decades = (hi - lo).max(1) as usize;
    let stride = decades.div_ceil(max.max(2) - 1).max(1);
    let mut ticks = Vec::new();
    for k in (lo..=hi).step_by(stride) {
        ticks.push(k as f64);
        if decades <= 2 {
            ticks.extend(
                [2f64, 5.0]
                    .iter()
                    .map(|m| k as f64 + m.log10())
                    .filter(|&a| a < hi as f64),
            );
        }
    }
    ticks
}

/// The label of a tick at `10^a` on a log axis (1, 2 or 5 times a power of ten): plain between
/// 0.001 and 5000, else as `2e-5`.
fn log_label(a: f64) -> String {
    let k = (a + 1e-9).floor() as i32;
    let m = 10f64.powf(a - k as f64).round() as i64;
    match k {
        -3..=-1 => format!("{:.*}", (-k) as usize, m as f64 * 10f64.powi(k)),
        0..=3 => format!("{}", m * 10i64.pow(k as u32)),
        _ => format!("{m}e{k}"),
    }
}

/// A tick label on a linear axis whose ticks are about `step` apart: as many decimals as the
/// step needs, in scientific notation for tiny or huge values.
fn linear_label(v: f64, step: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".to_string();
    }
    if v.abs() >= 1e5 || step < 1e-4 {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// The axes, their ticks, labels and gridlines, and the lines.
fn draw_plot<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, plot: &Plot) -> DrawResult<DB> {
    let to_axis = |v: f64| match plot.scale {
        Scale::Linear => v,
        Scale::Log if v > 0.0 => v.log10(),
        Scale::Log => f64::NAN,
    };
    let on_axis: Vec<Vec<(usize, f64)>> = plot
        .lines
        .iter()
        .map(|l| l.points.iter().map(|&(e, v)| (e, to_axis(v))).collect())
        .collect();
    let values: Vec<f64> = on_axis.iter().flatten().map(|&(_, a)| a).collect();
    let (lo, hi) = y_range(&values, plot.scale);
    let last_epoch = on_axis.iter().flatten().map(|&(e, _)| e).max().unwrap_or(1);
    let x_max = last_epoch.max(2) as u32;
    let mut chart = ChartBuilder::on(area)
        .margin_top(6)
        .margin_right(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            1u32..x_max,
            YAxis {
                lo,
                hi,
                scale: plot.scale,
            },
        )?;
    // Plotters steps by 1, 2 or 5 times a power of ten, to at most `Y_LABELS` ticks: this is
    // within a factor of two of its step.
    let step = (hi - lo) / 5.0;
    let y_format = |a: &f64| match plot.scale {
        Scale::Log => log_label(*a),
        Scale::Linear => linear_label(*a, step),
    };
    let label_style = TextStyle::from((FONT, LABEL_SIZE).into_font()).color(&BLACK);
    chart
        .configure_mesh()
        .x_labels(8.min(x_max as usize))
        .y_labels(Y_LABELS)
        // No lines between the labelled ones (`max_light_lines(0)` makes plotters 0.3.7 loop
        // forever on an integer axis): drawn transparent, which backends skip.
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(BLACK)
        .label_style(label_style.clone())
        .axis_desc_style(label_style)
        .x_desc("epoch")
        .y_desc(plot.y_label)
        .y_label_formatter(&y_format)
        .draw()?;
    for (line, points) in plot.lines.iter().zip(&on_axis) {
        let [r, g, b] = line.colour;
        let style = RGBColor(r, g, b).stroke_width(LINE_WIDTH);
        // Runs of drawable points; a value that is not is a gap.
        for segment in points.split(|(_, a)| !a.is_finite()) {
            let coords: Vec<(u32, f64)> = segment.iter().map(|&(e, a)| (e as u32, a)).collect();
            match coords[..] {
                [] => {}
                // A lone point has no line to show it: a dot.
                [only] => {
                    chart.draw_series(std::iter::once(Circle::new(only, 3, style.filled())))?;
                }
                _ => {
                    chart.draw_series(LineSeries::new(coords, style))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: Vec<(usize, f64)>) -> Line {
        Line {
            label: "a".into(),
            colour: PALETTE[0],
            points,
        }
    }

    #[test]
    fn the_embedded_font_measures_text() {
        register_font();
        let font = (FONT, 13.0).into_font();
        let (w, h) = font.box_size("epoch 10").expect("the font measures text");
        assert!((30..90).contains(&w) && (5..20).contains(&h), "{w} x {h}");
        assert!(text_width("mmmm", 13.0) > text_width("iiii", 13.0));
    }

    #[test]
    fn wrapped_titles_keep_every_word_and_fit() {
        let title = "d_loss_end, loss tutorial_double_sigmoid, on the epoch's last batch after \
                     it (as the tutorial printed)";
        let lines = wrap(title, TITLE_SIZE, 300);
        assert!(lines.len() >= 2, "{lines:?}");
        assert_eq!(lines.join(" "), title);
        for l in &lines {
            assert!(text_width(l, TITLE_SIZE) <= 300, "{l}");
        }
    }

    #[test]
    fn log_axes_start_and_end_at_decades_and_tick_each() {
        let values = [(2e-2f64).log10(), (3e-6f64).log10()];
        assert_eq!(y_range(&values, Scale::Log), (-6.0, -1.0));
        let ticks = log_ticks(-6.0, -1.0, Y_LABELS);
        let labels: Vec<String> = ticks.iter().map(|&a| log_label(a)).collect();
        assert_eq!(labels, ["1e-6", "1e-5", "1e-4", "0.001", "0.01", "0.1"]);
        // Twelve decades: every second one.
        assert_eq!(log_ticks(-12.0, 0.0, Y_LABELS).len(), 7);
        // One decade: 1, 2 and 5 times it.
        let labels: Vec<String> = log_ticks(-1.0, 0.0, Y_LABELS)
            .iter()
            .map(|&a| log_label(a))
            .collect();
        assert_eq!(labels, ["0.1", "0.2", "0.5", "1"]);
        assert_eq!(Scale::for_values([2.0, 1e-5, f64::NAN]), Scale::Log);
        assert_eq!(Scale::for_values([2.0, 0.1]), Scale::Linear);
        assert_eq!(Scale::for_values([2.0, 1e-5, -1.0]), Scale::Linear);
    }

    #[test]
    fn linear_labels_carry_the_digits_their_step_needs() {
        assert_eq!(linear_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(linear_label(1.25, 0.05), "1.25");
        assert_eq!(linear_label(40.0, 10.0), "40");
        assert_eq!(linear_label(1e-17, 0.1), "0");
        assert_eq!(linear_label(3e-6, 1e-6), "3.0e-6");
    }

    /// A PNG chart has its gridlines, tick labels and lines (the old one had two grey axes and
    /// the lines only).
    #[test]
    fn png_charts_have_gridlines_and_text() {
        let lines = [line((1..=20).map(|e| (e, 1.0 / e as f64)).collect())];
        let plot = Plot {
            title: "a title",
            y_label: "value",
            scale: Scale::Linear,
            lines: &lines,
            legend: true,
        };
        let img = rgb(&plot, 480);
        let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
        let grid = [GRID.0, GRID.1, GRID.2];
        assert!(count(grid) > 1000, "gridline pixels: {}", count(grid));
        assert!(
            count([0, 0, 0]) > 300,
            "text and axes: {}",
            count([0, 0, 0])
        );
        assert!(count(PALETTE[0]) > 100, "line: {}", count(PALETTE[0]));
    }

    /// Ten runs (the beta1 study's eight points and two references) get ten colours.
    #[test]
    fn the_palette_has_ten_distinct_colours() {
        let mut colours = PALETTE.to_vec();
        colours.sort();
        colours.dedup();
        assert!(colours.len() >= 10, "{colours:?}");
    }
}
