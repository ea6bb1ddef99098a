//! Masking schedules (spec §2.4) against closed forms derived independently, and α' against
//! central finite differences, in f64.

use md4_core::{MaskingSchedule, Schedule};
use std::f64::consts::PI;
use tch::{Kind, Tensor};

const TIMES: [f64; 7] = [0.01, 0.1, 0.25, 0.5, 0.7, 0.9, 0.99];

fn all_kinds() -> Vec<MaskingSchedule> {
    vec![
        MaskingSchedule::Linear,
        MaskingSchedule::Cosine,
        MaskingSchedule::Polynomial { exponent: 2.0 },
        MaskingSchedule::Polynomial { exponent: 0.5 },
        MaskingSchedule::geometric_fig1(),
    ]
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[test]
fn alpha_matches_closed_forms() {
    // Independent routes: cos(π/2·(1−t)) = sin(πt/2); exp(−β̄_min^{1−t}β̄_max^t) written as
    // exp(−β̄_min·(β̄_max/β̄_min)^t).
    let expected = |k: &MaskingSchedule, t: f64| match *k {
        MaskingSchedule::Linear => 1.0 - t,
        MaskingSchedule::Cosine => 1.0 - (PI * t / 2.0).sin(),
        MaskingSchedule::Polynomial { exponent } => 1.0 - t.powf(exponent),
        MaskingSchedule::Geometric { beta_min, beta_max } => {
            (-beta_min * (beta_max / beta_min).powf(t)).exp()
        }
    };
    for k in all_kinds() {
        for eps in [0.0, 1e-4] {
            let s = Schedule { kind: k, eps };
            for t in TIMES {
                let want = (1.0 - 2.0 * eps) * expected(&k, t) + eps;
                assert!(close(s.alpha(t), want, 1e-12), "{k:?} eps {eps} t {t}: {} vs {want}", s.alpha(t));
                assert!(close(s.one_minus_alpha(t), 1.0 - want, 1e-9), "{k:?} 1-alpha at {t}");
            }
        }
    }
}

#[test]
fn shifted_endpoints() {
    for k in [MaskingSchedule::Linear, MaskingSchedule::Cosine, MaskingSchedule::Polynomial { exponent: 3.0 }]
    {
        let s = Schedule::md4(k);
        assert!(close(s.alpha(0.0), 1.0 - 1e-4, 1e-12), "{k:?} α_0");
        assert!(close(s.alpha(1.0), 1e-4, 1e-9), "{k:?} α_1");
    }
}

#[test]
fn dalpha_matches_finite_differences() {
    let h = 1e-6;
    for k in all_kinds() {
        let s = Schedule::md4(k);
        for t in TIMES {
            let fd = (s.alpha(t + h) - s.alpha(t - h)) / (2.0 * h);
            assert!(close(s.dalpha(t), fd, 1e-6), "{k:?} t {t}: α' {} vs fd {fd}", s.dalpha(t));
        }
    }
}

#[test]
fn weights_match_paper_table4() {
    for t in TIMES {
        let lin = Schedule::exact(MaskingSchedule::Linear).weight(t);
        assert!(close(lin, -1.0 / t, 1e-12));
        let cos = Schedule::exact(MaskingSchedule::Cosine).weight(t);
        assert!(close(cos, -(PI / 2.0) * (PI / 2.0 * (1.0 - t)).tan(), 1e-9));
        let poly = Schedule::exact(MaskingSchedule::Polynomial { exponent: 3.0 }).weight(t);
        assert!(close(poly, -3.0 / t, 1e-9));
        // The ε-shifted linear weight is −1/(t + ε/(1−2ε)) (spec §2.4): finite at t = 0.
        let eps = 1e-4;
        let shifted = Schedule::md4(MaskingSchedule::Linear).weight(t);
        assert!(close(shifted, -1.0 / (t + eps / (1.0 - 2.0 * eps)), 1e-9));
        // Geometric: −[α/(1−α)]·B(t)·log(β̄_max/β̄_min).
        let (bmin, bmax) = (1e-5f64, 20.0f64);
        let b = bmin.powf(1.0 - t) * bmax.powf(t);
        let a = (-b).exp();
        let geo = Schedule::exact(MaskingSchedule::geometric_fig1()).weight(t);
        assert!(close(geo, -a / (1.0 - a) * b * (bmax / bmin).ln(), 1e-9), "geometric t {t}");
    }
    assert!(Schedule::md4(MaskingSchedule::Linear).weight(0.0).is_finite());
}

#[test]
fn log_snr_is_logit_of_alpha() {
    for k in all_kinds() {
        let s = Schedule::md4(k);
        for t in TIMES {
            let a = s.alpha(t);
            assert!(close(s.log_snr(t), (a / (1.0 - a)).ln(), 1e-8), "{k:?} t {t}");
        }
    }
}

#[test]
fn tensor_forms_equal_scalar_forms() {
    let t = Tensor::from_slice(&TIMES).to_kind(Kind::Double);
    for k in all_kinds() {
        let s = Schedule::md4(k);
        let checks: [(&str, Tensor, fn(&Schedule, f64) -> f64); 5] = [
            ("alpha", s.alpha_t(&t), Schedule::alpha),
            ("1-alpha", s.one_minus_alpha_t(&t), Schedule::one_minus_alpha),
            ("dalpha", s.dalpha_t(&t), Schedule::dalpha),
            ("weight", s.weight_t(&t), Schedule::weight),
            ("log_snr", s.log_snr_t(&t), Schedule::log_snr),
        ];
        for (name, values, scalar) in checks {
            for (i, &ti) in TIMES.iter().enumerate() {
                let got = values.double_value(&[i as i64]);
                assert!(close(got, scalar(&s, ti), 1e-10), "{k:?} {name} t {ti}: {got}");
            }
        }
    }
}

#[test]
fn one_minus_alpha_is_accurate_in_float32_near_zero() {
    // Subtracting α from 1 in float32 near t = 0 loses most digits; the closed form does not.
    let s = Schedule::md4(MaskingSchedule::Linear);
    let t = Tensor::from_slice(&[1e-6f32, 1e-5, 1e-4]);
    let got = s.one_minus_alpha_t(&t);
    for (i, ti) in [1e-6f64, 1e-5, 1e-4].iter().enumerate() {
        let want = s.one_minus_alpha(*ti);
        assert!(close(got.double_value(&[i as i64]), want, 1e-6), "t {ti}");
    }
}

#[test]
fn parse_names_round_trip() {
    for name in ["linear", "cosine", "poly2", "poly0.5", "geometric"] {
        let k = MaskingSchedule::parse(name).unwrap();
        assert_eq!(k.name(), name);
    }
    assert!(MaskingSchedule::parse("poly-1").is_err());
    assert!(MaskingSchedule::parse("cosin").unwrap_err().contains("cosin"));
}
