//! Stopping on request: SIGINT (Ctrl-C) and SIGTERM (a scheduler, `kill`, `timeout`) set a
//! process-wide flag that training's loops poll between steps, so that a run stops with its
//! lock released and its last checkpoint whole, and a sweep stops its children first. Every
//! other command exits at the first signal, deleting the temporaries it was writing. A second
//! signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The exit status of a process stopped by a signal, as shells report it (128 + SIGINT).
pub const EXIT_STATUS: u8 = 130;

/// Installs the handler (once per process; later calls do nothing). `polls`: whether the
/// command polls [`requested`] (training, sweeps). One that does not (eval, sample, export,
/// reports, listings) exits at the first signal with [`EXIT_STATUS`]: its outputs are written
/// atomically, so stopping it anywhere leaves each one whole or absent, never partial, and it
/// must not run on to write them.
pub fn install(polls: bool) {
    let _ = ctrlc::set_handler(move || {
        if !polls {
            crate::files::remove_in_flight();
            eprintln!("interrupt: stopped; nothing more is written");
            std::process::exit(EXIT_STATUS as i32);
        }
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now");
            std::process::exit(EXIT_STATUS as i32);
        }
        eprintln!("interrupt: stopping after the current step (again to exit now)");
    });
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Requests a stop, as a signal would (for tests and for callers that stop themselves).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}
