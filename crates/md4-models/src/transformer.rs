//! The text denoiser of MD4 (spec §7.1, pitfalls 6–12): a LLaMA-style bidirectional
//! transformer with adaLN-Zero time conditioning, interleaved RoPE, GLU MLPs, channel-wise
//! residual dropout and untied input (V+1 rows) / output (V columns) embeddings; and its
//! time-independent variant (pre-RMSNorm, no time input), which is also the backbone of the
//! autoregressive baseline ([`crate::ar`]).
//!
//! Variable names mirror the fields (`blocks.3.attn.wq.weight`), so checkpoint keys are
//! readable and stable.

use crate::layers::{
    Activation, ComputeDtype, Embedding, KernelInit, Linear, RmsNorm, TimeEmbedding, attention, dropout1d,
    layer_norm,
};
use anyhow::{Result, ensure};
use md4_core::{Denoiser, Vocab};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

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
            TokenEmbedding::Outside { dim } => (v + 1) * dim + Linear::param_count(dim, d, true),
        };
        let attn = 4 * d * d;
        let mlp = 3 * d * self.mlp_hidden();
        let (block_norms, time, final_norm) = match self.time_conditioning {
            TimeConditioning::AdaLnZero => (
                Linear::param_count(fd, 6 * d, true),
                TimeEmbedding::param_count(fd),
                Linear::param_count(fd, 2 * d, true),
            ),
            TimeConditioning::TimeIndependent => (2 * d, 0, d),
        };
        embed + time + self.n_layers * (attn + mlp + block_norms) + final_norm + d * v
    }
}

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
    fn new(vs: &nn::Path, cfg: &TransformerConfig, causal: bool) -> Self {
        let d = cfg.width();
        let lin = |name: &str| Linear::new(&(vs / name), d, d, KernelInit::LECUN, false, cfg.compute_dtype);
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
    fn new(vs: &nn::Path, cfg: &TransformerConfig) -> Self {
        let (d, hidden) = (cfg.width(), cfg.mlp_hidden());
        let init = if cfg.depth_scaled_init {
            KernelInit::FanIn { scale: 2.0 / cfg.n_layers as f64 }
        } else {
            KernelInit::LECUN
        };
        let c = cfg.compute_dtype;
        Self {
            w1: Linear::new(&(vs / "w1"), d, hidden, init, false, c),
            w2: Linear::new(&(vs / "w2"), hidden, d, init, false, c),
            w3: Linear::new(&(vs / "w3"), d, hidden, init, false, c),
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
    fn new(vs: &nn::Path, cfg: &TransformerConfig, causal: bool) -> Self {
        let d = cfg.width();
        let norm = match cfg.time_conditioning {
            TimeConditioning::AdaLnZero => BlockNorm::AdaLnZero {
                modulation: Linear::new(
                    &(vs / "modulation"),
                    cfg.feature_dim,
                    6 * d,
                    KernelInit::Zeros,
                    true,
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
    fn forward(&self, x: &Tensor, cond_act: Option<&Tensor>, rope: &Rope, train: bool) -> Tensor {
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

/// How the input tokens are embedded.
#[derive(Debug)]
pub enum Embedder {
    Direct { embed: Embedding },
    Outside { embed: Embedding, embed_proj: Linear },
}

/// Time conditioning and output normalisation.
#[derive(Debug)]
pub enum Head {
    /// `[shift, scale] = final_modulation(act(c))` (zero-init), then LayerNorm·(1+scale)+shift.
    AdaLnZero { time_embed: TimeEmbedding, final_modulation: Linear },
    /// A final RMSNorm.
    Rms { final_norm: RmsNorm },
}

/// Masked positions per output-projection chunk in [`Denoiser::masked_log_likelihood`] (with
/// V = 50,257 one chunk of logits is 0.8 GB in float32).
pub const LOSS_CHUNK_ROWS: i64 = 4096;

/// The text transformer. `Transformer::new` builds the bidirectional MD4 denoiser; the
/// autoregressive baseline uses the same code with a causal mask ([`crate::ar::ArTransformer`]).
#[derive(Debug)]
pub struct Transformer {
    pub embedder: Embedder,
    pub blocks: Vec<Block>,
    pub head_norm: Head,
    /// Output projection `[V, D]`, no bias, zero-initialised.
    pub head: Linear,
    cfg: TransformerConfig,
    cond_activation: Activation,
}

impl Transformer {
    /// The bidirectional denoiser of §7.1. Fails on an invalid configuration.
    pub fn new(vs: &nn::Path, cfg: &TransformerConfig) -> Result<Self> {
        Self::with_mask(vs, cfg, false)
    }

    /// The network with a causal (`causal = true`) or bidirectional attention mask.
    pub(crate) fn with_mask(vs: &nn::Path, cfg: &TransformerConfig, causal: bool) -> Result<Self> {
        cfg.validate()?;
        let (d, c) = (cfg.width(), cfg.compute_dtype);
        let rows = cfg.vocab().input_rows();
        let embedder = match cfg.embedding {
            TokenEmbedding::Direct => Embedder::Direct { embed: Embedding::new(&(vs / "embed"), rows, d) },
            TokenEmbedding::Outside { dim } => Embedder::Outside {
                embed: Embedding::new(&(vs / "embed"), rows, dim),
                embed_proj: Linear::new(&(vs / "embed_proj"), dim, d, KernelInit::LECUN, true, c),
            },
        };
        let blocks = (0..cfg.n_layers).map(|i| Block::new(&(vs / "blocks" / i), cfg, causal)).collect();
        let head_norm = match cfg.time_conditioning {
            TimeConditioning::AdaLnZero => Head::AdaLnZero {
                time_embed: TimeEmbedding::new(&(vs / "time_embed"), cfg.feature_dim, c),
                final_modulation: Linear::new(
                    &(vs / "final_modulation"),
                    cfg.feature_dim,
                    2 * d,
                    KernelInit::Zeros,
                    true,
                    c,
                ),
            },
            TimeConditioning::TimeIndependent => {
                Head::Rms { final_norm: RmsNorm::new(&(vs / "final_norm"), d, NORM_EPS) }
            }
        };
        let head = Linear::new(&(vs / "head"), d, cfg.vocab_size, KernelInit::Zeros, false, c);
        Ok(Self {
            embedder,
            blocks,
            head_norm,
            head,
            cfg: cfg.clone(),
            cond_activation: cfg.mlp_type.activation(),
        })
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// Logits for every position. `t` is required with adaLN conditioning and ignored by the
    /// time-independent variant.
    ///
    /// # Shapes
    /// `tokens: [B, N]` int64 in `0..=V`, `t: [B]` float → `[B, N, V]` float32.
    pub fn forward(&self, tokens: &Tensor, t: Option<&Tensor>, train: bool) -> Tensor {
        self.head.forward(&self.hidden(tokens, t, train)).to_kind(Kind::Float)
    }

    /// Logits at the masked positions (`tokens == V`) only, zero elsewhere: the output
    /// projection, which dominates the cost with GPT-2's 50,257 tokens, runs on the masked
    /// rows alone. Every objective and sampler reads logits at masked positions only
    /// (the [`Denoiser`] contract), so this is what [`Denoiser::logits`] returns; with every
    /// position masked it is [`Transformer::forward`].
    ///
    /// # Shapes
    /// `tokens: [B, N]` → `[B, N, V]` float32.
    pub fn masked_logits(&self, tokens: &Tensor, t: Option<&Tensor>, train: bool) -> Tensor {
        let (b, n) = tokens.size2().expect("transformer expects tokens [B, N]");
        let v = self.cfg.vocab_size;
        let masked = tokens.eq(v).view([-1]);
        let rows = masked.nonzero().squeeze_dim(1);
        let m = rows.size()[0];
        if m == b * n {
            return self.forward(tokens, t, train);
        }
        let hidden = self.hidden(tokens, t, train);
        let d = *hidden.size().last().expect("hidden [B, N, D]");
        let picked = hidden.view([b * n, d]).index_select(0, &rows);
        let out = self.head.forward(&picked).to_kind(Kind::Float);
        Tensor::zeros([b * n, v], (Kind::Float, tokens.device()))
            .index_put(&[Some(rows)], &out, false)
            .view([b, n, v])
    }

    /// The normalised, modulated residual stream before the output projection.
    ///
    /// # Shapes
    /// `tokens: [B, N]` → `[B, N, D]`.
    pub fn hidden(&self, tokens: &Tensor, t: Option<&Tensor>, train: bool) -> Tensor {
        let (_, n) = tokens.size2().expect("transformer expects tokens [B, N]");
        let h = match &self.embedder {
            Embedder::Direct { embed } => embed.forward(tokens),
            Embedder::Outside { embed, embed_proj } => {
                embed_proj.forward(&embed.forward(tokens)).to_kind(Kind::Float)
            }
        };
        let mut h = if train && self.cfg.embedding_dropout > 0.0 {
            h.dropout(self.cfg.embedding_dropout, true)
        } else {
            h
        };
        let rope = Rope::new(n, self.cfg.feature_dim, tokens.device());
        let cond_act = match &self.head_norm {
            Head::AdaLnZero { time_embed, .. } => {
                let t = t.expect("a time-conditioned transformer needs t");
                Some(self.cond_activation.apply(&time_embed.forward(t)))
            }
            Head::Rms { .. } => None,
        };
        for block in &self.blocks {
            h = block.forward(&h, cond_act.as_ref(), &rope, train);
        }
        match &self.head_norm {
            Head::AdaLnZero { final_modulation, .. } => {
                let cond_act = cond_act.as_ref().expect("conditioning computed above");
                let m = final_modulation.forward(cond_act).to_kind(Kind::Float).unsqueeze(1).chunk(2, -1);
                layer_norm(&h, NORM_EPS) * (&m[1] + 1.0) + &m[0]
            }
            Head::Rms { final_norm } => final_norm.forward(&h),
        }
    }
}

impl Denoiser for Transformer {
    fn logits(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor {
        self.masked_logits(zt, Some(t), train)
    }
    fn time_dependent(&self) -> bool {
        self.cfg.time_conditioning == TimeConditioning::AdaLnZero
    }
    /// The output projection and log-softmax run on [`LOSS_CHUNK_ROWS`] masked rows at a time:
    /// without gradients the peak holds one `[chunk, V]` block instead of `[B, N, V]`.
    fn masked_log_likelihood(
        &self,
        zt: &Tensor,
        t: &Tensor,
        x0: &Tensor,
        vocab: md4_core::Vocab,
        train: bool,
    ) -> Tensor {
        let (b, n) = zt.size2().expect("transformer expects tokens [B, N]");
        let rows = zt.eq(vocab.mask_id()).reshape([-1]).nonzero().squeeze_dim(1);
        let hidden = self.hidden(zt, Some(t), train);
        let d = *hidden.size().last().expect("hidden [B, N, D]");
        let flat = hidden.reshape([b * n, d]);
        let targets = x0.reshape([-1]);
        let mut total = Tensor::zeros([b], (Kind::Float, zt.device()));
        let m = rows.size()[0];
        let mut start = 0;
        while start < m {
            let len = LOSS_CHUNK_ROWS.min(m - start);
            let idx = rows.narrow(0, start, len);
            let logits = self.head.forward(&flat.index_select(0, &idx)).to_kind(Kind::Float);
            let lp = md4_core::elbo::log_prob_of_target(&logits, &targets.index_select(0, &idx));
            total = total.index_add(0, &idx.floor_divide_scalar(n), &lp);
            start += len;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn glu_hidden_follows_the_rounding_rule() {
        // Spec §7.1 lists these three sizes.
        assert_eq!(glu_hidden(768), 2048);
        assert_eq!(glu_hidden(1024), 2752);
        assert_eq!(glu_hidden(1280), 3424);
        assert_eq!(glu_hidden(64) % MLP_MULTIPLE_OF, 0);
    }

    #[test]
    fn glu_mlp_gates_with_a_sigmoid() {
        let cfg = TransformerConfig {
            vocab_size: 5,
            n_layers: 1,
            n_heads: 1,
            feature_dim: 8,
            mlp_type: MlpType::Glu,
            time_conditioning: TimeConditioning::AdaLnZero,
            embedding: TokenEmbedding::Direct,
            dropout: 0.0,
            embedding_dropout: 0.0,
            depth_scaled_init: true,
            compute_dtype: ComputeDtype::F32,
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), &cfg);
        assert_eq!(mlp.w1.weight.size(), [cfg.mlp_hidden(), 8]);
        let x = Tensor::randn([2, 3, 8], (Kind::Float, Device::Cpu));
        let (w1, w2, w3) = (&mlp.w1.weight, &mlp.w2.weight, &mlp.w3.weight);
        let gate = x.matmul(&w1.tr()).sigmoid();
        let want = (gate * x.matmul(&w3.tr())).matmul(&w2.tr());
        assert!(tch::no_grad(|| mlp.forward(&x, false)).allclose(&want, 1e-5, 1e-6, false));
    }

    #[test]
    fn rope_rotates_interleaved_pairs() {
        let (b, n, h, hd) = (1, 5, 2, 8);
        let x = Tensor::randn([b, n, h, hd], (Kind::Double, Device::Cpu));
        let y = Rope::new(n, hd, Device::Cpu).apply(&x);
        for pos in 0..n {
            for head in 0..h {
                for k in 0..hd / 2 {
                    let angle = pos as f64 * ROPE_THETA.powf(-2.0 * k as f64 / hd as f64);
                    let (a, bb) =
                        (x.double_value(&[0, pos, head, 2 * k]), x.double_value(&[0, pos, head, 2 * k + 1]));
                    let want_re = a * angle.cos() - bb * angle.sin();
                    let want_im = a * angle.sin() + bb * angle.cos();
                    let got_re = y.double_value(&[0, pos, head, 2 * k]);
                    let got_im = y.double_value(&[0, pos, head, 2 * k + 1]);
                    assert!((got_re - want_re).abs() < 1e-6, "re at pos {pos} pair {k}");
                    assert!((got_im - want_im).abs() < 1e-6, "im at pos {pos} pair {k}");
                }
            }
        }
        // Position 0 is not rotated; rotations preserve the norm of every pair.
        assert!(y.get(0).get(0).allclose(&x.get(0).get(0), 1e-12, 1e-12, false));
        let norm = |t: &Tensor| t.square().sum_dim_intlist([-1i64].as_slice(), false, Kind::Double);
        assert!(norm(&y).allclose(&norm(&x), 1e-6, 1e-6, false));
    }

    #[test]
    fn rope_makes_scores_depend_on_relative_position_only() {
        let hd = 16;
        let rope = Rope::new(12, hd, Device::Cpu);
        let q = Tensor::randn([1, 1, 1, hd], (Kind::Double, Device::Cpu));
        let k = Tensor::randn([1, 1, 1, hd], (Kind::Double, Device::Cpu));
        let at =
            |t: &Tensor, pos: i64| rope.apply(&t.expand([1, 12, 1, hd], false).contiguous()).get(0).get(pos);
        let score = |i: i64, j: i64| (at(&q, i) * at(&k, j)).sum(Kind::Double).double_value(&[]);
        assert!((score(3, 1) - score(9, 7)).abs() < 1e-5);
        assert!((score(3, 1) - score(3, 2)).abs() > 1e-3);
    }
}
