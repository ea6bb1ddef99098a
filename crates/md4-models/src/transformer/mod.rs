//! The text denoiser of MD4 (spec §7.1, pitfalls 6–12): a LLaMA-style bidirectional
//! transformer with adaLN-Zero time conditioning, interleaved RoPE, GLU MLPs, channel-wise
//! residual dropout and untied input (V+1 rows) / output (V columns) embeddings; and its
//! time-independent variant (pre-RMSNorm, no time input), which is also the backbone of the
//! autoregressive baseline ([`crate::ar`]).
//!
//! Variable names mirror the fields (`blocks.3.attn.wq.weight`), so checkpoint keys are
//! readable and stable.
//!
//! Layout: [`config`] (the configuration, its constants and presets), [`blocks`] (RoPE,
//! attention, the GLU MLP and the transformer block) and this file (embedder, head, the model
//! and its [`Denoiser`] implementation).

mod blocks;
mod config;

pub use blocks::{Block, BlockNorm, Mlp};
pub use config::{
    MLP_MULTIPLE_OF, MlpType, NORM_EPS, ROPE_THETA, TimeConditioning, TokenEmbedding, TransformerConfig,
    glu_hidden,
};

use crate::layers::{Activation, Embedding, KernelInit, Linear, RmsNorm, Rope, TimeEmbedding, layer_norm};
use anyhow::Result;
use md4_core::Denoiser;
use tch::{Kind, Tensor, nn};

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
                embed_proj: Linear::with_bias(&(vs / "embed_proj"), dim, d, KernelInit::LECUN, c),
            },
        };
        let blocks = (0..cfg.n_layers).map(|i| Block::new(&(vs / "blocks" / i), cfg, causal)).collect();
        let head_norm = match cfg.time_conditioning {
            TimeConditioning::AdaLnZero => Head::AdaLnZero {
                time_embed: TimeEmbedding::new(&(vs / "time_embed"), cfg.feature_dim, c),
                final_modulation: Linear::with_bias(
                    &(vs / "final_modulation"),
                    cfg.feature_dim,
                    2 * d,
                    KernelInit::Zeros,
                    c,
                ),
            },
            TimeConditioning::TimeIndependent => {
                Head::Rms { final_norm: RmsNorm::new(&(vs / "final_norm"), d, NORM_EPS) }
            }
        };
        let head = Linear::no_bias(&(vs / "head"), d, cfg.vocab_size, KernelInit::Zeros, c);
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
        let rope = Rope::new(n, self.cfg.feature_dim, ROPE_THETA, tokens.device());
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
    use crate::layers::ComputeDtype;
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
        let y = Rope::new(n, hd, ROPE_THETA, Device::Cpu).apply(&x);
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
        let rope = Rope::new(12, hd, ROPE_THETA, Device::Cpu);
        let q = Tensor::randn([1, 1, 1, hd], (Kind::Double, Device::Cpu));
        let k = Tensor::randn([1, 1, 1, hd], (Kind::Double, Device::Cpu));
        let at =
            |t: &Tensor, pos: i64| rope.apply(&t.expand([1, 12, 1, hd], false).contiguous()).get(0).get(pos);
        let score = |i: i64, j: i64| (at(&q, i) * at(&k, j)).sum(Kind::Double).double_value(&[]);
        assert!((score(3, 1) - score(9, 7)).abs() < 1e-5);
        assert!((score(3, 1) - score(3, 2)).abs() > 1e-3);
    }
}
