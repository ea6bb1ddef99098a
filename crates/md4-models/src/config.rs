//! One configuration for any of the networks of spec §7, tagged by `arch`, with the named
//! presets of the paper's models (§7–§8) and CPU-sized ones, a builder and a description for
//! `md4 info`.
//!
//! ```yaml
//! arch: transformer
//! vocab_size: 27
//! n_layers: 12
//! ...
//! ```

use crate::ar::ArTransformer;
use crate::dit::DitConfig;
use crate::frame::FrameSpec;
use crate::images::ImageShape;
use crate::layers::ComputeDtype;
use crate::transformer::{MlpType, TimeConditioning, TokenEmbedding, Transformer, TransformerConfig};
use crate::unet::{MidAttention, Unet, UnetConfig};
use crate::uvit::{Uvit, UvitConfig};
use anyhow::{Context, Result, bail};
use md4_core::{Denoiser, Vocab};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// A network architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum ModelConfig {
    /// The text transformer of §7.1.
    Transformer(TransformerConfig),
    /// The CIFAR-10 U-Net of §7.2.
    Unet(UnetConfig),
    /// The ImageNet64 U-Net + DiT of §7.3.
    Uvit(UvitConfig),
}

/// A built network; every variant is a [`Denoiser`].
// One value per run: the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Network {
    Transformer(Transformer),
    Unet(Unet),
    Uvit(Uvit),
}

impl Network {
    /// The built network as the one trait the diffusion code sees.
    pub fn denoiser(&self) -> &dyn Denoiser {
        match self {
            Self::Transformer(m) => m,
            Self::Unet(m) => m,
            Self::Uvit(m) => m,
        }
    }
}

/// Every method forwards to the variant, so a network's own chunked
/// `masked_log_likelihood` is kept.
impl Denoiser for Network {
    fn logits(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor {
        self.denoiser().logits(zt, t, train)
    }
    fn masked_log_likelihood(
        &self,
        zt: &Tensor,
        t: &Tensor,
        x0: &Tensor,
        vocab: md4_core::Vocab,
        train: bool,
    ) -> Tensor {
        self.denoiser().masked_log_likelihood(zt, t, x0, vocab, train)
    }
    fn time_dependent(&self) -> bool {
        self.denoiser().time_dependent()
    }
}

impl ModelConfig {
    /// The token alphabet the network reads and predicts.
    pub fn vocab(&self) -> Vocab {
        match self {
            Self::Transformer(c) => c.vocab(),
            Self::Unet(c) => c.vocab(),
            Self::Uvit(c) => c.vocab(),
        }
    }

    /// The fixed sequence length of image networks (H·W·C); `None` for text, which accepts
    /// any length.
    pub fn fixed_seq_len(&self) -> Option<i64> {
        match self {
            Self::Transformer(_) => None,
            Self::Unet(c) => Some(c.image.tokens()),
            Self::Uvit(c) => Some(c.image.tokens()),
        }
    }

    pub fn compute_dtype(&self) -> ComputeDtype {
        match self {
            Self::Transformer(c) => c.compute_dtype,
            Self::Unet(c) => c.compute_dtype,
            Self::Uvit(c) => c.compute_dtype,
        }
    }

    /// The same architecture with another compute dtype.
    pub fn with_compute_dtype(&self, dtype: ComputeDtype) -> Self {
        let mut cfg = self.clone();
        match &mut cfg {
            Self::Transformer(c) => c.compute_dtype = dtype,
            Self::Unet(c) => c.compute_dtype = dtype,
            Self::Uvit(c) => c.compute_dtype = dtype,
        }
        cfg
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Transformer(c) => c.validate(),
            Self::Unet(c) => c.validate(),
            Self::Uvit(c) => c.validate(),
        }
    }

    /// Number of parameters, computed from the configuration (no tensors are allocated).
    pub fn param_count(&self) -> i64 {
        match self {
            Self::Transformer(c) => c.param_count(),
            Self::Unet(c) => c.param_count(),
            Self::Uvit(c) => c.param_count(),
        }
    }

    /// Create the network's variables under `vs` (names mirror the struct fields).
    pub fn build_network(&self, vs: &nn::Path) -> Result<Network> {
        let net = match self {
            Self::Transformer(c) => Network::Transformer(Transformer::new(vs, c)?),
            Self::Unet(c) => Network::Unet(Unet::new(vs, c)?),
            Self::Uvit(c) => Network::Uvit(Uvit::new(vs, c)?),
        };
        Ok(net)
    }

    /// [`ModelConfig::build_network`] as a trait object.
    pub fn build(&self, vs: &nn::Path) -> Result<Box<dyn Denoiser>> {
        Ok(Box::new(self.build_network(vs)?))
    }

    /// The autoregressive baseline of a transformer configuration (same backbone, causal
    /// mask, no time input); an error for image networks.
    pub fn build_ar(&self, vs: &nn::Path) -> Result<ArTransformer> {
        match self {
            Self::Transformer(c) => ArTransformer::new(vs, c),
            Self::Unet(_) | Self::Uvit(_) => bail!("the autoregressive baseline needs arch: transformer"),
        }
    }

    /// Parse a YAML document (unknown keys are errors naming the key).
    pub fn from_yaml(text: &str) -> Result<Self> {
        let cfg: Self = serde_yaml::from_str(text).context("parsing the model config")?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The paper's models among the [`preset`]s.
pub const PAPER_PRESETS: [&str; 6] =
    ["md4-s-owt", "md4-m-owt", "text8", "cifar10", "imagenet64", "imagenet64-sample"];

/// The CPU-sized [`preset`]s.
pub const CPU_PRESETS: [&str; 8] = [
    "tiny-text8",
    "small-text8",
    "tiny-gpt2",
    "small-gpt2",
    "tiny-unet-fmnist",
    "small-unet-fmnist",
    "tiny-uvit-fmnist",
    "small-ar-fmnist",
];

/// Names accepted by [`preset`]: the paper's models, then CPU sizes.
pub fn preset_names() -> Vec<&'static str> {
    PAPER_PRESETS.iter().chain(&CPU_PRESETS).copied().collect()
}

/// A named architecture; an error lists the valid names.
pub fn preset(name: &str) -> Result<ModelConfig> {
    let cfg = match name {
        "md4-s-owt" => ModelConfig::Transformer(TransformerConfig::md4_small_owt()),
        "md4-m-owt" => ModelConfig::Transformer(TransformerConfig::md4_medium_owt()),
        "text8" => ModelConfig::Transformer(TransformerConfig::text8()),
        "cifar10" => ModelConfig::Unet(UnetConfig::cifar10()),
        "imagenet64" => ModelConfig::Uvit(UvitConfig::imagenet64()),
        "imagenet64-sample" => ModelConfig::Uvit(UvitConfig::imagenet64_sample()),
        "tiny-text8" => ModelConfig::Transformer(TransformerConfig::tiny_text8()),
        "small-text8" => ModelConfig::Transformer(TransformerConfig::small_text8()),
        "tiny-gpt2" => ModelConfig::Transformer(TransformerConfig::tiny_gpt2()),
        "small-gpt2" => ModelConfig::Transformer(TransformerConfig::small_gpt2()),
        "tiny-unet-fmnist" => ModelConfig::Unet(UnetConfig::tiny_fmnist()),
        "small-unet-fmnist" => ModelConfig::Unet(UnetConfig::small_fmnist()),
        "tiny-uvit-fmnist" => ModelConfig::Uvit(UvitConfig::tiny_fmnist()),
        "small-ar-fmnist" => ModelConfig::Transformer(TransformerConfig::small_ar_fmnist()),
        _ => bail!("unknown model preset '{name}' (expected one of: {})", preset_names().join(", ")),
    };
    Ok(cfg)
}

impl TransformerConfig {
    /// The released OpenWebText configuration of one size (GLU, adaLN-Zero, direct
    /// embedding, dropout 0.02 on attention, residuals and embeddings).
    fn owt(n_layers: i64, n_heads: i64, dropout: f64) -> Self {
        Self {
            vocab_size: Vocab::gpt2().size(),
            n_layers,
            n_heads,
            feature_dim: 64,
            mlp_type: MlpType::Glu,
            time_conditioning: TimeConditioning::AdaLnZero,
            embedding: TokenEmbedding::Direct,
            dropout,
            embedding_dropout: dropout,
            depth_scaled_init: true,
            compute_dtype: ComputeDtype::F32,
        }
    }

    /// MD4-S on OpenWebText: 12 layers, 12 heads, width 768 (≈165.9M parameters).
    pub fn md4_small_owt() -> Self {
        Self::owt(12, 12, 0.02)
    }

    /// MD4-M on OpenWebText: 24 layers, 16 heads, width 1024 (≈416.2M parameters). Dropout 0
    /// follows the released config's comment (spec §8).
    pub fn md4_medium_owt() -> Self {
        Self::owt(24, 16, 0.0)
    }

    /// The text8 model: 12 layers, 12 heads, width 768, 64-dim outside embedding, dropout
    /// 0.05, no embedding dropout (≈88.7M parameters).
    pub fn text8() -> Self {
        Self {
            vocab_size: Vocab::text8().size(),
            embedding: TokenEmbedding::Outside { dim: 64 },
            dropout: 0.05,
            embedding_dropout: 0.0,
            ..Self::owt(12, 12, 0.05)
        }
    }

    /// Test-sized text8 model: 2 layers, width 64.
    pub fn tiny_text8() -> Self {
        Self {
            n_layers: 2,
            n_heads: 2,
            feature_dim: 32,
            embedding: TokenEmbedding::Outside { dim: 32 },
            ..Self::text8()
        }
    }

    /// CPU-sized text8 model: 4 layers, 4 heads, width 256 (about 3.7M parameters; several
    /// thousand tokens/s of training on 2 cores). Dropout is off: minutes-long CPU runs do not
    /// overfit, and attention dropout forces libtorch's unfused attention on CPU, which makes
    /// attention about 2.7 times slower.
    pub fn small_text8() -> Self {
        Self { n_layers: 4, n_heads: 4, dropout: 0.0, ..Self::text8() }
    }

    /// Test-sized GPT-2-vocabulary model: 2 layers, width 64 (dominated by the embeddings).
    pub fn tiny_gpt2() -> Self {
        Self { n_layers: 2, n_heads: 2, feature_dim: 32, ..Self::md4_small_owt() }
    }

    /// CPU-sized GPT-2-vocabulary model: 4 layers, 4 heads, width 256 (the 50,257-wide
    /// embeddings dominate). Dropout off, as in [`TransformerConfig::small_text8`].
    pub fn small_gpt2() -> Self {
        Self::owt(4, 4, 0.0)
    }

    /// The transformer behind the autoregressive baseline over Fashion-MNIST sub-pixels
    /// (Table 3 at small scale): V = 256 pixel values, 6 layers, 2 heads of 64 (width 128),
    /// a 64-dim outside embedding, no dropout. Its AR variant has 1.26M parameters, comparable
    /// with `small-unet-fmnist` (1.34M).
    pub fn small_ar_fmnist() -> Self {
        Self { vocab_size: Vocab::pixels().size(), n_layers: 6, n_heads: 2, ..Self::small_text8() }
    }
}

impl UnetConfig {
    /// The CIFAR-10 U-Net: width 128, 32 + 1 + 33 ResBlocks, one-head middle attention,
    /// dropout 0.1 (≈28.4M parameters).
    pub fn cifar10() -> Self {
        Self {
            image: ImageShape::cifar10(),
            vocab_size: Vocab::pixels().size(),
            feature_dim: 128,
            n_layers: 32,
            mid_attention: MidAttention::SelfAttention { heads: 1 },
            norm_groups: 32,
            dropout: 0.1,
            compute_dtype: ComputeDtype::F32,
        }
    }

    /// Test-sized Fashion-MNIST U-Net: width 32, 2 ResBlocks down, 8 GroupNorm groups.
    pub fn tiny_fmnist() -> Self {
        Self {
            image: ImageShape::fashion_mnist(),
            feature_dim: 32,
            n_layers: 2,
            norm_groups: 8,
            ..Self::cifar10()
        }
    }

    /// CPU-sized Fashion-MNIST U-Net: width 64, 4 ResBlocks down, 16 GroupNorm groups.
    pub fn small_fmnist() -> Self {
        Self {
            image: ImageShape::fashion_mnist(),
            feature_dim: 64,
            n_layers: 4,
            norm_groups: 16,
            ..Self::cifar10()
        }
    }
}

impl UvitConfig {
    /// The ImageNet64 likelihood model (3.40 BPD): width 256, 24 + 25 ResBlocks around a
    /// 12-layer DiT of width 768 with 12 heads (≈198.3M parameters).
    pub fn imagenet64() -> Self {
        Self {
            image: ImageShape::imagenet64(),
            vocab_size: Vocab::pixels().size(),
            feature_dim: 256,
            n_layers: 24,
            dit: DitConfig { depth: 12, hidden_size: 768, n_heads: 12, patch_size: 2, mlp_ratio: 4.0 },
            norm_groups: 32,
            dropout: 0.1,
            compute_dtype: ComputeDtype::F32,
        }
    }

    /// The cheaper sample-visualisation model: 8 + 9 ResBlocks around a 20-layer DiT (the
    /// default of the released config).
    pub fn imagenet64_sample() -> Self {
        let base = Self::imagenet64();
        Self { n_layers: 8, dit: DitConfig { depth: 20, ..base.dit }, ..base }
    }

    /// Test-sized Fashion-MNIST U-Net + DiT: width 32, 1 ResBlock down, a 2-layer DiT of
    /// width 64.
    pub fn tiny_fmnist() -> Self {
        Self {
            image: ImageShape::fashion_mnist(),
            feature_dim: 32,
            n_layers: 1,
            dit: DitConfig { depth: 2, hidden_size: 64, n_heads: 2, patch_size: 2, mlp_ratio: 4.0 },
            norm_groups: 8,
            ..Self::imagenet64()
        }
    }
}

fn millions(n: i64) -> String {
    format!("{:.1}M", n as f64 / 1e6)
}

/// A human-readable summary of an architecture and its parameter count (for `md4 info`).
pub fn describe(cfg: &ModelConfig) -> String {
    let params = cfg.param_count();
    match cfg {
        ModelConfig::Transformer(c) => {
            let embedding = match c.embedding {
                TokenEmbedding::Direct => format!("({} x {}) table", c.vocab_size + 1, c.width()),
                TokenEmbedding::Outside { dim } => {
                    format!("({} x {dim}) table + dense {dim}->{}", c.vocab_size + 1, c.width())
                }
            };
            let conditioning = match c.time_conditioning {
                TimeConditioning::AdaLnZero => "adaLN-Zero on 1000*t".to_string(),
                TimeConditioning::TimeIndependent => "none (pre-RMSNorm)".to_string(),
            };
            let head_params = c.width() * c.vocab_size;
            let input_params = match c.embedding {
                TokenEmbedding::Direct => (c.vocab_size + 1) * c.width(),
                TokenEmbedding::Outside { dim } => (c.vocab_size + 1) * dim + dim * c.width() + c.width(),
            };
            format!(
                "arch: transformer (bidirectional, spec 7.1)\n\
                 vocabulary: {v} tokens + mask (id {v})\n\
                 layers: {l}, heads: {h}, head dim: {fd}, width: {d}\n\
                 mlp: {mlp:?}, hidden {hid}\n\
                 time conditioning: {conditioning}\n\
                 input embedding: {embedding}\n\
                 dropout: {p} (attention, channel-wise residual), embedding dropout: {pe}\n\
                 compute dtype: {cd:?}\n\
                 parameters: {total} ({params}; non-embedding {nonemb})",
                v = c.vocab_size,
                l = c.n_layers,
                h = c.n_heads,
                fd = c.feature_dim,
                d = c.width(),
                mlp = c.mlp_type,
                hid = c.mlp_hidden(),
                p = c.dropout,
                pe = c.embedding_dropout,
                cd = c.compute_dtype,
                total = millions(params),
                nonemb = millions(params - head_params - input_params),
            )
        }
        ModelConfig::Unet(c) => describe_image_net(
            "unet (spec 7.2)",
            &c.frame(),
            &format!(" + 2 middle + {} up, middle attention: {:?}", c.n_layers + 1, c.mid_attention),
            (c.norm_groups, c.dropout),
            params,
        ),
        ModelConfig::Uvit(c) => describe_image_net(
            "uvit (U-Net + DiT, spec 7.3)",
            &c.frame(),
            &format!(
                " + {up} up\ndit: {depth} layers, width {dd}, {heads} heads, patch {p}x{p}, mlp ratio {r}",
                up = c.n_layers + 1,
                depth = c.dit.depth,
                dd = c.dit.hidden_size,
                heads = c.dit.n_heads,
                p = c.dit.patch_size,
                r = c.dit.mlp_ratio,
            ),
            (c.norm_groups, c.dropout),
            params,
        ),
    }
}

/// The description of an image network: its frame, what sits after the down blocks (`middle`),
/// its `(group-norm groups, dropout)` and parameter count.
fn describe_image_net(
    arch: &str,
    f: &FrameSpec,
    middle: &str,
    (groups, dropout): (i64, f64),
    params: i64,
) -> String {
    let ImageShape { height, width, channels } = f.image;
    format!(
        "arch: {arch}\n\
         image: {height}x{width}x{channels} ({n} tokens of {v} values + mask)\n\
         width: {w}, resblocks: {down} down{middle}\n\
         group norm: {groups} groups, dropout: {dropout}, compute dtype: {cd:?}\n\
         parameters: {total} ({params})",
        n = f.image.tokens(),
        v = f.vocab_size,
        w = f.feature_dim,
        down = f.n_layers,
        cd = f.compute,
        total = millions(params),
    )
}
