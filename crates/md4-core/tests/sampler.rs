//! Samplers (spec §5) against the exact distribution: with the oracle denoiser, 20,000 samples
//! pass a χ² test against p(x) at a fixed seed; the cached sampler reproduces the uncached one
//! exactly with fewer calls; infilling never touches the given tokens and samples the right
//! conditional; float32 Gumbel-argmax truncates the far tail while float64 sampling does not.

use md4_core::categorical::{self, Precision, categorical_from_uniform, gumbel_argmax_from_uniform};
use md4_core::sampler::{
    Conditioning, Grid, SampleOutput, SampleRequest, SamplerConfig, ancestral_sample,
    cached_ancestral_sample, genmd4_sample, top_p_filter,
};
use md4_core::testing::{Oracle, chi_square, chi_square_critical_999, standard_oracle as oracle};
use md4_core::{MaskingSchedule, Schedule, Vocab};
use tch::{Device, Kind, Tensor};

const SAMPLES: i64 = 20_000;

fn histogram(o: &Oracle, x: &Tensor) -> Vec<i64> {
    Vec::try_from(o.index_of(x).bincount(None::<Tensor>, 27)).unwrap()
}

fn probs(o: &Oracle) -> Vec<f64> {
    Vec::try_from(&o.probs).unwrap()
}

fn assert_matches_p(o: &Oracle, x: &Tensor, what: &str) {
    let stat = chi_square(&histogram(o, x), &probs(o));
    let critical = chi_square_critical_999(26);
    assert!(stat < critical, "{what}: χ² = {stat:.1} ≥ {critical:.1} (df 26, p = 0.001)");
}

fn config(grid: Grid, precision: Precision) -> SamplerConfig {
    SamplerConfig { steps: 200, grid, precision, top_p: None }
}

/// [`SAMPLES`] sequences of 3 tokens from the oracle under the linear schedule, 200 steps.
fn sample_oracle(o: &Oracle, cond: Option<&Conditioning>, grid: Grid, precision: Precision) -> SampleOutput {
    let sampler = config(grid, precision);
    let req = SampleRequest { batch: SAMPLES, seq_len: 3, cond, sampler: &sampler, device: Device::Cpu };
    ancestral_sample(o, &Schedule::md4(MaskingSchedule::Linear), o.vocab, &req)
}

#[test]
fn ancestral_samples_follow_p_on_both_grids_and_precisions() {
    let _rng = md4_core::testing::rng_lock();
    let o = oracle();
    for (grid, precision) in [
        (Grid::Uniform, Precision::F32Gumbel),
        (Grid::Cosine, Precision::F32Gumbel),
        (Grid::Cosine, Precision::F64),
    ] {
        tch::manual_seed(11);
        let out = sample_oracle(&o, None, grid, precision);
        assert_eq!(out.tokens.lt(3).all().int64_value(&[]), 1, "no mask may remain");
        assert!(out.network_calls >= 200 && out.network_calls <= 201);
        let steps = out.reveal_step;
        assert!(steps.ge(1).all().int64_value(&[]) == 1 && steps.le(201).all().int64_value(&[]) == 1);
        assert_matches_p(&o, &out.tokens, &format!("{grid:?} {precision:?}"));
    }
}

#[test]
fn a_wrong_distribution_fails_the_test() {
    // The χ² check has power: samples from a different distribution are rejected.
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(12);
    let o = oracle();
    let other =
        Oracle::new(Vocab::new(3), 3, &(0..27).map(|s| ((s * 13) % 7 + 1) as f64).collect::<Vec<_>>());
    let stat = chi_square(&histogram(&o, &other.sample(SAMPLES)), &probs(&o));
    assert!(stat > chi_square_critical_999(26), "χ² {stat}");
}

#[test]
fn cached_sampler_is_exact_and_cheaper() {
    // With more steps than tokens most steps change nothing, and a time-independent denoiser's
    // output can be reused: 16 sequences × 3 tokens over 1000 steps.
    let o = oracle();
    let schedule = Schedule::md4(MaskingSchedule::Linear);
    let cfg = SamplerConfig { steps: 1000, grid: Grid::Cosine, precision: Precision::F32Gumbel, top_p: None };
    let _rng = md4_core::testing::rng_lock();
    let req = SampleRequest { batch: 16, seq_len: 3, cond: None, sampler: &cfg, device: Device::Cpu };
    tch::manual_seed(5);
    let plain = ancestral_sample(&o, &schedule, o.vocab, &req);
    tch::manual_seed(5);
    let again = ancestral_sample(&o, &schedule, o.vocab, &req);
    assert!(plain.tokens.equal(&again.tokens), "sampling must be deterministic given the seed");
    tch::manual_seed(5);
    let cached = cached_ancestral_sample(&o, &schedule, o.vocab, &req);
    assert!(plain.tokens.equal(&cached.tokens), "cached sampler must reproduce the samples exactly");
    assert!(plain.network_calls >= 1000);
    assert!(cached.network_calls <= 16 * 3 + 2, "cached sampler made {} calls", cached.network_calls);
    // A time-dependent denoiser is never cached.
    let timed = oracle().with_genmd4(&[1.0, 1.0, 1.0]);
    tch::manual_seed(5);
    let out = cached_ancestral_sample(&timed, &schedule, timed.vocab, &req);
    assert!(out.network_calls >= 1000);
}

#[test]
fn infilling_keeps_given_tokens_and_samples_the_conditional() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(6);
    let o = oracle();
    // Fix the middle token to 2; sample the other two.
    let tokens = Tensor::from_slice(&[0i64, 2, 0]).unsqueeze(0).repeat([SAMPLES, 1]);
    let fixed = Tensor::from_slice(&[false, true, false]).unsqueeze(0).repeat([SAMPLES, 1]);
    let cond = Conditioning { tokens, fixed };
    let out = sample_oracle(&o, Some(&cond), Grid::Cosine, Precision::F64);
    assert_eq!(out.tokens.select(1, 1).eq(2).all().int64_value(&[]), 1, "a given token changed");
    assert_eq!(
        out.reveal_step.select(1, 1).eq(0).all().int64_value(&[]),
        1,
        "given tokens are never revealed"
    );
    // p(x_0, x_2 | x_1 = 2) over 9 cells.
    let p = probs(&o);
    let cells: Vec<usize> = (0..27).filter(|s| (s / 3) % 3 == 2).collect();
    let total: f64 = cells.iter().map(|&s| p[s]).sum();
    let expected: Vec<f64> = cells.iter().map(|&s| p[s] / total).collect();
    let hist = histogram(&o, &out.tokens);
    let counts: Vec<i64> = cells.iter().map(|&s| hist[s]).collect();
    assert_eq!(counts.iter().sum::<i64>(), SAMPLES);
    let stat = chi_square(&counts, &expected);
    assert!(stat < 26.12, "conditional χ² = {stat:.1} (df 8, p = 0.001: 26.12)");
}

#[test]
fn genmd4_sampler_follows_p() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(7);
    let w = [0.5, 1.0, 2.0];
    let o = oracle().with_genmd4(&w);
    let wt = Tensor::from_slice(&w).to_kind(Kind::Float);
    for grid in [Grid::Uniform, Grid::Cosine] {
        let out = genmd4_sample(
            &o,
            &wt,
            o.vocab,
            &SampleRequest {
                batch: SAMPLES,
                seq_len: 3,
                cond: None,
                sampler: &config(grid, Precision::F64),
                device: Device::Cpu,
            },
        );
        assert_matches_p(&o, &out.tokens, &format!("GenMD4 {grid:?}"));
    }
}

#[test]
fn top_p_keeps_the_smallest_set_reaching_p() {
    let p = Tensor::from_slice(&[0.15f64, 0.5, 0.05, 0.3]).unsqueeze(0);
    let kept: Vec<f64> = Vec::try_from(top_p_filter(&p, 0.8).squeeze()).unwrap();
    let want = [0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8];
    for (a, b) in kept.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{kept:?}");
    }
    let kept: Vec<f64> = Vec::try_from(top_p_filter(&p, 0.81).squeeze()).unwrap();
    assert!(kept[0] > 0.0 && kept[2] == 0.0, "{kept:?}");
}

#[test]
fn cosine_grid_warps_uniform_time() {
    assert_eq!(Grid::Cosine.time(0, 10), 0.0);
    assert!((Grid::Cosine.time(10, 10) - 1.0).abs() < 1e-15);
    // With a linear schedule the cosine grid gives the cosine schedule's α on a uniform grid.
    let lin = Schedule::exact(MaskingSchedule::Linear);
    let cos = Schedule::exact(MaskingSchedule::Cosine);
    for i in 0..=10 {
        let a = lin.alpha(Grid::Cosine.time(i, 10));
        let b = cos.alpha(Grid::Uniform.time(i, 10));
        assert!((a - b).abs() < 1e-12, "step {i}: {a} vs {b}");
    }
}

/// A category with probability ratio r against the stay-masked mass.
const TINY_RATIO: f64 = 5e-10;

#[test]
fn float32_gumbel_can_never_emit_a_token_below_its_noise_range() {
    // Worst case for the mask: the smallest uniform (0, clamped to tiny) for the mask and the
    // largest float32 below 1 for the tail token. Even then the mask wins, so it always does.
    let logp = Tensor::from_slice(&[0.0f32, TINY_RATIO.ln() as f32]).unsqueeze(0);
    let u = Tensor::from_slice(&[0.0f32, 1.0 - f32::EPSILON / 2.0]).unsqueeze(0);
    assert_eq!(gumbel_argmax_from_uniform(&logp, &u).int64_value(&[0]), 0);
    // A token at ratio 1e−6 can win with favourable noise.
    let logp = Tensor::from_slice(&[0.0f32, (1e-6f64).ln() as f32]).unsqueeze(0);
    assert_eq!(gumbel_argmax_from_uniform(&logp, &u).int64_value(&[0]), 1);
    // Empirically: 5,000 rows × 10,000 tail tokens, no emission.
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(8);
    let (rows, tail) = (5_000, 10_000);
    let mut p = vec![TINY_RATIO; tail + 1];
    p[0] = 1.0;
    let probs =
        Tensor::from_slice(&p).to_kind(Kind::Float).unsqueeze(0).expand([rows, tail as i64 + 1], false);
    let drawn = categorical::sample(&probs.contiguous(), Precision::F32Gumbel);
    assert_eq!(drawn.ne(0).sum(Kind::Int64).int64_value(&[]), 0);
}

#[test]
fn float64_sampling_emits_tiny_tokens_at_their_rate() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(9);
    // One stay-masked category of mass 1 and 10⁶ tail tokens of ratio 5e−10 each.
    let tail = 1_000_000usize;
    let mut p = vec![TINY_RATIO; tail + 1];
    p[0] = 1.0;
    let probs = Tensor::from_slice(&p).unsqueeze(0);
    let draws = 400_000;
    let u = Tensor::rand([draws], (Kind::Double, Device::Cpu));
    let drawn = categorical_from_uniform(&probs, &u);
    let hits = drawn.ne(0).sum(Kind::Int64).int64_value(&[]) as f64;
    let rate = tail as f64 * TINY_RATIO / (1.0 + tail as f64 * TINY_RATIO);
    let (mean, sd) = (draws as f64 * rate, (draws as f64 * rate * (1.0 - rate)).sqrt());
    assert!((hits - mean).abs() < 4.0 * sd, "{hits} tail draws, expected {mean:.1} ± {sd:.1}");
    assert!(hits > 0.0);
}
