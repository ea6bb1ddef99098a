//! Benchmarks (issues 3 §4 and 11 §4; never timed tests): how close md4-rs runs to what the
//! machine can do. In one run, each measurement in a fresh process:
//!
//! * the machine's peaks: a 2048³ matmul (8192³ on a GPU) in f32 and in bf16 through the same libtorch;
//! * `train-step`: one MD4 training update of the `small-text8` preset (MD4 loss, AdamW, EMA)
//!   in f32 and bf16, and the same model in PyTorch eager (`bench/train_step.py`) with
//!   `--python`, alternating the implementations;
//! * `eval`: the no-grad MD4 bound on batches (what `md4 eval` does per pass), tokens/s;
//! * `sample`: the ancestral sampler (cosine grid, f32 Gumbel), network calls/s.
//!
//! Each row prints FLOP per step (the model FLOPs of [`md4_models::TransformerConfig::forward_flops`],
//! ×3 for training), the achieved FLOP/s and the fraction of the same precision's matmul peak
//! (MFU), with the CPU model and its bf16 flags.
//!
//! ```text
//! just bench train-step      # or eval, sample
//! cargo run -p md4-train --example bench -- train-step --python "$(bash scripts/venv-path.sh)/bin/python"
//! ```

#[path = "shared/mod.rs"]
mod shared;
use shared::{Pool, median};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use md4_core::sampler::{Grid, SampleRequest, SamplerConfig, ancestral_sample};
use md4_core::{MaskingSchedule, Md4, Objective, Precision, Schedule};
use md4_models::{ComputeDtype, ComputePrecision, Hardware, ModelConfig};
use md4_train::Trainer;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn::VarStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum What {
    TrainStep,
    Eval,
    Sample,
}

impl What {
    fn name(self) -> &'static str {
        match self {
            Self::TrainStep => "train-step",
            Self::Eval => "eval",
            Self::Sample => "sample",
        }
    }
}

/// md4-rs against the machine's matmul peak (and PyTorch eager): time, FLOP/s and MFU.
#[derive(Debug, Parser)]
struct Args {
    /// What to time.
    #[arg(value_enum)]
    what: What,
    /// Python with the full torch install (train-step only); omit to time only md4-rs.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Rounds; each round measures every implementation and precision once, alternating the order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Timed repetitions per measurement (updates, evaluation batches or samples).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed repetitions first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Sequences per batch (sampling: sequences drawn together).
    #[arg(long, default_value_t = 32)]
    batch: i64,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    seq_len: i64,
    /// Reverse steps T of the sampler (sample only).
    #[arg(long, default_value_t = 32)]
    sample_steps: i64,
    /// Precisions to measure.
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16")]
    precisions: Vec<String>,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Transformer preset to time (the PyTorch comparison exists for small-text8 only).
    #[arg(long, default_value = "small-text8")]
    preset: String,
    /// CPU threads [default: OMP_NUM_THREADS, else every physical core].
    #[arg(long)]
    threads: Option<usize>,
    /// Also write every measurement as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Internal: run one measurement (`peak`, `train-step`, `eval`, `sample`) and print JSON.
    #[arg(long, hide = true)]
    worker: Option<String>,
    /// Internal: the precision of the worker's measurement.
    #[arg(long, hide = true)]
    dtype: Option<String>,
}

/// An explicit precision (`f32` or `bf16`; `auto` is a choice, not a measurement).
fn compute_dtype(dtype: &str) -> Result<ComputeDtype> {
    ComputePrecision::parse(dtype)
        .map_err(anyhow::Error::msg)?
        .fixed()
        .with_context(|| format!("measure f32 or bf16, not '{dtype}'"))
}

/// Model FLOPs of one forward pass of a transformer preset over `seq_len` tokens.
fn forward_flops(preset: &str, seq_len: i64) -> Result<f64> {
    let ModelConfig::Transformer(tcfg) = md4_models::preset(preset)? else {
        bail!("{preset} is not a transformer preset (the benchmark counts transformer FLOPs)")
    };
    Ok(tcfg.forward_flops(seq_len))
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Time `reps` calls of `f` after `warmup` untimed ones; seconds per call.
fn time_it(device: Device, warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    sync(device);
    let start = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    sync(device);
    Ok(start.elapsed().as_secs_f64() / reps as f64)
}

/// 2048³ saturates a CPU; a datacenter GPU needs larger products to reach its peak.
fn peak_n(device: Device) -> i64 {
    if device.is_cuda() { 8192 } else { 2048 }
}

/// An n³ matmul (n = 2048 on a CPU, 8192 on a GPU): the precision's peak on this machine.
fn peak(device: Device, dtype: ComputeDtype) -> Result<Value> {
    let n = peak_n(device);
    let a = Tensor::randn([n, n], (Kind::Float, device)).to_kind(dtype.kind());
    let b = Tensor::randn([n, n], (Kind::Float, device)).to_kind(dtype.kind());
    let secs = time_it(device, 2, 8, || {
        let _ = a.matmul(&b);
        Ok(())
    })?;
    Ok(json!({"gflop_per_s": 2.0 * (n as f64).powi(3) / secs / 1e9, "ms": secs * 1e3}))
}

fn worker(args: &Args, kind: &str, dtype: ComputeDtype) -> Result<Value> {
    let device = md4_torch::open_device(&args.device, md4_torch::DeviceOptions::from_env())?;
    if kind == "peak" {
        return peak(device, dtype);
    }
    tch::manual_seed(0);
    let rss_before = md4_train::alloc::rss_mib("VmRSS");
    let model = md4_models::preset(&args.preset)?.with_compute_dtype(dtype);
    let forward_flops = forward_flops(&args.preset, args.seq_len)?;
    let vs = VarStore::new(device);
    let objective = Md4 {
        denoiser: model.build_network(&vs.root())?,
        schedule: Schedule::md4(MaskingSchedule::Linear),
        vocab: model.vocab(),
    };
    let total = (args.warmup + args.steps) as i64;
    let tokens =
        Tensor::randint(model.vocab().size(), [total, args.batch, args.seq_len], (Kind::Int64, Device::Cpu));
    let (secs, flops, unit_tokens, extra) = match kind {
        "train-step" => {
            let cfg = shared::train_config(
                total,
                args.batch,
                args.seq_len,
                ComputePrecision::parse(dtype.name()).map_err(anyhow::Error::msg)?,
            );
            let mut trainer = Trainer::new(&vs, &cfg);
            let pool = Pool(tokens);
            let mut loss = 0.0;
            let secs = time_it(device, args.warmup, args.steps, || {
                loss = trainer.train_step(&objective, &pool)?.loss_bits;
                Ok(())
            })?;
            (
                secs,
                3.0 * forward_flops * args.batch as f64,
                args.batch * args.seq_len,
                json!({"last_loss_bits": loss}),
            )
        }
        "eval" => {
            let mut i = 0;
            let secs = time_it(device, args.warmup, args.steps, || {
                let x = tokens.get(i).to_device(device);
                i += 1;
                tch::no_grad(|| objective.loss(&x, false).nelbo.sum(Kind::Double).double_value(&[]));
                Ok(())
            })?;
            (secs, forward_flops * args.batch as f64, args.batch * args.seq_len, json!({}))
        }
        "sample" => {
            let cfg = SamplerConfig {
                steps: args.sample_steps,
                grid: Grid::Cosine,
                precision: Precision::F32Gumbel,
                top_p: None,
            };
            let mut calls = 0;
            let secs = time_it(device, args.warmup.min(1), args.steps.div_ceil(5), || {
                let out = tch::no_grad(|| {
                    ancestral_sample(
                        &objective.denoiser,
                        &objective.schedule,
                        objective.vocab,
                        &SampleRequest {
                            batch: args.batch,
                            seq_len: args.seq_len,
                            cond: None,
                            sampler: &cfg,
                            device,
                        },
                    )
                });
                calls = out.network_calls;
                Ok(())
            })?;
            let per_call = secs / calls.max(1) as f64;
            (
                per_call,
                forward_flops * args.batch as f64,
                args.batch * args.seq_len,
                json!({"network_calls_per_sample": calls, "calls_per_s": 1.0 / per_call}),
            )
        }
        other => bail!("unknown worker '{other}'"),
    };
    let mut out = json!({
        "impl": "md4-rs",
        "what": kind,
        "dtype": dtype.name(),
        "device": args.device,
        "threads": tch::get_num_threads(),
        "step_ms": 1000.0 * secs,
        "tokens_per_s": unit_tokens as f64 / secs,
        "flop_per_step": flops,
        "gflop_per_s": flops / secs / 1e9,
        "peak_rss_mb": md4_train::alloc::rss_mib("VmHWM"),
        "rss_before_model_mb": rss_before,
        "params": md4_models::count_parameters(&vs),
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut out, extra) {
        o.extend(e);
    }
    Ok(out)
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

fn run_rust(args: &Args, kind: &str, dtype: &str) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .arg(args.what.name())
        .args(["--worker", kind, "--dtype", dtype, "--sample-steps", &args.sample_steps.to_string()])
        .args(["--preset", &args.preset])
        .args(worker_args(args))
        .output()?;
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
    let mut m = last_json_line(&out.stdout)?;
    // The twin runs the same model: the same model FLOPs per step.
    let flops = 3.0 * forward_flops(&args.preset, args.seq_len)? * args.batch as f64;
    m["flop_per_step"] = json!(flops);
    m["gflop_per_s"] = json!(flops / (m["step_ms"].as_f64().unwrap_or(f64::NAN) / 1e3) / 1e9);
    m["what"] = json!("train-step");
    Ok(m)
}

fn main() -> Result<()> {
    md4_train::tune_allocator();
    let args = Args::parse();
    md4_torch::device::set_threads(args.threads);
    if let Some(kind) = &args.worker {
        let dtype = compute_dtype(args.dtype.as_deref().unwrap_or("f32"))?;
        println!("{}", worker(&args, kind, dtype)?);
        return Ok(());
    }
    for p in &args.precisions {
        compute_dtype(p)?;
    }
    let mut python =
        args.python.clone().filter(|_| args.what == What::TrainStep && args.preset == "small-text8");
    if let Some(py) = &python {
        let ok = Command::new(py).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!(
                "warning: {} cannot import torch (run `bash scripts/setup.sh --full`); timing md4-rs only",
                py.display()
            );
            python = None;
        }
    }
    let device = md4_torch::open_device(&args.device, md4_torch::DeviceOptions::from_env())?;
    let hardware = Hardware::detect(device);
    let auto = md4_models::compute::choose(ComputePrecision::Auto, &hardware);
    let what = args.what.name();
    let mut all: Vec<Value> = vec![];
    for round in 0..args.rounds {
        for dtype in &args.precisions {
            let m = run_rust(&args, "peak", dtype)?;
            eprintln!(
                "round {round} {dtype:>4} matmul {}³ {:>7.0} GFLOP/s",
                peak_n(device),
                m["gflop_per_s"].as_f64().unwrap_or(f64::NAN)
            );
            all.push(json!({"impl": "matmul-peak", "what": "peak", "dtype": dtype, "gflop_per_s": m["gflop_per_s"]}));
            let order = if round % 2 == 0 { ["rust", "python"] } else { ["python", "rust"] };
            for which in order {
                let m = match (which, &python) {
                    ("rust", _) => run_rust(&args, what, dtype)?,
                    (_, Some(py)) => run_python(&args, py, dtype)?,
                    _ => continue,
                };
                eprintln!(
                    "round {round} {dtype:>4} {what} {:<14} {:>8.1} ms {:>9.0} tokens/s {:>6.0} GFLOP/s  peak rss {:.0} MiB",
                    m["impl"].as_str().unwrap_or("?"),
                    m["step_ms"].as_f64().unwrap_or(f64::NAN),
                    m["tokens_per_s"].as_f64().unwrap_or(f64::NAN),
                    m["gflop_per_s"].as_f64().unwrap_or(f64::NAN),
                    m["peak_rss_mb"].as_f64().unwrap_or(f64::NAN)
                );
                all.push(m);
            }
        }
    }
    let get = |imp: &str, dtype: &str, key: &str| {
        median(
            all.iter()
                .filter(|m| m["impl"] == imp && m["dtype"] == dtype)
                .filter_map(|m| m[key].as_f64())
                .collect(),
        )
    };
    let unit = match args.what {
        What::TrainStep => "update",
        What::Eval => "batch",
        What::Sample => "network call",
    };
    println!(
        "\n{what}: {} ({:.2}M parameters), batch {} × {} tokens{}, {} timed, median of {} rounds",
        args.preset,
        md4_models::preset(&args.preset)?.param_count() as f64 / 1e6,
        args.batch,
        args.seq_len,
        if args.what == What::Sample { format!(", T = {}", args.sample_steps) } else { String::new() },
        args.steps,
        args.rounds
    );
    println!(
        "machine: {}, {} threads, libtorch {}; precision auto picks {}",
        hardware.describe(),
        tch::get_num_threads(),
        md4_torch::libtorch_version(),
        auto.dtype.name()
    );
    println!(
        "\n| precision | implementation | ms per {unit} | tokens/s | GFLOP per {unit} | GFLOP/s | MFU (of the same precision's {n}³ matmul) |",
        n = peak_n(device)
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let mut ms = std::collections::HashMap::new();
    for dtype in &args.precisions {
        let peak = get("matmul-peak", dtype, "gflop_per_s");
        println!("| {dtype} | matmul {}³ (peak) | | | | {peak:.0} | 100 % |", peak_n(device));
        for name in ["md4-rs", "pytorch-eager"] {
            let step = get(name, dtype, "step_ms");
            if step.is_nan() {
                continue;
            }
            let gflops = get(name, dtype, "gflop_per_s");
            println!(
                "| {dtype} | {name} | {step:.1} | {:.0} | {:.1} | {gflops:.0} | {:.0} % |",
                get(name, dtype, "tokens_per_s"),
                get(name, dtype, "flop_per_step") / 1e9,
                100.0 * gflops / peak
            );
            ms.insert((name, dtype.as_str()), step);
        }
    }
    println!();
    for dtype in &args.precisions {
        if let (Some(rust), Some(py)) =
            (ms.get(&("md4-rs", dtype.as_str())), ms.get(&("pytorch-eager", dtype.as_str())))
        {
            println!("- {dtype}: PyTorch eager ms / md4-rs ms = {:.3} (> 1: md4-rs faster)", py / rust);
        }
    }
    if let (Some(f), Some(b)) = (ms.get(&("md4-rs", "f32")), ms.get(&("md4-rs", "bf16"))) {
        let (pf, pb) = (get("matmul-peak", "f32", "gflop_per_s"), get("matmul-peak", "bf16", "gflop_per_s"));
        println!("- md4-rs bf16 speed-up over f32: {:.2}× (matmul peak ratio {:.2}×)", f / b, pb / pf);
    }
    if args.what == What::Sample {
        for dtype in &args.precisions {
            println!("- {dtype}: {:.1} network calls/s", get("md4-rs", dtype, "calls_per_s"));
        }
    }
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}
