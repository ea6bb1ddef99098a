//! Ablation `ablate-schedules` (paper §2.4 and Table 4; issue "ablation recipe for schedules"):
//! the same network, data and budget as table2's MD4 rows, trained with each masking schedule
//! (linear, cosine, poly2, poly0.5, geometric), then scored on the test chunks (continuous
//! bound, K passes) and plotted as validation bits per character against training steps.
//! The linear and cosine runs are table2's own and are reused.
//!
//! Command: `just ablate schedules [smoke|small|paper]`.
//! Runtime: small ≈ 9 min per schedule not yet trained on a 2-core CPU with bf16.
//! Writes `results/ablate-schedules/<scale>/{table.md, rows.csv, curves.{png,svg,csv},
//! card.yaml, record.yaml}` and `cards/<schedule>.yaml`.

use std::process::ExitCode;

/// The flags of `ablate-schedules` beyond the common ones.
#[derive(clap::Args, Debug)]
struct Flags {
    /// Schedules to train: linear, cosine, poly<w>, geometric.
    #[arg(long, value_delimiter = ',', default_values_t = ["linear", "cosine", "poly2", "poly0.5", "geometric"].map(String::from).to_vec())]
    schedules: Vec<String>,
}

fn main() -> ExitCode {
    experiments::main::<Flags>(
        "ablate-schedules",
        "Train table2's MD4 model with every masking schedule and compare.",
        |ctx, flags| experiments::text8::ablate_schedules(ctx, &flags.schedules),
    )
}
