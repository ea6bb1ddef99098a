//! Artifact `table5` (paper Table 5, spec §10.5): held-out perplexity of the training corpus
//! for MD4, GenMD4, SEDD absorb and an autoregressive transformer of the same size, data and
//! budget, each a mean ± standard error (delta method) over the evaluation chunks with K
//! Monte-Carlo passes and EMA weights. Its training runs are also those of `table1`, `fig4`,
//! `fig8`, `infill` and the language-model part of `table7`.
//!
//! Command: `just reproduce table5 [smoke|small|paper]`.
//! Data: small — the registry English mix (GPT-2 BPE, document-level 90/5/5 split, test
//! documents held out); paper — OpenWebText from the Hub with MD4's 2 % held-out blocks
//! (`datasets/openwebtext.yaml`; MDLM's last-100k-documents split is its `mdlm` option).
//! Runtime: smoke ≈ 1 min; small ≈ 30 min on a 2-core CPU; paper: MD4-S's 1M-step recipe.
//! Writes `results/table5/<scale>/{table.md, rows.csv, card.yaml, record.yaml, curves.*}` and
//! `cards/<row>.yaml`.

use experiments::suite::{LikelihoodTable, likelihood_table};
use md4_eval::Unit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let spec = LikelihoodTable {
        artifact: "table5",
        unit: Unit::Perplexity,
        paper_table: "table5",
        paper_column: "ppl",
        title: "Held-out perplexity of the training corpus",
        decimals: 1,
        curve_title: "validation bits per token (EMA weights) during training",
        curve_ylabel: "validation bits/token (bound; exact for AR)",
        paper_note: "paper column: arXiv v4 Table 5 (OpenWebText, 2% held-out blocks, 12-layer models, 1M steps × 512 × 1024 tokens); small-scale numbers are not comparable in value, only in ordering",
        references: true,
    };
    experiments::main::<experiments::RowFlags>(
        "table5",
        "Table 5: held-out perplexity of MD4, GenMD4, SEDD absorb and AR on the training corpus.",
        |ctx, flags| likelihood_table(ctx, &spec, &flags.rows),
    )
}
