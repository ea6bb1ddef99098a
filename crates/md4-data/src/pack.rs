//! Packing token streams into fixed-length blocks.
//!
//! * Zero-shot protocol (spec §11.2): detokenize each row, GPT-2 BPE, append EOS to **every** row
//!   (empty rows become a lone EOS), concatenate in order, cut into 1024-token blocks and drop the
//!   remainder ([`zero_shot_pack`]).
//! * OpenWebText (spec §9.2): EOS after every document, concatenation across documents, 1024-token
//!   blocks, and a held-out set chosen **with a fixed seed** ([`HoldOut`]); the reference shuffled
//!   with an unseeded RNG. [`pack_documents`] streams shard by shard with bounded memory and
//!   resumes after a crash from its last committed shard.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use crate::batch::{Permutation, derive_seed};
use crate::bpe::{GPT2_EOS, GPT2_VOCAB, gpt2_encode_batch};
use crate::cache::write_atomic;
use crate::detok::Detokenizer;
use crate::tokenfile::{TokenMeta, TokenWriter};

/// Detokenizes and encodes rows, appending EOS after every row (including empty ones).
pub fn encode_rows_with_eos<S: AsRef<str> + Sync>(rows: &[S], detok: Detokenizer) -> Vec<u16> {
    let texts: Vec<String> = rows.iter().map(|r| detok.apply(r.as_ref())).collect();
    let mut out = Vec::new();
    for toks in gpt2_encode_batch(&texts) {
        out.extend(toks.into_iter().map(|t| t as u16));
        out.push(GPT2_EOS as u16);
    }
    out
}

/// Result of the zero-shot packing of one split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// The kept tokens: `blocks × block_len`.
    pub tokens: Vec<u16>,
    pub rows: u64,
    /// Tokens before the remainder was dropped (EOS included).
    pub total_tokens: u64,
    pub blocks: u64,
    /// Tokens dropped at the end (`total_tokens mod block_len`).
    pub dropped: u64,
}

/// The zero-shot protocol of spec §11.2 for one split.
pub fn zero_shot_pack<S: AsRef<str> + Sync>(rows: &[S], detok: Detokenizer, block_len: u64) -> Packed {
    let mut tokens = encode_rows_with_eos(rows, detok);
    let total = tokens.len() as u64;
    let blocks = total / block_len;
    tokens.truncate((blocks * block_len) as usize);
    Packed {
        tokens,
        rows: rows.len() as u64,
        total_tokens: total,
        blocks,
        dropped: total - blocks * block_len,
    }
}

/// How OpenWebText blocks are held out for validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HoldOut {
    /// MD4's split (§9.2): a random `fraction` of blocks. Blocks are taken in groups of
    /// `group` consecutive blocks and exactly `round(group·fraction)` of each full group, chosen by
    /// a permutation keyed by `(seed, group index)`, go to validation.
    RandomBlocks { fraction: f64, seed: u64, group: u64 },
    /// MDLM's split: the last `count` documents form the validation stream.
    LastDocuments { count: u64 },
}

/// Whether block number `index` (0-based, in emission order) is a validation block.
pub fn is_heldout_block(fraction: f64, seed: u64, group: u64, index: u64) -> bool {
    let k = (group as f64 * fraction).round() as u64;
    let perm = Permutation::new(group, derive_seed(seed, index / group));
    perm.apply(index % group) < k
}

/// Cuts a document stream into blocks; leftover tokens are carried into the next document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPacker {
    pub block_len: u64,
    pub carry: Vec<u16>,
    pub blocks_emitted: u64,
}

impl BlockPacker {
    pub fn new(block_len: u64) -> Self {
        Self { block_len, carry: Vec::new(), blocks_emitted: 0 }
    }
    /// Appends a document (EOS added) and calls `emit(index, block)` for every completed block.
    pub fn push_document(
        &mut self,
        tokens: &[u32],
        mut emit: impl FnMut(u64, &[u16]) -> Result<()>,
    ) -> Result<()> {
        self.carry.extend(tokens.iter().map(|&t| t as u16));
        self.carry.push(GPT2_EOS as u16);
        let l = self.block_len as usize;
        let full = self.carry.len() / l;
        for b in 0..full {
            emit(self.blocks_emitted, &self.carry[b * l..(b + 1) * l])?;
            self.blocks_emitted += 1;
        }
        self.carry.drain(..full * l);
        Ok(())
    }
}

/// Progress of [`pack_documents`], saved after every shard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackState {
    pub shards_done: u64,
    pub documents: u64,
    pub train_tokens: u64,
    pub val_tokens: u64,
    pub train: BlockPacker,
    pub val: BlockPacker,
}

/// Where [`pack_documents`] writes, and how.
#[derive(Clone, Debug)]
pub struct PackConfig {
    pub train_path: PathBuf,
    pub val_path: PathBuf,
    pub block_len: u64,
    pub hold_out: HoldOut,
    /// Total number of documents (needed by [`HoldOut::LastDocuments`]).
    pub total_documents: Option<u64>,
    /// Stop after this many shards in this call (to bound a run; also used by tests to
    /// simulate a crash). `None` processes everything.
    pub max_shards: Option<u64>,
}

/// Summary of a finished packing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackSummary {
    pub documents: u64,
    pub train_blocks: u64,
    pub val_blocks: u64,
    /// Leftover tokens (train + validation carries) dropped at the very end.
    pub dropped: u64,
    /// False when `max_shards` stopped the run early (call again to resume).
    pub finished: bool,
}

fn state_path(cfg: &PackConfig) -> PathBuf {
    let mut name = cfg.train_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".pack-state.json");
    cfg.train_path.with_file_name(name)
}

/// Streams `num_shards` shards of documents (loaded one at a time by `load_shard`) through GPT-2
/// BPE and block packing into two token files. Memory is bounded by one shard. After each shard
/// the partial outputs are fsynced and the state saved, so a killed run resumes where it stopped.
pub fn pack_documents(
    num_shards: u64,
    mut load_shard: impl FnMut(u64) -> Result<Vec<String>>,
    cfg: &PackConfig,
    mut on_shard: impl FnMut(u64),
) -> Result<PackSummary> {
    let state_file = state_path(cfg);
    let mut state: PackState = match std::fs::read(&state_file) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", state_file.display()))?
        }
        Err(_) => PackState {
            train: BlockPacker::new(cfg.block_len),
            val: BlockPacker::new(cfg.block_len),
            ..Default::default()
        },
    };
    ensure!(state.train.block_len == cfg.block_len, "{}: block length changed", state_file.display());
    if let HoldOut::LastDocuments { .. } = cfg.hold_out {
        ensure!(cfg.total_documents.is_some(), "holding out the last documents needs the document count");
    }
    let meta =
        TokenMeta { vocab: GPT2_VOCAB, item_shape: Some([cfg.block_len as u32, 0, 0]), source_sha256: None };
    let mut train = TokenWriter::resume_partial(&cfg.train_path, meta.clone(), state.train_tokens)?;
    let mut val = TokenWriter::resume_partial(&cfg.val_path, meta, state.val_tokens)?;
    let mut done_this_call = 0;
    while state.shards_done < num_shards {
        if cfg.max_shards.is_some_and(|m| done_this_call >= m) {
            return Ok(PackSummary {
                documents: state.documents,
                train_blocks: train.len() / cfg.block_len,
                val_blocks: val.len() / cfg.block_len,
                dropped: 0,
                finished: false,
            });
        }
        let docs = load_shard(state.shards_done)?;
        let encoded = gpt2_encode_batch(&docs);
        drop(docs);
        for toks in &encoded {
            let doc_index = state.documents;
            state.documents += 1;
            let to_val = match &cfg.hold_out {
                HoldOut::LastDocuments { count } => doc_index + count >= cfg.total_documents.unwrap_or(0),
                HoldOut::RandomBlocks { .. } => false,
            };
            if to_val {
                state.val.push_document(toks, |_, block| val.push(block))?;
            } else {
                match &cfg.hold_out {
                    HoldOut::RandomBlocks { fraction, seed, group } => {
                        state.train.push_document(toks, |i, block| {
                            if is_heldout_block(*fraction, *seed, *group, i) {
                                val.push(block)
                            } else {
                                train.push(block)
                            }
                        })?;
                    }
                    HoldOut::LastDocuments { .. } => {
                        state.train.push_document(toks, |_, block| train.push(block))?
                    }
                }
            }
        }
        train.commit()?;
        val.commit()?;
        state.shards_done += 1;
        state.train_tokens = train.len();
        state.val_tokens = val.len();
        write_atomic(&state_file, &serde_json::to_vec(&state)?)?;
        done_this_call += 1;
        on_shard(state.shards_done);
    }
    let summary = PackSummary {
        documents: state.documents,
        train_blocks: train.len() / cfg.block_len,
        val_blocks: val.len() / cfg.block_len,
        dropped: (state.train.carry.len() + state.val.carry.len()) as u64,
        finished: true,
    };
    train.finish()?;
    val.finish()?;
    let _ = std::fs::remove_file(&state_file);
    Ok(summary)
}

/// Removes the partial outputs and state of an interrupted [`pack_documents`] run.
pub fn clear_partial(train_path: &Path, val_path: &Path) {
    for p in [TokenWriter::partial_path(train_path), TokenWriter::partial_path(val_path)] {
        let _ = std::fs::remove_file(p);
    }
    let mut name = train_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".pack-state.json");
    let _ = std::fs::remove_file(train_path.with_file_name(name));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpe::gpt2_encode;
    use crate::tokenfile::TokenFile;

    #[test]
    fn eos_after_every_row_including_empty_ones() {
        let rows = ["Hello world", "", " = Title = "];
        let toks = encode_rows_with_eos(&rows, Detokenizer::Identity);
        let mut want: Vec<u16> = vec![15496, 995, 50256, 50256];
        want.extend(gpt2_encode(" = Title = ").iter().map(|&t| t as u16));
        want.push(50256);
        assert_eq!(toks, want);
    }

    #[test]
    fn zero_shot_blocks_drop_the_remainder() {
        let rows: Vec<String> = (0..50).map(|i| format!("row number {i} of the split")).collect();
        let all = encode_rows_with_eos(&rows, Detokenizer::Wikitext);
        let packed = zero_shot_pack(&rows, Detokenizer::Wikitext, 64);
        assert_eq!(packed.total_tokens, all.len() as u64);
        assert_eq!(packed.blocks, all.len() as u64 / 64);
        assert_eq!(packed.dropped, all.len() as u64 % 64);
        assert_eq!(packed.tokens[..], all[..(packed.blocks * 64) as usize]);
    }

    #[test]
    fn heldout_blocks_are_exactly_the_fraction_per_group_and_seeded() {
        let picks = |seed| (0..3000).filter(|&i| is_heldout_block(0.02, seed, 1000, i)).collect::<Vec<_>>();
        let a = picks(0);
        assert_eq!(a.len(), 60);
        for g in 0..3 {
            assert_eq!(a.iter().filter(|&&i| i / 1000 == g).count(), 20);
        }
        assert_eq!(a, picks(0));
        assert_ne!(a, picks(1));
    }

    fn shards() -> Vec<Vec<String>> {
        (0..5)
            .map(|s| {
                (0..7).map(|d| format!("Shard {s} document {d}. {}", "word ".repeat(3 * d + s))).collect()
            })
            .collect()
    }

    #[test]
    fn packing_concatenates_documents_with_eos_and_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let data = shards();
        let cfg = |name: &str, max| PackConfig {
            train_path: dir.path().join(format!("{name}-train.tok")),
            val_path: dir.path().join(format!("{name}-val.tok")),
            block_len: 16,
            hold_out: HoldOut::RandomBlocks { fraction: 0.25, seed: 3, group: 8 },
            total_documents: None,
            max_shards: max,
        };
        let one = cfg("one", None);
        let summary = pack_documents(5, |i| Ok(data[i as usize].clone()), &one, |_| {}).unwrap();
        assert!(summary.finished);

        // The stream is every document followed by EOS, cut into 16-token blocks.
        let mut stream: Vec<u16> = Vec::new();
        for doc in data.iter().flatten() {
            stream.extend(gpt2_encode(doc).iter().map(|&t| t as u16));
            stream.push(50256);
        }
        let blocks: Vec<&[u16]> = stream.chunks_exact(16).collect();
        let train = TokenFile::open(&one.train_path).unwrap();
        let val = TokenFile::open(&one.val_path).unwrap();
        assert_eq!(train.item_shape(), Some([16, 0, 0]));
        assert_eq!(summary.train_blocks + summary.val_blocks, blocks.len() as u64);
        assert_eq!(summary.dropped, stream.len() as u64 % 16);
        let (mut t, mut v) = (0u64, 0u64);
        for (i, block) in blocks.iter().enumerate() {
            let file = if is_heldout_block(0.25, 3, 8, i as u64) { (&val, &mut v) } else { (&train, &mut t) };
            assert_eq!(file.0.to_vec_u16(*file.1 * 16, 16), *block, "block {i}");
            *file.1 += 1;
        }

        // Two shards, "crash", then resume: byte-identical outputs.
        let two = cfg("two", Some(2));
        assert!(!pack_documents(5, |i| Ok(data[i as usize].clone()), &two, |_| {}).unwrap().finished);
        let resumed = PackConfig { max_shards: None, ..two.clone() };
        let mut loaded = Vec::new();
        pack_documents(
            5,
            |i| {
                loaded.push(i);
                Ok(data[i as usize].clone())
            },
            &resumed,
            |_| {},
        )
        .unwrap();
        assert_eq!(loaded, [2, 3, 4], "resume skips committed shards");
        assert_eq!(std::fs::read(&one.train_path).unwrap(), std::fs::read(&two.train_path).unwrap());
        assert_eq!(std::fs::read(&one.val_path).unwrap(), std::fs::read(&two.val_path).unwrap());
    }

    #[test]
    fn mdlm_split_holds_out_the_last_documents() {
        let dir = tempfile::tempdir().unwrap();
        let data = shards();
        let cfg = PackConfig {
            train_path: dir.path().join("t.tok"),
            val_path: dir.path().join("v.tok"),
            block_len: 8,
            hold_out: HoldOut::LastDocuments { count: 10 },
            total_documents: Some(35),
            max_shards: None,
        };
        pack_documents(5, |i| Ok(data[i as usize].clone()), &cfg, |_| {}).unwrap();
        let docs: Vec<&String> = data.iter().flatten().collect();
        let stream = |ds: &[&String]| {
            let mut s: Vec<u16> = Vec::new();
            for d in ds {
                s.extend(gpt2_encode(d).iter().map(|&t| t as u16));
                s.push(50256);
            }
            s.truncate(s.len() / 8 * 8);
            s
        };
        let val = TokenFile::open(&cfg.val_path).unwrap();
        assert_eq!(val.to_vec_u16(0, val.len()), stream(&docs[25..]));
        let train = TokenFile::open(&cfg.train_path).unwrap();
        assert_eq!(train.to_vec_u16(0, train.len()), stream(&docs[..25]));
    }
}
