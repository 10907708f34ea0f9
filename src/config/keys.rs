//! The dotted keys an override can set, read off the config's own types (serde), so that shell
//! completion offers them and a mistyped key gets a near-miss suggestion (`training.epoch` ->
//! `training.epochs`) without a list kept by hand beside the structs.

use super::{flatten, ExperimentConfig, Override};
use crate::error::Error;

/// A config with every optional table present (the gradient penalty, mode seeking, top-k,
/// augmentation, conditioning, G's moving average, the training subset) and the lists empty:
/// what the schema's keys are read from.
const EVERY_TABLE: &str = "name = \"\"\n\
    [data]\ntrain_size = 1\n\
    [gradient_penalty]\nkind = \"r1\"\nweight = 1.0\n\
    [mode_seeking]\nweight = 1.0\n\
    [augment]\ntranslation = 0.125\ncutout = 0.5\n\
    [top_k]\ndecay = 0.99\nmin_fraction = 0.5\n\
    [conditioning]\nclasses = 10\n\
    [model.generator]\nlayers = []\nema = { decay = 0.9 }\n\
    [model.discriminator]\nlayers = []\n";

/// The same with the other noise distribution, whose keys differ.
const NORMAL_NOISE: &str = "name = \"\"\nmodel.generator.layers = []\n\
    model.discriminator.layers = []\n\
    noise.distribution = { kind = \"normal\", mean = 0.0, std = 1.0 }\n";

/// Every dotted key of the config schema, sorted: each leaf of every table (defaults filled
/// in), the optional tables' keys, both noise distributions' keys, and lists as whole values
/// (`model.generator.layers`, `generation.extra_grids`); a layer's own keys depend on its kind
/// and place (`model.generator.layers[2].rate`) and are read from a config itself, see
/// [`keys_of`].
pub fn schema_keys() -> Vec<String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut std::collections::BTreeSet<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = match prefix {
                        "" => k.clone(),
                        p => format!("{p}.{k}"),
                    };
                    walk(&key, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let mut keys = std::collections::BTreeSet::new();
    for text in [EVERY_TABLE, NORMAL_NOISE] {
        let config: ExperimentConfig =
            toml::from_str(text).expect("every key but the name and the layers has a default");
        let value = toml::Value::try_from(&config).expect("configs serialise");
        walk("", &value, &mut keys);
    }
    keys.into_iter().collect()
}

/// The keys of one config (its layers' keys at their places included) and the schema's.
pub fn keys_of(config: &ExperimentConfig) -> Vec<String> {
    let mut keys: std::collections::BTreeSet<String> = flatten(config).into_keys().collect();
    keys.extend(schema_keys());
    keys.into_iter().collect()
}

/// An unknown key that an override brought in, with the config's nearest key as a suggestion
/// (`training.epoch` -> did you mean `training.epochs`?), where one is near enough.
pub(super) fn suggest_key(e: Error, overrides: &[Override], file: &ExperimentConfig) -> Error {
    let Error::Config { location, message } = e else {
        return e;
    };
    let culprit = overrides
        .iter()
        .find(|o| location.from_override.as_ref() == Some(&o.text));
    let suggestion = culprit
        .filter(|_| message.starts_with("unknown field") || message.starts_with("unknown variant"))
        .and_then(|o| {
            let known = keys_of(file);
            // A known key with a wrong value (an unknown variant) needs no other key.
            if known.contains(&o.key) {
                return None;
            }
            nearest(&o.key, known.iter().map(String::as_str)).map(str::to_string)
        });
    let message = match suggestion {
        Some(key) => format!("{message}; did you mean `{key}`?"),
        None => message,
    };
    Error::Config { location, message }
}

/// The candidate closest to `typed`, when it is close enough to be what was meant: at most a
/// third of its characters apart (at least one), by edit distance. `None` when nothing is.
pub fn nearest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (typed.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != typed)
        .map(|c| (edit_distance(typed, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's keys cover every key of the shipped configs outside the layer lists, and
    /// the optional tables' keys that those configs leave out.
    #[test]
    fn schema_keys_cover_the_shipped_configs() {
        let keys = schema_keys();
        for name in ["smoke", "paper", "mlp-best", "paper-best"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("configs/{name}.toml"));
            let config = crate::config::load(&path, &[]).unwrap();
            for key in flatten(&config).into_keys() {
                // A list's items are set through the list, or by index (`layers[2].rate`).
                let key = key.split('[').next().unwrap().to_string();
                assert!(keys.contains(&key), "{name}: {key} missing from {keys:?}");
            }
        }
        for key in [
            "gradient_penalty.weight",
            "model.generator.ema.decay",
            "noise.distribution.std",
            "noise.distribution.low",
            "data.train_size",
            "model.generator.layers",
            "generation.extra_grids",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn near_misses_are_suggested_and_nonsense_is_not() {
        let keys = schema_keys();
        let near = |typed: &str| nearest(typed, keys.iter().map(String::as_str));
        assert_eq!(near("training.epoch"), Some("training.epochs"));
        assert_eq!(
            near("optimizer.generator.beta"),
            Some("optimizer.generator.beta1")
        );
        assert_eq!(
            near("optimiser.generator.lr"),
            Some("optimizer.generator.lr")
        );
        assert_eq!(near("nonsense.key"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
