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

use anyhow::Result;
use clap::Parser;
use experiments::suite::{self, Estimator};
use experiments::zeroshot::{self, ZeroShotConfig};
use experiments::{ArtifactArgs, ArtifactDir, Run, workspace_root};
use md4_eval::Unit;
use md4_eval::table::PaperTables;

/// Table 1: zero-shot perplexity of the table5 models on held-out evaluation sets.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scale = args.common.scale;
    let run = Run::start("table1", scale);
    let device = args.common.device()?;
    let cfg = ZeroShotConfig::load(scale)?;
    let suite_cfg = cfg.suite(scale)?;
    let paper = PaperTables::load(&workspace_root().join("results/paper.yaml"))?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "table1", scale);
    dir.create()?;
    let columns = zeroshot::load_columns(&cfg, &suite_cfg)?;
    let title = format!("Zero-shot perplexity — {}", cfg.description);
    let mut matrix = zeroshot::matrix(&title, &cfg, paper.table("table1")?.rows.clone());
    let (mut outputs, mut results) = (vec![], vec![]);
    for row in &cfg.rows {
        let (name, run_dir, loaded) =
            zeroshot::trained_row(&suite_cfg, &cfg.suite, scale, &row.slug, device)?;
        let (mut cells, mut row_results) = (vec![], vec![]);
        for column in &columns {
            if column.data.is_some() {
                eprintln!("== {name} on {}", column.column.name);
            }
            let scored = zeroshot::score(&loaded, column, Estimator::Reported, device)?;
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
                    format!("objective: {:?}", loaded.cfg.objective),
                    format!("paper row: {}", row.paper_row.as_deref().unwrap_or("none")),
                ];
                let stem = format!("{}-{}", row.slug, slug(&column.column.name));
                outputs.push(suite::write_row_card(
                    &run,
                    &dir,
                    device,
                    s.result.wall_seconds,
                    &format!("{name} on {}", column.column.name),
                    &stem,
                    data,
                    zeroshot::likelihood_protocol(s, &loaded),
                    notes,
                )?);
            }
        }
        let bound = suite::bound_of(&loaded.trained, Estimator::Reported, None);
        let params = loaded.cfg.model.param_count();
        let notes = format!(
            "{}; {:.2}M params; {} steps × {}",
            suite::bound_label(&bound),
            params as f64 / 1e6,
            loaded.step,
            loaded.cfg.train.batch
        );
        results.push(row_results);
        matrix.rows.push(zeroshot::matrix_row(&name, cells, notes));
    }
    // Reference yardsticks per scored column, given the models' training split.
    let ref_cfg = suite_cfg.run_config(suite_cfg.reference_row()?)?;
    for column in &columns {
        if let (Some(spec), Some((seqs, _))) = (&column.column.eval, &column.data) {
            let refs = suite::references(&ref_cfg, spec, seqs, scale.reference_train_cap())?;
            matrix.references.push((column.column.name.clone(), refs, Unit::Perplexity));
        }
    }
    // Every row against the first (MD4), column by column, on common random numbers.
    let reference = matrix.rows.first().map(|r| r.method.clone()).unwrap_or_default();
    zeroshot::pair_rows(&mut matrix, &results, &reference)?;
    let mut notes = vec![
        suite::paired_note(&reference),
        cfg.description.clone(),
        suite_cfg.description.clone(),
        "paper rows: arXiv v4 Table 1 (models trained on OpenWebText; baselines other than SEDD Absorb (reimpl.) from Lou et al.); small-scale numbers are not comparable in value".into(),
    ];
    notes.extend(zeroshot::column_notes(&columns));
    zeroshot::finish_matrix(&run, &dir, device, &matrix, notes, outputs)?;
    println!("table1 ({scale}) written to {}", dir.path.display());
    Ok(())
}

/// `WikiText2 (proxy)` → `wikitext2-proxy`.
fn slug(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}
