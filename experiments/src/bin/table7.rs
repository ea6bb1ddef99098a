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

use anyhow::Result;
use clap::Parser;
use experiments::suite::{self, Estimator};
use experiments::zeroshot::{self, ZeroShotConfig};
use experiments::{ArtifactArgs, ArtifactDir, Run, workspace_root};
use md4_eval::table::PaperTables;

/// Table 7: finite-T versus continuous-time bounds of one MD4 model on the zero-shot sets.
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
    let scale = args.common.scale;
    let run = Run::start("table7", scale);
    let device = args.common.device()?;
    let cfg = ZeroShotConfig::load(scale)?;
    let suite_cfg = cfg.suite(scale)?;
    let paper = PaperTables::load(&workspace_root().join("results/paper.yaml"))?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "table7", scale);
    dir.create()?;
    let (name, run_dir, loaded) = zeroshot::trained_row(&suite_cfg, &cfg.suite, scale, "md4", device)?;
    let columns = zeroshot::load_columns(&cfg, &suite_cfg)?;
    let title = format!("Finite-T vs continuous bound, {name} — {}", cfg.description);
    let mut matrix = zeroshot::matrix(&title, &cfg, paper.table("table7")?.rows.clone());
    let mut estimators: Vec<(String, String, Estimator)> =
        args.steps.iter().map(|&t| (format!("T = {t}"), format!("t{t}"), Estimator::FiniteT(t))).collect();
    estimators.push(("T = ∞ (continuous)".into(), "continuous".into(), Estimator::Reported));
    let (mut outputs, mut results) = (vec![], vec![]);
    for (label, stem, estimator) in estimators {
        let (mut cells, mut row_results) = (vec![], vec![]);
        for column in &columns {
            if column.data.is_some() {
                eprintln!("== {label} on {}", column.column.name);
            }
            let scored = zeroshot::score(&loaded, column, estimator, device)?;
            cells.push(zeroshot::cell(column, &scored));
            row_results.push(scored.as_ref().map(|s| s.result.clone()));
            if let (Some(s), Some((_, data))) = (&scored, &column.data) {
                let notes = vec![
                    format!("run directory: {}", run_dir.display()),
                    format!(
                        "checkpoint: {} (EMA weights, step {})",
                        loaded.checkpoint.display(),
                        loaded.step
                    ),
                ];
                let column_stem = column
                    .column
                    .name
                    .to_ascii_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
                outputs.push(suite::write_row_card(
                    &run,
                    &dir,
                    device,
                    s.result.wall_seconds,
                    &format!("{label} on {}", column.column.name),
                    &format!("{stem}-{}", column_stem.trim_matches('-')),
                    data,
                    zeroshot::likelihood_protocol(s, &loaded),
                    notes,
                )?);
            }
        }
        let bound = suite::bound_of(&loaded.trained, estimator, None);
        let notes = format!(
            "{}; same model (step {}), same chunks and seeds",
            suite::bound_label(&bound),
            loaded.step
        );
        results.push(row_results);
        matrix.rows.push(zeroshot::matrix_row(&label, cells, notes));
    }
    // Every finite T against the continuous bound of the same model, on common random numbers.
    let reference = "T = ∞ (continuous)";
    zeroshot::pair_rows(&mut matrix, &results, reference)?;
    let mut notes = vec![
        suite::paired_note(reference),
        cfg.description.clone(),
        suite_cfg.description.clone(),
        "paper rows: arXiv v4 Table 7 (MD4-S on OpenWebText); its WikiText103 column is internally inconsistent (spec §10.7)".into(),
        "expected: continuous ≤ T=10000 ≤ T=1000 ≤ T=100 in expectation; judge it on the paired Δ".into(),
    ];
    notes.extend(zeroshot::column_notes(&columns));
    zeroshot::finish_matrix(&run, &dir, device, &matrix, notes, outputs)?;
    println!("table7 ({scale}) written to {}", dir.path.display());
    Ok(())
}
