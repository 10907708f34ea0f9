//! The run directory's lock: one process at a time trains in a run directory, on one machine
//! or on several sharing a filesystem. It exists apart from the rest of `run_dir` because
//! judging whether a lock's owner lives (its process on this host, a lease from another) is
//! a job of its own.

use std::path::{Path, PathBuf};

use super::LOCK_FILE;
use crate::error::{Error, Result};
use crate::files;

/// Marks a run directory as in use by one process, so that two trainings never interleave
/// their files, on one machine or on several sharing a filesystem; removed when dropped.
///
/// The lock file is created whole, atomically (written aside, then hard-linked into place,
/// which fails if a lock is there), and names its owner: host, PID and the process's start
/// time. Whether the owner lives is judged only where it can be: on the same host by its
/// process (a PID reused by another process, or a zombie, does not count); from another host
/// by a lease, the lock file's modification time, which the owner renews every
/// [`LEASE`] / 4 while it runs. A lock whose owner is gone is taken over.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    /// The lock file's text as this process wrote it: its claim.
    claim: String,
    renewing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

/// How long a lock from another host counts as held without being renewed.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(120);

/// This process's name for its host: `GAN_RUN_HOST` if set (to simulate several hosts on
/// one), else the kernel's host name.
pub(super) fn host_name() -> String {
    std::env::var("GAN_RUN_HOST").unwrap_or_else(|_| {
        files::read_string(Path::new("/proc/sys/kernel/hostname"), files::SMALL)
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// The start time of a process (clock ticks since boot, field 22 of `/proc/PID/stat`) and
/// whether it is a zombie; `None` when there is no such process.
fn process_start(pid: u32) -> Option<(u64, bool)> {
    let stat = files::read_string(Path::new(&format!("/proc/{pid}/stat")), files::SMALL).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields.first() == Some(&"Z");
    Some((fields.get(19)?.parse().ok()?, zombie))
}

/// The lease for tests: `GAN_RUN_LOCK_LEASE_SECS` shortens it.
fn lease() -> std::time::Duration {
    std::env::var("GAN_RUN_LOCK_LEASE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(LEASE, std::time::Duration::from_secs)
}

/// Who holds a lock, as its file says.
struct LockOwner {
    host: String,
    pid: u32,
    start: Option<u64>,
}

impl LockOwner {
    fn this_process() -> LockOwner {
        let pid = std::process::id();
        LockOwner {
            host: host_name(),
            pid,
            start: process_start(pid).map(|(s, _)| s),
        }
    }

    fn to_text(&self) -> String {
        let start = self.start.map_or(String::new(), |s| s.to_string());
        format!("pid={}\nhost={}\nstart={start}\n", self.pid, self.host)
    }

    /// Reads a lock file's text: this format, or the bare PID older versions wrote.
    fn parse(text: &str) -> Option<LockOwner> {
        if let Ok(pid) = text.trim().parse() {
            return Some(LockOwner {
                host: host_name(),
                pid,
                start: None,
            });
        }
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
        };
        Some(LockOwner {
            pid: field("pid")?.parse().ok()?,
            host: field("host")?,
            start: field("start").and_then(|s| s.parse().ok()),
        })
    }

    /// Whether the owner still holds the lock whose file was last renewed at `renewed`.
    fn alive(&self, renewed: Option<std::time::SystemTime>) -> bool {
        if self.host != host_name() || !Path::new("/proc/self").exists() {
            let age = renewed.and_then(|t| t.elapsed().ok());
            return age.is_none_or(|age| age < lease());
        }
        match process_start(self.pid) {
            None => false,
            Some((_, true)) => false, // a zombie: it has exited
            Some((start, false)) => self.start.is_none_or(|s| s == start),
        }
    }

    fn describe(&self) -> String {
        format!("process {} on {}", self.pid, self.host)
    }
}

impl RunLock {
    /// Takes the lock of the run directory `dir` (which must exist).
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        // Whether a lock there is held (or is not a lock at all): an error that says so, or
        // `Ok(true)` when there is one left by a process that is gone.
        let held = || -> Result<bool> {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                return Ok(false);
            };
            if !meta.is_file() {
                return Err(Error::RunDir {
                    path: dir.to_path_buf(),
                    message: format!(
                        "its lock {} is not a file (a folder, a link or a device), so gan-run \
                         did not make it; remove it if no run uses this directory",
                        path.display()
                    ),
                });
            }
            let text = files::read_string(&path, files::SMALL).unwrap_or_default();
            match LockOwner::parse(&text) {
                Some(holder) if holder.alive(meta.modified().ok()) => Err(Error::RunDir {
                    path: dir.to_path_buf(),
                    message: format!(
                        "is in use by {} (lock file {}); wait for it, or delete the lock file \
                         if that process is gone",
                        holder.describe(),
                        path.display()
                    ),
                }),
                _ => Ok(true),
            }
        };
        // Refused before anything is written.
        held()?;
        let owner = LockOwner::this_process();
        // Written aside (an exclusive temporary), then linked into place: the lock is never
        // seen without its owner.
        let aside = files::Aside::new(&path, owner.to_text().as_bytes())
            .map_err(|e| Error::io("cannot write", &path, e))?;
        let taken = (|| {
            for _ in 0..2 {
                match aside.link(&path) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if held()? {
                            tracing::warn!(lock = %path.display(), "taking over the lock of a process that is gone");
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                    Err(e) => return Err(Error::io("cannot create", &path, e)),
                }
            }
            Err(Error::RunDir {
                path: dir.to_path_buf(),
                message: "another process keeps taking its lock".into(),
            })
        })();
        drop(aside);
        taken?;
        // The lease: renewed while this process holds the lock.
        let renewing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let claim = owner.to_text();
        let renewer = {
            let (renewing, path, claim) = (renewing.clone(), path.clone(), claim.clone());
            std::thread::spawn(move || {
                let every = lease() / 4;
                let mut last = std::time::Instant::now();
                while renewing.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if last.elapsed() >= every {
                        last = std::time::Instant::now();
                        // Never renews a lock another process has taken over meanwhile.
                        let _ = renew_if_ours(&path, &claim);
                    }
                }
            })
        };
        Ok(RunLock {
            path,
            claim,
            renewing,
            renewer: Some(renewer),
        })
    }

    /// Whether this process still holds the lock, checked before every write that matters (the
    /// epoch's outputs, its checkpoint, the summary): a process stopped (`kill -STOP`, a
    /// suspended laptop) past the lease may have lost the run to another host, and `--force`
    /// hands the directory to a new process; the old one must then stop without writing.
    /// Renews the lease when the lock is still its own.
    pub fn check_held(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() || renew_if_ours(&self.path, &self.claim) {
            return Ok(());
        }
        let now = files::read_string(&self.path, files::SMALL)
            .ok()
            .and_then(|t| LockOwner::parse(&t))
            .map_or("no process (the lock is gone)".to_string(), |o| {
                o.describe()
            });
        Err(Error::RunDir {
            path: self.path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            message: format!(
                "this process lost its lock: it is now held by {now} (this one was stopped past \
                 its {}-second lease, or the run was restarted with --force); it stops here \
                 without writing, and the run goes on in the process that holds it",
                lease().as_secs()
            ),
        })
    }

    /// Lets go of a lock without removing its file (which has moved with its directory).
    pub(super) fn forget(mut self) {
        self.stop_renewing();
        self.path = PathBuf::new();
    }

    fn stop_renewing(&mut self) {
        self.renewing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }

    /// The process that holds `dir`'s lock, if that process is alive; `Err` with what the lock
    /// records when it is left by a process that is gone.
    pub fn holder(dir: &Path) -> Option<std::result::Result<u32, String>> {
        let path = dir.join(LOCK_FILE);
        let text = files::read_string(&path, files::SMALL).ok()?;
        let renewed = std::fs::metadata(&path)
            .ok()
            .and_then(|m| m.modified().ok());
        match LockOwner::parse(&text) {
            Some(owner) if owner.alive(renewed) => Some(Ok(owner.pid)),
            Some(owner) => Some(Err(owner.describe())),
            None => Some(Err(text.trim().to_string())),
        }
    }
}

/// Renews the lease of the lock at `path` (its modification time) if it still holds `claim`;
/// whether it does.
fn renew_if_ours(path: &Path, claim: &str) -> bool {
    if files::read_string(path, files::SMALL).ok().as_deref() != Some(claim) {
        return false;
    }
    let _ = files::touch(path);
    true
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop_renewing();
        // Only its own: a lock another process took over stays with that process.
        if !self.path.as_os_str().is_empty()
            && files::read_string(&self.path, files::SMALL).ok().as_deref()
                == Some(self.claim.as_str())
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
