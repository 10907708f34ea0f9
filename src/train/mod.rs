//! Training: what D's images go through before D ([`d_inputs`]), the state a run keeps
//! ([`state`]), the fast training steps ([`step`]) and the
//! reference steps on dfdx's tape they are tested against ([`reference`]), and the
//! epoch loop ([`trainer`]). Nothing here touches files.

pub mod d_inputs;
pub mod reference;
pub mod state;
pub mod step;
pub mod trainer;

pub use d_inputs::{add_instance_noise, penalty_batch, penalty_due};
pub use reference::{d_step, g_step};
pub use state::{
    fake_labels, generation_input, generation_label, generator_input_values, grid_noise,
    noise_values, sample_noise, stuck_reason, DStep, EpochMetrics, GanState, GenerationLabels,
    PartialEpoch, PhaseTimes, EMA_NAME,
};
pub use trainer::{
    generate, generate_recording_inputs, kept_class, train_epoch, Draw, DrawnInputs, StepReport,
};
