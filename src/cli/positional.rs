//! Positional arguments as researchers type them: experiment files, then `KEY=VALUE` overrides
//! that act exactly as `--set KEY=VALUE` does (`gan-run configs/smoke.toml training.epochs=2`).
//! Every argument is resolved, as a file that exists or as an override, before anything is
//! loaded or trained; one that is neither stops the command at once, naming it and what it
//! could have meant (a missing file, a near-miss file or key, a `--set` that lost its value).

use std::path::{Path, PathBuf};

use crate::config::{keys, Override};

/// The positional arguments, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Positionals {
    /// The experiment (or sweep) files, in order.
    pub files: Vec<PathBuf>,
    /// The overrides: the `--set` values, then the positional `KEY=VALUE`s, as typed.
    pub set: Vec<String>,
}

/// Resolves `args` (files, then `KEY=VALUE` overrides) beside the `--set` values `set`.
pub fn resolve(args: &[String], set: &[String]) -> anyhow::Result<Positionals> {
    let mut files = Vec::new();
    let mut overrides: Vec<String> = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if std::fs::symlink_metadata(arg).is_ok() {
            if let Some(o) = overrides.last() {
                anyhow::bail!(
                    "`{arg}` comes after the override `{o}`: put the experiment files first, then \
                     the KEY=VALUE overrides, which apply to every file"
                );
            }
            files.push(PathBuf::from(arg));
        } else if arg.contains('=') {
            arg.parse::<Override>()?;
            overrides.push(arg.clone());
        } else {
            anyhow::bail!(unresolved(arg, args.get(i + 1), set));
        }
    }
    for s in set {
        s.parse::<Override>()?;
    }
    if files.is_empty() {
        anyhow::bail!(
            "no experiment file among the arguments ({}); name one first, e.g. \
             `gan-run configs/smoke.toml training.epochs=2`",
            args.join(" ")
        );
    }
    Ok(Positionals {
        files,
        set: set.iter().chain(&overrides).cloned().collect(),
    })
}

/// Checks arguments that may only be overrides (those after a sweep file): each must be one.
pub fn overrides_only(args: &[String], set: &[String]) -> anyhow::Result<Vec<String>> {
    for (i, arg) in args.iter().enumerate() {
        if !arg.contains('=') {
            anyhow::bail!(unresolved(arg, args.get(i + 1), set));
        }
        arg.parse::<Override>()?;
    }
    for s in set {
        s.parse::<Override>()?;
    }
    Ok(set.iter().chain(args).cloned().collect())
}

/// Why `arg` is neither a file nor an override, and what it could have meant.
fn unresolved(arg: &str, next: Option<&String>, set: &[String]) -> String {
    let mut message = format!(
        "`{arg}` is neither an experiment file (there is no such file) nor a KEY=VALUE override \
         (it has no `=`)"
    );
    let schema = keys::schema_keys();
    if let Some(lost) = set.iter().find(|s| !s.contains('=')) {
        // `--set training.epochs 2`: the value went to the positional arguments.
        message += &format!(
            "; `--set {lost}` has no value either: did you mean `--set {lost}={arg}` (or \
             `{lost}={arg}`)?"
        );
    } else if schema.iter().any(|k| k == arg) {
        let value = next.map_or("VALUE", |v| v.as_str());
        message += &format!("; `{arg}` is a config key: write `{arg}={value}`");
    } else if let Some(file) = near_file(arg) {
        message += &format!("; did you mean the file `{}`?", file.display());
    } else if let Some(key) = keys::nearest(arg, schema.iter().map(String::as_str)) {
        message += &format!("; did you mean the key `{key}` (`{key}=VALUE`)?");
    } else {
        message += "; overrides are written `KEY=VALUE` (or `--set KEY=VALUE`), e.g. \
                    `training.epochs=2`";
    }
    message
}

/// The file beside where `arg` points whose name is nearest to it, if one is near enough.
fn near_file(arg: &str) -> Option<PathBuf> {
    let path = Path::new(arg);
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let typed = path.file_name()?.to_string_lossy().to_string();
    let names: Vec<String> = std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let name = keys::nearest(&typed, names.iter().map(String::as_str))?;
    Some(match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn smoke() -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs/smoke.toml")
            .display()
            .to_string()
    }

    #[test]
    fn files_then_overrides_join_the_set_values() {
        let r = resolve(
            &strings(&[&smoke(), "training.epochs=2", "seed=3"]),
            &strings(&["loss=hinge"]),
        )
        .unwrap();
        assert_eq!(r.files, [PathBuf::from(smoke())]);
        assert_eq!(r.set, ["loss=hinge", "training.epochs=2", "seed=3"]);
        // A run directory's path may hold `=`: a file that exists is a file.
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("beta1=0.5.toml");
        std::fs::write(&odd, "").unwrap();
        let odd = odd.display().to_string();
        assert_eq!(
            resolve(&strings(&[&odd]), &[]).unwrap().set,
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_an_unresolved_argument_could_have_meant() {
        let e = |args: &[&str], set: &[&str]| {
            resolve(&strings(args), &strings(set))
                .unwrap_err()
                .to_string()
        };
        let smoke = smoke();
        let m = e(&[&smoke, "2"], &["training.epochs"]);
        assert!(
            m.contains("`2`") && m.contains("--set training.epochs=2"),
            "{m}"
        );
        let m = e(&[&smoke, "training.epochs", "2"], &[]);
        assert!(m.contains("write `training.epochs=2`"), "{m}");
        let typo = format!(
            "{}/smok.toml",
            Path::new(&smoke).parent().unwrap().display()
        );
        let m = e(&[&smoke, &typo], &[]);
        assert!(m.contains("smok.toml") && m.contains("smoke.toml"), "{m}");
        let m = e(&[&smoke, "training.epoch"], &[]);
        assert!(m.contains("did you mean the key `training.epochs`"), "{m}");
        let m = e(&[&smoke, "seed=1", &smoke], &[]);
        assert!(m.contains("comes after the override `seed=1`"), "{m}");
        let m = e(&["seed=1"], &[]);
        assert!(m.contains("no experiment file"), "{m}");
        let m = e(&[&smoke, ".x=1"], &[]);
        assert!(m.contains(".x=1") && m.contains("empty segment"), "{m}");
        let m = overrides_only(&strings(&["seed=1", "oops"]), &[])
            .unwrap_err()
            .to_string();
        assert!(m.contains("`oops`"), "{m}");
    }
}
