//! `gan-run -m CONFIG KEY=V1,V2 ...`, Hydra's multirun: a grid typed on the command line. It
//! becomes a sweep file, written into its own sweep directory (`runs/<name>/sweep.toml`), so
//! that it runs through exactly the machinery of a sweep file (points as `run-point` children,
//! `index.json`, `--jobs`, `--plan`, `--emit slurm`, resuming), and so that the directory says
//! what made it and `gan-run sweep runs/<name>/sweep.toml` runs it again.

use std::path::{Path, PathBuf};

use super::Sweep;
use crate::config::{self, Override};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::run_dir::MULTIRUN_FILE;

/// A multirun, as the sweep file it becomes.
#[derive(Debug, Clone)]
pub struct Multirun {
    /// Where its sweep file goes: `<runs root>/<name>/sweep.toml`.
    pub file: PathBuf,
    /// The sweep file's text.
    pub text: String,
}

/// What one `KEY=...` argument of a multirun is.
enum Arg {
    /// `KEY=VALUE`: set in every point, not part of their names (the sweep file's `[set]`).
    Fixed(String, toml::Value),
    /// `KEY=V1,V2,...`: an axis of the grid.
    Axis(String, Vec<toml::Value>),
}

impl Multirun {
    /// The multirun of `config` with `args` (`KEY=VALUE` or `KEY=V1,V2,...`, split at commas
    /// outside brackets, braces and quotes), named `name` or after the config and the swept
    /// keys (`paper-optimizer.generator.beta1-seed`). `seed=1,2,3` beside another axis repeats
    /// every setting over those seeds (the sweep file's `seeds`), so that `compare` groups a
    /// setting's seeds; alone, it is an ordinary axis.
    pub fn new(
        config: &Path,
        args: &[String],
        name: Option<&str>,
        runs_root: &Path,
    ) -> Result<Multirun> {
        let mut fixed = toml::Table::new();
        let mut grid = toml::Table::new();
        let mut axes: Vec<String> = Vec::new();
        for text in args {
            let parsed = parse_arg(text)?;
            let key = match &parsed {
                Arg::Fixed(k, _) | Arg::Axis(k, _) => k.clone(),
            };
            if fixed.contains_key(&key) || grid.contains_key(&key) {
                return Err(bad(text, &format!("`{key}` is given twice")));
            }
            match parsed {
                Arg::Fixed(k, v) => {
                    fixed.insert(k, v);
                }
                Arg::Axis(k, values) => {
                    axes.push(k.clone());
                    grid.insert(k, toml::Value::Array(values));
                }
            }
        }
        if grid.is_empty() {
            return Err(Error::Override {
                text: args.join(" "),
                message: "a multirun (-m) needs at least one axis, KEY=V1,V2,... (values \
                          separated by commas); to train one config with these values, leave \
                          out -m: `gan-run CONFIG KEY=VALUE ...`"
                    .into(),
            });
        }
        let stem = config
            .file_stem()
            .map_or("multirun".into(), |s| s.to_string_lossy().to_string());
        let name = match name {
            Some(n) => n.to_string(),
            None => super::grid::sanitize(&format!("{stem}-{}", axes.join("-"))),
        };
        config::check_run_name(&name).map_err(|m| bad(&format!("--name {name}"), &m))?;
        let mut file = toml::Table::new();
        file.insert("name".into(), toml::Value::String(name.clone()));
        let base = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
        let base = base.display().to_string();
        file.insert("base".into(), toml::Value::String(base));
        let seeds = grid
            .get("seed")
            .filter(|_| grid.len() > 1)
            .and_then(as_seeds);
        if let Some(seeds) = seeds {
            grid.remove("seed");
            file.insert("seeds".into(), seeds);
        }
        file.insert("set".into(), toml::Value::Table(fixed));
        file.insert("grid".into(), toml::Value::Table(grid));
        let text = format!(
            "# Written by `gan-run -m`: the multirun as a sweep file. Its points are run \
             directories beside\n# this file; `gan-run sweep {}` runs it again.\n{}",
            runs_root.join(&name).join(MULTIRUN_FILE).display(),
            toml::to_string(&file).expect("a table serialises")
        );
        Ok(Multirun {
            file: runs_root.join(&name).join(MULTIRUN_FILE),
            text,
        })
    }

    /// The sweep, read from the text without writing it (for `--plan`).
    pub fn sweep(&self) -> Result<Sweep> {
        Sweep::from_text(&self.text, &self.file)
    }

    /// Writes the sweep file into its sweep directory and returns the sweep. A directory that
    /// holds another multirun's file, or another sweep's index, is refused: its points would
    /// be numbered differently, and scheduler tasks still queued for them would run the wrong
    /// ones.
    pub fn write(&self) -> Result<Sweep> {
        let sweep = self.sweep()?;
        let dir = self
            .file
            .parent()
            .expect("the file is in its sweep directory");
        let refuse = |what: String| Error::RunDir {
            path: dir.to_path_buf(),
            message: format!(
                "{what}; give this multirun a sweep directory of its own with --name NAME, or \
                 run that sweep with `gan-run sweep {}`",
                self.file.display()
            ),
        };
        if let Ok(old) = crate::files::read_string(&self.file, crate::files::CONFIG) {
            let table = |t: &str| toml::from_str::<toml::Table>(t).ok();
            if table(&old) != table(&self.text) {
                return Err(refuse(format!(
                    "holds another multirun (its {MULTIRUN_FILE} has another grid or values)"
                )));
            }
        } else if let Some(index) = super::SweepIndex::read(dir) {
            return Err(refuse(format!(
                "holds the sweep of {}",
                index.sweep_file.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        write_atomic(&self.file, self.text.as_bytes())?;
        Ok(sweep)
    }
}

/// One `KEY=VALUE` or `KEY=V1,V2,...` of a multirun, each value read as `--set` reads it.
fn parse_arg(text: &str) -> Result<Arg> {
    let Some((key, raw)) = text.split_once('=') else {
        return Err(bad(
            text,
            "expected KEY=VALUE or KEY=V1,V2,... (e.g. `optimizer.generator.beta1=0.1,0.5`)",
        ));
    };
    let values = split_values(raw);
    let mut parsed = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if value.trim().is_empty() {
            return Err(bad(text, &format!("value {} of the list is empty", i + 1)));
        }
        let o: Override = format!("{key}={value}").parse().map_err(|e| match e {
            Error::Override { message, .. } => bad(text, &message),
            other => other,
        })?;
        parsed.push(o);
    }
    let key = parsed[0].key.clone();
    let mut values: Vec<toml::Value> = parsed.into_iter().map(|o| o.value).collect();
    Ok(if values.len() == 1 {
        Arg::Fixed(key, values.remove(0))
    } else {
        Arg::Axis(key, values)
    })
}

/// Splits a value list at its commas, except those inside brackets, braces or quotes, so that
/// `[64, 32],[128]` is two lists and `"a,b"` one string.
pub fn split_values(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut escaped, mut start) = (0i32, None, false, 0);
    for (i, c) in raw.char_indices() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), _) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        escaped = false;
    }
    parts.push(&raw[start..]);
    parts
}

/// The values of a `seed` axis as the sweep file's `seeds`, if they are distinct integers
/// from 0 up; otherwise the axis stays an axis (and a bad value is refused as any would be).
fn as_seeds(values: &toml::Value) -> Option<toml::Value> {
    let values = values.as_array()?;
    let mut seen = std::collections::BTreeSet::new();
    for v in values {
        let s = v.as_integer().filter(|s| *s >= 0)?;
        seen.insert(s).then_some(())?;
    }
    Some(toml::Value::Array(values.clone()))
}

/// A refused multirun argument.
fn bad(text: &str, message: &str) -> Error {
    Error::Override {
        text: text.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_at_commas_outside_brackets_and_quotes() {
        assert_eq!(split_values("0.1,0.5,0.9"), ["0.1", "0.5", "0.9"]);
        assert_eq!(split_values("0.5"), ["0.5"]);
        assert_eq!(split_values("[64, 32],[128]"), ["[64, 32]", "[128]"]);
        assert_eq!(
            split_values("{ kind = \"normal\", mean = 0.0 },{ kind = \"uniform\" }"),
            [
                "{ kind = \"normal\", mean = 0.0 }",
                "{ kind = \"uniform\" }"
            ]
        );
        assert_eq!(split_values("\"a,b\",'c,d',e"), ["\"a,b\"", "'c,d'", "e"]);
        assert_eq!(split_values("\"a\\\",b\",c"), ["\"a\\\",b\"", "c"]);
        assert_eq!(split_values("1,"), ["1", ""]);
    }

    fn multirun(args: &[&str], name: Option<&str>) -> Result<Multirun> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Multirun::new(
            Path::new("configs/paper.toml"),
            &args,
            name,
            Path::new("runs"),
        )
    }

    #[test]
    fn axes_fixed_values_seeds_and_the_name() {
        let m = multirun(
            &[
                "optimizer.generator.beta1=0.1,0.5,0.9",
                "seed=1,2,3",
                "training.epochs=5",
                "model.generator.layers[1].slope=[0.1],[0.2]",
            ],
            None,
        )
        .unwrap();
        let name = "paper-optimizer.generator.beta1-seed-model.generator.layers_1_.slope";
        assert_eq!(m.file, Path::new("runs").join(name).join(MULTIRUN_FILE));
        let t: toml::Table = toml::from_str(&m.text).unwrap();
        assert_eq!(t["name"].as_str(), Some(name));
        assert!(t["base"].as_str().unwrap().ends_with("configs/paper.toml"));
        assert!(Path::new(t["base"].as_str().unwrap()).is_absolute());
        assert_eq!(
            t["seeds"],
            toml::Value::Array(vec![1.into(), 2.into(), 3.into()])
        );
        assert_eq!(t["set"]["training.epochs"].as_integer(), Some(5));
        let beta1 = t["grid"]["optimizer.generator.beta1"].as_array().unwrap();
        assert_eq!(beta1.len(), 3);
        let slopes = t["grid"]["model.generator.layers[1].slope"]
            .as_array()
            .unwrap();
        assert_eq!(slopes[1], toml::Value::Array(vec![0.2.into()]));

        let m = multirun(&["seed=1,2"], Some("seeds-only")).unwrap();
        let t: toml::Table = toml::from_str(&m.text).unwrap();
        assert!(t.get("seeds").is_none());
        assert_eq!(t["grid"]["seed"].as_array().unwrap().len(), 2);
        assert_eq!(t["name"].as_str(), Some("seeds-only"));
    }

    #[test]
    fn bad_arguments_are_refused_naming_them() {
        for (args, expect) in [
            (&["training.epochs=2"][..], "at least one axis"),
            (&["loss"][..], "expected KEY=VALUE"),
            (&["seed=1,,2"][..], "value 2 of the list is empty"),
            (&["seed=1,2", "seed=3,4"][..], "given twice"),
            (&[".x=1,2"][..], "empty segment"),
        ] {
            let e = multirun(args, None).unwrap_err().to_string();
            assert!(e.contains(expect), "{args:?}: {e}");
            assert!(
                e.contains(args[args.len() - 1].split('=').next().unwrap()),
                "{e}"
            );
        }
        let e = multirun(&["seed=1,2"], Some("../x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--name ../x"), "{e}");
    }
}
