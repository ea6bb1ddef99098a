//! Memory-mapped token caches (spec §9: token streams for text, sub-pixel rows for images).
//!
//! Format (little endian), a 128-byte header followed by the payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `MD4TOKEN` |
//! | 8 | 4 | format version (1) |
//! | 12 | 1 | dtype: 1 = u8, 2 = u16 |
//! | 16 | 4 | vocabulary size V (every token is `< V`) |
//! | 20 | 12 | item shape `[u32; 3]` (`[H, W, C]` for images, `[L, 0, 0]` for blocks, zeros for a stream) |
//! | 32 | 8 | token count |
//! | 40 | 32 | sha256 of the payload |
//! | 72 | 32 | sha256 of the source the tokens came from (zeros if none) |
//! | 104 | 24 | first 24 bytes of the sha256 of bytes 0..104 (header checksum) |
//!
//! Files are written to a temporary sibling, fsynced and renamed, so a reader sees either the old
//! file or the complete new one. [`TokenFile::open`] checks the header checksum, the length and the
//! payload hash and names the file in every error.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use memmap2::Mmap;
use sha2::{Digest, Sha256};

use crate::cache::{rename_synced, temp_path};

const MAGIC: &[u8; 8] = b"MD4TOKEN";
const VERSION: u32 = 1;
/// Size of the header in bytes; the payload starts here.
pub const HEADER_LEN: usize = 128;
const CHECKED_LEN: usize = 104;

/// Storage type of one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    U8,
    U16,
}

impl Dtype {
    /// The narrowest type that holds every id of a vocabulary of `vocab` tokens.
    pub fn for_vocab(vocab: u32) -> Result<Self> {
        match vocab {
            0 => bail!("a token file needs a vocabulary of at least 1 token"),
            1..=256 => Ok(Dtype::U8),
            257..=65536 => Ok(Dtype::U16),
            _ => bail!("vocabulary of {vocab} tokens does not fit in u16"),
        }
    }
    /// Bytes per token.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 => 2,
        }
    }
    fn code(self) -> u8 {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 => 2,
        }
    }
    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Dtype::U8),
            2 => Some(Dtype::U16),
            _ => None,
        }
    }
}

/// Metadata stored in the header next to the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMeta {
    /// Vocabulary size V; every token must be `< V`.
    pub vocab: u32,
    /// `[H, W, C]` for images, `[L, 0, 0]` for fixed-length blocks, `None` for a plain stream.
    pub item_shape: Option<[u32; 3]>,
    /// sha256 of whatever the tokens were derived from (provenance), if known.
    pub source_sha256: Option<[u8; 32]>,
}

impl TokenMeta {
    /// A plain token stream over `vocab` tokens.
    pub fn stream(vocab: u32) -> Self {
        Self { vocab, item_shape: None, source_sha256: None }
    }
    /// Tokens per item (product of the non-zero shape entries), or `None` for a stream.
    pub fn item_len(&self) -> Option<u64> {
        self.item_shape.map(|s| s.iter().filter(|&&d| d > 0).map(|&d| d as u64).product())
    }
}

#[derive(Clone, Debug)]
struct Header {
    dtype: Dtype,
    meta: TokenMeta,
    count: u64,
    content_sha256: [u8; 32],
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12] = self.dtype.code();
        h[16..20].copy_from_slice(&self.meta.vocab.to_le_bytes());
        let shape = self.meta.item_shape.unwrap_or([0; 3]);
        for (i, d) in shape.iter().enumerate() {
            h[20 + 4 * i..24 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
        h[32..40].copy_from_slice(&self.count.to_le_bytes());
        h[40..72].copy_from_slice(&self.content_sha256);
        h[72..104].copy_from_slice(&self.meta.source_sha256.unwrap_or([0; 32]));
        let check = Sha256::digest(&h[..CHECKED_LEN]);
        h[CHECKED_LEN..].copy_from_slice(&check[..HEADER_LEN - CHECKED_LEN]);
        h
    }

    fn decode(h: &[u8], path: &Path) -> Result<Self> {
        let name = path.display();
        ensure!(
            h.len() >= HEADER_LEN,
            "{name}: truncated token file ({} bytes, header needs {HEADER_LEN})",
            h.len()
        );
        ensure!(&h[0..8] == MAGIC, "{name}: not an md4 token file (bad magic {:?})", &h[0..8]);
        let version = u32::from_le_bytes(h[8..12].try_into().unwrap());
        ensure!(version == VERSION, "{name}: token file version {version}, this build reads {VERSION}");
        let check = Sha256::digest(&h[..CHECKED_LEN]);
        ensure!(
            h[CHECKED_LEN..HEADER_LEN] == check[..HEADER_LEN - CHECKED_LEN],
            "{name}: token file header checksum mismatch (header corrupted or edited)"
        );
        let dtype =
            Dtype::from_code(h[12]).with_context(|| format!("{name}: unknown dtype code {}", h[12]))?;
        let vocab = u32::from_le_bytes(h[16..20].try_into().unwrap());
        let mut shape = [0u32; 3];
        for (i, d) in shape.iter_mut().enumerate() {
            *d = u32::from_le_bytes(h[20 + 4 * i..24 + 4 * i].try_into().unwrap());
        }
        let count = u64::from_le_bytes(h[32..40].try_into().unwrap());
        let content_sha256: [u8; 32] = h[40..72].try_into().unwrap();
        let source: [u8; 32] = h[72..104].try_into().unwrap();
        let meta = TokenMeta {
            vocab,
            item_shape: (shape != [0; 3]).then_some(shape),
            source_sha256: (source != [0; 32]).then_some(source),
        };
        Ok(Header { dtype, meta, count, content_sha256 })
    }
}

/// A read-only, memory-mapped token file.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    map: Mmap,
    header: Header,
}

impl TokenFile {
    /// Writes `tokens` as a plain stream over `vocab` tokens (u8 when `vocab ≤ 256`, else u16).
    pub fn create(path: impl AsRef<Path>, vocab: u32, tokens: &[u16]) -> Result<()> {
        Self::create_with(path, &TokenMeta::stream(vocab), tokens)
    }

    /// Writes `tokens` with full metadata; fails if a token is `≥ vocab` or the count is not a
    /// whole number of items.
    pub fn create_with(path: impl AsRef<Path>, meta: &TokenMeta, tokens: &[u16]) -> Result<()> {
        let mut writer = TokenWriter::create(path, meta.clone())?;
        writer.push(tokens)?;
        writer.finish()
    }

    /// Writes byte tokens (images, text8) with full metadata.
    pub fn create_u8(path: impl AsRef<Path>, meta: &TokenMeta, tokens: &[u8]) -> Result<()> {
        let mut writer = TokenWriter::create(path, meta.clone())?;
        writer.push_u8(tokens)?;
        writer.finish()
    }

    /// Opens and fully verifies a token file: header checksum, length and payload sha256.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let file = Self::open_unverified(path)?;
        file.verify()?;
        Ok(file)
    }

    /// Opens a token file checking only the header and the file length (fast for huge files;
    /// call [`TokenFile::verify`] to hash the payload).
    pub fn open_unverified(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).with_context(|| format!("opening token file {}", path.display()))?;
        // SAFETY: the file is only read; token files are replaced by rename, never modified in place,
        // so the mapping's contents do not change under us while the program runs.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
        let header = Header::decode(&map, &path)?;
        let expected = HEADER_LEN as u64 + header.count * header.dtype.size() as u64;
        let actual = map.len() as u64;
        ensure!(
            actual == expected,
            "{}: token file {} (header says {} tokens = {expected} bytes, file has {actual} bytes)",
            path.display(),
            if actual < expected { "truncated" } else { "has trailing bytes" },
            header.count
        );
        if let Some(item) = header.meta.item_len() {
            ensure!(
                item > 0 && header.count.is_multiple_of(item),
                "{}: {} tokens is not a whole number of items of {item}",
                path.display(),
                header.count
            );
        }
        Ok(Self { path, map, header })
    }

    /// Hashes the payload and compares it with the header's sha256.
    pub fn verify(&self) -> Result<()> {
        let got: [u8; 32] = Sha256::digest(&self.map[HEADER_LEN..]).into();
        ensure!(
            got == self.header.content_sha256,
            "{}: token payload sha256 mismatch (file corrupted or tampered with): header {}, payload {}. \
             Nothing was overwritten; to re-prepare, delete this file (or its data set's folder) and run \
             the command again (`md4 data NAME` for a registry data set)",
            self.path.display(),
            hex::encode(self.header.content_sha256),
            hex::encode(got)
        );
        Ok(())
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Number of tokens.
    pub fn len(&self) -> u64 {
        self.header.count
    }
    /// Whether the file holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }
    /// Vocabulary size V.
    pub fn vocab(&self) -> u32 {
        self.header.meta.vocab
    }
    /// Storage type.
    pub fn dtype(&self) -> Dtype {
        self.header.dtype
    }
    /// Header metadata.
    pub fn meta(&self) -> &TokenMeta {
        &self.header.meta
    }
    /// Item shape (`[H, W, C]` for images), if the file holds items.
    pub fn item_shape(&self) -> Option<[u32; 3]> {
        self.header.meta.item_shape
    }
    /// Tokens per item, if the file holds items.
    pub fn item_len(&self) -> Option<u64> {
        self.header.meta.item_len()
    }
    /// Number of items (`len / item_len`), if the file holds items.
    pub fn num_items(&self) -> Option<u64> {
        self.item_len().map(|l| self.header.count / l)
    }
    /// Hex sha256 of the payload (as recorded in the header and checked by [`TokenFile::open`]).
    pub fn content_sha256(&self) -> String {
        hex::encode(self.header.content_sha256)
    }
    /// Hex sha256 of the source, if recorded.
    pub fn source_sha256(&self) -> Option<String> {
        self.header.meta.source_sha256.map(hex::encode)
    }

    /// Token `i` (panics when out of range).
    pub fn get(&self, i: u64) -> u16 {
        assert!(i < self.header.count, "token index {i} out of range for {} tokens", self.header.count);
        let i = i as usize;
        match self.header.dtype {
            Dtype::U8 => self.map[HEADER_LEN + i] as u16,
            Dtype::U16 => {
                let at = HEADER_LEN + 2 * i;
                u16::from_le_bytes([self.map[at], self.map[at + 1]])
            }
        }
    }

    /// Copies `out.len()` tokens starting at `start` into `out` as i64 (panics when out of range).
    pub fn read_i64(&self, start: u64, out: &mut [i64]) {
        let end = start + out.len() as u64;
        assert!(
            end <= self.header.count,
            "token range {start}..{end} out of range for {}",
            self.header.count
        );
        let start = start as usize;
        match self.header.dtype {
            Dtype::U8 => {
                let bytes = &self.map[HEADER_LEN + start..HEADER_LEN + start + out.len()];
                for (o, &b) in out.iter_mut().zip(bytes) {
                    *o = b as i64;
                }
            }
            Dtype::U16 => {
                let bytes = &self.map[HEADER_LEN + 2 * start..HEADER_LEN + 2 * (start + out.len())];
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = u16::from_le_bytes([b[0], b[1]]) as i64;
                }
            }
        }
    }

    /// Tokens `start..start + len` as u16.
    pub fn to_vec_u16(&self, start: u64, len: u64) -> Vec<u16> {
        (start..start + len).map(|i| self.get(i)).collect()
    }

    /// The raw payload bytes (u8 tokens, or little-endian u16 pairs).
    pub fn payload(&self) -> &[u8] {
        &self.map[HEADER_LEN..]
    }
}

/// Streaming writer: tokens are appended to a temporary file, and [`TokenWriter::finish`] writes
/// the header (count and payload hash), fsyncs and renames it into place. A writer can also be
/// resumed from a `.partial` file after a crash ([`TokenWriter::resume_partial`]).
#[derive(Debug)]
pub struct TokenWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    dtype: Dtype,
    meta: TokenMeta,
    count: u64,
}

impl TokenWriter {
    /// Starts a new file at `path` (written to a temporary sibling until [`TokenWriter::finish`]).
    pub fn create(path: impl AsRef<Path>, meta: TokenMeta) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let tmp = temp_path(&path);
        Self::start(path, tmp, meta, 0)
    }

    /// The partial file a resumable writer for `path` appends to.
    pub fn partial_path(path: &Path) -> PathBuf {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".partial");
        path.with_file_name(name)
    }

    /// Reopens `<path>.partial`, keeps its first `committed` tokens (re-hashing them) and drops
    /// anything written after the last commit; with `committed == 0` it starts afresh.
    pub fn resume_partial(path: impl AsRef<Path>, meta: TokenMeta, committed: u64) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let partial = Self::partial_path(&path);
        Self::start(path, partial, meta, committed)
    }

    fn start(path: PathBuf, tmp: PathBuf, meta: TokenMeta, keep: u64) -> Result<Self> {
        let dtype = Dtype::for_vocab(meta.vocab)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut hasher = Sha256::new();
        let file = if keep == 0 {
            let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(&[0u8; HEADER_LEN]).with_context(|| format!("writing {}", tmp.display()))?;
            f
        } else {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&tmp)
                .with_context(|| format!("reopening {}", tmp.display()))?;
            let keep_bytes = HEADER_LEN as u64 + keep * dtype.size() as u64;
            let have = f.metadata()?.len();
            ensure!(
                have >= keep_bytes,
                "{}: partial file has {have} bytes but {keep} tokens were committed",
                tmp.display()
            );
            f.set_len(keep_bytes)?;
            f.seek(SeekFrom::Start(HEADER_LEN as u64))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut left = keep_bytes - HEADER_LEN as u64;
            while left > 0 {
                let n = (left as usize).min(buf.len());
                f.read_exact(&mut buf[..n]).with_context(|| format!("re-reading {}", tmp.display()))?;
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
            f.seek(SeekFrom::End(0))?;
            f
        };
        Ok(Self { path, tmp, out: BufWriter::with_capacity(1 << 20, file), hasher, dtype, meta, count: keep })
    }

    /// Appends tokens; each must be `< vocab`.
    pub fn push(&mut self, tokens: &[u16]) -> Result<()> {
        let vocab = self.meta.vocab;
        if let Some(bad) = tokens.iter().find(|&&t| t as u32 >= vocab) {
            bail!("token {bad} out of range for a vocabulary of {vocab} ({})", self.path.display());
        }
        let mut bytes = Vec::with_capacity(tokens.len() * self.dtype.size());
        match self.dtype {
            Dtype::U8 => bytes.extend(tokens.iter().map(|&t| t as u8)),
            Dtype::U16 => tokens.iter().for_each(|t| bytes.extend_from_slice(&t.to_le_bytes())),
        }
        self.write_raw(&bytes, tokens.len() as u64)
    }

    /// Appends byte tokens; each must be `< vocab`.
    pub fn push_u8(&mut self, tokens: &[u8]) -> Result<()> {
        match self.dtype {
            Dtype::U8 => {
                let vocab = self.meta.vocab;
                if let Some(bad) = tokens.iter().find(|&&t| t as u32 >= vocab) {
                    bail!("token {bad} out of range for a vocabulary of {vocab} ({})", self.path.display());
                }
                self.write_raw(tokens, tokens.len() as u64)
            }
            Dtype::U16 => self.push(&tokens.iter().map(|&t| t as u16).collect::<Vec<_>>()),
        }
    }

    fn write_raw(&mut self, bytes: &[u8], n: u64) -> Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes).with_context(|| format!("writing {}", self.tmp.display()))?;
        self.count += n;
        Ok(())
    }

    /// Tokens written so far.
    pub fn len(&self) -> u64 {
        self.count
    }
    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Flushes and fsyncs the partial data so that `len()` tokens survive a crash.
    pub fn commit(&mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("flushing {}", self.tmp.display()))?;
        self.out.get_ref().sync_data().with_context(|| format!("syncing {}", self.tmp.display()))?;
        Ok(())
    }

    /// Writes the header, fsyncs and atomically renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        if let Some(item) = self.meta.item_len() {
            ensure!(
                item > 0 && self.count.is_multiple_of(item),
                "{}: {} tokens is not a whole number of items of {item}",
                self.path.display(),
                self.count
            );
        }
        let header = Header {
            dtype: self.dtype,
            meta: self.meta.clone(),
            count: self.count,
            content_sha256: self.hasher.clone().finalize().into(),
        };
        self.out.flush().with_context(|| format!("flushing {}", self.tmp.display()))?;
        let mut file = self.out.into_inner().map_err(|e| anyhow::anyhow!("flushing token file: {e}"))?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header.encode())
            .with_context(|| format!("writing header of {}", self.tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", self.tmp.display()))?;
        drop(file);
        rename_synced(&self.tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_u16_and_u8() {
        let dir = tempfile::tempdir().unwrap();
        let p16 = dir.path().join("a.tok");
        let toks: Vec<u16> = (0..1000u32).map(|i| ((i * 7919) % 50257) as u16).collect();
        TokenFile::create(&p16, 50257, &toks).unwrap();
        let f = TokenFile::open(&p16).unwrap();
        assert_eq!((f.len(), f.vocab(), f.dtype()), (1000, 50257, Dtype::U16));
        assert_eq!(f.to_vec_u16(0, 1000), toks);
        let mut out = vec![0i64; 5];
        f.read_i64(10, &mut out);
        assert_eq!(out, toks[10..15].iter().map(|&t| t as i64).collect::<Vec<_>>());
        assert_eq!(f.content_sha256(), crate::cache::sha256_hex(f.payload()));

        let p8 = dir.path().join("b.tok");
        let meta = TokenMeta { vocab: 256, item_shape: Some([2, 2, 3]), source_sha256: Some([7; 32]) };
        let px: Vec<u8> = (0..24).map(|i| (i * 11) as u8).collect();
        TokenFile::create_u8(&p8, &meta, &px).unwrap();
        let f = TokenFile::open(&p8).unwrap();
        assert_eq!((f.dtype(), f.num_items(), f.item_len()), (Dtype::U8, Some(2), Some(12)));
        assert_eq!(f.meta(), &meta);
        assert_eq!(f.payload(), &px[..]);
    }

    #[test]
    fn rejects_out_of_vocab_and_partial_items() {
        let dir = tempfile::tempdir().unwrap();
        let err = TokenFile::create(dir.path().join("x"), 27, &[3, 27]).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
        let meta = TokenMeta { vocab: 256, item_shape: Some([2, 2, 3]), source_sha256: None };
        let err = TokenFile::create_u8(dir.path().join("y"), &meta, &[0; 13]).unwrap_err().to_string();
        assert!(err.contains("whole number of items"), "{err}");
    }

    #[test]
    fn detects_truncation_tampering_and_bad_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tok");
        TokenFile::create(&path, 27, &[1, 2, 3, 4, 5, 6]).unwrap();
        let good = std::fs::read(&path).unwrap();

        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        let err = TokenFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("truncated") && err.contains("t.tok"), "{err}");

        let mut tampered = good.clone();
        *tampered.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &tampered).unwrap();
        assert!(TokenFile::open_unverified(&path).is_ok(), "header and length are still fine");
        let err = TokenFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("sha256 mismatch") && err.contains("t.tok"), "{err}");
        assert!(err.contains("to re-prepare"), "the error says how to recover: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), tampered, "nothing is overwritten");

        let mut header_edit = good.clone();
        header_edit[16] = 99; // vocabulary field
        std::fs::write(&path, &header_edit).unwrap();
        let err = TokenFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("header checksum"), "{err}");

        let mut magic = good.clone();
        magic[0] = b'X';
        std::fs::write(&path, &magic).unwrap();
        let err = TokenFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("bad magic"), "{err}");

        std::fs::write(&path, [good.clone(), vec![0]].concat()).unwrap();
        let err = TokenFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("trailing bytes"), "{err}");
    }

    #[test]
    fn resumed_partial_writer_equals_one_shot_file() {
        let dir = tempfile::tempdir().unwrap();
        let toks: Vec<u16> = (0..500u16).map(|i| i % 300).collect();
        let whole = dir.path().join("whole.tok");
        TokenFile::create(&whole, 300, &toks).unwrap();

        let resumed = dir.path().join("resumed.tok");
        let mut w = TokenWriter::resume_partial(&resumed, TokenMeta::stream(300), 0).unwrap();
        w.push(&toks[..200]).unwrap();
        w.commit().unwrap();
        w.push(&toks[200..260]).unwrap(); // written but never committed: a crash loses it
        w.commit().unwrap();
        drop(w);
        let mut w = TokenWriter::resume_partial(&resumed, TokenMeta::stream(300), 200).unwrap();
        assert_eq!(w.len(), 200);
        w.push(&toks[200..]).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&resumed).unwrap());
        assert!(!TokenWriter::partial_path(&resumed).exists());
    }
}
