//! Turns serde and validation failures into errors that point at the file, line, column and key,
//! or at the `--set` override that supplied the bad value.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::Override;
use crate::error::{ConfigLocation, Error, Result};

/// Deserializes the file's own text, reporting the key path and toml's span on failure.
pub(crate) fn deserialize_text<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line_col = inner.span().map(|s| line_col(text, s.start));
        Error::Config {
            location: ConfigLocation {
                file: path.to_path_buf(),
                line_col,
                key: clean_key(&key),
                from_override: None,
            },
            message: inner.message().trim().to_string(),
        }
    })
}

/// Deserializes the table after overrides; a failure here is the overrides' doing.
pub(super) fn deserialize_overridden<T: DeserializeOwned>(
    table: toml::Table,
    path: &Path,
    overrides: &[Override],
) -> Result<T> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = clean_key(&e.path().to_string());
        let culprit = overrides
            .iter()
            .rev()
            .find(|o| same_branch(&key, &o.key))
            .or(overrides.last());
        Error::Config {
            location: ConfigLocation {
                file: path.to_path_buf(),
                line_col: None,
                key,
                from_override: culprit.map(|o| o.text.clone()),
            },
            message: e.into_inner().message().trim().to_string(),
        }
    })
}

/// Where the value at `key` (e.g. `model.generator.layers[3].rate`) sits: the override that set
/// it, or its line and column in the file.
pub(crate) fn locate(text: &str, path: &Path, key: &str, overrides: &[Override]) -> ConfigLocation {
    let from_override = overrides
        .iter()
        .rev()
        .find(|o| same_branch(key, &o.key))
        .map(|o| o.text.clone());
    let line_col = if from_override.is_some() {
        None
    } else {
        span_of(text, key).map(|start| line_col(text, start))
    };
    ConfigLocation {
        file: path.to_path_buf(),
        line_col,
        key: key.to_string(),
        from_override,
    }
}

/// Whether one dotted key lies within the other (`a.b` and `a.b[2].c`, either way round).
fn same_branch(a: &str, b: &str) -> bool {
    let within = |long: &str, short: &str| {
        long == short
            || (long.starts_with(short)
                && matches!(long.as_bytes().get(short.len()), Some(b'.') | Some(b'[')))
    };
    !a.is_empty() && !b.is_empty() && (within(a, b) || within(b, a))
}

/// serde_path_to_error writes `?` for untracked segments; drop them.
fn clean_key(key: &str) -> String {
    if key == "." {
        return String::new();
    }
    key.replace(".?", "")
}

/// Byte offset of the value at `key`, or of its nearest ancestor that exists in the file.
fn span_of(text: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text.to_string()).ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    let mut best = None;
    for seg in split_key(key) {
        let next = match seg {
            Seg::Key(k) => item.get(k.as_str()),
            Seg::Index(i) => item.get(i),
        };
        match next {
            Some(n) => {
                item = n;
                if let Some(span) = n.span() {
                    best = Some(span.start);
                }
            }
            None => break,
        }
    }
    best
}

enum Seg {
    Key(String),
    Index(usize),
}

fn split_key(key: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in key.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            segs.push(Seg::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(i) = rest[1..close].parse() {
                    segs.push(Seg::Index(i));
                }
                rest = &rest[close + 1..];
            }
        } else if !rest.is_empty() {
            segs.push(Seg::Key(rest.to_string()));
        }
    }
    segs
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_array_values() {
        let text =
            "a = 1\n[model]\nlayers = [\n  { type = \"x\" },\n  { type = \"y\", rate = 2 },\n]\n";
        let at = span_of(text, "model.layers[1].rate").unwrap();
        assert_eq!(line_col(text, at), (5, 24));
        // A key that is absent falls back to its nearest present ancestor.
        let at = span_of(text, "model.layers[1].missing").unwrap();
        assert_eq!(line_col(text, at).0, 5);
    }
}
