//! MD4's ELBO against exact answers (spec §3): with the oracle denoiser E[x_0 | z_t] the
//! continuous-time bound equals −log p(x) for every schedule (log-SNR invariance, §3.2); the
//! finite-T bound lies above it and decreases toward it as T grows; a uniform denoiser scores
//! (1−ε)·log2 V bits per token.

use md4_core::elbo::{continuous_nelbo, discrete_nelbo, masked_log_likelihood, reconstruction_nats};
use md4_core::forward::antithetic_times;
use md4_core::testing::{Oracle, Uniform, mean_se, repeat_row, standard_oracle as oracle};
use md4_core::{Denoiser, MaskingSchedule, Md4, Objective, Schedule, Vocab};
use tch::{Kind, Tensor};

/// Every sequence's probability and index for a few representative rows.
const ROWS: [[i64; 3]; 4] = [[0, 0, 0], [2, 1, 0], [1, 2, 2], [2, 2, 2]];

/// −S(z) = −Σ_{masked n} log μ_n(z)[x_n] and the mask pattern of every z in {x, masked}^N.
fn pattern_losses(o: &Oracle, x: &[i64]) -> (Vec<Vec<bool>>, Vec<f64>) {
    let n = x.len();
    let patterns: Vec<Vec<bool>> =
        (0..(1 << n)).map(|m: usize| (0..n).map(|i| m >> i & 1 == 1).collect()).collect();
    let zs: Vec<i64> = patterns
        .iter()
        .flat_map(|p| p.iter().zip(x).map(|(&m, &xi)| if m { o.vocab.mask_id() } else { xi }))
        .collect();
    let zt = Tensor::from_slice(&zs).view([patterns.len() as i64, n as i64]);
    let x0 = repeat_row(x, patterns.len() as i64);
    // The MD4 oracle ignores t.
    let logits =
        o.logits(&zt, &Tensor::zeros([patterns.len() as i64], (Kind::Float, tch::Device::Cpu)), false);
    let neg_s = (-masked_log_likelihood(&logits, &x0, &zt, o.vocab)).to_kind(Kind::Double);
    (patterns, Vec::try_from(neg_s).unwrap())
}

/// E_{z ~ q(z_t|x)}[−S(z)] at α_t, by enumeration.
fn expected_masked_loss(patterns: &[Vec<bool>], neg_s: &[f64], alpha: f64) -> f64 {
    patterns
        .iter()
        .zip(neg_s)
        .map(|(p, ns)| p.iter().map(|&m| if m { 1.0 - alpha } else { alpha }).product::<f64>() * ns)
        .sum()
}

/// The continuous-time bound without Monte Carlo: ∫ |α'/(1−α)| E_z[−S] dt by the midpoint rule
/// (the integrand is smooth: the masked fraction cancels the 1/t of the weight).
fn exact_continuous_nelbo(o: &Oracle, x: &[i64], schedule: &Schedule) -> f64 {
    let (patterns, neg_s) = pattern_losses(o, x);
    let k = 20_000;
    let integral: f64 = (0..k)
        .map(|i| {
            let t = (i as f64 + 0.5) / k as f64;
            -schedule.weight(t) * expected_masked_loss(&patterns, &neg_s, schedule.alpha(t))
        })
        .sum::<f64>()
        / k as f64;
    integral + reconstruction_nats(schedule, x.len() as i64, o.vocab)
}

const KINDS: [MaskingSchedule; 3] =
    [MaskingSchedule::Linear, MaskingSchedule::Cosine, MaskingSchedule::Polynomial { exponent: 2.0 }];

#[test]
fn continuous_elbo_with_oracle_is_tight_for_every_schedule() {
    // With the exact denoiser the continuous bound equals −log p(x) whatever the schedule
    // (only the endpoints of the log-SNR matter, §3.2); with the ε-shift it moves by O(Nε log V).
    let o = oracle();
    for kind in KINDS {
        for row in ROWS {
            let nll = o.nll(&repeat_row(&row, 1)).double_value(&[0]);
            let exact = exact_continuous_nelbo(&o, &row, &Schedule::exact(kind));
            assert!((exact - nll).abs() < 1e-5, "{kind:?} x {row:?}: bound {exact} vs −log p {nll}");
            let shifted = exact_continuous_nelbo(&o, &row, &Schedule::md4(kind));
            assert!(
                (shifted - nll).abs() < 3.0 * 1e-4 * 3.0f64.ln() * 3.0,
                "{kind:?} x {row:?}: {shifted} vs {nll}"
            );
        }
    }
}

#[test]
fn continuous_estimator_matches_the_exact_bound() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(0);
    let o = oracle();
    let b = 100_000;
    for kind in KINDS {
        for schedule in [Schedule::exact(kind), Schedule::md4(kind)] {
            for row in ROWS {
                let x = repeat_row(&row, b);
                let t = antithetic_times(b, tch::Device::Cpu);
                let nelbo = continuous_nelbo(&o, &x, &t, &schedule, o.vocab, false);
                let (mean, se) = mean_se(&nelbo);
                let exact = exact_continuous_nelbo(&o, &row, &schedule);
                assert!(
                    (mean - exact).abs() < 3.0 * se,
                    "{kind:?} eps {} x {row:?}: estimate {mean:.4} ± {se:.4} vs exact {exact:.4}",
                    schedule.eps
                );
                // The unshifted linear weight 1/t has a log-divergent variance; SE stays ~0.05.
                assert!(se < 0.1, "SE {se} too large for a meaningful test");
            }
        }
    }
}

/// The finite-T bound by exact enumeration of steps and mask patterns (no Monte Carlo):
/// Σ_i (α_{s(i)} − α_{t(i)})/(1 − α_{t(i)}) · E_{z ~ q(z_{t(i)}|x)}[−S(z)] + N(1−α_0) log V.
fn exact_discrete_nelbo(o: &Oracle, x: &[i64], steps: i64, schedule: &Schedule) -> f64 {
    let (patterns, neg_s) = pattern_losses(o, x);
    let mut total = reconstruction_nats(schedule, x.len() as i64, o.vocab);
    for i in 1..=steps {
        let (t, s) = (i as f64 / steps as f64, (i - 1) as f64 / steps as f64);
        let weight = (schedule.alpha(s) - schedule.alpha(t)) / schedule.one_minus_alpha(t);
        total += weight * expected_masked_loss(&patterns, &neg_s, schedule.alpha(t));
    }
    total
}

/// The finite-T bound of one model is an upper bound on −log p_T(x) of the *discrete-time model*
/// p_T, not on −log p(x): per sequence it can fall below −log p(x) where p_T(x) > p(x). Its
/// expectation over the data, though, bounds the entropy H(p) and tightens as T grows.
#[test]
fn finite_t_bound_is_above_entropy_and_decreases_to_it() {
    let o = oracle();
    let probs: Vec<f64> = Vec::try_from(&o.probs).unwrap();
    let rows: Vec<Vec<i64>> =
        Vec::<i64>::try_from(o.seqs.flatten(0, -1)).unwrap().chunks(3).map(|c| c.to_vec()).collect();
    let entropy: f64 = probs.iter().map(|p| -p * p.ln()).sum();
    for schedule in [Schedule::exact(MaskingSchedule::Linear), Schedule::exact(MaskingSchedule::Cosine)] {
        let bounds: Vec<f64> = [2, 10, 100, 1000]
            .iter()
            .map(|&t| {
                rows.iter().zip(&probs).map(|(x, p)| p * exact_discrete_nelbo(&o, x, t, &schedule)).sum()
            })
            .collect();
        for w in bounds.windows(2) {
            assert!(w[0] > w[1], "{schedule:?}: E[L_T] must decrease with T: {bounds:?}");
        }
        assert!(bounds[3] > entropy, "{schedule:?}: E[L_1000] {} must exceed H(p) {entropy}", bounds[3]);
        // The gap closes like 1/T.
        let (gap100, gap1000) = (bounds[2] - entropy, bounds[3] - entropy);
        assert!(gap1000 < 0.2 * gap100 && gap1000 < 1e-2, "{schedule:?}: gaps {gap100} → {gap1000}");
    }
}

#[test]
fn discrete_estimator_matches_exact_enumeration() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(1);
    let o = oracle();
    let b = 20_000;
    for schedule in [Schedule::exact(MaskingSchedule::Linear), Schedule::md4(MaskingSchedule::Cosine)] {
        for steps in [2, 10, 1000] {
            for row in [ROWS[1], ROWS[3]] {
                let x = repeat_row(&row, b);
                let u = antithetic_times(b, tch::Device::Cpu);
                let est = discrete_nelbo(&o, &x, &u, steps, &schedule, o.vocab, false);
                let (mean, se) = mean_se(&est);
                let exact = exact_discrete_nelbo(&o, &row, steps, &schedule);
                assert!(
                    (mean - exact).abs() < 3.0 * se + 1e-6,
                    "{schedule:?} T {steps} x {row:?}: estimate {mean:.4} ± {se:.4} vs exact {exact:.4}"
                );
            }
        }
    }
}

#[test]
fn uniform_denoiser_scores_one_minus_eps_log2_v_bits() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(2);
    for v in [27i64, 256, 50257] {
        let vocab = Vocab::new(v);
        let objective =
            Md4 { denoiser: Uniform { vocab }, schedule: Schedule::md4(MaskingSchedule::Linear), vocab };
        // B·N·V logits per batch kept around 10⁷ floats.
        let (b, n) = if v > 1000 { (8, 32) } else { (64, 256) };
        let x = Tensor::randint(v, [b, n], (Kind::Int64, tch::Device::Cpu));
        // Average several antithetic batches; each per-sequence value is an unbiased estimate.
        let values: Vec<Tensor> = (0..16).map(|_| objective.loss(&x, false).nelbo / n as f64).collect();
        let (mean, se) = mean_se(&Tensor::cat(&values, 0));
        let want = (1.0 - 1e-4) * (v as f64).ln();
        assert!((mean - want).abs() < 3.0 * se, "V {v}: {mean} ± {se} nats/token vs {want}");
        assert!(se / want < 0.05, "relative SE {} too large for a meaningful test", se / want);
        // The same quantity in bits per token.
        let bits = md4_core::units::nats_to_bits(mean);
        assert!((bits - (1.0 - 1e-4) * (v as f64).log2()).abs() < 3.0 * se / std::f64::consts::LN_2);
    }
}

#[test]
fn objective_is_mean_nelbo_per_token() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(3);
    let vocab = Vocab::new(5);
    let objective =
        Md4 { denoiser: Uniform { vocab }, schedule: Schedule::md4(MaskingSchedule::Cosine), vocab };
    let x = Tensor::randint(5, [8, 16], (Kind::Int64, tch::Device::Cpu));
    let out = objective.loss(&x, false);
    let from_nelbo = out.nelbo.mean(Kind::Double).double_value(&[]) / 16.0;
    assert!((out.objective.double_value(&[]) - from_nelbo).abs() < 1e-5);
    assert_eq!(out.nelbo.size(), vec![8]);
}

/// The infilling bound (spec §5.4) with the exact denoiser and no ε-shift is tight for the
/// conditional: the MC estimate of E_t[conditional_nelbo] equals −log p(x₁, x₂ | x₀) within
/// 3.5 SE, and with every position free it is the unconditional estimator draw for draw.
#[test]
fn conditional_bound_is_the_conditional_likelihood_with_the_oracle() {
    use md4_core::elbo::conditional_nelbo;
    let _rng = md4_core::testing::rng_lock();
    let o = oracle();
    let b = 100_000;
    let schedule = Schedule::exact(MaskingSchedule::Linear);
    for row in ROWS {
        let x = repeat_row(&row, b);
        let free = Tensor::from_slice(&[false, true, true]).view([1, 3]).repeat([b, 1]);
        tch::manual_seed(1);
        let t = antithetic_times(b, tch::Device::Cpu);
        let est = conditional_nelbo(&o, &x, &free, &t, &schedule, o.vocab, false);
        let (mean, se) = mean_se(&est);
        // −log p(x1, x2 | x0) = −log p(x) + log Σ_{y: y0 = x0} p(y).
        let first = o.seqs.select(1, 0).eq(row[0]).to_kind(Kind::Double);
        let marginal = (&o.probs * first).sum(Kind::Double).double_value(&[]);
        let exact =
            -o.probs.double_value(&[o.index_of(&repeat_row(&row, 1)).int64_value(&[0])]).ln() + marginal.ln();
        assert!((mean - exact).abs() < 3.5 * se, "x {row:?}: {mean:.4} ± {se:.4} vs exact {exact:.4}");
        assert!(se < 0.05, "SE {se}");
        // All free: the same draws as continuous_nelbo.
        let all = free.ones_like();
        tch::manual_seed(2);
        let a = conditional_nelbo(
            &o,
            &x.narrow(0, 0, 64),
            &all.narrow(0, 0, 64),
            &t.narrow(0, 0, 64),
            &schedule,
            o.vocab,
            false,
        );
        tch::manual_seed(2);
        let c = continuous_nelbo(&o, &x.narrow(0, 0, 64), &t.narrow(0, 0, 64), &schedule, o.vocab, false);
        assert!((a - c).abs().max().double_value(&[]) < 1e-5);
    }
}
