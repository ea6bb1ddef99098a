//! What libtorch offers beyond tch 0.24, in one place:
//!
//! - [`device`]: parse `cpu` / `cuda:N` and make the device usable — for CUDA, load
//!   `libtorch_cuda.so` at run time (torch-sys asks for it at link time, but `--as-needed` drops
//!   it since no symbol of ours refers to it), check the driver, the GPU count and the index, and
//!   turn failures into one error that names the fix;
//! - [`context`]: libtorch's global switches that tch does not expose (TF32 for f32 matmuls,
//!   deterministic algorithms), through a small C++ shim compiled against the same libtorch;
//! - [`cuda`]: the GPU's name, compute capability and memory in use, read from the CUDA
//!   libraries that libtorch loaded (nothing of CUDA is touched on CPU runs);
//! - [`DeviceArgs`]: the `--device`, `--deterministic` and `--threads` flags every command shares.
#![allow(unsafe_code)] // FFI: dlopen/dlsym and the C++ shim; each call site states its invariant.

pub mod context;
pub mod cuda;
pub mod device;

pub use device::{DeviceArgs, DeviceOptions, describe, open_device, parse_device};

use tch::{Device, Tensor};

/// Host → device copy of a batch: on CUDA through pinned (page-locked) memory with an
/// asynchronous copy, so the transfer overlaps the kernels already queued (libtorch's pinned
/// allocator keeps the buffer until the copy has run); elsewhere a plain move.
pub fn to_device(t: &Tensor, device: Device) -> Tensor {
    match device {
        Device::Cuda(_) if t.device() == Device::Cpu => {
            t.pin_memory(device).to_device_(device, t.kind(), true, false)
        }
        _ => t.to_device(device),
    }
}

/// Sample the device memory in use (CUDA only; see [`cuda::note_memory`]).
pub fn note_memory(device: Device) {
    if let Device::Cuda(i) = device {
        cuda::note_memory(i);
    }
}

/// The version of the libtorch this process runs on (`2.11.0+cu130`), from the `version.py` of
/// the torch install whose `libtorch_cpu.so` is mapped (else `$MD4_LIBTORCH` or `$LIBTORCH`,
/// else the `LIBTORCH` of the build); "unknown" when none says.
pub fn libtorch_version() -> String {
    let mapped = cuda::libtorch_lib_dir().and_then(|lib| lib.parent().map(std::path::Path::to_path_buf));
    let from_env = ["MD4_LIBTORCH", "LIBTORCH"].iter().filter_map(std::env::var_os).map(Into::into);
    let built = option_env!("LIBTORCH").map(Into::into);
    mapped
        .into_iter()
        .chain(from_env)
        .chain(built)
        .find_map(|dir: std::path::PathBuf| {
            let text = std::fs::read_to_string(dir.join("version.py")).ok()?;
            text.lines().find_map(|line| {
                let rest = line.strip_prefix("__version__")?.trim_start().strip_prefix('=')?;
                Some(rest.trim().trim_matches(['\'', '"']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}
