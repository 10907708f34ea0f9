//! The committed corpus of bad inputs, `tests/bad_inputs/cases.toml`: configs, `--set`s, data
//! folders, IDX files, checkpoints, sweep files and output paths. Each case must be refused
//! with the words it lists, and leave every file and folder of its scratch directory as it was
//! (nothing created, changed or deleted). Also damaged runs among good ones: each skipped with
//! a warning, the rest still listed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::util::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

/// One bad input. `kind` says what is set up and which commands run:
/// - `config`: the smoke config with `replace` (pairs), `append` and `pad` bytes of comment
///   applied, or `text`, as `exp.toml`; runs `train exp.toml` and `check exp.toml`.
/// - `set`: `train` and `check` of the smoke config with `args` added.
/// - `data`: a copy of MNIST in `data/`, changed by `edits`; `train` and `check` read it
///   (with `args` added).
/// - `checkpoint`: a one-epoch smoke run in `runs/smoke`, changed by `edits`; `sample` and
///   `export` read it.
/// - `command`: the smoke run and `edits`, then `args` as the whole command line.
/// - `sweep`: `text` as `sweep.toml`; runs `sweep sweep.toml`.
///
/// `{smoke}`, `{data}` and `{repo}` in texts and arguments are replaced by their paths.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    kind: String,
    #[serde(default)]
    replace: Vec<[String; 2]>,
    #[serde(default)]
    append: String,
    /// Bytes of comment appended to a config (to make it too large).
    #[serde(default)]
    pad: usize,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    edits: Vec<Edit>,
    expect: Vec<String>,
    /// Words the message must not hold (e.g. a hint for another command).
    #[serde(default)]
    absent: Vec<String>,
}

/// A change to a file of the scratch directory.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "op", rename_all = "snake_case")]
enum Edit {
    /// Delete it.
    Remove { file: String },
    /// Replace it with this text.
    Write { file: String, text: String },
    /// Cut it to `len` bytes, or extend it (sparsely, so a huge file costs no disk).
    Truncate { file: String, len: u64 },
    /// Flip the low bit of the byte at `at` (negative: from the end).
    Flip { file: String, at: i64 },
    /// An IDX file: this magic number and these dimensions, then `body` bytes of data,
    /// gzipped if asked; `resum` rewrites `data/SHA256SUMS` for it, so that only its form is
    /// wrong.
    Idx {
        file: String,
        magic: u32,
        dims: Vec<u32>,
        body: usize,
        #[serde(default)]
        gzip: bool,
        #[serde(default)]
        resum: bool,
    },
    /// A gzip stream of `size` zero bytes (a small file that inflates hugely).
    Bomb { file: String, size: u64 },
    /// A FIFO.
    Fifo { file: String },
    /// A symbolic link to `to`.
    Symlink { file: String, to: String },
    /// A folder.
    Mkdir { file: String },
}

fn expand(text: &str) -> String {
    text.replace("{smoke}", &config("smoke.toml").display().to_string())
        .replace("{data}", &data_dir())
        .replace("{repo}", &repo().display().to_string())
}

/// Every file and folder under `dir`, with its size and modification time, links not
/// followed: two equal snapshots mean nothing was created, changed or deleted.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (bool, u64, Option<std::time::SystemTime>)> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<PathBuf, (bool, u64, Option<std::time::SystemTime>)>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            out.insert(rel, (meta.is_dir(), meta.len(), meta.modified().ok()));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A one-epoch smoke run, trained once per test process and copied into each case that
/// needs one.
fn template_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let s = Scratch::new();
        let smoke = config("smoke.toml").display().to_string();
        s.ok(&smoke_args(
            &[&smoke, "--set", "training.epochs=1"],
            &data_dir(),
        ));
        let dir = s.dir.keep();
        dir.join("runs/smoke")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn apply(edit: &Edit, root: &Path) {
    match edit {
        Edit::Remove { file } => std::fs::remove_file(root.join(file)).unwrap(),
        Edit::Write { file, text } => std::fs::write(root.join(file), expand(text)).unwrap(),
        Edit::Truncate { file, len } => std::fs::OpenOptions::new()
            .write(true)
            .open(root.join(file))
            .unwrap()
            .set_len(*len)
            .unwrap(),
        Edit::Flip { file, at } => {
            let path = root.join(file);
            let mut bytes = std::fs::read(&path).unwrap();
            let i = if *at < 0 {
                bytes.len() - at.unsigned_abs() as usize
            } else {
                *at as usize
            };
            bytes[i] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
        Edit::Idx {
            file,
            magic,
            dims,
            body,
            gzip: zipped,
            resum,
        } => {
            let mut bytes = magic.to_be_bytes().to_vec();
            for d in dims {
                bytes.extend(d.to_be_bytes());
            }
            bytes.extend(std::iter::repeat_n(7u8, *body));
            if *resum {
                use sha2::Digest;
                let sum = format!("{:x}", sha2::Sha256::digest(&bytes));
                let sums = root.join("data/SHA256SUMS");
                let stem = Path::new(file).file_name().unwrap().to_string_lossy();
                let stem = stem.trim_end_matches(".gz");
                let text: String = std::fs::read_to_string(&sums)
                    .unwrap()
                    .lines()
                    .map(|l| match l.ends_with(stem) {
                        true => format!("{sum}  {stem}\n"),
                        false => format!("{l}\n"),
                    })
                    .collect();
                std::fs::write(&sums, text).unwrap();
            }
            let bytes = if *zipped { gzip(&bytes) } else { bytes };
            std::fs::write(root.join(file), bytes).unwrap();
        }
        Edit::Bomb { file, size } => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let chunk = vec![0u8; 1 << 20];
            let mut left = *size;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                gz.write_all(&chunk[..n]).unwrap();
                left -= n as u64;
            }
            std::fs::write(root.join(file), gz.finish().unwrap()).unwrap();
        }
        Edit::Fifo { file } => {
            run_tool(std::process::Command::new("mkfifo").arg(root.join(file)));
        }
        Edit::Symlink { file, to } => {
            std::os::unix::fs::symlink(expand(to), root.join(file)).unwrap()
        }
        Edit::Mkdir { file } => std::fs::create_dir_all(root.join(file)).unwrap(),
    }
}

/// Sets a case up in `s` and returns the command lines it runs.
fn set_up(case: &Case, s: &Scratch) -> Vec<Vec<String>> {
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let strings = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let with_args = |mut v: Vec<String>| {
        v.extend(case.args.iter().map(|a| expand(a)));
        v
    };
    match case.kind.as_str() {
        "config" => {
            let mut text = match &case.text {
                Some(t) => expand(t),
                None => std::fs::read_to_string(config("smoke.toml"))
                    .unwrap()
                    .replace("\"../data/mnist\"", &format!("{data:?}")),
            };
            for [from, to] in &case.replace {
                let from = expand(from);
                assert!(text.contains(&from), "{}: no `{from}`", case.name);
                text = text.replacen(&from, &expand(to), 1);
            }
            text.push_str(&expand(&case.append));
            text.push_str(&format!("#{}\n", "x".repeat(case.pad)));
            s.write("exp.toml", &text);
            vec![
                with_args(strings(&["train", "exp.toml", "--runs-dir", "runs"])),
                with_args(strings(&["check", "exp.toml"])),
            ]
        }
        "set" => vec![
            with_args(strings(&[
                "train",
                &smoke,
                "--data-dir",
                &data,
                "--runs-dir",
                "runs",
            ])),
            with_args(strings(&["check", &smoke, "--data-dir", &data])),
        ],
        "data" => {
            copy_dir(Path::new(&data), &s.path().join("data"));
            for e in &case.edits {
                apply(e, s.path());
            }
            vec![
                with_args(strings(&[
                    "train",
                    &smoke,
                    "--data-dir",
                    "data",
                    "--runs-dir",
                    "runs",
                ])),
                with_args(strings(&["check", &smoke, "--data-dir", "data"])),
            ]
        }
        "checkpoint" => {
            copy_dir(template_run(), &s.path().join("runs/smoke"));
            for e in &case.edits {
                apply(e, s.path());
            }
            vec![
                strings(&["sample", "runs/smoke", "--out", "x.png"]),
                strings(&["export", "runs/smoke", "--out", "g.safetensors"]),
            ]
        }
        "command" => {
            copy_dir(template_run(), &s.path().join("runs/smoke"));
            for e in &case.edits {
                apply(e, s.path());
            }
            vec![case.args.iter().map(|a| expand(a)).collect()]
        }
        "sweep" => {
            s.write("sweep.toml", &expand(case.text.as_deref().unwrap()));
            vec![with_args(strings(&[
                "sweep",
                "sweep.toml",
                "--runs-dir",
                "runs",
            ]))]
        }
        other => panic!("{}: unknown kind `{other}`", case.name),
    }
}

#[test]
fn every_bad_input_of_the_corpus_is_refused_and_writes_nothing() {
    let text = std::fs::read_to_string(repo().join("tests/bad_inputs/cases.toml")).unwrap();
    let corpus: Corpus = toml::from_str(&text).unwrap();
    assert!(corpus.case.len() >= 60, "{} cases", corpus.case.len());
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &corpus.case {
        assert!(names.insert(&case.name), "two cases named {}", case.name);
        let s = Scratch::new();
        let commands = set_up(case, &s);
        let before = snapshot(s.path());
        for args in commands {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // A bound, so that an input that hangs gan-run (a FIFO) fails the case, not the suite.
            let out = s.run_within(&args, 300);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mut wrong = Vec::new();
            if out.status.success() {
                wrong.push("succeeded".to_string());
            }
            if out.status.code().is_none() {
                wrong.push(format!("was killed ({:?})", out.status));
            }
            if stderr.contains("panicked") {
                wrong.push("panicked".into());
            }
            for word in &case.expect {
                if !stderr.contains(&expand(word)) {
                    wrong.push(format!("does not say `{word}`"));
                }
            }
            for word in &case.absent {
                if stderr.contains(&expand(word)) {
                    wrong.push(format!("says `{word}`"));
                }
            }
            let after = snapshot(s.path());
            if after != before {
                let changed: Vec<_> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(v))
                    .map(|(k, _)| k.display().to_string())
                    .chain(
                        before
                            .keys()
                            .filter(|k| !after.contains_key(*k))
                            .map(|k| format!("{} (gone)", k.display())),
                    )
                    .collect();
                wrong.push(format!("wrote {changed:?}"));
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} (`gan-run {}`): {}\n    stderr: {}",
                    case.name,
                    args[..args.len().min(4)].join(" "),
                    wrong.join("; "),
                    stderr.trim().replace('\n', "\n            ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases went wrong:\n{}",
        failures.len(),
        corpus.case.len(),
        failures.join("\n")
    );
}

/// Generated inputs thrown at the parsers: none panics, each answers with a value or an error.
mod generated {
    use proptest::prelude::*;
    use std::path::Path;

    /// The smoke config with one line replaced by generated text: near-misses of real configs
    /// reach deeper into validation than random bytes do.
    fn near_config() -> impl Strategy<Value = String> {
        let text = std::fs::read_to_string(crate::util::config("smoke.toml")).unwrap();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let n = lines.len();
        (0..n, "[a-z_]{0,8}( ?= ?)?[-+0-9.e\\[\\]{}\"a-z_, =]{0,24}").prop_map(move |(i, line)| {
            let mut l = lines.clone();
            l[i] = line;
            l.join("\n")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn configs_from_generated_text_never_panic(text in near_config()) {
            let _ = gan_run::config::from_str(&text, Path::new("gen.toml"), &[]);
        }

        #[test]
        fn arbitrary_text_never_panics_the_config_parser(text in ".{0,300}") {
            let _ = gan_run::config::from_str(&text, Path::new("gen.toml"), &[]);
        }

        #[test]
        fn generated_overrides_never_panic(set in "[a-z_.\\[\\]0-9]{1,30}=[-a-z0-9.e\\[\\]{}\" ]{0,20}") {
            let path = crate::util::config("smoke.toml");
            if let Ok(o) = set.parse::<gan_run::config::Override>() {
                let _ = gan_run::config::load(&path, &[o]);
            }
        }

        #[test]
        fn arbitrary_idx_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = gan_run::data::parse_idx(&bytes, Path::new("gen.idx"), 2051);
        }

        /// Headers claiming any dimensions, over short bodies: refused from the lengths, without
        /// allocating what the header claims.
        #[test]
        fn idx_headers_claiming_any_size_are_refused(
            dims in proptest::collection::vec(any::<u32>(), 3),
            body in 0usize..64,
        ) {
            let mut bytes = 2051u32.to_be_bytes().to_vec();
            for d in &dims {
                bytes.extend(d.to_be_bytes());
            }
            bytes.extend(std::iter::repeat_n(0u8, body));
            let claimed = dims.iter().map(|&d| d as u128).product::<u128>();
            let parsed = gan_run::data::parse_idx(&bytes, Path::new("gen.idx"), 2051);
            prop_assert_eq!(parsed.is_ok(), claimed == body as u128);
        }

        /// Whole files, gzipped or not, read as `eval --samples` reads them.
        #[test]
        fn arbitrary_sample_files_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            zipped in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.idx");
            let bytes = if zipped { super::gzip(&bytes) } else { bytes };
            std::fs::write(&path, bytes).unwrap();
            let _ = gan_run::data::read_idx_images(&path);
        }
    }
}

/// One damaged run (a config.toml that does not parse, a metrics.csv with a bad row) is
/// skipped with a warning naming it and its file; ls, compare and report list the rest.
#[test]
fn a_damaged_run_is_skipped_with_a_warning_and_the_rest_listed() {
    let s = Scratch::new();
    train_smoke(&s, "good", &[]);
    train_smoke(&s, "broken", &[]);
    train_smoke(&s, "torn", &[]);
    std::fs::write(s.path().join("runs/broken/config.toml"), "x = [\n").unwrap();
    std::fs::write(
        s.path().join("runs/torn/metrics.csv"),
        "epoch,d_loss\n1,oops\n",
    )
    .unwrap();
    for args in [
        &["ls", "runs"][..],
        &["compare", "runs"],
        &["report", "runs", "--out", "r.html"],
    ] {
        let out = s.ok(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for (run, file) in [("broken", "config.toml"), ("torn", "metrics.csv")] {
            assert!(
                stderr.contains(&format!("runs/{run}")) && stderr.contains(file),
                "{args:?}: {stderr}"
            );
        }
        if args[0] != "report" {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(stdout.lines().count(), 2, "{args:?}: {stdout}");
            assert!(
                stdout.lines().nth(1).unwrap().starts_with("good"),
                "{stdout}"
            );
        }
    }
    let page = std::fs::read_to_string(s.path().join("r.html")).unwrap();
    assert!(page.contains("good") && !page.contains("<th>broken</th>"));
    // Nothing readable at all is still an error, naming the file.
    let err = s.fails(&["compare", "runs/broken"]);
    assert!(err.contains("config.toml"), "{err}");
}
