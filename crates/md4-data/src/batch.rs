//! Stateless, resumable batching (spec §9): the batch of training step k is a pure function of
//! `(seed, k)`, so a checkpoint only needs the step to resume exactly.
//!
//! * [`RandomCrops`]: text8-style training crops at any offset (§9.1).
//! * [`Chunks`]: non-overlapping evaluation chunks, remainder dropped and reported (§9.1, §11.2).
//! * [`Blocks`]: fixed-length items (packed 1024-token blocks, or images `[H·W·C]`), visited in a
//!   fresh shuffled order every epoch (§9.2, §9.4).
//!
//! Randomness comes from [`SplitMix64`] (no global RNG) and a keyed Feistel [`Permutation`].

use std::sync::Arc;

use anyhow::{Result, ensure};
use tch::{Device, Tensor};

use crate::tokenfile::TokenFile;

/// Vigna's SplitMix64 generator: tiny, fast, and good enough to pick offsets and shuffles.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

/// The SplitMix64 output function applied to one value (a strong 64-bit mixer).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from `(seed, a)`; different `a` give independent-looking streams.
pub fn derive_seed(seed: u64, a: u64) -> u64 {
    mix64(mix64(seed.wrapping_add(0x9E37_79B9_7F4A_7C15)) ^ a.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }
    /// The generator for training step `step` of a run seeded with `seed`.
    pub fn for_step(seed: u64, step: u64) -> Self {
        Self::new(derive_seed(seed, step))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }
    /// Uniform integer in `0..n` (Lemire's multiply-and-reject, unbiased). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) is empty");
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as u64
    }
}

/// A pseudo-random permutation of `0..n` keyed by a seed: a balanced Feistel network on the
/// smallest even-bit power-of-two domain ≥ n, with cycle walking. O(1) memory, so shuffling
/// millions of blocks needs no table.
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 6],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let mut rng = SplitMix64::new(seed);
        let keys = std::array::from_fn(|_| rng.next_u64());
        Self { n, half_bits, keys }
    }
    pub fn len(&self) -> u64 {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let f = mix64(right ^ key) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }
    /// The image of `i` (`i < n`).
    pub fn apply(&self, i: u64) -> u64 {
        assert!(i < self.n, "permutation index {i} out of range {}", self.n);
        let mut y = self.encrypt(i);
        while y >= self.n {
            y = self.encrypt(y);
        }
        y
    }
}

fn to_tensor(data: Vec<i64>, rows: i64, cols: i64, device: Device) -> Tensor {
    Tensor::from_slice(&data).view([rows, cols]).to_device(device)
}

/// Random crops of `seq_len` tokens at any offset of a stream (text8 training, §9.1).
#[derive(Clone, Debug)]
pub struct RandomCrops {
    tokens: Arc<TokenFile>,
    seq_len: u64,
}

impl RandomCrops {
    pub fn new(tokens: impl Into<Arc<TokenFile>>, seq_len: u64) -> Result<Self> {
        let tokens = tokens.into();
        ensure!(seq_len > 0, "sequence length must be positive");
        ensure!(
            tokens.len() >= seq_len,
            "{} has {} tokens, fewer than one crop of {seq_len}",
            tokens.path().display(),
            tokens.len()
        );
        Ok(Self { tokens, seq_len })
    }
    /// Number of distinct start positions (`len − seq_len + 1`).
    pub fn num_offsets(&self) -> u64 {
        self.tokens.len() - self.seq_len + 1
    }
    /// The crop offsets of one batch: a pure function of `(seed, step, batch)`.
    pub fn offsets(&self, seed: u64, step: u64, batch: i64) -> Vec<u64> {
        let mut rng = SplitMix64::for_step(seed, step);
        (0..batch).map(|_| rng.below(self.num_offsets())).collect()
    }
    /// The batch of training step `step`.
    ///
    /// # Shapes
    /// returns `[B, N]` int64 with B = `batch`, N = `seq_len`, on `device`.
    pub fn batch(&self, seed: u64, step: u64, batch: i64, device: Device) -> Tensor {
        let n = self.seq_len as usize;
        let mut data = vec![0i64; batch as usize * n];
        for (row, off) in data.chunks_exact_mut(n).zip(self.offsets(seed, step, batch)) {
            self.tokens.read_i64(off, row);
        }
        to_tensor(data, batch, n as i64, device)
    }
}

/// Non-overlapping evaluation chunks of `seq_len` tokens; the remainder is dropped (§9.1).
#[derive(Clone, Debug)]
pub struct Chunks {
    tokens: Arc<TokenFile>,
    seq_len: u64,
}

impl Chunks {
    pub fn new(tokens: impl Into<Arc<TokenFile>>, seq_len: u64) -> Result<Self> {
        let tokens = tokens.into();
        ensure!(seq_len > 0, "sequence length must be positive");
        Ok(Self { tokens, seq_len })
    }
    /// Number of whole chunks.
    pub fn num_chunks(&self) -> u64 {
        self.tokens.len() / self.seq_len
    }
    /// Tokens left over after the last whole chunk (not scored).
    pub fn dropped_tokens(&self) -> u64 {
        self.tokens.len() % self.seq_len
    }
    /// Number of batches; with `drop_last` a final partial batch is skipped, as the reference
    /// evaluation loaders do (spec §12 item 20).
    pub fn num_batches(&self, batch: i64, drop_last: bool) -> u64 {
        let b = batch as u64;
        if drop_last { self.num_chunks() / b } else { self.num_chunks().div_ceil(b) }
    }
    /// Chunk `i` as i64 tokens.
    pub fn chunk(&self, i: u64) -> Vec<i64> {
        let mut out = vec![0i64; self.seq_len as usize];
        self.tokens.read_i64(i * self.seq_len, &mut out);
        out
    }
    /// Batch `index` (chunks `index·B ..`), shorter at the very end when `B` does not divide.
    ///
    /// # Shapes
    /// returns `[B', N]` int64, B' = min(B, chunks left), N = `seq_len`.
    pub fn batch(&self, index: u64, batch: i64, device: Device) -> Tensor {
        let first = index * batch as u64;
        let rows = (batch as u64).min(self.num_chunks().saturating_sub(first));
        let n = self.seq_len as usize;
        let mut data = vec![0i64; rows as usize * n];
        self.tokens.read_i64(first * self.seq_len, &mut data);
        to_tensor(data, rows as i64, n as i64, device)
    }
}

/// Fixed-length items visited in a shuffled order that changes every epoch: packed blocks of a
/// stream (§9.2) or images `[H·W·C]` (§9.4).
#[derive(Clone, Debug)]
pub struct Blocks {
    tokens: Arc<TokenFile>,
    block_len: u64,
}

impl Blocks {
    /// Consecutive non-overlapping blocks of `block_len` tokens (the remainder is dropped).
    pub fn new(tokens: impl Into<Arc<TokenFile>>, block_len: u64) -> Result<Self> {
        let tokens = tokens.into();
        ensure!(block_len > 0, "block length must be positive");
        ensure!(
            tokens.len() >= block_len,
            "{} has {} tokens, fewer than one block of {block_len}",
            tokens.path().display(),
            tokens.len()
        );
        Ok(Self { tokens, block_len })
    }
    /// The items of a file written with an item shape (images `[H, W, C]`, or blocks).
    pub fn items(tokens: impl Into<Arc<TokenFile>>) -> Result<Self> {
        let tokens = tokens.into();
        let len = tokens
            .item_len()
            .ok_or_else(|| anyhow::anyhow!("{} has no item shape", tokens.path().display()))?;
        Self::new(tokens, len)
    }
    pub fn num_blocks(&self) -> u64 {
        self.tokens.len() / self.block_len
    }
    pub fn block_len(&self) -> u64 {
        self.block_len
    }
    pub fn dropped_tokens(&self) -> u64 {
        self.tokens.len() % self.block_len
    }
    /// Block indices of training step `step`: sample `g = step·B + b` is position `g mod n` of
    /// the permutation of epoch `g div n`, so every epoch visits each block exactly once.
    pub fn indices(&self, seed: u64, step: u64, batch: i64) -> Vec<u64> {
        let n = self.num_blocks();
        let mut perm: Option<(u64, Permutation)> = None;
        (0..batch as u64)
            .map(|b| {
                let g = step * batch as u64 + b;
                let epoch = g / n;
                if perm.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    perm = Some((epoch, Permutation::new(n, derive_seed(seed, epoch))));
                }
                perm.as_ref().unwrap().1.apply(g % n)
            })
            .collect()
    }
    /// The training batch of step `step`.
    ///
    /// # Shapes
    /// returns `[B, L]` int64 with L = `block_len` (H·W·C for images).
    pub fn batch(&self, seed: u64, step: u64, batch: i64, device: Device) -> Tensor {
        let l = self.block_len as usize;
        let mut data = vec![0i64; batch as usize * l];
        for (row, idx) in data.chunks_exact_mut(l).zip(self.indices(seed, step, batch)) {
            self.tokens.read_i64(idx * self.block_len, row);
        }
        to_tensor(data, batch, l as i64, device)
    }
    /// Evaluation batch `index` in file order (blocks `index·B ..`), shorter at the end.
    ///
    /// # Shapes
    /// returns `[B', L]` int64, B' = min(B, blocks left).
    pub fn sequential(&self, index: u64, batch: i64, device: Device) -> Tensor {
        let first = index * batch as u64;
        let rows = (batch as u64).min(self.num_blocks().saturating_sub(first));
        let l = self.block_len as usize;
        let mut data = vec![0i64; rows as usize * l];
        self.tokens.read_i64(first * self.block_len, &mut data);
        to_tensor(data, rows as i64, l as i64, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenfile::TokenMeta;

    fn stream(dir: &std::path::Path, n: u16, vocab: u32) -> Arc<TokenFile> {
        let path = dir.join("s.tok");
        let toks: Vec<u16> = (0..n).map(|i| i % vocab as u16).collect();
        TokenFile::create(&path, vocab, &toks).unwrap();
        Arc::new(TokenFile::open(&path).unwrap())
    }

    #[test]
    fn splitmix_matches_reference_vector() {
        // First outputs of Vigna's splitmix64.c seeded with 1234567.
        let mut r = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, [6457827717110365317, 3203168211198807973, 9817491932198370423]);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = SplitMix64::new(9);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        // Each bucket expects 10,000; 5 standard deviations is about ±460.
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
    }

    #[test]
    fn permutation_is_a_bijection_and_depends_on_the_seed() {
        for n in [1u64, 2, 3, 17, 1000, 4097] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = p.apply(i) as usize;
                assert!(!seen[j], "n={n}: {j} hit twice");
                seen[j] = true;
            }
        }
        let a: Vec<u64> = (0..100).map(|i| Permutation::new(100, 1).apply(i)).collect();
        let b: Vec<u64> = (0..100).map(|i| Permutation::new(100, 2).apply(i)).collect();
        assert_ne!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn random_crops_are_pure_functions_of_seed_and_step() {
        let dir = tempfile::tempdir().unwrap();
        let crops = RandomCrops::new(stream(dir.path(), 300, 27), 16).unwrap();
        let a = crops.batch(5, 11, 4, Device::Cpu);
        let b = crops.batch(5, 11, 4, Device::Cpu);
        assert_eq!(a.size(), [4, 16]);
        assert_eq!(a.kind(), tch::Kind::Int64);
        assert!(a.equal(&b), "same (seed, step) must give the same batch");
        assert!(!a.equal(&crops.batch(5, 12, 4, Device::Cpu)));
        assert!(!a.equal(&crops.batch(6, 11, 4, Device::Cpu)));
        // Every row is a contiguous slice of the stream starting at its offset.
        for (r, off) in crops.offsets(5, 11, 4).into_iter().enumerate() {
            let row = Vec::<i64>::try_from(a.get(r as i64)).unwrap();
            let want: Vec<i64> = (off..off + 16).map(|i| (i % 27) as i64).collect();
            assert_eq!(row, want);
        }
        // Offsets cover the whole range, including the very last start position.
        let offs: Vec<u64> = (0..2000).flat_map(|s| crops.offsets(1, s, 4)).collect();
        assert_eq!(*offs.iter().max().unwrap(), crops.num_offsets() - 1);
        assert_eq!(*offs.iter().min().unwrap(), 0);
    }

    #[test]
    fn chunks_drop_and_report_the_remainder() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = Chunks::new(stream(dir.path(), 100, 27), 16).unwrap();
        assert_eq!((chunks.num_chunks(), chunks.dropped_tokens()), (6, 4));
        assert_eq!((chunks.num_batches(4, true), chunks.num_batches(4, false)), (1, 2));
        let last = chunks.batch(1, 4, Device::Cpu);
        assert_eq!(last.size(), [2, 16]);
        assert_eq!(Vec::<i64>::try_from(last.get(1)).unwrap(), chunks.chunk(5));
        assert_eq!(chunks.chunk(5)[0], 80 % 27);
    }

    #[test]
    fn blocks_visit_every_block_once_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = Blocks::new(stream(dir.path(), 10 * 8 + 3, 256), 8).unwrap();
        assert_eq!((blocks.num_blocks(), blocks.dropped_tokens()), (10, 3));
        // Batch 5 → two steps per epoch.
        let epoch0: Vec<u64> = (0..2).flat_map(|s| blocks.indices(3, s, 5)).collect();
        let epoch1: Vec<u64> = (2..4).flat_map(|s| blocks.indices(3, s, 5)).collect();
        for e in [&epoch0, &epoch1] {
            let mut sorted = e.clone();
            sorted.sort();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(epoch0, epoch1, "each epoch gets its own order");
        let t = blocks.batch(3, 1, 5, Device::Cpu);
        let first = blocks.indices(3, 1, 5)[0] as i64;
        assert_eq!(Vec::<i64>::try_from(t.get(0)).unwrap(), (first * 8..first * 8 + 8).collect::<Vec<_>>());
        assert_eq!(blocks.sequential(1, 4, Device::Cpu).size(), [4, 8]);
        assert_eq!(blocks.sequential(2, 4, Device::Cpu).size(), [2, 8]);
    }

    #[test]
    fn image_items_keep_hwc_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.tok");
        let meta = TokenMeta { vocab: 256, item_shape: Some([2, 2, 3]), source_sha256: None };
        let px: Vec<u8> = (0..36).collect();
        TokenFile::create_u8(&path, &meta, &px).unwrap();
        let items = Blocks::items(TokenFile::open(&path).unwrap()).unwrap();
        assert_eq!((items.num_blocks(), items.block_len()), (3, 12));
        let t = items.sequential(0, 3, Device::Cpu);
        assert_eq!(Vec::<i64>::try_from(t.get(2)).unwrap(), (24..36).collect::<Vec<_>>());
    }
}
