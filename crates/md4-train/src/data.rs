//! Training and validation batches for the loop (spec §9), built on md4-data's stateless
//! batchers: the batch of update k is a pure function of (seed, k), so a checkpoint only needs
//! the step to resume the data stream exactly.
//!
//! * registry data sets (`md4 data NAME`): a stream split (text8) gives random crops of
//!   `seq_len` tokens and non-overlapping validation chunks; an item split (packed OWT blocks,
//!   images) gives shuffled items and sequential validation items;
//! * the user's own files (`text:PATH`, `bpe:PATH`, `tokens:PATH`): one stream whose last
//!   `holdout` fraction is kept for validation; crops are drawn from the rest.

use crate::config::DataConfig;
use anyhow::{Context, Result, ensure};
use md4_data::prepare::TextEncoding;
use md4_data::{Blocks, Chunks, PrepareOptions, RandomCrops, SplitMix64, TokenFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Tensor};

/// What the training loop needs from data.
pub trait Batches {
    /// The batch of update `step`, a pure function of `(seed, step)`.
    ///
    /// # Shapes
    /// → `[batch, N]` int64 on the CPU.
    fn train_batch(&self, seed: u64, step: u64, batch: i64) -> Tensor;
    /// Number of validation sequences (0: no validation data).
    fn eval_len(&self) -> u64;
    /// Validation sequences `start..start + count` in a fixed order.
    ///
    /// # Shapes
    /// → `[count, N]` int64 on the CPU.
    fn eval_batch(&self, start: u64, count: u64) -> Tensor;
}

/// Crops at any offset of `tokens[start..end]`, with a seeded stream per step (the same
/// generator as md4-data's [`RandomCrops`], restricted to a range).
#[derive(Clone, Debug)]
struct RangeCrops {
    tokens: Arc<TokenFile>,
    start: u64,
    end: u64,
    seq_len: u64,
}

impl RangeCrops {
    fn batch(&self, seed: u64, step: u64, batch: i64) -> Tensor {
        let n = self.seq_len as usize;
        let offsets = self.end - self.start - self.seq_len + 1;
        let mut rng = SplitMix64::for_step(seed, step);
        let mut data = vec![0i64; batch as usize * n];
        for row in data.chunks_exact_mut(n) {
            self.tokens.read_i64(self.start + rng.below(offsets), row);
        }
        Tensor::from_slice(&data).view([batch, n as i64])
    }
}

/// Non-overlapping chunks of `seq_len` tokens starting at `start` of a token file.
#[derive(Clone, Debug)]
pub struct RangeChunks {
    tokens: Arc<TokenFile>,
    start: u64,
    count: u64,
    seq_len: u64,
}

impl RangeChunks {
    fn batch(&self, first: u64, count: u64) -> Tensor {
        let n = self.seq_len as usize;
        let mut data = vec![0i64; count as usize * n];
        self.tokens.read_i64(self.start + first * self.seq_len, &mut data);
        Tensor::from_slice(&data).view([count as i64, n as i64])
    }
}

#[derive(Clone, Debug)]
enum Train {
    Crops(RandomCrops),
    Items(Blocks),
    Range(RangeCrops),
}

/// A fixed, ordered set of equal-length evaluation sequences.
#[derive(Clone, Debug)]
pub enum EvalSet {
    Chunks(Chunks),
    Items(Blocks),
    Range(RangeChunks),
}

impl EvalSet {
    /// Number of sequences.
    pub fn len(&self) -> u64 {
        match self {
            Self::Chunks(c) => c.num_chunks(),
            Self::Items(b) => b.num_blocks(),
            Self::Range(r) => r.count,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Tokens per sequence N.
    pub fn seq_len(&self) -> u64 {
        match self {
            Self::Chunks(c) => c.chunk(0).len() as u64,
            Self::Items(b) => b.block_len(),
            Self::Range(r) => r.seq_len,
        }
    }
    /// Sequences `start..start + count` (clamped at the end).
    ///
    /// # Shapes
    /// → `[count, N]` int64 on the CPU.
    pub fn batch(&self, start: u64, count: u64) -> Tensor {
        let count = count.min(self.len().saturating_sub(start));
        match self {
            Self::Chunks(c) => {
                let rows: Vec<i64> = (start..start + count).flat_map(|i| c.chunk(i)).collect();
                Tensor::from_slice(&rows).view([count as i64, -1])
            }
            Self::Items(b) => {
                let l = b.block_len() as usize;
                let mut rows = Vec::with_capacity(count as usize * l);
                for i in start..start + count {
                    // One-row sequential batches keep the order independent of the batch size.
                    rows.extend(
                        Vec::<i64>::try_from(&b.sequential(i, 1, Device::Cpu).view([-1])).unwrap_or_default(),
                    );
                }
                Tensor::from_slice(&rows).view([count as i64, l as i64])
            }
            Self::Range(r) => r.batch(start, count),
        }
    }
}

/// Training batches and optional validation sequences for one run.
#[derive(Clone, Debug)]
pub struct Data {
    /// Number of real tokens V in the data.
    pub vocab: i64,
    /// Tokens per training sequence N.
    pub seq_len: i64,
    /// A one-line description for logs and run records.
    pub description: String,
    train: Train,
    eval: Option<EvalSet>,
}

/// How the data is found.
#[derive(Clone, Debug, Default)]
pub struct DataOptions {
    /// Never contact a registry or the Hub when a registry data set is not prepared yet.
    pub offline: bool,
    pub progress: bool,
    /// Where the user's own files are tokenised to (default: [`md4_data::local_cache_dir`]).
    pub local_cache: Option<PathBuf>,
}

fn cache(opts: &DataOptions) -> PathBuf {
    opts.local_cache.clone().unwrap_or_else(md4_data::local_cache_dir)
}

fn stream_split(file: &TokenFile, holdout: f64) -> Result<(u64, u64)> {
    ensure!((0.0..1.0).contains(&holdout), "data: holdout must lie in [0, 1), got {holdout}");
    let len = file.len();
    let eval = (len as f64 * holdout).floor() as u64;
    Ok((len - eval, eval))
}

impl Data {
    /// Open the data of a run. `seq_len` is the training sequence length (for item data it must
    /// equal the item length).
    pub fn open(cfg: &DataConfig, seq_len: i64, opts: &DataOptions) -> Result<Self> {
        ensure!(seq_len > 0, "data: seq_len must be positive, got {seq_len}");
        match cfg {
            DataConfig::Dataset { name, train_split, eval_split, vocab } => {
                let prepared = md4_data::prepare(
                    name,
                    &PrepareOptions { from_dir: None, offline: opts.offline, progress: opts.progress },
                )
                .with_context(|| format!("preparing data set {name} (run `md4 data {name}` first)"))?;
                let sub = vocab.as_ref().map(md4_data::SubVocab::load).transpose()?;
                let open = |split: &str| match &sub {
                    Some(v) => v.open_split(&prepared, split),
                    None => prepared.open(split),
                };
                let train_file = Arc::new(open(train_split)?);
                let vocab_size = train_file.vocab() as i64;
                let train = Self::train_of(&train_file, seq_len)?;
                let eval = match eval_split {
                    Some(split) => Some(Self::eval_of(Arc::new(open(split)?), seq_len)?),
                    None => None,
                };
                let mut description = format!("{name} ({train_split}, {} tokens)", train_file.len());
                if let Some(v) = vocab {
                    description += &format!(", {}", v.describe());
                }
                let vocab = vocab_size;
                Ok(Self { vocab, seq_len, description, train, eval })
            }
            DataConfig::Text { path, holdout } => {
                let file = md4_data::prepare::load_text_path_in(path, TextEncoding::Text8, &cache(opts))?;
                Self::local(file, path, "text", seq_len, *holdout)
            }
            DataConfig::Bpe { path, holdout } => {
                let file = md4_data::prepare::load_text_path_in(path, TextEncoding::Gpt2, &cache(opts))?;
                Self::local(file, path, "bpe", seq_len, *holdout)
            }
            DataConfig::Tokens { path, vocab, holdout } => {
                let file = md4_data::prepare::load_tokens_path_in(path, *vocab, &cache(opts))?;
                Self::local(file, path, "tokens", seq_len, *holdout)
            }
        }
    }

    /// One token stream: the first part for training crops, the last `holdout` for validation.
    pub fn local(file: TokenFile, path: &Path, kind: &str, seq_len: i64, holdout: f64) -> Result<Self> {
        let (train_len, eval_len) = stream_split(&file, holdout)?;
        let n = seq_len as u64;
        ensure!(
            train_len >= n,
            "{}: {train_len} training tokens, fewer than one sequence of {n}",
            path.display()
        );
        let tokens = Arc::new(file);
        let vocab = tokens.vocab() as i64;
        let eval = (eval_len >= n).then(|| {
            EvalSet::Range(RangeChunks {
                tokens: tokens.clone(),
                start: train_len,
                count: eval_len / n,
                seq_len: n,
            })
        });
        let description =
            format!("{kind}:{} ({train_len} training tokens, {eval_len} held out)", path.display());
        let train = Train::Range(RangeCrops { tokens, start: 0, end: train_len, seq_len: n });
        Ok(Self { vocab, seq_len, description, train, eval })
    }

    fn train_of(file: &Arc<TokenFile>, seq_len: i64) -> Result<Train> {
        match file.item_len() {
            Some(len) => {
                ensure!(
                    len == seq_len as u64,
                    "{} holds items of {len} tokens but train.seq_len is {seq_len}",
                    file.path().display()
                );
                Ok(Train::Items(Blocks::items(file.clone())?))
            }
            None => Ok(Train::Crops(RandomCrops::new(file.clone(), seq_len as u64)?)),
        }
    }

    /// The evaluation sequences of a token file: items as they are, streams cut into
    /// non-overlapping chunks of `seq_len` (remainder dropped).
    pub fn eval_of(file: Arc<TokenFile>, seq_len: i64) -> Result<EvalSet> {
        match file.item_len() {
            Some(len) => {
                ensure!(
                    len == seq_len as u64,
                    "{} holds items of {len} tokens but the sequence length is {seq_len}",
                    file.path().display()
                );
                Ok(EvalSet::Items(Blocks::items(file)?))
            }
            None => Ok(EvalSet::Chunks(Chunks::new(file, seq_len as u64)?)),
        }
    }

    /// The validation sequences, if any.
    pub fn eval_set(&self) -> Option<&EvalSet> {
        self.eval.as_ref()
    }
}

impl Batches for Data {
    fn train_batch(&self, seed: u64, step: u64, batch: i64) -> Tensor {
        match &self.train {
            Train::Crops(c) => c.batch(seed, step, batch, Device::Cpu),
            Train::Items(b) => b.batch(seed, step, batch, Device::Cpu),
            Train::Range(r) => r.batch(seed, step, batch),
        }
    }
    fn eval_len(&self) -> u64 {
        self.eval.as_ref().map_or(0, EvalSet::len)
    }
    fn eval_batch(&self, start: u64, count: u64) -> Tensor {
        self.eval.as_ref().expect("eval_batch without validation data").batch(start, count)
    }
}
