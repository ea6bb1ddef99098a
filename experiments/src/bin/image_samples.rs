//! Artifact `image-samples` (paper Table 6 and Figs. 2 left, 6, 9; spec §5.2, §10.6): grids of
//! unconditional samples from table3's MD4 image models for the three unconditional settings
//! of Table 6 — the linear schedule on a uniform grid, the linear schedule on the cosine grid,
//! and the cosine schedule on a uniform grid — at several step counts T, each with its number
//! of network calls, and the Table 6 protocol. FID is not computed here (see `table6.md`).
//!
//! Command: `just reproduce image-samples [smoke|small|paper]`
//! (`cargo run -p experiments --bin image_samples -- --scale small`).
//! Runtime: smoke ≈ 10 s; small ≈ 3 min on a 2-core CPU (16 samples per cell, T = 4, 8, 16,
//! 32), plus table3's `md4-linear` and `md4-cosine` training runs if they do not exist yet;
//! paper: T = 64 … 512 with the ImageNet64 models (GPU).
//! Writes `results/image-samples/<scale>/{image_samples.png, samples.md, samples.csv,
//! table6.md, rows.csv, card.yaml, record.yaml}`, `samples/<setting>_T<steps>.png` and
//! `cards/<setting>_T<steps>.yaml`.

use std::process::ExitCode;

fn main() -> ExitCode {
    experiments::main::<experiments::NoFlags>(
        "image-samples",
        "Image samples: Table 6's sampler settings, with network calls; the FID protocol.",
        |ctx, _| experiments::images::image_samples(ctx),
    )
}
