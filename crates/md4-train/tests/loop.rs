//! The training loop end to end on a tiny self-made denoiser (embedding + linear, with
//! dropout so that the RNG matters): exact resume, NaN handling, gradient accumulation and
//! EMA validation. Independent of md4-models.

use md4_core::{Denoiser, LossOutput, Objective};
use md4_train::checkpoint::{list_checkpoints, read_checkpoint};
use md4_train::metrics::read_metrics;
use md4_train::trainer::seed_initialisation;
use md4_train::{Batches, Trainer};
use std::cell::Cell;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor, nn::VarStore};

mod common;
use common::*;

/// Train 7 updates straight; separately 3, stop, rebuild everything from a different
/// initialisation, restore the checkpoint and train to 7: parameters, EMA and both Adam
/// moments are bit-identical.
#[test]
fn resume_is_bit_identical() {
    let _rng = lock();
    let cfg = train_cfg(7);
    let straight_dir = tempfile::tempdir().unwrap();
    let (_vs, objective, mut trainer) = setup(&cfg, 1);
    let summary = run(&mut trainer, &objective, straight_dir.path(), None).unwrap();
    assert_eq!(summary.step, 7);
    let straight = state(&trainer);

    let dir = tempfile::tempdir().unwrap();
    let (_vs, objective, mut first) = setup(&cfg, 1);
    let summary = run(&mut first, &objective, dir.path(), Some(3)).unwrap();
    assert_eq!(summary.step, 3);
    drop(first);
    let ckpts = list_checkpoints(&dir.path().join("ckpt")).unwrap();
    assert_eq!(ckpts.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![3]);

    // A different initialisation: everything must come from the checkpoint.
    let (_vs, objective, mut resumed) = setup(&cfg, 99);
    resumed.restore(&read_checkpoint(&ckpts[0].1).unwrap()).unwrap();
    assert_eq!(resumed.step(), 3);
    let summary = run(&mut resumed, &objective, dir.path(), None).unwrap();
    assert_eq!((summary.step, summary.resumed_from), (7, Some(3)));
    let resumed_state = state(&resumed);
    assert_eq!(straight.len(), resumed_state.len());
    for ((name, a), (_, b)) in straight.iter().zip(&resumed_state) {
        assert!(a.equal(b), "{name} differs after resume");
    }
    // The metrics of the resumed run describe one history: steps 1..=7, validations at 3 and 6.
    let lines = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    let train_steps: Vec<i64> =
        lines.iter().filter(|l| l["kind"] == "train").map(|l| l["step"].as_i64().unwrap()).collect();
    assert_eq!(train_steps, (1..=7).collect::<Vec<_>>());
    let val_steps: Vec<i64> =
        lines.iter().filter(|l| l["kind"] == "validation").map(|l| l["step"].as_i64().unwrap()).collect();
    assert_eq!(val_steps, vec![3, 6, 7]);

    // And the final checkpoint holds exactly the final state.
    let last =
        read_checkpoint(&list_checkpoints(&dir.path().join("ckpt")).unwrap().last().unwrap().1).unwrap();
    assert_eq!(last.step, 7);
    for (name, t) in trainer.params() {
        assert!(last.section("model")[name].equal(&t.detach()), "{name}");
    }
}

/// Without reseeding the same two runs would differ: the per-step seed is what makes resume
/// exact (a guard against the test above passing vacuously).
#[test]
fn different_seeds_give_different_parameters() {
    let _rng = lock();
    let (_vs, objective, mut a) = setup(&train_cfg(2), 1);
    let dir = tempfile::tempdir().unwrap();
    run(&mut a, &objective, dir.path(), None).unwrap();
    let mut cfg = train_cfg(2);
    cfg.seed = 8;
    let (_vs, objective, mut b) = setup(&cfg, 1);
    let dir = tempfile::tempdir().unwrap();
    run(&mut b, &objective, dir.path(), None).unwrap();
    assert!(!a.params()[0].1.equal(&b.params()[0].1));
}

/// An objective that turns NaN at one update.
struct NanAt<'a> {
    inner: &'a dyn Objective,
    calls: Cell<i64>,
    at_call: i64,
}

impl Objective for NanAt<'_> {
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput {
        let mut out = self.inner.loss(x0, train);
        if train {
            self.calls.set(self.calls.get() + 1);
            if self.calls.get() == self.at_call {
                out.objective = &out.objective * f64::NAN;
            }
        }
        out
    }
}

#[test]
fn a_nan_loss_stops_training_naming_the_step() {
    let _rng = lock();
    let mut cfg = train_cfg(10);
    cfg.ckpt_every = 1;
    cfg.keep_last = 10;
    let (_vs, objective, mut trainer) = setup(&cfg, 1);
    // accum = 2 micro-batches per update: call 7 is in update index 3 (the fourth update).
    let nan = NanAt { inner: &objective, calls: Cell::new(0), at_call: 7 };
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", run(&mut trainer, &nan, dir.path(), None).unwrap_err());
    assert!(err.contains("non-finite loss at step 3"), "{err}");
    // The update was not applied and no checkpoint exists beyond the last good step.
    assert_eq!(trainer.step(), 3);
    for (name, p) in trainer.params() {
        assert!(md4_train::checkpoint::all_finite(p), "{name}");
    }
    let steps: Vec<i64> =
        list_checkpoints(&dir.path().join("ckpt")).unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, vec![1, 2, 3]);
    let lines = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    let last = lines.last().unwrap();
    assert_eq!(last["kind"], "error");
    assert!(last["error"].as_str().unwrap().contains("step 3"));
}

/// Non-finite parameters are never checkpointed, even if the loss looked finite.
#[test]
fn non_finite_parameters_are_not_checkpointed() {
    let _rng = lock();
    let cfg = train_cfg(3);
    let (_vs, objective, mut trainer) = setup(&cfg, 1);
    let dir = tempfile::tempdir().unwrap();
    run(&mut trainer, &objective, dir.path(), Some(1)).unwrap();
    tch::no_grad(|| {
        let _ = trainer.params()[0].1.shallow_clone().fill_(f64::NAN);
    });
    let err = format!("{:#}", trainer.save(&dir.path().join("ckpt"), &HashMap::new()).unwrap_err());
    assert!(err.contains("not finite"), "{err}");
    let steps: Vec<i64> =
        list_checkpoints(&dir.path().join("ckpt")).unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, vec![1]);
}

/// A deterministic objective (no sampling): the mean cross-entropy of the denoiser at t = ½
/// without masking.
struct Deterministic<'a>(&'a Tiny);

impl Objective for Deterministic<'_> {
    fn loss(&self, x0: &Tensor, _train: bool) -> LossOutput {
        let t = Tensor::full([x0.size()[0]], 0.5, (Kind::Float, x0.device()));
        let logp = self.0.logits(x0, &t, false).log_softmax(-1, Kind::Float);
        let nll = -logp.gather(-1, &x0.unsqueeze(-1), false).squeeze_dim(-1).sum_dim_intlist(
            [1i64].as_slice(),
            false,
            Kind::Float,
        );
        LossOutput {
            objective: nll.mean(Kind::Float) / x0.size()[1] as f64,
            nelbo: nll.detach(),
            metrics: vec![],
        }
    }
}

/// Accumulating 4 micro-batches gives the same update as one batch (equal-size micro-batches).
#[test]
fn accumulation_matches_one_large_batch() {
    let _rng = lock();
    let mut finals = vec![];
    for accum in [1, 4] {
        let mut cfg = train_cfg(3);
        cfg.accum = accum;
        cfg.eval_every = 0;
        cfg.clip = None;
        let vs = VarStore::new(Device::Cpu);
        seed_initialisation(5);
        let tiny = Tiny::new(&vs.root());
        let mut trainer = Trainer::new(&vs, &cfg);
        let dir = tempfile::tempdir().unwrap();
        run(&mut trainer, &Deterministic(&tiny), dir.path(), None).unwrap();
        finals.push(trainer.params().iter().map(|(_, p)| p.detach().copy()).collect::<Vec<_>>());
    }
    for (a, b) in finals[0].iter().zip(&finals[1]) {
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "max difference {diff}");
    }
}

/// Validation uses the EMA weights: with decay 1 they stay at the initialisation, so the
/// validation loss equals the untrained model's; the live parameters are restored exactly.
#[test]
fn validation_uses_ema_weights() {
    let _rng = lock();
    let mut cfg = train_cfg(4);
    cfg.ema = 1.0;
    cfg.eval_every = 0;
    let (_vs, objective, mut trainer) = setup(&cfg, 3);
    let data = Stream::new();
    let before = Deterministic(&objective.denoiser);
    let init_val = trainer.validate(&before, &data).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    run(&mut trainer, &before, dir.path(), None).unwrap();
    let live: Vec<Tensor> = trainer.params().iter().map(|(_, p)| p.detach().copy()).collect();
    let after = trainer.validate(&before, &data).unwrap().unwrap();
    assert_eq!(after.bits, init_val.bits);
    assert_eq!(after.sequences, 8);
    for ((_, p), l) in trainer.params().iter().zip(&live) {
        assert!(p.equal(l));
    }
    // The trained live weights score differently from the EMA (initial) ones.
    let x = data.eval_batch(0, 8);
    let live_bits =
        tch::no_grad(|| before.loss(&x, false).objective.double_value(&[])) / std::f64::consts::LN_2;
    assert!((live_bits - after.bits).abs() > 1e-3, "{live_bits} vs {}", after.bits);
}
