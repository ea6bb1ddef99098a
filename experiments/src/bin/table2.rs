//! Artifact `table2` (paper Table 2, spec §10.2): text8 test bits per character for MD4 (linear
//! and cosine schedules), GenMD4, SEDD absorb, D3PM absorb and an autoregressive transformer,
//! all with the same network size, data and budget, each number a mean ± standard error over
//! every test chunk with K Monte-Carlo passes and EMA weights.
//!
//! Command: `just reproduce table2 [smoke|small|paper]`
//! (`cargo run -p experiments --bin table2 -- --scale small`).
//! Runtime: smoke ≈ 1 min (tiny model, CI); small ≈ 60 min on a 2-core CPU with bf16 (text8-style
//! Wikipedia from the gensim wheel); paper: the paper's 1M-step × 512 recipe on text8 from
//! the Hub (GPU cluster scale). Finished training runs in `runs/table2/<scale>/` are reused.
//! Writes `results/table2/<scale>/{table.md, rows.csv, card.yaml, record.yaml}`,
//! `cards/<row>.yaml` per row, and `curves.{png,svg,csv}` (validation BPC against steps).

use experiments::suite::{LikelihoodTable, likelihood_table};
use md4_eval::Unit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let spec = LikelihoodTable {
        artifact: "table2",
        unit: Unit::BitsPerChar,
        paper_table: "table2",
        paper_column: "bpc",
        title: "text8 bits per character",
        decimals: 3,
        curve_title: "text8 validation bits per character (EMA weights) during training",
        curve_ylabel: "validation BPC (bound; exact for AR)",
        paper_note: "paper column: arXiv v4 Table 2 (text8, 100M characters, 12-layer models, 1M steps); small-scale numbers are not comparable in value, only in ordering",
        references: true,
    };
    experiments::main::<experiments::RowFlags>(
        "table2",
        "Table 2: text8 bits per character of MD4, GenMD4 and the baselines.",
        |ctx, flags| likelihood_table(ctx, &spec, &flags.rows),
    )
}
