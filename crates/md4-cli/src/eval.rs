//! `md4 eval`: bits per token of a run's EMA weights with a standard error over sequences
//! (spec §3.5): the continuous-time bound by default, the finite-T bound of §3.4 with
//! `--steps T`, the exact likelihood for the AR baseline; K Monte-Carlo passes averaged per
//! sequence. `--compare OTHER_RUN` scores a second run on the same sequences and the same keyed
//! random streams and prints the paired difference (this run − other) with its standard error.

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use md4_core::elbo::discrete_nelbo;
use md4_core::forward::antithetic_times;
use md4_core::units::nats_to_bits;
use md4_eval::{EvalConfig, EvalSequences, evaluate};
use md4_train::config::DataConfig;
use md4_train::{Data, EvalSet, load_run_with};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Kind, Tensor};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory written by `md4 train`.
    #[arg(long)]
    run_dir: PathBuf,
    /// Monte-Carlo passes over every sequence (fresh t and masks each pass).
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Evaluate the finite-T bound with T steps instead of the continuous-time bound.
    #[arg(long)]
    steps: Option<i64>,
    /// Split of a registry data set (default: the config's eval_split); own data has only its
    /// held-out part.
    #[arg(long)]
    split: Option<String>,
    /// Sequences per batch (default: train.batch / train.accum).
    #[arg(long)]
    batch: Option<usize>,
    /// Score only the first S sequences.
    #[arg(long)]
    limit: Option<u64>,
    /// Seed of the keyed random streams: sequence i in pass p draws from (seed, p, i), whatever
    /// the batch size, so two runs scored with the same seed share their draws.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// A second run directory (same data and sequence length) scored on the same sequences and
    /// streams; prints the paired difference this − other with its standard error.
    #[arg(long)]
    compare: Option<PathBuf>,
    #[command(flatten)]
    device: md4_torch::DeviceArgs,
    #[command(flatten)]
    dist: crate::dist::DistArgs,
    #[command(flatten)]
    compute: crate::ComputeArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// An [`EvalSet`] (optionally truncated) as md4-eval's sequence source.
struct Sequences {
    set: EvalSet,
    count: u64,
}

impl EvalSequences for Sequences {
    fn n_sequences(&self) -> usize {
        self.count as usize
    }
    fn seq_len(&self) -> usize {
        self.set.seq_len() as usize
    }
    fn batch(&self, start: usize, end: usize) -> Tensor {
        self.set.batch(start as u64, (end - start) as u64)
    }
    fn tokens(&self, index: usize) -> Vec<i64> {
        Vec::<i64>::try_from(&self.set.batch(index as u64, 1).view([-1])).unwrap_or_default()
    }
}

fn eval_set(data: &DataConfig, split: Option<&str>, seq_len: i64) -> Result<(EvalSet, String)> {
    match data {
        DataConfig::Dataset { name, eval_split, vocab, .. } => {
            let split =
                split.map(String::from).or_else(|| eval_split.clone()).unwrap_or_else(|| "test".into());
            let prepared =
                md4_data::prepare(name, &md4_data::PrepareOptions { offline: true, ..Default::default() })
                    .with_context(|| format!("opening data set {name} (run `md4 data {name}`)"))?;
            let file = match vocab {
                Some(v) => md4_data::SubVocab::load(v)?.open_split(&prepared, &split)?,
                None => prepared.open(&split)?,
            };
            let set = Data::eval_of(Arc::new(file), seq_len)?;
            Ok((set, format!("{name}/{split}")))
        }
        _ => {
            if let Some(s) = split {
                ensure!(s == "holdout", "own data has only the 'holdout' split, not '{s}'");
            }
            let opened = Data::open(data, seq_len, &Default::default())?;
            let set = opened.eval_set().cloned().context("the data has no held-out part (holdout is 0)")?;
            Ok((set, format!("{} holdout", opened.description)))
        }
    }
}

pub fn run(a: EvalArgs) -> Result<()> {
    // Under `md4 launch` / torchrun the batches are dealt out to the ranks; rank 0 reports.
    let (device, group) = a.dist.join(&a.device)?;
    let main = group.as_ref().is_none_or(|g| g.is_main());
    let loaded = load_run_with(&a.run_dir, device, a.compute.apply())?;
    let cfg = &loaded.cfg;
    if !a.json && main {
        eprintln!("precision: {}", loaded.precision.describe());
    }
    let (set, what) = eval_set(&cfg.data, a.split.as_deref(), cfg.train.seq_len)?;
    let count = a.limit.map_or(set.len(), |l| l.min(set.len()));
    ensure!(count > 0, "no evaluation sequences in {what}");
    let sequences = Sequences { set, count };
    let batch = a.batch.unwrap_or(cfg.train.micro_batch() as usize);
    let mut config = EvalConfig::new(batch, a.passes, a.seed, device);
    config.progress = !a.json;
    config.group = group;
    let (result, bound) = score(&loaded.trained, a.steps, &sequences, &config)?;
    let compared = match &a.compare {
        None => None,
        Some(other_dir) => {
            let other = load_run_with(other_dir, device, a.compute.apply())?;
            ensure!(
                other.cfg.data == cfg.data && other.cfg.train.seq_len == cfg.train.seq_len,
                "--compare needs a run on the same data and sequence length as {}",
                a.run_dir.display()
            );
            if !a.json && main {
                eprintln!("scoring {} on the same sequences and streams", other_dir.display());
            }
            let (other_result, other_bound) = score(&other.trained, a.steps, &sequences, &config)?;
            let d = md4_eval::paired_difference(&result, &other_result)?;
            Some((other_dir.clone(), other_result, other_bound, d))
        }
    };
    let (bits, se) = (nats_to_bits(result.mean_nats_per_token), nats_to_bits(result.se_nats_per_token));
    if !main {
        return Ok(());
    }
    if a.json {
        let out = json!({
            "run_dir": a.run_dir,
            "checkpoint_step": loaded.step,
            "precision": loaded.precision.describe(),
            "data": what,
            "bound": bound,
            "steps": a.steps,
            "passes": result.passes,
            "n_sequences": result.n_sequences,
            "tokens_per_sequence": result.tokens_per_sequence,
            "bits_per_token": bits,
            "se_bits_per_token": se,
            "nats_per_token": result.mean_nats_per_token,
            "se_nats_per_token": result.se_nats_per_token,
            "pass_bits_per_token": result.pass_mean_nats_per_token.iter().map(|n| nats_to_bits(*n)).collect::<Vec<_>>(),
            "weights": "ema",
            "wall_seconds": result.wall_seconds,
            "peak_rss_mib": md4_train::alloc::peak_rss_mib(),
        });
        let mut out = out;
        if let Some((dir, other, other_bound, d)) = &compared {
            out["compare"] = json!({
                "run_dir": dir,
                "bound": other_bound,
                "bits_per_token": nats_to_bits(other.mean_nats_per_token),
                "se_bits_per_token": nats_to_bits(other.se_nats_per_token),
                "difference_bits_per_token": nats_to_bits(d.mean_nats_per_token),
                "difference_se_bits_per_token": nats_to_bits(d.se_nats_per_token),
                "resolved": d.resolved(),
            });
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{bits:.4} ± {se:.4} bits/token ({bound} bound, {} sequences × {} passes of {what}, ema weights at step {}); peak resident memory {:.0} MiB",
            result.n_sequences,
            result.passes,
            loaded.step,
            md4_train::alloc::peak_rss_mib()
        );
        if let Some((dir, other, other_bound, d)) = &compared {
            println!(
                "{:.4} ± {:.4} bits/token ({other_bound} bound) for {}\npaired difference (this − other): {:+.4} ± {:.4} bits/token over {} sequences ({})",
                nats_to_bits(other.mean_nats_per_token),
                nats_to_bits(other.se_nats_per_token),
                dir.display(),
                nats_to_bits(d.mean_nats_per_token),
                nats_to_bits(d.se_nats_per_token),
                d.n_sequences,
                if d.resolved() { "resolved: |Δ| ≥ 2 SE" } else { "within 2 SE" }
            );
        }
    }
    Ok(())
}

/// Score `sequences` with `trained` (continuous or exact bound, or the finite-T bound with
/// `steps`); returns the result and the bound's name.
fn score(
    trained: &md4_train::Trained,
    steps: Option<i64>,
    sequences: &Sequences,
    config: &EvalConfig,
) -> Result<(md4_eval::EvalResult, &'static str)> {
    let bound = match (steps, trained.is_exact()) {
        (None, true) => "exact",
        // D3PM reports its own T-step bound (its config's T).
        (None, false) if matches!(trained, md4_train::Trained::D3pm(_)) => "finite-T",
        (None, false) => "continuous",
        (Some(_), true) => {
            bail!("--steps applies to diffusion models; the AR baseline's likelihood is exact")
        }
        (Some(_), false) => "finite-T",
    };
    let result = match steps {
        None => evaluate(sequences, config, |x| trained.objective().loss(x, false).nelbo)?,
        Some(steps) => {
            ensure!(steps >= 1, "--steps must be at least 1");
            let (net, schedule, vocab) = trained
                .scalar_diffusion()
                .context("--steps needs a scalar-schedule diffusion model (not genmd4)")?;
            evaluate(sequences, config, |x| {
                let u = antithetic_times(x.size()[0], x.device());
                discrete_nelbo(net, x, &u, steps, &schedule, vocab, false).to_kind(Kind::Float)
            })?
        }
    };
    Ok((result, bound))
}
