//! Successive halving: every point of a sweep trains to a first rung and is scored there; only
//! the better share goes on to the next rung, and so on up to the full epochs. With `seeds`,
//! what is ranked is a setting: by the mean of its seeds' scores, all of its seeds going on or
//! stopping together, so that one lucky seed does not carry a setting. Every decision is
//! read from the points' own `metrics.csv`, so a killed sweep, run again, reaches the same
//! decisions and trains no epoch twice. Stopped points keep their run directories, with a
//! `stopped.json` that says where and why they stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{run_children, PointOutcome, PointState, Sweep};
use crate::config::{Experiment, Override};
use crate::error::Result;
use crate::files::write_atomic;
use crate::run_dir::RunDir;
use crate::train::EpochMetrics;

/// A stopped point's record, in its run directory.
pub use crate::run_dir::STOPPED_FILE;

/// The `[halving]` table of a sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halving {
    /// The score that ranks the points: a scored column of `metrics.csv`.
    pub metric: RankMetric,
    /// Epochs at which the points still training are scored and ranked: increasing, each
    /// before the points' last epoch.
    pub rungs: Vec<usize>,
    /// Share of the points ranked at a rung that go on (rounded, at least one).
    pub keep: f64,
}

/// A score that ranks sweep points: one of the columns `[evaluation]` adds to `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankMetric {
    /// Classifier FID: lower is better.
    Fid,
    /// Classifier score: higher is better.
    ClassifierScore,
    /// Digits drawn by at least 1% of the samples: higher is better.
    Modes,
    /// Parzen log-likelihood of the test set: higher is better.
    ParzenNats,
}

impl RankMetric {
    /// Its column name in `metrics.csv`.
    pub fn name(self) -> &'static str {
        match self {
            RankMetric::Fid => "fid",
            RankMetric::ClassifierScore => "classifier_score",
            RankMetric::Modes => "modes",
            RankMetric::ParzenNats => "parzen_nats",
        }
    }

    /// Whether a smaller value ranks first.
    pub fn lower_is_better(self) -> bool {
        matches!(self, RankMetric::Fid)
    }

    /// Its value in an epoch's metrics, if that epoch was scored.
    pub fn of(self, m: &EpochMetrics) -> Option<f64> {
        match self {
            RankMetric::Fid => m.fid,
            RankMetric::ClassifierScore => m.classifier_score,
            RankMetric::Modes => m.modes.map(|n| n as f64),
            RankMetric::ParzenNats => m.parzen_nats,
        }
    }
}

impl Halving {
    /// Why a point's config cannot be ranked by this halving, as (key, message).
    pub fn check(&self, config: &Experiment) -> std::result::Result<(), (&'static str, String)> {
        if self.rungs.is_empty() {
            return Err((
                "halving.rungs",
                "names no epochs; list the epochs at which to rank the points, e.g. [10, 30]"
                    .into(),
            ));
        }
        if !(self.keep > 0.0 && self.keep < 1.0) {
            return Err((
                "halving.keep",
                format!(
                    "is {}; it is the share of points that go on at each rung, between 0 and 1 \
                     (0.5 keeps the better half)",
                    self.keep
                ),
            ));
        }
        if self.rungs[0] == 0 || self.rungs.windows(2).any(|w| w[0] >= w[1]) {
            return Err((
                "halving.rungs",
                format!("{:?} must be increasing epochs above 0", self.rungs),
            ));
        }
        let last = self.rungs[self.rungs.len() - 1];
        if last >= config.training.epochs {
            return Err((
                "halving.rungs",
                format!(
                    "ends at epoch {last}, but the point trains {} epochs; every rung must come \
                     before the last epoch",
                    config.training.epochs
                ),
            ));
        }
        if config.evaluation.every == 0 {
            return Err((
                "halving.metric",
                format!(
                    "ranks points by `{}`, which is only scored with `[evaluation] every` above \
                     0; set it for every point in the sweep file's [set] table, e.g. \
                     \"evaluation.every\" = {}",
                    self.metric.name(),
                    self.rungs[0]
                ),
            ));
        }
        Ok(())
    }

    /// How many of `n` points ranked at a rung go on: `keep` of them, rounded, at least one.
    pub fn survivors(&self, n: usize) -> usize {
        ((n as f64 * self.keep).round() as usize).clamp(1.min(n), n)
    }

    /// [`Halving::describe`] for a sweep: its settings, and the seeds each is ranked over.
    pub fn describe_sweep(&self, sweep: &Sweep, epochs: usize) -> String {
        let line = self.describe(sweep.settings().len(), epochs);
        match sweep.seeds.len() {
            0 => line,
            n => format!(
                "{line} (settings ranked by the mean over their {n} seeds {:?}, which go on or \
                 stop together)",
                sweep.seeds
            ),
        }
    }

    /// A line that shows the rungs, e.g. for `sweep --plan`.
    pub fn describe(&self, points: usize, epochs: usize) -> String {
        let mut n = points;
        let mut parts = Vec::new();
        for r in &self.rungs {
            let kept = self.survivors(n);
            parts.push(format!("epoch {r}: best {kept} of {n} go on"));
            n = kept;
        }
        let verb = if n == 1 { "trains" } else { "train" };
        parts.push(format!("{n} {verb} to epoch {epochs}"));
        format!(
            "successive halving on {} ({} is better): {}",
            self.metric.name(),
            if self.metric.lower_is_better() {
                "lower"
            } else {
                "higher"
            },
            parts.join("; ")
        )
    }
}

/// A point's place at a rung, as `index.json` and `stopped.json` record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungScore {
    /// The rung's epoch.
    pub epoch: usize,
    /// The score its setting was ranked by: the point's own, or with `seeds` the mean over
    /// the setting's seeds; empty when that epoch has none (a training failed).
    pub score: Option<f64>,
    /// Its setting's rank among the settings ranked there (1 = best).
    pub rank: usize,
    /// How many settings were ranked there.
    pub of: usize,
    /// Whether it went on.
    pub kept: bool,
    /// With `seeds`: this seed's own score there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_score: Option<f64>,
}

/// What `stopped.json` holds: why halving stopped this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoppedRecord {
    /// The sweep that stopped it.
    pub sweep: String,
    /// The score it was ranked by.
    pub metric: RankMetric,
    /// Where it stood at the rung where it stopped.
    pub at: RungScore,
}

impl StoppedRecord {
    /// A run directory's `stopped.json`, if it has one that parses.
    pub fn read(run_dir: &Path) -> Option<StoppedRecord> {
        let text =
            crate::files::read_string(&run_dir.join(STOPPED_FILE), crate::files::RECORD).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// E.g. `stopped at epoch 5 (fid 23.10, 6th of 8)`.
    pub fn describe(&self) -> String {
        let shown = |s: Option<f64>| s.map_or("no score".to_string(), |s| format!("{s:.2}"));
        let score = shown(self.at.score);
        let (what, of) = match self.at.seed_score {
            Some(own) => (
                format!(
                    "mean {} over the seeds {score}, this seed {}",
                    self.metric.name(),
                    shown(Some(own))
                ),
                " settings",
            ),
            None => (format!("{} {score}", self.metric.name()), ""),
        };
        format!(
            "stopped at epoch {} ({what}, {} of {}{of})",
            self.at.epoch,
            ordinal(self.at.rank),
            self.at.of
        )
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Orders points best first by their scores; points without a finite score come last; ties
/// keep grid order. Deterministic, so that a rerun reaches the same decisions.
pub fn rank(metric: RankMetric, scores: &[(usize, Option<f64>)]) -> Vec<(usize, Option<f64>)> {
    let key = |s: &Option<f64>| {
        s.filter(|x| x.is_finite())
            .map(|x| if metric.lower_is_better() { x } else { -x })
    };
    let mut ranked = scores.to_vec();
    ranked.sort_by(|(ia, a), (ib, b)| match (key(a), key(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y).then(ia.cmp(ib)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => ia.cmp(ib),
    });
    ranked
}

/// One rung's decision over the `alive` settings (indices into `settings`, each a list of its
/// points): each setting's score, the mean of its points' scores (`score_of`; none unless
/// every point has one), ranked best first by [`rank`], and the settings that go on (the
/// better share among those with a finite score).
pub fn decide_rung(
    halving: &Halving,
    settings: &[Vec<usize>],
    alive: &[usize],
    score_of: impl Fn(usize) -> Option<f64>,
) -> (Vec<(usize, Option<f64>)>, BTreeSet<usize>) {
    let scores: Vec<(usize, Option<f64>)> = alive
        .iter()
        .map(|&s| {
            let own: Option<Vec<f64>> = settings[s].iter().map(|&i| score_of(i)).collect();
            let mean = own.map(|v| v.iter().sum::<f64>() / v.len() as f64);
            (s, mean)
        })
        .collect();
    let ranked = rank(halving.metric, &scores);
    let kept = halving.survivors(ranked.len());
    let going_on = ranked
        .iter()
        .filter(|(_, s)| s.is_some_and(f64::is_finite))
        .take(kept)
        .map(|(s, _)| *s)
        .collect();
    (ranked, going_on)
}

/// Training still to do: the points to train and the epoch to stop at (`None`: their last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStep {
    /// Stop at this epoch (a rung), or train to the end.
    pub until: Option<usize>,
    /// The points, by index.
    pub points: Vec<usize>,
}

/// Where a halving sweep stands, decided from its points' run directories alone.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// Each point's places at the rungs it was ranked at.
    pub rungs: BTreeMap<usize, Vec<RungScore>>,
    /// Stopped points.
    pub stopped: BTreeSet<usize>,
    /// Points that have trained all their epochs.
    pub finished: BTreeSet<usize>,
    /// What to train next; `None` when the sweep is done.
    pub next: Option<NextStep>,
}

/// Decides where the sweep stands: ranks the points at every rung they have all reached, and
/// says what to train next. Points in `given_up` (failed in this call) are not trained again;
/// they rank last wherever they have no score.
pub fn standing(
    sweep: &Sweep,
    halving: &Halving,
    runs_root: &Path,
    configs: &[Experiment],
    given_up: &BTreeSet<usize>,
) -> Standing {
    let metrics: Vec<Vec<EpochMetrics>> = sweep
        .points
        .iter()
        .map(|p| RunDir::read_metrics(&sweep.dir(runs_root).join(&p.name)).unwrap_or_default())
        .collect();
    let done_epochs = |i: usize| metrics[i].last().map_or(0, |m| m.epoch);
    let mut st = Standing {
        finished: (0..configs.len())
            .filter(|&i| done_epochs(i) >= configs[i].training.epochs)
            .collect(),
        ..Standing::default()
    };
    let settings = sweep.settings();
    let seeded = !sweep.seeds.is_empty();
    let points_of = |alive: &[usize]| -> Vec<usize> {
        alive
            .iter()
            .flat_map(|&s| settings[s].iter().copied())
            .collect()
    };
    // The settings still training, by index into `settings`.
    let mut alive: Vec<usize> = (0..settings.len()).collect();
    for &rung in &halving.rungs {
        let at_rung = |i: usize| metrics[i].iter().find(|m| m.epoch == rung);
        let need: Vec<usize> = points_of(&alive)
            .into_iter()
            .filter(|&i| at_rung(i).is_none() && !given_up.contains(&i))
            .collect();
        if !need.is_empty() {
            st.next = Some(NextStep {
                until: Some(rung),
                points: need,
            });
            return st;
        }
        let own = |i: usize| at_rung(i).and_then(|m| halving.metric.of(m));
        let (ranked, going_on) = decide_rung(halving, &settings, &alive, own);
        for (position, (s, score)) in ranked.iter().enumerate() {
            let kept = going_on.contains(s);
            for &i in &settings[*s] {
                st.rungs.entry(i).or_default().push(RungScore {
                    epoch: rung,
                    score: *score,
                    rank: position + 1,
                    of: ranked.len(),
                    kept,
                    seed_score: if seeded { own(i) } else { None },
                });
                if !kept {
                    st.stopped.insert(i);
                }
            }
        }
        alive = going_on.into_iter().collect();
    }
    let need: Vec<usize> = points_of(&alive)
        .into_iter()
        .filter(|i| !st.finished.contains(i) && !given_up.contains(i))
        .collect();
    if !need.is_empty() {
        st.next = Some(NextStep {
            until: None,
            points: need,
        });
    }
    st
}

/// Runs a sweep with successive halving, `jobs` points at a time: trains the points to each
/// rung, ranks them, writes `stopped.json` into the points that stop and `index.json` after
/// every step, and trains the survivors on.
pub fn run(
    sweep: &Sweep,
    halving: &Halving,
    runs_root: &Path,
    jobs: usize,
    extra: &[String],
    exe: &Path,
) -> Result<Vec<PointOutcome>> {
    let extra_overrides = extra
        .iter()
        .map(|o| o.parse::<Override>())
        .collect::<Result<Vec<_>>>()?;
    let configs = sweep
        .points
        .iter()
        .map(|p| sweep.config_of(p, &extra_overrides))
        .collect::<Result<Vec<_>>>()?;
    let mut failed = BTreeSet::new();
    let mut previous: Option<NextStep> = None;
    loop {
        let st = standing(sweep, halving, runs_root, &configs, &failed);
        let marks = Marks {
            failed: &failed,
            interrupted: &BTreeSet::new(),
        };
        record(sweep, halving, runs_root, &st, marks, extra)?;
        let Some(next) = st.next else {
            return Ok(outcomes(sweep, runs_root, &st, &failed));
        };
        if previous.as_ref() == Some(&next) {
            // The children ended well but did not get there (e.g. a run directory that
            // already holds a different run): give up on them rather than loop.
            for &i in &next.points {
                tracing::warn!(point = %sweep.points[i].name, "did not reach its rung; giving up on it");
                failed.insert(i);
            }
            continue;
        }
        let target = next
            .until
            .map_or("their last epoch".to_string(), |e| format!("epoch {e}"));
        tracing::info!(points = next.points.len(), "halving: training to {target}");
        let children = next
            .points
            .iter()
            .map(|&i| sweep.point_job(&sweep.points[i], runs_root, extra, next.until))
            .collect();
        let mut interrupted = BTreeSet::new();
        let ran = run_children(children, jobs, exe, |job, state| {
            match state {
                PointState::Failed => failed.insert(job.index),
                PointState::Interrupted => interrupted.insert(job.index),
                _ => false,
            };
            Ok(())
        });
        if let Err(e) = ran {
            if matches!(e, crate::error::Error::Interrupted { .. }) {
                // `index.json` says which points the signal stopped.
                let st = standing(sweep, halving, runs_root, &configs, &failed);
                let marks = Marks {
                    failed: &failed,
                    interrupted: &interrupted,
                };
                record(sweep, halving, runs_root, &st, marks, extra)?;
            }
            return Err(e);
        }
        previous = Some(next);
    }
}

/// Writes `stopped.json` into the stopped points (and removes it from the others), and
/// `index.json` with every point's state and rungs.
/// Points whose state this call's children decided: they failed, or a signal stopped them.
#[derive(Clone, Copy)]
struct Marks<'a> {
    failed: &'a BTreeSet<usize>,
    interrupted: &'a BTreeSet<usize>,
}

fn record(
    sweep: &Sweep,
    halving: &Halving,
    runs_root: &Path,
    st: &Standing,
    marks: Marks<'_>,
    extra: &[String],
) -> Result<()> {
    for p in &sweep.points {
        let dir = sweep.dir(runs_root).join(&p.name);
        let file = dir.join(STOPPED_FILE);
        let last_rung = st.rungs.get(&p.index).and_then(|r| r.last());
        match last_rung {
            Some(at) if st.stopped.contains(&p.index) && dir.exists() => {
                let record = StoppedRecord {
                    sweep: sweep.name.clone(),
                    metric: halving.metric,
                    at: at.clone(),
                };
                if StoppedRecord::read(&dir).as_ref() != Some(&record) {
                    let text = serde_json::to_string_pretty(&record).expect("record serialises");
                    write_atomic(&file, text.as_bytes())?;
                }
            }
            _ if file.exists() => std::fs::remove_file(&file)
                .map_err(|e| crate::error::Error::io("cannot delete", &file, e))?,
            _ => {}
        }
    }
    let states: Vec<(usize, PointState)> = sweep
        .points
        .iter()
        .map(|p| (p.index, state_of(p.index, st, marks)))
        .collect();
    sweep.write_index(runs_root, &states, &st.rungs, extra)
}

fn state_of(index: usize, st: &Standing, marks: Marks<'_>) -> PointState {
    if marks.failed.contains(&index) {
        PointState::Failed
    } else if marks.interrupted.contains(&index) {
        PointState::Interrupted
    } else if st.stopped.contains(&index) {
        PointState::Stopped
    } else if st.finished.contains(&index) {
        PointState::Finished
    } else {
        PointState::Pending
    }
}

fn outcomes(
    sweep: &Sweep,
    runs_root: &Path,
    st: &Standing,
    failed: &BTreeSet<usize>,
) -> Vec<PointOutcome> {
    sweep
        .points
        .iter()
        .map(|p| PointOutcome {
            name: p.name.clone(),
            state: state_of(
                p.index,
                st,
                Marks {
                    failed,
                    interrupted: &BTreeSet::new(),
                },
            ),
            log: sweep.log_of(runs_root, p),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halving(keep: f64) -> Halving {
        Halving {
            metric: RankMetric::Fid,
            rungs: vec![5, 20],
            keep,
        }
    }

    #[test]
    fn ranking_puts_the_best_first_and_the_unscored_last() {
        let scores = [
            (0, Some(3.0)),
            (1, None),
            (2, Some(1.0)),
            (3, Some(f64::NAN)),
            (4, Some(3.0)),
        ];
        let order: Vec<usize> = rank(RankMetric::Fid, &scores)
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(order, [2, 0, 4, 1, 3]);
        let order: Vec<usize> = rank(RankMetric::ParzenNats, &scores)
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(order, [0, 4, 2, 1, 3]);
    }

    #[test]
    fn survivors_round_and_keep_at_least_one() {
        let h = halving(1.0 / 3.0);
        assert_eq!(h.survivors(8), 3);
        assert_eq!(h.survivors(3), 1);
        assert_eq!(h.survivors(1), 1);
        assert_eq!(halving(0.5).survivors(8), 4);
        assert_eq!(halving(0.5).survivors(0), 0);
        assert_eq!(
            h.describe(8, 71),
            "successive halving on fid (lower is better): epoch 5: best 3 of 8 go on; \
             epoch 20: best 1 of 3 go on; 1 trains to epoch 71"
        );
    }

    #[test]
    fn a_lucky_seed_does_not_carry_a_setting_with_a_worse_mean() {
        // Setting 0: one lucky seed (FID 10, the best of all) but a mean of 30; setting 1:
        // three middling seeds, mean 20.
        let settings = vec![vec![0, 1, 2], vec![3, 4, 5]];
        let fid = [10.0, 40.0, 40.0, 20.0, 21.0, 19.0];
        let (ranked, going_on) = decide_rung(&halving(0.5), &settings, &[0, 1], |i| Some(fid[i]));
        assert_eq!(ranked, [(1, Some(20.0)), (0, Some(30.0))]);
        assert_eq!(going_on, BTreeSet::from([1]));
        // Higher is better: the same scores as classifier scores keep setting 0.
        let mut h = halving(0.5);
        h.metric = RankMetric::ClassifierScore;
        let (_, going_on) = decide_rung(&h, &settings, &[0, 1], |i| Some(fid[i]));
        assert_eq!(going_on, BTreeSet::from([0]));
    }

    #[test]
    fn a_setting_with_an_unscored_seed_ranks_last_and_stops() {
        let settings = vec![vec![0, 1], vec![2, 3], vec![4, 5]];
        let fid = [
            Some(5.0),
            None,
            Some(30.0),
            Some(30.0),
            Some(50.0),
            Some(f64::NAN),
        ];
        let (ranked, going_on) = decide_rung(&halving(0.5), &settings, &[0, 1, 2], |i| fid[i]);
        let order: Vec<usize> = ranked.iter().map(|(s, _)| *s).collect();
        assert_eq!(order, [1, 0, 2]);
        assert_eq!(ranked[1].1, None);
        // keep 0.5 of three lets two go on, but only setting 1 has a finite mean.
        assert_eq!(going_on, BTreeSet::from([1]));
        // Only settings still alive are ranked.
        let (ranked, _) = decide_rung(&halving(0.5), &settings, &[2], |i| fid[i]);
        assert_eq!(ranked.len(), 1);
    }

    #[test]
    fn ordinals() {
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            words,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
        );
    }
}
