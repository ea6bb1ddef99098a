//! Which arithmetic the networks run in (issue 11): `precision: auto | f32 | bf16`.
//!
//! `auto` picks bf16 where the device multiplies bf16 natively — an x86 CPU with AMX-BF16 or
//! AVX512-BF16 (read from the CPU's flags at run time), a CUDA device of compute capability
//! ≥ 8.0 — and f32 everywhere else, and says why. The choice only sets the dtype of matrix
//! multiplications, convolutions and attention ([`ComputeDtype`]); master weights, optimizer
//! state, the loss and every ELBO accumulation stay f32.
//!
//! Every choice a process makes is remembered ([`record`]) so that protocol cards and run
//! records can say which arithmetic produced a number ([`recorded`]).

use crate::layers::ComputeDtype;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, OnceLock};
use tch::Device;

md4_core::named_enum! {
    /// The requested arithmetic of a run, an evaluation or a sampler.
    #[derive(Default)]
    pub enum ComputePrecision("compute precision") {
        /// bf16 where the device multiplies bf16 natively, f32 elsewhere.
        #[default]
        Auto = "auto",
        /// Everything in float32, as the reference code.
        F32 = "f32",
        /// Matrix multiplications, convolutions and attention in bfloat16.
        Bf16 = "bf16",
    }
}

impl ComputePrecision {
    /// The dtype an explicit request names (None for `auto`, which depends on the hardware).
    pub fn fixed(self) -> Option<ComputeDtype> {
        match self {
            Self::Auto => None,
            Self::F32 => Some(ComputeDtype::F32),
            Self::Bf16 => Some(ComputeDtype::Bf16),
        }
    }
}

/// What a device offers for bf16 arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hardware {
    /// A CPU: its model name, architecture and flags (`/proc/cpuinfo` names: `amx_bf16`,
    /// `avx512_bf16`, …).
    Cpu { model: String, arch: String, flags: Vec<String> },
    /// A CUDA device with its compute capability, when it could be read.
    Cuda { index: usize, capability: Option<(i32, i32)> },
}

/// The CPU flags that mean native bf16 matrix multiplication, best first.
pub const CPU_BF16_FLAGS: [&str; 2] = ["amx_bf16", "avx512_bf16"];

impl Hardware {
    /// The native bf16 feature, if any (`amx_bf16`, `avx512_bf16`, `sm_80+`).
    pub fn native_bf16(&self) -> Option<String> {
        match self {
            Self::Cpu { arch, flags, .. } => {
                if arch != "x86_64" {
                    return None;
                }
                CPU_BF16_FLAGS.iter().find(|f| flags.iter().any(|g| g == *f)).map(|f| f.to_string())
            }
            Self::Cuda { capability: Some((major, minor)), .. } if *major >= 8 => {
                Some(format!("compute capability {major}.{minor}"))
            }
            Self::Cuda { .. } => None,
        }
    }

    /// Words for cards and logs: `AMD EPYC (x86_64; amx_bf16 no, avx512_bf16 yes)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Cpu { model, arch, flags } => {
                let has: Vec<String> = CPU_BF16_FLAGS
                    .iter()
                    .map(|f| format!("{f} {}", if flags.iter().any(|g| g == f) { "yes" } else { "no" }))
                    .collect();
                format!("{model} ({arch}; {})", has.join(", "))
            }
            Self::Cuda { index, capability: Some((a, b)) } => {
                format!("cuda:{index} (compute capability {a}.{b})")
            }
            Self::Cuda { index, capability: None } => format!("cuda:{index} (compute capability unknown)"),
        }
    }

    /// The hardware behind `device`, read now.
    pub fn detect(device: Device) -> Self {
        match device {
            Device::Cuda(index) => Self::Cuda { index, capability: md4_torch::cuda::capability(index) },
            _ => Self::this_cpu(),
        }
    }

    /// This machine's CPU (Linux: `/proc/cpuinfo`; elsewhere the flags Rust can detect), read
    /// once per process.
    pub fn this_cpu() -> Self {
        static CPU: OnceLock<Hardware> = OnceLock::new();
        CPU.get_or_init(Self::read_cpu).clone()
    }

    fn read_cpu() -> Self {
        let arch = std::env::consts::ARCH.to_string();
        match std::fs::read_to_string("/proc/cpuinfo") {
            Ok(text) => {
                let (model, flags) = parse_cpuinfo(&text);
                Self::Cpu { model, arch, flags }
            }
            Err(_) => Self::Cpu { model: "unknown".into(), arch, flags: detected_flags() },
        }
    }
}

/// Model name and flags of the first processor in a `/proc/cpuinfo` text.
pub fn parse_cpuinfo(text: &str) -> (String, Vec<String>) {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let model = field("model name").unwrap_or_else(|| "unknown".into());
    let flags = field("flags")
        .or_else(|| field("Features"))
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    (model, flags)
}

#[cfg(target_arch = "x86_64")]
fn detected_flags() -> Vec<String> {
    let mut flags = vec![];
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        flags.push("avx512_bf16".to_string());
    }
    flags
}

#[cfg(not(target_arch = "x86_64"))]
fn detected_flags() -> Vec<String> {
    vec![]
}

/// A resolved choice: the dtype the networks run in, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecisionChoice {
    pub requested: ComputePrecision,
    pub dtype: ComputeDtype,
    pub reason: String,
}

impl PrecisionChoice {
    /// `bf16 (auto: avx512_bf16 on AMD EPYC)`, for logs and cards.
    pub fn describe(&self) -> String {
        format!("{} ({}: {})", self.dtype.name(), self.requested.name(), self.reason)
    }
}

/// Resolve `requested` on `hw` (pure: the tests feed synthetic flag sets).
pub fn choose(requested: ComputePrecision, hw: &Hardware) -> PrecisionChoice {
    let native = hw.native_bf16();
    let (dtype, reason) = match (requested, &native) {
        (ComputePrecision::Auto, Some(feature)) => {
            (ComputeDtype::Bf16, format!("{} multiplies bf16 natively ({feature})", hw.describe()))
        }
        (ComputePrecision::Auto, None) => (
            ComputeDtype::F32,
            format!("{} has no native bf16 (needs amx_bf16 or avx512_bf16, or CUDA ≥ 8.0)", hw.describe()),
        ),
        (ComputePrecision::Bf16, None) => (
            ComputeDtype::Bf16,
            format!("requested, although {} has no native bf16 (emulated: slower than f32)", hw.describe()),
        ),
        (explicit, _) => (explicit.fixed().expect("auto is matched above"), "requested".into()),
    };
    PrecisionChoice { requested, dtype, reason }
}

/// Resolve `requested` for `device`, remember the choice for cards ([`recorded`]).
pub fn resolve(requested: ComputePrecision, device: Device) -> PrecisionChoice {
    let choice = choose(requested, &Hardware::detect(device));
    record(&choice);
    choice
}

static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remember a choice made by this process (each distinct description once).
pub fn record(choice: &PrecisionChoice) {
    let text = choice.describe();
    let mut seen = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&text) {
        seen.push(text);
    }
}

/// Every choice this process made, joined by `; ` (None: no network was built through
/// [`resolve`]).
pub fn recorded() -> Option<String> {
    let seen = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
    (!seen.is_empty()).then(|| seen.join("; "))
}

/// The error for a configuration that still uses the old `bf16: true/false` key.
pub fn old_bf16_key_error(value: Option<bool>) -> Result<()> {
    let hint = match value {
        Some(true) => "bf16: true means precision: bf16",
        Some(false) => "bf16: false means precision: f32",
        None => "use precision: auto | f32 | bf16",
    };
    bail!(
        "train.bf16 was replaced by train.precision: auto | f32 | bf16 ({hint}; auto picks bf16 on \
         hardware that multiplies bf16 natively)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(flags: &[&str]) -> Hardware {
        Hardware::Cpu {
            model: "Test CPU".into(),
            arch: "x86_64".into(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn auto_picks_bf16_only_on_native_hardware() {
        let amx = choose(ComputePrecision::Auto, &cpu(&["avx2", "amx_bf16", "avx512_bf16"]));
        assert_eq!(amx.dtype, ComputeDtype::Bf16);
        assert!(amx.reason.contains("amx_bf16"), "{}", amx.reason);
        let avx = choose(ComputePrecision::Auto, &cpu(&["avx512f", "avx512_bf16"]));
        assert_eq!(avx.dtype, ComputeDtype::Bf16);
        assert!(avx.reason.contains("avx512_bf16"), "{}", avx.reason);
        // avx512f, avx512_fp16 or amx_tile alone are not bf16 matmul instructions.
        let plain = choose(ComputePrecision::Auto, &cpu(&["avx2", "avx512f", "avx512_fp16", "amx_tile"]));
        assert_eq!(plain.dtype, ComputeDtype::F32);
        assert!(plain.reason.contains("no native bf16"), "{}", plain.reason);
        // The flag names are x86's: an ARM CPU reporting them is not trusted.
        let arm =
            Hardware::Cpu { model: "arm".into(), arch: "aarch64".into(), flags: vec!["avx512_bf16".into()] };
        assert_eq!(choose(ComputePrecision::Auto, &arm).dtype, ComputeDtype::F32);
    }

    #[test]
    fn cuda_needs_compute_capability_8() {
        let gpu = |capability| Hardware::Cuda { index: 0, capability };
        assert_eq!(choose(ComputePrecision::Auto, &gpu(Some((9, 0)))).dtype, ComputeDtype::Bf16);
        assert_eq!(choose(ComputePrecision::Auto, &gpu(Some((8, 0)))).dtype, ComputeDtype::Bf16);
        assert_eq!(choose(ComputePrecision::Auto, &gpu(Some((7, 5)))).dtype, ComputeDtype::F32);
        assert_eq!(choose(ComputePrecision::Auto, &gpu(None)).dtype, ComputeDtype::F32);
    }

    #[test]
    fn explicit_requests_are_obeyed_and_emulation_is_named() {
        let none = cpu(&["avx2"]);
        assert_eq!(choose(ComputePrecision::F32, &cpu(&["amx_bf16"])).dtype, ComputeDtype::F32);
        let forced = choose(ComputePrecision::Bf16, &none);
        assert_eq!(forced.dtype, ComputeDtype::Bf16);
        assert!(forced.reason.contains("emulated"), "{}", forced.reason);
        assert_eq!(forced.describe().split_whitespace().next(), Some("bf16"));
    }

    #[test]
    fn cpuinfo_is_parsed() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n\
                    flags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nmodel name\t: other\n";
        let (model, flags) = parse_cpuinfo(text);
        assert_eq!(model, "AMD EPYC 9R14");
        assert_eq!(flags, ["fpu", "avx2", "avx512f", "avx512_bf16"]);
        assert_eq!(parse_cpuinfo(""), ("unknown".to_string(), vec![]));
    }

    #[test]
    fn names_round_trip() {
        for p in [ComputePrecision::Auto, ComputePrecision::F32, ComputePrecision::Bf16] {
            assert_eq!(ComputePrecision::parse(p.name()), Ok(p));
            let yaml = serde_yaml::to_string(&p).unwrap();
            assert_eq!(yaml.trim(), p.name());
        }
        assert!(ComputePrecision::parse("f32-gumbel").is_err());
    }
}
