//! What the report draws: its charts (what scoring measured; the runs' losses, one chart per
//! loss kind, on a log axis where they span decades; D's outputs on log scales; the
//! end-of-epoch losses with imported logs), as SVG, and a run's loss curves as a PNG. How a chart is drawn is [`crate::plot`]'s
//! job. A value that is not finite is a gap in a line, never a point at infinity.

use super::ImportedLog;
use crate::compare::{scorings, RunRecord, Scored};
use crate::config::LossKind;
use crate::plot::{Line, Plot};
pub(super) use crate::plot::{Scale, PALETTE};
use crate::train::EpochMetrics;

type Metric = (&'static str, fn(&EpochMetrics) -> f64);
const METRICS: [Metric; 2] = [("d_loss", |m| m.d_loss), ("g_loss", |m| m.g_loss)];
/// One line of a chart: a label, its colour (its place in the page's legend) and
/// `(epoch, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Series {
    pub(super) label: String,
    pub(super) colour: usize,
    pub(super) points: Vec<(usize, f64)>,
}

/// One chart of the page: its file name, caption, what its values are, scale and lines.
#[derive(Debug, Clone)]
pub(super) struct Chart {
    pub(super) name: String,
    pub(super) caption: String,
    pub(super) y_label: String,
    pub(super) scale: Scale,
    pub(super) series: Vec<Series>,
}

/// One line per run (with its colour): the epochs where `get` has a value.
fn series_of(
    runs: &[(usize, &RunRecord)],
    get: &dyn Fn(&EpochMetrics) -> Option<f64>,
) -> Vec<Series> {
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
        .collect()
}

/// The charts of the page: what scoring measured, the runs' losses, one chart per loss kind
/// among them (their values mean different things), D's outputs on log scales, and, where any
/// run measured them or a log is imported, the end-of-epoch losses (imported logs join those
/// of every loss kind, marked).
pub(super) fn charts(runs: &[RunRecord], logs: &[ImportedLog]) -> Vec<Chart> {
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
    let mut out = scored_charts(&all);
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
            let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
            let scale = Scale::for_values(values);
            out.push(Chart {
                name: match (split, kind) {
                    (true, Some(k)) => format!("{name}-{}", k.name()),
                    _ => name.to_string(),
                },
                caption: format!("{name}{kind_text}, {how}"),
                y_label: name.to_string(),
                scale,
                series,
            });
        }
    }
    let d_outputs: [(&str, &str, &str, Get); 2] = [
        (
            "d_real",
            "1 - D(x)",
            "on real images, log scale (toward 0: D certain)",
            |m| Some(1.0 - m.d_real),
        ),
        (
            "d_fake",
            "D(G(z))",
            "on generated images, log scale (toward 0: D certain)",
            |m| Some(m.d_fake),
        ),
    ];
    for (name, value, how, get) in d_outputs {
        out.push(Chart {
            name: name.to_string(),
            caption: format!("{value} {how}"),
            y_label: value.to_string(),
            scale: Scale::Log,
            series: series_of(&all, &get),
        });
    }
    out
}

/// The charts of what scoring measured, where any run was scored (in training or by `eval`): FID (on a log axis: it falls
/// by decades from a first epoch to a good one), the classifier score, and
/// precision and recall where measured. A line joins a run's scored epochs.
fn scored_charts(runs: &[(usize, &RunRecord)]) -> Vec<Chart> {
    type Get = fn(&Scored) -> Option<f64>;
    let scored: [(&str, &str, Get); 4] = [
        (
            "fid",
            "classifier FID of the epoch's samples (lower: closer to real digits)",
            |s| Some(s.fid),
        ),
        (
            "classifier_score",
            "of the epoch's samples (10: ten confident, balanced digits)",
            |s| Some(s.score),
        ),
        (
            "precision",
            "of the epoch's samples (the share on real digits' manifold)",
            |s| s.precision,
        ),
        (
            "recall",
            "of the epoch's samples (the share of real digits' manifold they cover)",
            |s| s.recall,
        ),
    ];
    scored
        .into_iter()
        .filter_map(|(name, how, get)| {
            let series = scored_series(runs, get);
            let values: Vec<f64> = series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .collect();
            (!values.is_empty()).then(|| Chart {
                name: name.to_string(),
                caption: format!("{name}, {how}"),
                y_label: name.to_string(),
                // FID falls by decades over a run, and its last ones are where runs differ.
                scale: match name {
                    "fid" => Scale::Log,
                    _ => Scale::for_values(values),
                },
                series,
            })
        })
        .collect()
}

/// One line per run through its scorings ([`scorings`]: the epochs scored in training, then
/// its `eval.json`, which wins where both scored an epoch), in epoch order.
fn scored_series(runs: &[(usize, &RunRecord)], get: fn(&Scored) -> Option<f64>) -> Vec<Series> {
    runs.iter()
        .map(|&(colour, r)| {
            let mut points: Vec<(usize, f64)> = Vec::new();
            for s in scorings(r) {
                let Some(value) = get(&s) else { continue };
                match points.iter_mut().find(|p| p.0 == s.epoch) {
                    Some(point) => point.1 = value,
                    None => points.push((s.epoch, value)),
                }
            }
            points.sort_by_key(|p| p.0);
            Series {
                label: r.label(),
                colour,
                points,
            }
        })
        .collect()
}

/// The width of the report's charts, in pixels (three to a row on a 1,500-pixel page).
pub(super) const CHART_WIDTH: u32 = 460;

/// One chart as SVG (see [`crate::plot`]), each series in its palette colour; non-finite values
/// (and, on a log scale, values that are not positive) are gaps in its line. `legend` adds the
/// series' labels below the plot (for a chart shown on its own).
pub(super) fn svg_chart(chart: &Chart, legend: bool) -> String {
    let lines: Vec<Line> = chart
        .series
        .iter()
        .map(|s| Line {
            label: s.label.clone(),
            colour: PALETTE[s.colour % PALETTE.len()],
            points: s.points.clone(),
        })
        .collect();
    let plot = Plot {
        title: &chart.caption,
        y_label: &chart.y_label,
        scale: chart.scale,
        lines: &lines,
        legend,
    };
    // Named for screen readers by its caption.
    let label = format!(
        "<svg role=\"img\" aria-label=\"{}\" ",
        super::escape(&chart.caption)
    );
    crate::plot::svg(&plot, CHART_WIDTH).replacen("<svg ", &label, 1)
}

/// A PNG of a run's D loss (blue) and G loss (orange) by epoch, titled with the run's name,
/// with its legend; a value that is not finite is a gap.
pub fn curves_png(run: &RunRecord) -> Vec<u8> {
    let lines: Vec<Line> = METRICS[..2]
        .iter()
        .zip(PALETTE)
        .map(|(&(label, get), colour)| Line {
            label: label.to_string(),
            colour,
            points: run.metrics.iter().map(|m| (m.epoch, get(m))).collect(),
        })
        .collect();
    let values = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let title = format!(
        "{}: D and G loss, the mean over each epoch's steps",
        run.label()
    );
    let plot = Plot {
        title: &title,
        y_label: "loss",
        scale: Scale::for_values(values),
        lines: &lines,
        legend: true,
    };
    crate::plot::encode_png(&crate::plot::rgb(&plot, 480))
}
