//! Building blocks shared by every network (spec §7): Flax-default initialisers, dense and
//! convolution layers with an explicit bf16 compute option (pitfall 24), the affine-free
//! LayerNorm of adaLN-Zero, RMSNorm, GroupNorm, channel-wise dropout (pitfall 10) and the
//! sinusoidal time embedding of `1000·t` followed by its two-layer MLP (pitfall 6).
//!
//! Mixed precision: `tch::autocast` does nothing on CPU, so a layer casts its input and weights
//! to bf16 itself when asked to; everything else (residual stream, norms, logits) stays f32.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

/// The dtype of matrix multiplications and convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    /// Everything in float32, as the reference code.
    #[default]
    F32,
    /// Inputs and weights of every matmul/convolution cast to bfloat16; residual stream, norms
    /// and logits stay float32.
    Bf16,
}

impl ComputeDtype {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }

    /// The tensor kind of this dtype.
    pub fn kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::Bf16 => Kind::BFloat16,
        }
    }

    /// Cast `x` to the compute dtype (a no-op for f32 inputs in f32 mode; libtorch returns
    /// inputs that are already bf16 as they are).
    pub fn cast(self, x: &Tensor) -> Tensor {
        match self {
            Self::F32 => x.shallow_clone(),
            Self::Bf16 => x.to_kind(Kind::BFloat16),
        }
    }
}

/// Ratio between the standard deviation of a unit normal truncated to [−2, 2] and 1
/// (Flax's `variance_scaling(..., "truncated_normal")` divides by it so that the variance
/// is exactly `scale / fan_in`).
const TRUNCATED_NORMAL_STD: f64 = 0.879_625_661_034_239_8;

/// Φ(−2), the mass of a unit normal below −2.
const NORMAL_CDF_MINUS_2: f64 = 0.022_750_131_948_179_195;

/// A fan-in truncated normal with variance `scale / fan_in` (Flax `variance_scaling(scale,
/// "fan_in", "truncated_normal")`; `scale = 1` is LeCun-normal, the default Dense/Conv init).
/// Samples lie in `±2·sqrt(scale/fan_in)/0.8796`.
pub fn fan_in_truncated_normal(dims: &[i64], fan_in: i64, scale: f64, device: Device) -> Tensor {
    assert!(fan_in > 0, "fan_in must be positive, got {fan_in}");
    let std = (scale / fan_in as f64).sqrt() / TRUNCATED_NORMAL_STD;
    let (lo, hi) = (NORMAL_CDF_MINUS_2, 1.0 - NORMAL_CDF_MINUS_2);
    let u = Tensor::rand(dims, (Kind::Float, device)) * (hi - lo) + lo;
    // Inverse CDF of the unit normal restricted to [Φ(−2), Φ(2)].
    let z = (u * 2.0 - 1.0).erfinv() * std::f64::consts::SQRT_2;
    z.clamp(-2.0, 2.0) * std
}

/// How a dense or convolution kernel starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelInit {
    /// Fan-in truncated normal with variance `scale / fan_in` (1 = LeCun-normal).
    FanIn { scale: f64 },
    /// All zeros (adaLN-Zero modulation, output layers).
    Zeros,
}

impl KernelInit {
    /// LeCun-normal, Flax's default for Dense and Conv.
    pub const LECUN: Self = Self::FanIn { scale: 1.0 };

    fn make(self, vs: &nn::Path, name: &str, dims: &[i64], fan_in: i64) -> Tensor {
        match self {
            Self::Zeros => vs.zeros(name, dims),
            Self::FanIn { scale } => {
                let init = fan_in_truncated_normal(dims, fan_in, scale, vs.device());
                vs.var_copy(name, &init)
            }
        }
    }
}

/// A dense layer `y = x·Wᵀ + b` with `weight: [out, in]` (PyTorch layout) and zero-initialised
/// bias.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    compute: ComputeDtype,
}

impl Linear {
    /// Variables `weight` `[out, in]` and `bias` `[out]` (zeros) under `vs`.
    pub fn with_bias(vs: &nn::Path, in_dim: i64, out_dim: i64, init: KernelInit, c: ComputeDtype) -> Self {
        let layer = Self::no_bias(vs, in_dim, out_dim, init, c);
        Self { bias: Some(vs.zeros("bias", &[out_dim])), ..layer }
    }

    /// The variable `weight` `[out, in]` under `vs`, no bias.
    pub fn no_bias(vs: &nn::Path, in_dim: i64, out_dim: i64, init: KernelInit, c: ComputeDtype) -> Self {
        Self { weight: init.make(vs, "weight", &[out_dim, in_dim], in_dim), bias: None, compute: c }
    }

    /// Parameters of a layer built by [`Linear::with_bias`].
    pub fn params_with_bias(in_dim: i64, out_dim: i64) -> i64 {
        (in_dim + 1) * out_dim
    }

    /// Parameters of a layer built by [`Linear::no_bias`].
    pub fn params_no_bias(in_dim: i64, out_dim: i64) -> i64 {
        in_dim * out_dim
    }

    /// `x: [..., in]` → `[..., out]` in the compute dtype (bf16 when asked; callers that feed
    /// the residual stream add it to f32 tensors, which promotes back to f32).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let w = self.compute.cast(&self.weight);
        let b = self.bias.as_ref().map(|b| self.compute.cast(b));
        self.compute.cast(x).linear(&w, b.as_ref())
    }

    /// The compute dtype of this layer.
    pub fn compute(&self) -> ComputeDtype {
        self.compute
    }
}

/// A 2-D convolution with bias, `weight: [out, in, k, k]`, NCHW layout.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Tensor,
    stride: i64,
    padding: i64,
    compute: ComputeDtype,
}

impl Conv2d {
    /// A k×k convolution; `padding = (k − 1)/2` gives SAME padding for odd k at stride 1.
    pub fn new(
        vs: &nn::Path,
        in_channels: i64,
        out_channels: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        init: KernelInit,
        compute: ComputeDtype,
    ) -> Self {
        let dims = [out_channels, in_channels, kernel, kernel];
        let weight = init.make(vs, "weight", &dims, in_channels * kernel * kernel);
        let bias = vs.zeros("bias", &[out_channels]);
        Self { weight, bias, stride, padding, compute }
    }

    /// A 3×3 SAME convolution (Flax `nn.Conv(kernel_size=(3, 3))`).
    pub fn same3x3(vs: &nn::Path, c_in: i64, c_out: i64, init: KernelInit, compute: ComputeDtype) -> Self {
        Self::new(vs, c_in, c_out, 3, 1, 1, init, compute)
    }

    /// Number of parameters of a k×k convolution with bias.
    pub fn param_count(c_in: i64, c_out: i64, kernel: i64) -> i64 {
        c_in * c_out * kernel * kernel + c_out
    }

    /// `x: [B, C_in, H, W]` → `[B, C_out, H', W']` in the compute dtype.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let w = self.compute.cast(&self.weight);
        let b = self.compute.cast(&self.bias);
        self.compute.cast(x).conv2d(&w, Some(&b), [self.stride], [self.padding], [1], 1)
    }
}

/// A token embedding table `weight: [rows, dim]` initialised N(0, 1/dim) (Flax `nn.Embed`).
#[derive(Debug)]
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(vs: &nn::Path, rows: i64, dim: i64) -> Self {
        Self { weight: vs.randn("weight", &[rows, dim], 0.0, 1.0 / (dim as f64).sqrt()) }
    }

    /// `ids: [*]` int64 → `[*, dim]` float32.
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.weight, ids, -1, false, false)
    }
}

/// LayerNorm over the last dimension without scale or bias, computed in f32.
///
/// # Shapes
/// `x: [..., D]` → `[..., D]` float32.
pub fn layer_norm(x: &Tensor, eps: f64) -> Tensor {
    let d = *x.size().last().expect("layer_norm needs at least one dimension");
    x.to_kind(Kind::Float).layer_norm([d], None::<&Tensor>, None::<&Tensor>, eps, true)
}

/// RMSNorm with a learned scale (initialised to 1), computed in f32.
#[derive(Debug)]
pub struct RmsNorm {
    pub scale: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(vs: &nn::Path, dim: i64, eps: f64) -> Self {
        Self { scale: vs.ones("scale", &[dim]), eps }
    }

    /// `x: [..., D]` → `x / sqrt(mean(x²) + eps) · scale`, float32.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x = x.to_kind(Kind::Float);
        let ms = x.square().mean_dim([-1i64].as_slice(), true, Kind::Float);
        x * (ms + self.eps).rsqrt() * &self.scale
    }
}

/// GroupNorm eps of Flax (pitfall 25).
pub const GROUP_NORM_EPS: f64 = 1e-6;

/// GroupNorm over NCHW with a learned per-channel scale and bias, computed in f32.
#[derive(Debug)]
pub struct GroupNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    groups: i64,
}

impl GroupNorm {
    pub fn new(vs: &nn::Path, channels: i64, groups: i64) -> Self {
        assert!(channels % groups == 0, "group norm: {groups} groups do not divide {channels} channels");
        Self { weight: vs.ones("weight", &[channels]), bias: vs.zeros("bias", &[channels]), groups }
    }

    /// `x: [B, C, H, W]` → same shape, float32.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.to_kind(Kind::Float).group_norm(
            self.groups,
            Some(&self.weight),
            Some(&self.bias),
            GROUP_NORM_EPS,
            true,
        )
    }
}

/// GroupNorm without affine parameters, computed in f32. `x: [B, C, H, W]`.
pub fn group_norm_plain(x: &Tensor, groups: i64) -> Tensor {
    x.to_kind(Kind::Float).group_norm(groups, None::<&Tensor>, None::<&Tensor>, GROUP_NORM_EPS, true)
}

/// Channel-wise ("per-sequence") dropout of the reference code (pitfall 10): one Bernoulli
/// keep-mask of shape `[B, 1, D]` shared by all N positions, inverted scaling 1/(1−p).
///
/// # Shapes
/// `x: [B, N, D]` → `[B, N, D]`; identity when `!train` or `p == 0`.
pub fn dropout1d(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    let size = x.size();
    let (b, d) = (size[0], size[size.len() - 1]);
    let keep = Tensor::empty([b, 1, d], (x.kind(), x.device())).bernoulli_p(1.0 - p);
    x * keep / (1.0 - p)
}

/// Nonlinearities used by the networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Sigmoid,
    /// SiLU = swish.
    Silu,
    /// GELU with the tanh approximation (Flax's default `nn.gelu`).
    GeluTanh,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Self::Sigmoid => x.sigmoid(),
            Self::Silu => x.silu(),
            Self::GeluTanh => x.gelu("tanh"),
        }
    }
}

/// Sinusoidal embedding of (already scaled) times: `half = dim/2` frequencies
/// `exp(−ln(10⁴)·k/(half−1))`, `[sin, cos]` with sin first (pitfall 6); an odd `dim` gets a
/// zero column at the end.
///
/// # Shapes
/// `t: [B]` → `[B, dim]` float32.
pub fn timestep_embedding(t: &Tensor, dim: i64) -> Tensor {
    assert!(dim > 2, "time embedding needs more than 2 dimensions, got {dim}");
    let half = dim / 2;
    let device = t.device();
    let k = Tensor::arange(half, (Kind::Float, device));
    let freqs = (k * (-(10_000f64.ln()) / (half - 1) as f64)).exp();
    let args = t.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    let emb = Tensor::cat(&[args.sin(), args.cos()], 1);
    if dim % 2 == 1 { emb.pad([0, 1], "constant", Some(0.0)) } else { emb }
}

/// The conditioning MLP of the reference (its `CondEmbedding`): sinusoid of `1000·t` of size
/// `dim`, Dense(dim → 4·dim), SiLU, Dense(4·dim → dim). Variables `dense0`, `dense1`.
#[derive(Debug)]
pub struct TimeEmbedding {
    pub dense0: Linear,
    pub dense1: Linear,
    dim: i64,
}

impl TimeEmbedding {
    pub fn new(vs: &nn::Path, dim: i64, compute: ComputeDtype) -> Self {
        Self {
            dense0: Linear::with_bias(&(vs / "dense0"), dim, 4 * dim, KernelInit::LECUN, compute),
            dense1: Linear::with_bias(&(vs / "dense1"), 4 * dim, dim, KernelInit::LECUN, compute),
            dim,
        }
    }

    pub fn param_count(dim: i64) -> i64 {
        Linear::params_with_bias(dim, 4 * dim) + Linear::params_with_bias(4 * dim, dim)
    }

    /// `t: [B]` in [0, 1] → conditioning vector `c: [B, dim]` float32.
    pub fn forward(&self, t: &Tensor) -> Tensor {
        let emb = timestep_embedding(&(t.to_kind(Kind::Float) * 1000.0), self.dim);
        self.dense1.forward(&self.dense0.forward(&emb).silu()).to_kind(Kind::Float)
    }
}

/// Sequences up to this length use the explicit bf16 attention on CPU (below).
pub const CPU_BF16_MATH_ATTENTION_MAX_LEN: i64 = 1024;

static FUSED_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Send every attention through the fused kernel, as on CUDA (no `[B·H, N, N]` score matrix);
/// `md4 info --memory` measures activation memory this way on a CPU.
pub fn set_fused_attention_only(on: bool) {
    FUSED_ONLY.store(on, std::sync::atomic::Ordering::Relaxed);
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
    /// Tables for positions `0..seq_len`, head dim `head_dim` (even) and base `theta`.
    pub fn new(seq_len: i64, head_dim: i64, theta: f64, device: Device) -> Self {
        let k = Tensor::arange_start_step(0, head_dim, 2, (Kind::Double, device)) / head_dim as f64;
        let inv_freq = (k * -(theta.ln())).exp();
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

/// Multi-head self-attention over `[B, N, D]`, the text transformer's and the DiT's: q, k, v
/// and output projections, heads of width D/H, RoPE on q and k where given,
/// attention-probability dropout and channel-wise dropout on the output projection.
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
    /// `proj(name)` builds the projection `wq`, `wk`, `wv`, `wo` (called in that order, so the
    /// variables are created in that order).
    pub fn new(proj: impl Fn(&str) -> Linear, n_heads: i64, dropout: f64, causal: bool) -> Self {
        Self { wq: proj("wq"), wk: proj("wk"), wv: proj("wv"), wo: proj("wo"), n_heads, dropout, causal }
    }

    /// `x: [B, N, D]` → `[B, N, D]` (compute dtype).
    pub fn forward(&self, x: &Tensor, rope: Option<&Rope>, train: bool) -> Tensor {
        let (b, n, d) = x.size3().expect("attention expects [B, N, D]");
        let heads = |t: Tensor| t.view([b, n, self.n_heads, d / self.n_heads]);
        let rotate = |t: Tensor| match rope {
            Some(r) => r.apply(&t),
            None => t,
        };
        let q = rotate(heads(self.wq.forward(x))).transpose(1, 2);
        let k = rotate(heads(self.wk.forward(x))).transpose(1, 2);
        let v = heads(self.wv.forward(x)).transpose(1, 2);
        let out = attention(&q, &k, &v, self.dropout, self.causal, train);
        let out = self.wo.forward(&out.transpose(1, 2).reshape([b, n, d]));
        dropout1d(&out, self.dropout, train)
    }
}

/// Multi-head scaled dot-product attention, scale 1/√head_dim, dropout on the attention
/// probabilities when training.
///
/// f32, and anything on CUDA, goes through libtorch's fused `scaled_dot_product_attention`.
/// bf16 on CPU is written out as two batched matmuls around a bf16 softmax (libtorch's softmax
/// accumulates in float32 internally and rounds the probabilities to bf16, as flash attention
/// does before its P·V product): libtorch 2.11's CPU flash kernel accumulates its bf16 tiles
/// through float32 GEMMs and was no faster in bf16 than in f32 (docs/log.md, issue 11), while
/// the two bf16 matmuls run on the native bf16 units. The score matrix is `[B·H, N, N]`, so
/// this path is only taken up to [`CPU_BF16_MATH_ATTENTION_MAX_LEN`] tokens.
///
/// # Shapes
/// `q, k, v: [B, H, N, hd]` → `[B, H, N, hd]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64, causal: bool, train: bool) -> Tensor {
    let p = if train { dropout } else { 0.0 };
    let (b, h, n, hd) = q.size4().expect("attention expects [B, H, N, hd]");
    let bf16_cpu = q.kind() == Kind::BFloat16 && q.device() == Device::Cpu;
    if !bf16_cpu
        || FUSED_ONLY.load(std::sync::atomic::Ordering::Relaxed)
        || n > CPU_BF16_MATH_ATTENTION_MAX_LEN
        || k.size()[2] != n
    {
        return Tensor::scaled_dot_product_attention(q, k, v, None::<&Tensor>, p, causal, None::<f64>, false);
    }
    let bh = b * h;
    let q = (q * (hd as f64).powf(-0.5)).reshape([bh, n, hd]);
    let mut scores = q.bmm(&k.reshape([bh, n, hd]).transpose(1, 2));
    if causal {
        let future = Tensor::ones([n, n], (Kind::Bool, q.device())).triu(1);
        scores = scores.masked_fill(&future, f64::NEG_INFINITY);
    }
    let mut probs = scores.softmax(-1, Kind::BFloat16);
    if p > 0.0 {
        probs = probs.dropout(p, true);
    }
    probs.bmm(&v.reshape([bh, n, hd])).view([b, h, n, hd])
}

/// Total number of scalar parameters in a variable store.
pub fn count_parameters(vs: &nn::VarStore) -> i64 {
    vs.variables().values().map(Tensor::numel).sum::<usize>() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_normal_has_the_requested_variance_and_bounds() {
        tch::manual_seed(0);
        let (fan_in, scale) = (50, 2.0);
        let x = fan_in_truncated_normal(&[400, 500], fan_in, scale, Device::Cpu);
        let var = x.to_kind(Kind::Double).var(true).double_value(&[]);
        let target = scale / fan_in as f64;
        // 200k samples: the sample variance has a relative standard error of about 0.3%.
        assert!((var / target - 1.0).abs() < 0.02, "variance {var} vs {target}");
        let bound = 2.0 * target.sqrt() / TRUNCATED_NORMAL_STD;
        let max = x.abs().max().double_value(&[]);
        assert!(max <= bound * (1.0 + 1e-6), "max {max} exceeds truncation bound {bound}");
        assert!(max > 0.95 * bound, "samples should reach close to the bound, max {max}");
    }

    #[test]
    fn time_embedding_is_sin_then_cos_with_half_minus_one_denominator() {
        let dim = 8;
        let t = Tensor::from_slice(&[0.0f32, 3.0]);
        let emb = timestep_embedding(&t, dim);
        assert_eq!(emb.size(), [2, dim]);
        let half = dim / 2;
        for k in 0..half {
            let freq = (-(10_000f64.ln()) * k as f64 / (half - 1) as f64).exp();
            let s = emb.double_value(&[1, k]);
            let c = emb.double_value(&[1, half + k]);
            assert!((s - (3.0 * freq).sin()).abs() < 1e-5, "sin at k={k}");
            assert!((c - (3.0 * freq).cos()).abs() < 1e-5, "cos at k={k}");
            assert_eq!(emb.double_value(&[0, k]), 0.0);
            assert_eq!(emb.double_value(&[0, half + k]), 1.0);
        }
        // The last frequency is exactly 1e-4 because the denominator is half − 1.
        let last = emb.double_value(&[1, half - 1]);
        assert!((last - (3.0e-4f64).sin()).abs() < 1e-7);
    }

    #[test]
    fn dropout1d_mask_is_constant_across_positions() {
        tch::manual_seed(1);
        let p = 0.5;
        let x = Tensor::ones([4, 16, 32], (Kind::Float, Device::Cpu));
        let y = dropout1d(&x, p, true);
        // Every position of a sequence sees the same channel mask.
        let first = y.narrow(1, 0, 1);
        assert_eq!(y.eq_tensor(&first.expand_as(&y)).all().int64_value(&[]), 1);
        // Values are 0 or 1/(1−p), and both occur.
        let kept = y.eq(1.0 / (1.0 - p)).logical_or(&y.eq(0.0));
        assert_eq!(kept.all().int64_value(&[]), 1);
        let frac = first.eq(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!(frac > 0.2 && frac < 0.8, "dropped fraction {frac}");
        // Masks differ between sequences of the batch.
        assert!(!(first.get(0).equal(&first.get(1)) && first.get(1).equal(&first.get(2))));
        // Identity in evaluation.
        assert!(dropout1d(&x, p, false).equal(&x));
    }

    #[test]
    fn rms_norm_normalises_to_unit_mean_square() {
        let vs = nn::VarStore::new(Device::Cpu);
        let norm = RmsNorm::new(&vs.root(), 6, 1e-5);
        let x = Tensor::randn([3, 6], (Kind::Float, Device::Cpu)) * 7.0;
        let y = norm.forward(&x);
        let ms = y.square().mean_dim([-1i64].as_slice(), false, Kind::Float);
        assert!(ms.allclose(&Tensor::ones([3], (Kind::Float, Device::Cpu)), 1e-4, 1e-4, false));
    }
}
