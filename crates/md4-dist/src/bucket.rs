//! Collectives over many tensors at once: tensors of one kind are packed into flat buckets of
//! at most `bucket_bytes` (PyTorch DDP's default is 25 MiB), each bucket is reduced or broadcast
//! in one call, and the results are copied back. Gradients after backward, parameters after
//! initialisation or a resume.

use crate::group::ProcessGroup;
use anyhow::Result;
use tch::Tensor;

/// DDP's default bucket size.
pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

/// Consecutive runs of same-kind tensors whose total size stays within `bucket_bytes` (a
/// single larger tensor gets a bucket of its own).
fn buckets(tensors: &[Tensor], bucket_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = vec![];
    let (mut start, mut bytes) = (0, 0);
    for (i, t) in tensors.iter().enumerate() {
        let size = t.numel() * t.kind().elt_size_in_bytes();
        let same_kind = i == start || tensors[start].kind() == t.kind();
        if i > start && (!same_kind || bytes + size > bucket_bytes) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < tensors.len() {
        out.push(start..tensors.len());
    }
    out
}

fn bucketed(tensors: &[Tensor], bucket_bytes: usize, op: impl Fn(&Tensor) -> Result<()>) -> Result<()> {
    tch::no_grad(|| {
        for range in buckets(tensors, bucket_bytes) {
            let group = &tensors[range];
            let flat = Tensor::cat(&group.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0);
            op(&flat)?;
            let mut offset = 0;
            for t in group {
                let n = t.numel() as i64;
                t.shallow_clone().copy_(&flat.narrow(0, offset, n).view_as(t));
                offset += n;
            }
        }
        Ok(())
    })
}

/// Sum every tensor over the ranks, in place (callers scale the objective so that the sum is
/// the gradient of the global mean).
pub fn all_reduce_sum(group: &ProcessGroup, tensors: &[Tensor], bucket_bytes: usize) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    bucketed(tensors, bucket_bytes, |flat| group.all_reduce_sum(flat))
}

/// Copy rank `root`'s tensors to every rank, in place.
pub fn broadcast(group: &ProcessGroup, tensors: &[Tensor], root: usize, bucket_bytes: usize) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    bucketed(tensors, bucket_bytes, |flat| group.broadcast(flat, root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn buckets_respect_size_and_kind() {
        let f = |n: i64| Tensor::zeros([n], (Kind::Float, Device::Cpu));
        let d = |n: i64| Tensor::zeros([n], (Kind::Double, Device::Cpu));
        let ts = vec![f(10), f(10), f(30), d(2), d(2), f(1)];
        // 40-byte buckets: [10 f32 = 40 B] [40 B] [120 B alone] [2 f64 + 2 f64 = 32 B] [4 B]
        assert_eq!(buckets(&ts, 40), vec![0..1, 1..2, 2..3, 3..5, 5..6]);
        assert_eq!(buckets(&ts, 1 << 20), vec![0..3, 3..5, 5..6]);
        assert!(buckets(&[], 40).is_empty());
    }

    #[test]
    fn a_world_of_one_is_the_identity() {
        let g = ProcessGroup::single(Device::Cpu);
        let ts = vec![Tensor::from_slice(&[1.0f32, 2.0]), Tensor::from_slice(&[3.0f64])];
        all_reduce_sum(&g, &ts, 4).unwrap();
        broadcast(&g, &ts, 0, 4).unwrap();
        assert_eq!(Vec::<f32>::try_from(&ts[0]).unwrap(), vec![1.0, 2.0]);
        let mut v = [1.5, -2.0];
        g.sum_f64(&mut v).unwrap();
        assert_eq!(v, [1.5, -2.0]);
    }
}
