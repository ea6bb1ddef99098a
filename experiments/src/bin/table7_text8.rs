//! Artifact `table7-text8` (paper Table 7's question, spec §3.4 and §10.7, asked of the text8
//! model of `table2`; the paper's own Table 7 is the language-model artifact `table7`): the
//! finite-T bounds for T = 100, 1000, 10000 and the continuous-time bound of the same
//! continuous-time-trained MD4 (linear schedule), each with its standard error over every test
//! chunk: how much does discretising the bound cost in bits per character?
//!
//! Command: `just reproduce table7-text8 [smoke|small|paper]`.
//! Runtime: reuses (or trains) table2's `md4-linear` run; small ≈ 4 evaluations of the test
//! split, a few minutes on 2 cores. Writes `results/table7-text8/<scale>/{table.md, rows.csv,
//! card.yaml, record.yaml}` and `cards/<T>.yaml`.

use std::process::ExitCode;

fn main() -> ExitCode {
    experiments::main::<experiments::StepsFlags>(
        "table7-text8",
        "Table 7: finite-T versus continuous-time bounds of one MD4 model (text8).",
        |ctx, flags| experiments::text8::table7_text8(ctx, &flags.steps),
    )
}
