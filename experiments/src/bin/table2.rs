//! Artifact `table2` (paper Table 2, spec §10.2): text8 test bits per character for MD4 (linear
//! and cosine schedules), GenMD4, SEDD absorb, D3PM absorb and an autoregressive transformer,
//! all with the same network size, data and budget, each number a mean ± standard error over
//! every test chunk with K Monte-Carlo passes and EMA weights.
//!
//! Command: `just reproduce table2 [smoke|small|paper]`
//! (`cargo run -p experiments --bin table2 -- --scale small`).
//! Runtime: smoke ≈ 1 min (tiny model, CI); small ≈ 30 min on a 2-core CPU (text8-style
//! Wikipedia from the gensim wheel); paper: the paper's 1M-step × 512 recipe on text8 from
//! the Hub (GPU cluster scale). Finished training runs in `runs/table2/<scale>/` are reused.
//! Writes `results/table2/<scale>/{table.md, rows.csv, card.yaml, record.yaml}`,
//! `cards/<row>.yaml` per row, and `curves.{png,svg,csv}` (validation BPC against steps).

use anyhow::Result;
use clap::Parser;
use experiments::suite::{self, Estimator, SuiteConfig};
use experiments::{ArtifactArgs, ArtifactDir, Run, load_config, workspace_root};
use md4_eval::table::{PaperTables, Row, Table};
use md4_eval::{Estimate, LikelihoodProtocol, LinePlot, Unit};

/// Table 2: text8 bits per character of MD4, GenMD4 and the baselines.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
    /// Only these rows (by slug, comma-separated); the table then lists only them.
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let run = Run::start("table2", args.common.scale);
    let root = workspace_root();
    let device = md4_train::parse_device(&args.common.device)?;
    let suite: SuiteConfig = load_config(&root, "table2", args.common.scale)?;
    let paper = PaperTables::load(&root.join("results/paper.yaml"))?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "table2", args.common.scale);
    dir.create()?;
    let (seqs, data) = suite::eval_sequences(&suite.eval)?;
    eprintln!(
        "table2 ({}): {} test chunks of {} characters",
        args.common.scale, data.n_sequences, data.sequence_length
    );

    let unit = Unit::BitsPerChar;
    let mut table = Table::new(&format!("text8 bits per character — {}", suite.description), 3);
    let mut outputs = vec![];
    let mut curves = vec![];
    let rows: Vec<_> =
        suite.rows.iter().filter(|r| args.rows.is_empty() || args.rows.contains(&r.slug)).collect();
    for row in rows {
        let run_dir = suite::run_dir("table2", args.common.scale, &row.slug);
        suite::ensure_trained(&suite, row, &run_dir, device)?;
        let loaded = suite::load(&run_dir, device)?;
        eprintln!("== {}: evaluating {} chunks × {} passes", row.name, data.n_sequences, suite.eval.passes);
        let result = suite::evaluate_run(&loaded, &seqs, &suite.eval, Estimator::Reported, device)?;
        let d3pm_steps = match loaded.cfg.objective {
            md4_train::ObjectiveConfig::D3pm { steps, .. } => Some(steps),
            _ => None,
        };
        let bound = suite::bound_of(&loaded.trained, Estimator::Reported, d3pm_steps);
        let exact = loaded.trained.is_exact();
        let estimate = Estimate::from_result(&result, unit, !exact);
        let paper_value = match &row.paper_row {
            Some(key) => Some(paper.value("table2", key, "bpc")?),
            None => None,
        };
        let params = loaded.cfg.effective_model().param_count();
        let notes = format!(
            "{}; {:.2}M params; {} steps × {}",
            if exact { "exact NLL".to_string() } else { suite::bound_label(&bound) },
            params as f64 / 1e6,
            loaded.step,
            loaded.cfg.train.batch
        );
        table.push(Row::new(&row.name, Some(estimate), unit.label(), paper_value, &notes));

        let likelihood = LikelihoodProtocol::from_result(
            &result,
            bound,
            &suite::schedule_label(&loaded.cfg),
            true,
            if exact {
                "none (exact likelihood)"
            } else {
                "antithetic across the batch, one t per sequence per pass"
            },
            unit,
        );
        let notes = vec![
            format!("run directory: {}", run_dir.display()),
            format!("checkpoint: {} (EMA weights, step {})", loaded.checkpoint.display(), loaded.step),
            format!("objective: {:?}", loaded.cfg.objective),
            suite.description.clone(),
        ];
        outputs.push(suite::write_row_card(
            &run,
            &dir,
            device,
            result.wall_seconds,
            &row.name,
            &row.slug,
            &data,
            likelihood,
            notes,
        )?);

        curves.extend(suite::validation_series(&row.name, &run_dir)?);
    }
    let curves = LinePlot::new(
        "text8 validation bits per character (EMA weights) during training",
        "training step",
        "validation BPC (bound; exact for AR)",
        curves,
    );
    let notes = vec![
        suite.description.clone(),
        "each row's estimator, passes and checkpoint are in cards/<row>.yaml".into(),
        "paper column: arXiv v4 Table 2 (text8, 100M characters, 12-layer models, 1M steps); small-scale numbers are not comparable in value, only in ordering".into(),
    ];
    suite::finish_table(&run, &dir, device, &table, Some(curves), data, notes, outputs)?;
    println!("table2 ({}) written to {}", args.common.scale, dir.path.display());
    Ok(())
}
