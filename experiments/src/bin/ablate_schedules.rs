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

use anyhow::Result;
use clap::Parser;
use experiments::{ArtifactArgs, ArtifactContext};

/// Train table2's MD4 model with every masking schedule and compare.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
    /// Schedules to train: linear, cosine, poly<w>, geometric.
    #[arg(long, value_delimiter = ',', default_values_t = ["linear", "cosine", "poly2", "poly0.5", "geometric"].map(String::from).to_vec())]
    schedules: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ctx = ArtifactContext::start("ablate-schedules", &args.common)?;
    experiments::text8::ablate_schedules(&ctx, &args.schedules)
}
