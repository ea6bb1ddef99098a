//! `just bench ddp` (issue 14 §5; a benchmark, never a timed test): data parallelism on this
//! machine through c10d's Gloo over loopback. In one run, each measurement in fresh processes,
//! rounds alternating the order:
//!
//! * one training update of a transformer preset (MD4 loss, AdamW, EMA; global batch B) by
//!   1 process × 1 thread, 1 process × T threads, and T ranks × 1 thread (`md4_dist::launch`,
//!   B/T sequences each, gradients all-reduced in 25 MiB buckets);
//! * all-reduce of f32 buffers from 256 KiB to 64 MiB between T ranks: time, algorithm
//!   bandwidth (bytes / time) and bus bandwidth (× 2(T−1)/T, NCCL's convention).
//!
//! It prints the CPU model and its bf16 flags, and the scaling efficiency: T-rank throughput /
//! (T × the one-thread process's).
//!
//! ```text
//! just bench ddp                    # cargo run -p md4-train --example bench_ddp
//! just bench ddp --preset tiny-text8 --ranks 2 --rounds 3
//! ```

#[path = "shared/mod.rs"]
mod shared;
use shared::{Pool, median};

use anyhow::{Context, Result, bail};
use clap::Parser;
use md4_core::{MaskingSchedule, Md4, Schedule};
use md4_dist::launch::{LaunchOptions, launch};
use md4_dist::{Backend, DistEnv, ProcessGroup};
use md4_models::{ComputePrecision, Hardware};
use md4_train::Trainer;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor, nn::VarStore};

#[derive(Debug, Parser)]
struct Args {
    /// Transformer preset to train.
    #[arg(long, default_value = "small-text8")]
    preset: String,
    /// Global batch (sequences per update, split over the ranks).
    #[arg(long, default_value_t = 16)]
    batch: i64,
    #[arg(long, default_value_t = 256)]
    seq_len: i64,
    /// Ranks (and threads of the threaded single process) [default: the cores available].
    #[arg(long)]
    ranks: Option<usize>,
    /// Network arithmetic (auto, f32 or bf16).
    #[arg(long, default_value = "auto")]
    precision: String,
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Timed updates per measurement (after `warmup` untimed ones).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Write every measurement as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Internal: `train` or `allreduce` (one measurement; prints JSON on rank 0).
    #[arg(long, hide = true)]
    worker: Option<String>,
}

fn group() -> Result<ProcessGroup> {
    match DistEnv::from_env()? {
        Some(env) => ProcessGroup::init(&env, Backend::Gloo, Device::Cpu, Duration::from_secs(300)),
        None => Ok(ProcessGroup::single(Device::Cpu)),
    }
}

/// Median seconds per update of `args.steps` timed updates (every rank in step).
fn train_worker(args: &Args) -> Result<Value> {
    let g = Arc::new(group()?);
    let precision = ComputePrecision::parse(&args.precision).map_err(anyhow::Error::msg)?;
    let choice = md4_models::compute::choose(precision, &Hardware::this_cpu());
    tch::manual_seed(0);
    let model = md4_models::preset(&args.preset)?.with_compute_dtype(choice.dtype);
    let vs = VarStore::new(Device::Cpu);
    let objective = Md4 {
        denoiser: model.build_network(&vs.root())?,
        schedule: Schedule::md4(MaskingSchedule::Linear),
        vocab: model.vocab(),
    };
    let total = (args.warmup + args.steps) as i64;
    let cfg = shared::train_config(total, args.batch, args.seq_len, precision);
    let pool = Pool(Tensor::randint(
        model.vocab().size(),
        [total, args.batch, args.seq_len],
        (Kind::Int64, Device::Cpu),
    ));
    let mut trainer = Trainer::new(&vs, &cfg).with_group(g.clone());
    trainer.sync_from_main()?;
    let mut times = vec![];
    for i in 0..total {
        g.barrier()?;
        let start = Instant::now();
        trainer.train_step(&objective, &pool)?;
        if i >= args.warmup as i64 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(json!({
        "ranks": g.size(),
        "threads": tch::get_num_threads(),
        "step_s": median(times),
        "precision": choice.dtype.name(),
        "parameters": md4_models::preset(&args.preset)?.param_count(),
    }))
}

/// Median seconds per all-reduce of each buffer size.
fn allreduce_worker() -> Result<Value> {
    let g = group()?;
    let mut rows = vec![];
    for mib in [0.25f64, 1.0, 4.0, 16.0, 64.0] {
        let n = (mib * (1 << 20) as f64 / 4.0) as i64;
        let t = Tensor::ones([n], (Kind::Float, Device::Cpu));
        let reps = if mib >= 16.0 { 5 } else { 20 };
        let mut times = vec![];
        for i in 0..reps + 2 {
            g.barrier()?;
            let start = Instant::now();
            g.all_reduce_sum(&t)?;
            if i >= 2 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        rows.push(json!({"mib": mib, "seconds": median(times)}));
    }
    Ok(json!({"ranks": g.size(), "allreduce": rows}))
}

fn worker_args(args: &Args, kind: &str) -> Vec<OsString> {
    [
        "--worker",
        kind,
        "--preset",
        &args.preset,
        "--batch",
        &args.batch.to_string(),
        "--seq-len",
        &args.seq_len.to_string(),
        "--precision",
        &args.precision,
        "--steps",
        &args.steps.to_string(),
        "--warmup",
        &args.warmup.to_string(),
    ]
    .map(OsString::from)
    .to_vec()
}

fn last_json(text: &str) -> Result<Value> {
    let line = text.lines().rev().find(|l| l.starts_with('{')).context("the worker printed no JSON")?;
    Ok(serde_json::from_str(line)?)
}

/// One process with `threads` threads.
fn single(args: &Args, kind: &str, threads: usize) -> Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .args(worker_args(args, kind))
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("worker failed:\n{text}");
    }
    last_json(&text)
}

/// `ranks` ranks of one thread each.
fn ranks(args: &Args, kind: &str, ranks: usize) -> Result<Value> {
    let mut opts = LaunchOptions::new(ranks, std::env::current_exe()?, worker_args(args, kind));
    opts.env.push(("OMP_NUM_THREADS".into(), "1".into()));
    opts.capture = true;
    let l = launch(&opts, &|| false)?;
    if let Some(bad) = l.ranks.iter().find(|r| !r.status.success()) {
        bail!("rank {} failed:\n{}", bad.rank, bad.output);
    }
    last_json(&l.ranks[0].output)
}

fn main() -> Result<()> {
    md4_train::tune_allocator();
    let args = Args::parse();
    if let Some(kind) = &args.worker {
        let is_main = DistEnv::from_env()?.is_none_or(|e| e.rank == 0);
        let v = if kind == "train" { train_worker(&args)? } else { allreduce_worker()? };
        if is_main {
            println!("{v}");
        }
        return Ok(());
    }
    let n = args.ranks.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |c| c.get()));
    if n < 2 || args.batch % n as i64 != 0 {
        bail!("--ranks must be at least 2 and divide --batch ({})", args.batch);
    }
    let mut all = vec![];
    for round in 0..args.rounds {
        let configs: Vec<(&str, usize, bool)> = vec![
            ("1 process × 1 thread", 1, false),
            (if n == 2 { "1 process × 2 threads" } else { "1 process × T threads" }, n, false),
            ("T ranks × 1 thread", n, true),
        ];
        let order: Vec<_> = if round % 2 == 0 { configs } else { configs.into_iter().rev().collect() };
        for (name, k, dist) in order {
            let m = if dist { ranks(&args, "train", k)? } else { single(&args, "train", k)? };
            eprintln!(
                "round {round} {name:<24} {:>8.1} ms per update",
                1e3 * m["step_s"].as_f64().unwrap_or(f64::NAN)
            );
            all.push(json!({"what": "train", "config": name, "measurement": m}));
        }
        let m = ranks(&args, "allreduce", n)?;
        all.push(json!({"what": "allreduce", "measurement": m}));
    }
    let step = |name: &str| {
        median(
            all.iter()
                .filter(|m| m["config"] == name)
                .filter_map(|m| m["measurement"]["step_s"].as_f64())
                .collect(),
        )
    };
    let first = all.iter().find(|m| m["what"] == "train").context("no measurement")?;
    let hw = Hardware::this_cpu();
    println!(
        "\nddp: {} ({:.2}M parameters, {}), global batch {} × {} tokens, {} timed updates, median of {} rounds",
        args.preset,
        first["measurement"]["parameters"].as_f64().unwrap_or(0.0) / 1e6,
        first["measurement"]["precision"].as_str().unwrap_or("?"),
        args.batch,
        args.seq_len,
        args.steps,
        args.rounds
    );
    println!(
        "machine: {}, {} cores available, libtorch {}, Gloo over 127.0.0.1 (T = {n})",
        hw.describe(),
        n,
        md4_torch::libtorch_version()
    );
    println!("\n| configuration | ms per update | tokens/s | vs 1 process × 1 thread |");
    println!("| --- | ---: | ---: | ---: |");
    let tokens = (args.batch * args.seq_len) as f64;
    let base = step("1 process × 1 thread");
    let names = [
        "1 process × 1 thread",
        if n == 2 { "1 process × 2 threads" } else { "1 process × T threads" },
        "T ranks × 1 thread",
    ];
    for name in names {
        let s = step(name);
        println!("| {name} | {:.1} | {:.0} | {:.2}× |", 1e3 * s, tokens / s, base / s);
    }
    let (threaded, ddp) = (step(names[1]), step(names[2]));
    println!(
        "\n- scaling efficiency of {n} ranks: {:.0} % (throughput / ({n} × one thread's))",
        100.0 * base / (n as f64 * ddp)
    );
    println!("- {n} ranks × 1 thread vs 1 process × {n} threads: {:.2}× the throughput", threaded / ddp);
    println!("\n| all-reduce (f32, {n} ranks) | ms | algorithm bandwidth GB/s | bus bandwidth GB/s |");
    println!("| ---: | ---: | ---: | ---: |");
    for mib in [0.25f64, 1.0, 4.0, 16.0, 64.0] {
        let secs = median(
            all.iter()
                .filter(|m| m["what"] == "allreduce")
                .flat_map(|m| m["measurement"]["allreduce"].as_array().cloned().unwrap_or_default())
                .filter(|r| r["mib"].as_f64() == Some(mib))
                .filter_map(|r| r["seconds"].as_f64())
                .collect(),
        );
        let algbw = mib * (1 << 20) as f64 / secs / 1e9;
        println!(
            "| {mib} MiB | {:.2} | {algbw:.2} | {:.2} |",
            1e3 * secs,
            algbw * 2.0 * (n as f64 - 1.0) / n as f64
        );
    }
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}
