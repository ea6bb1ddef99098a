//! Multi-process runs from the command line: `md4 launch --nproc N -- train …` starts N local
//! ranks (torchrun's variables, store hosted by the launcher), and every command that can run
//! data-parallel joins the job its environment describes (torchrun, `md4 launch`, SLURM).

use anyhow::{Context, Result, ensure};
use clap::Args;
use md4_dist::launch::{LaunchOptions, launch};
use md4_dist::{Backend, DistEnv, ProcessGroup};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;
use tch::Device;

/// How a rank joins a multi-process job (read only when started by torchrun, `md4 launch` or
/// `srun`).
#[derive(Clone, Debug, Args)]
pub struct DistArgs {
    /// Collective backend: gloo (CPU tensors) or nccl (CUDA) [default: nccl on CUDA, else gloo].
    #[arg(long, value_name = "BACKEND")]
    pub dist_backend: Option<String>,
    /// Seconds a collective or the store may wait for the other ranks before failing
    /// [default: MD4_DIST_TIMEOUT, else 1800].
    #[arg(long, value_name = "SECONDS")]
    pub dist_timeout: Option<f64>,
}

impl DistArgs {
    /// Open the device (`cuda` means cuda:LOCAL_RANK in a job) and, when this process is a
    /// rank of a job, join its process group.
    pub fn join(&self, device: &md4_torch::DeviceArgs) -> Result<(Device, Option<Arc<ProcessGroup>>)> {
        let Some(env) = DistEnv::from_env()? else {
            return Ok((device.open()?, None));
        };
        let who = format!("rank {} of {} ({})", env.rank, env.world_size, env.launcher);
        let device =
            device.open_for_rank(env.local_rank, env.local_world_size).with_context(|| who.clone())?;
        let backend = match &self.dist_backend {
            Some(b) => Backend::parse(b)?,
            None => Backend::for_device(device),
        };
        let timeout = match self.dist_timeout {
            Some(s) => {
                ensure!(s > 0.0, "--dist-timeout must be positive");
                Duration::from_secs_f64(s)
            }
            None => md4_dist::timeout_from_env()?,
        };
        let group = ProcessGroup::init(&env, backend, device, timeout)?;
        Ok((device, Some(Arc::new(group))))
    }
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Ranks to start on this machine.
    #[arg(long, default_value_t = 2)]
    nproc: usize,
    /// Seconds the ranks get to stop (checkpointing) after a signal or a failed rank, before
    /// they are killed.
    #[arg(long, default_value_t = 60.0)]
    grace: f64,
    /// The md4 command each rank runs, after `--` (e.g. `-- train --config … --run-dir …`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// `md4 launch`: returns the exit code for the launcher (the first failing rank's).
pub fn run(a: LaunchArgs) -> Result<i32> {
    ensure!(a.nproc >= 1, "--nproc must be at least 1");
    let program = std::env::current_exe().context("locating the md4 binary")?;
    let mut opts = LaunchOptions::new(a.nproc, program, a.command);
    opts.grace = Duration::from_secs_f64(a.grace);
    opts.timeout = md4_dist::timeout_from_env()?;
    // As torchrun: one rank per core unless the user chose (CPU ranks share the machine).
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        opts.env.push(("OMP_NUM_THREADS".into(), (cores / a.nproc).max(1).to_string()));
    }
    let _interrupts = md4_train::guard::Interrupts::install();
    let launched = launch(&opts, &md4_train::guard::stop_requested)?;
    for r in &launched.ranks {
        if !r.status.success() && !r.stopped {
            eprintln!("md4 launch: rank {} exited with {}", r.rank, r.status);
        }
    }
    Ok(launched.code())
}
