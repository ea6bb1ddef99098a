//! Artifact `fig4` (paper Fig. 4, spec §10.8): validation perplexity against training steps for
//! the rows of `table5` (MD4, GenMD4, SEDD absorb, AR), read from the runs' `metrics.jsonl`
//! (EMA weights, the validation bound every `eval_every` steps; exact for AR). The end points
//! correspond to Table 5 (which scores the test split with more passes).
//!
//! Command: `just reproduce fig4 [smoke|small|paper]` (trains table5's rows if needed).
//! Writes `results/fig4/<scale>/{fig4.png, fig4.svg, fig4.csv, card.yaml, record.yaml}`.

use anyhow::Result;
use clap::Parser;
use experiments::{ArtifactArgs, ArtifactContext};

/// Fig. 4: validation perplexity during training for table5's rows.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ctx = ArtifactContext::start("fig4", &args.common)?;
    experiments::lm::fig4(&ctx)
}
