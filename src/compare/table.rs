//! The tables `compare` and `ls` print, as typed cells: numbers stay numbers until they are
//! shown. People get rounded values and `-` for what is missing (aligned text or Markdown);
//! machines get every number at full precision and missing values empty (CSV) or `null`
//! (JSON), so that an export reads back as the numbers it came from.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::logging::format_small;

/// How a number is shown to people (machines always get it whole).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Style {
    /// A whole number: `3` (two decimals where an average makes it a fraction).
    Count,
    /// A fixed number of decimals.
    Fixed(usize),
    /// Four decimals, or scientific notation where that would round a small value away.
    Small,
    /// Done of a total: `2/71` (the total is shown, not exported).
    OutOf(usize),
    /// A FID with the epoch it is from: `12.29@5`.
    FidAt(usize),
    /// Seconds as a short duration: `42s`, `5m`, `3h`, `2d`.
    Duration,
    /// Seconds as a short duration, then the epoch it runs to when that is not the run's
    /// last: `4m@20`.
    DurationTo(Option<usize>),
}

impl Style {
    /// `v` shown to people.
    pub fn show(self, v: f64) -> String {
        if !v.is_finite() {
            return format!("{v}");
        }
        match self {
            Style::Count if v.fract() == 0.0 => format!("{v}"),
            Style::Count => format!("{v:.2}"),
            Style::Fixed(decimals) => format!("{v:.decimals$}"),
            Style::Small => format_small(v),
            Style::OutOf(total) => format!("{v}/{total}"),
            Style::FidAt(epoch) => format!("{v:.2}@{epoch}"),
            Style::Duration => short_duration(v),
            Style::DurationTo(None) => short_duration(v),
            Style::DurationTo(Some(epoch)) => format!("{}@{epoch}", short_duration(v)),
        }
    }
}

/// `42s`, `5m`, `3h`, `2d`.
fn short_duration(seconds: f64) -> String {
    match seconds.max(0.0) as u64 {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A metric over several runs (the seeds of one setting): their mean, the sample standard
/// deviation when more than one has it, and how many of how many have it (perhaps none: a
/// grouped table exports the same columns whatever its values).
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// The mean over the runs that have the value (NaN when none has).
    pub mean: f64,
    /// The sample standard deviation, with two values or more.
    pub sd: Option<f64>,
    /// How many runs have the value.
    pub have: usize,
    /// How many runs there are.
    pub of: usize,
    /// How the mean and deviation are shown.
    pub style: Style,
}

impl Spread {
    /// The spread of `values` among `of` runs.
    pub fn of(values: &[f64], of: usize, style: Style) -> Spread {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = (values.len() > 1)
            .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Spread {
            mean,
            sd,
            have: values.len(),
            of,
            style,
        }
    }

    fn show(&self) -> String {
        if self.have == 0 {
            return "-".into();
        }
        // A mean of done-of-total numbers (epochs) reads as a plain number.
        let style = match self.style {
            Style::OutOf(_) | Style::FidAt(_) => Style::Count,
            s => s,
        };
        let show = |v: f64| match style {
            // An average of whole numbers that is not whole, and its deviation, get decimals.
            Style::Count if self.mean.fract() != 0.0 => format!("{v:.2}"),
            s => s.show(v),
        };
        let mut cell = match self.sd {
            Some(sd) => format!("{} ± {}", show(self.mean), show(sd)),
            None => show(self.mean),
        };
        if self.have < self.of {
            cell.push_str(&format!(" ({} of {})", self.have, self.of));
        }
        cell
    }
}

/// One cell of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text: a run's name, its state.
    Text(String),
    /// A config value as the config holds it: exported as a number or a boolean where it is
    /// one, else as text.
    Setting(String),
    /// A number, shown in a style.
    Number(f64, Style),
    /// A metric over several runs: exported as three columns, `<column>`, `<column>_sd` and
    /// `<column>_n`.
    Spread(Spread),
    /// No value: `-` for people, empty in CSV, `null` in JSON.
    Missing,
}

impl Cell {
    /// A number, or [`Cell::Missing`].
    pub fn number(v: Option<f64>, style: Style) -> Cell {
        v.map_or(Cell::Missing, |v| Cell::Number(v, style))
    }

    /// The cell as people read it.
    pub fn show(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Setting(s) => s.clone(),
            Cell::Number(v, style) => style.show(*v),
            Cell::Spread(spread) => spread.show(),
            Cell::Missing => "-".into(),
        }
    }

    /// The number the cell sorts by, if it holds one.
    fn sort_value(&self) -> Option<f64> {
        match self {
            Cell::Number(v, _) => Some(*v),
            Cell::Spread(s) => Some(s.mean),
            _ => None,
        }
    }

    /// Whether the cell has no value (sorted last).
    fn is_missing(&self) -> bool {
        match self {
            Cell::Missing => true,
            Cell::Spread(s) => s.have == 0,
            _ => false,
        }
    }
}

/// A value of a machine-readable export.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// A number, whole (written without a fraction) or not.
    Number(f64),
    /// A boolean setting.
    Bool(bool),
    /// Nothing.
    Null,
}

impl Scalar {
    /// The scalar as a CSV field: numbers at full precision (whole ones as integers, others
    /// in the shortest form that reads back as the same number, as JSON writes them, with an
    /// exponent for very small and large ones; `inf`, `-inf`, `NaN` as Rust and Python read
    /// them), nothing as an empty field.
    pub fn csv_field(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Number(v) if whole(*v) => format!("{}", *v as i64),
            Scalar::Number(v) if v.is_finite() => {
                serde_json::to_string(v).expect("finite numbers serialise")
            }
            Scalar::Number(v) => format!("{v}"),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => String::new(),
        }
    }
}

impl Serialize for Scalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Scalar::Text(t) => s.serialize_str(t),
            // Whole numbers as integers (`3`, not `3.0`); JSON has no infinity or NaN: null.
            Scalar::Number(v) if whole(*v) => s.serialize_i64(*v as i64),
            Scalar::Number(v) if v.is_finite() => s.serialize_f64(*v),
            Scalar::Number(_) | Scalar::Null => s.serialize_none(),
            Scalar::Bool(b) => s.serialize_bool(*b),
        }
    }
}

/// Whether `v` is a whole number that an `i64` holds exactly.
fn whole(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0 && v.abs() < 9e15
}

/// A setting's text as a scalar: a number or boolean where it reads as one.
fn setting_scalar(text: &str) -> Scalar {
    match text {
        "true" => Scalar::Bool(true),
        "false" => Scalar::Bool(false),
        t => match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Scalar::Number(v),
            _ => Scalar::Text(t.to_string()),
        },
    }
}

/// A table of runs: one row per run (or per setting), typed cells.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Column names.
    pub columns: Vec<String>,
    /// One row per run, a cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Comparison {
    /// Sorts the rows by column `column`: numbers by value, text by text, rows without a
    /// value last either way.
    pub fn sort_by(&mut self, column: &str, descending: bool) -> Result<()> {
        let i = self.column(column)?;
        use std::cmp::Ordering;
        self.rows
            .sort_by(|a, b| match (a[i].is_missing(), b[i].is_missing()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    let (x, y) = (&a[i], &b[i]);
                    let o = match (x.sort_value(), y.sort_value()) {
                        (Some(x), Some(y)) => x.total_cmp(&y),
                        _ => x.show().cmp(&y.show()),
                    };
                    if descending {
                        o.reverse()
                    } else {
                        o
                    }
                }
            });
        Ok(())
    }

    /// The index of a column, or the error that lists the columns there are.
    pub fn column(&self, column: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| Error::UnknownColumn {
                column: column.to_string(),
                columns: self.columns.clone(),
            })
    }

    /// The table as text cells for people.
    pub fn shown(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(Cell::show).collect())
            .collect()
    }

    /// The table for machines: a column that holds a spread anywhere becomes three
    /// (`<column>`, `<column>_sd`, `<column>_n`), and every cell a scalar.
    pub fn machine(&self) -> (Vec<String>, Vec<Vec<Scalar>>) {
        let spread: Vec<bool> = (0..self.columns.len())
            .map(|i| self.rows.iter().any(|r| matches!(r[i], Cell::Spread(_))))
            .collect();
        let mut columns = Vec::new();
        for (c, &wide) in self.columns.iter().zip(&spread) {
            columns.push(c.clone());
            if wide {
                columns.push(format!("{c}_sd"));
                columns.push(format!("{c}_n"));
            }
        }
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut out = Vec::new();
                for (cell, &wide) in row.iter().zip(&spread) {
                    let (value, sd, n) = match cell {
                        Cell::Text(s) => (Scalar::Text(s.clone()), Scalar::Null, Scalar::Null),
                        Cell::Setting(s) => (setting_scalar(s), Scalar::Null, Scalar::Null),
                        Cell::Number(v, _) => (Scalar::Number(*v), Scalar::Null, Scalar::Null),
                        Cell::Spread(s) => (
                            match s.have {
                                0 => Scalar::Null,
                                _ => Scalar::Number(s.mean),
                            },
                            s.sd.map_or(Scalar::Null, Scalar::Number),
                            Scalar::Number(s.have as f64),
                        ),
                        Cell::Missing => (Scalar::Null, Scalar::Null, Scalar::Number(0.0)),
                    };
                    out.push(value);
                    if wide {
                        out.extend([sd, n]);
                    }
                }
                out
            })
            .collect();
        (columns, rows)
    }

    /// The table in `format`.
    pub fn render(&self, format: TableFormat) -> String {
        match format {
            TableFormat::Csv => {
                let (columns, rows) = self.machine();
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(&columns).expect("in-memory csv");
                for r in rows {
                    w.write_record(r.iter().map(Scalar::csv_field))
                        .expect("in-memory csv");
                }
                String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8")
            }
            _ => render_table(&self.columns, &self.shown(), format),
        }
    }
}

/// JSON: `{"columns": [...], "rows": [[...], ...]}`, as [`Comparison::machine`] gives them:
/// numbers as numbers, missing values as `null`.
impl Serialize for Comparison {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Rows<'a>(&'a [Vec<Scalar>]);
        impl Serialize for Rows<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for row in self.0 {
                    seq.serialize_element(row)?;
                }
                seq.end()
            }
        }
        let (columns, rows) = self.machine();
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("columns", &columns)?;
        map.serialize_entry("rows", &Rows(&rows))?;
        map.end()
    }
}

/// Output form of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Aligned columns for a terminal.
    Text,
    /// A Markdown table.
    Markdown,
    /// CSV.
    Csv,
}

/// Renders text cells as an aligned text table, Markdown, or CSV.
pub fn render_table(columns: &[String], rows: &[Vec<String>], format: TableFormat) -> String {
    match format {
        TableFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(columns).expect("in-memory csv");
            for r in rows {
                w.write_record(r).expect("in-memory csv");
            }
            String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8")
        }
        TableFormat::Markdown => {
            let mut s = format!(
                "| {} |\n|{}\n",
                columns.join(" | "),
                " --- |".repeat(columns.len())
            );
            for r in rows {
                s += &format!("| {} |\n", r.join(" | "));
            }
            s
        }
        TableFormat::Text => {
            let widths: Vec<usize> = (0..columns.len())
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].chars().count())
                        .chain([columns[i].chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
                    + "\n"
            };
            let mut s = line(columns);
            for r in rows {
                s += &line(r);
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Comparison {
        Comparison {
            columns: ["run", "beta1", "fid", "epochs"].map(String::from).to_vec(),
            rows: vec![
                vec![
                    Cell::Text("3".into()),
                    Cell::Setting("0.1".into()),
                    Cell::Number(0.218_634_567_8, Style::Fixed(2)),
                    Cell::Number(3.0, Style::Count),
                ],
                vec![
                    Cell::Text("b".into()),
                    Cell::Setting("0.5".into()),
                    Cell::Missing,
                    Cell::Number(71.0, Style::Count),
                ],
            ],
        }
    }

    /// JSON has numbers as numbers at full precision, whole ones without a fraction, and
    /// null where a value is missing; a run named `3` stays a string.
    #[test]
    fn json_exports_typed_values() {
        let json = serde_json::to_value(table()).unwrap();
        assert_eq!(json["columns"][2], "fid");
        let row = &json["rows"][0];
        assert!(row[0].is_string() && row[0] == "3", "{json}");
        assert_eq!(row[1].as_f64(), Some(0.1));
        assert_eq!(row[2].as_f64(), Some(0.218_634_567_8));
        assert!(row[3].is_u64() && row[3] == 3, "{json}");
        assert!(json["rows"][1][2].is_null(), "{json}");
        assert_eq!(table().shown()[0][2], "0.22");
        assert_eq!(table().shown()[1][2], "-");
    }

    #[test]
    fn csv_exports_full_precision_and_empty_fields() {
        let field = |v: f64| Scalar::Number(v).csv_field();
        assert_eq!(field(1.2e-300), "1.2e-300");
        assert_eq!(field(-0.1), "-0.1");
        assert_eq!(field(f64::INFINITY), "inf");
        assert_eq!(field(f64::NAN), "NaN");
        assert_eq!(field(-3.0), "-3");
        let csv = table().render(TableFormat::Csv);
        assert_eq!(
            csv,
            "run,beta1,fid,epochs\n3,0.1,0.2186345678,3\nb,0.5,,71\n"
        );
    }

    /// Spreads become three columns for machines; people read `mean ± sd (k of n)`.
    #[test]
    fn spreads_export_as_mean_sd_and_count() {
        let spread = Spread::of(&[10.0, 20.0, 30.0], 4, Style::Fixed(2));
        assert_eq!(
            Cell::Spread(spread.clone()).show(),
            "20.00 ± 10.00 (3 of 4)"
        );
        let whole = Spread::of(&[9.0, 10.0], 2, Style::Count);
        assert_eq!(Cell::Spread(whole).show(), "9.50 ± 0.71");
        let none = Spread::of(&[], 2, Style::Count);
        assert_eq!(Cell::Spread(none.clone()).show(), "-");
        let t = Comparison {
            columns: vec!["setting".into(), "fid".into()],
            rows: vec![
                vec![Cell::Text("a".into()), Cell::Spread(spread)],
                vec![Cell::Text("b".into()), Cell::Spread(none)],
            ],
        };
        assert_eq!(
            t.render(TableFormat::Csv),
            "setting,fid,fid_sd,fid_n\na,20,10,3\nb,,,0\n"
        );
    }

    #[test]
    fn rows_sort_by_value_with_missing_last() {
        let mut t = table();
        t.rows[0][2] = Cell::Number(9.0, Style::Fixed(2));
        t.rows.push(vec![
            Cell::Text("c".into()),
            Cell::Setting("0.9".into()),
            Cell::Number(10.5, Style::Fixed(2)),
            Cell::Number(1.0, Style::Count),
        ]);
        t.sort_by("fid", true).unwrap();
        let order: Vec<String> = t.rows.iter().map(|r| r[0].show()).collect();
        assert_eq!(order, ["c", "3", "b"]);
        t.sort_by("epochs", false).unwrap();
        let order: Vec<String> = t.rows.iter().map(|r| r[0].show()).collect();
        assert_eq!(order, ["c", "3", "b"]);
        let err = t.sort_by("nope", false).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("epochs"), "{err}");
    }
}
