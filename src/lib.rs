//! gan-run: a declarative, config-driven experiment runner for generative adversarial networks
//! on MNIST, built on dfdx.
//!
//! The modules follow the data's path:
//!
//! 1. [`config`]: the TOML experiment file, overrides, defaults and validation;
//! 2. [`data`]: MNIST from its IDX files, verified and split;
//! 3. [`model`]: networks built at run time from the config's layer lists;
//! 4. [`train`]: the D/G training loop, losses, optimizers, and [`train::run`];
//! 5. [`run_dir`]: everything a run writes — resolved config, metrics, checkpoints, samples;
//! 6. [`sweep`], [`compare`] and [`report`]: many runs from one grid, and runs read back,
//!    compared and reported.
//!
//! ```no_run
//! let config = gan_run::config::load("configs/smoke.toml".as_ref(), &[]).unwrap();
//! let options = gan_run::train::RunOptions {
//!     run_dir: "runs/smoke".into(),
//!     ..Default::default()
//! };
//! let summary = gan_run::train::run(&config, &options).unwrap();
//! println!("{} epochs", summary.epochs);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod classifier;
pub mod compare;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod logging;
pub mod model;
pub mod report;
pub mod run_dir;
pub mod sample;
pub mod sweep;
pub mod train;

pub use error::{Error, Result};
