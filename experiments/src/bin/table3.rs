//! Artifact `table3` (paper Table 3, spec §10.3, §7.2, §7.3, §9.4): bits per dimension of MD4,
//! Campbell et al.'s absorbing objective on the same U-Net, and an autoregressive transformer
//! over sub-pixels of comparable size and budget, each number a mean ± standard error over the
//! evaluation images with K Monte-Carlo passes and EMA weights; the paper's CIFAR-10 and
//! ImageNet 64×64 rows are printed beside ours. Also: loading-path checks of the CIFAR-10 and
//! ImageNet64 networks on the 20 real foolbox images of each (untrained bits per dimension =
//! 8·(1 − ε), logits' shape, one training step), and a grid of samples from every diffusion row.
//!
//! Command: `just reproduce table3 [smoke|small|paper]`
//! (`cargo run -p experiments --bin table3 -- --scale small`).
//! Runtime: smoke ≈ 20 s (tiny networks, CI); small ≈ 24 min on a 2-core CPU with bf16 (complete
//! Fashion-MNIST from the Debian package, 1.3M-parameter U-Net, 300 updates × 16 images per
//! row; ≈ 8 min when the four training runs exist); paper: CIFAR-10 (28.4M U-Net) and
//! ImageNet64 (198.3M U-Net + DiT) with the paper's 2M-step recipes on Hub data (GPU cluster
//! scale). Finished runs in `runs/table3/<scale>/` are reused.
//! Writes `results/table3/<scale>/{table.md, rows.csv, card.yaml, record.yaml}`,
//! `cards/<row>.yaml` (and `cards/campbell-md4-estimator.yaml`), `curves.{png,svg,csv}`,
//! `samples/<row>.png` with `cards/<row>-samples.yaml`, and
//! `checks/{table.md, rows.csv, <i>-<dataset>.yaml}`.

use std::process::ExitCode;

/// The flags of `table3` beyond the common ones.
#[derive(clap::Args, Debug)]
struct Flags {
    #[command(flatten)]
    rows: experiments::RowFlags,
    /// Skip the loading-path checks on the foolbox images.
    #[arg(long)]
    no_checks: bool,
}

fn main() -> ExitCode {
    experiments::main::<Flags>(
        "table3",
        "Table 3: bits per dimension of MD4, Campbell et al. absorb and an AR transformer.",
        |ctx, flags| experiments::images::table3(ctx, &flags.rows.rows, !flags.no_checks),
    )
}
