//! Artifact `image-samples` (paper Table 6, Figs. 6 and 9; spec §5.2, §10.6): sample grids
//! from table3's MD4 image models for Table 6's three unconditional settings at several step
//! counts T, each with its network calls, one overview picture, and Table 6 with the reason our
//! FID column is empty.

use super::{ImageSamplesConfig, SampleOutput, Table3Config};
use crate::context::ArtifactContext;
use crate::{ArtifactDir, Scale, suite};
use anyhow::{Context, Result};
use md4_core::sampler::SamplerConfig;
use md4_eval::ImagePanels;
use md4_eval::table::{PaperTables, Row, Table};
use std::fmt::Write as _;
use std::path::PathBuf;

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

/// Sample every setting at every T, write the grids, their cards, the overview picture,
/// `samples.md`/`samples.csv`, Table 6 and the summary card.
pub fn image_samples(ctx: &ArtifactContext) -> Result<()> {
    let scale = ctx.scale;
    let cfg: ImageSamplesConfig = ctx.config("image-samples")?;
    let table3: Table3Config = ctx.config("table3")?;
    let paper = ctx.paper()?;
    let (mut outputs, mut cells, mut panels, mut sources) = (vec![], vec![], vec![], vec![]);
    for setting in &cfg.settings {
        let suite_cfg = table3.suite_of(&setting.row)?;
        let row = suite_cfg.row(&setting.row)?;
        let (run_dir, loaded) = suite::trained(ctx, suite_cfg, "table3", row)?;
        sources.push(format!(
            "{}: table3 row '{}' ({} schedule), {} at step {} (EMA weights); Table 6 row '{}'",
            setting.name,
            row.name,
            suite::schedule_label(&loaded.cfg),
            run_dir.display(),
            loaded.step,
            paper.row("table6", &setting.paper_row)?.method
        ));
        for &steps in &cfg.steps {
            let sampler = SamplerConfig { steps, grid: setting.grid, precision: cfg.precision, top_p: None };
            eprintln!("== {}: {} samples, T = {steps}", setting.name, cfg.n_samples);
            let stem = format!("{}_T{steps}", setting.slug);
            let out = SampleOutput {
                item: format!("{}, T = {steps}", setting.name),
                png: stem.clone(),
                card: stem.clone(),
                png_label: format!("samples/{stem}.png"),
                run_dir: &run_dir,
            };
            let (samples, paths) =
                super::write_samples(ctx, &loaded, &sampler, (cfg.n_samples, cfg.seed), out)?;
            outputs.extend(paths);
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
    let overview_path = ctx.dir.file("image_samples.png");
    overview.write_png(&overview_path)?;
    outputs.push(overview_path);
    outputs.extend(write_cells(&ctx.dir, &cells)?);
    outputs.extend(write_table6(&ctx.dir, &paper)?);

    let mut card = ctx.card("all settings; Table 6 protocol", ctx.run.elapsed());
    card.notes = vec![cfg.description.clone()];
    card.notes.extend(sources);
    card.notes.extend([
        "settings: the three unconditional rows of Table 6 — linear α_t on the uniform grid, linear α_t on the cosine grid t(i) = cos(π/2·(1 − i/T)), cosine α_t on the uniform grid; the class-conditional row is out of scope (no labels are modelled)".to_string(),
        "network calls: T reverse steps plus one argmax fill of positions still masked after the last step (counted only when needed); every step calls the network because the U-Net is time-conditioned".to_string(),
        "Table 6 protocol as the spec knows it (§10.6): FID of 50,000 samples per cell, T = 64, 128, 256, 512, uniform grid unless noted, EMA weights; the reference statistics and the Inception implementation are not stated in the paper (assumed: the standard TF-Inception pool-3 FID against ImageNet 64×64 training images)".to_string(),
        fid_reason(scale),
    ]);
    outputs.push(ctx.write_card(&card, "card.yaml")?);
    ctx.finish(&outputs)?;
    println!("{}", std::fs::read_to_string(ctx.dir.file("samples.md"))?);
    println!("image-samples ({scale}) written to {}", ctx.dir.path.display());
    Ok(())
}

/// Table 6: the paper's FID beside an empty column (`card.yaml` says why), as `table6.md`
/// and `rows.csv`.
fn write_table6(dir: &ArtifactDir, paper: &PaperTables) -> Result<[PathBuf; 2]> {
    let mut table = Table::new(
        "Table 6 — FID of 50k unconditional samples, MD4 on ImageNet 64×64 (uniform grid unless noted)",
        2,
    );
    let columns = &paper.table("table6")?.columns;
    for prow in &paper.table("table6")?.rows {
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
    Ok([table6, csv])
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
