//! Training: the state a run keeps ([`state`]), the fast training steps ([`step`]) and the
//! reference steps on dfdx's tape they are tested against ([`reference`]), and the
//! epoch loop ([`trainer`]). Nothing here touches files.

pub mod reference;
pub mod state;
pub mod step;
pub mod trainer;

pub use reference::{d_step, g_step};
pub use state::{
    add_instance_noise, fake_labels, generation_input, generation_label, generator_input_values,
    grid_noise, noise_values, penalty_batch, penalty_due, sample_noise, stuck_reason, DStep,
    EpochMetrics, GanState, GenerationLabels, PartialEpoch, PhaseTimes, EMA_NAME,
};
pub use trainer::{
    generate, generate_recording_inputs, kept_class, train_epoch, Draw, DrawnInputs, StepReport,
};
