//! Data-parallel runs on PyTorch's own distributed engine, c10d — the code is libtorch's
//! (`libtorch_cpu.so` holds the TCPStore and ProcessGroupGloo, the CUDA wheel ships NCCL); this
//! crate is the thin bridge Rust lacks:
//!
//! - [`env`]: the job's shape from torchrun's, `md4 launch`'s or SLURM's variables;
//! - [`store`]: c10d's TCPStore (the rendezvous);
//! - [`group`]: a process group — Gloo through a C++ shim (cpp/md4_dist.cpp, compiled against the
//!   wheel's c10d headers and gloo's headers vendored in vendor/gloo), NCCL through its C API —
//!   with all-reduce (sum), broadcast and barrier returning errors that name the rank;
//! - [`bucket`]: the same collectives over many tensors, packed into DDP-sized buckets;
//! - [`launch`]: N local ranks of a program with torchrun's variables (`md4 launch`).
#![allow(unsafe_code)] // FFI to the C++ shim, NCCL and dlopen; each call site states its invariant.

pub mod bucket;
pub mod env;
mod ffi;
pub mod group;
pub mod launch;
mod nccl;
pub mod store;

pub use env::DistEnv;
pub use group::{Backend, ProcessGroup};
pub use store::Store;

use std::time::Duration;

/// The exit status of a rank that stopped on a signal after writing its checkpoint (EX_TEMPFAIL;
/// md4-train's `guard` uses the same value): the launcher does not count it as a failure.
pub const INTERRUPTED_EXIT_CODE: i32 = 75;

/// The collective timeout when none is configured: PyTorch's default for Gloo (30 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// `MD4_DIST_TIMEOUT` (seconds) when set, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> anyhow::Result<Duration> {
    match std::env::var("MD4_DIST_TIMEOUT") {
        Ok(v) => {
            let s: f64 = v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("MD4_DIST_TIMEOUT={v:?} is not a number of seconds"))?;
            anyhow::ensure!(s > 0.0, "MD4_DIST_TIMEOUT must be positive");
            Ok(Duration::from_secs_f64(s))
        }
        Err(_) => Ok(DEFAULT_TIMEOUT),
    }
}
