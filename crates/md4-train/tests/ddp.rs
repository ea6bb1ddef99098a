//! Data-parallel training over two processes on 127.0.0.1 (Gloo), started by md4-dist's
//! launcher as ranks of this test binary (`MD4_DDP_WORKER` selects the worker body):
//!
//! - 2 ranks × accumulation 1 take bit-identical updates to 1 process × accumulation 2, and both
//!   ranks hold byte-identical parameters, EMA and Adam moments; validation reads the same;
//! - the reduced gradient is exactly the sum of the two ranks' local (1/2-scaled) gradients;
//! - resume is bit-exact under DDP, from a single-process checkpoint into DDP, and back;
//! - a NaN on one rank stops both at the same step with the last good checkpoint intact; a
//!   killed rank makes the other fail with an error naming it; a stop request makes both
//!   checkpoint the same step and exit 75.
#![allow(unsafe_code)] // one kill(2) call: a rank that dies as under `kill -9`

mod common;
use common::*;

use md4_core::{LossOutput, Objective};
use md4_dist::launch::{LaunchOptions, Launched, launch};
use md4_dist::{Backend, DistEnv, ProcessGroup};
use md4_train::checkpoint::{list_checkpoints, load_latest_valid, read_checkpoint};
use md4_train::metrics::{MetricsLog, read_metrics};
use md4_train::trainer::{LoopOptions, micro_batch_seed, run_loop, stream_seed};
use md4_train::{Batches, Trainer};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tch::{Device, Tensor};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The worker's settings, passed through the environment.
#[derive(Clone, Debug, Default)]
struct Job {
    dir: PathBuf,
    steps: i64,
    stop_at: Option<i64>,
    accum: i64,
    ckpt_every: i64,
    /// (rank, training call) at which the objective turns NaN / the process kills itself.
    nan_at: Option<(usize, i64)>,
    die_at: Option<(usize, i64)>,
    /// Save the local and the reduced gradient of the first update instead of training.
    grads: bool,
}

impl Job {
    fn new(dir: &Path, steps: i64, accum: i64) -> Self {
        Self { dir: dir.to_path_buf(), steps, accum, ckpt_every: 100, ..Default::default() }
    }

    fn vars(&self) -> Vec<(String, String)> {
        let pair = |p: Option<(usize, i64)>| p.map_or(String::new(), |(r, c)| format!("{r}:{c}"));
        [
            ("MD4_DDP_WORKER", "train".to_string()),
            ("MD4_DDP_DIR", self.dir.display().to_string()),
            ("MD4_DDP_STEPS", self.steps.to_string()),
            ("MD4_DDP_STOP_AT", self.stop_at.map_or(String::new(), |s| s.to_string())),
            ("MD4_DDP_ACCUM", self.accum.to_string()),
            ("MD4_DDP_CKPT_EVERY", self.ckpt_every.to_string()),
            ("MD4_DDP_NAN_AT", pair(self.nan_at)),
            ("MD4_DDP_DIE_AT", pair(self.die_at)),
            ("MD4_DDP_GRADS", (self.grads as u8).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let pair = |k: &str| {
            let v = var(k);
            v.split_once(':').map(|(r, c)| (r.parse().unwrap(), c.parse().unwrap()))
        };
        Self {
            dir: var("MD4_DDP_DIR").into(),
            steps: var("MD4_DDP_STEPS").parse().unwrap(),
            stop_at: var("MD4_DDP_STOP_AT").parse().ok(),
            accum: var("MD4_DDP_ACCUM").parse().unwrap(),
            ckpt_every: var("MD4_DDP_CKPT_EVERY").parse().unwrap(),
            nan_at: pair("MD4_DDP_NAN_AT"),
            die_at: pair("MD4_DDP_DIE_AT"),
            grads: var("MD4_DDP_GRADS") == "1",
        }
    }
}

/// The test's objective with faults injected on one rank.
struct Faulty<'a> {
    inner: &'a dyn Objective,
    rank: usize,
    calls: Cell<i64>,
    nan_at: Option<(usize, i64)>,
    die_at: Option<(usize, i64)>,
}

impl Objective for Faulty<'_> {
    fn loss(&self, x0: &Tensor, train: bool) -> LossOutput {
        let mut out = self.inner.loss(x0, train);
        if train {
            self.calls.set(self.calls.get() + 1);
            let now = Some((self.rank, self.calls.get()));
            if now == self.die_at {
                // SAFETY: kill(2) on ourselves; nothing after it runs.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
            if now == self.nan_at {
                out.objective = &out.objective * f64::NAN;
            }
        }
        out
    }
}

fn save_state(path: &Path, tensors: &[(String, Tensor)]) {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, path).unwrap();
}

fn load_state(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn worker() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    let job = Job::from_env();
    let mut cfg = train_cfg(job.steps);
    (cfg.accum, cfg.ckpt_every, cfg.keep_last) = (job.accum, job.ckpt_every, 100);
    if job.grads {
        cfg.clip = None;
    }
    let (_vs, objective, trainer) = setup(&cfg, 1);
    let group = match DistEnv::from_env()? {
        Some(env) => ProcessGroup::init(&env, Backend::Gloo, Device::Cpu, TIMEOUT)?,
        None => ProcessGroup::single(Device::Cpu),
    };
    let (rank, main) = (group.rank(), group.is_main());
    let mut trainer = trainer.with_group(Arc::new(group));
    let ckpt_dir = job.dir.join("ckpt");
    if let Some(c) = load_latest_valid(&ckpt_dir)? {
        trainer.restore(&c)?;
    }
    trainer.sync_from_main()?;
    let tag = if trainer.group().size() == 1 { "single".to_string() } else { rank.to_string() };
    if job.grads {
        // The local gradient of this rank's half of the first batch, computed by hand the way an
        // update seeds it; then one update, after which p.grad() holds the reduced gradient.
        let data = Stream::new();
        tch::manual_seed(stream_seed(cfg.seed, 0));
        let share = data.train_batch(cfg.seed, 0, cfg.batch).chunk(2, 0).swap_remove(rank);
        if let Some(s) = micro_batch_seed(cfg.seed, 0, rank as u64) {
            tch::manual_seed(s);
        }
        (objective.loss(&share, true).objective / 2.0).backward();
        let grads = |t: &Trainer| -> Vec<(String, Tensor)> {
            t.params().iter().map(|(n, p)| (n.clone(), p.grad().copy())).collect()
        };
        save_state(&job.dir.join(format!("local-{tag}.safetensors")), &grads(&trainer));
        trainer.train_step(&objective, &data)?;
        save_state(&job.dir.join(format!("reduced-{tag}.safetensors")), &grads(&trainer));
        return Ok(());
    }
    let faulty =
        Faulty { inner: &objective, rank, calls: Cell::new(0), nan_at: job.nan_at, die_at: job.die_at };
    let mut log = if main {
        MetricsLog::open(&job.dir.join("metrics.jsonl"), trainer.step())?
    } else {
        MetricsLog::discard()
    };
    let meta = HashMap::from([("config_sha256".to_string(), "test".to_string())]);
    let result = run_loop(
        &mut trainer,
        &faulty,
        &Stream::new(),
        &ckpt_dir,
        &mut log,
        &meta,
        &LoopOptions { progress: false, stop_at: job.stop_at },
    );
    save_state(&job.dir.join(format!("state-{tag}.safetensors")), &state(&trainer));
    let summary = result?;
    println!("rank {tag} finished at step {}", summary.step);
    Ok(())
}

/// Run the worker when this process is one (returns true), else do nothing.
fn as_worker() -> bool {
    if std::env::var("MD4_DDP_WORKER").is_err() {
        return false;
    }
    // Installed until the process exits: the launcher's SIGTERM (sent when the other rank
    // fails) only sets the stop flag, as in `md4 train`.
    let _interrupts = md4_train::guard::Interrupts::install();
    if let Err(e) = worker() {
        println!("error: {e:#}");
        std::process::exit(md4_train::guard::exit_code(&e));
    }
    true
}

fn worker_args(test: &str) -> Vec<OsString> {
    ["--exact", test, "--nocapture", "--test-threads=1"].map(OsString::from).to_vec()
}

/// One process, no process group.
fn single(test: &str, job: &Job) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(worker_args(test))
        .envs(job.vars())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "single process failed:\n{text}");
}

/// Two ranks through the launcher; `stop_after`: request a stop after that long.
fn ranks(test: &str, job: &Job, stop_after: Option<Duration>) -> Launched {
    let mut opts = LaunchOptions::new(2, std::env::current_exe().unwrap(), worker_args(test));
    (opts.env, opts.timeout, opts.grace, opts.capture) = (job.vars(), TIMEOUT, TIMEOUT, true);
    let start = std::time::Instant::now();
    launch(&opts, &|| stop_after.is_some_and(|d| start.elapsed() > d)).unwrap()
}

fn two_ranks_ok(test: &str, job: &Job) {
    let l = ranks(test, job, None);
    for r in &l.ranks {
        assert!(r.status.success(), "rank {} failed:\n{}", r.rank, r.output);
    }
}

/// Every tensor bit-identical (names, shapes, values).
fn assert_identical(a: &[(String, Tensor)], b: &[(String, Tensor)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: different tensor sets");
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb, "{what}");
        let diff = (ta - tb).abs().max().double_value(&[]);
        assert!(ta.equal(tb), "{what}: {na} differs (max |Δ| = {diff:e})");
    }
}

#[test]
fn two_ranks_take_the_updates_of_one_process_with_twice_the_accumulation() {
    const TEST: &str = "two_ranks_take_the_updates_of_one_process_with_twice_the_accumulation";
    if as_worker() {
        return;
    }
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    single(TEST, &Job::new(one.path(), 3, 2));
    two_ranks_ok(TEST, &Job::new(two.path(), 3, 1));
    let reference = load_state(&one.path().join("state-single.safetensors"));
    let (r0, r1) = (
        load_state(&two.path().join("state-0.safetensors")),
        load_state(&two.path().join("state-1.safetensors")),
    );
    assert_identical(&r0, &r1, "rank 0 vs rank 1");
    assert_identical(&r0, &reference, "2 ranks × accum 1 vs 1 process × accum 2");
    // Rank 0's checkpoint is the state, and the metrics (training losses, the validation split
    // over both ranks) read the same as the single process's.
    let last =
        read_checkpoint(&list_checkpoints(&two.path().join("ckpt")).unwrap().last().unwrap().1).unwrap();
    assert_eq!(last.step, 3);
    let history = |dir: &Path| md4_train::metrics::history(&dir.join("metrics.jsonl")).unwrap();
    let (m1, m2) = (history(one.path()), history(two.path()));
    assert!(m1.iter().any(|l| l.contains("val_bits")), "{m1:?}");
    assert_eq!(m1, m2);
}

#[test]
fn the_reduced_gradient_is_the_sum_of_the_two_halves() {
    const TEST: &str = "the_reduced_gradient_is_the_sum_of_the_two_halves";
    if as_worker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_ranks_ok(TEST, &Job { grads: true, ..Job::new(dir.path(), 1, 1) });
    let read = |name: &str| load_state(&dir.path().join(name));
    let (l0, l1) = (read("local-0.safetensors"), read("local-1.safetensors"));
    let (g0, g1) = (read("reduced-0.safetensors"), read("reduced-1.safetensors"));
    assert_identical(&g0, &g1, "reduced gradients of rank 0 and rank 1");
    let sum: Vec<(String, Tensor)> = l0.iter().zip(&l1).map(|((n, a), (_, b))| (n.clone(), a + b)).collect();
    assert_identical(&g0, &sum, "reduced gradient vs the sum of the local halves");
    // …and the halves differ (each rank really saw its own micro-batch).
    assert!(l0.iter().zip(&l1).any(|((_, a), (_, b))| !a.equal(b)));
}

#[test]
fn resume_is_bit_exact_under_ddp_and_across_world_sizes() {
    const TEST: &str = "resume_is_bit_exact_under_ddp_and_across_world_sizes";
    if as_worker() {
        return;
    }
    let straight = tempfile::tempdir().unwrap();
    single(TEST, &Job::new(straight.path(), 4, 2));
    let reference = load_state(&straight.path().join("state-single.safetensors"));
    // (first half on 2 ranks?, second half on 2 ranks?)
    for (first_ddp, second_ddp) in [(true, true), (true, false), (false, true)] {
        let dir = tempfile::tempdir().unwrap();
        let half = Job { stop_at: Some(2), ..Job::new(dir.path(), 4, if first_ddp { 1 } else { 2 }) };
        if first_ddp {
            two_ranks_ok(TEST, &half)
        } else {
            single(TEST, &half)
        }
        assert_eq!(list_checkpoints(&dir.path().join("ckpt")).unwrap().last().unwrap().0, 2);
        let rest = Job::new(dir.path(), 4, if second_ddp { 1 } else { 2 });
        if second_ddp {
            two_ranks_ok(TEST, &rest)
        } else {
            single(TEST, &rest)
        }
        let name = if second_ddp { "state-1.safetensors" } else { "state-single.safetensors" };
        let what = format!(
            "resumed ({} then {})",
            if first_ddp { "DDP" } else { "single" },
            if second_ddp { "DDP" } else { "single" }
        );
        assert_identical(&load_state(&dir.path().join(name)), &reference, &what);
    }
}

#[test]
fn a_nan_on_one_rank_stops_both_with_the_last_good_checkpoint_intact() {
    const TEST: &str = "a_nan_on_one_rank_stops_both_with_the_last_good_checkpoint_intact";
    if as_worker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = Job { ckpt_every: 1, nan_at: Some((1, 3)), ..Job::new(dir.path(), 6, 1) };
    let l = ranks(TEST, &job, None);
    for r in &l.ranks {
        assert_eq!(r.code(), 1, "rank {}:\n{}", r.rank, r.output);
        assert!(r.output.contains("non-finite loss at step 2"), "rank {}:\n{}", r.rank, r.output);
    }
    let ckpts = list_checkpoints(&dir.path().join("ckpt")).unwrap();
    assert_eq!(ckpts.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2]);
    let last = read_checkpoint(&ckpts[1].1).unwrap();
    assert!(last.section("model").values().all(md4_train::checkpoint::all_finite));
    let lines = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.last().unwrap()["kind"], "error");
}

#[test]
fn a_killed_rank_stops_the_other_with_an_error_naming_it() {
    const TEST: &str = "a_killed_rank_stops_the_other_with_an_error_naming_it";
    if as_worker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = Job { ckpt_every: 1, die_at: Some((1, 3)), ..Job::new(dir.path(), 6, 1) };
    let start = std::time::Instant::now();
    let l = ranks(TEST, &job, None);
    assert!(start.elapsed() < TIMEOUT, "took {:?}", start.elapsed());
    assert_eq!((l.first_failure, l.ranks[1].code()), (Some(1), 128 + 9), "{}", l.ranks[1].output);
    let out = &l.ranks[0].output;
    assert_eq!(l.ranks[0].code(), 1, "{out}");
    assert!(out.contains("rank 0 of 2 (gloo)") && out.contains("step 2"), "{out}");
    assert_eq!(list_checkpoints(&dir.path().join("ckpt")).unwrap().last().unwrap().0, 2);
    assert_eq!(l.code(), 137);
}

#[test]
fn a_stop_request_checkpoints_the_same_step_on_every_rank() {
    const TEST: &str = "a_stop_request_checkpoints_the_same_step_on_every_rank";
    if as_worker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = ranks(TEST, &Job::new(dir.path(), 1_000_000, 1), Some(Duration::from_millis(2500)));
    for r in &l.ranks {
        assert_eq!(r.code(), 75, "rank {}:\n{}", r.rank, r.output);
    }
    assert_eq!(l.code(), 75);
    let step = list_checkpoints(&dir.path().join("ckpt")).unwrap().last().unwrap().0;
    assert!(step > 0);
    let (s0, s1) = (
        load_state(&dir.path().join("state-0.safetensors")),
        load_state(&dir.path().join("state-1.safetensors")),
    );
    assert_identical(&s0, &s1, "states after the stop");
    let lines = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.last().unwrap()["kind"], "interrupted");
    assert_eq!(lines.last().unwrap()["step"], step);
}
