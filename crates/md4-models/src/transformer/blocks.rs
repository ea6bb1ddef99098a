//! Building blocks of the text transformer (spec §7.1, pitfalls 6–12): the GLU MLP and the
//! block with adaLN-Zero or pre-RMSNorm around [`Attention`] with interleaved [`Rope`]
//! (both in [`crate::layers`], shared with the DiT).

use super::config::{NORM_EPS, TimeConditioning, TransformerConfig};
use crate::layers::{Activation, Attention, KernelInit, Linear, RmsNorm, Rope, dropout1d, layer_norm};
use tch::{Kind, Tensor, nn};

/// The gated MLP `W2(act(W1 x) ⊙ W3 x)` without biases, channel-wise dropout on the output.
#[derive(Debug)]
pub struct Mlp {
    pub w1: Linear,
    pub w2: Linear,
    pub w3: Linear,
    activation: Activation,
    dropout: f64,
}

impl Mlp {
    pub(super) fn new(vs: &nn::Path, cfg: &TransformerConfig) -> Self {
        let (d, hidden) = (cfg.width(), cfg.mlp_hidden());
        let init = if cfg.depth_scaled_init {
            KernelInit::FanIn { scale: 2.0 / cfg.n_layers as f64 }
        } else {
            KernelInit::LECUN
        };
        let c = cfg.compute_dtype;
        Self {
            w1: Linear::no_bias(&(vs / "w1"), d, hidden, init, c),
            w2: Linear::no_bias(&(vs / "w2"), hidden, d, init, c),
            w3: Linear::no_bias(&(vs / "w3"), d, hidden, init, c),
            activation: cfg.mlp_type.activation(),
            dropout: cfg.dropout,
        }
    }

    /// `x: [B, N, D]` → `[B, N, D]` (compute dtype).
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.w2.forward(&(self.activation.apply(&self.w1.forward(x)) * self.w3.forward(x)));
        dropout1d(&y, self.dropout, train)
    }
}

/// Normalisation and conditioning of one block.
#[derive(Debug)]
pub enum BlockNorm {
    /// `[shift_a, scale_a, gate_a, shift_m, scale_m, gate_m] = modulation(act(c))`, zero-init.
    AdaLnZero { modulation: Linear },
    /// Pre-RMSNorm with learned scales.
    PreRms { attn_norm: RmsNorm, mlp_norm: RmsNorm },
}

/// One transformer block.
#[derive(Debug)]
pub struct Block {
    pub attn: Attention,
    pub mlp: Mlp,
    pub norm: BlockNorm,
}

impl Block {
    pub(super) fn new(vs: &nn::Path, cfg: &TransformerConfig, causal: bool) -> Self {
        let d = cfg.width();
        let norm = match cfg.time_conditioning {
            TimeConditioning::AdaLnZero => BlockNorm::AdaLnZero {
                modulation: Linear::with_bias(
                    &(vs / "modulation"),
                    cfg.feature_dim,
                    6 * d,
                    KernelInit::Zeros,
                    cfg.compute_dtype,
                ),
            },
            TimeConditioning::TimeIndependent => BlockNorm::PreRms {
                attn_norm: RmsNorm::new(&(vs / "attn_norm"), d, NORM_EPS),
                mlp_norm: RmsNorm::new(&(vs / "mlp_norm"), d, NORM_EPS),
            },
        };
        let attn_vs = vs / "attn";
        let proj =
            |name: &str| Linear::no_bias(&(&attn_vs / name), d, d, KernelInit::LECUN, cfg.compute_dtype);
        let attn = Attention::new(proj, cfg.n_heads, cfg.dropout, causal);
        Self { attn, mlp: Mlp::new(&(vs / "mlp"), cfg), norm }
    }

    /// `x: [B, N, D]` f32, `cond_act: [B, feature_dim]` (activated conditioning; only read by
    /// adaLN blocks) → `[B, N, D]` f32.
    pub(super) fn forward(&self, x: &Tensor, cond_act: Option<&Tensor>, rope: &Rope, train: bool) -> Tensor {
        let c = self.attn.wq.compute();
        match &self.norm {
            BlockNorm::AdaLnZero { modulation } => {
                let cond_act = cond_act.expect("an adaLN block needs the conditioning vector");
                let m = modulation.forward(cond_act).to_kind(Kind::Float).unsqueeze(1).chunk(6, -1);
                let (shift_a, scale_a, gate_a) = (&m[0], &m[1], &m[2]);
                let (shift_m, scale_m, gate_m) = (&m[3], &m[4], &m[5]);
                // The normalised, modulated input is cast once (a no-op in f32): the q/k/v and
                // w1/w3 projections then read the same bf16 tensor.
                let a_in = c.cast(&(layer_norm(x, NORM_EPS) * (scale_a + 1.0) + shift_a));
                let h = x + gate_a * self.attn.forward(&a_in, Some(rope), train);
                let m_in = c.cast(&(layer_norm(&h, NORM_EPS) * (scale_m + 1.0) + shift_m));
                &h + gate_m * self.mlp.forward(&m_in, train)
            }
            BlockNorm::PreRms { attn_norm, mlp_norm } => {
                let h = x + self.attn.forward(&c.cast(&attn_norm.forward(x)), Some(rope), train);
                &h + self.mlp.forward(&c.cast(&mlp_norm.forward(&h)), train)
            }
        }
    }
}
