//! `md4_train::train` and `load_run` with the real networks (tiny presets) on generated text:
//! every objective arm builds and trains, GenMD4's exponents live in the checkpoint and are
//! optimised, and a loaded run carries the EMA weights.

use md4_core::sampler::SampleRequest;
use md4_train::checkpoint::{list_checkpoints, read_checkpoint};
use md4_train::run::checkpoint_dir;
use md4_train::{RunConfig, TrainOptions, load_run, train};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use tch::Device;

/// torch's RNG is process-global; tests that train take turns.
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_corpus(dir: &Path) -> String {
    let words = ["alpha", "beta", "gamma", "delta", "zeta"];
    let text: Vec<&str> = (0..600).map(|i| words[(i * 7 + i / 3) % words.len()]).collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text.join(" ")).unwrap();
    path.display().to_string()
}

fn config(corpus: &str, objective: &str) -> RunConfig {
    let yaml = format!(
        "
model: {{ preset: tiny-text8 }}
objective: {objective}
data: {{ source: text, path: '{corpus}', holdout: 0.1 }}
train: {{ steps: 3, batch: 4, seq_len: 16, lr: 1.0e-2, warmup: 1, weight_decay: 0.5, beta2: 0.999,
  ema: 0.5, accum: 1, seed: 3, ckpt_every: 3, keep_last: 1, log_every: 1, eval_every: 3,
  eval_batches: 1, precision: auto }}
"
    );
    RunConfig::from_yaml(&yaml).unwrap()
}

fn opts(dir: &Path) -> TrainOptions {
    TrainOptions {
        device: Device::Cpu,
        progress: false,
        stop_at: None,
        offline: true,
        local_cache: Some(dir.join("cache")),
        group: None,
    }
}

#[test]
fn every_objective_trains_a_tiny_transformer() {
    let _rng = lock();
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    for objective in [
        "{ kind: md4, schedule: { kind: cosine } }",
        "{ kind: ar }",
        "{ kind: d3pm, steps: 100, aux_weight: 0.01 }",
        "{ kind: sedd, schedule: { kind: linear } }",
        "{ kind: campbell, schedule: { kind: linear } }",
    ] {
        let run_dir = dir.path().join(objective.replace([' ', '{', '}', ':', ','], ""));
        let summary = train(&config(&corpus, objective), &run_dir, &opts(dir.path())).unwrap();
        assert_eq!(summary.step, 3, "{objective}");
        let loss = summary.last_loss_bits.unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{objective}: {loss}");
        assert!(summary.last_validation.is_some(), "{objective}");
        // One parameter count: the networks the objective built, as the run record and the
        // table notes print it; for the AR baseline that is the time-independent transformer.
        let loaded = md4_train::load_run(&run_dir, Device::Cpu).unwrap();
        let md4_models::ModelConfig::Transformer(t) = &loaded.cfg.model else { unreachable!() };
        let expected =
            if objective == "{ kind: ar }" { t.ar_variant().param_count() } else { t.param_count() };
        assert_eq!(loaded.parameters(), expected, "{objective}");
        let record = md4_train::RunRecord::read(&run_dir.join("run.json")).unwrap();
        assert_eq!(record.model_parameters, expected, "{objective}");
    }
    // The AR variant really is smaller: a count that ignored the objective would be wrong.
    let md4_models::ModelConfig::Transformer(t) = &config(&corpus, "{ kind: ar }").model else {
        unreachable!()
    };
    assert!(t.ar_variant().param_count() < t.param_count());
}

#[test]
fn genmd4_exponents_are_checkpointed_and_trained() {
    let _rng = lock();
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    let cfg = config(&corpus, "{ kind: genmd4, power_init: 1.0 }");
    let run_dir = dir.path().join("genmd4");
    train(&cfg, &run_dir, &opts(dir.path())).unwrap();
    let (_, path) = list_checkpoints(&checkpoint_dir(&run_dir)).unwrap().pop().unwrap();
    let ckpt = read_checkpoint(&path).unwrap();
    for section in ["model", "ema", "adam_m", "adam_v"] {
        assert!(ckpt.section(section).contains_key("genmd4.w_raw"), "{section}/genmd4.w_raw missing");
    }
    // w_raw started at softplus⁻¹(1) = ln(e − 1) everywhere and has moved.
    let w_raw = Vec::<f64>::try_from(&ckpt.section("model")["genmd4.w_raw"]).unwrap();
    let init = (1f64.exp() - 1.0).ln();
    assert_eq!(w_raw.len(), 27);
    assert!(w_raw.iter().any(|w| (w - init).abs() > 1e-6), "{w_raw:?}");
    // Every exponent received gradient (the first moments are non-zero), so the RLOO and
    // reconstruction terms reach w through the optimizer.
    let m = Vec::<f64>::try_from(&ckpt.section("adam_m")["genmd4.w_raw"]).unwrap();
    assert!(m.iter().all(|v| v.is_finite()) && m.iter().filter(|v| **v != 0.0).count() == 27, "{m:?}");
    // The run's second call returns at once.
    let again = train(&cfg, &run_dir, &opts(dir.path())).unwrap();
    assert!(again.already_finished);
}

#[test]
fn a_loaded_run_holds_the_ema_weights() {
    let _rng = lock();
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    let run_dir = dir.path().join("md4");
    train(&config(&corpus, "{ kind: md4, schedule: { kind: linear } }"), &run_dir, &opts(dir.path()))
        .unwrap();
    let loaded = load_run(&run_dir, Device::Cpu).unwrap();
    assert_eq!(loaded.step, 3);
    let ckpt = read_checkpoint(&loaded.checkpoint).unwrap();
    let (ema, model) = (ckpt.section("ema"), ckpt.section("model"));
    let mut differs = false;
    for (name, var) in loaded.vs.variables() {
        assert!(var.equal(&ema[&name]), "{name} is not the ema weight");
        differs |= !ema[&name].equal(&model[&name]);
    }
    assert!(differs, "ema and live weights should differ after training with decay 0.5");
    // Sampling from the loaded run gives tokens of the vocabulary.
    let cfg = md4_core::SamplerConfig::paper_text();
    let cfg = md4_core::SamplerConfig { steps: 4, ..cfg };
    let out = loaded.trained.sample(&SampleRequest {
        batch: 2,
        seq_len: 16,
        cond: None,
        sampler: &cfg,
        device: Device::Cpu,
    });
    assert_eq!(out.tokens.size(), vec![2, 16]);
    let max = out.tokens.max().int64_value(&[]);
    assert!((0..27).contains(&max));
}

/// Every tensor of the newest checkpoint of a run.
fn final_state(run_dir: &Path) -> Vec<(String, tch::Tensor)> {
    let (_, path) = list_checkpoints(&checkpoint_dir(run_dir)).unwrap().pop().unwrap();
    let mut all: Vec<(String, tch::Tensor)> = read_checkpoint(&path).unwrap().tensors.into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn resume_is_bit_exact_in_f32_and_bf16() {
    let _rng = lock();
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    let mut finals = vec![];
    for precision in ["f32", "bf16"] {
        let cfg = RunConfig::from_yaml_with(
            &config(&corpus, "{ kind: md4, schedule: { kind: linear } }").to_yaml().unwrap(),
            &[format!("train.precision={precision}"), "train.steps=4".into(), "train.ckpt_every=1".into()],
        )
        .unwrap();
        let straight = dir.path().join(format!("{precision}-straight"));
        train(&cfg, &straight, &opts(dir.path())).unwrap();
        let resumed = dir.path().join(format!("{precision}-resumed"));
        let stop = TrainOptions { stop_at: Some(2), ..opts(dir.path()) };
        assert_eq!(train(&cfg, &resumed, &stop).unwrap().step, 2);
        let summary = train(&cfg, &resumed, &opts(dir.path())).unwrap();
        assert_eq!((summary.resumed_from, summary.step), (Some(2), 4));
        let (a, b) = (final_state(&straight), final_state(&resumed));
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x.equal(y), "{precision}: {name} differs after resuming");
        }
        // The run records say which arithmetic trained it, in run.json and in the metrics.
        let record = md4_train::RunRecord::read(&resumed.join("run.json")).unwrap();
        assert_eq!(record.sessions.len(), 2);
        for s in &record.sessions {
            assert!(s.precision.as_deref().is_some_and(|p| p.starts_with(precision)), "{:?}", s.precision);
        }
        let metrics = md4_train::metrics::read_metrics(&resumed.join("metrics.jsonl")).unwrap();
        let sessions: Vec<_> = metrics.iter().filter(|m| m["kind"] == "session").collect();
        assert_eq!(sessions.len(), 2);
        assert!(sessions.iter().all(|m| m["precision"] == precision));
        // Master weights and optimizer state stay float32 in bf16.
        assert!(a.iter().all(|(_, t)| t.kind() == tch::Kind::Float), "{precision}: non-f32 state");
        finals.push(a);
    }
    // bf16 really changed the arithmetic.
    let differs = finals[0].iter().zip(&finals[1]).any(|((_, x), (_, y))| !x.equal(y));
    assert!(differs, "the bf16 run equals the f32 run bit for bit");
}
