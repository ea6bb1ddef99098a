//! Artifact `fig-genmd4-w` (spec §4, paper §4 / Fig. on GenMD4's schedules): the exponents
//! w_i = softplus(w_raw,i) that GenMD4 learned for each text8 character in table2's GenMD4
//! run, against the linear schedule's w = 1 (its initialisation). A token with w_i > 1 stays
//! unmasked longer in the forward process (α_{t,i} = 1 − t^{w_i}), so it is revealed earlier
//! by the reverse process.
//!
//! Command: `just reproduce fig-genmd4-w [smoke|small|paper]`.
//! Runtime: seconds, plus table2's `genmd4` training run if it does not exist yet.
//! Writes `results/fig-genmd4-w/<scale>/genmd4_w.{png,svg,csv}`, `card.yaml`, `record.yaml`.

use std::process::ExitCode;

fn main() -> ExitCode {
    experiments::main::<experiments::NoFlags>(
        "fig-genmd4-w",
        "GenMD4's learned per-character exponents w.",
        |ctx, _| experiments::text8::fig_genmd4_w(ctx),
    )
}
