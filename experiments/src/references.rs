//! The reference yardsticks printed under every likelihood table (spec §10): the unigram model
//! and gzip, bzip2 and xz on the scored tokens as bytes, alone and given the training split —
//! what a model that uses no context, or a general-purpose compressor, reaches on the same data.

use crate::suite::{EvalSpec, open_split};
use anyhow::{Context, Result, bail};
use md4_train::RunConfig;
use tch::{Kind, Tensor};

/// How a run's tokens are written as bytes for the compressor yardsticks: text as its UTF-8
/// (text8: a–z and space; GPT-2 and its sub-vocabularies: the decoded bytes), images as their
/// sub-pixel bytes.
pub fn token_bytes(cfg: &RunConfig) -> Result<Box<dyn Fn(&[i64]) -> Result<Vec<u8>>>> {
    let size = cfg.model.vocab().size();
    if cfg.data.sub_vocab().is_some() || size == md4_core::Vocab::gpt2().size() {
        let codec = md4_data::Gpt2Codec::new(cfg.data.sub_vocab())?;
        return Ok(Box::new(move |t: &[i64]| codec.decode_bytes(t)));
    }
    let to_u8 = |t: &[i64], top: i64| -> Result<Vec<u8>> {
        t.iter()
            .map(|&x| {
                u8::try_from(x).ok().filter(|&b| (b as i64) < top).context("token outside the byte range")
            })
            .collect()
    };
    if size == md4_core::Vocab::text8().size() {
        return Ok(Box::new(move |t: &[i64]| Ok(md4_data::text8_decode(&to_u8(t, 27)?).into_bytes())));
    }
    if size == md4_core::Vocab::pixels().size() {
        return Ok(Box::new(move |t: &[i64]| to_u8(t, 256)));
    }
    bail!("no byte form for a {size}-token vocabulary (text8, GPT-2 and sub-pixel data have one)")
}

/// The reference yardsticks of scored sequences `seqs` (`[S, N]`, from `spec`): the unigram
/// model and gzip, bzip2 and xz on the same tokens as bytes, alone and given the training split
/// of the suite's data (`cfg`, a run config of the suite; the compressors see only its last
/// `train_cap` bytes when given, see [`crate::Scale::reference_train_cap`]).
pub fn references(
    cfg: &RunConfig,
    spec: &EvalSpec,
    seqs: &Tensor,
    train_cap: Option<usize>,
) -> Result<md4_eval::References> {
    let md4_train::DataConfig::Dataset { name, train_split, .. } = &cfg.data else {
        bail!("the reference yardsticks need a registry data set");
    };
    let vocab = cfg.data.sub_vocab();
    let file = open_split(name, train_split, vocab)?;
    let mut train = vec![0i64; file.len() as usize];
    file.read_i64(0, &mut train);
    let test: Vec<i64> = Vec::try_from(&seqs.flatten(0, -1).to_kind(Kind::Int64))?;
    let bytes = token_bytes(cfg)?;
    let (mut train_bytes, test_bytes) = (bytes(&train)?, bytes(&test)?);
    let whole = train_bytes.len();
    if let Some(cap) = train_cap.filter(|&c| c < whole) {
        train_bytes.drain(..whole - cap);
    }
    eprintln!(
        "   reference yardsticks: unigram, gzip, bzip2, xz on {} bytes (given {} training bytes)",
        test_bytes.len(),
        train_bytes.len()
    );
    let mut items = vec![md4_eval::unigram_yardstick(&train, &test, cfg.model.vocab().size() as usize)?];
    items.extend(md4_eval::compressor_yardsticks(Some(&train_bytes), &test_bytes, test.len())?);
    let (s, n) = seqs.size2()?;
    Ok(md4_eval::References {
        scored: format!(
            "the {s} scored {n}-token sequences of {} {} ({} tokens, {} bytes)",
            spec.dataset,
            spec.split,
            test.len(),
            test_bytes.len()
        ),
        train: if train_bytes.len() < whole {
            format!(
                "the last {} of the {whole} bytes of {name} {train_split} for the compressors (smoke scale), all {} tokens for the unigram",
                train_bytes.len(),
                train.len()
            )
        } else {
            format!("{name} {train_split} ({} tokens, {whole} bytes)", train.len())
        },
        items,
    })
}
