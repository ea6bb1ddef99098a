//! What the benchmarks share (`#[path]`-included by bench.rs and bench_ddp.rs).

use md4_models::ComputePrecision;
use md4_train::{Batches, TrainConfig};
use tch::Tensor;

/// Random tokens, one pre-generated batch per step (as the Python twin).
pub struct Pool(pub Tensor);

impl Batches for Pool {
    fn train_batch(&self, _seed: u64, step: u64, _batch: i64) -> Tensor {
        self.0.get(step as i64)
    }
    fn eval_len(&self) -> u64 {
        0
    }
    fn eval_batch(&self, _start: u64, _count: u64) -> Tensor {
        unreachable!("no validation in the benchmark")
    }
}

/// `steps` updates of `batch` × `seq_len` tokens with the paper's optimizer settings, no
/// clipping, validation or intermediate checkpoints.
pub fn train_config(steps: i64, batch: i64, seq_len: i64, precision: ComputePrecision) -> TrainConfig {
    TrainConfig {
        steps,
        batch,
        seq_len,
        lr: 1e-4,
        warmup: 0,
        weight_decay: 0.03,
        beta2: 0.999,
        ema: 0.9999,
        clip: None,
        accum: 1,
        seed: 0,
        ckpt_every: steps,
        keep_last: 1,
        log_every: 1,
        eval_every: 0,
        eval_batches: 0,
        precision,
    }
}

/// The median (NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}
