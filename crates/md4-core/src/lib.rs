//! The diffusion math of MD4 and GenMD4 (Shi et al. 2024, "Simplified and Generalized Masked
//! Diffusion for Discrete Data"), with no IO: masking schedules (§2.4), the forward process
//! (§2.2), the continuous-time and finite-T ELBOs (§3.3–3.4), GenMD4's learnable schedule and
//! its leave-one-out REINFORCE estimator (§4), the samplers (§5), the baseline objectives, and
//! the keyed random streams that let every row of a table be scored on the same draws
//! ([`noise`]).
//!
//! Conventions (see docs/architecture.md): **time runs from 0 = data to 1 = fully masked**;
//! **the mask id equals the vocabulary size V**; logits never have a mask column; every
//! quantity is in **nats** inside this crate, and [`units`] converts to bits at the edge.
//!
//! `testing` (the oracle denoiser the tests check identities against) is compiled only with the
//! `testing` feature, which only dev-dependencies turn on.

pub mod baselines;
pub mod categorical;
pub mod denoiser;
pub mod elbo;
pub mod forward;
pub mod genmd4;
pub mod names;
pub mod noise;
pub mod objective;
pub mod sampler;
pub mod schedule;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;
pub mod units;
pub mod vocab;

pub use categorical::Precision;
pub use denoiser::Denoiser;
pub use elbo::Md4;
pub use genmd4::{GenMd4, GenMd4Schedule};
pub use objective::{LossOutput, Objective};
pub use sampler::{Grid, SamplerConfig};
pub use schedule::{MaskingSchedule, Schedule};
pub use vocab::Vocab;
