//! MD4's negative ELBO: the continuous-time estimator (spec §3.3, eq. 5) and the finite-T
//! estimator (§3.4), per sequence and in nats, plus the [`Md4`] training objective.
//!
//! Both sum the masked cross-entropies over all N positions (never divided by the number of
//! masked tokens, pitfall 1) and add the reconstruction constant N·(1−α_0)·log V; the prior
//! KL (≈ N·α_1·log V) is ignored as in the paper.

use crate::forward::{antithetic_times, is_masked, mask_tokens};
use crate::objective::{LossOutput, Objective};
use crate::{Denoiser, Schedule, Vocab};
use tch::{Kind, Tensor};

/// log μ_θ(z_t)[x_0] at every position, in float32.
///
/// # Shapes
/// `logits: [B, N, V]`, `x0: [B, N]` → `[B, N]` (≤ 0).
pub fn log_prob_of_target(logits: &Tensor, x0: &Tensor) -> Tensor {
    let logits = logits.to_kind(Kind::Float);
    let picked = logits.gather(-1, &x0.unsqueeze(-1), false).squeeze_dim(-1);
    picked - logits.logsumexp([-1], false)
}

/// S_b = Σ_n [z_t^(n) = m] · log μ_θ^(n)[x_0^(n)] (≤ 0), the masked log-likelihood sum.
///
/// # Shapes
/// `logits: [B, N, V]`, `x0, zt: [B, N]` → `[B]`.
pub fn masked_log_likelihood(logits: &Tensor, x0: &Tensor, zt: &Tensor, vocab: Vocab) -> Tensor {
    sum_over_masked(logits, x0, zt, vocab, |rows, targets| {
        log_prob_of_target(rows, targets).to_kind(Kind::Float)
    })
}

/// Σ over the masked positions of each sequence of `f(logit rows, targets)`, evaluated at the
/// masked rows only: the `[B, N, V]` tensor is read once to gather them, so the loss's softmax
/// passes (and their gradients) cost M·V instead of B·N·V (M ≈ half of B·N on average).
///
/// # Shapes
/// `logits: [B, N, V]`, `x0, zt: [B, N]`; `f: ([M, V], [M]) → [M]` → `[B]` in f's kind.
pub fn sum_over_masked(
    logits: &Tensor,
    x0: &Tensor,
    zt: &Tensor,
    vocab: Vocab,
    f: impl Fn(&Tensor, &Tensor) -> Tensor,
) -> Tensor {
    let (b, n) = x0.size2().expect("x0 must be [B, N]");
    let v = *logits.size().last().expect("logits [B, N, V]");
    let rows = is_masked(zt, vocab).reshape([-1]).nonzero().squeeze_dim(1);
    let picked = logits.reshape([-1, v]).index_select(0, &rows);
    let targets = x0.reshape([-1]).index_select(0, &rows);
    let per_row = f(&picked, &targets);
    let seq = rows.floor_divide_scalar(n);
    Tensor::zeros([b], (per_row.kind(), logits.device())).index_add(0, &seq, &per_row)
}

/// The reconstruction constant N·(1−α_0)·log V in nats per sequence (App. D).
pub fn reconstruction_nats(schedule: &Schedule, seq_len: i64, vocab: Vocab) -> f64 {
    seq_len as f64 * schedule.one_minus_alpha(0.0) * (vocab.size() as f64).ln()
}

/// Continuous-time negative ELBO per sequence at given times (spec §3.3).
///
/// # Shapes
/// `x0: [B, N]` int64, `t: [B]` float in [0, 1) → `[B]` float32 nats (differentiable).
pub fn continuous_nelbo(
    denoiser: &impl Denoiser,
    x0: &Tensor,
    t: &Tensor,
    schedule: &Schedule,
    vocab: Vocab,
    train: bool,
) -> Tensor {
    let (t, s) = weighted_input(denoiser, x0, None, t, schedule, vocab, train);
    schedule.weight_t(&t) * s + reconstruction_nats(schedule, x0.size()[1], vocab)
}

/// The float32 times and the summed log-likelihood of x0 at the masked positions of z_t ~
/// q(z_t | x0) (only `free` positions masked when given): what both continuous bounds weight.
fn weighted_input(
    denoiser: &impl Denoiser,
    x0: &Tensor,
    free: Option<&Tensor>,
    t: &Tensor,
    schedule: &Schedule,
    vocab: Vocab,
    train: bool,
) -> (Tensor, Tensor) {
    let t = t.to_kind(Kind::Float);
    let alpha = schedule.alpha_t(&t);
    let mut zt = mask_tokens(x0, &alpha.unsqueeze(1), vocab);
    if let Some(free) = free {
        zt = zt.where_self(free, x0);
    }
    let s = denoiser.masked_log_likelihood(&zt, &t, x0, vocab, train);
    (t, s)
}

/// Continuous-time negative ELBO of the `free` positions given the others (infilling and
/// prompts, spec §5.4): the forward process masks only free positions, the fixed ones stay
/// visible as context, and the reconstruction constant counts free positions only. An upper
/// bound on −log p(x_free | x_fixed); with every position free it is [`continuous_nelbo`]
/// (draw for draw).
///
/// # Shapes
/// `x0: [B, N]` int64, `free: [B, N]` bool, `t: [B]` float in [0, 1) → `[B]` float32 nats.
pub fn conditional_nelbo(
    denoiser: &impl Denoiser,
    x0: &Tensor,
    free: &Tensor,
    t: &Tensor,
    schedule: &Schedule,
    vocab: Vocab,
    train: bool,
) -> Tensor {
    let (t, s) = weighted_input(denoiser, x0, Some(free), t, schedule, vocab, train);
    let n_free = free.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    schedule.weight_t(&t) * s + n_free * (schedule.one_minus_alpha(0.0) * (vocab.size() as f64).ln())
}

/// The grid step (t, s = t − 1/T) that a uniform u ∈ [0, 1) selects: t = (⌊uT⌋ + 1)/T.
///
/// # Shapes
/// `u: [B]` → (`t: [B]`, `s: [B]`), float64 so that T = 10⁴ grids stay exact.
pub fn discrete_times(u: &Tensor, steps: i64) -> (Tensor, Tensor) {
    let i = (u.to_kind(Kind::Double) * steps as f64).floor().clamp(0.0, (steps - 1) as f64);
    let t = (&i + 1.0) / steps as f64;
    let s = i / steps as f64;
    (t, s)
}

/// Finite-T negative ELBO per sequence (spec §3.4): one uniformly chosen step i of T,
/// weighted T·(α_s−α_t)/(1−α_t) computed stably as −T·expm1(λ_t−λ_s)·α_s.
///
/// # Shapes
/// `x0: [B, N]`, `u: [B]` uniform in [0, 1) → `[B]` float32 nats.
pub fn discrete_nelbo(
    denoiser: &impl Denoiser,
    x0: &Tensor,
    u: &Tensor,
    steps: i64,
    schedule: &Schedule,
    vocab: Vocab,
    train: bool,
) -> Tensor {
    let (t, s) = discrete_times(u, steps);
    let alpha_t = schedule.alpha_t(&t);
    let zt = mask_tokens(x0, &alpha_t.unsqueeze(1), vocab);
    let t32 = t.to_kind(Kind::Float);
    let ll = denoiser.masked_log_likelihood(&zt, &t32, x0, vocab, train).to_kind(Kind::Double);
    // expm1(λ_t − λ_s)·α_s = (α_t − α_s)/(1 − α_t) ≤ 0, and ll ≤ 0.
    let step_weight = (schedule.log_snr_t(&t) - schedule.log_snr_t(&s)).expm1() * schedule.alpha_t(&s);
    let recon = reconstruction_nats(schedule, x0.size()[1], vocab);
    (step_weight * ll * steps as f64 + recon).to_kind(Kind::Float)
}

/// The MD4 objective: the continuous-time NELBO with antithetic t (spec §3.3); optimised and
/// reported value coincide.
#[derive(Debug)]
pub struct Md4<D> {
    pub denoiser: D,
    pub schedule: Schedule,
    pub vocab: Vocab,
}

impl<D: Denoiser> Objective for Md4<D> {
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput {
        let (b, n) = (x0.size()[0], x0.size()[1]);
        let t = antithetic_times(b, x0.device());
        let nelbo = continuous_nelbo(&self.denoiser, x0, &t, &self.schedule, self.vocab, train);
        LossOutput { objective: nelbo.mean(Kind::Float) / n as f64, nelbo: nelbo.detach(), metrics: vec![] }
    }
}
