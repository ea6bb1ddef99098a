//! GenMD4 (spec §4): the loss reduces to MD4's polynomial-schedule loss when all w_i are equal;
//! log q, the reconstruction term and — the key property — the w-gradient of the RLOO surrogate
//! is an unbiased estimate of the gradient of the exactly enumerated expected loss.

use md4_core::elbo::masked_log_likelihood;
use md4_core::genmd4::{self, GENMD4_EPS, GENMD4_T1, GenMd4Schedule};
use md4_core::testing::{Oracle, standard_oracle as oracle};
use md4_core::{Denoiser, MaskingSchedule, Schedule, Vocab};
use tch::{Device, Kind, Tensor};

#[test]
fn equal_exponents_reduce_to_md4_polynomial_loss() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(0);
    let vocab = Vocab::new(7);
    let (b, n) = (16, 12);
    let x0 = Tensor::randint(7, [b, n], (Kind::Int64, Device::Cpu));
    let zt = x0.where_self(&Tensor::rand([b, n], (Kind::Float, Device::Cpu)).gt(0.4), &Tensor::from(7i64));
    let logits = Tensor::randn([b, n, 7], (Kind::Float, Device::Cpu));
    let t = Tensor::rand([b], (Kind::Float, Device::Cpu)) * 0.9 + 0.05;
    for w in [0.5, 1.0, 2.0] {
        let general = genmd4::diffusion_loss(
            &logits,
            &x0,
            &zt,
            &t,
            &Tensor::full([7], w, (Kind::Float, Device::Cpu)),
            vocab,
        );
        let md4 = Schedule::exact(MaskingSchedule::Polynomial { exponent: w }).weight_t(&t)
            * masked_log_likelihood(&logits, &x0, &zt, vocab);
        let diff = (&general - &md4).abs().max().double_value(&[]);
        assert!(diff < 1e-4 * md4.abs().max().double_value(&[]), "w {w}: max diff {diff}");
    }
}

#[test]
fn log_q_is_the_log_of_bernoulli_probabilities() {
    let vocab = Vocab::new(3);
    let w = [0.5f64, 1.3, 2.0];
    let x0 = Tensor::from_slice(&[0i64, 1, 2, 2]).view([1, 4]);
    let zt = Tensor::from_slice(&[3i64, 1, 3, 2]).view([1, 4]);
    let t = 0.37f64;
    let got =
        genmd4::log_q(&x0, &zt, &Tensor::from_slice(&[t]), &Tensor::from_slice(&w), vocab).double_value(&[0]);
    let p_mask = |i: usize| (1.0 - GENMD4_EPS) * t.powf(w[i]);
    let want = (p_mask(0) * (1.0 - p_mask(1)) * p_mask(2) * (1.0 - p_mask(2))).ln();
    // log q is accumulated in float32.
    assert!((got - want).abs() < 1e-6 * want.abs(), "{got} vs {want}");
}

#[test]
fn reconstruction_is_expected_log_posterior_at_t1() {
    // p(x_0 = i | masked at t_1) = t_1^{w_i}/Σ_j t_1^{w_j}; masked with probability (1−ε)t_1^{w_i}.
    let w = [0.6f64, 1.0, 1.7];
    let x = [2i64, 0, 1, 1];
    let got = genmd4::reconstruction(&Tensor::from_slice(&x).view([1, 4]), &Tensor::from_slice(&w))
        .double_value(&[0]);
    let z: f64 = w.iter().map(|wj| GENMD4_T1.powf(*wj)).sum();
    let want: f64 = x
        .iter()
        .map(|&xi| {
            let pi = GENMD4_T1.powf(w[xi as usize]);
            -(1.0 - GENMD4_EPS) * pi * (pi / z).ln()
        })
        .sum();
    assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{got} vs {want}");
}

/// E_{z ~ q(z|x0, w, t)}[L(z, w)] by enumerating the 2^N mask patterns, with w = softplus(w_raw).
fn exact_expected_loss(o: &Oracle, x0: &[i64], t: f64, w_raw: &[f64]) -> f64 {
    let w = Tensor::from_slice(w_raw).softplus();
    let n = x0.len();
    let mut total = 0.0;
    for m in 0..(1usize << n) {
        let masked: Vec<bool> = (0..n).map(|i| m >> i & 1 == 1).collect();
        let z: Vec<i64> =
            masked.iter().zip(x0).map(|(&mk, &xi)| if mk { o.vocab.mask_id() } else { xi }).collect();
        let prob: f64 = masked
            .iter()
            .zip(x0)
            .map(|(&mk, &xi)| {
                let p = (1.0 - GENMD4_EPS) * t.powf(w.double_value(&[xi]));
                if mk { p } else { 1.0 - p }
            })
            .product();
        let zt = Tensor::from_slice(&z).view([1, n as i64]);
        let tt = Tensor::from_slice(&[t as f32]);
        let logits = o.logits(&zt, &tt, false).to_kind(Kind::Double);
        let x = Tensor::from_slice(x0).view([1, n as i64]);
        let l = genmd4::diffusion_loss(
            &logits,
            &x,
            &zt,
            &tt.to_kind(Kind::Double),
            &w.to_kind(Kind::Double),
            o.vocab,
        );
        total += prob * l.double_value(&[0]);
    }
    total
}

#[test]
fn rloo_gradient_is_unbiased_for_the_exact_expected_loss() {
    let _rng = md4_core::testing::rng_lock();
    tch::manual_seed(4);
    let o = oracle();
    let x0 = [0i64, 2, 1];
    let t = 0.4;
    let w_raw0 = [-0.3f64, 0.54, 1.2];
    // Central finite differences of the enumerated expectation.
    let h = 1e-4;
    let fd: Vec<f64> = (0..3)
        .map(|i| {
            let (mut up, mut down) = (w_raw0, w_raw0);
            up[i] += h;
            down[i] -= h;
            (exact_expected_loss(&o, &x0, t, &up) - exact_expected_loss(&o, &x0, t, &down)) / (2.0 * h)
        })
        .collect();
    // Monte-Carlo gradients of the surrogate, in independent batches.
    let (batches, m) = (24, 4000);
    let mut rloo_grads = vec![vec![]; 3];
    let mut naive_grads = vec![vec![]; 3];
    for _ in 0..batches {
        for with_rloo in [true, false] {
            let w_raw = Tensor::from_slice(&w_raw0).to_kind(Kind::Float).set_requires_grad(true);
            let schedule = GenMd4Schedule { w_raw: w_raw.shallow_clone(), vocab: o.vocab };
            let x = Tensor::from_slice(&x0).unsqueeze(0).repeat([m, 1]);
            let tt = Tensor::full([m], t, (Kind::Float, Device::Cpu));
            let terms = genmd4::terms(&o, &schedule, &x, &tt, false);
            let surrogate = if with_rloo { terms.diffusion + terms.rloo } else { terms.diffusion };
            surrogate.mean(Kind::Float).backward();
            let g: Vec<f64> = Vec::try_from(w_raw.grad().to_kind(Kind::Double)).unwrap();
            let target = if with_rloo { &mut rloo_grads } else { &mut naive_grads };
            for i in 0..3 {
                target[i].push(g[i]);
            }
        }
    }
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, (var / n).sqrt())
    };
    let mut naive_is_biased = false;
    for i in 0..3 {
        let (mean, se) = stats(&rloo_grads[i]);
        assert!(
            (mean - fd[i]).abs() < 3.5 * se + 1e-3,
            "w_raw[{i}]: RLOO {mean:.4} ± {se:.4} vs exact {:.4}",
            fd[i]
        );
        let (naive, naive_se) = stats(&naive_grads[i]);
        naive_is_biased |= (naive - fd[i]).abs() > 6.0 * naive_se + 1e-3;
    }
    // Without the REINFORCE term the pathwise gradient alone is biased (spec §4.3).
    assert!(naive_is_biased, "the naive gradient should differ from the exact one");
}

#[test]
fn schedule_initialises_at_the_linear_schedule() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let s = GenMd4Schedule::new(&vs.root(), Vocab::new(5), 1.0);
    let w = s.w();
    assert!((w - 1.0).abs().max().double_value(&[]) < 1e-6);
    assert_eq!(vs.variables().len(), 1);
    assert!(vs.variables().contains_key("w_raw"));
}
