//! Start N ranks of a program on this machine, as `torchrun --standalone --nproc-per-node N
//! --no-python` does, without Python: host the TCP store on a free loopback port (the ranks
//! connect as clients, as they do to torchrun's agent), give each rank torchrun's variables,
//! pass a stop request on to every rank, and when one rank fails stop the others (SIGTERM, then
//! SIGKILL after a grace period). The launcher's status is the first failing rank's.

use crate::env::DistEnv;
use crate::store::Store;
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to start and how.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    pub nproc: usize,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Extra variables for every rank.
    pub env: Vec<(String, String)>,
    /// How long the store waits for a client and how long ranks get to stop after a SIGTERM.
    pub timeout: Duration,
    pub grace: Duration,
    /// Collect each rank's stdout and stderr instead of passing them through.
    pub capture: bool,
    /// Host the store here (torchrun's agent store); false: rank 0 hosts it on a free port.
    pub agent_store: bool,
}

impl LaunchOptions {
    /// `nproc` ranks of `program args…`, store hosted by the launcher, output passed through.
    pub fn new(nproc: usize, program: PathBuf, args: Vec<OsString>) -> Self {
        Self {
            nproc,
            program,
            args,
            env: vec![],
            timeout: crate::DEFAULT_TIMEOUT,
            grace: Duration::from_secs(30),
            capture: false,
            agent_store: true,
        }
    }
}

/// How one rank ended.
#[derive(Debug)]
pub struct RankExit {
    pub rank: usize,
    pub status: ExitStatus,
    /// Captured stdout then stderr (empty unless `capture`).
    pub output: String,
    /// The launcher stopped this rank because another failed or a stop was requested.
    pub stopped: bool,
}

impl RankExit {
    /// The exit code, or 128 + the signal that ended the rank.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status.code().unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
}

/// The outcome of a launch.
#[derive(Debug)]
pub struct Launched {
    pub ranks: Vec<RankExit>,
    /// The first rank that failed on its own (not stopped by the launcher), if any.
    pub first_failure: Option<usize>,
}

impl Launched {
    /// The launcher's exit code: the first failing rank's, else the highest rank code (0 when
    /// every rank succeeded; 75 when they all stopped after checkpointing).
    pub fn code(&self) -> i32 {
        match self.first_failure {
            Some(r) => self.ranks[r].code(),
            None => self.ranks.iter().map(RankExit::code).max().unwrap_or(0),
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we started and have not reaped.
    unsafe { libc::kill(child.id() as i32, sig) };
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = vec![];
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Start the ranks and wait for all of them; `stop_requested` is polled (a signal handler's
/// flag): when it turns true every rank gets SIGTERM (they checkpoint and exit).
pub fn launch(opts: &LaunchOptions, stop_requested: &dyn Fn() -> bool) -> Result<Launched> {
    let (store, port) = if opts.agent_store {
        let store = Store::tcp("127.0.0.1", 0, true, None, opts.timeout, "")
            .context("hosting the TCP store for the ranks")?;
        let port = store.port()?;
        (Some(store), port)
    } else {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        (None, port)
    };
    let mut children = vec![];
    for rank in 0..opts.nproc {
        let mut c = Command::new(&opts.program);
        c.args(&opts.args);
        let vars = DistEnv::launcher_vars(opts.nproc, rank, port);
        c.envs(vars.into_iter().filter(|(k, _)| opts.agent_store || k != "TORCHELASTIC_USE_AGENT_STORE"));
        c.envs(opts.env.iter().map(|(k, v)| (k, v)));
        if opts.capture {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        // Each rank in its own process group: a Ctrl-C at the terminal reaches the launcher
        // only, which passes on one SIGTERM (a rank's second signal would skip its checkpoint).
        c.process_group(0);
        // SAFETY: prctl is async-signal-safe; runs in the child between fork and exec. A rank
        // whose launcher dies (even by SIGKILL) gets SIGTERM instead of running on orphaned.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child =
            c.spawn().with_context(|| format!("starting rank {rank}: {}", opts.program.display()))?;
        let pipes = opts.capture.then(|| {
            (drain(child.stdout.take().expect("piped")), drain(child.stderr.take().expect("piped")))
        });
        children.push((child, pipes));
    }
    let mut status: Vec<Option<ExitStatus>> = vec![None; opts.nproc];
    let mut stopped = vec![false; opts.nproc];
    let mut first_failure = None;
    let mut stop_since: Option<Instant> = None;
    let mut killed = false;
    while status.iter().any(Option::is_none) {
        for (rank, (child, _)) in children.iter_mut().enumerate() {
            if status[rank].is_none()
                && let Some(s) = child.try_wait()?
            {
                status[rank] = Some(s);
                let failed = !s.success() && s.code() != Some(crate::INTERRUPTED_EXIT_CODE);
                if failed && stop_since.is_none() {
                    first_failure = Some(rank);
                    eprintln!("md4 launch: rank {rank} failed ({s}); stopping the other ranks");
                }
            }
        }
        let stop = first_failure.is_some() || stop_requested();
        if stop && stop_since.is_none() {
            stop_since = Some(Instant::now());
            for (rank, (child, _)) in children.iter().enumerate() {
                if status[rank].is_none() {
                    stopped[rank] = true;
                    signal(child, libc::SIGTERM);
                }
            }
        }
        if let Some(since) = stop_since
            && !killed
            && since.elapsed() > opts.grace
        {
            killed = true;
            for (rank, (child, _)) in children.iter().enumerate() {
                if status[rank].is_none() {
                    eprintln!("md4 launch: rank {rank} did not stop within {:?}; killing it", opts.grace);
                    signal(child, libc::SIGKILL);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(store);
    let ranks = children
        .into_iter()
        .enumerate()
        .map(|(rank, (_, pipes))| {
            let output = pipes
                .map(|(o, e)| {
                    let (o, e) = (o.join().unwrap_or_default(), e.join().unwrap_or_default());
                    format!("{}{}", String::from_utf8_lossy(&o), String::from_utf8_lossy(&e))
                })
                .unwrap_or_default();
            RankExit {
                rank,
                status: status[rank].expect("every rank was reaped"),
                output,
                stopped: stopped[rank],
            }
        })
        .collect();
    Ok(Launched { ranks, first_failure })
}
