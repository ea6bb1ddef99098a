//! The CIFAR-10 denoiser (spec §7.2): VDM's single-resolution U-Net without Fourier features,
//! fed with per-sub-pixel embeddings and producing 256-way logits per sub-pixel.
//!
//! conv3×3 in → n ResBlocks (every activation, the conv-in output included, kept as a skip) →
//! ResBlock, self-attention, ResBlock → n+1 ResBlocks on `concat(h, skip)` → GroupNorm, SiLU,
//! zero-initialised conv3×3 to C·V channels. A ResBlock adds a zero-initialised projection of
//! the time conditioning after its first convolution. GroupNorm has eps 1e−6.

use crate::frame::{Conditioned, FrameParts, Framed, Skip, UnetFrame, frame_config};
use crate::images::ImageShape;
use crate::layers::{ComputeDtype, Conv2d, GroupNorm, KernelInit, Linear, attention};
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// The attention layer between the two middle ResBlocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MidAttention {
    /// GroupNorm → multi-head self-attention with biases → residual (1 head in the paper).
    SelfAttention { heads: i64 },
    /// No attention: the network is purely convolutional (a local receptive field; used to
    /// test the token layout).
    Disabled,
}

/// The U-Net's architecture (spec §7.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnetConfig {
    pub image: ImageShape,
    /// Values per sub-pixel V (256); the mask id is V.
    pub vocab_size: i64,
    /// Sub-pixel embedding size, U-Net width and time-embedding size (one number, as the
    /// reference's `feature_dim`).
    pub feature_dim: i64,
    /// ResBlocks on the way down (the way up has one more).
    pub n_layers: i64,
    pub mid_attention: MidAttention,
    /// GroupNorm groups (32 in the paper); must divide feature_dim.
    pub norm_groups: i64,
    /// Dropout inside every ResBlock (0.1 in the paper).
    pub dropout: f64,
    pub compute_dtype: ComputeDtype,
}

frame_config!(UnetConfig);

impl UnetConfig {
    pub fn validate(&self) -> Result<()> {
        self.frame().validate("unet", self.norm_groups, self.dropout)?;
        if let MidAttention::SelfAttention { heads } = self.mid_attention {
            ensure!(
                heads >= 1 && self.feature_dim % heads == 0,
                "unet: attention heads {heads} must divide feature_dim {}",
                self.feature_dim
            );
        }
        Ok(())
    }

    /// Number of parameters, from the architecture alone.
    pub fn param_count(&self) -> i64 {
        let f = self.feature_dim;
        let res = |i: i64, o: i64| ResBlock::param_count(i, o, f);
        let attn = match self.mid_attention {
            MidAttention::SelfAttention { .. } => 2 * f + 4 * Linear::params_with_bias(f, f),
            MidAttention::Disabled => 0,
        };
        self.frame().param_count(res, 2 * res(f, f) + attn, 2 * f)
    }
}

/// GroupNorm → SiLU → conv3×3 → + Dense(cond) → GroupNorm → SiLU → dropout → conv3×3 (zero)
/// → + x (or + Dense(x) when the channel count changes).
#[derive(Debug)]
pub struct ResBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    /// Dense(cond → C_out), no bias, zero-initialised.
    pub cond_proj: Linear,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub skip: Skip,
    dropout: f64,
}

impl ResBlock {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, cfg: &UnetConfig) -> Self {
        let (g, cd) = (cfg.norm_groups, cfg.compute_dtype);
        Self {
            norm1: GroupNorm::new(&(vs / "norm1"), c_in, g),
            conv1: Conv2d::same3x3(&(vs / "conv1"), c_in, c_out, KernelInit::LECUN, cd),
            cond_proj: Linear::no_bias(&(vs / "cond_proj"), cfg.feature_dim, c_out, KernelInit::Zeros, cd),
            norm2: GroupNorm::new(&(vs / "norm2"), c_out, g),
            conv2: Conv2d::same3x3(&(vs / "conv2"), c_out, c_out, KernelInit::Zeros, cd),
            skip: Skip::new(vs, c_in, c_out, cd),
            dropout: cfg.dropout,
        }
    }

    fn param_count(c_in: i64, c_out: i64, cond_dim: i64) -> i64 {
        2 * c_in
            + Conv2d::param_count(c_in, c_out, 3)
            + cond_dim * c_out
            + 2 * c_out
            + Conv2d::param_count(c_out, c_out, 3)
            + Skip::param_count(c_in, c_out)
    }

    /// `x: [B, C_in, H, W]` f32, `cond: [B, F]` → `[B, C_out, H, W]` f32.
    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        let b = x.size()[0];
        let h = self.conv1.forward(&self.norm1.forward(x).silu());
        let h = h + self.cond_proj.forward(cond).view([b, -1, 1, 1]);
        let h = self.norm2.forward(&h).silu().dropout(self.dropout, train);
        self.skip.add(x, self.conv2.forward(&h))
    }
}

/// GroupNorm → multi-head self-attention over the H·W positions (q, k, v, out with biases)
/// → residual.
#[derive(Debug)]
pub struct SelfAttention {
    pub norm: GroupNorm,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    heads: i64,
}

impl SelfAttention {
    fn new(vs: &nn::Path, c: i64, heads: i64, cfg: &UnetConfig) -> Self {
        let lin = |name: &str| Linear::with_bias(&(vs / name), c, c, KernelInit::LECUN, cfg.compute_dtype);
        Self {
            norm: GroupNorm::new(&(vs / "norm"), c, cfg.norm_groups),
            wq: lin("wq"),
            wk: lin("wk"),
            wv: lin("wv"),
            wo: lin("wo"),
            heads,
        }
    }

    /// `x: [B, C, H, W]` f32 → same shape f32.
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, h, w) = x.size4().expect("self-attention expects [B, C, H, W]");
        let z = self.norm.forward(x).flatten(2, 3).transpose(1, 2); // [B, HW, C]
        let split = |t: Tensor| t.view([b, h * w, self.heads, c / self.heads]).transpose(1, 2);
        let q = split(self.wq.forward(&z));
        let k = split(self.wk.forward(&z));
        let v = split(self.wv.forward(&z));
        let out = attention(&q, &k, &v, 0.0, false, false).transpose(1, 2).reshape([b, h * w, c]);
        let out = self.wo.forward(&out).transpose(1, 2).reshape([b, c, h, w]);
        x + out
    }
}

/// ResBlock → optional self-attention → ResBlock, the U-Net's middle (variables `mid1`,
/// `mid_attn`, `mid2`).
#[derive(Debug)]
pub struct UnetMiddle {
    pub mid1: ResBlock,
    pub mid_attn: Option<SelfAttention>,
    pub mid2: ResBlock,
}

impl Conditioned for UnetMiddle {
    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        let mut h = self.mid1.forward(x, cond, train);
        if let Some(attn) = &self.mid_attn {
            h = attn.forward(&h);
        }
        self.mid2.forward(&h, cond, train)
    }
}

impl Conditioned for ResBlock {
    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        ResBlock::forward(self, x, cond, train)
    }
}

impl Conditioned for GroupNorm {
    fn forward(&self, x: &Tensor, _cond: &Tensor, _train: bool) -> Tensor {
        GroupNorm::forward(self, x)
    }
}

/// The CIFAR-10 U-Net denoiser.
pub type Unet = Framed<UnetConfig, ResBlock, UnetMiddle, GroupNorm>;

impl Unet {
    pub fn new(vs: &nn::Path, cfg: &UnetConfig) -> Result<Self> {
        cfg.validate()?;
        let f = cfg.feature_dim;
        let parts = FrameParts {
            block: |vs: &nn::Path, c_in, c_out| ResBlock::new(vs, c_in, c_out, cfg),
            middle: |vs: &nn::Path| {
                Ok(UnetMiddle {
                    mid1: ResBlock::new(&(vs / "mid1"), f, f, cfg),
                    mid_attn: match cfg.mid_attention {
                        MidAttention::SelfAttention { heads } => {
                            Some(SelfAttention::new(&(vs / "mid_attn"), f, heads, cfg))
                        }
                        MidAttention::Disabled => None,
                    },
                    mid2: ResBlock::new(&(vs / "mid2"), f, f, cfg),
                })
            },
            norm_out: |vs: &nn::Path| GroupNorm::new(vs, f, cfg.norm_groups),
        };
        Ok(Framed::from_frame(UnetFrame::new(vs, cfg.frame(), parts)?, cfg.clone()))
    }
}
