//! Running points as child processes of `gan-run`, a few at a time: each with its own log and
//! its share of the cores, a failing child never stopping the others, and a signal passed on.

use std::path::{Path, PathBuf};

use super::PointState;
use crate::error::{Error, Result};

/// How one point of a sweep ended.
#[derive(Debug, Clone)]
pub struct PointOutcome {
    /// The point's name.
    pub name: String,
    /// Finished (this call), skipped (finished before), or failed.
    pub state: PointState,
    /// Where its output went.
    pub log: PathBuf,
}

/// A child `gan-run` process to run: its arguments and where its output goes.
#[derive(Debug, Clone)]
pub struct ChildJob {
    /// Position in the caller's list.
    pub index: usize,
    /// A name for messages.
    pub name: String,
    /// Arguments after the executable.
    pub args: Vec<String>,
    /// Its stdout and stderr, appended.
    pub log: PathBuf,
}

/// Runs `jobs` as child processes of `exe`, `parallel` at a time, each with `RAYON_NUM_THREADS`
/// set to its share of the cores (of `min(parallel, jobs)` children, so that a lone job gets
/// them all). A failing child never stops the others. `on_done` sees each
/// outcome as it happens; the outcomes come back in the jobs' order.
pub fn run_children(
    jobs: Vec<ChildJob>,
    parallel: usize,
    exe: &Path,
    mut on_done: impl FnMut(&ChildJob, PointState) -> Result<()>,
) -> Result<Vec<PointOutcome>> {
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};
    let parallel = parallel.clamp(1, jobs.len().max(1));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / parallel).max(1);
    let mut pending: std::collections::VecDeque<ChildJob> = jobs.into();
    let mut running: Vec<(ChildJob, Child)> = Vec::new();
    let mut outcomes: Vec<(usize, PointOutcome)> = Vec::new();
    while !pending.is_empty() || !running.is_empty() {
        while running.len() < parallel {
            let Some(job) = pending.pop_front() else {
                break;
            };
            if let Some(dir) = job.log.parent() {
                crate::files::create_dir_all(dir)?;
            }
            let file = crate::files::open_append(&job.log)
                .map_err(|e| Error::io("cannot open", &job.log, e))?;
            let err = file
                .try_clone()
                .map_err(|e| Error::io("cannot open", &job.log, e))?;
            let child = Command::new(exe)
                .args(&job.args)
                .env("RAYON_NUM_THREADS", threads.to_string())
                .stdin(Stdio::null())
                .stdout(file)
                .stderr(err)
                // Their own process group, so that a Ctrl-C at the terminal reaches only this
                // process, which passes one SIGTERM on to each child below.
                .process_group(0)
                .spawn()
                .map_err(|e| Error::io("cannot start", exe, e))?;
            tracing::info!(job = %job.name, log = %job.log.display(), "started");
            running.push((job, child));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        if crate::interrupt::requested() {
            for job in stop_children(&mut running) {
                on_done(&job, PointState::Interrupted)?;
            }
            return Err(Error::Interrupted { at: None });
        }
        let mut i = 0;
        while i < running.len() {
            let done = running[i]
                .1
                .try_wait()
                .map_err(|e| Error::io("cannot wait for", exe, e))?;
            match done {
                None => i += 1,
                Some(code) => {
                    let (job, _) = running.swap_remove(i);
                    let state = match code.success() {
                        true => PointState::Finished,
                        false => PointState::Failed,
                    };
                    tracing::info!(job = %job.name, %state, "ended");
                    on_done(&job, state)?;
                    outcomes.push((
                        job.index,
                        PointOutcome {
                            name: job.name,
                            state,
                            log: job.log,
                        },
                    ));
                }
            }
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    Ok(outcomes.into_iter().map(|(_, o)| o).collect())
}

/// Passes SIGTERM on to each running child and waits for them to stop (each finishes its
/// current step, releases its run directory and keeps its last checkpoint).
/// Returns the jobs it stopped.
fn stop_children(running: &mut Vec<(ChildJob, std::process::Child)>) -> Vec<ChildJob> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for (job, child) in running.iter() {
        tracing::warn!(job = %job.name, "interrupt: stopping");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    }
    running
        .drain(..)
        .map(|(job, mut child)| {
            let _ = child.wait();
            job
        })
        .collect()
}
