//! Images as token sequences (spec §1, §7.2, pitfall 25): every sub-pixel is a 256-way token,
//! a sequence is the image flattened in `[H, W, C]` order (`index = (h·W + w)·C + c`), each
//! sub-pixel is embedded with one shared `Embed(V+1, F)` and the C embeddings of a pixel are
//! concatenated (`[B, H, W, C·F]`); the output convolution's C·V channels are read back as
//! `[B, H, W, C, V]` logits.

use crate::layers::Embedding;
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

/// Height, width and channels of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageShape {
    pub height: i64,
    pub width: i64,
    pub channels: i64,
}

impl ImageShape {
    /// Tokens per image, H·W·C.
    pub fn tokens(&self) -> i64 {
        self.height * self.width * self.channels
    }
    /// CIFAR-10: 32×32×3.
    pub fn cifar10() -> Self {
        Self { height: 32, width: 32, channels: 3 }
    }
    /// Downsampled ImageNet: 64×64×3.
    pub fn imagenet64() -> Self {
        Self { height: 64, width: 64, channels: 3 }
    }
    /// Fashion-MNIST: 28×28×1.
    pub fn fashion_mnist() -> Self {
        Self { height: 28, width: 28, channels: 1 }
    }
    /// The token index of sub-pixel (h, w, c).
    pub fn token_index(&self, h: i64, w: i64, c: i64) -> i64 {
        (h * self.width + w) * self.channels + c
    }
}

/// The per-sub-pixel embedding: one shared table of V+1 rows (mask = V), concatenated over the
/// channels of a pixel. Variable: `weight: [V+1, F]`.
#[derive(Debug)]
pub struct SubpixelEmbedding {
    pub table: Embedding,
    shape: ImageShape,
}

impl SubpixelEmbedding {
    pub fn new(vs: &nn::Path, shape: ImageShape, rows: i64, dim: i64) -> Self {
        Self { table: Embedding::new(vs, rows, dim), shape }
    }

    /// # Shapes
    /// `zt: [B, H·W·C]` int64 → `[B, C·F, H, W]` float32 (NCHW, channel-major within a pixel).
    pub fn forward(&self, zt: &Tensor) -> Tensor {
        let ImageShape { height, width, channels } = self.shape;
        let b = zt.size()[0];
        assert_eq!(
            zt.size(),
            [b, self.shape.tokens()],
            "image denoiser expects zt [B, {}] for a {height}x{width}x{channels} image",
            self.shape.tokens()
        );
        let e = self.table.forward(&zt.view([b, height, width, channels]));
        e.reshape([b, height, width, -1]).permute([0, 3, 1, 2])
    }
}

/// Read C·V output channels back as per-sub-pixel logits.
///
/// # Shapes
/// `out: [B, C·V, H, W]` → `[B, H·W·C, V]` float32.
pub fn subpixel_logits(out: &Tensor, shape: ImageShape, vocab_size: i64) -> Tensor {
    let b = out.size()[0];
    out.permute([0, 2, 3, 1]).reshape([b, shape.tokens(), vocab_size]).to_kind(tch::Kind::Float)
}
