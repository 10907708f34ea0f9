//! `--set KEY=VALUE` overrides, in Hydra's dotted-key spirit, applied to the parsed TOML before
//! it is deserialized, so that they are checked exactly like the file.

use std::str::FromStr;

use crate::error::{Error, Result};

/// One `--set KEY=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The override as typed, for messages.
    pub text: String,
    /// Dotted key, e.g. `optimizer.discriminator.beta1` or `model.generator.layers[6].rate`.
    pub key: String,
    /// The value, parsed as TOML (a bare word that is not TOML is taken as a string).
    pub value: toml::Value,
}

impl FromStr for Override {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |message: &str| Error::Override {
            text: text.to_string(),
            message: message.to_string(),
        };
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE, e.g. `training.epochs=3`"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|s| s.is_empty()) {
            return Err(bad("the key is empty or has an empty segment"));
        }
        let raw = raw.trim();
        let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut t) => t.remove("v").expect("just parsed"),
            // A table or list that does not parse is a mistake, not a word to take as text.
            Err(e) if raw.starts_with(['{', '[']) => {
                let hint = match raw.contains('\n') {
                    true => {
                        "; an inline table `{ ... }` must be on one line (TOML 1.0), though a \
                             list `[ ... ]` of them may span lines"
                    }
                    false => "",
                };
                let reason = e.message().trim().replace('\n', ", ");
                return Err(bad(&format!("the value is not valid TOML: {reason}{hint}")));
            }
            Err(_) => toml::Value::String(raw.to_string()),
        };
        Ok(Override {
            text: text.to_string(),
            key: key.to_string(),
            value,
        })
    }
}

impl Override {
    /// Sets the value in `table`, creating missing tables on the way.
    pub fn apply(&self, table: &mut toml::Table) -> Result<()> {
        let bad = |message: String| Error::Override {
            text: self.text.clone(),
            message,
        };
        let segments = parse_segments(&self.key).map_err(bad)?;
        let (last, path) = segments.split_last().expect("keys are non-empty");
        let mut here = TomlSlot::Table(table);
        for (i, seg) in path.iter().enumerate() {
            let need_array = matches!(segments[i + 1], Segment::Index(_));
            here = here
                .child(seg, need_array)
                .map_err(|m| bad(format!("{m} (at `{}`)", render(&segments[..=i]))))?;
        }
        here.set(last, self.value.clone())
            .map_err(|m| bad(format!("{m} (at `{}`)", self.key)))
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn parse_segments(key: &str) -> std::result::Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(match name.parse::<usize>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key(name.to_string()),
            });
        }
        while !rest.is_empty() {
            if !rest.starts_with('[') {
                return Err(format!("`{rest}` after an index: expected `[` or `.`"));
            }
            let close = rest.find(']').ok_or("unclosed `[` in key")?;
            let index = rest[1..close]
                .parse()
                .map_err(|_| format!("`{}` is not an array index", &rest[1..close]))?;
            out.push(Segment::Index(index));
            rest = &rest[close + 1..];
        }
    }
    if out.is_empty() {
        return Err("the key is empty".into());
    }
    Ok(out)
}

fn render(segments: &[Segment]) -> String {
    let mut s = String::new();
    for seg in segments {
        match seg {
            Segment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

enum TomlSlot<'a> {
    Table(&'a mut toml::Table),
    Array(&'a mut Vec<toml::Value>),
}

impl<'a> TomlSlot<'a> {
    fn child(self, seg: &Segment, need_array: bool) -> std::result::Result<TomlSlot<'a>, String> {
        let value = match (self, seg) {
            (TomlSlot::Table(t), Segment::Key(k)) => t.entry(k.clone()).or_insert_with(|| {
                if need_array {
                    toml::Value::Array(Vec::new())
                } else {
                    toml::Value::Table(toml::Table::new())
                }
            }),
            (TomlSlot::Array(a), Segment::Index(i)) => {
                let len = a.len();
                a.get_mut(*i)
                    .ok_or_else(|| format!("index {i} is past the end of a list of {len}"))?
            }
            (TomlSlot::Table(_), Segment::Index(_)) => return Err("not a list".into()),
            (TomlSlot::Array(_), Segment::Key(_)) => return Err("a list needs an index".into()),
        };
        match value {
            toml::Value::Table(t) => Ok(TomlSlot::Table(t)),
            toml::Value::Array(a) => Ok(TomlSlot::Array(a)),
            other => Err(format!("holds a {}, not a table", other.type_str())),
        }
    }

    fn set(self, seg: &Segment, value: toml::Value) -> std::result::Result<(), String> {
        match (self, seg) {
            (TomlSlot::Table(t), Segment::Key(k)) => {
                t.insert(k.clone(), value);
                Ok(())
            }
            (TomlSlot::Array(a), Segment::Index(i)) => {
                let len = a.len();
                *a.get_mut(*i)
                    .ok_or_else(|| format!("index {i} is past the end of a list of {len}"))? =
                    value;
                Ok(())
            }
            (TomlSlot::Table(_), Segment::Index(_)) => Err("not a list".into()),
            (TomlSlot::Array(_), Segment::Key(_)) => Err("a list needs an index".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, o: &str) -> Result<toml::Table> {
        let mut t: toml::Table = toml::from_str(text).unwrap();
        o.parse::<Override>()?.apply(&mut t)?;
        Ok(t)
    }

    /// Found by the property test: text after an index's `]` that is not another index.
    #[test]
    fn text_after_an_index_is_refused_not_a_panic() {
        for key in ["a[0]]", "a[0]x", "a[0]]b[1]"] {
            let o: Override = format!("{key}=1").parse().unwrap();
            let mut table = toml::Table::new();
            let e = o.apply(&mut table).unwrap_err();
            assert!(e.to_string().contains("expected"), "{key}: {e}");
        }
    }

    #[test]
    fn sets_nested_and_indexed_values() {
        let t = apply("[a]\nb = 1\n", "a.b=2").unwrap();
        assert_eq!(t["a"]["b"].as_integer(), Some(2));
        let t = apply("[a]\nl = [{x = 1}, {x = 2}]\n", "a.l[1].x=0.5").unwrap();
        assert_eq!(t["a"]["l"][1]["x"].as_float(), Some(0.5));
        let t = apply("", "c.d=word").unwrap();
        assert_eq!(t["c"]["d"].as_str(), Some("word"));
    }

    #[test]
    fn refuses_malformed_overrides() {
        assert!("novalue".parse::<Override>().is_err());
        assert!(".a=1".parse::<Override>().is_err());
        let e = apply("[a]\nl = [{x = 1}]\n", "a.l[3].x=1").unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        let e = apply("a = 1\n", "a.b=1").unwrap_err();
        assert!(e.to_string().contains("not a table"), "{e}");
    }
}
