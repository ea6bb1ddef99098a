//! The baseline objectives of the paper's comparisons (Shi et al. 2024, §5 and App. H; spec §6),
//! each an [`Objective`](crate::Objective) over the same absorbing process, conventions and
//! [`Denoiser`](crate::Denoiser) as MD4, so that one training loop and one evaluator serve all:
//!
//! * [`D3pm`]: D3PM absorbing (Austin et al. 2021), the T-step bound plus the hybrid loss;
//! * [`Sedd`]: SEDD absorb (Lou et al. 2024), score entropy with an unconstrained score;
//! * [`Campbell`]: the τLDR CTMC ELBO (Campbell et al. 2022) with its doubly-stochastic
//!   estimator (paper Prop. 3).
//!
//! Every reported `nelbo` is a bound on −log p(x) in nats per sequence; with the exact
//! denoiser E[x_0 | z_t] all three have the same expectation as MD4's (up to D3PM's
//! discretisation gap), which the oracle tests in `tests/baselines.rs` check.

pub mod campbell;
pub mod d3pm;
pub mod sedd;

pub use campbell::{Campbell, CampbellTerms, campbell_constant};
pub use d3pm::{D3pm, D3pmConfig, D3pmTerms};
pub use sedd::{Sedd, score_entropy};
