//! Building blocks of the text transformer (spec §7.1, pitfalls 6–12): interleaved RoPE,
//! multi-head attention, the GLU MLP and the block with adaLN-Zero or pre-RMSNorm.

use super::config::{NORM_EPS, ROPE_THETA, TimeConditioning, TransformerConfig};
use crate::layers::{Activation, KernelInit, Linear, RmsNorm, attention, dropout1d, layer_norm};
use tch::{Kind, Tensor, nn};

/// Interleaved rotary position embedding (pitfall 9): the pairs (2k, 2k+1) of each head are
/// rotated by the angle `n·θ^(−2k/hd)` at position n.
#[derive(Debug)]
pub struct Rope {
    /// `[N, hd/2]` cos and sin of the angles.
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// Tables for positions `0..seq_len` and head dim `head_dim` (even).
    pub fn new(seq_len: i64, head_dim: i64, device: tch::Device) -> Self {
        let k = Tensor::arange_start_step(0, head_dim, 2, (Kind::Double, device)) / head_dim as f64;
        let inv_freq = (k * -(ROPE_THETA.ln())).exp();
        let pos = Tensor::arange(seq_len, (Kind::Double, device));
        let angles = pos.unsqueeze(1) * inv_freq.unsqueeze(0);
        Self { cos: angles.cos().to_kind(Kind::Float), sin: angles.sin().to_kind(Kind::Float) }
    }

    /// # Shapes
    /// `x: [B, N, H, hd]` → `[B, N, H, hd]` (in x's dtype).
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let (b, n, h, hd) = x.size4().expect("rope expects [B, N, H, hd]");
        let pairs = x.reshape([b, n, h, hd / 2, 2]);
        let (re, im) = (pairs.select(-1, 0), pairs.select(-1, 1));
        let cos = self.cos.to_kind(x.kind()).view([1, n, 1, hd / 2]);
        let sin = self.sin.to_kind(x.kind()).view([1, n, 1, hd / 2]);
        let out_re = &re * &cos - &im * &sin;
        let out_im = &re * &sin + &im * &cos;
        Tensor::stack(&[out_re, out_im], -1).view([b, n, h, hd])
    }
}

/// Multi-head self-attention without biases, RoPE on q and k, attention-probability dropout
/// and channel-wise dropout on the output projection.
#[derive(Debug)]
pub struct Attention {
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    n_heads: i64,
    dropout: f64,
    causal: bool,
}

impl Attention {
    pub(super) fn new(vs: &nn::Path, cfg: &TransformerConfig, causal: bool) -> Self {
        let d = cfg.width();
        let lin = |name: &str| Linear::no_bias(&(vs / name), d, d, KernelInit::LECUN, cfg.compute_dtype);
        Self {
            wq: lin("wq"),
            wk: lin("wk"),
            wv: lin("wv"),
            wo: lin("wo"),
            n_heads: cfg.n_heads,
            dropout: cfg.dropout,
            causal,
        }
    }

    /// `x: [B, N, D]` → `[B, N, D]` (compute dtype).
    pub fn forward(&self, x: &Tensor, rope: &Rope, train: bool) -> Tensor {
        let (b, n, d) = x.size3().expect("attention expects [B, N, D]");
        let heads = |t: Tensor| t.view([b, n, self.n_heads, d / self.n_heads]);
        let q = rope.apply(&heads(self.wq.forward(x))).transpose(1, 2);
        let k = rope.apply(&heads(self.wk.forward(x))).transpose(1, 2);
        let v = heads(self.wv.forward(x)).transpose(1, 2);
        let out = attention(&q, &k, &v, self.dropout, self.causal, train);
        let out = self.wo.forward(&out.transpose(1, 2).reshape([b, n, d]));
        dropout1d(&out, self.dropout, train)
    }
}

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
        Self { attn: Attention::new(&(vs / "attn"), cfg, causal), mlp: Mlp::new(&(vs / "mlp"), cfg), norm }
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
                let h = x + gate_a * self.attn.forward(&a_in, rope, train);
                let m_in = c.cast(&(layer_norm(&h, NORM_EPS) * (scale_m + 1.0) + shift_m));
                &h + gate_m * self.mlp.forward(&m_in, train)
            }
            BlockNorm::PreRms { attn_norm, mlp_norm } => {
                let h = x + self.attn.forward(&c.cast(&attn_norm.forward(x)), rope, train);
                &h + self.mlp.forward(&c.cast(&mlp_norm.forward(&h)), train)
            }
        }
    }
}
