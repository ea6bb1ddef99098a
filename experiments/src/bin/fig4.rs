//! Artifact `fig4` (paper Fig. 4, spec §10.8): validation perplexity against training steps for
//! the rows of `table5` (MD4, GenMD4, SEDD absorb, AR), read from the runs' `metrics.jsonl`
//! (EMA weights, the validation bound every `eval_every` steps; exact for AR). The end points
//! correspond to Table 5 (which scores the test split with more passes).
//!
//! Command: `just reproduce fig4 [smoke|small|paper]` (trains table5's rows if needed).
//! Writes `results/fig4/<scale>/{fig4.png, fig4.svg, fig4.csv, card.yaml, record.yaml}`.

use anyhow::Result;
use clap::Parser;
use experiments::suite::{self, SuiteConfig};
use experiments::{ArtifactArgs, ArtifactDir, Run, load_config, workspace_root};
use md4_eval::{LinePlot, Series};

/// Fig. 4: validation perplexity during training for table5's rows.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scale = args.common.scale;
    let run = Run::start("fig4", scale);
    let device = args.common.device()?;
    let root = workspace_root();
    let suite_cfg: SuiteConfig = load_config(&root, "table5", scale)?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "fig4", scale);
    dir.create()?;
    let mut series = vec![];
    let mut notes = vec![suite_cfg.description.clone()];
    for row in &suite_cfg.rows {
        let run_dir = suite::run_dir("table5", scale, &row.slug);
        suite::ensure_trained(&suite_cfg, row, &run_dir, device)?;
        if let Some(s) = suite::validation_series(&row.name, &run_dir)? {
            // bits per token → perplexity 2^bits (the bound's perplexity for diffusion rows).
            let ppl: Vec<f64> = s.y.iter().map(|b| b.exp2()).collect();
            notes.push(format!(
                "{}: last validation perplexity {:.1} at step {} ({})",
                row.name,
                ppl.last().copied().unwrap_or(f64::NAN),
                s.x.last().copied().unwrap_or(f64::NAN),
                run_dir.display()
            ));
            series.push(Series::new(&row.name, s.x, ppl));
        }
    }
    let plot = LinePlot::new(
        &format!("Validation perplexity during training ({scale})"),
        "training step",
        "validation perplexity (bound; exact for AR)",
        series,
    );
    let files = plot.write(&dir.file("fig4"))?;
    notes.push("validation: the suite's eval split, `eval_batches` batches per point, EMA weights; perplexity = 2^(bits per token)".into());
    notes.push("paper Fig. 4: OWT validation perplexity of Gaussian diffusion, SEDD, MD4, GenMD4 (small) and MD4 (medium) over 1M steps; MD4 converges faster, SEDD showed instabilities".into());
    let environment = md4_eval::Environment::capture(Some(&root), device, run.elapsed());
    let mut card = md4_eval::ProtocolCard::new("fig4", "validation curves", scale.name(), environment);
    card.notes = notes;
    card.write(&dir.file("card.yaml"))?;
    run.finish(&dir, device, &[files.png, files.svg, files.csv, dir.file("card.yaml")])?;
    println!("fig4 ({scale}) written to {}", dir.path.display());
    Ok(())
}
