//! Devices by name (`cpu`, `cuda`, `cuda:N`), made ready for use.

use crate::context::{self, MatmulPrecision};
use crate::cuda;
use anyhow::{Context, Result, bail};
use tch::Device;

/// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`; only parses (nothing is loaded).
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => {
            let index = s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse::<usize>().ok())
                .with_context(|| format!("unknown device '{s}' (expected cpu or cuda:N)"))?;
            Ok(Device::Cuda(index))
        }
    }
}

/// How to set libtorch up for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Deterministic algorithms only (`torch.use_deterministic_algorithms(True)`, cuDNN
    /// deterministic, no cuDNN benchmarking, `CUBLAS_WORKSPACE_CONFIG=:4096:8`). Off by default:
    /// some CUDA kernels (index_add, embedding backward) use atomics and are faster.
    pub deterministic: bool,
    /// Let f32 matrix products use TF32 on GPUs (`set_float32_matmul_precision("high")`). On by
    /// default: with `precision: auto` the networks run in bf16 on such GPUs anyway, and TF32
    /// only touches what stays f32.
    pub tf32: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self { deterministic: false, tf32: true }
    }
}

impl DeviceOptions {
    /// Defaults, overridden by `MD4_DETERMINISTIC=1` and `MD4_TF32=0`.
    pub fn from_env() -> Self {
        let flag =
            |name: &str| std::env::var(name).ok().map(|v| !matches!(v.as_str(), "" | "0" | "false" | "no"));
        let d = Self::default();
        Self {
            deterministic: flag("MD4_DETERMINISTIC").unwrap_or(d.deterministic),
            tf32: flag("MD4_TF32").unwrap_or(d.tf32),
        }
    }
}

/// Parse `spec` and make the device usable: for CUDA, load `libtorch_cuda.so`, require a GPU
/// with that index and set TF32/determinism. Call it before any other libtorch call that could
/// ask about CUDA (libtorch caches the answer). Every failure is one error naming the fix;
/// CPU devices never touch CUDA.
pub fn open_device(spec: &str, options: DeviceOptions) -> Result<Device> {
    let device = parse_device(spec)?;
    if let Device::Cuda(index) = device {
        if options.deterministic && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
            // SAFETY (edition 2024 `set_var`): called while the process sets itself up, before
            // libtorch or any thread of ours reads the environment; cuBLAS reads it at handle
            // creation.
            unsafe { std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8") };
        }
        let count = cuda::require_available().with_context(|| format!("--device {spec}"))?;
        if index as i64 >= count {
            bail!(
                "--device {spec}: this machine has {count} usable GPU(s) (cuda:0 … cuda:{}){}",
                count - 1,
                std::env::var("CUDA_VISIBLE_DEVICES")
                    .map(|v| format!("; CUDA_VISIBLE_DEVICES={v}"))
                    .unwrap_or_default()
            );
        }
        let p = if options.tf32 { MatmulPrecision::High } else { MatmulPrecision::Highest };
        context::set_float32_matmul_precision(p)?;
        // cuDNN picks the fastest convolution algorithm per shape (the U-Nets); the choice
        // is timing-dependent, so deterministic runs keep the default algorithms.
        tch::Cuda::cudnn_set_benchmark(!options.deterministic);
    }
    if options.deterministic {
        context::set_deterministic(true)?;
    }
    Ok(device)
}

/// The flags that choose and prepare a device, shared by `md4 train/eval/sample` and every
/// artifact binary (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Device: cpu, cuda or cuda:N. CUDA is loaded at run time from the torch install
    /// (`just setup --gpu` installs its libraries).
    #[arg(long, env = "MD4_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Deterministic algorithms only (slower on GPU; see the README's GPU section).
    #[arg(long, env = "MD4_DETERMINISTIC")]
    pub deterministic: bool,
    /// CPU threads for libtorch [default: OMP_NUM_THREADS, else every physical core].
    #[arg(long)]
    pub threads: Option<usize>,
}

impl DeviceArgs {
    /// Open `--device` (see [`open_device`]; `MD4_TF32=0` keeps f32 matmuls in full f32), then
    /// set libtorch's CPU thread count from `--threads`.
    pub fn open(&self) -> Result<Device> {
        let options = DeviceOptions { deterministic: self.deterministic, ..DeviceOptions::from_env() };
        let device = open_device(&self.device, options)?;
        set_threads(self.threads);
        Ok(device)
    }

    /// [`DeviceArgs::open`] for local rank `local_rank` of `local_ranks` on this machine:
    /// `--device cuda` means `cuda:LOCAL_RANK` (one GPU per rank, as NCCL requires).
    pub fn open_for_rank(&self, local_rank: usize, local_ranks: usize) -> Result<Device> {
        if self.device == "cuda" {
            let spec = format!("cuda:{local_rank}");
            return Self { device: spec, ..self.clone() }.open();
        }
        if local_ranks > 1 && self.device.starts_with("cuda:") {
            bail!(
                "--device {}: {local_ranks} ranks on this machine would share one GPU; give --device cuda \
                 (each rank takes cuda:LOCAL_RANK) or restrict each rank with CUDA_VISIBLE_DEVICES",
                self.device
            );
        }
        self.open()
    }
}

/// Set the number of CPU threads libtorch uses: `threads` when given, else `OMP_NUM_THREADS`
/// when set, else every physical core (libtorch's default). Returns the count in force.
pub fn set_threads(threads: Option<usize>) -> i32 {
    let from_env = || std::env::var("OMP_NUM_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = threads.or_else(from_env).filter(|&n| n > 0) {
        tch::set_num_threads(n as i32);
    }
    tch::get_num_threads()
}

/// A device in words for cards and logs: `cpu (2 threads)`, or
/// `cuda:0 (NVIDIA H200, capability 9.0, 139.8 GiB; peak in use 41.2 GiB)`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => {
            // libtorch's caching allocator keeps what it reserved, so the use now is at least the
            // reserve of the largest step so far.
            cuda::note_memory(i);
            let mut parts = vec![];
            if let Some(name) = cuda::name(i) {
                parts.push(name);
            }
            if let Some((a, b)) = cuda::capability(i) {
                parts.push(format!("capability {a}.{b}"));
            }
            if let Some((_, total)) = cuda::memory(i) {
                parts.push(format!("{:.1} GiB", total as f64 / GIB));
            }
            let mut s = format!("cuda:{i}");
            if !parts.is_empty() {
                s += &format!(" ({}", parts.join(", "));
                if let Some(peak) = cuda::peak_memory() {
                    s += &format!("; peak in use {:.1} GiB", peak as f64 / GIB);
                }
                s += ")";
            }
            s
        }
        other => format!("{other:?}").to_lowercase(),
    }
}

const GIB: f64 = (1u64 << 30) as f64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("cuda").unwrap(), Device::Cuda(0));
        assert_eq!(parse_device("cuda:3").unwrap(), Device::Cuda(3));
        for bad in ["tpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            let e = parse_device(bad).unwrap_err().to_string();
            assert!(e.contains("expected cpu or cuda:N"), "{bad}: {e}");
        }
    }

    #[test]
    fn cpu_never_touches_cuda() {
        assert_eq!(open_device("cpu", DeviceOptions::default()).unwrap(), Device::Cpu);
        assert!(!cuda::loaded());
        assert!(describe(Device::Cpu).starts_with("cpu ("));
    }
}
