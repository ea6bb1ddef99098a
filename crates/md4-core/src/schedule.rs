//! Masking schedules α_t and their cross-entropy weights α'_t/(1−α_t) (spec §2.4, paper Table 4),
//! with the ε-shift of the reference code: α_t = (1−2ε)·α̃_t + ε, α'_t = (1−2ε)·α̃'_t.
//!
//! α_t is the probability that a token is still unmasked at time t (α_0 ≈ 1, α_1 ≈ 0).
//! Every quantity has an f64 scalar form (grids, plots, tests) and a tensor form (losses) that
//! evaluates the same closed forms elementwise; `1 − α_t` is computed from its own closed form
//! rather than by subtraction, so that it stays accurate near t = 0 in float32.

use serde::{Deserialize, Serialize};
use std::f64::consts::FRAC_PI_2;
use tch::Tensor;

/// The ε of the reference code's shift (spec §2.4, pitfall 4).
pub const MD4_EPS: f64 = 1e-4;

/// The base schedule α̃_t before the ε-shift.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MaskingSchedule {
    /// α̃_t = 1 − t; weight −1/t. The paper's default (SEDD's "loglinear").
    Linear,
    /// MaskGIT's α̃_t = 1 − cos(π/2·(1−t)); weight −(π/2)·tan(π/2·(1−t)).
    Cosine,
    /// α̃_t = 1 − t^w; weight −w/t.
    Polynomial { exponent: f64 },
    /// α̃_t = exp(−β̄_min^{1−t} β̄_max^t) (figure 1 only in the paper).
    Geometric { beta_min: f64, beta_max: f64 },
}

impl MaskingSchedule {
    /// The figure-1 geometric schedule (β̄_min = 1e−5, β̄_max = 20).
    pub fn geometric_fig1() -> Self {
        Self::Geometric { beta_min: 1e-5, beta_max: 20.0 }
    }

    /// A short stable name (`linear`, `cosine`, `poly2`, `geometric`) for tables and file names.
    pub fn name(&self) -> String {
        match self {
            Self::Linear => "linear".into(),
            Self::Cosine => "cosine".into(),
            Self::Polynomial { exponent } => format!("poly{exponent}"),
            Self::Geometric { .. } => "geometric".into(),
        }
    }

    /// Parse `linear`, `cosine`, `poly<w>` (e.g. `poly2`, `poly0.5`) or `geometric`
    /// (the figure-1 parameters).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            "geometric" => Ok(Self::geometric_fig1()),
            _ => match s.strip_prefix("poly").map(str::parse::<f64>) {
                Some(Ok(w)) if w > 0.0 => Ok(Self::Polynomial { exponent: w }),
                _ => Err(format!(
                    "unknown masking schedule '{s}' (expected linear, cosine, geometric or poly<w> with w > 0)"
                )),
            },
        }
    }

    /// (α̃_t, 1 − α̃_t, α̃'_t) in f64.
    fn base(&self, t: f64) -> (f64, f64, f64) {
        match *self {
            Self::Linear => (1.0 - t, t, -1.0),
            Self::Cosine => {
                let a = FRAC_PI_2 * (1.0 - t);
                (1.0 - a.cos(), a.cos(), -FRAC_PI_2 * a.sin())
            }
            Self::Polynomial { exponent: w } => {
                let tw = t.powf(w);
                (1.0 - tw, tw, -w * t.powf(w - 1.0))
            }
            Self::Geometric { beta_min, beta_max } => {
                let b = beta_min.powf(1.0 - t) * beta_max.powf(t);
                let alpha = (-b).exp();
                (alpha, -(-b).exp_m1(), -alpha * b * (beta_max / beta_min).ln())
            }
        }
    }

    /// (α̃_t, 1 − α̃_t, α̃'_t) elementwise, in t's dtype.
    fn base_tensor(&self, t: &Tensor) -> (Tensor, Tensor, Tensor) {
        match *self {
            Self::Linear => (1.0 - t, t.shallow_clone(), t.ones_like() * -1.0),
            Self::Cosine => {
                let a: Tensor = (1.0 - t) * FRAC_PI_2;
                (1.0 - a.cos(), a.cos(), a.sin() * -FRAC_PI_2)
            }
            Self::Polynomial { exponent: w } => {
                let tw = t.pow_tensor_scalar(w);
                (1.0 - &tw, tw, t.pow_tensor_scalar(w - 1.0) * -w)
            }
            Self::Geometric { beta_min, beta_max } => {
                let log_b: Tensor = (1.0 - t) * beta_min.ln() + t * beta_max.ln();
                let b = log_b.exp();
                let alpha = (-&b).exp();
                let dalpha = &alpha * &b * -(beta_max / beta_min).ln();
                (alpha, -(-&b).expm1(), dalpha)
            }
        }
    }
}

/// A masking schedule with the reference code's ε-shift.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub kind: MaskingSchedule,
    /// α_0 = 1 − ε and α_1 = ε; 1e−4 for MD4, 0 for the unshifted curves of figure 1.
    pub eps: f64,
}

impl Schedule {
    /// The MD4 schedule: `kind` shifted by ε = 1e−4.
    pub fn md4(kind: MaskingSchedule) -> Self {
        Self { kind, eps: MD4_EPS }
    }
    /// The unshifted schedule (ε = 0).
    pub fn exact(kind: MaskingSchedule) -> Self {
        Self { kind, eps: 0.0 }
    }

    /// α_t.
    pub fn alpha(&self, t: f64) -> f64 {
        let (a, _, _) = self.kind.base(t);
        (1.0 - 2.0 * self.eps) * a + self.eps
    }
    /// 1 − α_t from its own closed form (accurate near t = 0).
    pub fn one_minus_alpha(&self, t: f64) -> f64 {
        let (_, oma, _) = self.kind.base(t);
        (1.0 - 2.0 * self.eps) * oma + self.eps
    }
    /// α'_t = dα_t/dt (≤ 0).
    pub fn dalpha(&self, t: f64) -> f64 {
        let (_, _, d) = self.kind.base(t);
        (1.0 - 2.0 * self.eps) * d
    }
    /// The cross-entropy weight α'_t/(1−α_t) (≤ 0; the loss uses its absolute value).
    pub fn weight(&self, t: f64) -> f64 {
        self.dalpha(t) / self.one_minus_alpha(t)
    }
    /// Log-SNR λ_t = log(α_t/(1−α_t)).
    pub fn log_snr(&self, t: f64) -> f64 {
        self.alpha(t).ln() - self.one_minus_alpha(t).ln()
    }

    /// α_t elementwise. `t: [*]` → same shape and dtype.
    pub fn alpha_t(&self, t: &Tensor) -> Tensor {
        let (a, _, _) = self.kind.base_tensor(t);
        a * (1.0 - 2.0 * self.eps) + self.eps
    }
    /// 1 − α_t elementwise, from its closed form.
    pub fn one_minus_alpha_t(&self, t: &Tensor) -> Tensor {
        let (_, oma, _) = self.kind.base_tensor(t);
        oma * (1.0 - 2.0 * self.eps) + self.eps
    }
    /// α'_t elementwise.
    pub fn dalpha_t(&self, t: &Tensor) -> Tensor {
        let (_, _, d) = self.kind.base_tensor(t);
        d * (1.0 - 2.0 * self.eps)
    }
    /// α'_t/(1−α_t) elementwise (≤ 0).
    pub fn weight_t(&self, t: &Tensor) -> Tensor {
        let (_, oma, d) = self.kind.base_tensor(t);
        d * (1.0 - 2.0 * self.eps) / (oma * (1.0 - 2.0 * self.eps) + self.eps)
    }
    /// λ_t = log α_t − log(1−α_t) elementwise.
    pub fn log_snr_t(&self, t: &Tensor) -> Tensor {
        self.alpha_t(t).log() - self.one_minus_alpha_t(t).log()
    }
}
