//! The ImageNet 64×64 denoiser (spec §7.3): a single-resolution U-Net whose middle is a DiT.
//!
//! Embed(V+1, F) per sub-pixel → conv3×3 to F → n ResBlocks (skips kept) → DiT → n+1 ResBlocks
//! on `concat(h, skip)` → conditional GroupNorm → SiLU → zero-initialised conv3×3 to C·V.
//! ResBlocks use conditional GroupNorm (affine-free GroupNorm, then `·(1+scale)+shift` from a
//! zero-initialised Dense of the time conditioning) and have no additive time projection.

use crate::dit::{Dit, DitConfig};
use crate::frame::{Conditioned, FrameParts, Framed, Skip, UnetFrame, frame_config};
use crate::images::ImageShape;
use crate::layers::{ComputeDtype, Conv2d, KernelInit, Linear, group_norm_plain};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

/// The U-Net + DiT architecture (spec §7.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UvitConfig {
    pub image: ImageShape,
    /// Values per sub-pixel V (256); the mask id is V.
    pub vocab_size: i64,
    /// Sub-pixel embedding size, U-Net width and time-embedding size (256 in the paper).
    pub feature_dim: i64,
    /// ResBlocks on the way down (the way up has one more).
    pub n_layers: i64,
    pub dit: DitConfig,
    /// GroupNorm groups (32 in the paper); must divide feature_dim.
    pub norm_groups: i64,
    /// Dropout of the ResBlocks and the DiT (0.1 in the paper).
    pub dropout: f64,
    pub compute_dtype: ComputeDtype,
}

frame_config!(UvitConfig);

impl UvitConfig {
    pub fn validate(&self) -> Result<()> {
        self.frame().validate("uvit", self.norm_groups, self.dropout)?;
        self.dit.validate(self.image.height, self.image.width)
    }

    /// Number of parameters, from the architecture alone.
    pub fn param_count(&self) -> i64 {
        let f = self.feature_dim;
        let res = |i: i64, o: i64| CondResBlock::param_count(i, o, f);
        let dit = self.dit.param_count(self.image.height, self.image.width, f, f);
        self.frame().param_count(res, dit, CondGroupNorm::param_count(f, f))
    }
}

/// Affine-free GroupNorm modulated by `[scale, shift] = Dense(cond → 2C)` (zero-initialised).
#[derive(Debug)]
pub struct CondGroupNorm {
    pub modulation: Linear,
    groups: i64,
}

impl CondGroupNorm {
    fn new(vs: &nn::Path, channels: i64, cond_dim: i64, groups: i64, cd: ComputeDtype) -> Self {
        Self {
            modulation: Linear::with_bias(
                &(vs / "modulation"),
                cond_dim,
                2 * channels,
                KernelInit::Zeros,
                cd,
            ),
            groups,
        }
    }

    fn param_count(channels: i64, cond_dim: i64) -> i64 {
        Linear::params_with_bias(cond_dim, 2 * channels)
    }

    /// `x: [B, C, H, W]`, `cond: [B, F]` → `[B, C, H, W]` f32.
    fn forward(&self, x: &Tensor, cond: &Tensor) -> Tensor {
        let b = x.size()[0];
        let m = self.modulation.forward(cond).to_kind(Kind::Float).view([b, -1, 1, 1]).chunk(2, 1);
        group_norm_plain(x, self.groups) * (&m[0] + 1.0) + &m[1]
    }
}

/// CondGroupNorm → SiLU → conv3×3 → CondGroupNorm → SiLU → dropout → conv3×3 (zero) → + x
/// (or + Dense(x) when the channel count changes).
#[derive(Debug)]
pub struct CondResBlock {
    pub norm1: CondGroupNorm,
    pub conv1: Conv2d,
    pub norm2: CondGroupNorm,
    pub conv2: Conv2d,
    pub skip: Skip,
    dropout: f64,
}

impl CondResBlock {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, cfg: &UvitConfig) -> Self {
        let (f, g, cd) = (cfg.feature_dim, cfg.norm_groups, cfg.compute_dtype);
        Self {
            norm1: CondGroupNorm::new(&(vs / "norm1"), c_in, f, g, cd),
            conv1: Conv2d::same3x3(&(vs / "conv1"), c_in, c_out, KernelInit::LECUN, cd),
            norm2: CondGroupNorm::new(&(vs / "norm2"), c_out, f, g, cd),
            conv2: Conv2d::same3x3(&(vs / "conv2"), c_out, c_out, KernelInit::Zeros, cd),
            skip: Skip::new(vs, c_in, c_out, cd),
            dropout: cfg.dropout,
        }
    }

    fn param_count(c_in: i64, c_out: i64, cond_dim: i64) -> i64 {
        CondGroupNorm::param_count(c_in, cond_dim)
            + Conv2d::param_count(c_in, c_out, 3)
            + CondGroupNorm::param_count(c_out, cond_dim)
            + Conv2d::param_count(c_out, c_out, 3)
            + Skip::param_count(c_in, c_out)
    }

    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        let h = self.conv1.forward(&self.norm1.forward(x, cond).silu());
        let h = self.norm2.forward(&h, cond).silu().dropout(self.dropout, train);
        self.skip.add(x, self.conv2.forward(&h))
    }
}

impl Conditioned for CondResBlock {
    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        CondResBlock::forward(self, x, cond, train)
    }
}

impl Conditioned for CondGroupNorm {
    fn forward(&self, x: &Tensor, cond: &Tensor, _train: bool) -> Tensor {
        CondGroupNorm::forward(self, x, cond)
    }
}

impl Conditioned for Dit {
    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        Dit::forward(self, x, cond, train)
    }
}

/// The U-Net + DiT denoiser.
pub type Uvit = Framed<UvitConfig, CondResBlock, Dit, CondGroupNorm>;

impl Uvit {
    pub fn new(vs: &nn::Path, cfg: &UvitConfig) -> Result<Self> {
        cfg.validate()?;
        let (f, cd) = (cfg.feature_dim, cfg.compute_dtype);
        let map = (cfg.image.height, cfg.image.width, f);
        let parts = FrameParts {
            block: |vs: &nn::Path, c_in, c_out| CondResBlock::new(vs, c_in, c_out, cfg),
            middle: |vs: &nn::Path| Dit::new(&(vs / "dit"), &cfg.dit, map, f, cfg.dropout, cd),
            norm_out: |vs: &nn::Path| CondGroupNorm::new(vs, f, f, cfg.norm_groups, cd),
        };
        Ok(Framed::from_frame(UnetFrame::new(vs, cfg.frame(), parts)?, cfg.clone()))
    }
}
