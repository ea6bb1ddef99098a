//! OpenAI's GPT-2 as a tch module with Hugging Face's parameter names, for scoring samples
//! (generative perplexity, paper Fig. 8 and spec §11.4: GPT-2 Large judges 1024-token samples).
//!
//! The layout is `transformers`' `GPT2LMHeadModel`: token and position tables `wte`, `wpe`;
//! per block `ln_1`, `attn.c_attn` (fused q, k, v), `attn.c_proj`, `ln_2`, `mlp.c_fc`,
//! `mlp.c_proj`; a final `ln_f`; the output projection tied to `wte`. GPT-2's dense layers are
//! "Conv1D": the weight is stored `[in, out]` (y = x·W + b), not `[out, in]`. LayerNorm eps
//! 1e-5, the tanh GELU ("gelu_new"), causal attention scaled by 1/√(head dim).
//! [`Gpt2::load_safetensors`] reads a checkpoint such as the Hub's `model.safetensors` of
//! `openai-community/gpt2-large`, with or without the `transformer.` prefix, ignoring the
//! causal-mask buffers (`attn.bias`, `attn.masked_bias`) and checking every name and shape.

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor, nn};

/// GPT-2's `<|endoftext|>`, used as the beginning of every scored sequence.
pub const GPT2_EOS: i64 = 50256;

/// GPT-2 sizes (the fields of the Hub's `config.json` that matter).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: i64,
    pub n_positions: i64,
    pub n_embd: i64,
    pub n_layer: i64,
    pub n_head: i64,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
}

fn default_eps() -> f64 {
    1e-5
}

impl Gpt2Config {
    /// GPT-2 Large (774M parameters): 36 layers, 20 heads, width 1280.
    pub fn large() -> Self {
        Self {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 1280,
            n_layer: 36,
            n_head: 20,
            layer_norm_epsilon: 1e-5,
        }
    }

    /// A test-sized GPT-2 with the same vocabulary and key layout.
    pub fn tiny() -> Self {
        Self { n_embd: 32, n_layer: 2, n_head: 4, n_positions: 128, ..Self::large() }
    }

    /// Read the Hub's `config.json` (unknown fields are ignored: the file has many).
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing GPT-2 config {}", path.display()))
    }
}

#[derive(Debug)]
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn new(vs: &nn::Path, d_in: i64, d_out: i64) -> Self {
        Self { weight: vs.randn("weight", &[d_in, d_out], 0.0, 0.02), bias: vs.zeros("bias", &[d_out]) }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.weight) + &self.bias
    }
}

#[derive(Debug)]
struct Ln {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Ln {
    fn new(vs: &nn::Path, d: i64, eps: f64) -> Self {
        Self { weight: vs.ones("weight", &[d]), bias: vs.zeros("bias", &[d]), eps }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let d = *x.size().last().expect("a last dimension");
        x.layer_norm([d], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

#[derive(Debug)]
struct Block {
    ln_1: Ln,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: Ln,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
}

/// GPT-2 with its language-model head (tied to the token table).
#[derive(Debug)]
pub struct Gpt2 {
    pub cfg: Gpt2Config,
    pub vs: nn::VarStore,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Ln,
}

impl Gpt2 {
    /// A randomly initialised GPT-2 (N(0, 0.02²) weights, zero biases, unit LayerNorms).
    pub fn new(cfg: &Gpt2Config, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (d, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        let wte = (&root / "wte").randn("weight", &[cfg.vocab_size, d], 0.0, 0.02);
        let wpe = (&root / "wpe").randn("weight", &[cfg.n_positions, d], 0.0, 0.01);
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                let p = &root / "h" / i;
                Block {
                    ln_1: Ln::new(&(&p / "ln_1"), d, eps),
                    c_attn: Conv1D::new(&(&p / "attn" / "c_attn"), d, 3 * d),
                    attn_proj: Conv1D::new(&(&p / "attn" / "c_proj"), d, d),
                    ln_2: Ln::new(&(&p / "ln_2"), d, eps),
                    c_fc: Conv1D::new(&(&p / "mlp" / "c_fc"), d, 4 * d),
                    mlp_proj: Conv1D::new(&(&p / "mlp" / "c_proj"), 4 * d, d),
                }
            })
            .collect();
        let ln_f = Ln::new(&(&root / "ln_f"), d, eps);
        Self { cfg: cfg.clone(), vs, wte, wpe, blocks, ln_f }
    }

    /// A GPT-2 with the weights of a safetensors checkpoint in Hugging Face's layout.
    pub fn load_safetensors(cfg: &Gpt2Config, path: &Path, device: Device) -> Result<Self> {
        let model = Self::new(cfg, device);
        let tensors = Tensor::read_safetensors(path)
            .with_context(|| format!("reading GPT-2 weights {}", path.display()))?;
        let mut by_name: BTreeMap<String, Tensor> = BTreeMap::new();
        for (name, t) in tensors {
            let name = name.strip_prefix("transformer.").unwrap_or(&name).to_string();
            if name.ends_with("attn.bias") && t.dim() == 4 || name.ends_with("attn.masked_bias") {
                continue; // causal-mask buffers, not parameters
            }
            if name == "lm_head.weight" {
                continue; // tied to wte
            }
            by_name.insert(name, t);
        }
        let mut vars = model.vs.variables();
        let mut missing = vec![];
        tch::no_grad(|| -> Result<()> {
            for (name, var) in vars.iter_mut() {
                match by_name.remove(name) {
                    Some(t) => {
                        ensure!(
                            t.size() == var.size(),
                            "{}: {name} has shape {:?}, the model expects {:?}",
                            path.display(),
                            t.size(),
                            var.size()
                        );
                        var.copy_(&t.to_kind(Kind::Float));
                    }
                    None => missing.push(name.clone()),
                }
            }
            Ok(())
        })?;
        if !missing.is_empty() {
            missing.sort();
            bail!(
                "{} lacks {} GPT-2 tensors, e.g. {:?}",
                path.display(),
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
        if !by_name.is_empty() {
            let extra: Vec<&String> = by_name.keys().take(5).collect();
            bail!("{} has {} tensors this GPT-2 does not, e.g. {extra:?}", path.display(), by_name.len());
        }
        Ok(model)
    }

    /// Save the weights in Hugging Face's layout (no `transformer.` prefix).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        self.vs.save(path).with_context(|| format!("writing {}", path.display()))
    }

    /// Next-token logits: position n predicts token n + 1.
    ///
    /// # Shapes
    /// `ids: [B, N]` int64, N ≤ n_positions → `[B, N, V]` float32.
    pub fn logits(&self, ids: &Tensor) -> Tensor {
        let (b, n) = ids.size2().expect("GPT-2 expects ids [B, N]");
        assert!(n <= self.cfg.n_positions, "GPT-2 takes at most {} positions, got {n}", self.cfg.n_positions);
        let (d, h) = (self.cfg.n_embd, self.cfg.n_head);
        let pos = Tensor::arange(n, (Kind::Int64, ids.device()));
        let mut x = Tensor::embedding(&self.wte, ids, -1, false, false)
            + Tensor::embedding(&self.wpe, &pos, -1, false, false);
        for blk in &self.blocks {
            let qkv =
                blk.c_attn.forward(&blk.ln_1.forward(&x)).view([b, n, 3, h, d / h]).permute([2, 0, 3, 1, 4]);
            let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
            let a = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<&Tensor>, 0.0, true, None, false);
            let a = a.transpose(1, 2).contiguous().view([b, n, d]);
            x += blk.attn_proj.forward(&a);
            let m = blk.c_fc.forward(&blk.ln_2.forward(&x)).gelu("tanh");
            x += blk.mlp_proj.forward(&m);
        }
        self.ln_f.forward(&x).matmul(&self.wte.tr())
    }

    /// Negative log-likelihood of every sequence in nats, each scored after a leading
    /// `<|endoftext|>` (50256) so that all N tokens are predicted.
    ///
    /// # Shapes
    /// `ids: [B, N]` → `[B]` float64.
    pub fn nll(&self, ids: &Tensor) -> Tensor {
        let (b, n) = ids.size2().expect("ids [B, N]");
        let bos = Tensor::full([b, 1], GPT2_EOS, (Kind::Int64, ids.device()));
        let input = Tensor::cat(&[&bos, &ids.narrow(1, 0, n - 1)], 1);
        let logp = self.logits(&input).log_softmax(-1, Kind::Double);
        -logp.gather(-1, &ids.unsqueeze(-1), false).squeeze_dim(-1).sum_dim_intlist(
            [1i64].as_slice(),
            false,
            Kind::Double,
        )
    }
}
