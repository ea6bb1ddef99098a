//! Training memory per device at a config's batch, without the device: `md4 info --memory`.
//!
//! Persistent state is counted exactly: per parameter 4 bytes each for the f32 weights, their
//! gradients, AdamW's two moments and the EMA copy (20 bytes). Activation memory is measured:
//! one forward and backward pass on the CPU with the config's network and arithmetic, at 1 and
//! then 2 sequences per micro-batch, reading the process's peak resident memory (Linux
//! `VmHWM`, reset through `/proc/self/clear_refs`, with freed memory returned to the kernel
//! between steps); the difference is the memory one more
//! sequence costs, the rest a per-step overhead (bf16 weight copies, workspaces). Attention
//! goes through the fused kernel as it does on CUDA. Not counted: the CUDA context (about
//! 0.5–1 GiB), cuBLAS/cuDNN workspaces and the caching allocator's fragmentation.

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
fn step_peak(
    objective: &dyn md4_core::Objective,
    vs: &VarStore,
    vocab: i64,
    batch: i64,
    seq_len: i64,
) -> Result<u64> {
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
    tch::manual_seed(0);
    let x = Tensor::randint(vocab, [batch, seq_len], (Kind::Int64, Device::Cpu));
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
    md4_models::layers::set_fused_attention_only(true);
    let vs = VarStore::new(Device::Cpu);
    let (trained, choice) = objective::build(cfg, &vs.root(), precision)?;
    let params: u64 = vs.trainable_variables().iter().map(|v| v.numel() as u64).sum();
    let vocab = cfg.model.vocab().size();
    let objective = trained.objective();
    step_peak(objective, &vs, vocab, 1, t.seq_len)?; // allocates the gradients once
    let one = step_peak(objective, &vs, vocab, 1, t.seq_len)?;
    let two = step_peak(objective, &vs, vocab, 2, t.seq_len)?;
    md4_models::layers::set_fused_attention_only(false);
    let per_sequence_bytes = two.saturating_sub(one);
    let step_overhead_bytes = one.saturating_sub(per_sequence_bytes);
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
    }
}
