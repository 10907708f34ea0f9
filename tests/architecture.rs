//! The module graph points one way (ARCHITECTURE.md): each module of the library uses only
//! modules listed before it. Read from the whole sources, leaving out only the items marked
//! `#[cfg(test)]` (test modules may reach anything).

use std::path::Path;

/// The library's modules, in dependency order.
const ORDER: &[&str] = &[
    "error",
    "files",
    "checksum",
    "logging",
    "interrupt",
    "tensorboard",
    "model",
    "loss",
    "regularizer",
    "config",
    "data",
    "train",
    "run_dir",
    "classifier",
    "eval",
    "experiment",
    "plot",
    "sample",
    "export",
    "bench",
    "sweep",
    "compare",
    "report",
    "cli",
];

/// The files of `train`, in dependency order.
const TRAIN_ORDER: &[&str] = &["d_inputs", "state", "reference", "step", "trainer"];

/// The source of every `.rs` file under `dir`, without its test-only items, by path.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), production_code(&text)));
        }
    }
}

/// `code` without the items marked `#[cfg(test)]` (a test module, a test-only function or
/// import) and without comments, string and character literals, whose braces and words are
/// not code.
fn production_code(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let text = strip_literals(code);
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        rest = &rest[at + MARK.len()..];
        // The item ends at its first `;` outside braces, or at the brace closing its body.
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => {
                    end = i + 1;
                    break;
                }
                '}' => depth = depth.saturating_sub(1),
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `code` with comments, string literals (raw ones included) and character literals replaced by
/// spaces, so that neither their braces nor their words count.
fn strip_literals(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let blank = |out: &mut String, from: &[char]| {
        out.extend(from.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }))
    };
    while i < chars.len() {
        let rest = &chars[i..];
        let starts = |s: &str| rest.iter().take(s.len()).copied().eq(s.chars());
        let len = if starts("//") {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if starts("/*") {
            (2..rest.len())
                .find(|&j| rest[j - 2..j] == ['*', '/'])
                .unwrap_or(rest.len())
        } else if starts("r\"")
            || starts("r#")
                && rest
                    .get(1..)
                    .is_some_and(|r| r.iter().find(|&&c| c != '#') == Some(&'"'))
        {
            let hashes = rest[1..].iter().take_while(|&&c| c == '#').count();
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body = 2 + hashes;
            (body..=rest.len().saturating_sub(close.len()))
                .find(|&j| rest[j..j + close.len()] == close[..])
                .map_or(rest.len(), |j| j + close.len())
        } else if rest[0] == '"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != '"' {
                j += if rest[j] == '\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if rest[0] == '\'' && rest.get(1) == Some(&'\\') {
            rest.iter()
                .skip(2)
                .position(|&c| c == '\'')
                .map_or(1, |j| j + 3)
        } else if rest[0] == '\'' && rest.get(2) == Some(&'\'') {
            3
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        blank(&mut out, &rest[..len]);
        i += len;
    }
    out
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

/// Every use of a module ranked after the file's own, in `files` (paths under `src`).
fn against_the_order(src: &str, files: &[(String, String)]) -> Vec<String> {
    let rank = |name: &str| ORDER.iter().position(|m| *m == name);
    let mut wrong = Vec::new();
    for (path, code) in files {
        let relative = path.strip_prefix(src).unwrap();
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
    wrong
}

#[test]
fn modules_use_only_modules_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let wrong = against_the_order(&src.display().to_string(), &files);
    assert!(
        wrong.is_empty(),
        "against the module order:\n{}",
        wrong.join("\n")
    );
}

/// The check reads past a file's first test module: an import of a later module planted in
/// production code after it (or after a test-only function, or inside a raw string's braces)
/// is found; the same import inside a test module is not.
#[test]
fn a_planted_import_anywhere_in_production_code_is_found() {
    let planted = r##"
        use crate::model::Network;
        #[cfg(test)]
        fn helper() -> &'static str { "}" }
        #[cfg(test)]
        mod tests {
            use crate::cli::Cli;
            const BRACES: &str = r#"{{ }"#;
            fn f() { let c = '{'; let _ = c; }
        }
        // A comment with { an unmatched brace.
        fn later() { let _ = crate::report::write; }
    "##;
    let code = production_code(planted);
    assert!(!code.contains("crate::cli"), "test module left in:\n{code}");
    let files = [("src/config/planted.rs".to_string(), code)];
    let wrong = against_the_order("src", &files);
    assert_eq!(wrong, ["src/config/planted.rs uses crate::report"]);
    // The old reading stopped at the first `#[cfg(test)]` and missed it.
    let old = planted.split("#[cfg(test)]").next().unwrap().to_string();
    assert!(against_the_order("src", &[("src/config/planted.rs".into(), old)]).is_empty());
}

#[test]
fn train_files_use_only_files_before_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/train");
    let rank = |name: &str| TRAIN_ORDER.iter().position(|m| *m == name);
    let mut wrong = Vec::new();
    for own_name in TRAIN_ORDER {
        let text = std::fs::read_to_string(dir.join(format!("{own_name}.rs"))).unwrap();
        let code = &production_code(&text);
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
