//! A compact sub-vocabulary of GPT-2 BPE for models too small to afford 50,257 output classes.
//!
//! On a 2-core CPU the 50,257-wide output layer and embedding table are most of a small language
//! model's step time and parameters, and rare tokens' rows are almost never trained. A
//! sub-vocabulary keeps GPT-2's tokenisation but only `size` of its tokens: the 256 single-byte
//! tokens, `<|endoftext|>`, and the `size − 257` tokens that occur most often in one split of a
//! prepared data set (ties broken by the smaller GPT-2 id). Every other GPT-2 token is re-spelt
//! by greedy longest-prefix matching of its bytes over the kept tokens, so the mapping is
//! lossless: decoding gives back the exact bytes. Compact ids follow GPT-2 order (the single-byte
//! tokens come first in GPT-2, `<|endoftext|>` is last).
//!
//! Likelihoods under a sub-vocabulary are per *compact* token; they are comparable between
//! models that share the sub-vocabulary, not with GPT-2-token perplexities.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use anyhow::{Context, Result, anyhow, ensure};
use serde::{Deserialize, Serialize};

use crate::bpe::{GPT2_EOS, GPT2_VOCAB};
use crate::prepare::{PrepareOptions, Prepared, prepare};
use crate::tokenfile::{TokenFile, TokenMeta};

/// Which sub-vocabulary: the `size` tokens kept after counting GPT-2 tokens in `from`'s `split`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubVocabSpec {
    /// Vocabulary size V, including the 256 byte tokens and `<|endoftext|>` (258 ≤ V < 50257).
    pub size: u32,
    /// The registry data set whose GPT-2 tokens are counted (`datasets/<from>.yaml`).
    pub from: String,
    /// The split counted (default `train`; never a split used for evaluation).
    #[serde(default = "default_split")]
    pub split: String,
}

fn default_split() -> String {
    "train".to_string()
}

impl SubVocabSpec {
    /// A short human-readable description for logs and cards.
    pub fn describe(&self) -> String {
        format!(
            "GPT-2 sub-vocabulary of {} tokens (256 bytes, <|endoftext|> and the most frequent GPT-2 tokens of {} {}; other tokens re-spelt by greedy longest match)",
            self.size, self.from, self.split
        )
    }
}

/// The GPT-2 bytes of every token id (index = id; `<|endoftext|>` spelt as its literal text).
static GPT2_BYTES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let bpe = tiktoken_rs::r50k_base_singleton();
    (0..GPT2_VOCAB).map(|id| bpe.decode_bytes(&[id]).unwrap_or_default()).collect()
});

/// A sub-vocabulary: the kept GPT-2 ids and how every GPT-2 id is spelt with them.
#[derive(Debug)]
pub struct SubVocab {
    spec: Option<SubVocabSpec>,
    /// compact id → GPT-2 id (ascending).
    kept: Vec<u32>,
    /// GPT-2 id → its spelling in compact ids (one id for kept tokens).
    spelling: Vec<Vec<u16>>,
}

impl SubVocab {
    /// Keeps the byte tokens, `<|endoftext|>` and the `size − 257` GPT-2 tokens with the largest
    /// `counts` (indexed by GPT-2 id; ties: smaller id first).
    pub fn from_counts(counts: &[u64], size: u32) -> Result<Self> {
        ensure!(
            (258..GPT2_VOCAB).contains(&size),
            "sub-vocabulary size must lie in [258, {GPT2_VOCAB}), got {size}"
        );
        ensure!(counts.len() == GPT2_VOCAB as usize, "counts must cover the {GPT2_VOCAB} GPT-2 ids");
        let bytes = &*GPT2_BYTES;
        let mut keep = vec![false; GPT2_VOCAB as usize];
        for (id, b) in bytes.iter().enumerate() {
            keep[id] = b.len() == 1;
        }
        keep[GPT2_EOS as usize] = true;
        let base = keep.iter().filter(|&&k| k).count();
        ensure!(base == 257, "GPT-2 should have 256 single-byte tokens, found {}", base - 1);
        let mut rest: Vec<u32> = (0..GPT2_VOCAB).filter(|&id| !keep[id as usize]).collect();
        rest.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
        for &id in &rest[..(size as usize - base)] {
            keep[id as usize] = true;
        }
        let kept: Vec<u32> = (0..GPT2_VOCAB).filter(|&id| keep[id as usize]).collect();
        let index: HashMap<&[u8], u16> =
            kept.iter().enumerate().map(|(c, &id)| (bytes[id as usize].as_slice(), c as u16)).collect();
        let longest = kept.iter().map(|&id| bytes[id as usize].len()).max().unwrap_or(1);
        let spelling = (0..GPT2_VOCAB as usize)
            .map(|id| {
                if id == GPT2_EOS as usize {
                    return vec![(size - 1) as u16];
                }
                let b = &bytes[id];
                let mut out = Vec::new();
                let mut i = 0;
                while i < b.len() {
                    let (len, c) = (1..=longest.min(b.len() - i))
                        .rev()
                        .find_map(|l| index.get(&b[i..i + l]).map(|&c| (l, c)))
                        .expect("every single byte is kept");
                    out.push(c);
                    i += len;
                }
                out
            })
            .collect();
        Ok(Self { spec: None, kept, spelling })
    }

    /// Counts GPT-2 tokens in the spec's prepared split and keeps the most frequent. Built once
    /// per process and spec.
    pub fn load(spec: &SubVocabSpec) -> Result<Arc<Self>> {
        static CACHE: LazyLock<Mutex<HashMap<SubVocabSpec, Arc<SubVocab>>>> =
            LazyLock::new(|| Mutex::new(HashMap::new()));
        if let Some(v) = CACHE.lock().unwrap().get(spec) {
            return Ok(v.clone());
        }
        let prepared = prepare(&spec.from, &PrepareOptions::default())
            .with_context(|| format!("preparing {} to count its tokens for the sub-vocabulary", spec.from))?;
        let file = prepared.open(&spec.split)?;
        ensure!(
            file.vocab() == GPT2_VOCAB,
            "{} {} is not GPT-2 tokens (vocabulary {}), so it cannot define a GPT-2 sub-vocabulary",
            spec.from,
            spec.split,
            file.vocab()
        );
        let mut counts = vec![0u64; GPT2_VOCAB as usize];
        for i in 0..file.len() {
            counts[file.get(i) as usize] += 1;
        }
        let mut v = Self::from_counts(&counts, spec.size)?;
        v.spec = Some(spec.clone());
        let v = Arc::new(v);
        CACHE.lock().unwrap().insert(spec.clone(), v.clone());
        Ok(v)
    }

    /// Vocabulary size V.
    pub fn size(&self) -> u32 {
        self.kept.len() as u32
    }
    /// The compact id of `<|endoftext|>` (V − 1).
    pub fn eos(&self) -> u32 {
        self.size() - 1
    }
    /// The GPT-2 ids of the kept tokens, by compact id.
    pub fn kept(&self) -> &[u32] {
        &self.kept
    }
    /// Re-spells GPT-2 tokens in compact ids.
    pub fn from_gpt2(&self, gpt2: impl IntoIterator<Item = u32>) -> Vec<u16> {
        gpt2.into_iter().flat_map(|id| self.spelling[id as usize].iter().copied()).collect()
    }
    /// GPT-2 ids of compact tokens (ids ≥ V, such as an unfilled mask, are an error).
    pub fn to_gpt2(&self, compact: &[i64]) -> Result<Vec<u32>> {
        compact
            .iter()
            .map(|&c| {
                self.kept
                    .get(usize::try_from(c).unwrap_or(usize::MAX))
                    .copied()
                    .ok_or_else(|| anyhow!("token {c} is outside the {}-token sub-vocabulary", self.size()))
            })
            .collect()
    }
    /// Encodes text: GPT-2 BPE, then re-spelt.
    pub fn encode(&self, text: &str) -> Vec<u16> {
        self.from_gpt2(crate::bpe::gpt2_encode(text))
    }
    /// Decodes compact tokens to text.
    pub fn decode(&self, compact: &[i64]) -> Result<String> {
        crate::bpe::gpt2_decode(&self.to_gpt2(compact)?)
    }

    /// The split of a prepared GPT-2 data set re-spelt in this sub-vocabulary, as a plain token
    /// stream cached next to the original (`<split>.sub<V>-<from>-<split>.tok`; rebuilt when the
    /// source split or the kept set changes).
    pub fn open_split(&self, prepared: &Prepared, split: &str) -> Result<TokenFile> {
        let source = prepared.open(split)?;
        ensure!(
            source.vocab() == GPT2_VOCAB,
            "{} {split} has vocabulary {}, not GPT-2's; a GPT-2 sub-vocabulary cannot re-spell it",
            prepared.name,
            source.vocab()
        );
        let fingerprint = self.fingerprint(&source.content_sha256());
        let spec = self.spec.as_ref().ok_or_else(|| anyhow!("sub-vocabulary built without a spec"))?;
        let path: PathBuf =
            prepared.dir.join(format!("{split}.sub{}-{}-{}.tok", self.size(), spec.from, spec.split));
        if let Ok(f) = TokenFile::open(&path)
            && f.source_sha256().as_deref() == Some(fingerprint.as_str())
            && f.vocab() == self.size()
        {
            return Ok(f);
        }
        let tokens = self.from_gpt2((0..source.len()).map(|i| source.get(i) as u32));
        let mut src = [0u8; 32];
        hex::decode_to_slice(&fingerprint, &mut src).context("fingerprint")?;
        let meta = TokenMeta { vocab: self.size(), item_shape: None, source_sha256: Some(src) };
        TokenFile::create_with(&path, &meta, &tokens)
            .with_context(|| format!("writing the re-spelt split {}", path.display()))?;
        TokenFile::open(&path)
    }

    /// sha256 over the source split's hash and the kept ids.
    fn fingerprint(&self, source_sha256: &str) -> String {
        let mut bytes = source_sha256.as_bytes().to_vec();
        for id in &self.kept {
            bytes.extend(id.to_le_bytes());
        }
        crate::cache::sha256_hex(&bytes)
    }
}

/// Text ↔ token ids for a GPT-2-tokenised model: the full vocabulary or a sub-vocabulary.
#[derive(Clone, Debug)]
pub enum Gpt2Codec {
    Full,
    Sub(Arc<SubVocab>),
}

impl Gpt2Codec {
    /// The codec of a run trained in `vocab` (none: full GPT-2).
    pub fn new(vocab: Option<&SubVocabSpec>) -> Result<Self> {
        Ok(match vocab {
            Some(v) => Self::Sub(SubVocab::load(v)?),
            None => Self::Full,
        })
    }
    /// Vocabulary size V.
    pub fn size(&self) -> u32 {
        match self {
            Self::Full => GPT2_VOCAB,
            Self::Sub(v) => v.size(),
        }
    }
    pub fn encode(&self, text: &str) -> Vec<i64> {
        match self {
            Self::Full => crate::bpe::gpt2_encode(text).into_iter().map(i64::from).collect(),
            Self::Sub(v) => v.encode(text).into_iter().map(i64::from).collect(),
        }
    }
    /// The exact bytes of the tokens (no replacement of split multi-byte characters).
    pub fn decode_bytes(&self, ids: &[i64]) -> Result<Vec<u8>> {
        let gpt2 = match self {
            Self::Full => ids
                .iter()
                .map(|&t| {
                    u32::try_from(t)
                        .ok()
                        .filter(|&t| t < GPT2_VOCAB)
                        .ok_or_else(|| anyhow!("token {t} is not a GPT-2 id"))
                })
                .collect::<Result<Vec<_>>>()?,
            Self::Sub(v) => v.to_gpt2(ids)?,
        };
        tiktoken_rs::r50k_base_singleton().decode_bytes(&gpt2).map_err(|e| anyhow!("{e:?}"))
    }
    /// Text of the tokens (split multi-byte characters become U+FFFD, as `gpt2_decode`).
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts from a small text: its own GPT-2 tokens are the frequent ones.
    fn vocab_of(text: &str, size: u32) -> SubVocab {
        let mut counts = vec![0u64; GPT2_VOCAB as usize];
        for id in crate::bpe::gpt2_encode(text) {
            counts[id as usize] += 1;
        }
        SubVocab::from_counts(&counts, size).unwrap()
    }

    #[test]
    fn keeps_bytes_eos_and_the_most_frequent_tokens() {
        let text = "the cat sat on the mat. the cat sat. the end";
        let v = vocab_of(text, 300);
        assert_eq!(v.size(), 300);
        assert_eq!(*v.kept().last().unwrap(), GPT2_EOS);
        assert_eq!(v.eos(), 299);
        assert!(v.kept().windows(2).all(|w| w[0] < w[1]), "compact ids follow GPT-2 order");
        // Every GPT-2 token of the text (< 43 distinct) is kept, so it is spelt as itself.
        let gpt2 = crate::bpe::gpt2_encode(text);
        let compact = v.from_gpt2(gpt2.iter().copied());
        assert_eq!(compact.len(), gpt2.len());
        assert_eq!(v.to_gpt2(&compact.iter().map(|&c| c as i64).collect::<Vec<_>>()).unwrap(), gpt2);
    }

    #[test]
    fn re_spelling_is_lossless_and_greedy() {
        let v = vocab_of("the the the cat cat dog", 260);
        for text in ["Ahab's whale — naïve café, 1851!\n\n\tthe cat", "<|endoftext|>the dog", ""] {
            let compact: Vec<i64> = v.encode(text).into_iter().map(i64::from).collect();
            assert!(compact.iter().all(|&c| (c as u32) < v.size()));
            assert_eq!(v.decode(&compact).unwrap(), text);
        }
        // " cat" is kept; " category" is not and starts with the longest kept prefix.
        let cat = crate::bpe::gpt2_encode(" cat")[0];
        assert!(v.kept().contains(&cat));
        let category = crate::bpe::gpt2_encode(" category");
        assert_eq!(category.len(), 1);
        let spelt = v.from_gpt2(category.iter().copied());
        assert_eq!(v.kept()[spelt[0] as usize], cat);
        assert!(spelt.len() > 1);
        // An id outside the sub-vocabulary (the mask) is an error, not garbage.
        assert!(v.decode(&[260]).is_err());
        let codec = Gpt2Codec::Sub(Arc::new(v));
        assert_eq!(codec.decode(&codec.encode("Call me Ishmael.")).unwrap(), "Call me Ishmael.");
        assert_eq!(Gpt2Codec::Full.decode(&Gpt2Codec::Full.encode("Call me")).unwrap(), "Call me");
        assert!(Gpt2Codec::Full.decode(&[50257]).is_err());
    }

    #[test]
    fn rejects_bad_sizes() {
        let counts = vec![0u64; GPT2_VOCAB as usize];
        assert!(SubVocab::from_counts(&counts, 257).is_err());
        assert!(SubVocab::from_counts(&counts, GPT2_VOCAB).is_err());
        assert_eq!(SubVocab::from_counts(&counts, 258).unwrap().size(), 258);
    }
}
