//! The DiT middle of the ImageNet 64×64 denoiser (spec §7.3, pitfall 25): 2×2 patchify conv,
//! a learnable position table initialised to 2-D sin-cos, adaLN-Zero DiT blocks (q/k/v with
//! bias, output projection without, tanh-GELU MLP of ratio 4, attention-probability dropout,
//! channel-wise residual dropout on the attention output, element-wise MLP dropout,
//! LayerNorm eps 1e−6 without affine, modulation `Dense(SiLU(c))` zero-initialised), a final
//! adaLN layer with a zero-initialised Dense, and unpatchify.

use crate::layers::{Activation, Attention, ComputeDtype, Conv2d, KernelInit, Linear, layer_norm};
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

/// LayerNorm eps of the DiT blocks (Flax default).
pub const DIT_NORM_EPS: f64 = 1e-6;

/// The DiT's architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DitConfig {
    /// Number of DiT blocks.
    pub depth: i64,
    /// Token width D (768 in the paper).
    pub hidden_size: i64,
    pub n_heads: i64,
    /// Side of a square patch (2 in the paper).
    pub patch_size: i64,
    /// MLP hidden size = ⌊D·mlp_ratio⌋ (4 in the paper).
    pub mlp_ratio: f64,
}

impl DitConfig {
    pub fn mlp_hidden(&self) -> i64 {
        (self.hidden_size as f64 * self.mlp_ratio) as i64
    }

    pub fn validate(&self, height: i64, width: i64) -> Result<()> {
        ensure!(self.depth >= 1, "dit: depth must be at least 1, got {}", self.depth);
        ensure!(self.patch_size >= 1, "dit: patch_size must be positive, got {}", self.patch_size);
        ensure!(
            height % self.patch_size == 0 && width % self.patch_size == 0,
            "dit: patch_size {} must divide the {height}x{width} feature map",
            self.patch_size
        );
        ensure!(
            self.n_heads >= 1 && self.hidden_size % self.n_heads == 0,
            "dit: n_heads {} must divide hidden_size {}",
            self.n_heads,
            self.hidden_size
        );
        ensure!(
            self.hidden_size % 4 == 0,
            "dit: hidden_size must be a multiple of 4 (2-d sin-cos positions), got {}",
            self.hidden_size
        );
        ensure!(self.mlp_hidden() >= 1, "dit: mlp_ratio {} gives an empty mlp", self.mlp_ratio);
        Ok(())
    }

    /// Parameters of a DiT on a `height×width×channels` map conditioned on a `cond_dim` vector.
    pub fn param_count(&self, height: i64, width: i64, channels: i64, cond_dim: i64) -> i64 {
        let (d, p, hm) = (self.hidden_size, self.patch_size, self.mlp_hidden());
        let tokens = (height / p) * (width / p);
        let block = Linear::params_with_bias(cond_dim, 6 * d)
            + 3 * Linear::params_with_bias(d, d)
            + Linear::params_no_bias(d, d)
            + Linear::params_with_bias(d, hm)
            + Linear::params_with_bias(hm, d);
        Conv2d::param_count(channels, d, p)
            + tokens * d
            + self.depth * block
            + Linear::params_with_bias(cond_dim, 2 * d)
            + Linear::params_with_bias(d, p * p * channels)
    }
}

/// 1-D sin-cos table: `dim/2` frequencies `10000^(−k/(dim/2))`, `[sin, cos]`.
fn sincos_1d(pos: &Tensor, dim: i64) -> Tensor {
    let k = Tensor::arange(dim / 2, (Kind::Double, pos.device())) / (dim / 2) as f64;
    let omega = (k * -(10_000f64.ln())).exp();
    let args = pos.unsqueeze(1) * omega.unsqueeze(0);
    Tensor::cat(&[args.sin(), args.cos()], 1)
}

/// The 2-D sin-cos position table of DiT/MAE for a `grid_h × grid_w` grid of patches in
/// row-major order: the first half of the features encodes the column, the second the row.
///
/// # Shapes
/// → `[grid_h·grid_w, dim]` float32.
pub fn sincos_2d(grid_h: i64, grid_w: i64, dim: i64, device: tch::Device) -> Tensor {
    let rows = Tensor::arange(grid_h, (Kind::Double, device)).repeat_interleave_self_int(grid_w, None, None);
    let cols = Tensor::arange(grid_w, (Kind::Double, device)).repeat([grid_h]);
    Tensor::cat(&[sincos_1d(&cols, dim / 2), sincos_1d(&rows, dim / 2)], 1).to_kind(Kind::Float)
}

/// The MLP of a DiT block: fc1 → tanh-GELU → dropout → fc2 → dropout.
#[derive(Debug)]
pub struct DitMlp {
    pub fc1: Linear,
    pub fc2: Linear,
    dropout: f64,
}

/// One adaLN-Zero DiT block.
#[derive(Debug)]
pub struct DitBlock {
    pub modulation: Linear,
    pub attn: Attention,
    pub mlp: DitMlp,
}

impl DitBlock {
    fn new(vs: &nn::Path, cfg: &DitConfig, cond_dim: i64, dropout: f64, cd: ComputeDtype) -> Self {
        let d = cfg.hidden_size;
        let attn_vs = vs / "attn";
        // q, k and v carry biases, the output projection none.
        let proj = |name: &str| {
            let build = if name == "wo" { Linear::no_bias } else { Linear::with_bias };
            build(&(&attn_vs / name), d, d, KernelInit::LECUN, cd)
        };
        let mlp_vs = vs / "mlp";
        Self {
            modulation: Linear::with_bias(&(vs / "modulation"), cond_dim, 6 * d, KernelInit::Zeros, cd),
            attn: Attention::new(proj, cfg.n_heads, dropout, false),
            mlp: DitMlp {
                fc1: Linear::with_bias(&(&mlp_vs / "fc1"), d, cfg.mlp_hidden(), KernelInit::LECUN, cd),
                fc2: Linear::with_bias(&(&mlp_vs / "fc2"), cfg.mlp_hidden(), d, KernelInit::LECUN, cd),
                dropout,
            },
        }
    }

    /// `x: [B, T, D]` f32, `cond_act: [B, F]` = SiLU(c) → `[B, T, D]` f32.
    fn forward(&self, x: &Tensor, cond_act: &Tensor, train: bool) -> Tensor {
        let m = self.modulation.forward(cond_act).to_kind(Kind::Float).unsqueeze(1).chunk(6, -1);
        let a_in = layer_norm(x, DIT_NORM_EPS) * (&m[1] + 1.0) + &m[0];
        let h = x + &m[2] * self.attn.forward(&a_in, None, train);
        let m_in = layer_norm(&h, DIT_NORM_EPS) * (&m[4] + 1.0) + &m[3];
        &h + &m[5] * self.mlp.forward(&m_in, train)
    }
}

impl DitMlp {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = Activation::GeluTanh.apply(&self.fc1.forward(x)).dropout(self.dropout, train);
        self.fc2.forward(&h).dropout(self.dropout, train)
    }
}

/// The DiT: patchify, positions, blocks, final adaLN layer, unpatchify.
#[derive(Debug)]
pub struct Dit {
    pub patch_embed: Conv2d,
    /// Learnable `[T, D]` positions, initialised to 2-D sin-cos.
    pub pos_embed: Tensor,
    pub blocks: Vec<DitBlock>,
    pub final_modulation: Linear,
    pub final_linear: Linear,
    patch: i64,
    channels: i64,
}

impl Dit {
    /// A DiT on a `height×width×channels` feature map (channels in = channels out),
    /// conditioned on a `cond_dim` vector.
    pub fn new(
        vs: &nn::Path,
        cfg: &DitConfig,
        (height, width, channels): (i64, i64, i64),
        cond_dim: i64,
        dropout: f64,
        cd: ComputeDtype,
    ) -> Result<Self> {
        cfg.validate(height, width)?;
        let (d, p) = (cfg.hidden_size, cfg.patch_size);
        let pos = sincos_2d(height / p, width / p, d, vs.device());
        Ok(Self {
            patch_embed: Conv2d::new(&(vs / "patch_embed"), channels, d, p, p, 0, KernelInit::LECUN, cd),
            pos_embed: vs.var_copy("pos_embed", &pos),
            blocks: (0..cfg.depth)
                .map(|i| DitBlock::new(&(vs / "blocks" / i), cfg, cond_dim, dropout, cd))
                .collect(),
            final_modulation: Linear::with_bias(
                &(vs / "final_modulation"),
                cond_dim,
                2 * d,
                KernelInit::Zeros,
                cd,
            ),
            final_linear: Linear::with_bias(
                &(vs / "final_linear"),
                d,
                p * p * channels,
                KernelInit::Zeros,
                cd,
            ),
            patch: p,
            channels,
        })
    }

    /// `x: [B, C, H, W]` f32, `cond: [B, F]` (not yet activated) → `[B, C, H, W]` f32.
    pub fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        let (b, _, height, width) = x.size4().expect("dit expects [B, C, H, W]");
        let (p, c) = (self.patch, self.channels);
        let (gh, gw) = (height / p, width / p);
        let tokens = self.patch_embed.forward(x).flatten(2, 3).transpose(1, 2).to_kind(Kind::Float);
        let mut h = tokens + &self.pos_embed;
        let cond_act = cond.silu();
        for block in &self.blocks {
            h = block.forward(&h, &cond_act, train);
        }
        let m = self.final_modulation.forward(&cond_act).to_kind(Kind::Float).unsqueeze(1).chunk(2, -1);
        let h = layer_norm(&h, DIT_NORM_EPS) * (&m[1] + 1.0) + &m[0];
        let out = self.final_linear.forward(&h).to_kind(Kind::Float); // [B, T, p·p·C]
        out.view([b, gh, gw, p, p, c]).permute([0, 5, 1, 3, 2, 4]).reshape([b, c, height, width])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn sincos_2d_encodes_column_then_row() {
        let (gh, gw, dim) = (3, 4, 8);
        let pos = sincos_2d(gh, gw, dim, Device::Cpu);
        assert_eq!(pos.size(), [gh * gw, dim]);
        // quarter = 2 frequencies per coordinate: omega_k = 10000^(−k/2).
        for row in 0..gh {
            for col in 0..gw {
                let token = row * gw + col;
                for k in 0..2 {
                    let omega = 10_000f64.powf(-(k as f64) / 2.0);
                    let want = [
                        (col as f64 * omega).sin(),
                        (col as f64 * omega).cos(),
                        (row as f64 * omega).sin(),
                        (row as f64 * omega).cos(),
                    ];
                    let got = [k, 2 + k, 4 + k, 6 + k].map(|i| pos.double_value(&[token, i]));
                    for (g, w) in got.iter().zip(want) {
                        assert!((g - w).abs() < 1e-6, "token {token} k {k}: {got:?} vs {want:?}");
                    }
                }
            }
        }
    }
}
