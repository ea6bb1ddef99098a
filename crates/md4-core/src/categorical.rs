//! Categorical sampling in two precisions (spec §5.3, App. G; users.md item 3).
//!
//! * [`Precision::F32Gumbel`] mirrors JAX: argmax of float32 log-probabilities plus float32
//!   Gumbel noise −log(−log u), u ∈ [tiny, 1). The noise is bounded (about −4.5 ≤ g ≤ 16.7), so a
//!   category whose probability is below ≈ 7e−10 of the largest one can never win: an implicit
//!   truncation that the paper's samples rely on.
//! * [`Precision::F64`] is exact inverse-CDF sampling in float64.

use tch::{Kind, Tensor};

crate::named_enum! {
    /// Which categorical sampler a sampler uses; recorded with every sample set.
    pub enum Precision("precision") {
        /// Float32 Gumbel-argmax (the reference code's behaviour).
        F32Gumbel = "f32-gumbel",
        /// Exact float64 inverse-CDF sampling.
        F64 = "f64",
    }
}

/// Draw one category per row from unnormalised probabilities.
///
/// # Shapes
/// `probs: [R, K]` non-negative (any float kind) → `[R]` int64.
pub fn sample(probs: &Tensor, precision: Precision) -> Tensor {
    match precision {
        Precision::F32Gumbel => {
            let logp = probs.to_kind(Kind::Float).log();
            let u = Tensor::rand(logp.size(), (Kind::Float, logp.device()));
            gumbel_argmax_from_uniform(&logp, &u)
        }
        Precision::F64 => {
            let rows = probs.size()[0];
            let u = Tensor::rand([rows], (Kind::Double, probs.device()));
            categorical_from_uniform(probs, &u)
        }
    }
}

/// argmax(logp + g) with g = −log(−log(max(u, tiny))), all in float32.
///
/// # Shapes
/// `logp: [R, K]` float32, `u: [R, K]` float32 in [0, 1) → `[R]` int64.
pub fn gumbel_argmax_from_uniform(logp: &Tensor, u: &Tensor) -> Tensor {
    let tiny = f32::MIN_POSITIVE as f64;
    let g = -(-(u.to_kind(Kind::Float).clamp_min(tiny).log())).log();
    (logp.to_kind(Kind::Float) + g).argmax(-1, false)
}

/// Inverse-CDF sampling in float64: the first k with u·Σp < cumsum(p)_k.
///
/// # Shapes
/// `probs: [R, K]` or `[1, K]` (broadcast over the rows of `u`), `u: [R]` float64 in [0, 1)
/// → `[R]` int64.
pub fn categorical_from_uniform(probs: &Tensor, u: &Tensor) -> Tensor {
    let cdf = probs.to_kind(Kind::Double).cumsum(-1, Kind::Double);
    let (rows, k) = (cdf.size()[0], cdf.size()[1]);
    let total = cdf.narrow(1, k - 1, 1);
    let target = u.to_kind(Kind::Double).unsqueeze(1) * total;
    // side = "right": the number of cdf entries ≤ target, i.e. the first index with cdf > target.
    let idx = if rows == 1 {
        target.squeeze_dim(1).searchsorted(&cdf.squeeze_dim(0), false, true, "right", None::<&Tensor>)
    } else {
        target.searchsorted(&cdf, false, true, "right", None::<&Tensor>).squeeze_dim(1)
    };
    idx.clamp(0, k - 1)
}
