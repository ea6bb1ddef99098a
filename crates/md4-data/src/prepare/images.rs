//! Image recipes (§9.4): Fashion-MNIST from the Debian package, the foolbox wheel's CIFAR-10 and
//! ImageNet test images, and Hub parquet images, as sub-pixel tokens with label files.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, anyhow, ensure};

use super::{Ctx, SplitInfo, source_hash};
use crate::cache::{md5_hex, progress_bar};
use crate::hub::read_parquet_images;
use crate::idx::{expect_dims, parse_idx};
use crate::image::{center_crop_box, decode_image, to_grey, to_rgb};
use crate::tokenfile::TokenMeta;

pub(super) fn build_fashion_mnist(ctx: &Ctx) -> Result<BTreeMap<String, SplitInfo>> {
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

pub(super) fn build_foolbox(ctx: &Ctx, prefix: &str, shape: [u32; 3]) -> Result<BTreeMap<String, SplitInfo>> {
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

pub(super) fn build_hub_images(
    ctx: &Ctx,
    column: &str,
    shape: [u32; 3],
) -> Result<BTreeMap<String, SplitInfo>> {
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
