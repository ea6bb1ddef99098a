//! Local files (`--data text:PATH`, `--data tokens:PATH`): tokenised once and cached by content
//! hash.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::source_hash;
use crate::bpe::{GPT2_EOS, GPT2_VOCAB};
use crate::cache::{local_cache_dir, sha256_hex};
use crate::text8::{TEXT8_VOCAB, text8_encode};
use crate::tokenfile::{TokenFile, TokenMeta};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextEncoding {
    /// [`text8_encode`]: a–z and space, vocabulary 27.
    Text8,
    /// GPT-2 BPE, EOS appended at the end, vocabulary 50257.
    Gpt2,
}

fn cached_token_file(
    cache: &Path,
    kind: &str,
    source: &[u8],
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<TokenFile> {
    let path = cache.join(format!("{kind}-{}.tok", &sha256_hex(source)[..16]));
    if let Ok(f) = TokenFile::open(&path) {
        return Ok(f);
    }
    build(&path)?;
    TokenFile::open(&path)
}

/// Tokenises a local text file (cached in `data_root()/local/` by content hash).
pub fn load_text_path(path: &Path, encoding: TextEncoding) -> Result<TokenFile> {
    load_text_path_in(path, encoding, &local_cache_dir())
}

/// [`load_text_path`] with an explicit cache folder.
pub fn load_text_path_in(path: &Path, encoding: TextEncoding, cache: &Path) -> Result<TokenFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let kind = match encoding {
        TextEncoding::Text8 => "text8",
        TextEncoding::Gpt2 => "gpt2",
    };
    cached_token_file(cache, kind, &bytes, |out| {
        let meta = TokenMeta { source_sha256: source_hash(&bytes), ..TokenMeta::stream(0) };
        match encoding {
            TextEncoding::Text8 => {
                TokenFile::create_u8(out, &TokenMeta { vocab: TEXT8_VOCAB, ..meta }, &text8_encode(&text))
            }
            TextEncoding::Gpt2 => {
                let mut toks: Vec<u16> =
                    crate::bpe::gpt2_encode(&text).into_iter().map(|t| t as u16).collect();
                toks.push(GPT2_EOS as u16);
                TokenFile::create_with(out, &TokenMeta { vocab: GPT2_VOCAB, ..meta }, &toks)
            }
        }
    })
}

/// Loads `tokens:PATH --vocab V`: an md4 token file (its vocabulary must be V), or a raw file of
/// little-endian u16 tokens (converted once into `data_root()/local/`).
pub fn load_tokens_path(path: &Path, vocab: u32) -> Result<TokenFile> {
    load_tokens_path_in(path, vocab, &local_cache_dir())
}

/// [`load_tokens_path`] with an explicit cache folder.
pub fn load_tokens_path_in(path: &Path, vocab: u32, cache: &Path) -> Result<TokenFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(b"MD4TOKEN") {
        let f = TokenFile::open(path)?;
        ensure!(
            f.vocab() == vocab,
            "{}: vocabulary {} in the file, {vocab} requested",
            path.display(),
            f.vocab()
        );
        return Ok(f);
    }
    if bytes.len() % 2 != 0 {
        bail!("{}: {} bytes is not a whole number of u16 tokens", path.display(), bytes.len());
    }
    let toks: Vec<u16> = bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    if let Some((i, t)) = toks.iter().enumerate().find(|(_, t)| **t as u32 >= vocab) {
        bail!("{}: token {t} at position {i} is not below the vocabulary size {vocab}", path.display());
    }
    cached_token_file(cache, &format!("raw{vocab}"), &bytes, |out| {
        TokenFile::create_with(
            out,
            &TokenMeta { source_sha256: source_hash(&bytes), ..TokenMeta::stream(vocab) },
            &toks,
        )
    })
}
