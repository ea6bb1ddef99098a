//! Artifact `table7` (paper Table 7, spec §3.4, §10.7 and §11): the effect of discretisation on
//! zero-shot perplexity. One continuous-time-trained MD4 (table5's `md4` run) is scored on
//! table1's evaluation sets with the finite-T bound for T = 100, 1000, 10000 and with the
//! continuous-time bound (T = ∞), same chunks and seeds, each with its standard error. Expected
//! ordering (a Riemann sum of the continuous integral): ∞ ≤ 10000 ≤ 1000 ≤ 100, with gaps that
//! shrink like 1/T. The text8 version of the same question is `table7-text8`.
//!
//! Command: `just reproduce table7 [smoke|small|paper]` (trains table5's MD4 if needed).
//! Runtime: small ≈ 10 min (4 bounds × the computable columns × 2 passes).
//! Writes `results/table7/<scale>/{table.md, cells.csv, card.yaml, record.yaml}` and
//! `cards/<T>-<column>.yaml`.

use std::process::ExitCode;

fn main() -> ExitCode {
    experiments::main::<experiments::StepsFlags>(
        "table7",
        "Table 7: finite-T versus continuous-time bounds of one MD4 model on the zero-shot sets.",
        |ctx, flags| experiments::zeroshot::table7(ctx, &flags.steps),
    )
}
