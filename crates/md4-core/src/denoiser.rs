//! The only thing the diffusion process knows about a network (style rule 7).

use tch::Tensor;

/// A mean-parameterised reverse model μ_θ(z_t, t) (spec §3.1).
///
/// Implemented by the networks in `md4-models` and, in tests, by oracle and mock denoisers.
pub trait Denoiser {
    /// Logits over the V real tokens at every position.
    ///
    /// # Shapes
    /// `zt: [B, N]` int64 in `0..=V` (V = mask), `t: [B]` float in `[0, 1]` → `[B, N, V]` float.
    /// `train` switches dropout on. The logits need not be masked at unmasked positions:
    /// the objectives only read masked positions, and the samplers carry unmasked tokens over.
    fn logits(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor;

    /// Whether the output depends on t. A time-independent denoiser (RADD's observation, §6)
    /// lets the cached sampler skip network calls when no token changed.
    fn time_dependent(&self) -> bool {
        true
    }

    /// S_b = Σ over the masked positions of sequence b of log μ_θ(z_t)[x_0] (≤ 0), the sum every
    /// MD4 bound needs. The default goes through [`Denoiser::logits`]; networks may compute it
    /// in chunks of positions so that no `[B, N, V]` tensor exists (the text transformer does).
    ///
    /// # Shapes
    /// `zt, x0: [B, N]`, `t: [B]` → `[B]` float32.
    fn masked_log_likelihood(
        &self,
        zt: &Tensor,
        t: &Tensor,
        x0: &Tensor,
        vocab: crate::Vocab,
        train: bool,
    ) -> Tensor {
        crate::elbo::masked_log_likelihood(&self.logits(zt, t, train), x0, zt, vocab)
    }
}

/// References and boxes of a denoiser are denoisers (each method forwards, so a network's own
/// `masked_log_likelihood` is kept).
macro_rules! forward_denoiser {
    ($($ptr:ty),*) => {$(
        impl<D: Denoiser + ?Sized> Denoiser for $ptr {
            fn logits(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor {
                (**self).logits(zt, t, train)
            }
            fn time_dependent(&self) -> bool {
                (**self).time_dependent()
            }
            fn masked_log_likelihood(
                &self,
                zt: &Tensor,
                t: &Tensor,
                x0: &Tensor,
                vocab: crate::Vocab,
                train: bool,
            ) -> Tensor {
                (**self).masked_log_likelihood(zt, t, x0, vocab, train)
            }
        }
    )*};
}

forward_denoiser!(&D, Box<D>);
