//! `compare` by setting: runs whose configs differ only in `seed` (a sweep's `seeds`), where
//! the data lies and what they write are one setting, shown as one row with the seed count
//! and, for each metric, the mean and standard deviation over its seeds. GANs amplify
//! rounding differences, so one seed says little.

use super::{compare, is_metric_column, Cell, Comparison, RunRecord, Spread, Style};
use crate::error::Result;
use crate::sweep::SweepIndex;

/// The runs grouped by setting: one row per setting (`setting`, `seeds`, the keys that vary
/// apart from `seed`, then each metric, as of epoch `at` as [`compare`] has it, as its spread
/// over the seeds that have it, and the states with their counts), sorted by `sort_by` (a
/// column name; by the mean) if given. `None` when no two runs share a setting, so that
/// nothing is grouped.
pub fn by_setting(
    runs: &[RunRecord],
    at: Option<usize>,
    sort_by: Option<&str>,
    descending: bool,
) -> Result<Option<Comparison>> {
    let table = compare(runs, at, None, false)?;
    let seed_column = table.columns.iter().position(|c| c == "seed");
    let config_columns: Vec<usize> = (1..table.columns.len())
        .filter(|&i| Some(i) != seed_column)
        .filter(|&i| !is_metric_column(&table.columns[i]) && !beside_setting(&table.columns[i]))
        .collect();
    // Groups of row indices with the same config apart from the seed, in first-seen order,
    // each holding a seed once: a rerun of a seed (another name, or an alias of the loss) is
    // no further evidence, so it starts a group of its own.
    let seed = |r: usize| seed_column.map(|c| &table.rows[r][c]);
    let mut groups: Vec<(Vec<&Cell>, Vec<usize>)> = Vec::new();
    for (r, row) in table.rows.iter().enumerate() {
        let key: Vec<&Cell> = config_columns.iter().map(|&i| &row[i]).collect();
        let open = groups
            .iter_mut()
            .find(|(k, members)| *k == key && members.iter().all(|&m| seed(m) != seed(r)));
        match open {
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
        .filter(|&i| is_metric_column(&table.columns[i]))
        .collect();
    columns.extend(metric_columns.iter().map(|&i| table.columns[i].clone()));
    let rows: Vec<Vec<Cell>> = groups
        .iter()
        .map(|(key, members)| {
            let mut row = vec![
                Cell::Text(setting_label(&runs[members[0]])),
                Cell::Number(members.len() as f64, Style::Count),
            ];
            row.extend(key.iter().map(|&c| c.clone()));
            for &c in &metric_columns {
                let cells: Vec<&Cell> = members.iter().map(|&r| &table.rows[r][c]).collect();
                row.push(match table.columns[c].as_str() {
                    "state" => Cell::Text(counted(&cells)),
                    _ => spread(&cells),
                });
            }
            row
        })
        .collect();
    let mut grouped = Comparison { columns, rows };
    if let Some(col) = sort_by {
        grouped.sort_by(col, descending)?;
    }
    Ok(Some(grouped))
}

/// Keys that neither shape the weights nor how they are scored: runs of one setting may
/// differ in them (where the data lies, what each writes). The epochs asked for stay in the
/// setting: the table shows each run as of its last epoch.
fn beside_setting(column: &str) -> bool {
    column == "data.dir" || column.starts_with("output.")
}

/// The spread of the numbers among `cells` (one per seed), in the first one's style (a
/// spread of none when none has one, so that the grouped table's columns stay the same).
fn spread(cells: &[&Cell]) -> Cell {
    let numbers: Vec<(f64, Style)> = cells
        .iter()
        .filter_map(|c| match c {
            Cell::Number(v, style) => Some((*v, *style)),
            _ => None,
        })
        .collect();
    let values: Vec<f64> = numbers.iter().map(|(v, _)| *v).collect();
    let style = numbers.first().map_or(Style::Small, |(_, s)| *s);
    Cell::Spread(Spread::of(&values, cells.len(), style))
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

/// Cells that differ, each with its count: `finished` or `finished x2, stopped@3 x1`.
fn counted(cells: &[&Cell]) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for c in cells {
        let text = c.show();
        match seen.iter_mut().find(|(s, _)| *s == text) {
            Some((_, n)) => *n += 1,
            None => seen.push((text, 1)),
        }
    }
    if seen.len() == 1 {
        return seen.remove(0).0;
    }
    let parts: Vec<String> = seen.iter().map(|(s, n)| format!("{s} x{n}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_average_with_their_spread() {
        let fixed = |v| Cell::Number(v, Style::Fixed(2));
        let count = |v| Cell::Number(v, Style::Count);
        let show = |cells: &[Cell]| spread(&cells.iter().collect::<Vec<_>>()).show();
        assert_eq!(
            show(&[fixed(10.0), fixed(20.0), fixed(30.0)]),
            "20.00 ± 10.00"
        );
        assert_eq!(show(&[count(9.0), count(10.0)]), "9.50 ± 0.71");
        assert_eq!(show(&[count(3.0), count(3.0)]), "3 ± 0");
        assert_eq!(show(&[fixed(1.5), Cell::Missing]), "1.50 (1 of 2)");
        assert_eq!(show(&[Cell::Missing, Cell::Missing]), "-");
        let text = |s: &str| Cell::Text(s.into());
        let states = [text("finished"), text("stopped@3"), text("finished")];
        assert_eq!(
            counted(&states.iter().collect::<Vec<_>>()),
            "finished x2, stopped@3 x1"
        );
        assert_eq!(counted(&[&states[0], &states[2]]), "finished");
    }

    /// Two seeds of a setting, one trained to epoch 4 and one stopped at 2: as of epoch 2
    /// both count, with epoch 2's losses and scores, not the longer run's last.
    #[test]
    fn seeds_compare_as_they_stood_at_one_epoch() {
        use crate::train::EpochMetrics;
        let root = tempfile::tempdir().unwrap();
        let smoke = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let run = |seed: u64, epochs: usize| {
            let set = format!("seed={seed}").parse().unwrap();
            let config = crate::config::load(&smoke, &[set]).unwrap();
            let row = |epoch: usize| EpochMetrics {
                epoch,
                d_loss: epoch as f64 + seed as f64 / 10.0,
                fid: epoch.is_multiple_of(2).then_some(100.0 / epoch as f64),
                classifier_score: Some(5.0),
                modes: Some(10),
                parzen_nats: Some(0.0),
                ..Default::default()
            };
            RunRecord {
                dir: root.path().join(format!("seed={seed}")),
                config,
                metrics: (1..=epochs).map(row).collect(),
                eval: None,
                progress: None,
            }
        };
        let runs = [run(1, 4), run(2, 2)];
        let cell = |t: &Comparison, c: &str| t.rows[0][t.column(c).unwrap()].show();
        let now = by_setting(&runs, None, None, false).unwrap().unwrap();
        assert_eq!(cell(&now, "epochs"), "3 ± 1.41");
        assert_eq!(cell(&now, "fid"), "37.50 ± 17.68");
        let at_2 = by_setting(&runs, Some(2), None, false).unwrap().unwrap();
        assert_eq!(cell(&at_2, "epochs"), "2 ± 0");
        assert_eq!(cell(&at_2, "scored_at"), "2 ± 0");
        assert_eq!(cell(&at_2, "fid"), "50.00 ± 0.00");
        assert_eq!(cell(&at_2, "d_loss"), "2.1500 ± 0.0707");
    }

    /// Seeds of a setting group though they wrote other outputs and read the data through
    /// another path; a rerun of a seed (another name) is no second seed: it starts a group of
    /// its own.
    #[test]
    fn a_setting_groups_distinct_seeds_whatever_they_wrote_or_where_the_data_lay() {
        let root = tempfile::tempdir().unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let smoke = repo.join("configs/smoke.toml");
        let data = repo.join("data/mnist");
        let elsewhere = root.path().join("mnist-link");
        std::os::unix::fs::symlink(&data, &elsewhere).unwrap();
        let run = |name: &str, d_loss: f64, sets: &[String]| {
            let sets: Vec<_> = sets.iter().map(|s| s.parse().unwrap()).collect();
            let config = crate::config::load(&smoke, &sets).unwrap();
            let metrics = vec![crate::train::EpochMetrics {
                epoch: 1,
                d_loss,
                ..Default::default()
            }];
            RunRecord {
                dir: root.path().join(name),
                config,
                metrics,
                eval: None,
                progress: None,
            }
        };
        let dir = |p: &std::path::Path| format!("data.dir={:?}", p.display().to_string());
        let runs = [
            run("a", 1.0, &["seed=1".into(), dir(&data)]),
            run(
                "b",
                3.0,
                &[
                    "seed=2".into(),
                    dir(&elsewhere),
                    "output.sample_every=2".into(),
                ],
            ),
            run("a-again", 5.0, &["seed=1".into(), dir(&data)]),
        ];
        let t = by_setting(&runs, None, None, false).unwrap().unwrap();
        let seeds: Vec<String> = t.rows.iter().map(|r| r[1].show()).collect();
        assert_eq!(seeds, ["2", "1"], "{:?}", t.columns);
        let d_loss = t.column("d_loss").unwrap();
        let means: Vec<String> = t.rows.iter().map(|r| r[d_loss].show()).collect();
        assert_eq!(
            means,
            ["2.0000 ± 1.4142", "5.0000"],
            "a and b, then a again"
        );
        assert!(!t
            .columns
            .iter()
            .any(|c| c == "data.dir" || c.starts_with("output.")));
    }

    #[test]
    fn rows_sort_by_their_means() {
        let spread = |mean| {
            Cell::Spread(Spread {
                mean,
                sd: Some(1.0),
                have: 2,
                of: 2,
                style: Style::Fixed(2),
            })
        };
        let mut t = Comparison {
            columns: vec!["setting".into(), "fid".into()],
            rows: vec![
                vec![Cell::Text("a".into()), spread(20.0)],
                vec![Cell::Text("b".into()), Cell::Missing],
                vec![Cell::Text("c".into()), spread(3.0)],
            ],
        };
        let order =
            |t: &Comparison| -> Vec<String> { t.rows.iter().map(|r| r[0].show()).collect() };
        t.sort_by("fid", false).unwrap();
        assert_eq!(order(&t), ["c", "a", "b"]);
        t.sort_by("fid", true).unwrap();
        assert_eq!(order(&t), ["a", "c", "b"]);
    }
}
