//! Artifact `fig-genmd4-w` (spec §4, paper §4 / Fig. on GenMD4's schedules): the exponents
//! w_i = softplus(w_raw,i) that GenMD4 learned for each text8 character in table2's GenMD4
//! run, against the linear schedule's w = 1 (its initialisation). A token with w_i > 1 stays
//! unmasked longer in the forward process (α_{t,i} = 1 − t^{w_i}), so it is revealed earlier
//! by the reverse process.
//!
//! Command: `just reproduce fig-genmd4-w [smoke|small|paper]`.
//! Runtime: seconds, plus table2's `genmd4` training run if it does not exist yet.
//! Writes `results/fig-genmd4-w/<scale>/genmd4_w.{png,svg,csv}`, `card.yaml`, `record.yaml`.

use anyhow::{Result, bail};
use clap::Parser;
use experiments::suite::{self, SuiteConfig};
use experiments::{ArtifactArgs, ArtifactDir, Run, load_config, workspace_root};
use md4_eval::{BarChart, Environment, ProtocolCard, Series};
use md4_train::Trained;

/// GenMD4's learned per-character exponents w.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let run = Run::start("fig-genmd4-w", args.common.scale);
    let root = workspace_root();
    let device = args.common.device()?;
    let suite: SuiteConfig = load_config(&root, "table2", args.common.scale)?;
    let row = suite.row("genmd4")?;
    let run_dir = suite::run_dir("table2", args.common.scale, &row.slug);
    suite::ensure_trained(&suite, row, &run_dir, device)?;
    let loaded = suite::load(&run_dir, device)?;
    let Trained::GenMd4(model) = &loaded.trained else { bail!("table2's genmd4 row is not a GenMD4 run") };
    let w: Vec<f64> = Vec::try_from(tch::no_grad(|| model.schedule.w()).to_kind(tch::Kind::Double))?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "fig-genmd4-w", args.common.scale);
    dir.create()?;
    let x: Vec<f64> = (0..w.len()).map(|i| i as f64).collect();
    let chars: String = (0..w.len() as u8).map(|i| if i < 26 { (b'a' + i) as char } else { '_' }).collect();
    let chart = BarChart::new(
        &format!(
            "GenMD4 learned exponents w per character (text8; 0–25 = a–z, 26 = space; {} scale)",
            args.common.scale
        ),
        "token id",
        "w (α_t = 1 − t^w)",
        vec![
            Series::new("learned w", x.clone(), w.clone()),
            Series::new("linear schedule (w = 1)", x, vec![1.0; w.len()]),
        ],
    );
    let files = chart.write(&dir.file("genmd4_w"))?;
    let mut card = ProtocolCard::new(
        "fig-genmd4-w",
        "learned w",
        args.common.scale.name(),
        Environment::capture(Some(&root), device, run.elapsed()),
    );
    let (lo, hi) = w.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    card.notes = vec![
        format!("table2 '{}' run at step {}, {}", row.name, loaded.step, suite.description),
        "w = softplus(w_raw), initialised at 1 (the linear schedule); weight decay applies to w_raw as in the reference (pulls w toward ln 2)".into(),
        format!("token order: {chars}"),
        format!("w range: {lo:.4} … {hi:.4}"),
        format!("w: {}", w.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ")),
    ];
    card.write(&dir.file("card.yaml"))?;
    run.finish(&dir, device, &[files.png, files.svg, files.csv, dir.file("card.yaml")])?;
    println!("fig-genmd4-w ({}) written to {}", args.common.scale, dir.path.display());
    Ok(())
}
