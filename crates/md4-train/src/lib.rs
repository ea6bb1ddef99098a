//! The training loop of md4-rs (Shi et al. 2024, §8 training recipes; spec §8, §12 pitfalls
//! 13, 14, 16, §14): AdamW written out on tensors, the warm-up + cosine learning rate, the
//! parameter EMA, atomic safetensors checkpoints with exact resume, NaN guards, metrics and
//! run records, and the YAML run configuration that the `md4` command line reads.
//!
//! * [`config`]: `RunConfig` (model / objective / data / train) with `--set` overrides;
//! * [`objective`]: the one factory from config to network + loss;
//! * [`data`]: stateless batches from md4-data or the user's own files;
//! * [`adamw`], [`lr`], [`ema`], [`checkpoint`]: the optimisation state and its storage;
//! * [`trainer`]: one update and the loop; [`run`]: a run directory (train, resume, load).

pub mod adamw;
pub mod alloc;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod ema;
pub mod guard;
pub mod lr;
pub mod memory;
pub mod metrics;
pub mod objective;
pub mod run;
pub mod trainer;

pub use adamw::{AdamW, AdamWConfig};
pub use alloc::tune_allocator;
pub use checkpoint::{Checkpoint, load_latest_valid, read_checkpoint, write_checkpoint};
pub use config::{DataConfig, ObjectiveConfig, RunConfig, TrainConfig};
pub use data::{Batches, Data, DataOptions, EvalSet};
pub use ema::Ema;
pub use lr::LrSchedule;
pub use metrics::{MetricsLog, RunRecord};
pub use objective::Trained;
pub use run::{LoadedRun, TrainOptions, load_ema_weights, load_run, load_run_with, read_run_config, train};
pub use trainer::{StepStats, TrainSummary, Trainer, Validation};
