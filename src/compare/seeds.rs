//! `compare` by setting: runs whose configs differ only in `seed` (a sweep's `seeds`) are one
//! setting, shown as one row with the seed count and, for each metric, the mean and standard
//! deviation over its seeds. GANs amplify rounding differences, so one seed says little.

use super::{compare, Comparison, RunRecord, METRIC_COLUMNS};
use crate::error::{Error, Result};
use crate::sweep::SweepIndex;

/// The runs grouped by setting: one row per setting (`setting`, `seeds`, the keys that vary
/// apart from `seed`, then each metric as `mean ± sd` over the seeds that have it, with
/// `(k of n)` when some lack it, and the states with their counts), sorted by `sort_by` (a
/// column name; by the mean) if given. `None` when no two runs share a setting, so that
/// nothing is grouped.
pub fn by_setting(
    runs: &[RunRecord],
    sort_by: Option<&str>,
    descending: bool,
) -> Result<Option<Comparison>> {
    let table = compare(runs, None, false)?;
    let seed_column = table.columns.iter().position(|c| c == "seed");
    let config_columns: Vec<usize> = (1..table.columns.len())
        .filter(|&i| Some(i) != seed_column && !METRIC_COLUMNS.contains(&&*table.columns[i]))
        .collect();
    // Groups of row indices with the same config apart from the seed, in first-seen order.
    let mut groups: Vec<(Vec<&str>, Vec<usize>)> = Vec::new();
    for (r, row) in table.rows.iter().enumerate() {
        let key: Vec<&str> = config_columns.iter().map(|&i| row[i].as_str()).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    if groups.iter().all(|(_, members)| members.len() < 2) {
        return Ok(None);
    }
    let mut columns = vec!["setting".to_string(), "seeds".to_string()];
    columns.extend(config_columns.iter().map(|&i| table.columns[i].clone()));
    let metric_columns: Vec<usize> = (1..table.columns.len())
        .filter(|&i| METRIC_COLUMNS.contains(&&*table.columns[i]))
        .collect();
    columns.extend(metric_columns.iter().map(|&i| table.columns[i].clone()));
    let mut rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(key, members)| {
            let mut row = vec![setting_label(&runs[members[0]]), members.len().to_string()];
            row.extend(key.iter().map(|s| s.to_string()));
            for &c in &metric_columns {
                let cells: Vec<&str> = members.iter().map(|&r| table.rows[r][c].as_str()).collect();
                row.push(match table.columns[c].as_str() {
                    "state" => counted(&cells),
                    _ => mean_and_spread(&cells),
                });
            }
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
        sort_rows(&mut rows, i, descending);
    }
    Ok(Some(Comparison { columns, rows }))
}

/// A run's setting as its sweep's `index.json` names it, else the run's own label.
fn setting_label(run: &RunRecord) -> String {
    let label = run.label();
    run.dir
        .parent()
        .and_then(SweepIndex::read)
        .and_then(|index| {
            index
                .points
                .into_iter()
                .find(|p| p.run_dir.as_os_str() == label.as_str())?
                .setting
        })
        .unwrap_or(label)
}

/// Rows by column `i`, by the number a cell starts with (a mean), else its text; `-` last.
fn sort_rows(rows: &mut [Vec<String>], i: usize, descending: bool) {
    use std::cmp::Ordering;
    let lead = |s: &str| s.split(' ').next().and_then(|t| t.parse::<f64>().ok());
    rows.sort_by(|a, b| match (a[i].as_str(), b[i].as_str()) {
        ("-", "-") => Ordering::Equal,
        ("-", _) => Ordering::Greater,
        (_, "-") => Ordering::Less,
        (x, y) => {
            let o = match (lead(x), lead(y)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => x.cmp(y),
            };
            if descending {
                o.reverse()
            } else {
                o
            }
        }
    });
}

/// Text cells that differ, each with its count: `finished` or `finished x2, stopped@3 x1`.
fn counted(cells: &[&str]) -> String {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for c in cells {
        match seen.iter_mut().find(|(s, _)| s == c) {
            Some((_, n)) => *n += 1,
            None => seen.push((c, 1)),
        }
    }
    if seen.len() == 1 {
        return seen[0].0.to_string();
    }
    let parts: Vec<String> = seen.iter().map(|(s, n)| format!("{s} x{n}")).collect();
    parts.join(", ")
}

/// `mean ± sd` (sample standard deviation) of the numbers among `cells`, shown with as many
/// decimals as the cells have (two where whole numbers average to a fraction), the mean alone
/// from one number; `(k of n)` when
/// only k of the n cells have a number; `-` when none has; the cells counted when some are
/// text.
fn mean_and_spread(cells: &[&str]) -> String {
    let values: Vec<f64> = cells.iter().filter_map(|c| c.parse::<f64>().ok()).collect();
    let numbers = cells.iter().filter(|c| **c != "-").count();
    if values.is_empty() || values.len() < numbers {
        return if numbers == 0 {
            "-".into()
        } else {
            counted(cells)
        };
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let scientific = cells.iter().any(|c| c.contains('e'));
    let decimals = cells
        .iter()
        .filter_map(|c| c.split_once('.').map(|(_, d)| d.len()))
        .max()
        .unwrap_or(0);
    let decimals = if decimals == 0 && mean.fract() != 0.0 {
        2
    } else {
        decimals
    };
    let show = |v: f64| match scientific {
        true => crate::logging::format_small(v),
        false => format!("{v:.decimals$}"),
    };
    let mut cell = match values.len() {
        1 => show(mean),
        _ => format!("{} ± {}", show(mean), show(sd)),
    };
    if values.len() < cells.len() {
        cell.push_str(&format!(" ({} of {})", values.len(), cells.len()));
    }
    cell
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_average_with_their_spread() {
        assert_eq!(
            mean_and_spread(&["10.00", "20.00", "30.00"]),
            "20.00 ± 10.00"
        );
        assert_eq!(mean_and_spread(&["9", "10"]), "9.50 ± 0.71");
        assert_eq!(mean_and_spread(&["3", "3"]), "3 ± 0");
        assert_eq!(mean_and_spread(&["1.5", "-"]), "1.5 (1 of 2)");
        assert_eq!(mean_and_spread(&["-", "-"]), "-");
        assert_eq!(
            counted(&["finished", "stopped@3", "finished"]),
            "finished x2, stopped@3 x1"
        );
        assert_eq!(counted(&["finished", "finished"]), "finished");
    }

    #[test]
    fn rows_sort_by_their_means() {
        let mut rows = vec![
            vec!["a".to_string(), "20.00 ± 1.00".to_string()],
            vec!["b".to_string(), "-".to_string()],
            vec!["c".to_string(), "3.00 ± 9.00".to_string()],
        ];
        sort_rows(&mut rows, 1, false);
        let order: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(order, ["c", "a", "b"]);
        sort_rows(&mut rows, 1, true);
        let order: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(order, ["a", "c", "b"]);
    }
}
