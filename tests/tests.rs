//! gan-run's integration tests, one binary (as ripgrep's): each module is a feature, tested
//! through the built `gan-run` binary or the library, with its fixtures inline.

mod architecture;
mod bad_inputs;
mod batch_norm;
mod config_checks;
mod convolutions;
mod crash_points;
mod daily_use;
mod exports;
mod quality;
mod reading_runs;
mod refusals;
mod resuming;
mod scoring;
mod slurm;
mod sweeps;
mod tensorboard;
mod training;
mod util;
