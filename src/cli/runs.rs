//! Reading runs back: diff two, compare many, report them as one page.

use std::path::PathBuf;

use clap::Args;

/// Show what differs between two runs: config keys, final metrics, curves, sample grids.
#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    /// Run A.
    pub a: PathBuf,
    /// Run B.
    pub b: PathBuf,
    /// Write the two runs' sample grids of the same epochs side by side into this PNG
    /// (default: `diff-<B>.png` inside run A).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, conflicts_with = "md")]
    pub json: bool,
    /// Print Markdown.
    #[arg(long)]
    pub md: bool,
}

/// `gan-run diff`: what differs between two runs.
pub fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let DiffArgs {
        a,
        b,
        png,
        json,
        md,
    } = args;
    use crate::compare::{diff, render_diff, side_by_side_png, RunRecord, TableFormat};
    let (ra, rb) = (RunRecord::read(&a)?, RunRecord::read(&b)?);
    let png = png.unwrap_or_else(|| a.join(crate::run_dir::diff_grid_name(&rb.label())));
    crate::run_dir::check_output(&png)?;
    let d = diff(&ra, &rb);
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!(
            "{}",
            render_diff(
                &d,
                if md {
                    TableFormat::Markdown
                } else {
                    TableFormat::Text
                }
            )
        );
    }
    if !d.common_sample_epochs.is_empty() {
        let bytes = side_by_side_png(&ra, &rb, &d.common_sample_epochs)?;
        crate::files::write_atomic(&png, &bytes)?;
        eprintln!(
            "sample grids of epochs {:?} side by side (A left, B right): {}",
            d.common_sample_epochs,
            png.display()
        );
    }
    Ok(())
}

/// One table of runs (or sweep directories): the keys that vary and the final metrics.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Run directories or folders of runs.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Sort rows by this column.
    #[arg(long)]
    pub sort: Option<String>,
    /// Sort in descending order.
    #[arg(long, requires = "sort")]
    pub desc: bool,
    /// Print CSV.
    #[arg(long, conflicts_with_all = ["json", "md"])]
    pub csv: bool,
    /// Print JSON.
    #[arg(long, conflicts_with = "md")]
    pub json: bool,
    /// Print Markdown.
    #[arg(long)]
    pub md: bool,
    /// One row per run even where runs differ only in their seed (by default those are one
    /// row per setting, with the seed count and each metric's mean ± standard deviation).
    #[arg(long)]
    pub per_seed: bool,
}

/// `gan-run compare`: one table of runs, the keys that vary and the final metrics.
pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let CompareArgs {
        runs,
        sort,
        desc,
        csv,
        json,
        md,
        per_seed,
    } = args;
    use crate::compare::{by_setting, compare, expand_runs, render_table, RunRecord, TableFormat};
    let records = expand_runs(&runs)?
        .iter()
        .map(|d| RunRecord::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let grouped = match per_seed {
        true => None,
        false => by_setting(&records, sort.as_deref(), desc)?,
    };
    let table = match grouped {
        Some(table) => table,
        None => compare(&records, sort.as_deref(), desc)?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&table)?);
    } else {
        let format = if csv {
            TableFormat::Csv
        } else if md {
            TableFormat::Markdown
        } else {
            TableFormat::Text
        };
        print!("{}", render_table(&table.columns, &table.rows, format));
    }
    Ok(())
}

/// List runs and sweep points: state, epochs, last losses, best FID, age.
#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// The folder of runs (and sweeps).
    #[arg(default_value = "runs")]
    pub runs_dir: PathBuf,
}

/// `gan-run ls`: one line per run and sweep point.
pub fn ls(args: LsArgs) -> anyhow::Result<()> {
    use crate::compare::{expand_runs, listing, render_table, RunRecord, TableFormat};
    let LsArgs { runs_dir } = args;
    let records = expand_runs(std::slice::from_ref(&runs_dir))?
        .iter()
        .map(|d| RunRecord::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let table = listing(&runs_dir, &records);
    print!(
        "{}",
        render_table(&table.columns, &table.rows, TableFormat::Text)
    );
    Ok(())
}

/// Write one self-contained HTML page comparing runs (curves, config differences, sample
/// grids), and a curves.png into each run.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Run directories or folders of runs.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The page to write (default: `report.html` inside the run or folder of runs, when one
    /// is given; else in the current folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A loss log printed by another tool, `NAME=FILE` (CSV with columns epoch, d_loss,
    /// g_loss), drawn beside the runs' end-of-epoch losses (repeatable).
    #[arg(long = "log", value_name = "NAME=FILE")]
    pub logs: Vec<String>,
    /// Also write each chart as a standalone SVG file into this folder (for documents).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
}

/// `gan-run report`: one self-contained HTML page comparing runs.
pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let ReportArgs {
        runs,
        out,
        logs,
        charts,
    } = args;
    use crate::compare::{expand_runs, RunRecord};
    let out = out.unwrap_or_else(|| match runs.as_slice() {
        [one] => one.join(crate::run_dir::REPORT_FILE),
        _ => PathBuf::from(crate::run_dir::REPORT_FILE),
    });
    crate::run_dir::check_output(&out)?;
    let records = expand_runs(&runs)?
        .iter()
        .map(|d| RunRecord::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let logs = logs
        .iter()
        .map(|l| crate::report::ImportedLog::read(l))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(dir) = charts {
        for path in crate::report::write_chart_files(&records, &logs, &dir)? {
            println!("{}", path.display());
        }
    }
    for r in &records {
        crate::report::write_curves_png(r)?;
    }
    let page = crate::report::html(&records, &logs)?;
    crate::files::write_atomic(&out, page.as_bytes())?;
    println!("{}", out.display());
    Ok(())
}
