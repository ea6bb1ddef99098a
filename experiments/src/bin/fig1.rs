//! Artifact `fig1` (paper Fig. 1, spec §2.4 and §10.8): α_t (left) and the cross-entropy
//! weight |α'_t/(1−α_t)| (right, log-scale y) for the linear, geometric (β̄_min = 1e−5,
//! β̄_max = 20), cosine, poly2 and poly0.5 schedules.
//!
//! Command: `cargo run -p experiments --bin fig1 -- --scale small` (or `just reproduce fig1`).
//! Runtime: about a second at every scale — pure math, identical output for smoke, small, paper.
//! Writes `results/fig1/<scale>/fig1_alpha.{png,svg,csv}`, `fig1_weight.{png,svg,csv}`,
//! `card.yaml` and `record.yaml`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let about = "Fig. 1: masking schedules α_t and their cross-entropy weights.";
    experiments::main::<experiments::NoFlags>("fig1", about, |ctx, _| {
        experiments::figures::fig1_artifact(ctx)
    })
}
