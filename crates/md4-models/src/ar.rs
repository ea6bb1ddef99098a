//! The autoregressive baseline (spec §8, "AR baselines = same net + causal mask"): the text
//! transformer of §7.1 in its time-independent form (pre-RMSNorm) with a causal attention mask,
//! trained by exact next-token likelihood. Also a judge for generative perplexity.
//!
//! Teacher forcing: the input is `[BOS, x_0, …, x_{N−2}]` with BOS = the mask id V (a row the
//! embedding has anyway), the target is `x`, so all N tokens are scored.

use crate::transformer::{Transformer, TransformerConfig};
use anyhow::Result;
use md4_core::{LossOutput, Objective, Vocab};
use tch::{Kind, Tensor, nn};

/// A causal transformer language model.
#[derive(Debug)]
pub struct ArTransformer {
    pub backbone: Transformer,
    vocab: Vocab,
}

impl ArTransformer {
    /// The AR baseline for `cfg`: its time conditioning is replaced by the time-independent
    /// variant ([`TransformerConfig::ar_variant`]); everything else is kept.
    pub fn new(vs: &nn::Path, cfg: &TransformerConfig) -> Result<Self> {
        let cfg = cfg.ar_variant();
        Ok(Self { backbone: Transformer::with_mask(vs, &cfg, true)?, vocab: cfg.vocab() })
    }

    pub fn vocab(&self) -> Vocab {
        self.vocab
    }

    /// The id fed before the first token (the mask id V).
    pub fn bos_id(&self) -> i64 {
        self.vocab.mask_id()
    }

    /// `[BOS, x_0, …, x_{N−2}]`.
    ///
    /// # Shapes
    /// `x: [B, N]` → `[B, N]`.
    pub fn shift_right(&self, x: &Tensor) -> Tensor {
        let (b, n) = x.size2().expect("ar model expects tokens [B, N]");
        let bos = Tensor::full([b, 1], self.bos_id(), (Kind::Int64, x.device()));
        Tensor::cat(&[bos, x.narrow(1, 0, n - 1)], 1)
    }

    /// Teacher-forced logits: position n predicts `x_n` from `x_0..x_{n−1}`.
    ///
    /// # Shapes
    /// `x: [B, N]` int64 in `0..V` → `[B, N, V]` float32.
    pub fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        self.backbone.forward(&self.shift_right(x), None, train)
    }

    /// Exact negative log-likelihood of every sequence, in nats (differentiable).
    ///
    /// # Shapes
    /// `x: [B, N]` int64 in `0..V` → `[B]` float32.
    pub fn ar_nll(&self, x: &Tensor, train: bool) -> Tensor {
        let logp = self.logits(x, train).log_softmax(-1, Kind::Float);
        let picked = logp.gather(-1, &x.unsqueeze(-1), false).squeeze_dim(-1);
        -picked.sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
    }

    /// Logits of the token that follows `prefix` (evaluation mode).
    ///
    /// # Shapes
    /// `prefix: [B, n]` int64 in `0..V`, n ≥ 0 → `[B, V]` float32.
    pub fn next_token_logits(&self, prefix: &Tensor) -> Tensor {
        let (b, n) = prefix.size2().expect("prefix must be [B, n]");
        let bos = Tensor::full([b, 1], self.bos_id(), (Kind::Int64, prefix.device()));
        let input = Tensor::cat(&[bos, prefix.shallow_clone()], 1);
        self.backbone.forward(&input, None, false).select(1, n)
    }
}

/// Exact-likelihood objective of the AR baseline: `objective = mean_b NLL_b / N` (nats per
/// token) and `nelbo = NLL` (an exact likelihood, not a bound).
#[derive(Debug)]
pub struct ArObjective {
    pub model: ArTransformer,
}

impl Objective for ArObjective {
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput {
        let n = x0.size()[1];
        let nll = self.model.ar_nll(x0, train);
        LossOutput { objective: nll.mean(Kind::Float) / n as f64, nelbo: nll.detach(), metrics: vec![] }
    }
}
