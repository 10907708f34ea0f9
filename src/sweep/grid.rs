//! How a sweep file's grid and seeds become points: the settings (the product of the grid's
//! values), each repeated over the seeds, with names made of the values.

use std::path::Path;

use super::{Point, SweepFile};
use crate::config;
use crate::error::{Error, Result};

/// The seeds a sweep file repeats its settings over (empty without `seeds`), refused when
/// empty, repeated, beyond a TOML integer, or given while `seed` is also swept or set.
pub(super) fn check_seeds(path: &Path, file: &SweepFile) -> Result<Vec<u64>> {
    let Some(seeds) = &file.seeds else {
        return Ok(Vec::new());
    };
    let refuse = |key: &str, message: String| Error::Config {
        location: config::location_of(path, key),
        message,
    };
    for (table, keys) in [("grid", &file.grid), ("set", &file.set)] {
        if keys.contains_key("seed") {
            return Err(refuse(
                &format!("{table}.seed"),
                format!(
                    "`seed` is given here and the sweep also lists `seeds = {seeds:?}`; each \
                     (setting, seed) is already its own run with `seed` set: remove `seed` from \
                     [{table}], or remove `seeds`"
                ),
            ));
        }
    }
    if seeds.is_empty() {
        return Err(refuse(
            "seeds",
            "is empty; list the seeds to repeat every setting over, e.g. [1, 2, 3], or \
             remove it"
                .into(),
        ));
    }
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(refuse(
            "seeds",
            format!("lists the seed {} twice; each seed makes one run", w[0]),
        ));
    }
    if let Some(s) = seeds.iter().find(|&&s| i64::try_from(s).is_err()) {
        return Err(refuse(
            "seeds",
            format!("{s} is above {}, the largest TOML integer", i64::MAX),
        ));
    }
    Ok(seeds.clone())
}

/// The most points a sweep may have: far past any sweep that could finish, and small enough
/// that listing them (`--plan`, the index) stays cheap.
pub(super) const MAX_POINTS: u128 = 100_000;

/// Refuses a grid whose product of axes (times the seeds) passes [`MAX_POINTS`], computed
/// before anything is expanded: a dozen lines of sweep file can name a billion points.
pub(super) fn check_size(
    path: &Path,
    axes: &[(String, Vec<toml::Value>)],
    seeds: usize,
) -> Result<()> {
    let points = axes
        .iter()
        .map(|(_, v)| v.len() as u128)
        .chain([seeds.max(1) as u128])
        .try_fold(1u128, |n, k| n.checked_mul(k).filter(|&n| n <= MAX_POINTS));
    if points.is_some() {
        return Ok(());
    }
    let sizes: Vec<String> = axes
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.len()))
        .chain((seeds > 0).then(|| format!("seeds: {seeds}")))
        .collect();
    Err(Error::Config {
        location: config::location_of(path, "grid"),
        message: format!(
            "makes more than {MAX_POINTS} points ({}); split the sweep, or sweep fewer values \
             per key (successive halving over a coarse grid, then a finer one near its winner)",
            sizes.join(" x ")
        ),
    })
}

/// Refuses a point whose name (its run directory's) is past a file name's 255 bytes.
pub(super) fn check_name_lengths(path: &Path, points: &[Point]) -> Result<()> {
    match points
        .iter()
        .find(|p| p.name.len() > config::MAX_NAME_BYTES)
    {
        None => Ok(()),
        Some(p) => Err(Error::Config {
            location: config::location_of(path, "grid"),
            message: format!(
                "the point `{}` has a {}-byte name, past a file name's {} bytes; sweep fewer \
                 keys at once, or give long values (lists, tables) as shorter ones",
                p.name,
                p.name.len(),
                config::MAX_NAME_BYTES
            ),
        }),
    }
}

/// The points of a grid: one per setting (the product of the axes, the last key varying
/// fastest) and seed (fastest of all), each with the `fixed` overrides first.
pub(super) fn expand(
    axes: &[(String, Vec<toml::Value>)],
    seeds: &[u64],
    fixed: &[String],
) -> Vec<Point> {
    let labels = short_labels(&axes.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>());
    let settings: usize = axes.iter().map(|(_, v)| v.len()).product();
    let per_setting: Vec<Option<u64>> = if seeds.is_empty() {
        vec![None]
    } else {
        seeds.iter().copied().map(Some).collect()
    };
    let mut points = Vec::new();
    for setting in 0..settings {
        let mut rest = setting;
        let mut overrides = fixed.to_vec();
        let mut parts = Vec::new();
        let mut values = Vec::new();
        let mut picks = vec![0; axes.len()];
        for (a, (_, v)) in axes.iter().enumerate().rev() {
            picks[a] = rest % v.len();
            rest /= v.len();
        }
        for (a, (key, v)) in axes.iter().enumerate() {
            let pick = picks[a];
            let v = &v[pick];
            let shown = match v {
                toml::Value::String(s) => s.clone(),
                // A list or table (a whole layer list, say) would make a name hundreds of
                // bytes long, past a file name's limit: it is named by its place on the axis.
                toml::Value::Array(_) | toml::Value::Table(_) => format!("v{}", pick + 1),
                other => other.to_string(),
            };
            overrides.push(format!("{key}={v}"));
            parts.push(format!("{}={shown}", labels[a]));
            values.push((key.clone(), v.clone()));
        }
        let setting_name = sanitize(&parts.join(","));
        for seed in &per_setting {
            let mut point = Point {
                index: points.len(),
                name: setting_name.clone(),
                overrides: overrides.clone(),
                values: values.clone(),
                setting,
                setting_name: setting_name.clone(),
                seed: *seed,
            };
            if let Some(s) = seed {
                point.name = format!("{setting_name},seed={s}");
                point.overrides.push(format!("seed={s}"));
                point
                    .values
                    .push(("seed".into(), toml::Value::Integer(*s as i64)));
            }
            points.push(point);
        }
    }
    points
}

/// Labels for grid keys: the last segment where that is unambiguous, else more of the key.
fn short_labels(keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|key| {
            let segs: Vec<&str> = key.split('.').collect();
            for n in 1..=segs.len() {
                let label = segs[segs.len() - n..].join(".");
                let clashes = keys
                    .iter()
                    .filter(|other| {
                        let o: Vec<&str> = other.split('.').collect();
                        o.len() >= n && o[o.len() - n..].join(".") == label
                    })
                    .count();
                if clashes == 1 {
                    return label;
                }
            }
            key.to_string()
        })
        .collect()
}

/// A name made of letters, digits and `- _ . = ,` (what a run name allows): others become `_`.
pub(super) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{Sweep, SweepIndex};

    /// A sweep file (base config not read by `Sweep::load`) in a folder of its own.
    fn sweep_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seeded.toml");
        std::fs::write(&path, format!("base = \"smoke.toml\"\n{text}")).unwrap();
        (dir, path)
    }

    #[test]
    fn seeds_repeat_every_setting_as_runs_of_their_own() {
        let (_dir, path) =
            sweep_file("seeds = [1, 2, 3]\n[grid]\nloss = [\"hinge\", \"bce_logits\"]\n");
        let sweep = Sweep::load(&path).unwrap();
        let names: Vec<&str> = sweep.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "loss=hinge,seed=1",
                "loss=hinge,seed=2",
                "loss=hinge,seed=3",
                "loss=bce_logits,seed=1",
                "loss=bce_logits,seed=2",
                "loss=bce_logits,seed=3"
            ]
        );
        assert_eq!(sweep.points[4].overrides, ["loss=\"bce_logits\"", "seed=2"]);
        assert_eq!(sweep.points[4].setting_name, "loss=bce_logits");
        assert_eq!(sweep.points[4].seed, Some(2));
        assert_eq!(sweep.settings(), [vec![0, 1, 2], vec![3, 4, 5]]);
        assert_eq!(sweep.axes.last().unwrap().0, "seed");
        assert!(sweep
            .seeds_line()
            .unwrap()
            .starts_with("2 settings x seeds [1, 2, 3] = 6 points"));

        // The index says which setting each point is a seed of; without seeds it says nothing.
        let runs = tempfile::tempdir().unwrap();
        sweep
            .write_index(runs.path(), &[], &Default::default(), &[])
            .unwrap();
        let index = SweepIndex::read(&sweep.dir(runs.path())).unwrap();
        let p = &index.points[4];
        assert_eq!(
            (p.setting.as_deref(), p.seed),
            (Some("loss=bce_logits"), Some(2))
        );
        let (_plain_dir, plain) = sweep_file("[grid]\nloss = [\"hinge\", \"bce_logits\"]\n");
        let plain = Sweep::load(&plain).unwrap();
        assert_eq!(plain.settings(), [vec![0], vec![1]]);
        assert_eq!(plain.seeds_line(), None);
        plain
            .write_index(runs.path(), &[], &Default::default(), &[])
            .unwrap();
        let text = std::fs::read_to_string(plain.dir(runs.path()).join(crate::run_dir::INDEX_FILE));
        assert!(!text.unwrap().contains("setting"));
    }

    #[test]
    fn seeds_beside_a_swept_or_set_seed_are_refused_naming_the_file_and_key() {
        for (text, key) in [
            ("seeds = [1, 2]\n[grid]\nseed = [3, 4]\n", "grid.seed"),
            (
                "seeds = [1, 2]\n[set]\nseed = 3\n[grid]\nloss = [\"hinge\"]\n",
                "set.seed",
            ),
            ("seeds = []\n[grid]\nloss = [\"hinge\"]\n", "seeds"),
            ("seeds = [1, 1]\n[grid]\nloss = [\"hinge\"]\n", "seeds"),
        ] {
            let (_dir, path) = sweep_file(text);
            let err = Sweep::load(&path).unwrap_err();
            let Error::Config { location, message } = &err else {
                panic!("{err}");
            };
            assert_eq!(
                (location.file.as_path(), location.key.as_str()),
                (path.as_path(), key)
            );
            let shown = err.to_string();
            assert!(
                shown.contains("seeded.toml") && shown.contains(key),
                "{shown}"
            );
            if key != "seeds" {
                assert!(
                    message.contains("`seed`") && message.contains("seeds"),
                    "{message}"
                );
            }
        }
        // A swept seed alone is an ordinary grid key.
        let (_dir, path) = sweep_file("[grid]\nseed = [3, 4]\n");
        assert_eq!(Sweep::load(&path).unwrap().points.len(), 2);
    }

    #[test]
    fn lists_and_tables_on_an_axis_are_named_by_their_place() {
        let (_dir, path) = sweep_file(
            "[grid]\n\"model.discriminator.layers\" = [[{ type = \"linear\", in = 784, out = 1 }], \
             [{ type = \"linear\", in = 784, out = 1, spectral_norm = true }]]\nloss = [\"hinge\"]\n",
        );
        let sweep = Sweep::load(&path).unwrap();
        let names: Vec<&str> = sweep.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["loss=hinge,layers=v1", "loss=hinge,layers=v2"]);
        assert!(sweep.points[1].overrides[1].contains("spectral_norm = true"));
    }

    /// Nine keys of ten values are a billion points: refused from their sizes, at once.
    #[test]
    fn a_grid_too_large_to_expand_is_refused_before_expansion() {
        let axes: String = (0..9)
            .map(|k| format!("\"k{k}\" = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"))
            .collect();
        let (_dir, path) = sweep_file(&format!("seeds = [1, 2]\n[grid]\n{axes}"));
        let started = std::time::Instant::now();
        let err = Sweep::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("more than 100000 points") && err.contains("seeds: 2"),
            "{err}"
        );
        assert!(err.contains("seeded.toml"), "{err}");
        assert!(started.elapsed().as_secs() < 5, "refused without expanding");
        // At the limit itself it is still a sweep.
        let axes: String = (0..5)
            .map(|k| format!("\"k{k}\" = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"))
            .collect();
        let (_dir, path) = sweep_file(&format!("[grid]\n{axes}"));
        let err = Sweep::load(&path).err().map(|e| e.to_string());
        assert!(
            !err.as_deref().unwrap_or("").contains("points ("),
            "{err:?}"
        );
    }

    #[test]
    fn a_point_name_past_255_bytes_is_refused() {
        let long = "x".repeat(300);
        let (_dir, path) = sweep_file(&format!("[grid]\nname = [\"{long}\"]\n"));
        let err = Sweep::load(&path).unwrap_err().to_string();
        assert!(err.contains("305-byte name"), "{err}");
    }

    #[test]
    fn labels_are_short_but_unambiguous() {
        assert_eq!(
            short_labels(&[
                "optimizer.discriminator.beta1",
                "optimizer.generator.beta1",
                "training.epochs"
            ]),
            vec!["discriminator.beta1", "generator.beta1", "epochs"]
        );
    }
}
