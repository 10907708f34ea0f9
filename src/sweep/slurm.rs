//! A sweep as a Slurm job array (`gan-run sweep --emit slurm`): the resources each task asks
//! for, the sbatch script, what must exist before it is submitted, and the submission. It
//! exists so that the command line only parses flags and prints, and so that the script's
//! quoting rules sit in one place.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Sweep;
use crate::config;
use crate::error::{Error, Result};

/// Resources of each array task of an emitted Slurm script (`[slurm]` in a sweep file; the
/// command line's flags override them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmResources {
    /// `--time`, e.g. `"02:00:00"`.
    #[serde(default)]
    pub time: Option<String>,
    /// `--mem`, e.g. `"4G"`.
    #[serde(default)]
    pub mem: Option<String>,
    /// `--cpus-per-task` (default 2).
    #[serde(default)]
    pub cpus_per_task: Option<usize>,
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
}

impl SlurmResources {
    /// These resources (a sweep file's `[slurm]`) with each one `flags` sets (the command
    /// line's) put in its place.
    pub fn overridden_by(&self, flags: SlurmResources) -> SlurmResources {
        SlurmResources {
            time: flags.time.or_else(|| self.time.clone()),
            mem: flags.mem.or_else(|| self.mem.clone()),
            cpus_per_task: flags.cpus_per_task.or(self.cpus_per_task),
            partition: flags.partition.or_else(|| self.partition.clone()),
        }
    }
}

impl Sweep {
    /// Emits the sweep as a Slurm job array for `exe`: the script for `resources` (checked
    /// before anything is written), then the logs folder it needs and the sweep's HParams
    /// experiment. Warns when this binary needs instructions that cluster nodes may lack.
    pub fn emit_slurm(
        &self,
        exe: &Path,
        runs_root: &Path,
        extra: &[String],
        resources: &SlurmResources,
    ) -> Result<String> {
        if let Some(features) = wider_than_portable() {
            tracing::warn!(
                "this gan-run was built for this machine's CPU ({features}): on cluster nodes \
                 without those instructions every task dies with an illegal instruction; build \
                 a portable binary for the cluster with \
                 `RUSTFLAGS=\"-C target-cpu=x86-64-v2\" cargo build --release` (README: Slurm)"
            );
        }
        let script = self.slurm_script(exe, runs_root, extra, resources)?;
        self.prepare_slurm(runs_root)?;
        self.write_hparams_experiment(runs_root)?;
        Ok(script)
    }

    /// An sbatch script that runs every point as one task of a job array. Paths are made
    /// absolute (with `--chdir` the folder it was made in), so that it works as submitted
    /// from any folder of a shared filesystem; every value is quoted for the shell; each
    /// attempt's log is named by job and task (`%A_%a`), so a resubmission loses none. The
    /// logs folder must exist before submission (Slurm opens it before the script runs):
    /// [`Sweep::prepare_slurm`] makes it.
    pub fn slurm_script(
        &self,
        exe: &Path,
        runs_root: &Path,
        extra: &[String],
        resources: &SlurmResources,
    ) -> Result<String> {
        let here =
            std::env::current_dir().map_err(|e| Error::io("cannot read", Path::new("."), e))?;
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| here.join(p));
        let root = absolute(runs_root);
        let logs = absolute(&self.dir(runs_root).join(crate::run_dir::LOGS_DIR));
        // #SBATCH lines are not read by a shell: refuse what they cannot hold.
        for (what, p) in [("the runs folder", &logs), ("the current folder", &here)] {
            let text = p.display().to_string();
            if text.contains(['"', '\n', '%']) {
                return Err(Error::Config {
                    location: config::location_of(&self.file, ""),
                    message: format!(
                        "{what} ({text}) holds a character an #SBATCH line cannot carry (\" % or \
                         a newline); use another --runs-dir or folder"
                    ),
                });
            }
        }
        let q = |s: &str| shell_quote(s);
        let extra: String = extra.iter().map(|o| format!(" --set {}", q(o))).collect();
        let mut directives = vec![
            format!("--job-name=gan-run-{}", self.name),
            format!("--array=0-{}", self.points.len() - 1),
            format!("--cpus-per-task={}", resources.cpus_per_task.unwrap_or(2)),
            format!("--chdir=\"{}\"", here.display()),
            format!(
                "--output=\"{}/{}\"",
                logs.display(),
                crate::run_dir::SLURM_TASK_LOG
            ),
        ];
        if let Some(t) = &resources.time {
            directives.push(format!("--time={t}"));
        }
        if let Some(m) = &resources.mem {
            directives.push(format!("--mem={m}"));
        }
        if let Some(p) = &resources.partition {
            directives.push(format!("--partition={p}"));
        }
        // The values themselves, before they are formatted: an #SBATCH line ends at a space
        // and a newline would start a line of the script.
        let values = [&resources.time, &resources.mem, &resources.partition];
        for value in values.into_iter().flatten() {
            if value.is_empty()
                || value.contains(|c: char| c.is_whitespace() || "\"'\\".contains(c))
            {
                return Err(Error::Config {
                    location: config::location_of(&self.file, "slurm"),
                    message: format!(
                        "`{value}` is empty or holds a space, a quote or a backslash, which an \
                         #SBATCH line cannot carry"
                    ),
                });
            }
        }
        let directives: String = directives
            .iter()
            .map(|d| format!("#SBATCH {d}\n"))
            .collect();
        Ok(format!(
            "#!/bin/bash\n\
             # Generated by `gan-run sweep --emit slurm`: one array task per point. Paths are\n\
             # absolute: submit it from any folder of the shared filesystem.\n\
             {seeds}\
             {directives}\
             set -euo pipefail\n\
             export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-2}}\"\n\
             export NO_COLOR=1\n\
             exec {exe} run-point {file} \"$SLURM_ARRAY_TASK_ID\" --runs-dir {root} --name \
             {name}{extra}\n",
            seeds = self
                .seeds_line()
                .map_or(String::new(), |line| format!("# {line}\n")),
            exe = q(&exe.display().to_string()),
            file = q(&absolute(&self.file).display().to_string()),
            root = q(&root.display().to_string()),
            name = q(&self.name),
        ))
    }

    /// Makes what an emitted Slurm script needs before it is submitted: the logs folder.
    pub fn prepare_slurm(&self, runs_root: &Path) -> Result<()> {
        let logs = self.dir(runs_root).join(crate::run_dir::LOGS_DIR);
        crate::files::create_dir_all(&logs)
    }
}

/// Submits `script` with `sbatch --parsable` (the script on its standard input) and returns
/// the job id it prints.
pub fn submit(script: &str) -> Result<String> {
    use std::io::Write;
    let failed = |e: std::io::Error| Error::Scheduler(e.to_string());
    let mut child = std::process::Command::new("sbatch")
        .arg("--parsable")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Scheduler(format!(
                "cannot run sbatch ({e}): is Slurm's client installed?"
            ))
        })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(failed)?;
    let out = child.wait_with_output().map_err(failed)?;
    if !out.status.success() {
        return Err(Error::Scheduler(format!(
            "sbatch refused the script ({})",
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The instruction sets this binary was compiled to use beyond x86-64-v2, if any: a binary
/// for other machines must not need them.
fn wider_than_portable() -> Option<String> {
    let features: Vec<&str> = [
        (cfg!(target_feature = "avx512f"), "avx512f"),
        (cfg!(target_feature = "avx2"), "avx2"),
        (cfg!(target_feature = "fma"), "fma"),
        (cfg!(target_feature = "avx"), "avx"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    (!features.is_empty()).then(|| features.join(", "))
}

/// `s` as one word for a POSIX shell: in single quotes, each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_replace_only_the_resources_they_set() {
        let file = SlurmResources {
            time: Some("02:00:00".into()),
            mem: Some("4G".into()),
            cpus_per_task: Some(4),
            partition: None,
        };
        let flags = SlurmResources {
            mem: Some("8G".into()),
            partition: Some("gpu".into()),
            ..SlurmResources::default()
        };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.time.as_deref(), Some("02:00:00"));
        assert_eq!(merged.mem.as_deref(), Some("8G"));
        assert_eq!(merged.cpus_per_task, Some(4));
        assert_eq!(merged.partition.as_deref(), Some("gpu"));
    }
}
