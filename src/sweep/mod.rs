//! Sweeps: a base config and a grid over dotted keys become one ordinary run directory per
//! point, under one sweep directory with an index. Points run as child processes (`gan-run
//! run-point SWEEP INDEX`), so a failing point never stops the others, parallel points keep
//! separate logs, and the same command serves a cluster scheduler's job array. A sweep can stop
//! its weaker points early ([`halving`]).

mod children;
mod grid;
pub mod halving;
pub mod multirun;
pub mod slurm;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{self, Experiment, Override};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::run_dir::checkpoint;

/// The sweep directory's list of its points and their states.
pub use crate::run_dir::INDEX_FILE;
pub use children::{run_children, ChildJob, PointOutcome};
pub use slurm::{shell_quote, SlurmResources};

/// The sweep file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// The sweep directory's name under the runs root (default: the file's stem).
    #[serde(default)]
    pub name: Option<String>,
    /// The base experiment, relative to the sweep file.
    pub base: PathBuf,
    /// Dotted key -> one value, set in every point (e.g. `"evaluation.every" = 5`); not part
    /// of the points' names.
    #[serde(default)]
    pub set: toml::Table,
    /// Dotted key -> the values it takes; several keys make a product.
    pub grid: toml::Table,
    /// Seeds to repeat every setting (grid point) over: each (setting, seed) is its own run.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Successive halving: stop the weaker points at rungs, by a score.
    #[serde(default)]
    pub halving: Option<halving::Halving>,
    /// What `--emit slurm` asks the scheduler for.
    #[serde(default)]
    pub slurm: SlurmResources,
}

/// Where a point's run directory stands, before a sweep runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointStanding {
    /// It trained another config: these keys differ. Left alone.
    OtherConfig(Vec<String>),
    /// All its epochs are done.
    Finished,
    /// Not started, or not finished.
    ToRun,
}

/// The event file of a sweep's HParams experiment, in the sweep directory.
pub use crate::run_dir::HPARAMS_EVENT_FILE;

/// One point of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Position in the plan (0-based).
    pub index: usize,
    /// Run directory name, made of the values, e.g. `beta1=0.5`.
    pub name: String,
    /// The overrides that make this point, as `KEY=VALUE`.
    pub overrides: Vec<String>,
    /// Its value of each swept key (the grid's keys, and `seed` with `seeds`).
    #[serde(skip)]
    pub values: Vec<(String, toml::Value)>,
    /// The setting (grid point) it belongs to: its position among the settings.
    pub setting: usize,
    /// The setting's name: the point's name without its seed.
    pub setting_name: String,
    /// Its seed, when the sweep file lists `seeds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A parsed sweep: where it lives, its base config and its points.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep file.
    pub file: PathBuf,
    /// The sweep's name.
    pub name: String,
    /// The base experiment file.
    pub base: PathBuf,
    /// Every point, in a stable order.
    pub points: Vec<Point>,
    /// Successive halving, when the sweep file asks for it.
    pub halving: Option<halving::Halving>,
    /// The swept keys and the values each takes, in the file's order (then `seed`, with
    /// `seeds`).
    pub axes: Vec<(String, Vec<toml::Value>)>,
    /// The seeds every setting is repeated over (empty: each setting runs once, with the
    /// base config's seed).
    pub seeds: Vec<u64>,
    /// What an emitted Slurm script asks for.
    pub slurm: SlurmResources,
}

impl Sweep {
    /// Reads a sweep file and expands its grid. Each point's config is validated by
    /// [`Sweep::config_of`], which callers run for every point before starting any.
    pub fn load(path: &Path) -> Result<Sweep> {
        Sweep::from_text(&crate::config::read_text(path)?, path)
    }

    /// Like [`Sweep::load`], from the text of the sweep file at `path`.
    pub fn from_text(text: &str, path: &Path) -> Result<Sweep> {
        let file: SweepFile = toml::from_str(text).map_err(|e| Error::Config {
            location: config::location_of(path, ""),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).join(&file.base);
        let name = file.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "sweep".into())
        });
        // The sweep directory's name: as plain as a run's (no `..`, no `/`, nothing a shell
        // would read), so that it stays under the runs folder and quotes safely.
        config::check_run_name(&name).map_err(|message| Error::Config {
            location: config::location_of(path, "name"),
            message,
        })?;
        let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
        for (key, values) in &file.grid {
            match values {
                toml::Value::Array(v) if !v.is_empty() => axes.push((key.clone(), v.clone())),
                _ => {
                    return Err(Error::Config {
                        location: config::location_of(path, &format!("grid.\"{key}\"")),
                        message: "must be a non-empty list of values".into(),
                    })
                }
            }
        }
        if axes.is_empty() {
            return Err(Error::Config {
                location: config::location_of(path, "grid"),
                message: "the grid names no keys".into(),
            });
        }
        let seeds = grid::check_seeds(path, &file)?;
        let fixed: Vec<String> = file.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        grid::check_size(path, &axes, seeds.len())?;
        let points = grid::expand(&axes, &seeds, &fixed);
        grid::check_name_lengths(path, &points)?;
        if !seeds.is_empty() {
            let values = seeds
                .iter()
                .map(|&s| toml::Value::Integer(s as i64))
                .collect();
            axes.push(("seed".into(), values));
        }
        // Two values that make the same name would share one run directory: refuse.
        let mut seen: std::collections::BTreeMap<&str, &Point> = Default::default();
        for p in &points {
            if let Some(first) = seen.insert(&p.name, p) {
                return Err(Error::Config {
                    location: config::location_of(path, "grid"),
                    message: format!(
                        "two points would share the run directory `{}`: {} and {}; make the \
                         values differ in letters, digits and - _ . = , (other characters \
                         become _)",
                        p.name,
                        first.overrides.join(" "),
                        p.overrides.join(" ")
                    ),
                });
            }
        }
        let sweep = Sweep {
            file: path.to_path_buf(),
            name,
            base,
            points,
            halving: file.halving,
            axes,
            seeds,
            slurm: file.slurm,
        };
        Ok(sweep)
    }

    /// The same sweep in another sweep directory (`sweep --name`): a variant of a sweep file
    /// (other `--set` values, say) whose points would otherwise meet the runs of the file's own
    /// points, and be refused as another config's.
    pub fn renamed(mut self, name: &str) -> Result<Sweep> {
        config::check_run_name(name).map_err(|message| Error::Override {
            text: format!("--name {name}"),
            message,
        })?;
        self.name = name.to_string();
        Ok(self)
    }

    /// The resolved config of a point, with further overrides (e.g. `training.epochs=2`) on top.
    /// With halving, also checks that the point can be ranked at the rungs.
    pub fn config_of(&self, point: &Point, extra: &[Override]) -> Result<Experiment> {
        let config = self.config_without_halving_check(point, extra)?;
        if let Some(h) = &self.halving {
            h.check(&config).map_err(|(key, message)| Error::Config {
                location: config::location_of(&self.file, key),
                message: format!("point `{}`: {message}", point.name),
            })?;
        }
        Ok(config)
    }

    fn config_without_halving_check(
        &self,
        point: &Point,
        extra: &[Override],
    ) -> Result<Experiment> {
        let mut overrides = point
            .overrides
            .iter()
            .map(|o| o.parse::<Override>())
            .collect::<Result<Vec<_>>>()?;
        overrides.extend_from_slice(extra);
        let c = config::load(&self.base, &overrides)?;
        c.renamed(&point.name).map_err(|message| Error::Override {
            text: point.overrides.join(" "),
            message,
        })
    }

    /// The settings (grid points), each as the indices of its points (one per seed), in order.
    pub fn settings(&self) -> Vec<Vec<usize>> {
        let mut out: Vec<Vec<usize>> = Vec::new();
        for p in &self.points {
            if out.len() <= p.setting {
                out.push(Vec::new());
            }
            out[p.setting].push(p.index);
        }
        out
    }

    /// With `seeds`, a line that says how settings and seeds make the points, e.g.
    /// `4 settings x seeds [1, 2, 3] = 12 points (point = setting x 3 + seed's position)`.
    pub fn seeds_line(&self) -> Option<String> {
        let n = self.seeds.len();
        (n > 0).then(|| {
            format!(
                "{} settings x seeds {:?} = {} points (point index = setting x {n} + the seed's \
                 position)",
                self.settings().len(),
                self.seeds,
                self.points.len()
            )
        })
    }

    /// The sweep directory under a runs root.
    pub fn dir(&self, runs_root: &Path) -> PathBuf {
        runs_root.join(&self.name)
    }

    /// Where a point's run directory stands against `config` (the point's, with this call's
    /// overrides): trained under another config (the keys that shape the weights and differ),
    /// finished (its `summary.json` has all the epochs), or to run.
    pub fn standing_of(
        &self,
        runs_root: &Path,
        point: &Point,
        config: &Experiment,
    ) -> PointStanding {
        let path = self.dir(runs_root).join(&point.name);
        if let Ok(saved) = (crate::run_dir::RunDir { path: path.clone() }).read_config() {
            let differing = config.weight_keys_differing_from(&saved);
            if !differing.is_empty() {
                return PointStanding::OtherConfig(differing);
            }
        }
        // Finished when its newest checkpoint is of the last epoch: the checkpoint commits an
        // epoch (its summary.json is written just before it, so a kill between the two leaves
        // a summary of a run that trains that epoch again).
        let newest = (crate::run_dir::RunDir { path }).resume_checkpoint();
        match newest.ok().flatten().and_then(|c| checkpoint::peek(&c)) {
            Some((epoch, _)) if epoch >= config.training.epochs => PointStanding::Finished,
            _ => PointStanding::ToRun,
        }
    }

    /// Writes `index.json` into the sweep directory: the points, their state and, with
    /// halving, their scores at the rungs.
    pub fn write_index(
        &self,
        runs_root: &Path,
        status: &[(usize, PointState)],
        rungs: &std::collections::BTreeMap<usize, Vec<halving::RungScore>>,
        extra: &[String],
    ) -> Result<()> {
        let dir = self.dir(runs_root);
        crate::files::create_dir_all(&dir)?;
        let points = self
            .points
            .iter()
            .map(|p| IndexedPoint {
                index: p.index,
                name: p.name.clone(),
                overrides: p.overrides.clone(),
                run_dir: PathBuf::from(&p.name),
                state: status
                    .iter()
                    .rev()
                    .find(|(i, _)| *i == p.index)
                    .map_or(PointState::Pending, |(_, s)| *s),
                rungs: rungs.get(&p.index).cloned().unwrap_or_default(),
                setting: (!self.seeds.is_empty()).then(|| p.setting_name.clone()),
                seed: p.seed,
            })
            .collect();
        let index = SweepIndex {
            sweep: self.name.clone(),
            sweep_file: self.file.clone(),
            base: self.base.clone(),
            set: extra.to_vec(),
            points,
        };
        let text = serde_json::to_string_pretty(&index).expect("index serialises");
        write_atomic(&dir.join(INDEX_FILE), text.as_bytes())
    }

    /// Writes the sweep's TensorBoard HParams experiment into the sweep directory: the swept
    /// keys with their values and the metrics to compare the points by. Each point's own
    /// event file holds its values (`run-point` passes them to the run).
    pub fn write_hparams_experiment(&self, runs_root: &Path) -> Result<()> {
        use crate::tensorboard::HParamValue;
        let dir = self.dir(runs_root);
        crate::files::create_dir_all(&dir)?;
        let hparams: Vec<(String, Vec<HParamValue>)> = self
            .axes
            .iter()
            .map(|(k, values)| {
                (
                    k.clone(),
                    values.iter().map(HParamValue::from_toml).collect(),
                )
            })
            .collect();
        let bytes = crate::tensorboard::experiment_file(
            &self.name,
            &hparams,
            &crate::experiment::events::METRIC_TAGS,
        );
        write_atomic(&dir.join(HPARAMS_EVENT_FILE), &bytes)
    }

    /// Rewrites `index.json` from the points' run directories alone (finished, another
    /// config's, or pending): what each point of a job array does when it ends, so that the
    /// index stays true with no parent process. Every writer computes the whole index from
    /// disk and replaces it atomically, so concurrent writers cannot leave it half made.
    pub fn refresh_index(&self, runs_root: &Path, extra: &[String]) -> Result<()> {
        let overrides = extra
            .iter()
            .map(|o| o.parse::<Override>())
            .collect::<Result<Vec<_>>>()?;
        let mut states = Vec::new();
        for p in &self.points {
            let config = self.config_of(p, &overrides)?;
            let state = match self.standing_of(runs_root, p, &config) {
                PointStanding::Finished => PointState::Finished,
                PointStanding::OtherConfig(_) => PointState::OtherConfig,
                PointStanding::ToRun => PointState::Pending,
            };
            states.push((p.index, state));
        }
        self.write_index(runs_root, &states, &Default::default(), extra)
    }

    /// Where a point's child process writes its output.
    pub fn log_of(&self, runs_root: &Path, point: &Point) -> PathBuf {
        self.dir(runs_root)
            .join(crate::run_dir::LOGS_DIR)
            .join(crate::run_dir::child_log_name(&point.name))
    }

    /// The child process that trains a point (`run-point`), up to epoch `until` if given.
    pub fn point_job(
        &self,
        point: &Point,
        runs_root: &Path,
        extra: &[String],
        until: Option<usize>,
    ) -> ChildJob {
        let mut args = vec![
            "run-point".to_string(),
            self.file.display().to_string(),
            point.index.to_string(),
            "--runs-dir".into(),
            runs_root.display().to_string(),
            // Always, so that the point's directory is this sweep's even if it was renamed
            // (`--name`) or its file's `name` is edited while points run.
            "--name".into(),
            self.name.clone(),
        ];
        for o in extra {
            args.extend(["--set".to_string(), o.clone()]);
        }
        if let Some(epoch) = until {
            args.extend(["--until-epoch".to_string(), epoch.to_string()]);
        }
        ChildJob {
            index: point.index,
            name: point.name.clone(),
            args,
            log: self.log_of(runs_root, point),
        }
    }
}

/// What `index.json` holds: the sweep's points and where each stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepIndex {
    /// The sweep's name (its directory under the runs root).
    pub sweep: String,
    /// The sweep file.
    pub sweep_file: PathBuf,
    /// The base experiment file.
    pub base: PathBuf,
    /// The `--set` overrides the sweep was run with, on top of every point's own.
    #[serde(default)]
    pub set: Vec<String>,
    /// One entry per point, in grid order.
    pub points: Vec<IndexedPoint>,
}

impl SweepIndex {
    /// The `index.json` of a sweep directory, if it has one that parses.
    pub fn read(sweep_dir: &Path) -> Option<SweepIndex> {
        let text =
            crate::files::read_string(&sweep_dir.join(INDEX_FILE), crate::files::RECORD).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// One point in `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedPoint {
    /// Its position in the grid (`run-point SWEEP INDEX`).
    pub index: usize,
    /// Its name, made from its grid values.
    pub name: String,
    /// Its overrides of the base config.
    pub overrides: Vec<String>,
    /// Its run directory, relative to the sweep directory.
    pub run_dir: PathBuf,
    /// Where it stands.
    pub state: PointState,
    /// With halving: its score at each rung it reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<halving::RungScore>,
    /// With `seeds`: the setting it is one seed of (the name its seeds share), so that a
    /// setting's seeds are read back together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// With `seeds`: its seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Where a sweep point (or a `train --jobs` child) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointState {
    /// Not run yet by this call.
    Pending,
    /// Ran to the end in this call.
    Finished,
    /// Had finished before this call.
    Skipped,
    /// Its process failed (its log says why); running the sweep again retries it.
    Failed,
    /// Halving stopped it at a rung: its score was not among the better ones there.
    Stopped,
    /// Its run directory trained another config (e.g. the sweep ran with other `--set`
    /// values): left alone.
    OtherConfig,
    /// A signal stopped the sweep while it trained; running the sweep again resumes it where
    /// it stopped.
    Interrupted,
}

impl std::fmt::Display for PointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that widths such as `{:<9}` apply.
        f.pad(match self {
            PointState::Pending => "pending",
            PointState::Finished => "finished",
            PointState::Skipped => "skipped",
            PointState::Failed => "failed",
            PointState::Stopped => "stopped",
            PointState::OtherConfig => "other_config",
            PointState::Interrupted => "interrupted",
        })
    }
}

/// Runs the unfinished points of a sweep, `jobs` at a time, each as `exe run-point SWEEP INDEX`.
/// Finished points are skipped; interrupted ones resume from their checkpoints; failed ones are
/// retried; a failure never stops the others.
pub fn run_points(
    sweep: &Sweep,
    runs_root: &Path,
    jobs: usize,
    extra: &[String],
    exe: &Path,
) -> Result<Vec<PointOutcome>> {
    sweep.write_hparams_experiment(runs_root)?;
    if let Some(h) = &sweep.halving {
        return halving::run(sweep, h, runs_root, jobs, extra, exe);
    }
    let extra_overrides = extra
        .iter()
        .map(|o| o.parse::<Override>())
        .collect::<Result<Vec<_>>>()?;
    let mut states: Vec<(usize, PointState)> = Vec::new();
    let mut skipped = Vec::new();
    let mut children = Vec::new();
    for p in &sweep.points {
        let log = sweep.log_of(runs_root, p);
        let standing = sweep.standing_of(runs_root, p, &sweep.config_of(p, &extra_overrides)?);
        if let PointStanding::OtherConfig(differing) = &standing {
            tracing::error!(
                point = %p.name,
                "its run directory trained another config ({} differ): left alone; run the \
                 sweep with the --set values it was run with, run this variant as a sweep of \
                 its own (`--name NAME`), or move that directory away",
                differing.join(", ")
            );
            states.push((p.index, PointState::OtherConfig));
            skipped.push(PointOutcome {
                name: p.name.clone(),
                state: PointState::OtherConfig,
                log,
            });
        } else if standing == PointStanding::Finished {
            states.push((p.index, PointState::Skipped));
            skipped.push(PointOutcome {
                name: p.name.clone(),
                state: PointState::Skipped,
                log,
            });
        } else {
            children.push(sweep.point_job(p, runs_root, extra, None));
        }
    }
    let no_rungs = Default::default();
    sweep.write_index(runs_root, &states, &no_rungs, extra)?;
    let ran = run_children(children, jobs, exe, |job, state| {
        states.push((job.index, state));
        sweep.write_index(runs_root, &states, &no_rungs, extra)
    })?;
    let mut all: Vec<PointOutcome> = skipped.into_iter().chain(ran).collect();
    all.sort_by_key(|o| sweep.points.iter().position(|p| p.name == o.name));
    Ok(all)
}
