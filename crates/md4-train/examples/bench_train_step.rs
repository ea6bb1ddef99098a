//! Benchmark of one training step (issue 3 §4; not a timed test): md4-rs's step on the
//! `small-text8` preset against the same model in PyTorch eager (`bench/train_step.py`) on the
//! same libtorch, in fp32 and with bf16 matmuls, alternating the two implementations in fresh
//! processes and printing tokens/s, peak memory and the ratio.
//!
//! ```text
//! cargo run -p md4-train --example bench_train_step -- --python "$(bash scripts/venv-path.sh)/bin/python"
//! ```
//! `--python` needs the full torch install (`bash scripts/setup.sh --full`); without it only the
//! Rust numbers are printed. Each measurement runs `--warmup` untimed then `--steps` timed
//! updates of `--batch` × `--seq-len` random text8 tokens (MD4 loss, AdamW, EMA).

use anyhow::{Context, Result, bail};
use clap::Parser;
use md4_core::{MaskingSchedule, Md4, Schedule};
use md4_train::{Batches, TrainConfig, Trainer};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// md4-rs vs PyTorch eager: tokens/s and peak memory of a training step.
#[derive(Debug, Parser)]
struct Args {
    /// Python with the full torch install; omit to time only the Rust step.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Rounds; each round runs every implementation once per dtype, alternating the order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Timed updates per measurement.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed updates before timing.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Sequences per update.
    #[arg(long, default_value_t = 32)]
    batch: i64,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    seq_len: i64,
    /// Compute dtypes to measure (f32, bf16).
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16")]
    dtypes: Vec<String>,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Also write every measurement as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Internal: run one Rust measurement with this dtype and print it as JSON.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

/// Random text8 tokens, one pre-generated batch per step (as the Python twin).
struct Pool(Tensor);

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

fn worker(args: &Args, dtype: &str) -> Result<Value> {
    let device = md4_train::parse_device(&args.device)?;
    tch::manual_seed(0);
    let rss_before = md4_train::alloc::rss_mib("VmRSS");
    let mut model = md4_models::preset("small-text8")?;
    if dtype == "bf16" {
        model = model.with_compute_dtype(md4_models::ComputeDtype::Bf16);
    }
    let vs = VarStore::new(device);
    let objective = Md4 {
        denoiser: model.build_network(&vs.root())?,
        schedule: Schedule::md4(MaskingSchedule::Linear),
        vocab: model.vocab(),
    };
    let total = (args.warmup + args.steps) as i64;
    let cfg = TrainConfig {
        steps: total,
        batch: args.batch,
        seq_len: args.seq_len,
        lr: 1e-4,
        warmup: 0,
        weight_decay: 0.03,
        beta2: 0.999,
        ema: 0.9999,
        clip: None,
        accum: 1,
        seed: 0,
        ckpt_every: total,
        keep_last: 1,
        log_every: 1,
        eval_every: 0,
        eval_batches: 0,
        bf16: dtype == "bf16",
    };
    let mut trainer = Trainer::new(&vs, &cfg);
    let pool = Pool(Tensor::randint(
        model.vocab().size(),
        [total, args.batch, args.seq_len],
        (Kind::Int64, Device::Cpu),
    ));
    for _ in 0..args.warmup {
        trainer.train_step(&objective, &pool)?;
    }
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..args.steps {
        loss = trainer.train_step(&objective, &pool)?.loss_bits;
    }
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
    let wall = start.elapsed().as_secs_f64();
    Ok(json!({
        "impl": "md4-rs",
        "dtype": dtype,
        "device": args.device,
        "threads": tch::get_num_threads(),
        "step_ms": 1000.0 * wall / args.steps as f64,
        "tokens_per_s": (args.steps as i64 * args.batch * args.seq_len) as f64 / wall,
        "peak_rss_mb": md4_train::alloc::rss_mib("VmHWM"),
        "rss_before_model_mb": rss_before,
        "peak_gpu_mb": Value::Null,
        "last_loss_bits": loss,
        "params": md4_models::count_parameters(&vs),
    }))
}

fn last_json_line(stdout: &[u8]) -> Result<Value> {
    let text = String::from_utf8_lossy(stdout);
    let line =
        text.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON line in the output")?;
    Ok(serde_json::from_str(line)?)
}

/// The measurement flags that the Rust and the Python worker share.
fn worker_args(args: &Args) -> Vec<String> {
    [
        ("--steps", args.steps.to_string()),
        ("--warmup", args.warmup.to_string()),
        ("--batch", args.batch.to_string()),
        ("--seq-len", args.seq_len.to_string()),
        ("--device", args.device.clone()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

fn run_rust(args: &Args, dtype: &str) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe).args(["--worker", dtype]).args(worker_args(args)).output()?;
    if !out.status.success() {
        bail!("rust worker failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    last_json_line(&out.stdout)
}

fn run_python(args: &Args, python: &PathBuf, dtype: &str) -> Result<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/train_step.py");
    // The same heap settings as md4_train::tune_allocator gives the Rust worker.
    let out = Command::new(python)
        .env("MALLOC_MMAP_MAX_", "0")
        .env("MALLOC_TRIM_THRESHOLD_", (64u64 << 30).to_string())
        .arg(&script)
        .args(["--dtype", dtype])
        .args(worker_args(args))
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("python worker failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    last_json_line(&out.stdout)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn main() -> Result<()> {
    md4_train::tune_allocator();
    let args = Args::parse();
    if let Some(dtype) = &args.worker {
        println!("{}", worker(&args, dtype)?);
        return Ok(());
    }
    let mut python = args.python.clone();
    if let Some(py) = &python {
        let ok = Command::new(py).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!(
                "warning: {} cannot import torch (run `bash scripts/setup.sh --full`); timing Rust only",
                py.display()
            );
            python = None;
        }
    }
    let mut all: Vec<Value> = vec![];
    for round in 0..args.rounds {
        for dtype in &args.dtypes {
            let rust_first = round % 2 == 0;
            for which in if rust_first { ["rust", "python"] } else { ["python", "rust"] } {
                let m = match (which, &python) {
                    ("rust", _) => run_rust(&args, dtype)?,
                    (_, Some(py)) => run_python(&args, py, dtype)?,
                    _ => continue,
                };
                eprintln!(
                    "round {round} {dtype:>4} {:<14} {:>8.1} ms/step {:>9.0} tokens/s  peak rss {:.0} MiB",
                    m["impl"].as_str().unwrap_or("?"),
                    m["step_ms"].as_f64().unwrap_or(f64::NAN),
                    m["tokens_per_s"].as_f64().unwrap_or(f64::NAN),
                    m["peak_rss_mb"].as_f64().unwrap_or(f64::NAN)
                );
                all.push(m);
            }
        }
    }
    println!(
        "\nsmall-text8 training step, batch {} x {} tokens, {} timed steps, median of {} rounds, device {}",
        args.batch, args.seq_len, args.steps, args.rounds, args.device
    );
    println!("| dtype | implementation | ms/step | tokens/s | peak RSS MiB | RSS growth MiB |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for dtype in &args.dtypes {
        let mut ms = vec![];
        for name in ["md4-rs", "pytorch-eager"] {
            let rows: Vec<&Value> =
                all.iter().filter(|m| m["impl"] == name && m["dtype"] == dtype.as_str()).collect();
            if rows.is_empty() {
                continue;
            }
            let get = |k: &str| median(rows.iter().filter_map(|m| m[k].as_f64()).collect());
            let growth = median(
                rows.iter()
                    .filter_map(|m| Some(m["peak_rss_mb"].as_f64()? - m["rss_before_model_mb"].as_f64()?))
                    .collect(),
            );
            println!(
                "| {dtype} | {name} | {:.1} | {:.0} | {:.0} | {:.0} |",
                get("step_ms"),
                get("tokens_per_s"),
                get("peak_rss_mb"),
                growth
            );
            ms.push(get("step_ms"));
        }
        if let [rust, py] = ms[..] {
            println!(
                "| {dtype} | ratio (PyTorch ms / md4-rs ms; > 1: md4-rs faster) | {:.3} | | | |",
                py / rust
            );
        }
    }
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}
