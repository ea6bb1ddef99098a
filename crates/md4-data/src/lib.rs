//! Datasets for md4-rs (Shi et al. 2024, §9 data pipelines, §11 zero-shot protocol): manifests,
//! a verified download cache, memory-mapped token files, stateless resumable batching, and the
//! preprocessing that turns registry packages and Hugging Face Hub files into token streams.
//!
//! Layout of the crate:
//! * [`manifest`]: `datasets/<name>.yaml`, the single source of truth for every data set.
//! * [`cache`]: where prepared data lives ([`data_root`]), hashing, atomic writes, progress bars.
//! * [`tokenfile`]: the on-disk token format ([`TokenFile`]), checked for truncation and tampering.
//! * [`batch`]: batches as pure functions of `(seed, step)` ([`RandomCrops`], [`Chunks`], [`Blocks`]).
//! * [`text8`], [`wikifil`], [`wikitext`], [`bpe`], [`detok`], [`pack`]: text preprocessing (§9.1, §9.2, §11).
//! * [`idx`], [`image`]: IDX and PNG/JPEG decoding into sub-pixel tokens (§9.4).
//! * [`archive`], [`fetch`], [`hub`]: reading wheels, npm tarballs, Debian packages and Hub files.
//! * [`subvocab`]: compact GPT-2 sub-vocabularies for CPU-sized language models ([`SubVocab`]).
//! * [`prepare`]: `md4 data NAME` — fetch, verify and preprocess once ([`prepare()`]).

pub mod archive;
pub mod batch;
pub mod bpe;
pub mod cache;
pub mod detok;
pub mod fetch;
pub mod hub;
pub mod idx;
pub mod image;
pub mod manifest;
pub mod pack;
pub mod prepare;
pub mod subvocab;
pub mod text8;
pub mod tokenfile;
pub mod wikifil;
pub mod wikitext;

pub use batch::{Blocks, Chunks, RandomCrops, SplitMix64};
pub use bpe::{GPT2_EOS, GPT2_VOCAB, gpt2_decode, gpt2_encode};
pub use cache::{data_root, datasets_dir, local_cache_dir};
pub use detok::Detokenizer;
pub use manifest::{Manifest, list_datasets};
pub use prepare::{
    PrepareOptions, Prepared, SplitInfo, TextEncoding, load_text_path, load_tokens_path, prepare,
};
pub use subvocab::{Gpt2Codec, SubVocab, SubVocabSpec};
pub use text8::{TEXT8_VOCAB, text8_decode, text8_encode};
pub use tokenfile::{Dtype, TokenFile, TokenMeta, TokenWriter};
