//! The module graph points one way (ARCHITECTURE.md): each module of the library uses only
//! modules listed before it. Read from the sources, outside their `#[cfg(test)]` parts.

use std::path::Path;

/// The library's modules, in dependency order.
const ORDER: &[&str] = &[
    "error",
    "checksum",
    "logging",
    "interrupt",
    "tensorboard",
    "model",
    "loss",
    "config",
    "data",
    "train",
    "run_dir",
    "classifier",
    "eval",
    "experiment",
    "sample",
    "export",
    "bench",
    "sweep",
    "compare",
    "report",
    "cli",
];

/// The files of `train`, in dependency order.
const TRAIN_ORDER: &[&str] = &["state", "reference", "step", "trainer"];

/// The source of every `.rs` file under `dir`, without its test module, by path.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap().to_string();
            out.push((path.display().to_string(), code));
        }
    }
}

/// The names `prefix` is followed by in `code` (e.g. `crate::` -> `config`, `model`).
fn used_after(code: &str, prefix: &str) -> Vec<String> {
    code.match_indices(prefix)
        .map(|(i, _)| {
            code[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn modules_use_only_modules_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let rank = |name: &str| ORDER.iter().position(|m| *m == name);
    let mut wrong = Vec::new();
    for (path, code) in &files {
        let relative = path.strip_prefix(&src.display().to_string()).unwrap();
        let module = relative
            .trim_start_matches('/')
            .split(['/', '.'])
            .next()
            .unwrap();
        let Some(own) = rank(module) else {
            assert!(
                ["lib", "main"].contains(&module),
                "{path}: module `{module}` is missing from ORDER"
            );
            continue;
        };
        for used in used_after(code, "crate::") {
            match rank(&used) {
                Some(r) if r > own => wrong.push(format!("{path} uses crate::{used}")),
                None if used != "error" => {
                    wrong.push(format!("{path} uses crate::{used}, missing from ORDER"))
                }
                _ => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "against the module order:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn train_files_use_only_files_before_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/train");
    let rank = |name: &str| TRAIN_ORDER.iter().position(|m| *m == name);
    let mut wrong = Vec::new();
    for own_name in TRAIN_ORDER {
        let text = std::fs::read_to_string(dir.join(format!("{own_name}.rs"))).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let own = rank(own_name).unwrap();
        let used = used_after(code, "super::")
            .into_iter()
            .chain(used_after(code, "crate::train::"));
        for name in used {
            if rank(&name).is_some_and(|r| r > own) {
                wrong.push(format!("train/{own_name}.rs uses {name}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "against the file order:\n{}",
        wrong.join("\n")
    );
}
