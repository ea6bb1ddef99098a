//! Artifact `table1` (paper Table 1, spec §10.1 and §11): zero-shot perplexity of the language
//! models trained by `table5` (MD4, SEDD absorb, AR of the same size and budget) on evaluation
//! sets they never saw, with the protocol of §11 (detokenize, GPT-2 BPE, EOS after every row,
//! concatenate, cut into blocks, drop the remainder; K Monte-Carlo passes; EMA weights;
//! perplexity = exp(mean nats per token), standard error by the delta method).
//!
//! Columns: paper scale — LAMBADA, WikiText2, PTB, WikiText103, 1BW from the Hub. Small scale —
//! the exact PTB test split (registry), the gensim Wikipedia fixture in WikiText's raw layout
//! (a proxy for the WikiText columns; `datasets/wiki-proxy.yaml`) and the held-out split of the
//! training mix; LAMBADA, WikiText2/103 and 1BW are Hub-only and their cells say so.
//!
//! Command: `just reproduce table1 [smoke|small|paper]` (trains table5's rows if needed).
//! Runtime: small ≈ 10 min after table5's training (3 models × 3 sets × 2 passes).
//! Writes `results/table1/<scale>/{table.md, cells.csv, card.yaml, record.yaml}` and
//! `cards/<row>-<column>.yaml`.

use std::process::ExitCode;

fn main() -> ExitCode {
    experiments::main::<experiments::NoFlags>(
        "table1",
        "Table 1: zero-shot perplexity of the table5 models on held-out evaluation sets.",
        |ctx, _| experiments::zeroshot::table1(ctx),
    )
}
