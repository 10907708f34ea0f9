//! The fingerprint that ties a checkpoint to the config that made it: a hash of the keys that
//! shape the trained weights, stable across gan-run versions that add keys.

use super::*;

/// Keys added after gan-run's first release, as dotted paths of tables and of keys in tables.
/// While one holds its default it is left out of the text the fingerprint hashes, which is then
/// the text that gan-run hashed before the key existed: so adding a key whose default does what
/// gan-run did before never changes the fingerprint of an existing run, and its checkpoints
/// still resume. A key added from now on goes here too. (Keys inside the layer lists are
/// [`ADDED_LAYER_KEYS`].)
const ADDED_KEYS: &[&str] = &[
    "label_smoothing",
    "instance_noise",
    "training.stop_when_stuck",
    "output.tensorboard",
    "output.tensorboard_every_steps",
    "evaluation",
    "generation",
    "conditioning.classifier_weight",
    "optimizer.generator.lr_decay",
    "optimizer.discriminator.lr_decay",
];

/// Keys of layer tables added after the first release, with the value that does what gan-run
/// did before: left out of the hashed text of every layer that holds it, as [`ADDED_KEYS`] are.
const ADDED_LAYER_KEYS: &[(&str, bool)] = &[("spectral_norm", false), ("over_channels", false)];

impl ExperimentConfig {
    /// A fingerprint of everything that shapes the trained weights. Two configs with the same
    /// fingerprint can share checkpoints: only the epoch count, the output and evaluation
    /// cadence, generation, the name and the data location may differ.
    pub fn training_fingerprint(&self) -> String {
        crate::checksum::sha256_hex(self.weights_view().canonical_toml().as_bytes())
    }

    /// The config with the keys that do not shape the weights blanked out.
    fn weights_view(&self) -> ExperimentConfig {
        let mut c = self.clone();
        c.name = String::new();
        c.training.epochs = 0;
        c.training.stop_when_stuck = false;
        c.output = OutputConfig::default();
        c.evaluation = EvaluationConfig::default();
        c.generation = GenerationConfig::default();
        c.data.dir = PathBuf::new();
        // A decay over no epochs trains as none does, whatever its start.
        for adam in [&mut c.optimizer.generator, &mut c.optimizer.discriminator] {
            if adam.lr_decay.epochs == 0 {
                adam.lr_decay = Default::default();
            }
        }
        c
    }

    /// The keys that shape the weights and differ between two configs: why a run directory
    /// refuses to resume under another config.
    pub fn weight_keys_differing_from(&self, other: &ExperimentConfig) -> Vec<String> {
        differing_keys(&self.weights_view(), &other.weights_view())
    }

    /// The text the fingerprint hashes: the saved form ([`to_toml`](Self::to_toml)) without the
    /// [`ADDED_KEYS`] that hold their defaults.
    fn canonical_toml(&self) -> String {
        let mut doc: toml_edit::DocumentMut =
            self.to_toml().parse().expect("to_toml writes valid TOML");
        let ours = toml::Value::try_from(self).expect("configs serialise");
        let defaults = toml::Value::try_from(all_defaults()).expect("configs serialise");
        for key in ADDED_KEYS {
            let path: Vec<&str> = key.split('.').collect();
            let here = lookup(&ours, &path);
            if here.is_some() && here == lookup(&defaults, &path) {
                remove(doc.as_table_mut(), &path);
            }
        }
        for net in ["generator", "discriminator"] {
            let layers = doc["model"][net]["layers"].as_array_of_tables_mut();
            for layer in layers.into_iter().flat_map(|a| a.iter_mut()) {
                for (key, old) in ADDED_LAYER_KEYS {
                    if layer.get(key).and_then(|v| v.as_bool()) == Some(*old) {
                        layer.remove(key);
                    }
                }
            }
        }
        doc.to_string()
    }
}

/// A config with every key at its default (the two layer lists empty), and the optional
/// tables whose keys were added later present with theirs, so that an added key inside one
/// compares with its default.
fn all_defaults() -> ExperimentConfig {
    toml::from_str(
        "name = \"\"\nmodel.generator.layers = []\nmodel.discriminator.layers = []\n\
         [conditioning]",
    )
    .expect("every key but the name and the layer lists has a default")
}

/// The value at a dotted path of tables.
fn lookup<'a>(value: &'a toml::Value, path: &[&str]) -> Option<&'a toml::Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Removes the item at a dotted path of tables, with its line(s).
fn remove(table: &mut dyn toml_edit::TableLike, path: &[&str]) {
    match path {
        [] => {}
        [key] => {
            table.remove(key);
        }
        [key, rest @ ..] => {
            if let Some(inner) = table.get_mut(key).and_then(|i| i.as_table_like_mut()) {
                remove(inner, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fingerprints that gan-run 1f55346 (before saved configs held every default) wrote into
    /// checkpoints of the shipped configs, each trained with `--set data.train_size=100`
    /// (`training.epochs`, `evaluation.every` and `output.sample_every` were set too, which
    /// the fingerprint leaves out).
    #[test]
    fn fingerprints_of_the_shipped_configs_are_those_of_the_first_release() {
        for (name, expected) in [
            (
                "paper",
                "389f12a6d34adb37475499403d6a78d6d994c6a9d2425994d4efd807dd5f4a97",
            ),
            (
                "paper-best",
                "34aa1abf5c01fb8c3170fd898fc6a2b8d0fae715dc6c72151cfb77a887cdaa8b",
            ),
            (
                "paper-logits",
                "272d25290fc4c4afa80cad1557fd92a7d72011619e5d20f33a7fa8746d34da3d",
            ),
            (
                "smoke",
                "299426dec693e032c760d215724add00c251c8c19d5260c45807a38666924ec7",
            ),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.toml"));
            let text = std::fs::read_to_string(&path).unwrap();
            let set: Override = "data.train_size=100".parse().unwrap();
            let config = from_str(&text, &path, &[set]).unwrap();
            assert_eq!(config.training_fingerprint(), expected, "{name}");
        }
        // The fingerprint gan-run 36ae173 (before `conditioning.classifier_weight`) wrote into
        // the checkpoints of configs/cdcgan.toml as shipped then (a copy in tests/fixtures;
        // the file has since gained fully connected layers), read from the same folder.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("tests/fixtures/cdcgan-36ae173.toml"));
        let (text, path) = (text.unwrap(), root.join("configs/cdcgan.toml"));
        let config = from_str(&text, &path, &[]).unwrap();
        assert!(config.to_toml().contains("classifier_weight = 1.0"));
        assert_eq!(
            config.training_fingerprint(),
            "9eaadbbf3cfa05e2b8036a163cda641638e36465a4db1a00beceacb735408672"
        );
        let mut weighted = config.config.clone();
        weighted.conditioning.as_mut().unwrap().classifier_weight = 0.5;
        assert_ne!(
            weighted.training_fingerprint(),
            config.training_fingerprint()
        );
    }

    /// The saved form holds every key; the hashed form leaves out the added ones at their
    /// defaults, and keeps them once they are set otherwise.
    #[test]
    fn added_keys_are_saved_always_and_hashed_only_when_not_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut config = from_str(&text, &path, &[]).unwrap().config;
        let saved = config.to_toml();
        for key in [
            "stop_when_stuck = false",
            "tensorboard = true",
            "tensorboard_every_steps = 0",
            "[evaluation]",
            "[generation]",
            "mode = \"as_trained\"",
        ] {
            assert!(saved.contains(key), "{key} missing from\n{saved}");
        }
        let hashed = config.canonical_toml();
        for key in [
            "stop_when_stuck",
            "tensorboard",
            "[evaluation]",
            "[generation]",
        ] {
            assert!(!hashed.contains(key), "{key} in\n{hashed}");
        }
        assert!(saved.contains("spectral_norm = false"), "{saved}");
        assert!(!hashed.contains("spectral_norm"), "{hashed}");
        assert_eq!(
            hashed,
            saved
                .replace("spectral_norm = false\n", "")
                .replace("label_smoothing = 0.0\n", "")
                .replace("\n[instance_noise]\nstd = 0.0\nepochs = 10\n", "")
                .replace("stop_when_stuck = false\n", "")
                .replace("tensorboard = true\ntensorboard_every_steps = 0\n", "")
                .replace("\n[optimizer.generator.lr_decay]\nstart_epoch = 0\nepochs = 0\n", "")
                .replace(
                    "\n[optimizer.discriminator.lr_decay]\nstart_epoch = 0\nepochs = 0\n",
                    ""
                )
                .replace(
                    "\n[evaluation]\nevery = 0\nsamples = 10000\n\n[generation]\nmode = \"as_trained\"\nextra_grids = []\n",
                    ""
                ),
        );
        config.output.tensorboard_every_steps = 5;
        config.generation.mode = GenerationMode::TutorialBypass;
        let hashed = config.canonical_toml();
        assert!(hashed.contains("tensorboard_every_steps = 5"), "{hashed}");
        assert!(hashed.contains("mode = \"tutorial_bypass\""), "{hashed}");
        assert!(!hashed.contains("tensorboard = true"), "{hashed}");
        // A layer's added key counts once it is on.
        let LayerSpec::Linear(first) = &mut config.model.discriminator.layers[0] else {
            panic!("smoke's D starts with a linear layer")
        };
        first.spectral_norm = true;
        assert!(config.canonical_toml().contains("spectral_norm = true"));
        // A learning-rate decay counts once it decays; a start without epochs trains as none.
        let before = config.training_fingerprint();
        config.optimizer.generator.lr_decay.start_epoch = 5;
        assert_eq!(config.training_fingerprint(), before);
        config.optimizer.generator.lr_decay.epochs = 2;
        assert_ne!(config.training_fingerprint(), before);
    }
}
