//! Test support: an oracle denoiser for a tiny, fully enumerated data distribution.
//!
//! For masked diffusion the optimal μ_θ(z_t, t) is the posterior marginal E[x_0 | z_t], which for
//! a distribution over a handful of sequences is computed exactly by enumeration. With it the
//! continuous-time ELBO is tight (it equals −log p(x)), and ancestral samplers reproduce p(x)
//! up to their discretisation error — the identities the tests of this workspace check.

use crate::genmd4::GENMD4_EPS;
use crate::{Denoiser, Vocab};
use tch::{Device, Kind, Tensor};

/// E[x_0 | z_t] for a distribution over all V^N sequences.
#[derive(Debug)]
pub struct Oracle {
    pub vocab: Vocab,
    pub seq_len: i64,
    /// `[S, N]` int64: every sequence, in lexicographic order.
    pub seqs: Tensor,
    /// `[S]` float64: their probabilities (positive, summing to 1).
    pub probs: Tensor,
    /// GenMD4 exponents `[V]`: with them the masking probability depends on the token value,
    /// and so does the posterior (and on t). None: MD4's value-independent masking.
    pub genmd4_w: Option<Tensor>,
}

impl Oracle {
    /// All V^N sequences with probabilities ∝ `weights` (length V^N, lexicographic order).
    pub fn new(vocab: Vocab, seq_len: i64, weights: &[f64]) -> Self {
        let v = vocab.size();
        let count = v.pow(seq_len as u32);
        assert_eq!(weights.len() as i64, count, "need one weight per sequence (V^N = {count})");
        assert!(weights.iter().all(|&w| w > 0.0), "oracle weights must be positive");
        let mut rows = Vec::with_capacity((count * seq_len) as usize);
        for s in 0..count {
            let mut digits = vec![0i64; seq_len as usize];
            let mut r = s;
            for d in digits.iter_mut().rev() {
                *d = r % v;
                r /= v;
            }
            rows.extend(digits);
        }
        let seqs = Tensor::from_slice(&rows).view([count, seq_len]);
        let total: f64 = weights.iter().sum();
        let p: Vec<f64> = weights.iter().map(|w| w / total).collect();
        Self { vocab, seq_len, seqs, probs: Tensor::from_slice(&p), genmd4_w: None }
    }

    /// The same distribution with GenMD4's value-dependent masking `w: [V]`.
    pub fn with_genmd4(mut self, w: &[f64]) -> Self {
        assert_eq!(w.len() as i64, self.vocab.size());
        self.genmd4_w = Some(Tensor::from_slice(w));
        self
    }

    /// Index of each row of `x: [B, N]` in `seqs` → `[B]` int64.
    pub fn index_of(&self, x: &Tensor) -> Tensor {
        let v = self.vocab.size();
        let mut idx = x.select(1, 0).to_device(Device::Cpu);
        for n in 1..self.seq_len {
            idx = idx * v + x.select(1, n).to_device(Device::Cpu);
        }
        idx
    }

    /// −log p(x) of each row of `x: [B, N]` → `[B]` float64.
    pub fn nll(&self, x: &Tensor) -> Tensor {
        -self.probs.index_select(0, &self.index_of(x)).log()
    }

    /// Draw `count` sequences from p → `[count, N]`.
    pub fn sample(&self, count: i64) -> Tensor {
        let idx = self.probs.multinomial(count, true);
        self.seqs.index_select(0, &idx)
    }
}

impl Denoiser for Oracle {
    fn logits(&self, zt: &Tensor, t: &Tensor, _train: bool) -> Tensor {
        let device = zt.device();
        let zt = zt.to_device(Device::Cpu);
        let mask = self.vocab.mask_id();
        let z = zt.unsqueeze(1); // [B, 1, N]
        let seqs = self.seqs.unsqueeze(0); // [1, S, N]
        let masked = z.eq(mask);
        let compatible = masked.logical_or(&z.eq_tensor(&seqs)).all_dim(2, false); // [B, S]
        let mut weight = compatible.to_kind(Kind::Double) * self.probs.unsqueeze(0);
        if let Some(w) = &self.genmd4_w {
            // P(masked at t | x_n) = (1−ε)t^{w_{x_n}} for the masked positions; the unmasked
            // positions' factor is the same for every compatible sequence.
            let t = t.to_device(Device::Cpu).to_kind(Kind::Double).view([-1, 1, 1]);
            let w_of_seq = w.index_select(0, &self.seqs.flatten(0, -1)).view(self.seqs.size().as_slice());
            let p_mask = (w_of_seq.unsqueeze(0) * t.log()).exp() * (1.0 - GENMD4_EPS); // [B, S, N]
            let factor = p_mask.where_self(&masked, &p_mask.ones_like()).prod_dim_int(2, false, Kind::Double);
            weight *= factor;
        }
        let onehot = self.seqs.one_hot(self.vocab.size()).to_kind(Kind::Double); // [S, N, V]
        let mu = Tensor::einsum("bs,snv->bnv", &[&weight, &onehot], None::<i64>)
            / weight.sum_dim_intlist([1i64].as_slice(), true, Kind::Double).unsqueeze(2);
        mu.clamp_min(1e-300).log().to_kind(Kind::Float).to_device(device)
    }

    fn time_dependent(&self) -> bool {
        self.genmd4_w.is_some()
    }
}

/// A denoiser whose logits are all zero: μ_θ is uniform over the V tokens.
#[derive(Debug)]
pub struct Uniform {
    pub vocab: Vocab,
}

impl Denoiser for Uniform {
    fn logits(&self, zt: &Tensor, _t: &Tensor, _train: bool) -> Tensor {
        let s = zt.size();
        Tensor::zeros([s[0], s[1], self.vocab.size()], (Kind::Float, zt.device()))
    }
    fn time_dependent(&self) -> bool {
        false
    }
}

/// Pearson's χ² statistic of observed category counts against expected probabilities.
pub fn chi_square(counts: &[i64], probs: &[f64]) -> f64 {
    let n: i64 = counts.iter().sum();
    counts.iter().zip(probs).map(|(&c, &p)| (c as f64 - n as f64 * p).powi(2) / (n as f64 * p)).sum()
}

/// The 0.999 quantile of χ² with `df` degrees of freedom (Wilson–Hilferty approximation,
/// accurate to a fraction of a percent for df ≥ 10).
pub fn chi_square_critical_999(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.090_232_306; // the standard normal's 0.999 quantile
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// Serialises tests that seed torch's global generator: `cargo test` runs the tests of one
/// binary on several threads, and they would otherwise draw from the same generator in an
/// unpredictable interleaving. Hold the guard for the whole seeded section.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The tests' standard oracle: all 27 sequences of length 3 over 3 symbols, with unequal
/// probabilities ∝ (37·s mod 11) + 1 that make the positions dependent.
pub fn standard_oracle() -> Oracle {
    let weights: Vec<f64> = (0..27).map(|s| ((s * 37) % 11 + 1) as f64).collect();
    Oracle::new(Vocab::new(3), 3, &weights)
}

/// Mean and standard error of a `[B]` tensor.
pub fn mean_se(x: &Tensor) -> (f64, f64) {
    let values = Vec::<f64>::try_from(x.to_kind(Kind::Double).contiguous()).expect("a [B] tensor");
    crate::stats::mean_and_se(&values)
}

/// `x` repeated as `b` rows → `[b, len(x)]` int64.
pub fn repeat_row(x: &[i64], b: i64) -> Tensor {
    Tensor::from_slice(x).unsqueeze(0).repeat([b, 1])
}
