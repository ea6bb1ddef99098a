//! Likelihood evaluation with K Monte-Carlo passes and a standard error (spec §3.5, §11.2–11.3).
//!
//! The caller supplies a closure that maps a batch of sequences to one negative log-likelihood
//! bound per sequence, in nats; it decides which bound (continuous-time, finite T, exact for
//! autoregressive models with K = 1), which weights (EMA) and which time sampling (antithetic).
//! This module only does the bookkeeping that every table shares: every sequence is scored,
//! including a last partial batch (the reference code drops it; we do not), each pass is a
//! fresh draw, and the standard error is taken over sequences of the per-sequence means across
//! passes.
//!
//! **Common random numbers.** The draws of sequence i in pass p come from the keyed stream
//! (seed, p, i) of [`md4_core::noise`], so every row of a table is scored on the same times and
//! masking uniforms, sequence by sequence. [`paired_difference`] then compares two rows on
//! their per-sequence differences: sequence difficulty and the shared draws cancel, and the
//! difference's standard error is far below either row's own.

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md4_core::stats;
use md4_dist::ProcessGroup;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// A finite, indexable set of equal-length evaluation sequences.
pub trait EvalSequences {
    /// Number of sequences S.
    fn n_sequences(&self) -> usize;
    /// Tokens per sequence N.
    fn seq_len(&self) -> usize;
    /// Sequences `start..end` as a CPU tensor.
    ///
    /// # Shapes
    /// → `[end − start, N]` int64.
    fn batch(&self, start: usize, end: usize) -> Tensor;
    /// The tokens of sequence `index`, for hashing.
    fn tokens(&self, index: usize) -> Vec<i64>;
}

/// Equal-length chunks laid end to end in one flat token slice (the layout of the data caches).
#[derive(Clone, Copy, Debug)]
pub struct FlatChunks<'a, T> {
    tokens: &'a [T],
    seq_len: usize,
}

impl<'a, T: Copy + Into<i64>> FlatChunks<'a, T> {
    /// Cut `tokens` into chunks of `seq_len`. A remainder is an error, never silently dropped:
    /// a protocol that drops the tail (§11.2) must truncate before calling this.
    pub fn new(tokens: &'a [T], seq_len: usize) -> Result<Self> {
        ensure!(seq_len > 0, "sequence length must be positive");
        ensure!(
            tokens.len().is_multiple_of(seq_len),
            "{} tokens are not a whole number of {seq_len}-token chunks (remainder {}); truncate explicitly",
            tokens.len(),
            tokens.len() % seq_len
        );
        Ok(Self { tokens, seq_len })
    }
}

impl<T: Copy + Into<i64>> EvalSequences for FlatChunks<'_, T> {
    fn n_sequences(&self) -> usize {
        self.tokens.len() / self.seq_len
    }
    fn seq_len(&self) -> usize {
        self.seq_len
    }
    fn batch(&self, start: usize, end: usize) -> Tensor {
        let values: Vec<i64> =
            self.tokens[start * self.seq_len..end * self.seq_len].iter().map(|&v| v.into()).collect();
        Tensor::from_slice(&values).view([(end - start) as i64, self.seq_len as i64])
    }
    fn tokens(&self, index: usize) -> Vec<i64> {
        self.tokens[index * self.seq_len..(index + 1) * self.seq_len].iter().map(|&v| v.into()).collect()
    }
}

/// A `[S, N]` int64 tensor of sequences.
impl EvalSequences for Tensor {
    fn n_sequences(&self) -> usize {
        self.size()[0] as usize
    }
    fn seq_len(&self) -> usize {
        self.size()[1] as usize
    }
    fn batch(&self, start: usize, end: usize) -> Tensor {
        self.narrow(0, start as i64, (end - start) as i64).to_kind(Kind::Int64).to_device(Device::Cpu)
    }
    fn tokens(&self, index: usize) -> Vec<i64> {
        let row = self.get(index as i64).to_kind(Kind::Int64).to_device(Device::Cpu);
        Vec::<i64>::try_from(&row).expect("a row of an [S, N] tensor is one-dimensional")
    }
}

/// sha256 (hex) of the evaluation tokens in order, each written as a little-endian u32, so that
/// the hash does not depend on how a cache stores them (u8, u16, i64). Negative ids or ids
/// above u32::MAX are an error.
pub fn tokens_sha256(sequences: &impl EvalSequences) -> Result<String> {
    let mut hasher = Sha256::new();
    for index in 0..sequences.n_sequences() {
        for token in sequences.tokens(index) {
            let token =
                u32::try_from(token).with_context(|| format!("token id {token} does not fit in u32"))?;
            hasher.update(token.to_le_bytes());
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// How to run an evaluation.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Sequences per call of the closure; the last batch may be smaller.
    pub batch_size: usize,
    /// K, the number of Monte-Carlo passes over every sequence (1 for exact likelihoods).
    pub passes: usize,
    /// The forward-process draws of sequence i in pass p come from the keyed stream
    /// (seed, p, i) of [`md4_core::noise`], whatever the batch size, the batch order, the model
    /// or the row; any other randomness of the closure from libtorch's generator, reseeded
    /// with `seed + p` before pass p.
    pub seed: i64,
    /// Where the batches are moved before the closure sees them.
    pub device: Device,
    /// Draw an indicatif progress bar on stderr (rank 0 only in a process group).
    pub progress: bool,
    /// Evaluate data-parallel: batch b is scored by rank b mod W and the per-sequence values
    /// are summed over the ranks, so every rank returns the single-process result, bit for bit.
    pub group: Option<Arc<ProcessGroup>>,
}

impl EvalConfig {
    pub fn new(batch_size: usize, passes: usize, seed: i64, device: Device) -> Self {
        Self { batch_size, passes, seed, device, progress: true, group: None }
    }
}

/// The outcome of [`evaluate`], in nats (convert with [`crate::Unit`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalResult {
    pub n_sequences: usize,
    pub tokens_per_sequence: usize,
    pub passes: usize,
    pub batch_size: usize,
    pub seed: i64,
    /// Per sequence, the mean over passes of its negative log-likelihood bound.
    pub per_sequence_nats: Vec<f64>,
    /// Per pass, the mean over sequences in nats per token (pass-to-pass Monte-Carlo spread).
    pub pass_mean_nats_per_token: Vec<f64>,
    pub mean_nats_per_token: f64,
    /// Standard error over sequences of the per-sequence means, per token; NaN for one sequence.
    pub se_nats_per_token: f64,
    pub wall_seconds: f64,
}

/// Score every sequence `config.passes` times with `nll` and summarise.
///
/// `nll` runs under `tch::no_grad` and must return one finite value per sequence of its batch.
///
/// # Shapes
/// `nll`: `x0: [B, N]` int64 on `config.device` → `[B]` nats per sequence.
pub fn evaluate<F>(sequences: &impl EvalSequences, config: &EvalConfig, mut nll: F) -> Result<EvalResult>
where
    F: FnMut(&Tensor) -> Tensor,
{
    let n_sequences = sequences.n_sequences();
    let seq_len = sequences.seq_len();
    ensure!(n_sequences > 0, "no evaluation sequences");
    ensure!(seq_len > 0, "evaluation sequences are empty");
    ensure!(config.batch_size > 0, "batch size must be positive");
    ensure!(config.passes > 0, "the number of passes must be positive");
    let started = Instant::now();
    let (world, rank) = config.group.as_ref().map_or((1, 0), |g| (g.size(), g.rank()));
    let n_batches = n_sequences.div_ceil(config.batch_size);
    let mine = (0..n_batches).filter(|b| b % world == rank).count();
    let bar = progress_bar((mine * config.passes) as u64, config.progress && rank == 0);
    // values[p·n + i]: sequence i in pass p (zero where another rank scores it).
    let mut values = vec![0.0f64; n_sequences * config.passes];
    for pass in 0..config.passes {
        tch::manual_seed(config.seed + pass as i64);
        for (b, start) in (0..n_sequences).step_by(config.batch_size).enumerate() {
            if b % world != rank {
                continue;
            }
            let end = (start + config.batch_size).min(n_sequences);
            let x0 = md4_torch::to_device(&sequences.batch(start, end), config.device);
            let rows: Vec<u64> = (start as u64..end as u64).collect();
            let batch =
                md4_core::noise::keyed(config.seed as u64, pass as u32, &rows, || tch::no_grad(|| nll(&x0)));
            let batch = batch_values(&batch, end - start)
                .with_context(|| format!("pass {pass}, sequences {start}..{end}"))?;
            values[pass * n_sequences + start..pass * n_sequences + end].copy_from_slice(&batch);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if let Some(g) = &config.group {
        g.sum_f64(&mut values).context("summing the per-sequence values over the ranks")?;
    }
    // Sums in the order of one process scoring every batch itself.
    let mut sums = vec![0.0f64; n_sequences];
    let mut pass_means = Vec::with_capacity(config.passes);
    for pass in 0..config.passes {
        let mut pass_total = 0.0;
        for start in (0..n_sequences).step_by(config.batch_size) {
            let end = (start + config.batch_size).min(n_sequences);
            let batch = &values[pass * n_sequences + start..pass * n_sequences + end];
            for (sum, v) in sums[start..end].iter_mut().zip(batch) {
                *sum += v;
            }
            pass_total += batch.iter().sum::<f64>();
        }
        pass_means.push(pass_total / (n_sequences * seq_len) as f64);
    }
    let per_sequence: Vec<f64> = sums.iter().map(|s| s / config.passes as f64).collect();
    let (mean, se) = stats::mean_and_se(&per_sequence);
    Ok(EvalResult {
        n_sequences,
        tokens_per_sequence: seq_len,
        passes: config.passes,
        batch_size: config.batch_size,
        seed: config.seed,
        per_sequence_nats: per_sequence,
        pass_mean_nats_per_token: pass_means,
        mean_nats_per_token: mean / seq_len as f64,
        se_nats_per_token: se / seq_len as f64,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// A paired comparison of two evaluations of the same sequences: the mean over sequences of
/// (a − b) per token and its standard error over the per-sequence differences, in nats per
/// token (convert with [`crate::Unit::convert_difference`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairedDifference {
    pub mean_nats_per_token: f64,
    /// NaN for one sequence; 0 when the two evaluations agree sequence by sequence.
    pub se_nats_per_token: f64,
    pub n_sequences: usize,
}

impl PairedDifference {
    /// Δ ≠ 0 and |Δ| ≥ 2 SE: the sign of the difference is resolved at this sample size.
    pub fn resolved(&self) -> bool {
        let (mean, se) = (self.mean_nats_per_token, self.se_nats_per_token);
        se.is_finite() && mean != 0.0 && mean.abs() >= 2.0 * se
    }
}

/// Paired difference a − b of two evaluations of the same sequences (same count, length and
/// keyed-stream seed; the number of passes may differ, e.g. an exact AR row against a bound).
pub fn paired_difference(a: &EvalResult, b: &EvalResult) -> Result<PairedDifference> {
    ensure!(
        a.n_sequences == b.n_sequences && a.tokens_per_sequence == b.tokens_per_sequence,
        "paired difference of different evaluation sets ({} × {} vs {} × {} tokens)",
        a.n_sequences,
        a.tokens_per_sequence,
        b.n_sequences,
        b.tokens_per_sequence
    );
    ensure!(
        a.seed == b.seed,
        "paired difference of evaluations on different streams (seeds {} and {})",
        a.seed,
        b.seed
    );
    let (mean, se) = stats::paired_difference(&a.per_sequence_nats, &b.per_sequence_nats);
    let n = a.tokens_per_sequence as f64;
    Ok(PairedDifference {
        mean_nats_per_token: mean / n,
        se_nats_per_token: se / n,
        n_sequences: a.per_sequence_nats.len(),
    })
}

/// The unigram yardsticks of an evaluation split, in nats per token: the plug-in entropy of the
/// split's own token frequencies (no unigram model scores below it), and the cross-entropy under
/// the training split's frequencies with add-one smoothing over the vocabulary (what a model
/// that learnt letter or token frequencies and no context scores).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unigram {
    pub entropy_nats: f64,
    pub cross_entropy_nats: f64,
}

/// [`Unigram`] of `test` given `train`, tokens in `0..vocab`.
pub fn unigram(train: &[i64], test: &[i64], vocab: usize) -> Result<Unigram> {
    ensure!(!test.is_empty(), "unigram of an empty split");
    let counts = |tokens: &[i64]| -> Result<Vec<f64>> {
        let mut c = vec![0.0; vocab];
        for &t in tokens {
            let slot = usize::try_from(t).ok().filter(|&t| t < vocab);
            let slot = slot.with_context(|| format!("token {t} outside the vocabulary 0..{vocab}"))?;
            c[slot] += 1.0;
        }
        Ok(c)
    };
    let (train_counts, test_counts) = (counts(train)?, counts(test)?);
    let n_test = test.len() as f64;
    let n_train = train.len() as f64 + vocab as f64;
    let mut entropy = 0.0;
    let mut cross = 0.0;
    for (&c, &t) in test_counts.iter().zip(&train_counts) {
        if c > 0.0 {
            let p = c / n_test;
            entropy -= p * p.ln();
            cross -= p * ((t + 1.0) / n_train).ln();
        }
    }
    Ok(Unigram { entropy_nats: entropy, cross_entropy_nats: cross })
}

/// The closure's output as `rows` finite f64 values, or an error naming what is wrong.
fn batch_values(values: &Tensor, rows: usize) -> Result<Vec<f64>> {
    let size = values.size();
    if size != [rows as i64] {
        bail!("the likelihood closure returned shape {size:?}, expected [{rows}]");
    }
    let values = values.to_kind(Kind::Double).to_device(Device::Cpu);
    let values = Vec::<f64>::try_from(&values).context("reading the likelihood closure's output")?;
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        bail!("the likelihood closure returned a non-finite value {} at row {bad}", values[bad]);
    }
    Ok(values)
}

fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("eval {bar:30} {pos}/{len} batches [{elapsed} < {eta}]") {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    /// `evaluate` reseeds libtorch's global generator, so tests that call it run one at a time.
    static TORCH_RNG: Mutex<()> = Mutex::new(());

    fn rng_lock() -> MutexGuard<'static, ()> {
        TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn quiet(batch_size: usize, passes: usize, seed: i64) -> EvalConfig {
        EvalConfig { progress: false, ..EvalConfig::new(batch_size, passes, seed, Device::Cpu) }
    }

    /// A deterministic closure: the NLL of a sequence is the sum of its token ids, so every
    /// statistic has a closed form and a dropped or double-counted sequence changes it.
    fn sum_of_ids(x0: &Tensor) -> Tensor {
        x0.to_kind(Kind::Double).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
    }

    #[test]
    fn scores_every_sequence_including_the_last_partial_batch() {
        let _rng = rng_lock();
        // 7 sequences of 3 tokens with batch 3: batches of 3, 3 and 1.
        let tokens: Vec<i64> = (0..21).collect();
        let chunks = FlatChunks::new(&tokens, 3).unwrap();
        let mut batch_rows = Vec::new();
        let result = evaluate(&chunks, &quiet(3, 2, 0), |x0| {
            batch_rows.push(x0.size()[0]);
            sum_of_ids(x0)
        })
        .unwrap();
        assert_eq!(batch_rows, vec![3, 3, 1, 3, 3, 1]);
        assert_eq!(result.n_sequences, 7);
        assert_eq!(result.tokens_per_sequence, 3);
        // Sequence i holds 3i, 3i+1, 3i+2: sum 9i + 3.
        let expected: Vec<f64> = (0..7).map(|i| 9.0 * i as f64 + 3.0).collect();
        assert_eq!(result.per_sequence_nats, expected);
        // Mean per token = mean id = 10; SE = sd(9i+3)/√7/3 = 9·sd(0..7)/√7/3.
        assert!((result.mean_nats_per_token - 10.0).abs() < 1e-12);
        let sd_i = (28.0f64 / 6.0).sqrt();
        assert!((result.se_nats_per_token - 9.0 * sd_i / 7f64.sqrt() / 3.0).abs() < 1e-12);
        assert_eq!(result.pass_mean_nats_per_token, vec![10.0, 10.0]);
    }

    #[test]
    fn passes_average_fresh_seeded_draws() {
        let _rng = rng_lock();
        // The closure returns one uniform draw per sequence: each pass is a fresh draw, the
        // per-sequence value is the mean over passes, and a rerun with the same seed repeats.
        let x = Tensor::zeros([5, 4], (Kind::Int64, Device::Cpu));
        let draw = |x0: &Tensor| Tensor::rand([x0.size()[0]], (Kind::Double, Device::Cpu));
        let a = evaluate(&x, &quiet(2, 3, 11), draw).unwrap();
        let b = evaluate(&x, &quiet(2, 3, 11), draw).unwrap();
        assert_eq!(a.per_sequence_nats, b.per_sequence_nats);
        assert_ne!(a.pass_mean_nats_per_token[0], a.pass_mean_nats_per_token[1]);
        // Pass p is exactly the draw after manual_seed(seed + p).
        let mut expected = vec![0.0; 5];
        for pass in 0..3 {
            tch::manual_seed(11 + pass);
            for start in [0usize, 2, 4] {
                let end = (start + 2).min(5);
                let v =
                    Vec::<f64>::try_from(&draw(&x.narrow(0, start as i64, (end - start) as i64))).unwrap();
                for (e, v) in expected[start..end].iter_mut().zip(v) {
                    *e += v / 3.0;
                }
            }
        }
        for (got, want) in a.per_sequence_nats.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-12);
        }
        let overall = expected.iter().sum::<f64>() / 5.0 / 4.0;
        assert!((a.mean_nats_per_token - overall).abs() < 1e-12);
    }

    #[test]
    fn single_sequence_has_undefined_standard_error() {
        let _rng = rng_lock();
        let x = Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]);
        let result = evaluate(&x, &quiet(4, 1, 0), sum_of_ids).unwrap();
        assert_eq!(result.mean_nats_per_token, 2.0);
        assert!(result.se_nats_per_token.is_nan());
    }

    #[test]
    fn rejects_bad_closures_and_inputs() {
        let _rng = rng_lock();
        let x = Tensor::zeros([4, 2], (Kind::Int64, Device::Cpu));
        let wrong_shape =
            evaluate(&x, &quiet(2, 1, 0), |x0| Tensor::zeros([x0.size()[0], 1], (Kind::Float, Device::Cpu)));
        assert!(format!("{:#}", wrong_shape.unwrap_err()).contains("expected [2]"));
        let nan = evaluate(&x, &quiet(2, 1, 0), |x0| {
            Tensor::full([x0.size()[0]], f64::NAN, (Kind::Float, Device::Cpu))
        });
        assert!(format!("{:#}", nan.unwrap_err()).contains("non-finite"));
        assert!(evaluate(&x, &quiet(0, 1, 0), sum_of_ids).is_err());
        assert!(evaluate(&x, &quiet(2, 0, 0), sum_of_ids).is_err());
        let tokens = [1u16, 2, 3, 4, 5];
        let err = FlatChunks::new(&tokens, 2).unwrap_err();
        assert!(err.to_string().contains("remainder 1"));
    }

    #[test]
    fn unigram_yardsticks_have_closed_forms() {
        // Test split: tokens 0 and 1 equally often → entropy ln 2. Train: 0 three times, 1 once,
        // vocabulary 3 → add-one probabilities 4/7, 2/7, 1/7; cross-entropy −½(ln 4/7 + ln 2/7).
        let u = unigram(&[0, 0, 0, 1], &[0, 1, 1, 0], 3).unwrap();
        assert!((u.entropy_nats - 2f64.ln()).abs() < 1e-12);
        let cross = -0.5 * ((4.0f64 / 7.0).ln() + (2.0f64 / 7.0).ln());
        assert!((u.cross_entropy_nats - cross).abs() < 1e-12);
        assert!(u.cross_entropy_nats >= u.entropy_nats);
        assert!(unigram(&[0], &[3], 3).is_err());
        assert!(unigram(&[0], &[], 3).is_err());
    }

    #[test]
    fn token_hash_ignores_storage_type_and_sees_every_token() {
        let narrow = [1u8, 2, 3, 4];
        let wide = [1i64, 2, 3, 4];
        let a = tokens_sha256(&FlatChunks::new(&narrow, 2).unwrap()).unwrap();
        let b = tokens_sha256(&FlatChunks::new(&wide, 2).unwrap()).unwrap();
        let c = tokens_sha256(&Tensor::from_slice(&wide).view([2, 2])).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        // The same hash computed directly over the little-endian u32 bytes.
        let bytes: Vec<u8> = wide.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect();
        assert_eq!(a, hex::encode(Sha256::digest(&bytes)));
        let changed = tokens_sha256(&FlatChunks::new(&[1u8, 2, 3, 5], 2).unwrap()).unwrap();
        assert_ne!(a, changed);
        assert!(tokens_sha256(&FlatChunks::new(&[-1i64], 1).unwrap()).is_err());
    }
}
