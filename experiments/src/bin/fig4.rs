//! Artifact `fig4` (paper Fig. 4, spec §10.8): validation perplexity against training steps for
//! the rows of `table5` (MD4, GenMD4, SEDD absorb, AR), read from the runs' `metrics.jsonl`
//! (EMA weights, the validation bound every `eval_every` steps; exact for AR). The end points
//! correspond to Table 5 (which scores the test split with more passes).
//!
//! Command: `just reproduce fig4 [smoke|small|paper]` (trains table5's rows if needed).
//! Writes `results/fig4/<scale>/{fig4.png, fig4.svg, fig4.csv, card.yaml, record.yaml}`.

use std::process::ExitCode;

fn main() -> ExitCode {
    experiments::main::<experiments::NoFlags>(
        "fig4",
        "Fig. 4: validation perplexity during training for table5's rows.",
        |ctx, _| experiments::lm::fig4(ctx),
    )
}
