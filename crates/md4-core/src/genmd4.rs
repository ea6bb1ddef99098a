//! GenMD4: a learnable per-token polynomial schedule α_{t,i} = 1 − (1−ε)·t^{w_i} trained with
//! the leave-one-out REINFORCE estimator (spec §4, paper §4 and App. I).
//!
//! The optimised surrogate (`objective`) and the reported negative ELBO (`nelbo`, the code's
//! `loss_nelbo`) are kept apart: the surrogate's value contains the RLOO term, which is not
//! part of any bound (pitfall 16).

use crate::forward::{antithetic_times, is_masked};
use crate::objective::{LossOutput, Objective};
use crate::{Denoiser, Vocab};
use tch::{Kind, Tensor, nn};

/// ε of GenMD4's schedule (α_0 = 1, α_1 = ε).
pub const GENMD4_EPS: f64 = 1e-4;
/// The first time t_1: t is drawn in [t_1, 1] and the reconstruction term is taken at t_1.
pub const GENMD4_T1: f64 = 1e-3;

/// The learnable exponents w = softplus(w_raw) ∈ R^V (the mask has no parameter).
#[derive(Debug)]
pub struct GenMd4Schedule {
    /// `[V]` raw parameters, stored in the VarStore as `w_raw`.
    pub w_raw: Tensor,
    pub vocab: Vocab,
}

impl GenMd4Schedule {
    /// `w_raw` initialised to softplus⁻¹(power_init) (power_init = 1: the linear schedule).
    pub fn new(vs: &nn::Path, vocab: Vocab, power_init: f64) -> Self {
        let raw = power_init.exp_m1().ln();
        let w_raw = vs.var("w_raw", &[vocab.size()], nn::Init::Const(raw));
        Self { w_raw, vocab }
    }
    /// w = softplus(w_raw), `[V]`.
    pub fn w(&self) -> Tensor {
        self.w_raw.softplus()
    }
}

/// α_{t, x_n} for every position: 1 − (1−ε)·t^{w_{x_n}}.
///
/// # Shapes
/// `x0: [B, N]`, `t: [B]`, `w: [V]` → `[B, N]`.
pub fn token_alpha(x0: &Tensor, t: &Tensor, w: &Tensor) -> Tensor {
    let wx = w.index_select(0, &x0.flatten(0, -1)).view(x0.size().as_slice());
    1.0 - (wx * t.log().unsqueeze(1)).exp() * (1.0 - GENMD4_EPS)
}

/// log q(z_t | x_0) per sequence: Σ_n log(1−ε) + w_{x_n} log t where masked, else
/// log(1 − (1−ε) t^{w_{x_n}}).
///
/// # Shapes
/// `x0, zt: [B, N]`, `t: [B]`, `w: [V]` → `[B]`.
pub fn log_q(x0: &Tensor, zt: &Tensor, t: &Tensor, w: &Tensor, vocab: Vocab) -> Tensor {
    let wx = w.index_select(0, &x0.flatten(0, -1)).view(x0.size().as_slice());
    let log_t = t.log().unsqueeze(1);
    let log_masked = &wx * &log_t + (1.0 - GENMD4_EPS).ln();
    let log_kept = (-(log_masked.exp())).log1p();
    let masked = is_masked(zt, vocab);
    log_masked.where_self(&masked, &log_kept).sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
}

/// The per-sample diffusion loss L = −(1/t)·Σ_{n masked} [w_{x_n}(1 + log μ_n[x_n]) − μ_n·w] ≥ 0
/// (eq. 12 with α'/(1−α) = −w/t), differentiable in θ (through the logits) and in w.
///
/// # Shapes
/// `logits: [B, N, V]`, `x0, zt: [B, N]`, `t: [B]`, `w: [V]` → `[B]` nats.
pub fn diffusion_loss(
    logits: &Tensor,
    x0: &Tensor,
    zt: &Tensor,
    t: &Tensor,
    w: &Tensor,
    vocab: Vocab,
) -> Tensor {
    // float32 at least (bf16 logits are upcast); float64 stays float64 for the tests.
    let kind = if logits.kind() == Kind::Double { Kind::Double } else { Kind::Float };
    let w = w.to_kind(kind);
    let s = crate::elbo::sum_over_masked(logits, x0, zt, vocab, |rows, targets| {
        let logp = rows.to_kind(kind).log_softmax(-1, kind);
        let logp_x = logp.gather(-1, &targets.unsqueeze(-1), false).squeeze_dim(-1);
        let wx = w.index_select(0, targets);
        wx * (logp_x + 1.0) - logp.exp().matmul(&w)
    });
    -s / t.to_kind(kind)
}

/// The exact, w-differentiable reconstruction term at t_1 per sequence:
/// −(1−ε) Σ_n t_1^{w_{x_n}} (w_{x_n} log t_1 − logsumexp_j(w_j log t_1)).
///
/// # Shapes
/// `x0: [B, N]`, `w: [V]` → `[B]` nats.
pub fn reconstruction(x0: &Tensor, w: &Tensor) -> Tensor {
    let log_t1 = GENMD4_T1.ln();
    let wx = w.index_select(0, &x0.flatten(0, -1)).view(x0.size().as_slice());
    let lse = (w * log_t1).logsumexp([0i64].as_slice(), false);
    let per_pos = (&wx * log_t1).exp() * (wx * log_t1 - lse) * -(1.0 - GENMD4_EPS);
    per_pos.sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
}

/// Sample a mask per token with the per-token schedule.
fn mask_per_token(x0: &Tensor, alpha: &Tensor, vocab: Vocab) -> Tensor {
    crate::forward::mask_tokens(x0, alpha, vocab)
}

/// The three per-sample pieces of the GenMD4 estimator at given times.
#[derive(Debug)]
pub struct GenMd4Terms {
    /// `[B]` ½(L₁ + L₂): the diffusion part of the NELBO.
    pub diffusion: Tensor,
    /// `[B]` ½·stopgrad(L₁ − L₂)·(log q(z¹) − log q(z²)): the RLOO surrogate (value not a bound).
    pub rloo: Tensor,
    /// `[B]` the reconstruction term at t_1.
    pub recon: Tensor,
}

/// Two masks at the same t (one batched network pass over both) and the estimator's terms.
///
/// # Shapes
/// `x0: [B, N]`, `t: [B]` in [t_1, 1] → terms of shape `[B]`.
pub fn terms(
    denoiser: &impl Denoiser,
    schedule: &GenMd4Schedule,
    x0: &Tensor,
    t: &Tensor,
    train: bool,
) -> GenMd4Terms {
    let vocab = schedule.vocab;
    let w = schedule.w();
    let alpha = token_alpha(x0, t, &w).detach();
    let z1 = mask_per_token(x0, &alpha, vocab);
    let z2 = mask_per_token(x0, &alpha, vocab);
    let both = Tensor::cat(&[&z1, &z2], 0);
    let tt = Tensor::cat(&[t, t], 0);
    let logits = denoiser.logits(&both, &tt, train);
    let b = x0.size()[0];
    let l1 = diffusion_loss(&logits.narrow(0, 0, b), x0, &z1, t, &w, vocab);
    let l2 = diffusion_loss(&logits.narrow(0, b, b), x0, &z2, t, &w, vocab);
    let lq1 = log_q(x0, &z1, t, &w, vocab);
    let lq2 = log_q(x0, &z2, t, &w, vocab);
    let rloo = (&l1 - &l2).detach() * (lq1 - lq2) * 0.5;
    GenMd4Terms { diffusion: (l1 + l2) * 0.5, rloo, recon: reconstruction(x0, &w) }
}

/// The GenMD4 objective: antithetic u rescaled to t = (1 − t_1)u + t_1 (no Jacobian factor, as
/// the reference), objective = mean(½(L₁+L₂) + r + recon)/N, reported NELBO = ½(L₁+L₂) + recon.
#[derive(Debug)]
pub struct GenMd4<D> {
    pub denoiser: D,
    pub schedule: GenMd4Schedule,
}

impl<D: Denoiser> Objective for GenMd4<D> {
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput {
        let (b, n) = (x0.size()[0], x0.size()[1]);
        let u = antithetic_times(b, x0.device());
        let t = u * (1.0 - GENMD4_T1) + GENMD4_T1;
        let terms = terms(&self.denoiser, &self.schedule, x0, &t, train);
        let nelbo = &terms.diffusion + &terms.recon;
        let objective = (&nelbo + &terms.rloo).mean(Kind::Float) / n as f64;
        let w = self.schedule.w().detach();
        let metrics = vec![
            ("w_max".to_string(), w.max().double_value(&[])),
            ("w_min".to_string(), w.min().double_value(&[])),
            ("w_mean".to_string(), w.mean(Kind::Float).double_value(&[])),
        ];
        LossOutput { objective, nelbo: nelbo.detach(), metrics }
    }
}
