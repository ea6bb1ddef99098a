//! D3PM absorbing (Austin et al. 2021, "Structured Denoising Diffusion Models in Discrete
//! State-Spaces", §3–4 and eq. 5) with the x_0-parameterisation: the T-step variational bound of
//! spec §2.1/§3.2/§3.4 plus D3PM's auxiliary cross-entropy ("hybrid") loss.
//!
//! **Schedule.** D3PM's absorbing process uses β_i = 1/(T − i + 1), whose marginal is
//! α_i = Π_{j≤i}(1 − β_j) = 1 − i/T: the *unshifted* linear schedule on the grid t(i) = i/T
//! (`Schedule::exact(Linear)`, ε = 0, so the reconstruction constant N·(1−α_0)·log V is 0 and
//! no ε-shift enters). The per-step weight (α_{s}−α_{t})/(1−α_{t}) is then 1/i (spec §6). At
//! i = 1 it is 1: the first step's KL is the reconstruction term −log p_θ(x_0 | x_{t(1)}),
//! i.e. the masked cross-entropy at t(1) = 1/T, so the bound has no separate decoder term; the
//! prior term is 0 because α_T = 0 (every token is masked at t = 1).
//!
//! **Bound.** One step i ~ U{1..T} per sequence (stratified across the batch from the
//! antithetic u), L = T·(1/i)·Σ_{n masked}(−log μ_θ^(n)[x_0^(n)]); this is the estimator of
//! [`crate::elbo::discrete_nelbo`], recomputed here with the same random draws so that the
//! auxiliary term can reuse the same network pass (the tests check they agree exactly).
//!
//! **Hybrid loss.** D3PM optimises, per sampled step, L_{i−1} + λ·CE_i with
//! CE_i = −Σ_n log p̃_θ(x_0^(n) | x_{t(i)}) (its released code: `losses = vb_losses +
//! hybrid_coeff * ce_losses`, both per-step quantities). With MD4's carry-over
//! parameterisation the unmasked positions contribute 0, so CE_i is the masked cross-entropy
//! −S. Since our bound estimate is T·L_{i−1}, the same weighting in bound units is
//! `objective = (T·L_{i−1} + λ·T·CE_i)/N`; λ = 0.01 is D3PM's text8 value. The reported
//! `nelbo` is the bound alone.

use crate::elbo::{discrete_times, masked_log_likelihood, reconstruction_nats};
use crate::forward::{antithetic_times, mask_tokens};
use crate::objective::{LossOutput, Objective};
use crate::{Denoiser, MaskingSchedule, Schedule, Vocab};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The knobs of [`D3pm`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct D3pmConfig {
    /// Number of diffusion steps T (D3PM: 1000).
    pub steps: i64,
    /// D3PM's hybrid coefficient λ, relative to the *per-step* KL as in D3PM's code (so the
    /// cross-entropy enters the per-token objective as λ·T·CE/N). 0 optimises the bound alone.
    pub aux_weight: f64,
}

impl Default for D3pmConfig {
    /// D3PM's text8 setting: T = 1000, λ = 0.01.
    fn default() -> Self {
        Self { steps: 1000, aux_weight: 0.01 }
    }
}

/// The per-sequence pieces of one D3PM estimate.
#[derive(Debug)]
pub struct D3pmTerms {
    /// `[B]` float32: the T-step negative ELBO estimate T·L_{i−1} in nats (differentiable).
    pub bound: Tensor,
    /// `[B]` float32: the auxiliary cross-entropy CE_i = −S ≥ 0 in nats (differentiable).
    pub aux: Tensor,
}

/// The D3PM absorbing objective (module docs).
#[derive(Debug)]
pub struct D3pm<D> {
    pub denoiser: D,
    pub vocab: Vocab,
    pub config: D3pmConfig,
}

impl<D: Denoiser> D3pm<D> {
    /// Panics unless `steps ≥ 1` and `aux_weight ≥ 0` (finite).
    pub fn new(denoiser: D, vocab: Vocab, config: D3pmConfig) -> Self {
        assert!(config.steps >= 1, "d3pm needs at least one step, got {}", config.steps);
        assert!(
            config.aux_weight.is_finite() && config.aux_weight >= 0.0,
            "d3pm aux_weight must be finite and non-negative, got {}",
            config.aux_weight
        );
        Self { denoiser, vocab, config }
    }

    /// D3PM's schedule: the unshifted linear α_t = 1 − t (module docs).
    pub fn schedule(&self) -> Schedule {
        Schedule::exact(MaskingSchedule::Linear)
    }

    /// The bound and the auxiliary cross-entropy at the steps that `u` selects
    /// (t = (⌊uT⌋ + 1)/T, as [`crate::elbo::discrete_times`]). The random draws are those of
    /// [`crate::elbo::discrete_nelbo`], so with the same RNG state `bound` equals it.
    ///
    /// # Shapes
    /// `x0: [B, N]` int64 in 0..V, `u: [B]` uniform in [0, 1) → two `[B]` float32 tensors.
    pub fn terms(&self, x0: &Tensor, u: &Tensor, train: bool) -> D3pmTerms {
        let (steps, schedule) = (self.config.steps, self.schedule());
        let (t, s) = discrete_times(u, steps);
        let alpha_t = schedule.alpha_t(&t);
        let zt = mask_tokens(x0, &alpha_t.unsqueeze(1), self.vocab);
        let logits = self.denoiser.logits(&zt, &t.to_kind(Kind::Float), train);
        let ll = masked_log_likelihood(&logits, x0, &zt, self.vocab).to_kind(Kind::Double);
        // expm1(λ_t − λ_s)·α_s = (α_t − α_s)/(1 − α_t) = −1/i; at i = 1, λ_s = +∞ and it is −1.
        let step_weight = (schedule.log_snr_t(&t) - schedule.log_snr_t(&s)).expm1() * schedule.alpha_t(&s);
        let recon = reconstruction_nats(&schedule, x0.size()[1], self.vocab);
        let bound = (step_weight * &ll * steps as f64 + recon).to_kind(Kind::Float);
        D3pmTerms { bound, aux: (-ll).to_kind(Kind::Float) }
    }
}

impl<D: Denoiser> Objective for D3pm<D> {
    /// `objective = mean_b(T·L + λ·T·CE)/N` (nats/token), `nelbo = T·L` per sequence.
    ///
    /// # Shapes
    /// `x0: [B, N]` → objective `[]`, nelbo `[B]`.
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput {
        let (b, n) = (x0.size()[0], x0.size()[1]);
        let u = antithetic_times(b, x0.device());
        let D3pmTerms { bound, aux } = self.terms(x0, &u, train);
        let aux_scale = self.config.aux_weight * self.config.steps as f64;
        let objective = (&bound + &aux * aux_scale).mean(Kind::Float) / n as f64;
        let aux_ce = aux.mean(Kind::Double).double_value(&[]) / n as f64;
        LossOutput { objective, nelbo: bound.detach(), metrics: vec![("aux_ce".to_string(), aux_ce)] }
    }
}
