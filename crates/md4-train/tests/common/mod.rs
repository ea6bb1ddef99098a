//! What the training-loop tests share: a tiny self-made denoiser (embedding + linear, with
//! dropout so that the RNG matters), a token stream, a small configuration and the loop.
#![allow(dead_code)] // each test binary uses its own subset

use md4_core::{Denoiser, MaskingSchedule, Md4, Objective, Schedule, Vocab};
use md4_models::ComputePrecision;
use md4_train::metrics::MetricsLog;
use md4_train::trainer::{LoopOptions, run_loop, seed_initialisation};
use md4_train::{Batches, TrainConfig, Trainer};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use tch::{Device, Tensor, nn, nn::VarStore};

pub const V: i64 = 7;

/// torch's RNG is global to the process and tests run on parallel threads: every test that
/// trains holds this lock, so that reseeding gives each test its own stream.
pub static TORCH_RNG: Mutex<()> = Mutex::new(());

pub fn lock() -> MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}
pub const N: i64 = 12;

/// logits = dropout(E[z] + t·u) · W.
pub struct Tiny {
    pub embed: Tensor,
    pub time: Tensor,
    pub out: Tensor,
}

impl Tiny {
    pub fn new(vs: &nn::Path) -> Self {
        Self {
            embed: vs.var("embed", &[V + 1, 8], nn::Init::Randn { mean: 0.0, stdev: 0.5 }),
            time: vs.var("time", &[8], nn::Init::Randn { mean: 0.0, stdev: 0.5 }),
            out: vs.var("out", &[8, V], nn::Init::Randn { mean: 0.0, stdev: 0.5 }),
        }
    }
}

impl Denoiser for Tiny {
    fn logits(&self, zt: &Tensor, t: &Tensor, train: bool) -> Tensor {
        let h = self.embed.index_select(0, &zt.flatten(0, -1)).view([zt.size()[0], zt.size()[1], 8]);
        let h = h + t.view([-1, 1, 1]) * &self.time;
        h.dropout(0.2, train).matmul(&self.out)
    }
}

/// A fixed pseudo-random token stream; crops at offsets chosen from (seed, step).
pub struct Stream {
    tokens: Vec<i64>,
}

impl Stream {
    pub fn new() -> Self {
        let mut state = 12345u64;
        let tokens = (0..4000)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // A skewed distribution, so that training can lower the loss.
                let u = (state >> 33) % 100;
                if u < 50 { 0 } else { (u % V as u64) as i64 }
            })
            .collect();
        Self { tokens }
    }
}

impl Batches for Stream {
    fn train_batch(&self, seed: u64, step: u64, batch: i64) -> Tensor {
        let rows: Vec<i64> = (0..batch as u64)
            .flat_map(|b| {
                let off =
                    ((seed * 31 + step * 17 + b * 101) % (self.tokens.len() as u64 - N as u64)) as usize;
                self.tokens[off..off + N as usize].to_vec()
            })
            .collect();
        Tensor::from_slice(&rows).view([batch, N])
    }
    fn eval_len(&self) -> u64 {
        20
    }
    fn eval_batch(&self, start: u64, count: u64) -> Tensor {
        let s = (start as usize) * N as usize;
        Tensor::from_slice(&self.tokens[s..s + (count as usize) * N as usize]).view([count as i64, N])
    }
}

pub fn train_cfg(steps: i64) -> TrainConfig {
    TrainConfig {
        steps,
        batch: 8,
        seq_len: N,
        lr: 0.05,
        warmup: 2,
        weight_decay: 0.03,
        beta2: 0.99,
        ema: 0.9,
        clip: Some(5.0),
        accum: 2,
        seed: 7,
        ckpt_every: 100,
        keep_last: 3,
        log_every: 1,
        eval_every: 3,
        eval_batches: 2,
        precision: ComputePrecision::Auto,
    }
}

/// A model, its objective and a trainer; the initialisation depends only on the seed.
pub fn setup(cfg: &TrainConfig, init_seed: u64) -> (VarStore, Md4<Tiny>, Trainer) {
    let vs = VarStore::new(Device::Cpu);
    seed_initialisation(init_seed);
    let objective = Md4 {
        denoiser: Tiny::new(&vs.root()),
        schedule: Schedule::md4(MaskingSchedule::Linear),
        vocab: Vocab::new(V),
    };
    let trainer = Trainer::new(&vs, cfg);
    (vs, objective, trainer)
}

pub fn run(
    trainer: &mut Trainer,
    objective: &dyn Objective,
    dir: &Path,
    stop_at: Option<i64>,
) -> anyhow::Result<md4_train::TrainSummary> {
    let mut log = MetricsLog::open(&dir.join("metrics.jsonl"), trainer.step())?;
    let meta = HashMap::from([("config_sha256".to_string(), "test".to_string())]);
    run_loop(
        trainer,
        objective,
        &Stream::new(),
        &dir.join("ckpt"),
        &mut log,
        &meta,
        &LoopOptions { progress: false, stop_at },
    )
}

pub fn state(trainer: &Trainer) -> Vec<(String, Tensor)> {
    let mut out = vec![];
    out.extend(trainer.params().iter().map(|(n, t)| (format!("param/{n}"), t.detach().copy())));
    out.extend(trainer.ema().averages().iter().map(|(n, t)| (format!("ema/{n}"), t.copy())));
    out.extend(trainer.optimizer().first_moments().map(|(n, t)| (format!("m/{n}"), t.copy())));
    out.extend(trainer.optimizer().second_moments().map(|(n, t)| (format!("v/{n}"), t.copy())));
    out
}
