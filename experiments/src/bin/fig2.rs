//! Artifact `fig2` (paper Fig. 2 right and Fig. 3, spec §5.2 and §10.8): the expected number of
//! tokens revealed per step for the linear and cosine schedules on a uniform grid (T = 256,
//! N = 12288, pure math), and the unmasking order of one sample from table2's trained MD4
//! (linear schedule) on the cosine grid: every character coloured by the step that revealed it.
//!
//! Command: `just reproduce fig2 [smoke|small|paper]`.
//! Runtime: seconds, plus table2's `md4-linear` training run if it does not exist yet.
//! Writes `results/fig2/<scale>/fig2_reveal.{png,svg,csv}`, `fig2_unmasking.{png,svg,csv}`,
//! `card.yaml`, `record.yaml`.

use std::process::ExitCode;

/// The flags of `fig2` beyond the common ones.
#[derive(clap::Args, Debug)]
struct Flags {
    /// Sampling steps of the unmasking picture.
    #[arg(long, default_value_t = 256)]
    steps: i64,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

fn main() -> ExitCode {
    experiments::main::<Flags>(
        "fig2",
        "Fig. 2: tokens revealed per step, and a sample's unmasking order.",
        |ctx, flags| experiments::text8::fig2(ctx, flags.steps, flags.seed),
    )
}
