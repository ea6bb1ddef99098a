//! The training/evaluation objectives as one interface, so that the training loop and the
//! evaluator treat MD4, GenMD4 and the baselines alike.

use tch::Tensor;

/// What an objective returns for one batch.
#[derive(Debug)]
pub struct LossOutput {
    /// The scalar to minimise (differentiable), in nats per token, averaged over the batch.
    /// For GenMD4 it contains the RLOO surrogate and is *not* a bound.
    pub objective: Tensor,
    /// `[B]` the negative ELBO (or exact NLL) of each sequence in nats, detached. This is the
    /// reported quantity; divide by N for nats per token.
    pub nelbo: Tensor,
    /// Extra scalars worth logging (e.g. GenMD4's w statistics), as (name, value).
    pub metrics: Vec<(String, f64)>,
}

/// A loss over clean sequences `x0: [B, N]` (int64 in 0..V).
pub trait Objective {
    /// One stochastic estimate for the batch; `train` switches dropout on.
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput;
}
