//! The heap setting that makes CPU training with a 50,257-token vocabulary 3–4× faster.
//!
//! libtorch's CPU allocator is glibc `malloc`; a `[B, N, V]` logit tensor (hundreds of MB) is
//! far above glibc's mmap threshold, so every such tensor is a fresh `mmap` that the kernel
//! fills page by page and `munmap`s on release. A training step makes dozens of them (logits,
//! log-softmax, their gradients), and page faults then dominate: measured on the 2-core CI
//! machine for small-gpt2 at 16 × 128 tokens, 9.3 s per step before and 2.3 s after
//! (docs/log.md, 2026-12-01). Serving every allocation from the heap and never trimming it
//! lets freed blocks be reused at the cost of keeping the peak resident.

use std::sync::Once;

static TUNED: Once = Once::new();

/// Switch glibc malloc to heap-only allocation with no trimming (`M_MMAP_MAX = 0`,
/// `M_TRIM_THRESHOLD = 64 GiB`), once per process. A no-op on other platforms, and when the
/// user set `MALLOC_MMAP_MAX_` themselves (their choice wins). Called by [`crate::train`], the
/// `md4` command line and every experiment binary.
pub fn tune_allocator() {
    TUNED.call_once(|| {
        if std::env::var_os("MALLOC_MMAP_MAX_").is_some() {
            return;
        }
        set_heap_only();
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_heap_only() {
    // SAFETY: mallopt only changes glibc's allocation parameters; it is thread-safe and
    // affects allocations made after the call. Both values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_heap_only() {}

/// Undo [`tune_allocator`] for measuring: allocations of 128 KiB and more become their own
/// mappings again and go back to the kernel when freed, and the heap is trimmed now, so the
/// resident memory falls back after every step and a peak measures one step alone (with the
/// heap-only setting, freed blocks stay resident and a second step reuses them unseen).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    // SAFETY: as in `set_heap_only`; malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 65_536);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() {}

/// This process's peak resident memory in MiB (`VmHWM` of `/proc/self/status`); NaN where
/// the file does not exist.
pub fn peak_rss_mib() -> f64 {
    rss_mib("VmHWM")
}

/// A `/proc/self/status` memory field (`VmRSS`, `VmHWM`, …) in MiB; NaN when unavailable.
pub fn rss_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
