//! Configuration of the text transformer (spec §7.1): width, depth, heads, MLP type, time
//! conditioning, token embedding, and the named presets.

use crate::layers::{Activation, ComputeDtype, Linear, TimeEmbedding};
use anyhow::{Result, ensure};
use md4_core::Vocab;
use serde::{Deserialize, Serialize};

/// LayerNorm / RMSNorm epsilon of the text transformer.
pub const NORM_EPS: f64 = 1e-5;
/// RoPE base θ.
pub const ROPE_THETA: f64 = 10_000.0;
/// The GLU hidden size is rounded up to a multiple of this.
pub const MLP_MULTIPLE_OF: i64 = 32;

/// The gated MLP `W2(act(W1 x) ⊙ W3 x)`; the same activation is applied to the conditioning
/// vector before every adaLN Dense (pitfall 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MlpType {
    /// Sigmoid gate: the released MD4 configs.
    Glu,
    /// SiLU gate.
    Swiglu,
    /// GELU (tanh) gate.
    Geglu,
}

impl MlpType {
    pub fn activation(self) -> Activation {
        match self {
            Self::Glu => Activation::Sigmoid,
            Self::Swiglu => Activation::Silu,
            Self::Geglu => Activation::GeluTanh,
        }
    }
}

/// How the network sees the time t.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeConditioning {
    /// adaLN-Zero on an MLP of the sinusoidal embedding of 1000·t (the released configs).
    #[serde(rename = "adaln_zero")]
    AdaLnZero,
    /// No time input: pre-RMSNorm blocks and a final RMSNorm (the reference's
    /// `time_features='none'`; RADD's time-independent μ_θ(z_t)).
    #[serde(rename = "none")]
    TimeIndependent,
}

/// How tokens enter the residual stream (pitfall 12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenEmbedding {
    /// An `(V+1) × D` table (OpenWebText).
    Direct,
    /// text8's "outside embedding": an `(V+1) × dim` table, then Dense(dim → D) with bias.
    Outside { dim: i64 },
}

/// The text transformer's architecture (spec §7.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Number of real tokens V (the mask id is V).
    pub vocab_size: i64,
    pub n_layers: i64,
    pub n_heads: i64,
    /// Head dimension (64 in the paper); width D = feature_dim · n_heads. Also the size of the
    /// time embedding and of the conditioning vector, as in the reference.
    pub feature_dim: i64,
    pub mlp_type: MlpType,
    pub time_conditioning: TimeConditioning,
    pub embedding: TokenEmbedding,
    /// Rate of the attention-probability dropout and of the channel-wise residual dropout.
    pub dropout: f64,
    /// Element-wise dropout on the embedded tokens (the reference uses `dropout` on the
    /// direct path and none on the outside path).
    pub embedding_dropout: f64,
    /// MLP kernels with variance 2/n_layers instead of 1/fan_in (pitfall 11).
    pub depth_scaled_init: bool,
    pub compute_dtype: ComputeDtype,
}

/// The GLU hidden size of §7.1: 32·⌈⌊(2/3)·4·D⌋/32⌉.
pub fn glu_hidden(dim: i64) -> i64 {
    let hidden = 2 * (4 * dim) / 3;
    MLP_MULTIPLE_OF * ((hidden + MLP_MULTIPLE_OF - 1) / MLP_MULTIPLE_OF)
}

impl TransformerConfig {
    /// Residual width D.
    pub fn width(&self) -> i64 {
        self.feature_dim * self.n_heads
    }
    /// MLP hidden size.
    pub fn mlp_hidden(&self) -> i64 {
        glu_hidden(self.width())
    }
    pub fn vocab(&self) -> Vocab {
        Vocab::new(self.vocab_size)
    }

    /// The autoregressive baseline's configuration: the same network without time input.
    pub fn ar_variant(&self) -> Self {
        Self { time_conditioning: TimeConditioning::TimeIndependent, ..self.clone() }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(self.vocab_size >= 2, "transformer: vocab_size must be at least 2, got {}", self.vocab_size);
        ensure!(self.n_layers >= 1, "transformer: n_layers must be at least 1, got {}", self.n_layers);
        ensure!(self.n_heads >= 1, "transformer: n_heads must be at least 1, got {}", self.n_heads);
        ensure!(
            self.feature_dim >= 4 && self.feature_dim % 2 == 0,
            "transformer: feature_dim must be even and at least 4 (rope pairs, time embedding), got {}",
            self.feature_dim
        );
        for (name, p) in [("dropout", self.dropout), ("embedding_dropout", self.embedding_dropout)] {
            ensure!((0.0..1.0).contains(&p), "transformer: {name} must lie in [0, 1), got {p}");
        }
        if let TokenEmbedding::Outside { dim } = self.embedding {
            ensure!(dim >= 1, "transformer: outside embedding dim must be positive, got {dim}");
        }
        Ok(())
    }

    /// Multiply-add FLOPs (2 per multiply-accumulate) of one forward pass over a sequence of
    /// `seq_len` tokens, counting every matrix product: the outside-embedding projection,
    /// q/k/v/o and the MLP at every position, the attention scores and their weighted sum
    /// (2·2·N²·D per layer), the output projection at every position, and the per-sequence
    /// time embedding and modulations. Norms, softmax and elementwise work are not counted
    /// (the usual "model FLOPs" of MFU). A training step costs ≈ 3× this (backward = 2×).
    pub fn forward_flops(&self, seq_len: i64) -> f64 {
        let (n, d, h, v, fd) = (
            seq_len as f64,
            self.width() as f64,
            self.mlp_hidden() as f64,
            self.vocab_size as f64,
            self.feature_dim as f64,
        );
        let embed = match self.embedding {
            TokenEmbedding::Direct => 0.0,
            TokenEmbedding::Outside { dim } => 2.0 * n * dim as f64 * d,
        };
        let per_layer = 2.0 * n * (4.0 * d * d + 3.0 * d * h) + 4.0 * n * n * d;
        let conditioning = match self.time_conditioning {
            TimeConditioning::AdaLnZero => {
                2.0 * (8.0 * fd * fd + self.n_layers as f64 * fd * 6.0 * d + fd * 2.0 * d)
            }
            TimeConditioning::TimeIndependent => 0.0,
        };
        embed + self.n_layers as f64 * per_layer + 2.0 * n * d * v + conditioning
    }

    /// Number of parameters, from the architecture alone.
    pub fn param_count(&self) -> i64 {
        let (d, v, fd) = (self.width(), self.vocab_size, self.feature_dim);
        let embed = match self.embedding {
            TokenEmbedding::Direct => (v + 1) * d,
            TokenEmbedding::Outside { dim } => (v + 1) * dim + Linear::params_with_bias(dim, d),
        };
        let attn = 4 * d * d;
        let mlp = 3 * d * self.mlp_hidden();
        let (block_norms, time, final_norm) = match self.time_conditioning {
            TimeConditioning::AdaLnZero => (
                Linear::params_with_bias(fd, 6 * d),
                TimeEmbedding::param_count(fd),
                Linear::params_with_bias(fd, 2 * d),
            ),
            TimeConditioning::TimeIndependent => (2 * d, 0, d),
        };
        embed + time + self.n_layers * (attn + mlp + block_norms) + final_norm + d * v
    }
}
