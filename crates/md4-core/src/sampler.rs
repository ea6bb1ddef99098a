//! Ancestral samplers for MD4 and GenMD4 (spec §5, paper Alg. 2 and §4.1).
//!
//! One reverse step from t to s < t: each masked position either stays masked or unmasks to
//! token k; unmasked positions (and every conditioning position) are carried over. After the
//! loop, leftover masks are filled with the argmax of μ_θ from one more network call at t = 0.
//! Every sampler returns the number of network calls it made.

use crate::categorical::{self, Precision};
use crate::{Denoiser, Schedule, Vocab};
use serde::{Deserialize, Serialize};
use std::f64::consts::FRAC_PI_2;
use tch::{Device, Kind, Tensor};

crate::named_enum! {
    /// The discretisation grid of [0, 1] (spec §5.2).
    pub enum Grid("grid") {
        /// t(i) = i/T.
        Uniform = "uniform",
        /// t(i) = cos(π/2·(1 − i/T)) (eq. 6): with a linear schedule, a cosine schedule's uniform grid.
        Cosine = "cosine",
    }
}

impl Grid {
    /// The grid time of step i of T.
    pub fn time(&self, i: i64, steps: i64) -> f64 {
        let tau = i as f64 / steps as f64;
        match self {
            Self::Uniform => tau,
            // cos(π/2·(1−τ)) written as sin(π/2·τ), which is exact at both ends.
            Self::Cosine => (FRAC_PI_2 * tau).sin().clamp(0.0, 1.0),
        }
    }
}

/// Sampler settings; all of them are recorded beside every sample set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Number of reverse steps T.
    pub steps: i64,
    pub grid: Grid,
    pub precision: Precision,
    /// Nucleus truncation of μ_θ before each step (None: off; the paper uses none).
    pub top_p: Option<f64>,
}

impl SamplerConfig {
    /// The paper's text default: T = 1000, cosine grid, float32 Gumbel, no top-p.
    pub fn paper_text() -> Self {
        Self { steps: 1000, grid: Grid::Cosine, precision: Precision::F32Gumbel, top_p: None }
    }
}

/// Positions fixed for the whole trajectory (infilling, prompts; spec §5.4).
#[derive(Debug)]
pub struct Conditioning {
    /// `[B, N]` int64: the given tokens (ignored where `fixed` is false).
    pub tokens: Tensor,
    /// `[B, N]` bool: true where the token is given.
    pub fixed: Tensor,
}

impl Conditioning {
    /// `prefix` at the start and `suffix` at the end of each of `batch` sequences of `seq_len`
    /// tokens; the positions between them are generated (infilling, paper Fig. 10). An empty
    /// suffix is a plain prompt. Errors when the two do not leave a position free.
    pub fn infill(
        prefix: &[i64],
        suffix: &[i64],
        seq_len: i64,
        batch: i64,
        device: Device,
    ) -> Result<Self, String> {
        let (p, q) = (prefix.len() as i64, suffix.len() as i64);
        if p + q >= seq_len {
            return Err(format!(
                "prefix ({p} tokens) and suffix ({q} tokens) leave nothing to generate in {seq_len} positions"
            ));
        }
        let mut row = vec![0i64; seq_len as usize];
        row[..p as usize].copy_from_slice(prefix);
        row[(seq_len - q) as usize..].copy_from_slice(suffix);
        let tokens = Tensor::from_slice(&row).view([1, seq_len]).repeat([batch, 1]).to_device(device);
        let pos = Tensor::arange(seq_len, (Kind::Int64, device));
        let fixed = pos.lt(p).logical_or(&pos.ge(seq_len - q)).view([1, seq_len]).repeat([batch, 1]);
        Ok(Self { tokens, fixed })
    }
}

/// Samples and their cost.
#[derive(Debug)]
pub struct SampleOutput {
    /// `[B, N]` int64 in 0..V (no masks left).
    pub tokens: Tensor,
    /// Network evaluations made, the final argmax fill included.
    pub network_calls: i64,
    /// Positions still masked after the last step, filled by argmax.
    pub argmax_filled: i64,
    /// `[B, N]` int64: the step (1..=T, counted from the start of sampling) at which each
    /// position was revealed; T + 1 for the argmax fill, 0 for conditioning positions.
    pub reveal_step: Tensor,
}

/// How the reverse step turns μ_θ into the stay/unmask categorical.
enum Reverse<'a> {
    /// MD4: unmask to k with (α_s−α_t)/(1−α_t)·μ_k, stay with (1−α_s)/(1−α_t).
    Scalar(&'a Schedule),
    /// GenMD4 with α_{t,i} = 1 − (1−ε)t^{w_i}: unmask to i with (1−(s/t)^{w_i})·μ_i,
    /// stay with Σ_i (s/t)^{w_i} μ_i.
    PerToken(&'a Tensor),
}

/// Keep the smallest set of most probable tokens whose mass reaches p; zero the rest.
///
/// # Shapes
/// `probs: [R, V]` → `[R, V]` renormalised.
pub fn top_p_filter(probs: &Tensor, p: f64) -> Tensor {
    let (sorted, idx) = probs.sort(-1, true);
    let before = sorted.cumsum(-1, sorted.kind()) - &sorted;
    let keep_sorted = before.lt(p);
    let keep = keep_sorted.zeros_like().scatter(-1, &idx, &keep_sorted);
    let kept = probs * keep.to_kind(probs.kind());
    &kept / kept.sum_dim_intlist([-1i64].as_slice(), true, kept.kind())
}

fn initial_state(
    vocab: Vocab,
    batch: i64,
    seq_len: i64,
    cond: Option<&Conditioning>,
    device: Device,
) -> Tensor {
    let all_masked = Tensor::full([batch, seq_len], vocab.mask_id(), (Kind::Int64, device));
    match cond {
        None => all_masked,
        Some(c) => {
            assert_eq!(c.tokens.size(), vec![batch, seq_len], "conditioning tokens must be [B, N]");
            c.tokens.where_self(&c.fixed, &all_masked)
        }
    }
}

/// The (V+1)-way categorical of one reverse step at every position.
///
/// # Shapes
/// `logits: [B, N, V]` → `[B, N, V+1]` float64 (last column: stay masked).
fn step_probs(logits: &Tensor, reverse: &Reverse, t: f64, s: f64, top_p: Option<f64>) -> Tensor {
    let mut mu = logits.to_kind(Kind::Double).softmax(-1, Kind::Double);
    if let Some(p) = top_p {
        let shape = mu.size();
        mu = top_p_filter(&mu.view([-1, shape[2]]), p).view(shape.as_slice());
    }
    match reverse {
        Reverse::Scalar(schedule) => {
            let unmask = (schedule.alpha(s) - schedule.alpha(t)) / schedule.one_minus_alpha(t);
            let stay = schedule.one_minus_alpha(s) / schedule.one_minus_alpha(t);
            Tensor::cat(&[&mu * unmask, mu.narrow(2, 0, 1).ones_like() * stay], 2)
        }
        Reverse::PerToken(w) => {
            // (s/t)^{w_i}: the per-token probability of staying masked from t to s (ε cancels).
            let ratio = (s / t).max(0.0);
            let stay_i =
                if ratio == 0.0 { w.zeros_like() } else { (w.to_kind(Kind::Double) * ratio.ln()).exp() }
                    .to_device(mu.device());
            let unmask = &mu * (1.0 - &stay_i);
            let stay = (&mu * &stay_i).sum_dim_intlist([-1i64].as_slice(), true, Kind::Double);
            Tensor::cat(&[unmask, stay], 2)
        }
    }
}

fn draw(probs: &Tensor, precision: Precision) -> Tensor {
    let shape = probs.size();
    let flat = probs.view([-1, shape[2]]);
    categorical::sample(&flat, precision).view([shape[0], shape[1]])
}

/// The shared reverse loop. With `cache`, the network call is skipped when no token changed
/// since the last call and the denoiser ignores t (exact: the logits would be identical).
fn run(
    denoiser: &impl Denoiser,
    reverse: Reverse,
    vocab: Vocab,
    request: &SampleRequest,
    cache: bool,
) -> SampleOutput {
    let &SampleRequest { batch, seq_len, cond, sampler: cfg, device } = request;
    assert!(cfg.steps >= 1, "the sampler needs at least one step");
    let _guard = tch::no_grad_guard();
    let mask_id = vocab.mask_id();
    let mut zt = initial_state(vocab, batch, seq_len, cond, device);
    let reuse = cache && !denoiser.time_dependent();
    let mut cached: Option<Tensor> = None;
    let mut calls = 0;
    let mut reveal_step = zt.zeros_like();
    for j in 0..cfg.steps {
        let t = cfg.grid.time(cfg.steps - j, cfg.steps);
        let s = cfg.grid.time(cfg.steps - j - 1, cfg.steps);
        let logits = match (&cached, reuse) {
            (Some(l), true) => l.shallow_clone(),
            _ => {
                calls += 1;
                denoiser.logits(&zt, &Tensor::full([batch], t, (Kind::Float, device)), false)
            }
        };
        // Only masked positions move, so the categorical is built and drawn at those rows
        // alone (with V = 50,257 the [B, N, V] float64 work dominated a step otherwise).
        let rows = zt.eq(mask_id).view([-1]).nonzero().squeeze_dim(1);
        if rows.size()[0] == 0 {
            cached = Some(logits);
            continue;
        }
        let v = logits.size()[2];
        let picked = logits.view([-1, v]).index_select(0, &rows).unsqueeze(0);
        let probs = step_probs(&picked, &reverse, t, s, cfg.top_p);
        let drawn = draw(&probs, cfg.precision).view([-1]);
        // A drawn V means "stay masked", which writes the mask id back in place.
        let next = zt.view([-1]).index_put(&[Some(rows)], &drawn, false).view([batch, seq_len]);
        let revealed = next.ne_tensor(&zt);
        let changed = revealed.any().int64_value(&[]) != 0;
        reveal_step = reveal_step.masked_fill(&revealed, j + 1);
        zt = next;
        cached = if changed { None } else { Some(logits) };
    }
    let still = zt.eq(mask_id);
    let argmax_filled = still.sum(Kind::Int64).int64_value(&[]);
    if argmax_filled > 0 {
        calls += 1;
        let logits = denoiser.logits(&zt, &Tensor::zeros([batch], (Kind::Float, device)), false);
        zt = logits.argmax(-1, false).where_self(&still, &zt);
        reveal_step = reveal_step.masked_fill(&still, cfg.steps + 1);
    }
    SampleOutput { tokens: zt, network_calls: calls, argmax_filled, reveal_step }
}

/// What a sampler draws: `batch` sequences of `seq_len` tokens with `sampler`'s settings on
/// `device`, keeping the positions that `cond` fixes.
#[derive(Clone, Copy, Debug)]
pub struct SampleRequest<'a> {
    pub batch: i64,
    pub seq_len: i64,
    pub cond: Option<&'a Conditioning>,
    pub sampler: &'a SamplerConfig,
    pub device: Device,
}

/// MD4 ancestral sampling (Alg. 2): one network call per step, then the argmax fill.
///
/// # Shapes
/// → tokens `[B, N]` int64 on `device`.
pub fn ancestral_sample(
    denoiser: &impl Denoiser,
    schedule: &Schedule,
    vocab: Vocab,
    request: &SampleRequest,
) -> SampleOutput {
    run(denoiser, Reverse::Scalar(schedule), vocab, request, false)
}

/// [`ancestral_sample`] that skips the network call when no token changed since the previous
/// call and the denoiser is time-independent (MDLM's `ddpm_cache`); from the same seed it returns
/// exactly the same samples with fewer calls. For a time-dependent denoiser it calls every step.
pub fn cached_ancestral_sample(
    denoiser: &impl Denoiser,
    schedule: &Schedule,
    vocab: Vocab,
    request: &SampleRequest,
) -> SampleOutput {
    run(denoiser, Reverse::Scalar(schedule), vocab, request, true)
}

/// GenMD4 ancestral sampling from the per-token stay-masked probabilities (s/t)^{w_i} of §4.1
/// (the reference code has no GenMD4 sampler).
///
/// # Shapes
/// `w: [V]` the learned exponents (> 0) → tokens `[B, N]`.
pub fn genmd4_sample(
    denoiser: &impl Denoiser,
    w: &Tensor,
    vocab: Vocab,
    request: &SampleRequest,
) -> SampleOutput {
    assert_eq!(w.size(), vec![vocab.size()], "w must be [V]");
    run(denoiser, Reverse::PerToken(w), vocab, request, false)
}
