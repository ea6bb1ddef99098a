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

use anyhow::Result;
use clap::Parser;
use experiments::suite::{self, Estimator, SuiteConfig};
use experiments::{ArtifactArgs, ArtifactDir, Run, load_config, workspace_root};
use md4_eval::table::{Row, Table};
use md4_eval::{Estimate, LikelihoodProtocol, Unit};

/// Table 7: finite-T versus continuous-time bounds of one MD4 model (text8).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
    /// Numbers of steps T of the finite-T bounds.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100i64, 1000, 10000])]
    steps: Vec<i64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let run = Run::start("table7-text8", args.common.scale);
    let root = workspace_root();
    let device = args.common.device()?;
    // The model and the evaluation protocol are table2's.
    let suite: SuiteConfig = load_config(&root, "table2", args.common.scale)?;
    let row = suite.row("md4-linear")?;
    let run_dir = suite::run_dir("table2", args.common.scale, &row.slug);
    suite::ensure_trained(&suite, row, &run_dir, device)?;
    let loaded = suite::load(&run_dir, device)?;
    let (seqs, data) = suite::eval_sequences(&suite.eval, suite.sub_vocab()?.as_ref())?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "table7-text8", args.common.scale);
    dir.create()?;

    let unit = Unit::BitsPerChar;
    let reference = "T = ∞ (continuous)";
    let mut table = Table::new(
        &format!("Finite-T vs continuous bound, MD4 (linear) on text8 — {}", suite.description),
        4,
    )
    .with_delta_column(reference, unit);
    let (mut outputs, mut scored) = (vec![], vec![]);
    let mut estimators: Vec<(String, Estimator)> =
        args.steps.iter().map(|&t| (format!("T = {t}"), Estimator::FiniteT(t))).collect();
    estimators.push((reference.into(), Estimator::Reported));
    for (label, estimator) in estimators {
        eprintln!("== {label}: {} chunks × {} passes", data.n_sequences, suite.eval.passes);
        let result = suite::evaluate_run(&loaded, &seqs, &suite.eval, estimator, device)?;
        let bound = suite::bound_of(&loaded.trained, estimator, None);
        let notes = format!(
            "{}; same model (step {}), same chunks and seeds",
            suite::bound_label(&bound),
            loaded.step
        );
        let row =
            Row::new(&label, Some(Estimate::from_result(&result, unit, true)), unit.label(), None, &notes);
        scored.push((label.clone(), row, result.clone()));
        let likelihood = LikelihoodProtocol::from_result(
            &result,
            bound,
            "linear",
            true,
            match estimator {
                Estimator::FiniteT(_) => {
                    "one step i ~ U{1..T} per sequence per pass, u and the masks from the keyed stream (seed, pass, sequence), shared by every row"
                }
                Estimator::Reported => md4_eval::KEYED_TIME_SAMPLING,
            },
            unit,
        );
        let notes = vec![format!("checkpoint: {}", loaded.checkpoint.display())];
        let slug = label.split_whitespace().nth(2).unwrap_or("continuous").replace('∞', "inf");
        outputs.push(suite::write_row_card(
            &run,
            &dir,
            device,
            result.wall_seconds,
            &label,
            &slug,
            &data,
            likelihood,
            notes,
        )?);
    }
    suite::push_paired(&mut table, scored, reference, unit)?;
    let notes = vec![
        suite.description.clone(),
        suite::paired_note(reference),
        "paper Table 7 (MD4-S on OWT, zero-shot perplexity; e.g. PTB ≤ 105.2 / 102.5 / 102.4 / 102.3 for T = 100 / 1000 / 10000 / ∞) has no text8 counterpart, so the Paper column is empty; the expected ordering is continuous ≤ T=10000 ≤ T=1000 ≤ T=100".into(),
    ];
    table.references.push((
        suite::references(&loaded.cfg, &suite.eval, &seqs, args.common.scale.reference_train_cap())?,
        unit,
    ));
    suite::finish_table(&run, &dir, device, &table, None, data, notes, outputs)?;
    Ok(())
}
