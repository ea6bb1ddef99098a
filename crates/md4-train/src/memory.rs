//! Training memory per device at a config's batch, without the device: `md4 info --memory`.
//!
//! Persistent state is counted exactly: per parameter 4 bytes each for the f32 weights, their
//! gradients, AdamW's two moments and the EMA copy (20 bytes). Activation memory is measured:
//! one forward and backward pass on the CPU with the config's network and arithmetic, at 2 and
//! then 4 sequences per micro-batch, reading the process's peak resident memory (Linux
//! `VmHWM`, reset through `/proc/self/clear_refs`, with freed memory returned to the kernel
//! between steps); half the difference is the memory an average sequence costs (antithetic
//! times spread the masked fractions as in training), the rest a per-step overhead (bf16 weight
//! copies, workspaces). Attention goes through the fused kernel as it does on CUDA. Not
//! counted: the CUDA context (about 0.5–1 GiB), cuBLAS/cuDNN workspaces and the caching
//! allocator's fragmentation. The CPU kernels keep some intermediates in f32 that CUDA's keep in
//! bf16, so the figure leans high; `metrics.jsonl`'s `device_peak_gib` is the GPU's own count.

use crate::RunConfig;
use crate::objective;
use anyhow::{Context, Result, bail, ensure};
use md4_models::ComputePrecision;
use serde::Serialize;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// Bytes of persistent training state per parameter: f32 weights, gradients, AdamW's first and
/// second moments, EMA weights.
pub const STATE_BYTES_PER_PARAM: u64 = 4 + 4 + 4 + 4 + 4;

/// What one device holds while training a config.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryEstimate {
    pub params: u64,
    /// Weights, gradients, AdamW moments and EMA ([`STATE_BYTES_PER_PARAM`] per parameter).
    pub state_bytes: u64,
    /// Measured activation memory of one more sequence in a micro-batch.
    pub per_sequence_bytes: u64,
    /// Measured per-step memory that does not grow with the micro-batch.
    pub step_overhead_bytes: u64,
    /// Sequences per micro-batch on one device: batch / (accum × world size).
    pub micro_batch: i64,
    pub seq_len: i64,
    /// The arithmetic measured (the networks' compute dtype).
    pub compute: String,
    /// state + overhead + micro_batch × per-sequence.
    pub total_bytes: u64,
}

fn status_kib(field: &str) -> Result<u64> {
    let mib = crate::alloc::rss_mib(field);
    ensure!(mib.is_finite(), "no {field} in /proc/self/status");
    Ok((mib * 1024.0).round() as u64)
}

/// Peak resident bytes of one training forward+backward at `batch` sequences, above the
/// resident memory before it.
fn step_peak(objective: &dyn md4_core::Objective, vs: &VarStore, batch: i64, seq_len: i64) -> Result<u64> {
    for v in vs.trainable_variables() {
        let mut g = v.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    crate::alloc::release_freed_memory();
    std::fs::write("/proc/self/clear_refs", "5")
        .context("resetting the peak resident memory (/proc/self/clear_refs)")?;
    let before = status_kib("VmRSS")?;
    // The token values do not change the memory; the times do (the output layer runs on the
    // masked positions). Same seed for every measurement: the antithetic times of the batch
    // are then u, u + 1/B, … for one u, as in training.
    tch::manual_seed(0);
    let x = Tensor::zeros([batch, seq_len], (Kind::Int64, Device::Cpu));
    let out = objective.loss(&x, true);
    out.objective.backward();
    let peak = status_kib("VmHWM")?;
    Ok(peak.saturating_sub(before) * 1024)
}

/// Measure `cfg`'s training memory per device for `world` data-parallel devices, in the
/// arithmetic `precision` resolves to on a GPU (default bf16, what `precision: auto` picks on
/// compute capability ≥ 8.0).
pub fn estimate(cfg: &RunConfig, world: i64, precision: Option<ComputePrecision>) -> Result<MemoryEstimate> {
    if !cfg!(target_os = "linux") {
        bail!("md4 info --memory measures through /proc/self (Linux only)");
    }
    let t = &cfg.train;
    ensure!(world >= 1, "the world size must be at least 1");
    ensure!(
        t.batch % (t.accum * world) == 0,
        "train.batch {} is not divisible by train.accum {} × world size {world}",
        t.batch,
        t.accum
    );
    let micro_batch = t.batch / (t.accum * world);
    let precision = precision.or(Some(ComputePrecision::Bf16));
    // On CUDA attention dropout runs inside the fused (flash) kernel and stores nothing; on a
    // CPU it forces the unfused path with its [B·H, N, N] matrices. Measure without dropout (its
    // channel masks elsewhere are 1 byte per element on CUDA: about 1 % here, not counted).
    let cfg = &without_dropout(cfg)?;
    md4_models::layers::set_fused_attention_only(true);
    let vs = VarStore::new(Device::Cpu);
    let (trained, choice) = objective::build(cfg, &vs.root(), precision)?;
    let params: u64 = vs.trainable_variables().iter().map(|v| v.numel() as u64).sum();
    let objective = trained.objective();
    step_peak(objective, &vs, 1, t.seq_len)?; // allocates the gradients once
    let two = step_peak(objective, &vs, 2, t.seq_len)?;
    let four = step_peak(objective, &vs, 4, t.seq_len)?;
    md4_models::layers::set_fused_attention_only(false);
    // Two and four sequences: their antithetic times spread over (0, 1) as a training batch's
    // do, so the difference is the memory of an average sequence (one sequence alone has a
    // single random time, and the masked fraction sets the output layer's share).
    let per_sequence_bytes = four.saturating_sub(two) / 2;
    let step_overhead_bytes = two.saturating_sub(2 * per_sequence_bytes);
    let state_bytes = params * STATE_BYTES_PER_PARAM;
    let total_bytes = state_bytes + step_overhead_bytes + micro_batch as u64 * per_sequence_bytes;
    Ok(MemoryEstimate {
        params,
        state_bytes,
        per_sequence_bytes,
        step_overhead_bytes,
        micro_batch,
        seq_len: t.seq_len,
        compute: choice.dtype.name().to_string(),
        total_bytes,
    })
}

/// `cfg` with every `dropout`/`embedding_dropout` of the model set to 0.
fn without_dropout(cfg: &RunConfig) -> Result<RunConfig> {
    let mut tree: serde_yaml::Value = serde_yaml::from_str(&cfg.to_yaml()?)?;
    fn zero(v: &mut serde_yaml::Value) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m.iter_mut() {
                    if k.as_str().is_some_and(|k| k.ends_with("dropout")) && v.is_f64() {
                        *v = serde_yaml::Value::from(0.0);
                    } else {
                        zero(v);
                    }
                }
            }
            serde_yaml::Value::Sequence(s) => s.iter_mut().for_each(zero),
            _ => {}
        }
    }
    if let Some(model) = tree.get_mut("model") {
        zero(model);
    }
    RunConfig::from_yaml(&serde_yaml::to_string(&tree)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(seq_len: i64) -> RunConfig {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/text8-tiny.yaml");
        let mut cfg = RunConfig::load(&path, &[]).unwrap();
        cfg.train.seq_len = seq_len;
        cfg
    }

    #[test]
    fn state_is_exact_and_activations_grow_with_the_sequence() {
        let short = estimate(&tiny(64), 1, Some(ComputePrecision::F32)).unwrap();
        let long = estimate(&tiny(256), 1, Some(ComputePrecision::F32)).unwrap();
        assert_eq!(short.state_bytes, 20 * short.params);
        assert_eq!(
            short.total_bytes,
            short.state_bytes
                + short.step_overhead_bytes
                + short.micro_batch as u64 * short.per_sequence_bytes
        );
        assert!(long.per_sequence_bytes > short.per_sequence_bytes, "{short:?} vs {long:?}");
        let halves = estimate(&tiny(64), 2, Some(ComputePrecision::F32)).unwrap();
        assert_eq!(halves.micro_batch * 2, short.micro_batch);
        assert!(estimate(&tiny(64), 7, None).unwrap_err().to_string().contains("not divisible"));
        let mut dropped = tiny(64);
        dropped.model = md4_models::preset("md4-s-owt").unwrap();
        let zeroed = without_dropout(&dropped).unwrap();
        assert_ne!(dropped.model, zeroed.model);
        assert!(!serde_yaml::to_string(&zeroed.model).unwrap().contains("dropout: 0.02"));
    }
}
