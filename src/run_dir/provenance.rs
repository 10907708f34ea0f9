//! Where and how a run was started: gan-run's version and git commit, the command line, the
//! host, its CPU and threads, and the time. Numbers that differ between two runs of the same
//! config usually differ because one of these did (another commit, a CPU with other vector
//! instructions, another thread count), so each start records them.
//!
//! One record per start, as one JSON line appended to `provenance.jsonl` (JSON Lines rather
//! than one JSON document: a resumed run keeps the record of every start, each line stands on
//! its own for `tail -1` and `grep`, and the file is rewritten whole through
//! [`write_atomic`](crate::files::write_atomic), so a kill never leaves half a line), and the record
//! of the start that wrote it in each checkpoint's metadata (`provenance`), so that a
//! checkpoint copied out of its run still says where it came from.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{RunDir, PROVENANCE_FILE};
use crate::error::{Error, Result};
use crate::files::write_atomic;

/// The commit gan-run was built from (`build.rs`), or "unknown" without git.
pub const GIT_COMMIT: &str = env!("GAN_RUN_GIT_COMMIT");

/// One start of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// gan-run's version (Cargo.toml).
    pub version: String,
    /// The git commit it was built from; "unknown" when it was built without git.
    pub git_commit: String,
    /// Whether the checkout it was built from had changes beyond that commit; `None`
    /// (unknown) without git.
    pub git_dirty: Option<bool>,
    /// The command line, program first.
    pub command_line: Vec<String>,
    /// The host's name.
    pub host: String,
    /// The CPU.
    pub cpu: CpuInfo,
    /// Threads of the pool that runs the matrix products (`RAYON_NUM_THREADS`, else the cores).
    pub threads: usize,
    /// When the start began, UTC, RFC 3339 (`2025-01-31T12:00:00Z`).
    pub started_at: String,
}

/// The CPU, from `/proc/cpuinfo` (its first processor); "unknown" fields elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// `model name`, e.g. `AMD EPYC 7763 64-Core Processor`.
    pub model_name: String,
    /// `cpu family`.
    pub family: String,
    /// `model`.
    pub model: String,
    /// Which of the vector instructions that change the matrix products' speed (and, through
    /// fused multiply-adds, their rounding) it has, of avx, avx2, fma, avx512f.
    pub features: Vec<String>,
}

/// The flags of `/proc/cpuinfo` a record keeps.
const FEATURES: [&str; 4] = ["avx", "avx2", "fma", "avx512f"];

impl CpuInfo {
    /// This machine's CPU.
    pub fn here() -> CpuInfo {
        crate::files::read_string(Path::new("/proc/cpuinfo"), crate::files::SMALL)
            .map(|text| CpuInfo::parse(&text))
            .unwrap_or_else(|_| CpuInfo::parse(""))
    }

    /// The first processor of `/proc/cpuinfo`'s text.
    fn parse(text: &str) -> CpuInfo {
        let first = text.split("\n\n").next().unwrap_or("");
        let field = |name: &str| {
            first
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_string())
        };
        let unknown = || "unknown".to_string();
        let flags = field("flags").unwrap_or_default();
        let flags: Vec<&str> = flags.split_whitespace().collect();
        CpuInfo {
            model_name: field("model name").unwrap_or_else(unknown),
            family: field("cpu family").unwrap_or_else(unknown),
            model: field("model").unwrap_or_else(unknown),
            features: FEATURES
                .iter()
                .filter(|f| flags.contains(f))
                .map(|f| f.to_string())
                .collect(),
        }
    }
}

impl Provenance {
    /// The record of a start of this process, now.
    pub fn of_this_start() -> Provenance {
        Provenance {
            version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: GIT_COMMIT.to_string(),
            git_dirty: env!("GAN_RUN_GIT_DIRTY").parse().ok(),
            command_line: std::env::args_os()
                .map(|a| a.to_string_lossy().to_string())
                .collect(),
            host: super::lock::host_name(),
            cpu: CpuInfo::here(),
            threads: rayon::current_num_threads(),
            started_at: rfc3339(std::time::SystemTime::now()),
        }
    }

    /// The record as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a provenance record serialises")
    }

    /// Every field as `dotted.key -> value`, the form two records are compared in.
    pub fn flatten(&self) -> BTreeMap<String, String> {
        let cpu = &self.cpu;
        [
            ("version", self.version.clone()),
            ("git_commit", self.git_commit.clone()),
            (
                "git_dirty",
                self.git_dirty.map_or("unknown".into(), |d| d.to_string()),
            ),
            ("command_line", self.command_line.join(" ")),
            ("host", self.host.clone()),
            ("cpu.model_name", cpu.model_name.clone()),
            ("cpu.family", cpu.family.clone()),
            ("cpu.model", cpu.model.clone()),
            ("cpu.features", cpu.features.join(" ")),
            ("threads", self.threads.to_string()),
            ("started_at", self.started_at.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl RunDir {
    /// Adds a start's record to `provenance.jsonl`: the file rewritten whole with one more line,
    /// so that readers see every line whole.
    pub fn record_provenance(&self, record: &Provenance) -> Result<()> {
        let path = self.path.join(PROVENANCE_FILE);
        let mut text = match crate::files::read_string(&path, crate::files::RECORD) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&record.to_json());
        text.push('\n');
        write_atomic(&path, text.as_bytes())
    }
}

/// The records of a run directory's starts, oldest first (empty for a run made before gan-run
/// kept them; a line that does not parse is passed over).
pub fn read(run_dir: &Path) -> Vec<Provenance> {
    crate::files::read_string(&run_dir.join(PROVENANCE_FILE), crate::files::RECORD)
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Where the latest starts of two runs differ: key, value in A, value in B (`-` where a run has
/// no record), plus `starts`, the number of records, when that differs.
pub fn differences(a: &[Provenance], b: &[Provenance]) -> Vec<(String, String, String)> {
    let flat = |records: &[Provenance]| {
        let mut f = records.last().map(Provenance::flatten).unwrap_or_default();
        f.insert("starts".into(), records.len().to_string());
        f
    };
    let (fa, fb) = (flat(a), flat(b));
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    keys.into_iter()
        .filter(|k| fa.get(*k) != fb.get(*k))
        .map(|k| {
            let value = |f: &BTreeMap<String, String>| f.get(k).cloned().unwrap_or("-".into());
            (k.clone(), value(&fa), value(&fb))
        })
        .collect()
}

/// A time as RFC 3339 in UTC, to the second: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        let at = |secs| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_164_799), "2024-02-28T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn cpu_info_keeps_the_first_processor_and_the_vector_flags() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
                    model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\n\
                    flags\t\t: fpu sse2 avx fma avx2 avx512f avx512cd\n\n\
                    processor\t: 1\nmodel name\t: Other\n";
        let cpu = CpuInfo::parse(text);
        assert_eq!(cpu.model_name, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz");
        assert_eq!((cpu.family.as_str(), cpu.model.as_str()), ("6", "85"));
        assert_eq!(cpu.features, ["avx", "avx2", "fma", "avx512f"]);
        let none = CpuInfo::parse("");
        assert_eq!(none.model_name, "unknown");
        assert!(none.features.is_empty());
    }

    /// Each start adds a line and keeps the others; two runs differ where their latest
    /// records do, and in how many starts they had.
    #[test]
    fn records_accumulate_and_differences_name_the_fields() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
        };
        let first = Provenance::of_this_start();
        assert_eq!(first.version, env!("CARGO_PKG_VERSION"));
        assert!(first.threads >= 1);
        let mut second = first.clone();
        second.host = "elsewhere".into();
        second.cpu.features = vec!["avx2".into()];
        run.record_provenance(&first).unwrap();
        run.record_provenance(&second).unwrap();
        let read = read(dir.path());
        assert_eq!(read, [first.clone(), second.clone()]);
        let text = std::fs::read_to_string(dir.path().join(PROVENANCE_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);

        let d = differences(&read, std::slice::from_ref(&first));
        let keys: Vec<&str> = d.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["cpu.features", "host", "starts"]);
        assert_eq!(
            d[1],
            ("host".into(), "elsewhere".into(), first.host.clone())
        );
        assert!(differences(&read, &read).is_empty());
        // A run from before provenance was kept: `-` for each of the other's fields.
        let d = differences(&[], &[first]);
        assert!(
            d.iter().any(|(k, a, _)| k == "git_commit" && a == "-"),
            "{d:?}"
        );
    }
}
