//! The forward (masking) process q(z_t | x_0) (spec §2.2) and antithetic time sampling (§3.3).

use crate::Vocab;
use tch::{Device, Kind, Tensor};

/// Antithetic (stratified) times t_b = (u + b/B) mod 1 with one u ~ U[0, 1) per batch.
/// Inside a keyed evaluation scope ([`crate::noise::keyed`]) stratifying across the batch would
/// tie a sequence's time to its batch-mates, so each row gets its own keyed uniform instead.
///
/// # Shapes
/// → `[B]` float32 on `device`.
pub fn antithetic_times(batch: i64, device: Device) -> Tensor {
    if crate::noise::is_keyed() {
        return crate::noise::uniform(&[batch], Kind::Float, device);
    }
    let u = Tensor::rand([1], (Kind::Float, device));
    let offsets = Tensor::arange(batch, (Kind::Float, device)) / batch as f64;
    (u + offsets).fmod(1.0)
}

/// Mask each token independently: keep it with probability `alpha`, else replace it by the
/// mask id. `alpha` broadcasts against `x0` (`[B, 1]` for a scalar schedule, `[B, N]` for
/// GenMD4's per-token schedule). The uniforms come from [`crate::noise::uniform`].
///
/// # Shapes
/// `x0: [B, N]` int64, `alpha: [B, 1]` or `[B, N]` float → `[B, N]` int64 in `0..=V`.
pub fn mask_tokens(x0: &Tensor, alpha: &Tensor, vocab: Vocab) -> Tensor {
    let u = crate::noise::uniform(&x0.size(), alpha.kind(), x0.device());
    let masked = u.ge_tensor(alpha);
    x0.where_self(&masked.logical_not(), &Tensor::from(vocab.mask_id()).to_device(x0.device()))
}

/// `[B, N]` bool: which positions of `zt` hold the mask id.
pub fn is_masked(zt: &Tensor, vocab: Vocab) -> Tensor {
    zt.eq(vocab.mask_id())
}
