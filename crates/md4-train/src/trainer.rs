//! One optimizer update and the loop around it (spec §8, §14): torch's RNG is reseeded from
//! (seed, step) before every update and batches are a pure function of (seed, step), so a run
//! resumed from a checkpoint takes exactly the same updates as one that never stopped.
//!
//! An update: the batch is split into `accum` micro-batches whose objectives (each divided by
//! `accum`) are back-propagated; a non-finite loss stops training with an error naming the step
//! before any parameter changes; optional global-norm clipping; AdamW at `lr(step)`; EMA update.
//!
//! Data parallel (a [`ProcessGroup`] of W ranks): every rank draws the same global batch, takes
//! its W-th and splits that into `accum` micro-batches. Micro-batch j of rank r is global
//! micro-batch g = r·accum + j, and torch is reseeded for it from (seed, step, g), so W ranks ×
//! accumulation A take exactly the updates of one process with accumulation W·A. Objectives are
//! divided by W·A, gradients are summed over the ranks in buckets after backward, and the loss
//! sums and the stop flag are summed with them: every rank sees the same finite check, clips
//! the same gradients and stops at the same step. Only rank 0 writes checkpoints, metrics and
//! progress. Validation uses batches of one global micro-batch, each seeded from its index,
//! deals them out to the ranks and sums the per-sequence values, so W ranks × accumulation A
//! validate exactly as one process with accumulation W·A.

use crate::adamw::{AdamW, AdamWConfig};
use crate::checkpoint::{self, Checkpoint};
use crate::config::TrainConfig;
use crate::data::Batches;
use crate::ema::Ema;
use crate::lr::LrSchedule;
use crate::metrics::MetricsLog;
use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md4_core::Objective;
use md4_core::stats::mean_and_se;
use md4_core::units::nats_to_bits;
use md4_dist::{ProcessGroup, bucket};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// Stream ids for [`stream_seed`]: per-update streams use the update index itself.
const INIT_STREAM: u64 = u64::MAX;
const VALIDATION_STREAM: u64 = u64::MAX - 1;

/// A torch seed derived from the run seed and a stream (the update index, or a fixed stream
/// for initialisation and validation): SplitMix64's finaliser of a mixed pair.
pub fn stream_seed(seed: u64, stream: u64) -> i64 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let z = mix(mix(seed ^ 0x6D64_345F_7472_6169) ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (z >> 1) as i64
}

/// A seed for sub-stream `index` of a stream whose seed is `base`: sub-stream 0 continues the
/// stream itself (no reseed), so a single micro-batch or validation batch draws exactly what it
/// drew before streams were split.
fn sub_seed(base: i64, index: u64) -> Option<i64> {
    (index > 0).then(|| stream_seed(base as u64, index))
}

/// The torch seed of global micro-batch `g` of update `step` (None for g = 0: it continues the
/// update's stream, seeded from (seed, step) before the batch is drawn).
pub fn micro_batch_seed(seed: u64, step: u64, g: u64) -> Option<i64> {
    sub_seed(stream_seed(seed, step), g)
}

/// Seed torch before building a model, so that its initialisation depends only on the seed.
pub fn seed_initialisation(seed: u64) {
    tch::manual_seed(stream_seed(seed, INIT_STREAM));
}

/// Every variable of `vs` by name (sorted), and the trainable ones.
pub fn named_variables(vs: &VarStore) -> (Vec<(String, Tensor)>, Vec<(String, Tensor)>) {
    let mut all: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let trainable =
        all.iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    (all, trainable)
}

/// What one update reports.
#[derive(Clone, Debug)]
pub struct StepStats {
    /// The reported quantity (the NELBO, or the exact NLL) in bits per token.
    pub loss_bits: f64,
    /// The optimised scalar in bits per token (differs from `loss_bits` for GenMD4's RLOO
    /// surrogate and D3PM's hybrid loss).
    pub objective_bits: f64,
    pub lr: f64,
    /// Gradient norm before clipping (only computed when clipping is on).
    pub grad_norm: Option<f64>,
    pub metrics: Vec<(String, f64)>,
    /// Some rank was asked to stop (SIGINT/SIGTERM) before this update's reduction.
    pub stop: bool,
}

/// A validation result with the EMA weights.
#[derive(Clone, Debug)]
pub struct Validation {
    pub bits: f64,
    /// Standard error over sequences (NaN for a single sequence).
    pub se_bits: f64,
    pub sequences: usize,
}

/// Optimizer, EMA and step counter over the variables of one VarStore.
#[derive(Debug)]
pub struct Trainer {
    pub cfg: TrainConfig,
    pub schedule: LrSchedule,
    variables: Vec<(String, Tensor)>,
    opt: AdamW,
    ema: Ema,
    step: i64,
    device: Device,
    group: Arc<ProcessGroup>,
    /// Wall seconds spent training, over every session of the run.
    pub wall_seconds: f64,
}

impl Trainer {
    /// Fresh optimizer state and an EMA starting at the current parameters.
    pub fn new(vs: &VarStore, cfg: &TrainConfig) -> Self {
        let (variables, trainable) = named_variables(vs);
        let ema = Ema::new(&trainable, cfg.ema);
        let opt = AdamW::new(trainable, AdamWConfig::paper(cfg.beta2, cfg.weight_decay));
        let schedule = LrSchedule { base: cfg.lr, warmup: cfg.warmup, total: cfg.steps };
        Self {
            cfg: cfg.clone(),
            schedule,
            variables,
            opt,
            ema,
            step: 0,
            device: vs.device(),
            group: Arc::new(ProcessGroup::single(vs.device())),
            wall_seconds: 0.0,
        }
    }

    /// Train data-parallel in `group` (call [`Trainer::sync_from_main`] after initialising or
    /// restoring, so that every rank starts from rank 0's state).
    pub fn with_group(mut self, group: Arc<ProcessGroup>) -> Self {
        self.group = group;
        self
    }

    /// The process group (a world of one unless [`Trainer::with_group`] set one).
    pub fn group(&self) -> &ProcessGroup {
        &self.group
    }

    /// Copy rank 0's variables, EMA, Adam moments and step to every rank; an error when the
    /// ranks resumed from different steps (they must see the same run directory).
    pub fn sync_from_main(&mut self) -> Result<()> {
        let g = &self.group;
        if g.size() == 1 {
            return Ok(());
        }
        let step = Tensor::from_slice(&[self.step]).to_device(g.device());
        g.broadcast(&step, 0)?;
        let main_step = step.int64_value(&[0]);
        ensure!(
            main_step == self.step,
            "rank {} resumed from step {} but rank 0 from step {main_step}: every rank must see the same run \
             directory (a shared file system across nodes)",
            g.rank(),
            self.step
        );
        let mut state: Vec<Tensor> = self.variables.iter().map(|(_, t)| t.shallow_clone()).collect();
        state.extend(self.ema.averages().iter().map(|(_, t)| t.shallow_clone()));
        state.extend(self.opt.first_moments().map(|(_, t)| t.shallow_clone()));
        state.extend(self.opt.second_moments().map(|(_, t)| t.shallow_clone()));
        bucket::broadcast(g, &state, 0, bucket::DEFAULT_BUCKET_BYTES).context("broadcasting rank 0's state")
    }

    /// Updates done so far.
    pub fn step(&self) -> i64 {
        self.step
    }
    pub fn ema(&self) -> &Ema {
        &self.ema
    }
    pub fn optimizer(&self) -> &AdamW {
        &self.opt
    }
    /// The trainable parameters (name order).
    pub fn params(&self) -> &[(String, Tensor)] {
        self.opt.params()
    }

    /// Resume from a checkpoint: variables, EMA, Adam moments, step and wall time.
    pub fn restore(&mut self, ckpt: &Checkpoint) -> Result<()> {
        let what = || format!("restoring {}", ckpt.path.display());
        let model = ckpt.section("model");
        tch::no_grad(|| -> Result<()> {
            for (name, var) in &self.variables {
                let value = model.get(name).with_context(|| format!("model/{name} is missing"))?;
                ensure!(
                    value.size() == var.size(),
                    "model/{name} has shape {:?}, expected {:?}",
                    value.size(),
                    var.size()
                );
                var.shallow_clone().copy_(value);
            }
            Ok(())
        })
        .with_context(what)?;
        self.ema.restore(&ckpt.section("ema")).with_context(what)?;
        self.opt.restore(ckpt.step, &ckpt.section("adam_m"), &ckpt.section("adam_v")).with_context(what)?;
        self.step = ckpt.step;
        self.wall_seconds = ckpt.metadata.get("wall_seconds").and_then(|s| s.parse().ok()).unwrap_or(0.0);
        Ok(())
    }

    /// Write a checkpoint of the current state to `dir` (keeping `keep_last`); `metadata` is
    /// stored beside the step, data position and wall time. Refuses non-finite tensors.
    pub fn save(&self, dir: &Path, metadata: &HashMap<String, String>) -> Result<PathBuf> {
        let mut tensors: Vec<(String, &Tensor)> = vec![];
        tensors.extend(self.variables.iter().map(|(n, t)| (format!("model/{n}"), t)));
        tensors.extend(self.ema.averages().iter().map(|(n, t)| (format!("ema/{n}"), t)));
        tensors.extend(self.opt.first_moments().map(|(n, t)| (format!("adam_m/{n}"), t)));
        tensors.extend(self.opt.second_moments().map(|(n, t)| (format!("adam_v/{n}"), t)));
        let mut meta = metadata.clone();
        meta.insert("data_position".into(), self.step.to_string());
        meta.insert("seed".into(), self.cfg.seed.to_string());
        meta.insert("rng".into(), "torch reseeded before every update from (seed, step)".into());
        meta.insert("wall_seconds".into(), format!("{:.3}", self.wall_seconds));
        checkpoint::write_checkpoint(dir, self.step, &tensors, &meta, self.cfg.keep_last)
    }

    /// One optimizer update on the batch of the current step.
    pub fn train_step(&mut self, objective: &dyn Objective, data: &dyn Batches) -> Result<StepStats> {
        let k = self.step;
        let cfg = &self.cfg;
        let (world, rank) = (self.group.size() as i64, self.group.rank() as i64);
        let micro_batches = world * cfg.accum;
        ensure!(
            cfg.batch % micro_batches == 0,
            "train.batch ({}) must be divisible by {world} rank(s) × train.accum ({})",
            cfg.batch,
            cfg.accum
        );
        tch::manual_seed(stream_seed(cfg.seed, k as u64));
        let x0 = data.train_batch(cfg.seed, k as u64, cfg.batch);
        ensure!(
            x0.size() == [cfg.batch, cfg.seq_len],
            "the batch of step {k} has shape {:?}, expected [{}, {}]",
            x0.size(),
            cfg.batch,
            cfg.seq_len
        );
        self.opt.zero_grad();
        let mut objective_sum = Tensor::zeros([], (Kind::Double, self.device));
        let mut nelbo_sum = Tensor::zeros([], (Kind::Double, self.device));
        let mut metrics = vec![];
        md4_torch::note_memory(self.device);
        let share = x0.chunk(world, 0).swap_remove(rank as usize);
        for (j, micro) in share.chunk(cfg.accum, 0).into_iter().enumerate() {
            if let Some(s) = micro_batch_seed(cfg.seed, k as u64, (rank * cfg.accum) as u64 + j as u64) {
                tch::manual_seed(s);
            }
            let micro = md4_torch::to_device(&micro, self.device);
            let out = objective.loss(&micro, true);
            (&out.objective / micro_batches as f64).backward();
            objective_sum += out.objective.detach().to_kind(Kind::Double);
            nelbo_sum += out.nelbo.to_kind(Kind::Double).sum(Kind::Double);
            metrics = out.metrics;
        }
        let mut sums = [
            objective_sum.double_value(&[]),
            nelbo_sum.double_value(&[]),
            crate::guard::stop_requested() as u8 as f64,
        ];
        self.group.sum_f64(&mut sums).with_context(|| format!("reducing the losses of step {k}"))?;
        let objective_nats = sums[0] / micro_batches as f64;
        let loss_nats = sums[1] / (cfg.batch * cfg.seq_len) as f64;
        if !objective_nats.is_finite() || !loss_nats.is_finite() {
            self.opt.zero_grad();
            bail!(
                "non-finite loss at step {k} (objective {objective_nats}, nelbo {loss_nats} nats/token); \
                 training stopped, no checkpoint written from this state"
            );
        }
        if self.group.size() > 1 {
            let grads: Vec<Tensor> =
                self.opt.params().iter().map(|(_, p)| p.grad()).filter(Tensor::defined).collect();
            bucket::all_reduce_sum(&self.group, &grads, bucket::DEFAULT_BUCKET_BYTES)
                .with_context(|| format!("reducing the gradients of step {k}"))?;
        }
        let grad_norm = cfg.clip.map(|c| self.opt.clip_grad_norm(c).double_value(&[]));
        let lr = self.schedule.at(k);
        self.opt.step(lr);
        self.ema.update(self.opt.params());
        self.step += 1;
        Ok(StepStats {
            loss_bits: nats_to_bits(loss_nats),
            objective_bits: nats_to_bits(objective_nats),
            lr,
            grad_norm,
            metrics,
            stop: sums[2] > 0.0,
        })
    }

    /// Validation bits per token with the EMA weights on the first `eval_batches` batches of
    /// the validation data (a fixed seed, so values are comparable across steps). The live
    /// parameters are swapped back exactly afterwards. `None` without validation data.
    pub fn validate(&mut self, objective: &dyn Objective, data: &dyn Batches) -> Result<Option<Validation>> {
        let total = data.eval_len();
        // Batches of one global micro-batch (batch / (W·accum) sequences): W ranks × accum A
        // validate exactly as one process with accumulation W·A.
        let micro = (self.cfg.micro_batch() / self.group.size() as i64).max(1) as u64;
        if total == 0 || self.cfg.eval_batches == 0 {
            return Ok(None);
        }
        let batches = (self.cfg.eval_batches as u64).min(total.div_ceil(micro));
        let sequences = (batches * micro).min(total) as usize;
        let (world, rank) = (self.group.size() as u64, self.group.rank() as u64);
        self.ema.swap(self.opt.params());
        let base = stream_seed(self.cfg.seed, VALIDATION_STREAM);
        let mut per_sequence = vec![0.0f64; sequences];
        tch::no_grad(|| {
            for i in (0..batches).filter(|i| i % world == rank) {
                tch::manual_seed(sub_seed(base, i).unwrap_or(base));
                let start = i * micro;
                let x0 = md4_torch::to_device(&data.eval_batch(start, micro.min(total - start)), self.device);
                let n = x0.size()[1] as f64;
                let nelbo = objective.loss(&x0, false).nelbo.to_kind(Kind::Double).to_device(Device::Cpu);
                for (slot, v) in per_sequence[start as usize..]
                    .iter_mut()
                    .zip(Vec::<f64>::try_from(&nelbo).unwrap_or_default())
                {
                    *slot = v / n;
                }
            }
        });
        self.ema.swap(self.opt.params());
        self.group.sum_f64(&mut per_sequence).context("reducing the validation results")?;
        let (mean, se) = mean_and_se(&per_sequence);
        Ok(Some(Validation {
            bits: nats_to_bits(mean),
            se_bits: nats_to_bits(se),
            sequences: per_sequence.len(),
        }))
    }
}

/// How [`run_loop`] behaves.
#[derive(Clone, Debug)]
pub struct LoopOptions {
    /// Draw the progress bar on stderr.
    pub progress: bool,
    /// Stop (writing a checkpoint) once this many updates are done, before `train.steps`.
    pub stop_at: Option<i64>,
}

/// The outcome of a training session.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Updates done when the session ended.
    pub step: i64,
    /// The step the session resumed from (None: started from scratch).
    pub resumed_from: Option<i64>,
    /// True when the run had already finished and nothing was done.
    pub already_finished: bool,
    /// The last training loss (bits per token) of this session.
    pub last_loss_bits: Option<f64>,
    /// The last validation result of this session.
    pub last_validation: Option<Validation>,
    /// The newest checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Wall seconds over every session.
    pub wall_seconds: f64,
}

fn progress_bar(total: i64, at: i64, enabled: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if !enabled {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{elapsed_precise} {bar:30} {pos}/{len} {msg} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_position(at as u64);
    bar.reset_eta();
    bar
}

/// Train from the trainer's current step to `train.steps` (or `stop_at`): metrics lines to
/// `metrics`, checkpoints (with `metadata`) to `ckpt_dir` every `ckpt_every` updates and at the
/// end, validation every `eval_every` updates. Data parallel, only rank 0 writes (metrics,
/// checkpoints, progress); every rank returns the same summary.
pub fn run_loop(
    trainer: &mut Trainer,
    objective: &dyn Objective,
    data: &dyn Batches,
    ckpt_dir: &Path,
    metrics: &mut MetricsLog,
    metadata: &HashMap<String, String>,
    opts: &LoopOptions,
) -> Result<TrainSummary> {
    let cfg = trainer.cfg.clone();
    let start = trainer.step();
    let resumed_from = (start > 0).then_some(start);
    let stop = opts.stop_at.unwrap_or(cfg.steps).min(cfg.steps);
    let mut summary = TrainSummary {
        step: start,
        resumed_from,
        already_finished: start >= cfg.steps,
        last_loss_bits: None,
        last_validation: None,
        checkpoint: None,
        wall_seconds: trainer.wall_seconds,
    };
    if start >= stop {
        return Ok(summary);
    }
    let main = trainer.group().is_main();
    let single = trainer.group().size() == 1;
    let bar = progress_bar(cfg.steps, start, opts.progress && main);
    let tokens_per_step = (cfg.batch * cfg.seq_len) as f64;
    let (mut window_loss, mut window_steps, mut window_seconds) = (0.0, 0, 0.0);
    let (base_wall, session) = (trainer.wall_seconds, Instant::now());
    while trainer.step() < stop {
        let step_start = Instant::now();
        let stats = match trainer.train_step(objective, data) {
            Ok(s) => s,
            Err(e) => {
                bar.abandon();
                if main {
                    metrics.append(
                        &json!({"kind": "error", "step": trainer.step(), "error": format!("{e:#}")}),
                    )?;
                }
                return Err(e);
            }
        };
        let k = trainer.step();
        window_loss += stats.loss_bits;
        window_steps += 1;
        window_seconds += step_start.elapsed().as_secs_f64();
        trainer.wall_seconds = base_wall + session.elapsed().as_secs_f64();
        summary.last_loss_bits = Some(stats.loss_bits);
        if main && (k % cfg.log_every == 0 || k == stop) {
            let tokens_per_s = tokens_per_step * window_steps as f64 / window_seconds.max(1e-9);
            let mean_loss = window_loss / window_steps as f64;
            let mut line = json!({
                "kind": "train",
                "step": k,
                "loss_bits": mean_loss,
                "objective_bits": stats.objective_bits,
                "lr": stats.lr,
                "tokens_per_s": tokens_per_s,
                "wall_s": trainer.wall_seconds,
            });
            if let Some(g) = stats.grad_norm {
                line["grad_norm"] = json!(g);
            }
            if let Some(peak) = md4_torch::cuda::peak_memory() {
                line["device_peak_gib"] = json!(peak as f64 / (1u64 << 30) as f64);
            }
            for (name, value) in &stats.metrics {
                line[name] = json!(value);
            }
            metrics.append(&line)?;
            bar.set_message(format!("loss {mean_loss:.4} bits/token, {:.0} tokens/s", tokens_per_s));
            (window_loss, window_steps, window_seconds) = (0.0, 0, 0.0);
        }
        let validate_now = cfg.eval_every > 0 && (k % cfg.eval_every == 0 || k == cfg.steps);
        let validation = if validate_now { trainer.validate(objective, data)? } else { None };
        if let Some(v) = validation {
            if main {
                metrics.append(&json!({
                    "kind": "validation",
                    "step": k,
                    "val_bits": v.bits,
                    "val_se_bits": v.se_bits,
                    "val_sequences": v.sequences,
                    "wall_s": trainer.wall_seconds,
                }))?;
            }
            bar.println(format!("step {k}: validation {:.4} ± {:.4} bits/token (ema)", v.bits, v.se_bits));
            summary.last_validation = Some(v);
        }
        let save = |trainer: &mut Trainer| -> Result<PathBuf> {
            trainer.wall_seconds = base_wall + session.elapsed().as_secs_f64();
            if main { trainer.save(ckpt_dir, metadata) } else { Ok(checkpoint::checkpoint_path(ckpt_dir, k)) }
        };
        let saved_now = k % cfg.ckpt_every == 0 || k == stop;
        if saved_now {
            summary.checkpoint = Some(save(trainer)?);
        }
        if stats.stop || (single && crate::guard::stop_requested()) {
            if !saved_now {
                summary.checkpoint = Some(save(trainer)?);
            }
            if main {
                metrics.append(&json!({"kind": "interrupted", "step": k, "wall_s": trainer.wall_seconds}))?;
            }
            bar.abandon();
            // Nobody leaves before rank 0's checkpoint is on disk (a launcher may stop the rest).
            trainer.group().barrier().context("waiting for rank 0's checkpoint")?;
            let checkpoint = summary.checkpoint.clone().expect("a checkpoint was just written");
            return Err(crate::guard::Interrupted { step: k, checkpoint }.into());
        }
        bar.set_position(k as u64);
    }
    trainer.group().barrier().context("waiting for rank 0's final checkpoint")?;
    bar.finish_and_clear();
    summary.step = trainer.step();
    summary.already_finished = false;
    summary.wall_seconds = trainer.wall_seconds;
    Ok(summary)
}
