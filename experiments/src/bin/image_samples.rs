//! Artifact `image-samples` (paper Table 6 and Figs. 2 left, 6, 9; spec §5.2, §10.6): grids of
//! unconditional samples from table3's MD4 image models for the three unconditional settings
//! of Table 6 — the linear schedule on a uniform grid, the linear schedule on the cosine grid,
//! and the cosine schedule on a uniform grid — at several step counts T, each with its number
//! of network calls, and the Table 6 protocol. FID is not computed here (see `table6.md`).
//!
//! Command: `just reproduce image-samples [smoke|small|paper]`
//! (`cargo run -p experiments --bin image_samples -- --scale small`).
//! Runtime: smoke ≈ 10 s; small ≈ 3 min on a 2-core CPU (16 samples per cell, T = 4, 8, 16,
//! 32), plus table3's `md4-linear` and `md4-cosine` training runs if they do not exist yet;
//! paper: T = 64 … 512 with the ImageNet64 models (GPU).
//! Writes `results/image-samples/<scale>/{image_samples.png, samples.md, samples.csv,
//! table6.md, rows.csv, card.yaml, record.yaml}`, `samples/<setting>_T<steps>.png` and
//! `cards/<setting>_T<steps>.yaml`.

use anyhow::{Context, Result};
use clap::Parser;
use experiments::images::{self, ImageSamplesConfig, Table3Config};
use experiments::{ArtifactArgs, ArtifactDir, Run, Scale, load_config, suite, workspace_root};
use md4_core::sampler::SamplerConfig;
use md4_eval::table::{PaperTables, Row, Table};
use md4_eval::{Environment, ImagePanels, ProtocolCard, SamplingProtocol};
use std::fmt::Write as _;

/// Image samples: Table 6's sampler settings, with network calls; the FID protocol.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
}

/// One drawn cell of the picture.
struct Cell {
    setting: String,
    slug: String,
    steps: i64,
    network_calls: i64,
    argmax_filled: i64,
    wall_seconds: f64,
    file: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scale = args.common.scale;
    let run = Run::start("image-samples", scale);
    let root = workspace_root();
    let device = args.common.device()?;
    let cfg: ImageSamplesConfig = load_config(&root, "image-samples", scale)?;
    let table3: Table3Config = load_config(&root, "table3", scale)?;
    let paper = PaperTables::load(&root.join("results/paper.yaml"))?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "image-samples", scale);
    dir.create()?;

    let mut outputs = vec![];
    let mut cells = vec![];
    let mut panels = vec![];
    let mut sources = vec![];
    for setting in &cfg.settings {
        let suite_cfg = table3.suite_of(&setting.row)?;
        let row = suite_cfg.row(&setting.row)?;
        let run_dir = suite::run_dir("table3", scale, &row.slug);
        suite::ensure_trained(suite_cfg, row, &run_dir, device)?;
        let loaded = suite::load(&run_dir, device)?;
        let schedule = suite::schedule_label(&loaded.cfg);
        sources.push(format!(
            "{}: table3 row '{}' ({schedule} schedule), {} at step {} (EMA weights); Table 6 row '{}'",
            setting.name,
            row.name,
            run_dir.display(),
            loaded.step,
            paper.row("table6", &setting.paper_row)?.method
        ));
        for &steps in &cfg.steps {
            let sampler = SamplerConfig { steps, grid: setting.grid, precision: cfg.precision, top_p: None };
            eprintln!("== {}: {} samples, T = {steps}", setting.name, cfg.n_samples);
            let samples = images::sample_images(&loaded, cfg.n_samples, &sampler, cfg.seed, device)?;
            let stem = format!("{}_T{steps}", setting.slug);
            let png = dir.file(&format!("samples/{stem}.png"));
            samples.grid.write_png(&png)?;
            let mut card = ProtocolCard::new(
                "image-samples",
                &format!("{}, T = {steps}", setting.name),
                scale.name(),
                Environment::capture(Some(&root), device, samples.wall_seconds),
            );
            card.sampling = Some(SamplingProtocol {
                schedule: schedule.clone(),
                grid: setting.grid.name().into(),
                steps,
                precision: cfg.precision.name().into(),
                top_p: None,
                n_samples: cfg.n_samples as usize,
                seed: cfg.seed,
                ema: true,
                network_calls: samples.network_calls,
            });
            card.notes = vec![
                format!("run directory: {} (step {})", run_dir.display(), loaded.step),
                format!(
                    "positions still masked after the last step, filled by argmax: {}",
                    samples.argmax_filled
                ),
                format!(
                    "samples/{stem}.png is a lossless 8-bit grid (1-pixel black gutters); its pixels are the sampled tokens"
                ),
            ];
            let card_path = dir.file(&format!("cards/{stem}.yaml"));
            card.write(&card_path)?;
            outputs.extend([png, card_path]);
            panels.push((
                format!("{}\nT = {steps}: {} network calls", setting.name, samples.network_calls),
                samples.grid.clone(),
            ));
            cells.push(Cell {
                setting: setting.name.clone(),
                slug: setting.slug.clone(),
                steps,
                network_calls: samples.network_calls,
                argmax_filled: samples.argmax_filled,
                wall_seconds: samples.wall_seconds,
                file: format!("samples/{stem}.png"),
            });
        }
    }
    let mut overview = ImagePanels::new(
        &format!("Unconditional MD4 samples, {} per cell ({} scale)", cfg.n_samples, scale),
        panels,
        cfg.steps.len(),
    );
    // Small images are magnified so that a panel is wider than its label.
    overview.zoom = if overview.panels[0].1.height <= 32 { 3 } else { 1 };
    let overview_path = dir.file("image_samples.png");
    overview.write_png(&overview_path)?;
    outputs.push(overview_path);
    outputs.extend(write_cells(&dir, &cells)?);

    // Table 6: the paper's FID beside an empty column, with why ours is empty.
    let fid_reason = fid_reason(scale);
    let mut table = Table::new(
        "Table 6 — FID of 50k unconditional samples, MD4 on ImageNet 64×64 (uniform grid unless noted)",
        2,
    );
    let prows = &paper.table("table6")?.rows;
    let columns = &paper.table("table6")?.columns;
    for prow in prows {
        for column in columns {
            let steps = column.trim_start_matches('t');
            table.push(Row::new(
                &format!("{}, T = {steps}", prow.method),
                None,
                "FID",
                Some(paper.value("table6", &prow.key, column)?),
                "not computed (card.yaml)",
            ));
        }
    }
    let (md, csv) = table.write(&dir.path)?;
    let table6 = dir.file("table6.md");
    std::fs::rename(&md, &table6).with_context(|| format!("writing {}", table6.display()))?;
    outputs.extend([table6, csv]);

    let mut card = ProtocolCard::new(
        "image-samples",
        "all settings; Table 6 protocol",
        scale.name(),
        Environment::capture(Some(&root), device, run.elapsed()),
    );
    card.notes = vec![cfg.description.clone()];
    card.notes.extend(sources);
    card.notes.extend([
        "settings: the three unconditional rows of Table 6 — linear α_t on the uniform grid, linear α_t on the cosine grid t(i) = cos(π/2·(1 − i/T)), cosine α_t on the uniform grid; the class-conditional row is out of scope (no labels are modelled)".to_string(),
        "network calls: T reverse steps plus one argmax fill of positions still masked after the last step (counted only when needed); every step calls the network because the U-Net is time-conditioned".to_string(),
        "Table 6 protocol as the spec knows it (§10.6): FID of 50,000 samples per cell, T = 64, 128, 256, 512, uniform grid unless noted, EMA weights; the reference statistics and the Inception implementation are not stated in the paper (assumed: the standard TF-Inception pool-3 FID against ImageNet 64×64 training images)".to_string(),
        fid_reason,
    ]);
    card.write(&dir.file("card.yaml"))?;
    outputs.push(dir.file("card.yaml"));
    run.finish(&dir, device, &outputs)?;
    println!("{}", std::fs::read_to_string(dir.file("samples.md"))?);
    println!("image-samples ({scale}) written to {}", dir.path.display());
    Ok(())
}

/// Why our FID column is empty at `scale`.
fn fid_reason(scale: Scale) -> String {
    match scale {
        Scale::Paper => "FID is not computed by md4-rs: it needs Inception-v3 weights and ImageNet 64×64 reference statistics, which no package registry ships and this repository does not implement; feed the 50k-sample sets of the paper-scale models to a standard FID tool".into(),
        Scale::Small | Scale::Smoke => format!(
            "FID is not computed at {scale} scale, and no stand-in metric is reported: (1) FID needs an Inception-v3 network and reference statistics that are not available offline; (2) the samples are 28×28 grey Fashion-MNIST images from a 1.3M-parameter U-Net trained for a few hundred CPU updates (cards/*.yaml give the step), not ImageNet 64×64 — an Inception distance on them would not be comparable with the paper's values. Compare the grids by eye and the network calls; the paper's values are listed for reference"
        ),
    }
}

/// `samples.md` and `samples.csv`: one line per (setting, T).
fn write_cells(dir: &ArtifactDir, cells: &[Cell]) -> Result<Vec<std::path::PathBuf>> {
    let mut md = String::from(
        "## Image samples: network calls per setting\n\n| setting | T | network calls | argmax-filled positions | wall s | grid |\n|---|---|---|---|---|---|\n",
    );
    let mut csv = String::from("setting,slug,steps,network_calls,argmax_filled,wall_seconds,file\n");
    for c in cells {
        writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | [{}]({}) |",
            c.setting, c.steps, c.network_calls, c.argmax_filled, c.wall_seconds, c.file, c.file
        )?;
        writeln!(
            csv,
            "\"{}\",{},{},{},{},{:.3},{}",
            c.setting.replace('"', "\"\""),
            c.slug,
            c.steps,
            c.network_calls,
            c.argmax_filled,
            c.wall_seconds,
            c.file
        )?;
    }
    let (md_path, csv_path) = (dir.file("samples.md"), dir.file("samples.csv"));
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    Ok(vec![md_path, csv_path])
}
