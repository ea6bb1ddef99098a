//! Common random numbers (issue 12): every sequence's draws come from a stream keyed by
//! (seed, pass, sequence), so per-sequence values do not depend on batching, two scorings of one
//! model agree exactly, and the paired difference of two models is far more precise than either.

use md4_core::baselines::{Campbell, D3pm, D3pmConfig, Sedd};
use md4_core::testing::{Uniform, rng_lock, standard_oracle};
use md4_core::{GenMd4, GenMd4Schedule, MaskingSchedule, Md4, Objective, Schedule, Vocab};
use md4_eval::{EvalConfig, EvalResult, evaluate, paired_difference};
use tch::{Device, Kind, Tensor, nn};

fn quiet(batch_size: usize, passes: usize, seed: i64) -> EvalConfig {
    EvalConfig { progress: false, ..EvalConfig::new(batch_size, passes, seed, Device::Cpu) }
}

fn score(objective: &dyn Objective, x: &Tensor, config: &EvalConfig) -> EvalResult {
    evaluate(x, config, |x0| objective.loss(x0, false).nelbo.to_kind(Kind::Double)).unwrap()
}

/// 150 sequences drawn from the standard oracle (3 tokens over 3 symbols).
fn oracle_data() -> Tensor {
    tch::manual_seed(0);
    standard_oracle().sample(150)
}

/// Every objective that draws forward-process noise gives bit-identical per-sequence values for
/// batch sizes 8 and 64, and for batches visited in a shuffled order.
#[test]
fn per_sequence_values_do_not_depend_on_batching() {
    let _rng = rng_lock();
    let x = oracle_data();
    let vocab = Vocab::new(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let objectives: Vec<(&str, Box<dyn Objective>)> = vec![
        (
            "md4",
            Box::new(Md4 {
                denoiser: standard_oracle(),
                schedule: Schedule::md4(MaskingSchedule::Linear),
                vocab,
            }),
        ),
        ("sedd", Box::new(Sedd::new(standard_oracle(), Schedule::md4(MaskingSchedule::Cosine), vocab))),
        (
            "campbell",
            Box::new(Campbell::new(standard_oracle(), Schedule::md4(MaskingSchedule::Linear), vocab)),
        ),
        ("d3pm", Box::new(D3pm::new(standard_oracle(), vocab, D3pmConfig { steps: 100, aux_weight: 0.0 }))),
        (
            "genmd4",
            Box::new(GenMd4 {
                denoiser: Uniform { vocab },
                schedule: GenMd4Schedule::new(&vs.root(), vocab, 1.5),
            }),
        ),
    ];
    for (name, objective) in &objectives {
        let small = score(objective.as_ref(), &x, &quiet(8, 2, 5));
        let large = score(objective.as_ref(), &x, &quiet(64, 2, 5));
        assert_eq!(small.per_sequence_nats, large.per_sequence_nats, "{name}: batch 8 vs 64");
        // Batches of 10 visited in a shuffled order, each under its own keyed scope.
        let order = [7usize, 2, 14, 0, 9, 4, 11, 1, 13, 6, 3, 10, 8, 12, 5];
        let mut shuffled = vec![0.0; 150];
        for pass in 0..2u32 {
            for &batch in &order {
                let rows: Vec<u64> = (batch as u64 * 10..batch as u64 * 10 + 10).collect();
                let x0 = x.narrow(0, batch as i64 * 10, 10);
                let v = md4_core::noise::keyed(5, pass, &rows, || {
                    tch::no_grad(|| objective.loss(&x0, false).nelbo.to_kind(Kind::Double))
                });
                for (i, v) in Vec::<f64>::try_from(&v).unwrap().into_iter().enumerate() {
                    shuffled[batch * 10 + i] += v;
                }
            }
        }
        let shuffled: Vec<f64> = shuffled.iter().map(|s| s / 2.0).collect();
        assert_eq!(small.per_sequence_nats, shuffled, "{name}: shuffled batch order");
        // Another seed draws other noise.
        let other = score(objective.as_ref(), &x, &quiet(8, 2, 6));
        assert_ne!(small.per_sequence_nats, other.per_sequence_nats, "{name}: seeds 5 and 6");
    }
}

/// The same model scored twice (with different batch sizes) differs by exactly 0 with SE 0.
#[test]
fn the_same_model_twice_differs_by_exactly_zero() {
    let _rng = rng_lock();
    let x = oracle_data();
    let vocab = Vocab::new(3);
    let md4 = Md4 { denoiser: standard_oracle(), schedule: Schedule::md4(MaskingSchedule::Cosine), vocab };
    let a = score(&md4, &x, &quiet(16, 3, 1));
    let b = score(&md4, &x, &quiet(50, 3, 1));
    let d = paired_difference(&a, &b).unwrap();
    assert_eq!(d.mean_nats_per_token, 0.0);
    assert_eq!(d.se_nats_per_token, 0.0);
    assert!(!d.resolved());
    assert_eq!(d.n_sequences, 150);
    // Evaluations on different streams or sets are not paired.
    assert!(paired_difference(&a, &score(&md4, &x, &quiet(16, 3, 2))).is_err());
    assert!(paired_difference(&a, &score(&md4, &x.narrow(0, 0, 100), &quiet(16, 3, 1))).is_err());
}

/// With the oracle denoiser both schedules' bounds are tight (E = −log p(x)), so the per-sequence
/// values of linear and cosine share the sequence's difficulty and, on common streams, the
/// draws: the paired SE of their difference is several times smaller than the unpaired
/// √(SE_a² + SE_b²), and the difference is 0 within it.
#[test]
fn paired_standard_error_is_smaller_than_unpaired_with_the_oracle() {
    let _rng = rng_lock();
    tch::manual_seed(1);
    let o = standard_oracle();
    let x = o.sample(2000);
    let vocab = Vocab::new(3);
    let linear =
        Md4 { denoiser: standard_oracle(), schedule: Schedule::exact(MaskingSchedule::Linear), vocab };
    let cosine =
        Md4 { denoiser: standard_oracle(), schedule: Schedule::exact(MaskingSchedule::Cosine), vocab };
    let a = score(&linear, &x, &quiet(500, 1, 3));
    let b = score(&cosine, &x, &quiet(500, 1, 3));
    let d = paired_difference(&a, &b).unwrap();
    let unpaired = (a.se_nats_per_token.powi(2) + b.se_nats_per_token.powi(2)).sqrt();
    let factor = unpaired / d.se_nats_per_token;
    eprintln!(
        "oracle, linear − cosine over 2000 sequences: Δ = {:.5} ± {:.5} nats/token (paired), unpaired SE {:.5}: paired SE {factor:.2}× smaller",
        d.mean_nats_per_token, d.se_nats_per_token, unpaired
    );
    assert!(factor > 1.5, "paired SE only {factor:.2}× smaller than unpaired");
    assert!(d.mean_nats_per_token.abs() < 3.5 * d.se_nats_per_token, "tight bounds differ: {d:?}");
}
