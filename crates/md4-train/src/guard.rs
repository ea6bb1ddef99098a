//! What keeps a run directory safe while a process trains in it (issue 15):
//!
//! - [`RunLock`]: an exclusive OS lock (`flock`) on `<run_dir>/.lock`, held for the writer's
//!   whole life; a second writer fails at once with the holder's PID, host and start time. The
//!   kernel drops the lock when the holder exits or is killed, so no stale lock is ever cleaned
//!   by hand. Readers (`md4 eval`, `md4 sample`) take no lock.
//! - [`Interrupts`]: SIGINT and SIGTERM (clusters preempt with SIGTERM) ask the training loop
//!   to finish the current update, write a checkpoint and stop with [`Interrupted`]; a second
//!   signal exits at once (status 130). The default handlers come back when training returns.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The exit status of a training process stopped by SIGINT/SIGTERM after writing a checkpoint.
pub const INTERRUPTED_EXIT_CODE: i32 = md4_dist::INTERRUPTED_EXIT_CODE;

/// An exclusive lock on a run directory, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl RunLock {
    /// Lock `run_dir` (which must exist) for writing, or fail naming the holder.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !try_flock(&file)? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
            bail!(
                "{} is in use by another training process ({}); wait for it to finish, stop it, or use another \
                 --run-dir",
                run_dir.display(),
                if holder.is_empty() { "holder unknown".into() } else { holder }
            );
        }
        let stamp = unix_stamp();
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "pid {} host {} since {stamp}", std::process::id(), hostname())
            .and_then(|_| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _file: file, path })
    }
}

/// Seconds since the epoch (the lock file is for humans; no calendar needed).
fn unix_stamp() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("unix time {secs}")
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn try_flock(file: &File) -> Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this File owns; no memory is shared.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e).context("locking the run directory")
    }
}

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// CLOCK_MONOTONIC nanoseconds of the first signal (0: none yet).
static FIRST_SIGNAL_NS: AtomicU64 = AtomicU64::new(0);
/// Signals this soon after the first count as the same one: the kernel delivers a launcher's
/// death (PR_SET_PDEATHSIG) to more than one thread of a rank, and a person's second Ctrl-C
/// comes later than this.
const SAME_SIGNAL_NS: u64 = 500_000_000;

#[allow(unsafe_code)]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime is async-signal-safe; `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64).max(1)
}

#[allow(unsafe_code)]
extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe work: atomics, the clock, and _exit on a second, later signal.
    let now = monotonic_ns();
    match FIRST_SIGNAL_NS.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => REQUESTED.store(true, Ordering::SeqCst),
        Err(first) if now.saturating_sub(first) > SAME_SIGNAL_NS => {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(130) };
        }
        Err(_) => {}
    }
}

/// Whether SIGINT/SIGTERM asked the training loop to stop (since [`Interrupts::install`]).
pub fn stop_requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// SIGINT/SIGTERM handlers installed for the life of this value.
#[derive(Debug)]
pub struct Interrupts(());

impl Interrupts {
    #[allow(unsafe_code)]
    pub fn install() -> Self {
        REQUESTED.store(false, Ordering::SeqCst);
        FIRST_SIGNAL_NS.store(0, Ordering::SeqCst);
        // SAFETY: the handler only touches an atomic and calls _exit.
        unsafe {
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        }
        Self(())
    }
}

impl Drop for Interrupts {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: restoring the default dispositions.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
    }
}

/// Training stopped by SIGINT/SIGTERM after writing a checkpoint at `step`.
#[derive(Debug)]
pub struct Interrupted {
    pub step: i64,
    pub checkpoint: PathBuf,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted at step {} (checkpoint {} written); resume with the same command",
            self.step,
            self.checkpoint.display()
        )
    }
}

impl std::error::Error for Interrupted {}

/// The process exit status for a failed command: [`INTERRUPTED_EXIT_CODE`] when training was
/// interrupted by a signal after checkpointing, else 1.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<Interrupted>().is_some() { INTERRUPTED_EXIT_CODE } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_and_the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let e = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains("in use by another training process"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn interrupted_is_a_distinct_exit_status() {
        let e = anyhow::Error::new(Interrupted { step: 7, checkpoint: "c".into() });
        assert_eq!(exit_code(&e), INTERRUPTED_EXIT_CODE);
        assert!(e.to_string().contains("resume with the same command"));
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }
}
