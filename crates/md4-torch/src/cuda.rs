//! CUDA at run time: load `libtorch_cuda.so` next to the `libtorch_cpu.so` this process uses,
//! explain why CUDA is unusable when it is, and read the GPU's name, capability and memory from
//! the CUDA runtime and driver libraries that libtorch loaded.
//!
//! Why at run time: torch-sys passes `-ltorch_cuda`, but rustc links with `--as-needed` and no
//! symbol of ours refers to the library, so it is dropped; forcing it in would make every binary
//! fail to start on machines without CUDA's libraries. libtorch registers its CUDA backend in
//! static constructors of `libtorch_cuda.so` and caches "is there a CUDA backend" on first use,
//! so the library must be loaded before anything asks (see [`crate::device::open_device`]).

use anyhow::{Result, anyhow, bail};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The minimum NVIDIA driver for CUDA 13 (torch 2.11.0's CUDA wheels).
pub const MIN_DRIVER_MAJOR: u32 = 580;

/// The directory holding the `libtorch_cpu.so` mapped into this process (from
/// `/proc/self/maps`), else `$MD4_LIBTORCH/lib` or `$LIBTORCH/lib`.
pub fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            if let Some(i) = line.find('/') {
                let path = Path::new(&line[i..]);
                if path.file_name().is_some_and(|n| n == "libtorch_cpu.so") {
                    return path.parent().map(Path::to_path_buf);
                }
            }
        }
    }
    ["MD4_LIBTORCH", "LIBTORCH"].iter().find_map(std::env::var_os).map(|d| PathBuf::from(d).join("lib"))
}

/// The dlopen handle of `libtorch_cuda.so`, kept for the process's lifetime (never closed).
struct Loaded(#[allow(dead_code)] usize);

static LOADED: OnceLock<std::result::Result<Loaded, String>> = OnceLock::new();

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by libc.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown dlopen error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

fn dlopen(path: &str, flags: c_int) -> Option<usize> {
    let c = CString::new(path).ok()?;
    // SAFETY: `c` is a valid C string; dlopen has no other preconditions.
    let handle = unsafe { libc::dlopen(c.as_ptr(), flags) };
    (!handle.is_null()).then_some(handle as usize)
}

/// Load `libtorch_cuda.so` (once per process; later calls return the first outcome).
pub fn load() -> Result<()> {
    let outcome = LOADED.get_or_init(|| {
        let dir = libtorch_lib_dir().ok_or_else(|| {
            "cannot find libtorch's directory (libtorch_cpu.so is not mapped and neither MD4_LIBTORCH nor LIBTORCH is set)".to_string()
        })?;
        load_from(&dir).map(Loaded)
    });
    outcome.as_ref().map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// dlopen `dir/libtorch_cuda.so` with RTLD_NOW | RTLD_GLOBAL; the error names the fix.
fn load_from(dir: &Path) -> std::result::Result<usize, String> {
    let path = dir.join("libtorch_cuda.so");
    if !path.exists() {
        return Err(format!(
            "the libtorch in {} has no libtorch_cuda.so: it is a CPU-only build. Use the default torch==2.11.0 \
             wheel (`just setup --gpu`) or point MD4_LIBTORCH at a torch 2.11.0 install built with CUDA",
            dir.display()
        ));
    }
    dlopen(&path.to_string_lossy(), libc::RTLD_NOW | libc::RTLD_GLOBAL).ok_or_else(|| {
        format!(
            "cannot load {}: {}.\nIts CUDA 13 libraries (cuBLAS, cuDNN, NCCL, …) are not installed: run \
             `just setup --gpu` (installs torch 2.11.0's pinned CUDA wheels into the same environment), or set \
             MD4_LIBTORCH=/path/to/site-packages/torch to a torch 2.11.0 install that has them",
            path.display(),
            dlerror()
        )
    })
}

/// Whether `libtorch_cuda.so` was loaded by [`load`].
pub fn loaded() -> bool {
    matches!(LOADED.get(), Some(Ok(_)))
}

/// The NVIDIA kernel driver's version from `/proc/driver/nvidia/version`, e.g. (580, 95).
pub fn driver_version() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    parse_driver_version(&text)
}

fn parse_driver_version(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.starts_with("NVRM version"))?;
    line.split_whitespace().find_map(|w| {
        let (major, rest) = w.split_once('.')?;
        let minor = rest.split('.').next()?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

/// Why CUDA is unavailable although its libraries loaded: no driver, or one too old.
pub fn unavailable_reason() -> String {
    match driver_version() {
        None => "no NVIDIA driver is loaded on this machine (/proc/driver/nvidia/version is missing): \
                 run on a machine with an NVIDIA GPU, or use --device cpu"
            .into(),
        Some((major, minor)) if major < MIN_DRIVER_MAJOR => format!(
            "the NVIDIA driver is {major}.{minor}, older than {MIN_DRIVER_MAJOR}, the minimum for CUDA 13 \
             (torch 2.11.0's CUDA build): update the driver"
        ),
        Some((major, minor)) => format!(
            "the NVIDIA driver {major}.{minor} is loaded but libtorch sees no usable GPU \
             (CUDA_VISIBLE_DEVICES={:?}; check `nvidia-smi`)",
            std::env::var("CUDA_VISIBLE_DEVICES").ok()
        ),
    }
}

type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;
type GetDevice = unsafe extern "C" fn(*mut c_int) -> c_int;
type SetDevice = unsafe extern "C" fn(c_int) -> c_int;
type DeviceGetAttribute = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
type CuDeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type CuDeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;

fn symbol(handle: Option<usize>, name: &str) -> Option<*mut c_void> {
    let handle = handle?;
    let c = CString::new(name).ok()?;
    // SAFETY: `handle` came from dlopen and is never closed; `c` is a valid C string.
    let p = unsafe { libc::dlsym(handle as *mut c_void, c.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The function `name` of a library (a handle from [`mapped_library`]) as a typed function
/// pointer; `None` when the handle is `None` or the library has no such symbol.
///
/// # Safety
/// `F` must be the symbol's true C signature (an `unsafe extern "C" fn`).
pub unsafe fn function<F: Copy>(handle: Option<usize>, name: &str) -> Option<F> {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    let p = symbol(handle, name)?;
    // SAFETY: same size; the caller vouches for the signature.
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

/// A library already mapped into the process (RTLD_NOLOAD: never loads anything new); the
/// handle is never closed.
pub fn mapped_library(name: &str) -> Option<usize> {
    dlopen(name, libc::RTLD_NOW | libc::RTLD_NOLOAD)
}

/// A CUDA library that libtorch_cuda already loaded.
fn already_loaded(name: &str) -> Option<usize> {
    if !loaded() {
        return None;
    }
    mapped_library(name)
}

fn cudart() -> Option<usize> {
    already_loaded("libcudart.so.13")
}

fn driver() -> Option<usize> {
    already_loaded("libcuda.so.1")
}

/// Run `f` with `index` as the CUDA runtime's current device, restoring the previous one.
fn on_device<T>(index: usize, f: impl FnOnce() -> Option<T>) -> Option<T> {
    let rt = cudart();
    // SAFETY: the CUDA runtime's documented C signatures.
    let get: GetDevice = unsafe { function(rt, "cudaGetDevice") }?;
    let set: SetDevice = unsafe { function(rt, "cudaSetDevice") }?;
    let mut previous: c_int = 0;
    // SAFETY: valid out-pointer; CUDA errors are returned, not thrown.
    if unsafe { get(&mut previous) } != 0 || unsafe { set(index as c_int) } != 0 {
        return None;
    }
    let out = f();
    // SAFETY: as above.
    unsafe { set(previous) };
    out
}

/// Device memory (used, total) in bytes on GPU `index`, as the driver sees it: libtorch's cached
/// blocks, the CUDA context and any other process on the GPU count as used. None off CUDA.
pub fn memory(index: usize) -> Option<(u64, u64)> {
    // SAFETY: cudaMemGetInfo(size_t* free, size_t* total).
    let f: MemGetInfo = unsafe { function(cudart(), "cudaMemGetInfo") }?;
    on_device(index, || {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers.
        (unsafe { f(&mut free, &mut total) } == 0).then_some(((total - free) as u64, total as u64))
    })
}

static PEAK: AtomicU64 = AtomicU64::new(0);

/// Sample the memory in use on GPU `index` and keep the largest sample of the process; returns
/// the current use. Called at every logged training step and evaluation/sampling batch.
pub fn note_memory(index: usize) -> Option<u64> {
    let (used, _) = memory(index)?;
    PEAK.fetch_max(used, Ordering::Relaxed);
    Some(used)
}

/// The largest device memory in use seen by [`note_memory`] (bytes), or None before any sample.
pub fn peak_memory() -> Option<u64> {
    let p = PEAK.load(Ordering::Relaxed);
    (p > 0).then_some(p)
}

/// Compute capability (major, minor) of GPU `index`, from the CUDA runtime.
pub fn capability(index: usize) -> Option<(i32, i32)> {
    // SAFETY: cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device).
    let f: DeviceGetAttribute = unsafe { function(cudart(), "cudaDeviceGetAttribute") }?;
    let attr = |a: c_int| {
        let mut v: c_int = 0;
        // SAFETY: valid out-pointer; 75/76 = cudaDevAttrComputeCapabilityMajor/Minor.
        (unsafe { f(&mut v, a, index as c_int) } == 0).then_some(v)
    };
    Some((attr(75)?, attr(76)?))
}

/// The GPU's marketing name (e.g. "NVIDIA H200"), from the CUDA driver.
pub fn name(index: usize) -> Option<String> {
    let drv = driver();
    // SAFETY: the driver API's C signatures (CUdevice is an int).
    let get: CuDeviceGet = unsafe { function(drv, "cuDeviceGet") }?;
    let get_name: CuDeviceGetName = unsafe { function(drv, "cuDeviceGetName") }?;
    let mut dev: c_int = 0;
    let mut buf = [0 as c_char; 256];
    // SAFETY: valid out-pointers; the name is NUL-terminated within buf's length.
    unsafe {
        if get(&mut dev, index as c_int) != 0 || get_name(buf.as_mut_ptr(), buf.len() as c_int, dev) != 0 {
            return None;
        }
        Some(CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned())
    }
}

/// `tch::Cuda::is_available()` after [`load`], with the reason when it is false.
pub fn require_available() -> Result<i64> {
    load()?;
    if !tch::Cuda::is_available() {
        bail!("CUDA is unavailable: {}", unavailable_reason());
    }
    Ok(tch::Cuda::device_count())
}

/// Make GPU `index` the CUDA runtime's current device for this thread (NCCL communicators bind
/// to the current device when created).
pub fn set_current_device(index: usize) -> Result<()> {
    // SAFETY: cudaSetDevice(int) -> cudaError_t.
    let set: SetDevice = unsafe { function(cudart(), "cudaSetDevice") }
        .ok_or_else(|| anyhow!("the CUDA runtime is not loaded"))?;
    // SAFETY: plain int argument; errors are returned.
    let code = unsafe { set(index as c_int) };
    if code != 0 {
        bail!("cudaSetDevice({index}) failed with CUDA error {code}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_versions_parse() {
        let line = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  (dvs-builder@U16)\n\
                    GCC version:  gcc version 13.3.0";
        assert_eq!(parse_driver_version(line), Some((580, 95)));
        let old = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024";
        assert_eq!(parse_driver_version(old), Some((535, 183)));
        assert_eq!(parse_driver_version("garbage"), None);
    }

    #[test]
    fn finds_the_libtorch_this_process_uses() {
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu)); // libtorch is mapped
        let dir = libtorch_lib_dir().expect("libtorch_cpu.so is mapped");
        assert!(dir.join("libtorch_cpu.so").exists(), "{}", dir.display());
    }

    #[test]
    fn load_failures_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_from(dir.path()).unwrap_err();
        assert!(e.contains("CPU-only build") && e.contains("just setup --gpu"), "{e}");
        // A library that cannot be loaded (here: not an ELF file at all; in practice: cuBLAS,
        // cuDNN… missing) gives dlopen's reason and the fix.
        std::fs::write(dir.path().join("libtorch_cuda.so"), b"not a shared object").unwrap();
        let e = load_from(dir.path()).unwrap_err();
        assert!(
            e.contains("cannot load") && e.contains("just setup --gpu") && e.contains("MD4_LIBTORCH"),
            "{e}"
        );
        assert!(!loaded(), "a failed load leaves the process untouched");
    }

    #[test]
    fn queries_are_none_without_cuda() {
        if loaded() {
            return;
        }
        assert_eq!(memory(0), None);
        assert_eq!(capability(0), None);
        assert_eq!(name(0), None);
        assert_eq!(peak_memory(), None);
    }
}
