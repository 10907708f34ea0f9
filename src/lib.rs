//! gan-run: a declarative, config-driven experiment runner for generative adversarial networks
//! on MNIST, built on dfdx.
//!
//! The modules follow the data's path, and each depends only on those above it
//! (ARCHITECTURE.md has the map and the rules):
//!
//! 1. [`config`]: the TOML experiment file, overrides, defaults, validation, layer widths;
//! 2. [`data`]: MNIST from its IDX files, verified and split;
//! 3. [`model`]: networks built at run time from the config's layer lists, their fast twins
//!    and kernels, and Adam;
//! 4. [`train`]: the state a run keeps, the D/G steps and the epoch loop; writes nothing;
//! 5. [`run_dir`]: everything a run writes: resolved config, metrics, checkpoints, samples;
//! 6. [`classifier`] and [`eval`]: scoring samples;
//! 7. [`experiment`]: one training run, config to run directory; [`sample`], [`sweep`],
//!    [`compare`], [`report`] and [`bench`]: the other commands' work, their charts drawn by
//!    [`plot`].
//!
//! ```no_run
//! let config = gan_run::config::load("configs/smoke.toml".as_ref(), &[]).unwrap();
//! let options = gan_run::experiment::RunOptions {
//!     run_dir: "runs/smoke".into(),
//!     ..Default::default()
//! };
//! let summary = gan_run::experiment::run(&config, &options).unwrap();
//! println!("{} epochs", summary.epochs);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod checksum;
pub mod classifier;
pub mod cli;
pub mod compare;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod files;
pub mod interrupt;
pub mod logging;
pub mod loss;
pub mod model;
pub mod plot;
pub mod regularizer;
pub mod report;
pub mod run_dir;
pub mod sample;
pub mod sweep;
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};
