//! A training run as a directory (style rule 10): `config.yaml` (the resolved configuration),
//! `run.json` (seed, commit, library versions, sessions), `metrics.jsonl` and
//! `checkpoints/ckpt-<step>.safetensors`. [`train`] starts or resumes a run and returns at
//! once when it has already finished; [`load_run`] rebuilds the model with its EMA weights for
//! evaluation and sampling.
//!
//! Data parallel (`TrainOptions::group`), rank 0 owns the directory: it takes the lock, pins the
//! configuration, prepares the data and writes `run.json`, metrics and checkpoints; the other
//! ranks wait for it, then read the same configuration, data and checkpoint, and take rank 0's
//! state by broadcast. Every rank must see the run directory (one machine, or a shared file
//! system across nodes).

use crate::checkpoint::{self, Checkpoint};
use crate::config::RunConfig;
use crate::data::{Data, DataOptions};
use crate::ema::copy_named_into;
use crate::guard::{Interrupts, RunLock};
use crate::metrics::{self, MetricsLog, RunRecord, TCH_VERSION};
use crate::objective::{self, Trained};
use crate::trainer::{self, LoopOptions, TrainSummary, Trainer};
use anyhow::{Context, Result, bail, ensure};
use md4_dist::ProcessGroup;
use md4_models::{ComputePrecision, PrecisionChoice};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, nn::VarStore};

/// Options of [`train`] that are not part of the experiment.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub device: Device,
    /// Draw the progress bar on stderr.
    pub progress: bool,
    /// Stop (writing a checkpoint) once this many updates are done.
    pub stop_at: Option<i64>,
    /// Never download a registry data set that is not prepared yet.
    pub offline: bool,
    /// Where the user's own files are tokenised to (default: [`md4_data::local_cache_dir`]).
    pub local_cache: Option<PathBuf>,
    /// Train data-parallel in this process group (None: one process).
    pub group: Option<Arc<ProcessGroup>>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            progress: true,
            stop_at: None,
            offline: false,
            local_cache: None,
            group: None,
        }
    }
}

/// `<run_dir>/checkpoints`.
pub fn checkpoint_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// `<run_dir>/config.yaml`.
pub fn config_path(run_dir: &Path) -> PathBuf {
    run_dir.join("config.yaml")
}

/// The resolved configuration stored in a run directory.
pub fn read_run_config(run_dir: &Path) -> Result<RunConfig> {
    let path = config_path(run_dir);
    let text = fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is this a run directory?)", path.display()))?;
    RunConfig::from_yaml(&text).with_context(|| format!("loading {}", path.display()))
}

/// Write `config.yaml`, or check that the one present is the same configuration.
fn pin_config(run_dir: &Path, cfg: &RunConfig) -> Result<()> {
    let path = config_path(run_dir);
    if path.exists() {
        let stored = read_run_config(run_dir)?;
        if stored != *cfg {
            let (a, b) = (stored.to_yaml()?, cfg.to_yaml()?);
            let diff: Vec<String> = a
                .lines()
                .zip(b.lines())
                .filter(|(x, y)| x != y)
                .map(|(x, y)| format!("  stored: {}\n  given:  {}", x.trim(), y.trim()))
                .take(5)
                .collect();
            bail!(
                "{} holds a different configuration; use a new run directory or the same config\n{}",
                run_dir.display(),
                diff.join("\n")
            );
        }
        return Ok(());
    }
    let tmp = run_dir.join("config.yaml.tmp");
    fs::write(&tmp, cfg.to_yaml()?).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Train (or resume) the run in `run_dir`. Returns at once, with `already_finished`, when the
/// newest checkpoint is at `train.steps`.
pub fn train(cfg: &RunConfig, run_dir: &Path, opts: &TrainOptions) -> Result<TrainSummary> {
    crate::tune_allocator();
    cfg.validate()?;
    let group = opts.group.clone().unwrap_or_else(|| Arc::new(ProcessGroup::single(opts.device)));
    let main = group.is_main();
    let progress = opts.progress && main;
    let micro_batches = group.size() as i64 * cfg.train.accum;
    ensure!(
        cfg.train.batch % micro_batches == 0,
        "train.batch ({}) must be divisible by {} rank(s) × train.accum ({}): each rank takes batch / ranks \
         sequences per update and splits them into accum micro-batches",
        cfg.train.batch,
        group.size(),
        cfg.train.accum
    );
    let config_sha256 = cfg.sha256()?;
    let ckpt_dir = checkpoint_dir(run_dir);
    let data_opts = DataOptions { offline: opts.offline, progress, local_cache: opts.local_cache.clone() };
    let mut _lock = None;
    if main {
        fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        _lock = Some(RunLock::acquire(run_dir)?);
        pin_config(run_dir, cfg)?;
        let stray = checkpoint::remove_temporaries(&ckpt_dir)?;
        if stray > 0 && progress {
            eprintln!(
                "removed {stray} temporary file(s) an interrupted checkpoint write left in {}",
                ckpt_dir.display()
            );
        }
    }
    group.barrier().context("waiting for rank 0 to prepare the run directory")?;
    if !main {
        pin_config(run_dir, cfg).with_context(|| format!("rank {}", group.rank()))?;
    }
    let latest = checkpoint::load_latest_valid(&ckpt_dir)?;
    if let Some(c) = &latest {
        let stored = c.meta("config_sha256")?;
        ensure!(
            stored == config_sha256,
            "{} was written with config {stored}, not {config_sha256}",
            c.path.display()
        );
        if c.step >= cfg.train.steps {
            return Ok(TrainSummary {
                step: c.step,
                resumed_from: Some(c.step),
                already_finished: true,
                last_loss_bits: None,
                last_validation: None,
                checkpoint: Some(c.path.clone()),
                wall_seconds: c.metadata.get("wall_seconds").and_then(|s| s.parse().ok()).unwrap_or(0.0),
            });
        }
    }
    // Rank 0 prepares the data (download, tokenisation) once; the others open what it wrote.
    let prepared = if main { Some(Data::open(&cfg.data, cfg.train.seq_len, &data_opts)?) } else { None };
    group.barrier().context("waiting for rank 0 to prepare the data")?;
    let data = match prepared {
        Some(d) => d,
        None => Data::open(&cfg.data, cfg.train.seq_len, &DataOptions { offline: true, ..data_opts })?,
    };
    ensure!(
        data.vocab == cfg.model.vocab().size(),
        "{} has vocabulary {} but the model's is {} (set model.vocab_size)",
        data.description,
        data.vocab,
        cfg.model.vocab().size()
    );
    let vs = VarStore::new(opts.device);
    trainer::seed_initialisation(cfg.train.seed);
    let (trained, precision) = objective::build(cfg, &vs.root(), None)?;
    if progress {
        eprintln!("precision: {}", precision.describe());
        if group.size() > 1 {
            eprintln!(
                "data parallel: {} ranks ({}), global batch {}",
                group.size(),
                group.backend_name(),
                cfg.train.batch
            );
        }
    }
    let mut trainer = Trainer::new(&vs, &cfg.train).with_group(group.clone());
    let from_step = match &latest {
        Some(c) => {
            trainer.restore(c)?;
            if progress {
                eprintln!("resuming {} from step {}", run_dir.display(), c.step);
            }
            c.step
        }
        None => 0,
    };
    trainer.sync_from_main()?;
    let mut log = MetricsLog::discard();
    if main {
        let mut session = metrics::session(from_step, opts.device, &precision);
        session.world_size = group.size();
        record_session(run_dir, cfg, &config_sha256, &data, session, trainable_parameters(&vs))?;
        log = MetricsLog::open(&run_dir.join("metrics.jsonl"), from_step)?;
        // Which arithmetic the following lines come from (a resumed run may change machine).
        log.append(&serde_json::json!({
            "kind": "session",
            "step": from_step,
            "precision": precision.dtype.name(),
            "precision_reason": precision.describe(),
            "threads": tch::get_num_threads(),
            "world_size": group.size(),
        }))?;
    }
    let metadata = HashMap::from([
        ("config_sha256".to_string(), config_sha256),
        ("objective".to_string(), cfg.objective.name().to_string()),
    ]);
    drop(latest);
    let _interrupts = Interrupts::install();
    trainer::run_loop(
        &mut trainer,
        trained.objective(),
        &data,
        &ckpt_dir,
        &mut log,
        &metadata,
        &LoopOptions { progress, stop_at: opts.stop_at },
    )
}

fn record_session(
    run_dir: &Path,
    cfg: &RunConfig,
    config_sha256: &str,
    data: &Data,
    session: metrics::Session,
    parameters: i64,
) -> Result<()> {
    let path = run_dir.join("run.json");
    let mut record = if path.exists() {
        RunRecord::read(&path)?
    } else {
        RunRecord {
            seed: cfg.train.seed,
            config_sha256: config_sha256.to_string(),
            objective: cfg.objective.name().to_string(),
            model_parameters: parameters,
            data: data.description.clone(),
            tch_version: TCH_VERSION.to_string(),
            libtorch_version: md4_torch::libtorch_version(),
            md4_version: env!("CARGO_PKG_VERSION").to_string(),
            sessions: vec![],
        }
    };
    record.sessions.push(session);
    record.write(&path)
}

/// Copy a checkpoint's EMA weights into `vs` (non-trainable variables from its model section).
pub fn load_ema_weights(vs: &VarStore, ckpt: &Checkpoint) -> Result<()> {
    let model = ckpt.section("model");
    let ema = ckpt.section("ema");
    ensure!(!ema.is_empty(), "{} holds no ema weights", ckpt.path.display());
    let variables = vs.variables();
    let mut values: Vec<(&str, &tch::Tensor)> = vec![];
    for name in variables.keys() {
        let value = ema
            .get(name)
            .or_else(|| model.get(name))
            .with_context(|| format!("{} has no weights for {name}", ckpt.path.display()))?;
        values.push((name.as_str(), value));
    }
    copy_named_into(vs, values).with_context(|| format!("loading the weights of {}", ckpt.path.display()))
}

/// A trained run rebuilt for evaluation or sampling, with its EMA weights.
#[derive(Debug)]
pub struct LoadedRun {
    pub cfg: RunConfig,
    pub vs: VarStore,
    pub trained: Trained,
    /// Updates done at the loaded checkpoint.
    pub step: i64,
    /// The arithmetic the network was built in, and why.
    pub precision: PrecisionChoice,
    pub checkpoint: PathBuf,
}

/// Trainable parameters of the networks in `vs` (GenMD4's schedule included): the one count
/// that run records and table notes print, whatever network the objective built (the AR
/// baseline builds the time-independent variant of its transformer).
pub fn trainable_parameters(vs: &VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

impl LoadedRun {
    /// [`trainable_parameters`] of the loaded networks.
    pub fn parameters(&self) -> i64 {
        trainable_parameters(&self.vs)
    }
}

/// Rebuild the model of `run_dir` on `device` in the run's own `train.precision` and load
/// the EMA weights of its newest valid checkpoint.
pub fn load_run(run_dir: &Path, device: Device) -> Result<LoadedRun> {
    load_run_with(run_dir, device, None)
}

/// [`load_run`] with the arithmetic overridden (`--precision` of `md4 eval` / `md4 sample`).
pub fn load_run_with(
    run_dir: &Path,
    device: Device,
    precision: Option<ComputePrecision>,
) -> Result<LoadedRun> {
    let cfg = read_run_config(run_dir)?;
    let ckpt = checkpoint::load_latest_valid_ema(&checkpoint_dir(run_dir))?
        .with_context(|| format!("{} has no checkpoint yet", run_dir.display()))?;
    let vs = VarStore::new(device);
    let (trained, precision) = objective::build(&cfg, &vs.root(), precision)?;
    load_ema_weights(&vs, &ckpt)?;
    Ok(LoadedRun { step: ckpt.step, checkpoint: ckpt.path.clone(), cfg, vs, trained, precision })
}
