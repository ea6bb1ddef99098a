//! The CTMC ELBO of Campbell et al. 2022 ("A Continuous Time Framework for Discrete Denoising
//! Models", τLDR, Prop. 2) for the absorbing process, with their doubly-stochastic estimator
//! (MD4 paper §5 / App. H, Prop. 3; spec §6; Table 3 "Campbell et al. Absorb").
//!
//! **Rates.** Forward: each unmasked position is masked at rate β(t) = −α'_t/α_t. Reverse model:
//! R_θ(t)(z → z with position n unmasked to v) = −α'_t/(1−α_t) · μ_θ(z, t)_{n,v} for masked n.
//!
//! **Objective.** −log p(x_0) ≤ ∫_0^1 E_{z_t ~ q_t(·|x_0)} [ Σ_{y≠z_t} R_θ(z_t→y)
//! − Σ_{y≠z_t} Q_t(z_t→y) log R_θ(y→z_t) ] dt + C. Here
//! * term 1 = total reverse out-rate of z_t = |α'_t/(1−α_t)|·M (M masked positions, Σ_v μ = 1),
//!   independent of θ;
//! * term 2 = −Σ_{n unmasked} β(t)·log(|α'_t/(1−α_t)|·μ_θ(y_n)_{n, x_0^n}), where y_n is z_t with
//!   position n masked. Each n needs its own network pass at y_n, so — the doubly-stochastic
//!   part — we draw ONE unmasked n uniformly and multiply by the count U = N − M (one network
//!   pass on the batch of y's; term 1 needs none). Term 2 is the only one with a gradient.
//!
//! **The constant.** Summation by parts (Prop. 3: q_t(y_n)/q_t(z_t) = (1−α_t)/α_t) turns
//! E[term 2] into E[Σ_{n masked} |α'_t/(1−α_t)|·(−log|α'_t/(1−α_t)| − log μ_θ^(n)[x_0^n])], so
//! E[term 1 + term 2] = MD4's integrand + N·|α'_t|·(1 − log|α'_t/(1−α_t)|). The same expression at
//! the conditional rate (μ = x_0, for which MD4's integrand is 0) shows that the constant
//! making it MD4's NELBO is, per token,
//!
//! C = ∫_0^1 α'_t (1 − log(−α'_t/(1−α_t))) dt,
//!
//! which is 0 for the unshifted linear schedule (−∫(1 + log t)dt = 0); for any other schedule we
//! compute it once at construction by tanh-sinh quadrature in f64 ([`campbell_constant`]; its
//! endpoint singularities are logarithmic or algebraic and integrable). As for MD4 we add the
//! reconstruction constant N·(1−α_0)·log V and ignore the prior KL, so with the same μ the two
//! estimators have the same expectation; the oracle test checks exactly that, and that the
//! per-sequence variance here is much larger.
//!
//! **Estimator.** One antithetic t per sequence, one mask draw, one uniformly chosen unmasked
//! position; `nelbo` = term 1 + term 2 + N·C + reconstruction, `objective` = mean(nelbo)/N.

use crate::elbo::{log_prob_of_target, reconstruction_nats};
use crate::forward::{antithetic_times, is_masked, mask_tokens};
use crate::objective::{LossOutput, Objective};
use crate::{Denoiser, Schedule, Vocab};
use std::f64::consts::PI;
use tch::{Kind, Tensor};

/// C = ∫_0^1 α'_t (1 − log(−α'_t/(1−α_t))) dt per token (module docs), by tanh-sinh
/// quadrature: t = σ(π sinh s), dt = σ(1−σ)·π cosh s ds, step h = 1/64, with s running until
/// t ≈ 1e−304 at the left end (where the log/algebraic singularities live) and 1 − t ≈ 2e−16
/// at the right (where every schedule's integrand stays bounded).
pub fn campbell_constant(schedule: &Schedule) -> f64 {
    let integrand = |t: f64| {
        let (dalpha, one_minus_alpha) = (schedule.dalpha(t), schedule.one_minus_alpha(t));
        // α'_t = 0 (cosine at t = 1) or 1 − α_t underflowing to 0 at t > 0 (t^w for tiny t, where
        // |α'_t| = w(1 − α_t)/t is below 1e−200): the integrand vanishes at f64 resolution.
        if dalpha == 0.0 || one_minus_alpha == 0.0 {
            0.0
        } else {
            dalpha * (1.0 - (-dalpha).ln() + one_minus_alpha.ln())
        }
    };
    let h = 1.0 / 64.0;
    let (s_min, s_max) = (-(700.0 / PI).asinh(), (36.0 / PI).asinh());
    let (k_min, k_max) = ((s_min / h).ceil() as i64, (s_max / h).floor() as i64);
    let mut total = 0.0;
    for k in k_min..=k_max {
        let s = k as f64 * h;
        let x = PI * s.sinh();
        let t = 1.0 / (1.0 + (-x).exp());
        // σ(1−σ) = e^{−|x|}/(1 + e^{−|x|})², stable in both tails.
        let e = (-x.abs()).exp();
        let dt_ds = e / (1.0 + e).powi(2) * PI * s.cosh();
        let value = integrand(t) * dt_ds * h;
        assert!(value.is_finite(), "campbell constant: non-finite integrand at t = {t:e} for {schedule:?}");
        total += value;
    }
    total
}

/// The per-sequence pieces of one Campbell estimate (all `[B]` float32 nats).
#[derive(Debug)]
pub struct CampbellTerms {
    /// Total reverse out-rate |α'/(1−α)|·M (no gradient).
    pub out_rate: Tensor,
    /// −U·β·log(|α'/(1−α)|·μ_θ(y)_{n,x_0^n}) at the sampled unmasked n (differentiable).
    pub in_rate: Tensor,
    /// term 1 + term 2 + N·C + reconstruction: the NELBO estimate (differentiable).
    pub nelbo: Tensor,
}

/// The Campbell et al. absorbing objective (module docs). Build with [`Campbell::new`], which
/// integrates the schedule's constant once.
#[derive(Debug)]
pub struct Campbell<D> {
    pub denoiser: D,
    pub schedule: Schedule,
    pub vocab: Vocab,
    constant: f64,
}

impl<D: Denoiser> Campbell<D> {
    pub fn new(denoiser: D, schedule: Schedule, vocab: Vocab) -> Self {
        let constant = campbell_constant(&schedule);
        Self { denoiser, schedule, vocab, constant }
    }

    /// The estimate at the given times. Term 1 needs no network output because Σ_v μ_θ = 1 in
    /// the mean parameterisation, so the only network pass is the one at the batch of y's (z_t
    /// with one more position masked): the same cost as MD4. Rows with U = 0 (everything
    /// masked) still go through the pass but contribute 0.
    ///
    /// # Shapes
    /// `x0: [B, N]` int64, `t: [B]` float in (0, 1) → [`CampbellTerms`] of `[B]` float32.
    pub fn terms(&self, x0: &Tensor, t: &Tensor, train: bool) -> CampbellTerms {
        let (n, device) = (x0.size()[1], x0.device());
        let t32 = t.to_kind(Kind::Float);
        let t = t.to_kind(Kind::Double);
        let alpha = self.schedule.alpha_t(&t);
        let zt = mask_tokens(x0, &alpha.unsqueeze(1), self.vocab);
        let masked = is_masked(&zt, self.vocab);
        let count_masked =
            masked.to_kind(Kind::Double).sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        let count_unmasked = -&count_masked + n as f64;
        let rate = -self.schedule.weight_t(&t); // |α'/(1−α)| ≥ 0
        let beta = -self.schedule.dalpha_t(&t) / &alpha;
        let zero = Tensor::zeros_like(&rate);
        let out_rate = (&rate * &count_masked).where_self(&count_masked.gt(0.0), &zero);

        // One unmasked position per row, uniformly: the argmax of uniform keys over unmasked n.
        let keys = crate::noise::uniform(&[x0.size()[0], n], Kind::Float, device).masked_fill(&masked, -1.0);
        let pick = keys.argmax(1, true); // [B, 1]
        let y = zt.scatter_value(1, &pick, self.vocab.mask_id());
        let logits = self.denoiser.logits(&y, &t32, train);
        let log_mu = log_prob_of_target(&logits, x0).gather(1, &pick, false).squeeze_dim(1);
        let coefficient = (&beta * &count_unmasked).where_self(&count_unmasked.gt(0.0), &zero);
        let in_rate = -coefficient * (rate.log() + log_mu.to_kind(Kind::Double));

        let constant = n as f64 * self.constant + reconstruction_nats(&self.schedule, n, self.vocab);
        let nelbo = (&out_rate + &in_rate + constant).to_kind(Kind::Float);
        CampbellTerms {
            out_rate: out_rate.to_kind(Kind::Float),
            in_rate: in_rate.to_kind(Kind::Float),
            nelbo,
        }
    }
}

impl<D: Denoiser> Objective for Campbell<D> {
    /// Antithetic t; `objective = mean(nelbo)/N`. Metrics: the two terms' batch means per token.
    ///
    /// # Shapes
    /// `x0: [B, N]` → objective `[]`, nelbo `[B]`.
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput {
        let (b, n) = (x0.size()[0], x0.size()[1]);
        let t = antithetic_times(b, x0.device());
        let terms = self.terms(x0, &t, train);
        let per_token = |x: &Tensor| x.mean(Kind::Double).double_value(&[]) / n as f64;
        let metrics = vec![
            ("out_rate".to_string(), per_token(&terms.out_rate)),
            ("in_rate".to_string(), per_token(&terms.in_rate)),
        ];
        LossOutput {
            objective: terms.nelbo.mean(Kind::Float) / n as f64,
            nelbo: terms.nelbo.detach(),
            metrics,
        }
    }
}
