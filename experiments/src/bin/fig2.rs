//! Artifact `fig2` (paper Fig. 2 right and Fig. 3, spec §5.2 and §10.8): the expected number of
//! tokens revealed per step for the linear and cosine schedules on a uniform grid (T = 256,
//! N = 12288, pure math), and the unmasking order of one sample from table2's trained MD4
//! (linear schedule) on the cosine grid: every character coloured by the step that revealed it.
//!
//! Command: `just reproduce fig2 [smoke|small|paper]`.
//! Runtime: seconds, plus table2's `md4-linear` training run if it does not exist yet.
//! Writes `results/fig2/<scale>/fig2_reveal.{png,svg,csv}`, `fig2_unmasking.{png,svg,csv}`,
//! `card.yaml`, `record.yaml`.

use anyhow::Result;
use clap::Parser;
use experiments::suite::{self, SuiteConfig};
use experiments::{ArtifactArgs, ArtifactDir, Run, figures, load_config, workspace_root};
use md4_core::Precision;
use md4_core::sampler::{Grid, SamplerConfig};
use md4_eval::{Environment, ProtocolCard, SamplingProtocol, TokenGrid};

/// Fig. 2: tokens revealed per step, and a sample's unmasking order.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
    /// Sampling steps of the unmasking picture.
    #[arg(long, default_value_t = 256)]
    steps: i64,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let run = Run::start("fig2", args.common.scale);
    let root = workspace_root();
    let device = args.common.device()?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "fig2", args.common.scale);
    dir.create()?;
    let reveal = figures::fig2_reveal(&dir.path, 256, 12288)?;

    let suite: SuiteConfig = load_config(&root, "table2", args.common.scale)?;
    let row = suite.row("md4-linear")?;
    let run_dir = suite::run_dir("table2", args.common.scale, &row.slug);
    suite::ensure_trained(&suite, row, &run_dir, device)?;
    let loaded = suite::load(&run_dir, device)?;
    let sampler =
        SamplerConfig { steps: args.steps, grid: Grid::Cosine, precision: Precision::F32Gumbel, top_p: None };
    tch::manual_seed(args.seed);
    let out = loaded.trained.sample(1, suite.eval.seq_len, None, &sampler, device);
    let tokens: Vec<u8> =
        Vec::<i64>::try_from(out.tokens.squeeze_dim(0))?.into_iter().map(|t| t as u8).collect();
    let text = md4_data::text8_decode(&tokens);
    let labels: Vec<String> =
        text.chars().map(|c| if c == ' ' { "·".to_string() } else { c.to_string() }).collect();
    let steps: Vec<usize> =
        Vec::<i64>::try_from(out.reveal_step.squeeze_dim(0))?.into_iter().map(|s| s as usize).collect();
    let grid = TokenGrid::new(
        &format!(
            "Unmasking order of one MD4 sample (T = {}, cosine grid, {} scale)",
            args.steps, args.common.scale
        ),
        labels,
        steps,
        args.steps as usize + 1,
        32,
    );
    let unmasking = grid.write(&dir.file("fig2_unmasking"))?;

    let mut card = ProtocolCard::new(
        "fig2",
        "tokens revealed per step; unmasking order",
        args.common.scale.name(),
        Environment::capture(Some(&root), device, run.elapsed()),
    );
    card.sampling = Some(SamplingProtocol {
        schedule: "linear".into(),
        grid: "cosine".into(),
        steps: args.steps,
        precision: Precision::F32Gumbel.name().into(),
        top_p: None,
        n_samples: 1,
        seed: args.seed,
        ema: true,
        network_calls: out.network_calls,
    });
    card.notes = vec![
        "fig2_reveal: expected counts N·(α_s − α_t), unshifted linear and cosine schedules, uniform grid, T = 256, N = 12288 (pure math)".into(),
        format!("fig2_unmasking: table2 '{}' run at step {} (EMA weights), {}", row.name, loaded.step, suite.description),
        format!("sample text: {text}"),
        format!("argmax-filled positions after the last step: {}", out.argmax_filled),
    ];
    card.write(&dir.file("card.yaml"))?;
    let mut outputs = vec![reveal.png, reveal.svg, reveal.csv, unmasking.png, unmasking.svg, unmasking.csv];
    outputs.push(dir.file("card.yaml"));
    run.finish(&dir, device, &outputs)?;
    println!("fig2 ({}) written to {}\nsample: {text}", args.common.scale, dir.path.display());
    Ok(())
}
