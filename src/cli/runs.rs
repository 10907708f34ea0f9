//! Reading runs back: diff two, compare many, list them, report them as one page. These
//! commands only read runs: they write only where they are told (`--png`, `--out`,
//! `--charts`) or, for the report, into the folder of runs they were given, never into a run.
//! A damaged run is skipped with a warning; Ctrl-C or SIGTERM stops them before they print or
//! write anything, with exit status 130.

use std::path::PathBuf;

use clap::Args;

/// Show what differs between two runs: config keys, final metrics, curves, sample grids.
#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    /// Run A.
    pub a: PathBuf,
    /// Run B.
    pub b: PathBuf,
    /// Write the two runs' D and G losses as charts, and their sample grids of the same epochs
    /// side by side below them, into this PNG (none is written without it).
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
    use crate::compare::{diff, diff_png, render_diff, RunRecord, TableFormat};
    let (ra, rb) = (RunRecord::read(&a)?, RunRecord::read(&b)?);
    if let Some(png) = &png {
        crate::run_dir::check_output(png)?;
    }
    let d = diff(&ra, &rb);
    let text = match (json, md) {
        (true, _) => serde_json::to_string_pretty(&d)? + "\n",
        (false, true) => render_diff(&d, TableFormat::Markdown),
        (false, false) => render_diff(&d, TableFormat::Text),
    };
    let picture = match &png {
        Some(_) => Some(diff_png(&ra, &rb, &d.common_sample_epochs)?),
        None => None,
    };
    print!("{text}");
    match (png, picture) {
        (Some(png), Some(bytes)) => {
            crate::files::write_atomic(&png, &bytes)?;
            match d.common_sample_epochs.is_empty() {
                true => eprintln!("loss curves (no sample grids of the same epochs): {}", png.display()),
                false => eprintln!(
                    "loss curves, and sample grids of epochs {:?} side by side (A left, B right): {}",
                    d.common_sample_epochs,
                    png.display()
                ),
            }
        }
        (None, _) if !d.common_sample_epochs.is_empty() => eprintln!(
            "both runs have sample grids of epochs {:?}: --png FILE draws them side by side, \
             under the loss curves",
            d.common_sample_epochs
        ),
        _ => {}
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
    /// Print CSV (numbers at full precision, missing values empty).
    #[arg(long, conflicts_with_all = ["json", "md"])]
    pub csv: bool,
    /// Print JSON (numbers as numbers at full precision, missing values null).
    #[arg(long, conflicts_with = "md")]
    pub json: bool,
    /// Print Markdown.
    #[arg(long)]
    pub md: bool,
    /// One row per run even where runs differ only in their seed (or data path and outputs;
    /// by default those are one row per setting, with the seed count and each metric's mean ± standard deviation;
    /// CSV and JSON give each metric's mean, `<metric>_sd` and `<metric>_n`).
    #[arg(long)]
    pub per_seed: bool,
    /// Each run's losses and latest scores as they stood after this epoch (a halving rung,
    /// say), so that runs trained to different epochs compare like for like; runs that never
    /// reached it are left out, and stderr says how many.
    #[arg(long, value_name = "EPOCH", value_parser = clap::value_parser!(u64).range(1..))]
    pub at_epoch: Option<u64>,
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
        at_epoch,
    } = args;
    use crate::compare::{by_setting, compare, reached, read_runs, TableFormat};
    let mut records = read_runs(&runs)?;
    let at = at_epoch.map(|e| e as usize);
    if let Some(at) = at {
        let before = records.len();
        records.retain(|r| reached(r, at));
        match (records.len(), before - records.len()) {
            (0, _) => anyhow::bail!("no run reached epoch {at}; `gan-run ls` shows where each is"),
            (_, 0) => {}
            (_, left) => eprintln!("{left} of {before} runs did not reach epoch {at}: left out"),
        }
    }
    let grouped = match per_seed {
        true => None,
        false => by_setting(&records, at, sort.as_deref(), desc)?,
    };
    let table = match grouped {
        Some(table) => table,
        None => compare(&records, at, sort.as_deref(), desc)?,
    };
    let text = match (json, csv, md) {
        (true, _, _) => serde_json::to_string_pretty(&table)? + "\n",
        (_, true, _) => table.render(TableFormat::Csv),
        (_, _, true) => table.render(TableFormat::Markdown),
        _ => table.render(TableFormat::Text),
    };
    print!("{text}");
    Ok(())
}

/// List runs and sweep points: state, epochs, the running step and time to go, last losses,
/// best FID, age.
#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// The folder of runs (and sweeps).
    #[arg(default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Only runs in these states (comma-separated or repeated): running, finished, stopped
    /// (by a halving sweep), waiting (at a rung or `--max-epochs`), interrupted (by a signal,
    /// resumable; `paused` is read as this), failed.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STATE")]
    pub state: Vec<crate::compare::StateKind>,
    /// Sort by this column (`name`, `state`, `epoch`, `eta`, `fid`, `age`, ...; missing
    /// values last); by name when not given.
    #[arg(long, value_name = "COLUMN")]
    pub sort: Option<String>,
    /// Sort in descending order.
    #[arg(long, requires = "sort")]
    pub desc: bool,
}

/// `gan-run ls`: one line per run and sweep point.
pub fn ls(args: LsArgs) -> anyhow::Result<()> {
    use crate::compare::listing::{listing, listing_column};
    use crate::compare::{read_runs, TableFormat};
    let LsArgs {
        runs_dir,
        state,
        sort,
        desc,
    } = args;
    let records = read_runs(std::slice::from_ref(&runs_dir))?;
    let mut table = listing(&runs_dir, &records, &state);
    if let Some(column) = sort {
        table.sort_by(listing_column(&column), desc)?;
    }
    print!("{}", table.render(TableFormat::Text));
    for r in &records {
        if let crate::compare::RunState::Failed(why) = crate::compare::run_state(r) {
            if state.is_empty() || state.contains(&crate::compare::StateKind::Failed) {
                eprintln!("{} failed: {why}", r.dir.display());
            }
        }
    }
    Ok(())
}

/// Write one self-contained HTML page comparing runs (curves, config differences, sample
/// grids). It writes only the page (and, with --charts, the chart files), never into a run.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Run directories or folders of runs.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The page to write (default: `report.html` in the folder of runs, when one folder of
    /// runs, such as a sweep, is given; else in the current folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A loss log printed by another tool, `NAME=FILE` (CSV with columns epoch, d_loss,
    /// g_loss), drawn beside the runs' end-of-epoch losses (repeatable).
    #[arg(long = "log", value_name = "NAME=FILE")]
    pub logs: Vec<String>,
    /// Also write each chart as a standalone SVG file, and each run's loss curves as
    /// `curves-<run>.png`, into this folder (for documents).
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
    let out = out.unwrap_or_else(|| match runs.as_slice() {
        [one] if !one.join(crate::run_dir::CONFIG_FILE).exists() => {
            one.join(crate::run_dir::REPORT_FILE)
        }
        _ => PathBuf::from(crate::run_dir::REPORT_FILE),
    });
    crate::run_dir::check_output(&out)?;
    let records = crate::compare::read_runs(&runs)?;
    let logs = logs
        .iter()
        .map(|l| crate::report::ImportedLog::read(l))
        .collect::<Result<Vec<_>, _>>()?;
    let page = crate::report::html(&records, &logs)?;
    if let Some(dir) = charts {
        for path in crate::report::write_chart_files(&records, &logs, &dir)? {
            println!("{}", path.display());
        }
    }
    crate::files::write_atomic(&out, page.as_bytes())?;
    println!("{}", out.display());
    Ok(())
}
