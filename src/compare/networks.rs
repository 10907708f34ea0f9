//! A network's layer list as one readable value, for the tables of `compare` and `report`:
//! runs with other architectures differ in one column per network (`linear 100>256,
//! leaky_relu 0.2, batch_norm batch, ...`) instead of one per layer setting, which ran to
//! dozens of columns. `diff` keeps the per-layer detail.

use std::collections::BTreeMap;

use crate::config::{self, Experiment, FeatureShape, LayerSpec};

/// The config's settings as the tables show them: dotted keys and values as
/// [`config::flatten`] gives them, without the run's name, each network's layer list as one
/// value under `model.<network>.layers` ([`describe_layers`]).
pub fn table_settings(config: &Experiment) -> BTreeMap<String, String> {
    let mut flat = config::flatten(config);
    flat.remove("name");
    let networks = [
        (
            "generator",
            &config.model.generator.layers,
            config.generator_shapes(),
        ),
        (
            "discriminator",
            &config.model.discriminator.layers,
            config.discriminator_shapes(),
        ),
    ];
    for (network, layers, shapes) in networks {
        let key = format!("model.{network}.layers");
        let prefix = format!("{key}[");
        flat.retain(|k, _| !k.starts_with(&prefix));
        flat.insert(key, describe_layers(layers, shapes));
    }
    flat
}

/// A layer list in one line: each layer's kind, a sized layer's shapes (`in>out`: widths, or
/// `CxHxW` for images), then the settings that are not at their defaults (text first and bare,
/// a boolean by its name when true, a number bare when it is the layer's only setting shown,
/// else `key=value`). `shapes` are the shapes along the network
/// ([`Experiment::generator_shapes`]). Two layer lists give the same line only when they build
/// the same network.
pub fn describe_layers(layers: &[LayerSpec], shapes: &[FeatureShape]) -> String {
    layers
        .iter()
        .enumerate()
        .map(|(i, layer)| describe_layer(layer, shapes.get(i).zip(shapes.get(i + 1))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A shape without spaces or commas, which separate layers in the line: `784`, `64x14x14`.
fn compact(shape: &FeatureShape) -> String {
    match shape.image() {
        None => shape.len().to_string(),
        Some((c, h, w)) => format!("{c}x{h}x{w}"),
    }
}

/// One layer, as [`describe_layers`] says; `shapes` its input's and output's.
fn describe_layer(layer: &LayerSpec, shapes: Option<(&FeatureShape, &FeatureShape)>) -> String {
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(layer) else {
        return format!("{layer:?}");
    };
    let kind = table
        .get("type")
        .and_then(toml::Value::as_str)
        .unwrap_or("?")
        .to_string();
    // `in` is a check of the width that reaches the layer; `out` is in the shapes.
    let sized = table.contains_key("out");
    let mut shown: Vec<(&String, &toml::Value)> = table
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "type" | "in" | "out"))
        .filter(|(k, _)| !at_default(&table, k))
        .collect();
    // Text first (a mode reads best beside the kind), then the rest by key.
    shown.sort_by_key(|(k, v)| (!v.is_str(), k.as_str()));
    let mut words = vec![kind];
    if let (true, Some((input, output))) = (sized, shapes) {
        words.push(format!("{}>{}", compact(input), compact(output)));
    }
    let alone = shown.len() == 1;
    for (key, value) in shown {
        words.push(match value {
            toml::Value::Boolean(true) => key.clone(),
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => format!(
                "{key}={}",
                items
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("x")
            ),
            v if alone => v.to_string(),
            v => format!("{key}={v}"),
        });
    }
    words.join(" ")
}

/// Whether `key` holds the value the layer would get without it: the table without the key
/// reads as the same layer.
fn at_default(table: &toml::map::Map<String, toml::Value>, key: &str) -> bool {
    let mut without = table.clone();
    without.remove(key);
    let original: Option<LayerSpec> = toml::Value::Table(table.clone()).try_into().ok();
    let reduced: Option<LayerSpec> = toml::Value::Table(without).try_into().ok();
    reduced.is_some() && reduced == original
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(name: &str, overrides: &[&str]) -> Experiment {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(name);
        let o: Vec<crate::config::Override> =
            overrides.iter().map(|s| s.parse().unwrap()).collect();
        crate::config::load(&path, &o).unwrap()
    }

    /// The paper's generator reads as one line, with its widths and only the settings that
    /// are not defaults; the table has one key per network for the layer lists.
    #[test]
    fn a_layer_list_reads_as_one_line() {
        let paper = experiment("paper.toml", &[]);
        let settings = table_settings(&paper);
        let g = &settings["model.generator.layers"];
        assert!(
            g.starts_with("linear 100>256, leaky_relu 0.2, batch_norm batch, linear 256>512,"),
            "{g}"
        );
        assert!(g.ends_with("dropout 0.5, linear 1024>784, sigmoid"), "{g}");
        assert!(
            !settings.keys().any(|k| k.contains("layers[")),
            "{settings:?}"
        );
        let d = &experiment("mlp-best.toml", &[]).model.discriminator.layers;
        let shapes = experiment("mlp-best.toml", &[])
            .discriminator_shapes()
            .to_vec();
        let line = describe_layers(d, &shapes);
        assert!(
            line.starts_with("linear 784>1024 spectral_norm, "),
            "{line}"
        );
        assert!(line.ends_with("linear 256>1 spectral_norm"), "{line}");
    }

    /// Layers that differ in any setting read differently, a setting at its default is left
    /// out, and a kind with two settings shown names them.
    #[test]
    fn different_layers_read_differently() {
        let widths = [FeatureShape::Flat(8), FeatureShape::Flat(8)];
        let read = |text: &str| {
            let layer: LayerSpec = toml::from_str::<toml::Value>(text)
                .unwrap()
                .try_into()
                .unwrap();
            describe_layer(&layer, widths.first().zip(widths.get(1)))
        };
        assert_eq!(
            read("type = \"batch_norm\"\nmode = \"running\""),
            "batch_norm running"
        );
        assert_eq!(
            read("type = \"batch_norm\"\nmode = \"running\"\neps = 1e-5"),
            "batch_norm running"
        );
        assert_eq!(
            read("type = \"batch_norm\"\nmode = \"running\"\neps = 0.001\nmomentum = 0.2"),
            "batch_norm running eps=0.001 momentum=0.2"
        );
        assert_eq!(
            read("type = \"linear\"\nout = 8\nspectral_norm = false"),
            "linear 8>8"
        );
        assert_eq!(read("type = \"elu\"\nalpha = 0.5"), "elu 0.5");
        assert_eq!(read("type = \"elu\""), "elu");
    }
}
