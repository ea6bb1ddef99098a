//! Switches of libtorch's global context (`at::globalContext()`), via cpp/md4_torch.cpp.

use anyhow::{Result, bail};
use std::ffi::{CString, c_char, c_int};

unsafe extern "C" {
    fn md4_set_deterministic(on: c_int, err: *mut c_char, n: usize) -> c_int;
    fn md4_deterministic() -> c_int;
    fn md4_set_float32_matmul_precision(p: *const c_char, err: *mut c_char, n: usize) -> c_int;
    fn md4_float32_matmul_precision() -> c_int;
}

fn check(status: c_int, err: &[u8], what: &str) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
    bail!("{what}: {}", String::from_utf8_lossy(&err[..end]))
}

/// `torch.use_deterministic_algorithms(on)` plus cuDNN's deterministic flag (and no cuDNN
/// benchmarking when on). Operations without a deterministic kernel then raise an error
/// instead of silently differing between runs.
pub fn set_deterministic(on: bool) -> Result<()> {
    let mut err = [0u8; 512];
    // SAFETY: the shim writes at most err.len() bytes, NUL-terminated, and catches exceptions.
    let status = unsafe { md4_set_deterministic(c_int::from(on), err.as_mut_ptr().cast(), err.len()) };
    check(status, &err, "setting deterministic algorithms")
}

/// Whether libtorch runs deterministic algorithms only.
pub fn deterministic() -> bool {
    // SAFETY: a const getter on the global context.
    unsafe { md4_deterministic() != 0 }
}

/// Precision of f32 matrix products (`torch.set_float32_matmul_precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulPrecision {
    /// Full f32.
    Highest,
    /// TF32 allowed (NVIDIA GPUs from compute capability 8.0).
    High,
    /// bf16 allowed.
    Medium,
}

impl MatmulPrecision {
    fn name(self) -> &'static str {
        match self {
            Self::Highest => "highest",
            Self::High => "high",
            Self::Medium => "medium",
        }
    }
}

/// Set the precision of f32 matrix products.
pub fn set_float32_matmul_precision(p: MatmulPrecision) -> Result<()> {
    let name = CString::new(p.name()).expect("no NUL in a precision name");
    let mut err = [0u8; 512];
    // SAFETY: `name` outlives the call; the shim writes at most err.len() bytes.
    let status =
        unsafe { md4_set_float32_matmul_precision(name.as_ptr(), err.as_mut_ptr().cast(), err.len()) };
    check(status, &err, "setting the f32 matmul precision")
}

/// The current precision of f32 matrix products.
pub fn float32_matmul_precision() -> MatmulPrecision {
    // SAFETY: a const getter on the global context.
    match unsafe { md4_float32_matmul_precision() } {
        0 => MatmulPrecision::Highest,
        1 => MatmulPrecision::High,
        _ => MatmulPrecision::Medium,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_round_trip_through_libtorch() {
        assert_eq!(float32_matmul_precision(), MatmulPrecision::Highest, "libtorch's default");
        set_float32_matmul_precision(MatmulPrecision::High).unwrap();
        assert_eq!(float32_matmul_precision(), MatmulPrecision::High);
        set_float32_matmul_precision(MatmulPrecision::Highest).unwrap();
        assert_eq!(float32_matmul_precision(), MatmulPrecision::Highest);

        assert!(!deterministic());
        set_deterministic(true).unwrap();
        assert!(deterministic());
        set_deterministic(false).unwrap();
        assert!(!deterministic());
    }
}
