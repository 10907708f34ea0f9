//! The one way gan-run puts bytes on disk and the one way it reads them back, so that a crash,
//! a planted link or a FIFO cannot make it lose, leak or hang on a file.
//!
//! Writes replace a file whole ([`write_atomic`], [`write_atomic_with`]): the bytes go to a
//! temporary created exclusively (`O_CREAT | O_EXCL`, which never follows a link) under an
//! unpredictable name beside the target, are fsynced, renamed over the target, and the folder
//! is fsynced, so that after a crash the target is the old file or the new one, and a link
//! planted at any name cannot redirect the write. Appends ([`open_append`]) never go through a
//! link (`O_NOFOLLOW`) and only to regular files. Reads ([`open`], [`read`], [`read_string`])
//! open without blocking (a FIFO cannot hang them), take regular files only (links are
//! followed and what they lead to is judged) and refuse sizes past the limit of their
//! [`Kind`] before reading.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What a read expects: a name for messages and the most bytes such a file may hold, past
/// which it is refused before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// What the file is, as messages say it ("a checkpoint").
    pub what: &'static str,
    /// The most bytes it may hold.
    pub max_bytes: u64,
}

const KB: u64 = 1 << 10;
const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

/// A config or sweep file: a few KB.
pub const CONFIG: Kind = Kind {
    what: "a config or sweep file",
    max_bytes: MB,
};
/// An MNIST-format IDX file on disk (data, `--samples`): MNIST's largest is 47 MB.
pub const IDX: Kind = Kind {
    what: "an IDX file",
    max_bytes: 256 * MB,
};
/// A checkpoint or an export: the paper config's is 35 MB; a network whose checkpoint passed
/// this would not fit the memory gan-run's estimate allows on most machines.
pub const CHECKPOINT: Kind = Kind {
    what: "a checkpoint",
    max_bytes: 16 * GB,
};
/// The evaluation classifier's weights: 1 MB.
pub const CLASSIFIER: Kind = Kind {
    what: "a classifier weights file",
    max_bytes: GB,
};
/// A table: `metrics.csv`, a loss log for `report --log`.
pub const TABLE: Kind = Kind {
    what: "a CSV table",
    max_bytes: 256 * MB,
};
/// A JSON record: `summary.json`, `eval.json`, `index.json`, `stopped.json`.
pub const RECORD: Kind = Kind {
    what: "a JSON record",
    max_bytes: 64 * MB,
};
/// A sample grid (PNG).
pub const IMAGE: Kind = Kind {
    what: "a PNG image",
    max_bytes: 64 * MB,
};
/// A few lines: the lock, a checksum list, the kernel's files under `/proc`.
pub const SMALL: Kind = Kind {
    what: "a small text file",
    max_bytes: MB,
};

/// A byte count as messages show it: `1024 KB`, `256 MB`, `1.05 MB`, `20 GB`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= GB && b % GB == 0 => format!("{} GB", b / GB),
        b if b >= GB => format!("{:.2} GB", b as f64 / GB as f64),
        b if b >= MB && b % MB == 0 => format!("{} MB", b / MB),
        b if b >= MB => format!("{:.2} MB", b as f64 / MB as f64),
        b if b >= KB => format!("{} KB", b / KB),
        b => format!("{b} bytes"),
    }
}

/// What a file that is not regular is, for messages.
fn describe(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

/// Why a file of `meta` may not be read as `kind`, if it may not.
fn refusal(meta: &std::fs::Metadata, kind: Kind) -> Option<io::Error> {
    if !meta.is_file() {
        return Some(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file: {} is read from a regular file only",
                describe(meta.file_type()),
                kind.what
            ),
        ));
    }
    (meta.len() > kind.max_bytes).then(|| too_large(meta.len(), kind))
}

fn too_large(size: u64, kind: Kind) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "holds {}, more than the {} {} may hold: is this the right file?",
            human(size),
            human(kind.max_bytes),
            kind.what
        ),
    )
}

/// Opens `path` to read as `kind`, with its size: a regular file (a link is followed, and what
/// it leads to judged) of at most `kind.max_bytes`. Opened without blocking, so that a FIFO
/// is refused at once rather than waiting for a writer; regular files ignore the flag.
pub fn open(path: &Path, kind: Kind) -> io::Result<(File, u64)> {
    // Judged before opening too: a socket cannot be opened at all, and this names it.
    if let Some(e) = std::fs::metadata(path).ok().and_then(|m| refusal(&m, kind)) {
        return Err(e);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // What was opened decides: the path may have been swapped since it was looked at.
    let meta = file.metadata()?;
    match refusal(&meta, kind) {
        Some(e) => Err(e),
        None => Ok((file, meta.len())),
    }
}

/// Reads `path` whole as `kind` (see [`open`]). The buffer is reserved up front and fallibly,
/// so that a file the memory cannot hold is an error rather than an abort, and at most
/// `kind.max_bytes` are read even from a file that grows or, as under `/proc`, reports no size.
pub fn read(path: &Path, kind: Kind) -> io::Result<Vec<u8>> {
    let (file, len) = open(path, kind)?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len as usize).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "holds {}, more than this machine can hold in memory",
                human(len)
            ),
        )
    })?;
    file.take(kind.max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > kind.max_bytes {
        return Err(too_large(bytes.len() as u64, kind));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_string(path: &Path, kind: Kind) -> io::Result<String> {
    String::from_utf8(read(path, kind)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is not UTF-8 text ({e}): {} is text", kind.what),
        )
    })
}

#[cfg(test)]
thread_local! {
    /// File and folder fsyncs made by this thread, for tests that count them.
    static FSYNCS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// The fsyncs of files and of folders this thread has made.
#[cfg(test)]
pub(crate) fn fsyncs() -> (usize, usize) {
    FSYNCS.with(|c| c.get())
}

fn sync_file(file: &File) -> io::Result<()> {
    #[cfg(test)]
    FSYNCS.with(|c| c.set((c.get().0 + 1, c.get().1)));
    file.sync_all()
}

/// Flushes `dir`'s entries (a rename, a new name) to disk, so that they survive a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    FSYNCS.with(|c| c.set((c.get().0, c.get().1 + 1)));
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?
        .sync_all()
}

/// The folder `path` sits in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A temporary beside `target`, created exclusively under an unpredictable name,
/// `<name>.tmp-<pid>-<random>` (the PID lets a later start delete those of a writer that is
/// gone), with the permissions `File::create` would give.
fn temporary(target: &Path) -> io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let mut prefix = OsString::from(target.file_name().unwrap_or_default());
    prefix.push(format!("{TEMPORARY_MARK}{}-", std::process::id()));
    tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(folder_of(target))
}

/// What names a temporary of [`write_atomic`]: `<name>.tmp-<pid>-<random>`.
pub const TEMPORARY_MARK: &str = ".tmp-";

/// The process that made a temporary named `name` (see [`TEMPORARY_MARK`]); also reads the
/// `<name>.tmp-<pid>` of earlier versions.
pub fn temporary_owner(name: &str) -> Option<u32> {
    let rest = name.rsplit_once(TEMPORARY_MARK)?.1;
    rest.split('-').next()?.parse().ok()
}

/// Writes a file so that readers see either the old content or the new, never a part, and a
/// crash leaves one of the two (see the module's documentation).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] for content that `write` streams into the (temporary) file it is handed.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    let attempt = || -> io::Result<()> {
        let mut tmp = temporary(path)?;
        let _in_flight = InFlight::new(tmp.path());
        write(tmp.as_file_mut())?;
        sync_file(tmp.as_file())?;
        // A failed rename hands the temporary back, which deletes it when dropped.
        tmp.persist(path).map_err(|e| e.error)?;
        sync_dir(folder_of(path))
    };
    attempt().map_err(|e| Error::io("cannot write", path, e))
}

/// The temporaries being written now, so that a process exiting at a signal mid-write
/// ([`remove_in_flight`]) leaves none behind: no destructor runs on `exit`.
static IN_FLIGHT: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Marks a temporary as being written while it lives.
struct InFlight(std::path::PathBuf);

impl InFlight {
    fn new(path: &Path) -> InFlight {
        if let Ok(mut v) = IN_FLIGHT.lock() {
            v.push(path.to_path_buf());
        }
        InFlight(path.to_path_buf())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut v) = IN_FLIGHT.lock() {
            v.retain(|p| *p != self.0);
        }
    }
}

/// Deletes the temporaries being written now (for a process about to exit at a signal); the
/// targets keep their old content or stay absent.
pub fn remove_in_flight() {
    if let Ok(v) = IN_FLIGHT.lock() {
        for p in v.iter() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A file written whole beside its target under an unpredictable name, to be put in place with
/// [`Aside::link`], which fails where a file is already there (the lock's way to be created
/// whole and only once). Deleted when dropped.
pub struct Aside(tempfile::NamedTempFile);

impl Aside {
    /// Writes `bytes` into a new temporary beside `target`, fsynced.
    pub fn new(target: &Path, bytes: &[u8]) -> io::Result<Aside> {
        let mut tmp = temporary(target)?;
        tmp.write_all(bytes)?;
        sync_file(tmp.as_file())?;
        Ok(Aside(tmp))
    }

    /// Links the file in at `target`: `AlreadyExists` if something (a link included) is there.
    pub fn link(&self, target: &Path) -> io::Result<()> {
        std::fs::hard_link(self.0.path(), target)?;
        sync_dir(folder_of(target))
    }
}

/// Opens `path` to append to, creating it if it is not there: never through a symbolic link
/// (`O_NOFOLLOW`), and only a regular file (without blocking, so that a FIFO is refused).
pub fn open_append(path: &Path) -> io::Result<File> {
    let not_regular = |t: std::fs::FileType| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file: remove it, and gan-run makes the file",
                describe(t)
            ),
        )
    };
    // Judged before opening too: a FIFO without a reader cannot be opened to write at all.
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
            return Err(not_regular(m.file_type()))
        }
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link: gan-run appends to its own files only, never through a \
                 link; remove the link",
            ),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    Ok(file)
}

/// Sets the modification time of the existing regular file `path` to now (a lease's renewal),
/// not through a link.
pub fn touch(path: &Path) -> io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    file.set_modified(std::time::SystemTime::now())
}

/// Creates a new file at `path` to write, failing if anything (a link included) is there.
pub fn create_new(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    sync_dir(folder_of(path))?;
    Ok(file)
}

/// Creates the folder `path` and those above it, and checks that `path` itself is a folder,
/// not a symbolic link to one: gan-run makes its folders itself, and a planted link would
/// send what it writes elsewhere.
pub fn create_dir_all(path: &Path) -> Result<()> {
    let refuse = |message: &str| Error::io("cannot create", path, io::Error::other(message));
    std::fs::create_dir_all(path).map_err(|e| Error::io("cannot create", path, e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("cannot create", path, e))?;
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "is a symbolic link: gan-run makes its own folders and does not write through a \
             link; remove it, or name the folder it points to",
        ));
    }
    Ok(())
}

/// The temporaries in `dir` whose process is gone (none where there is no `/proc` to ask).
pub fn stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    if !Path::new("/proc/self").exists() {
        return Vec::new();
    }
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            temporary_owner(&name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
                && e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink())
        })
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Links planted at the names earlier versions gave temporaries (`<target>.tmp-<pid>`,
    /// for this PID and the next few hundred) and beside the target lead nowhere: the files
    /// they point to are untouched, and the target gets the bytes.
    #[test]
    fn planted_links_at_temporary_names_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let target = dir.path().join("o.st");
        let pid = std::process::id();
        for p in pid.saturating_sub(5)..pid + 300 {
            let name = format!("o.st.tmp-{p}");
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        for name in ["o.st.tmp", "o.st~", ".o.st", "o.st.tmp-"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        write_atomic(&target, b"new").unwrap();
        write_atomic(&target, b"newer").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&target).unwrap(), b"newer");
        assert!(std::fs::symlink_metadata(&target).unwrap().is_file());
    }

    /// The file and then its folder are fsynced, once each per write.
    #[test]
    fn an_atomic_write_fsyncs_the_file_and_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let before = fsyncs();
        write_atomic(&dir.path().join("a.csv"), b"one").unwrap();
        let after = fsyncs();
        assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
        write_atomic_with(&dir.path().join("b.csv"), |f| f.write_all(b"two")).unwrap();
        assert_eq!(fsyncs(), (after.0 + 1, after.1 + 1));
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A write that fails part-way leaves the old file as it was and no temporary behind.
    #[test]
    fn a_failed_streamed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epoch-0001.safetensors");
        write_atomic(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("epoch-0001.safetensors"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporaries_name_their_process_and_something_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let a = temporary(&dir.path().join("x.csv")).unwrap();
        let b = temporary(&dir.path().join("x.csv")).unwrap();
        let name = |t: &tempfile::NamedTempFile| {
            t.path().file_name().unwrap().to_string_lossy().to_string()
        };
        assert_ne!(name(&a), name(&b));
        assert!(name(&a).starts_with("x.csv.tmp-"), "{}", name(&a));
        assert_eq!(temporary_owner(&name(&a)), Some(std::process::id()));
        assert_eq!(temporary_owner("config.toml.tmp-42"), Some(42));
        assert_eq!(temporary_owner("config.toml"), None);
    }

    /// An append never goes through a link (old versions appended to what it pointed to).
    #[test]
    fn an_append_to_a_symbolic_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let log = dir.path().join("train.log");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        let e = open_append(&log).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let fresh = dir.path().join("fresh.log");
        writeln!(open_append(&fresh).unwrap(), "one").unwrap();
        writeln!(open_append(&fresh).unwrap(), "two").unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn an_append_to_a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("overrides.txt");
        mkfifo(&fifo);
        let e = open_append(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[test]
    fn a_folder_that_is_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("samples")).unwrap();
        let e = create_dir_all(&dir.path().join("samples")).unwrap_err();
        assert!(format!("{e:#}").contains("samples"), "{e}");
        create_dir_all(&dir.path().join("a/b")).unwrap();
        assert!(dir.path().join("a/b").is_dir());
    }

    /// A FIFO is refused at once (old versions waited for a writer forever), as are devices
    /// and folders, each named in the message.
    #[test]
    fn reads_take_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("c.toml");
        mkfifo(&fifo);
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read(&path, CONFIG).map(|_| ())).unwrap());
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO returns at once")
            .unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(e.to_string().contains("a config or sweep file"), "{e}");
        let e = read(Path::new("/dev/zero"), CHECKPOINT).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        let e = read(dir.path(), RECORD).unwrap_err();
        assert!(e.to_string().contains("a folder"), "{e}");
        // A link is followed, and what it leads to judged.
        let zero = dir.path().join("epoch-0001.safetensors");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(read(&zero, CHECKPOINT)
            .unwrap_err()
            .to_string()
            .contains("device"));
        let real = dir.path().join("real.toml");
        std::fs::write(&real, "a = 1").unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_string(&link, CONFIG).unwrap(), "a = 1");
    }

    /// A file past its kind's limit is refused before it is read (old versions allocated
    /// for it, and a 20 GB file aborted the process), naming its size and the limit.
    #[test]
    fn reads_refuse_files_past_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.safetensors");
        File::create(&big).unwrap().set_len(20 * GB).unwrap();
        let e = read(&big, CHECKPOINT).unwrap_err();
        assert!(e.to_string().contains("20 GB"), "{e}");
        assert!(e.to_string().contains("16 GB"), "{e}");
        let at_limit = dir.path().join("c.toml");
        File::create(&at_limit)
            .unwrap()
            .set_len(CONFIG.max_bytes)
            .unwrap();
        assert_eq!(read(&at_limit, CONFIG).unwrap().len() as u64, MB);
        File::create(&at_limit).unwrap().set_len(MB + 1).unwrap();
        assert!(read(&at_limit, CONFIG).is_err());
        // Files under /proc report no size and are read whole.
        assert!(read_string(Path::new("/proc/self/status"), SMALL)
            .unwrap()
            .contains("Pid:"));
    }
}
