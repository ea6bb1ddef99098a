//! Artifact `fig8` (paper Fig. 8, spec §11.4): generative perplexity of unconditional MD4
//! samples against the number of sampling steps, judged by an autoregressive model, for float32
//! Gumbel and float64 sampling on uniform and cosine grids and the cached sampler; every point
//! with the samples' unigram entropy (collapse detector), network calls and wall time. The
//! judge's perplexity on held-out text of the same length is printed as the reference level.
//!
//! Command: `just reproduce fig8 [smoke|small|paper]` (trains table5's rows if needed).
//! Small: table5's MD4 sampled, table5's AR baseline judges (same data and tokenizer).
//! Paper: MD4-S sampled at 1024 tokens, GPT-2 Large from the Hub judges.
//! Writes `results/fig8/<scale>/{fig8.png, fig8.svg, fig8.csv, entropy.*, points.csv,
//! samples.md, card.yaml, record.yaml}`.

use std::process::ExitCode;

fn main() -> ExitCode {
    experiments::main::<experiments::NoFlags>(
        "fig8",
        "Fig. 8: generative perplexity against sampling steps.",
        |ctx, _| experiments::genppl::fig8(ctx),
    )
}
