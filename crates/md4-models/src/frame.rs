//! The single-resolution U-Net frame both image denoisers share (spec §7.2, §7.3): per-sub-pixel
//! embedding → conv3×3 to F → n blocks (every activation, the conv-in output included, kept as a
//! skip) → a middle → n+1 blocks on `concat(h, skip)` → output norm, SiLU → zero-initialised
//! conv3×3 to C·V channels → sub-pixel logits. The CIFAR-10 U-Net ([`crate::unet`]) fills it with
//! time-projected ResBlocks and a ResBlock–attention–ResBlock middle; the ImageNet64 network
//! ([`crate::uvit`]) with conditional-GroupNorm ResBlocks and a DiT middle.
//!
//! Variables are created in the order of the fields, under the same names as before the frame
//! existed (`embed`, `time_embed`, `conv_in`, `down.i`, the middle's own names, `up.i`,
//! `norm_out`, `conv_out`), so initialisation and checkpoint keys are unchanged.

use crate::images::{ImageShape, SubpixelEmbedding, subpixel_logits};
use crate::layers::{ComputeDtype, Conv2d, KernelInit, Linear, TimeEmbedding};
use anyhow::{Result, ensure};
use md4_core::Denoiser;
use tch::{Kind, Tensor, nn};

/// A layer of the frame that sees the time conditioning: the blocks, the middle and the output
/// norm (a plain GroupNorm ignores it).
pub trait Conditioned {
    /// `x: [B, C, H, W]` f32, `cond: [B, F]` → `[B, C', H, W]` f32.
    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor;
}

/// The sizes of a frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameSpec {
    pub image: ImageShape,
    /// Values per sub-pixel V; the embedding has V + 1 rows.
    pub vocab_size: i64,
    /// Embedding size, width and time-embedding size F.
    pub feature_dim: i64,
    /// Blocks on the way down (the way up has one more).
    pub n_layers: i64,
    pub compute: ComputeDtype,
}

impl FrameSpec {
    /// Parameters of the frame holding blocks of `block(c_in, c_out)` parameters, a middle of
    /// `middle` and an output norm of `norm_out`: the embedding, time embedding, both convs and
    /// the blocks on the way down (F → F) and up (2F → F).
    pub fn param_count(&self, block: impl Fn(i64, i64) -> i64, middle: i64, norm_out: i64) -> i64 {
        let (f, v, c) = (self.feature_dim, self.vocab_size, self.image.channels);
        (v + 1) * f
            + TimeEmbedding::param_count(f)
            + Conv2d::param_count(c * f, f, 3)
            + self.n_layers * block(f, f)
            + middle
            + (self.n_layers + 1) * block(2 * f, f)
            + norm_out
            + Conv2d::param_count(f, c * v, 3)
    }

    /// The checks both image networks share; `name` prefixes the messages, `norm_groups` must
    /// divide the width and `dropout` lie in [0, 1).
    pub fn validate(&self, name: &str, norm_groups: i64, dropout: f64) -> Result<()> {
        let ImageShape { height, width, channels } = self.image;
        let (v, f) = (self.vocab_size, self.feature_dim);
        ensure!(height >= 1 && width >= 1 && channels >= 1, "{name}: image dimensions must be positive");
        ensure!(v >= 2, "{name}: vocab_size must be at least 2, got {v}");
        ensure!(f > 2, "{name}: feature_dim must exceed 2, got {f}");
        ensure!(self.n_layers >= 0, "{name}: n_layers must be non-negative, got {}", self.n_layers);
        ensure!(
            norm_groups >= 1 && f % norm_groups == 0,
            "{name}: norm_groups {norm_groups} must divide feature_dim {f}"
        );
        ensure!((0.0..1.0).contains(&dropout), "{name}: dropout must lie in [0, 1), got {dropout}");
        Ok(())
    }
}

/// `vocab()` and `frame()` of an image network's config, read from its frame fields (`image`,
/// `vocab_size`, `feature_dim`, `n_layers`, `compute_dtype`).
macro_rules! frame_config {
    ($cfg:ty) => {
        impl $cfg {
            pub fn vocab(&self) -> md4_core::Vocab {
                md4_core::Vocab::new(self.vocab_size)
            }

            /// The sizes of the frame the network fills.
            pub fn frame(&self) -> $crate::frame::FrameSpec {
                $crate::frame::FrameSpec {
                    image: self.image,
                    vocab_size: self.vocab_size,
                    feature_dim: self.feature_dim,
                    n_layers: self.n_layers,
                    compute: self.compute_dtype,
                }
            }
        }
    };
}
pub(crate) use frame_config;

/// The residual path of a ResBlock: `x + h`, or `Dense(x) + h` (over channels, with bias)
/// when the channel count changes.
#[derive(Debug)]
pub struct Skip(pub Option<Linear>);

impl Skip {
    /// The dense layer `vs/skip` when `c_in ≠ c_out`.
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, cd: ComputeDtype) -> Self {
        Self((c_in != c_out).then(|| Linear::with_bias(&(vs / "skip"), c_in, c_out, KernelInit::LECUN, cd)))
    }

    pub fn param_count(c_in: i64, c_out: i64) -> i64 {
        if c_in != c_out { Linear::params_with_bias(c_in, c_out) } else { 0 }
    }

    /// `x: [B, C_in, H, W]`, `h: [B, C_out, H, W]` → `[B, C_out, H, W]`.
    pub fn add(&self, x: &Tensor, h: Tensor) -> Tensor {
        match &self.0 {
            Some(dense) => channel_dense(dense, x) + h,
            None => x + h,
        }
    }
}

/// A dense layer over the channel axis of an NCHW tensor.
pub(crate) fn channel_dense(dense: &Linear, x: &Tensor) -> Tensor {
    dense.forward(&x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
}

/// An image denoiser: the frame filled with one network's parts, and the config it was built from.
#[derive(Debug)]
pub struct Framed<C, B, M, N> {
    pub frame: UnetFrame<B, M, N>,
    cfg: C,
}

impl<C, B: Conditioned, M: Conditioned, N: Conditioned> Framed<C, B, M, N> {
    pub(crate) fn from_frame(frame: UnetFrame<B, M, N>, cfg: C) -> Self {
        Self { frame, cfg }
    }

    pub fn config(&self) -> &C {
        &self.cfg
    }

    /// # Shapes
    /// `zt: [B, H·W·C]` int64 in `0..=V`, `t: [B]` → `[B, H·W·C, V]` float32.
    pub fn forward(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor {
        self.frame.forward(zt, t, train)
    }
}

impl<C, B: Conditioned, M: Conditioned, N: Conditioned> Denoiser for Framed<C, B, M, N> {
    fn logits(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor {
        self.forward(zt, t, train)
    }
}

/// The frame around a network's blocks `B`, middle `M` and output norm `N`.
#[derive(Debug)]
pub struct UnetFrame<B, M, N> {
    pub embed: SubpixelEmbedding,
    pub time_embed: TimeEmbedding,
    pub conv_in: Conv2d,
    pub down: Vec<B>,
    pub middle: M,
    pub up: Vec<B>,
    pub norm_out: N,
    pub conv_out: Conv2d,
    spec: FrameSpec,
}

/// How a network builds its parts: a block from `(vs, c_in, c_out)`, the middle and the output
/// norm from the frame's root path.
pub struct FrameParts<FB, FM, FN> {
    pub block: FB,
    pub middle: FM,
    pub norm_out: FN,
}

impl<B: Conditioned, M: Conditioned, N: Conditioned> UnetFrame<B, M, N> {
    pub fn new<FB, FM, FN>(vs: &nn::Path, spec: FrameSpec, parts: FrameParts<FB, FM, FN>) -> Result<Self>
    where
        FB: Fn(&nn::Path, i64, i64) -> B,
        FM: FnOnce(&nn::Path) -> Result<M>,
        FN: FnOnce(&nn::Path) -> N,
    {
        let (f, c, cd) = (spec.feature_dim, spec.image.channels, spec.compute);
        let rows = md4_core::Vocab::new(spec.vocab_size).input_rows();
        Ok(Self {
            embed: SubpixelEmbedding::new(&(vs / "embed"), spec.image, rows, f),
            time_embed: TimeEmbedding::new(&(vs / "time_embed"), f, cd),
            conv_in: Conv2d::same3x3(&(vs / "conv_in"), c * f, f, KernelInit::LECUN, cd),
            down: (0..spec.n_layers).map(|i| (parts.block)(&(vs / "down" / i), f, f)).collect(),
            middle: (parts.middle)(vs)?,
            up: (0..=spec.n_layers).map(|i| (parts.block)(&(vs / "up" / i), 2 * f, f)).collect(),
            norm_out: (parts.norm_out)(&(vs / "norm_out")),
            conv_out: Conv2d::same3x3(&(vs / "conv_out"), f, c * spec.vocab_size, KernelInit::Zeros, cd),
            spec,
        })
    }

    /// # Shapes
    /// `zt: [B, H·W·C]` int64 in `0..=V`, `t: [B]` → `[B, H·W·C, V]` float32.
    pub fn forward(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor {
        let cond = self.time_embed.forward(t);
        let mut h = self.conv_in.forward(&self.embed.forward(zt)).to_kind(Kind::Float);
        let mut skips = vec![h.shallow_clone()];
        for block in &self.down {
            h = block.forward(&h, &cond, train);
            skips.push(h.shallow_clone());
        }
        h = self.middle.forward(&h, &cond, train);
        for block in &self.up {
            let skip = skips.pop().expect("one skip per up block");
            h = block.forward(&Tensor::cat(&[h, skip], 1), &cond, train);
        }
        let out = self.conv_out.forward(&self.norm_out.forward(&h, &cond, train).silu());
        subpixel_logits(&out, self.spec.image, self.spec.vocab_size)
    }
}
