//! Artifact `table3` (paper Table 3, spec §10.3, §7.2, §7.3, §9.4): bits per dimension of MD4,
//! Campbell et al.'s absorbing objective on the same U-Net, and an autoregressive transformer
//! over sub-pixels of comparable size and budget, each number a mean ± standard error over the
//! evaluation images with K Monte-Carlo passes and EMA weights; the paper's CIFAR-10 and
//! ImageNet 64×64 rows are printed beside ours. Also: loading-path checks of the CIFAR-10 and
//! ImageNet64 networks on the 20 real foolbox images of each (untrained bits per dimension =
//! 8·(1 − ε), logits' shape, one training step), and a grid of samples from every diffusion row.
//!
//! Command: `just reproduce table3 [smoke|small|paper]`
//! (`cargo run -p experiments --bin table3 -- --scale small`).
//! Runtime: smoke ≈ 20 s (tiny networks, CI); small ≈ 24 min on a 2-core CPU with bf16 (complete
//! Fashion-MNIST from the Debian package, 1.3M-parameter U-Net, 300 updates × 16 images per
//! row; ≈ 8 min when the four training runs exist); paper: CIFAR-10 (28.4M U-Net) and
//! ImageNet64 (198.3M U-Net + DiT) with the paper's 2M-step recipes on Hub data (GPU cluster
//! scale). Finished runs in `runs/table3/<scale>/` are reused.
//! Writes `results/table3/<scale>/{table.md, rows.csv, card.yaml, record.yaml}`,
//! `cards/<row>.yaml` (and `cards/campbell-md4-estimator.yaml`), `curves.{png,svg,csv}`,
//! `samples/<row>.png` with `cards/<row>-samples.yaml`, and
//! `checks/{table.md, rows.csv, <i>-<dataset>.yaml}`.

use anyhow::{Context, Result};
use clap::Parser;
use experiments::images::{self, CheckResult, Table3Config};
use experiments::suite::{self, Estimator};
use experiments::{ArtifactArgs, ArtifactDir, Run, load_config, workspace_root};
use md4_eval::table::{PaperTables, Row, Table};
use md4_eval::{Environment, Estimate, LikelihoodProtocol, LinePlot, ProtocolCard, SamplingProtocol, Unit};
use std::collections::BTreeSet;

/// Table 3: bits per dimension of MD4, Campbell et al. absorb and an AR transformer.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: ArtifactArgs,
    /// Only these rows (by slug, comma-separated); the table then lists only them.
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Skip the loading-path checks on the foolbox images.
    #[arg(long)]
    no_checks: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scale = args.common.scale;
    let run = Run::start("table3", scale);
    let root = workspace_root();
    let device = args.common.device()?;
    let cfg: Table3Config = load_config(&root, "table3", scale)?;
    cfg.validate()?;
    let paper = PaperTables::load(&root.join("results/paper.yaml"))?;
    let dir = ArtifactDir::resolve(args.common.out.as_deref(), "table3", scale);
    dir.create()?;

    let unit = Unit::BitsPerDim;
    let reference = cfg.suites.first().context("table3 has no suites")?.reference_row()?.name.clone();
    let mut table = Table::new(&format!("Bits per dimension — {}", cfg.description), 3)
        .with_delta_column(&reference, unit);
    let mut outputs = vec![];
    let mut curves = vec![];
    let mut used_paper_rows = BTreeSet::new();
    let mut data_protocols = vec![];
    for suite_cfg in &cfg.suites {
        let (seqs, data) = images::image_sequences(&suite_cfg.eval)?;
        eprintln!(
            "table3 ({scale}): {} {} images of {} sub-pixels",
            data.n_sequences, data.dataset, data.sequence_length
        );
        let ref_cfg = suite_cfg.run_config(suite_cfg.reference_row()?)?;
        table
            .references
            .push((suite::references(&ref_cfg, &suite_cfg.eval, &seqs, scale.reference_train_cap())?, unit));
        let rows: Vec<_> =
            suite_cfg.rows.iter().filter(|r| args.rows.is_empty() || args.rows.contains(&r.slug)).collect();
        let mut scored = vec![];
        for row in rows {
            let run_dir = suite::run_dir("table3", scale, &row.slug);
            suite::ensure_trained(suite_cfg, row, &run_dir, device)?;
            let loaded = suite::load(&run_dir, device)?;
            eprintln!(
                "== {}: evaluating {} images × {} passes",
                row.name, data.n_sequences, suite_cfg.eval.passes
            );
            let result = suite::evaluate_run(&loaded, &seqs, &suite_cfg.eval, Estimator::Reported, device)?;
            let bound = suite::bound_of(&loaded.trained, Estimator::Reported, None);
            let exact = loaded.trained.is_exact();
            let paper_value = match &row.paper_row {
                Some(key) => {
                    used_paper_rows.insert(key.clone());
                    Some(paper.value("table3", key, "bpd")?)
                }
                None => None,
            };
            let params = if exact {
                match &loaded.cfg.model {
                    md4_models::ModelConfig::Transformer(t) => t.ar_variant().param_count(),
                    other => other.param_count(),
                }
            } else {
                loaded.cfg.model.param_count()
            };
            let notes = format!(
                "{}; {:.2}M params; {} steps × {} images; {} {}",
                suite::bound_label(&bound),
                params as f64 / 1e6,
                loaded.step,
                loaded.cfg.train.batch,
                data.dataset,
                data.split,
            );
            let table_row = Row::new(
                &row.name,
                Some(Estimate::from_result(&result, unit, !exact)),
                unit.label(),
                paper_value,
                &notes,
            );
            scored.push((row.slug.clone(), table_row, result.clone()));

            let likelihood = LikelihoodProtocol::from_result(
                &result,
                bound,
                &suite::schedule_label(&loaded.cfg),
                true,
                if exact { "none (exact likelihood)" } else { md4_eval::KEYED_TIME_SAMPLING },
                unit,
            );
            let card_notes = vec![
                format!("run directory: {}", run_dir.display()),
                format!("checkpoint: {} (EMA weights, step {})", loaded.checkpoint.display(), loaded.step),
                format!("objective: {:?}", loaded.cfg.objective),
                format!("parameters: {params}"),
                format!(
                    "trained on {} {}, evaluated only on {} {}: the model is scored on nothing but the test images of the data set it was trained on",
                    suite_cfg.eval.dataset,
                    match &loaded.cfg.data {
                        md4_train::DataConfig::Dataset { train_split, .. } => train_split.as_str(),
                        _ => "its own data",
                    },
                    data.dataset,
                    data.split
                ),
                suite_cfg.description.clone(),
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
                card_notes,
            )?);
            curves.extend(suite::validation_series(&row.name, &run_dir)?);

            // Campbell et al.'s estimator is unbiased for the same bound as MD4's but noisier
            // (one unmasked position per image): scoring the same network with MD4's estimator
            // separates "the objective trains a worse network" from "the estimate is noisier".
            if matches!(loaded.cfg.objective, md4_train::ObjectiveConfig::Campbell { .. }) {
                eprintln!("== {}: scoring the same network with MD4's estimator", row.name);
                let md4_result =
                    images::evaluate_with_md4_estimator(&loaded, &seqs, &suite_cfg.eval, device)?;
                let name = format!("{}, scored with MD4's estimator", row.name);
                let table_row = Row::new(
                    &name,
                    Some(Estimate::from_result(&md4_result, unit, true)),
                    unit.label(),
                    None,
                    &format!(
                        "the network of the row above; same bound, MD4's continuous-time estimator; {} {}",
                        data.dataset, data.split
                    ),
                );
                scored.push((format!("{}-md4-estimator", row.slug), table_row, md4_result.clone()));
                let likelihood = LikelihoodProtocol::from_result(
                    &md4_result,
                    bound,
                    &suite::schedule_label(&loaded.cfg),
                    true,
                    md4_eval::KEYED_TIME_SAMPLING,
                    unit,
                );
                let notes = vec![
                    format!("run directory: {} (step {}, trained with {:?})", run_dir.display(), loaded.step, loaded.cfg.objective),
                    "for the same network both estimators have the same expectation (spec §6, Prop. 3; md4-core's oracle test)".into(),
                ];
                let stem = format!("{}-md4-estimator", row.slug);
                outputs.push(suite::write_row_card(
                    &run,
                    &dir,
                    device,
                    md4_result.wall_seconds,
                    &name,
                    &stem,
                    &data,
                    likelihood,
                    notes,
                )?);
            }

            if let (Some(spec), false) = (&cfg.samples, exact) {
                eprintln!(
                    "== {}: {} samples, T = {} ({} grid)",
                    row.name,
                    spec.n_samples,
                    spec.steps,
                    spec.grid.name()
                );
                let samples = images::sample_images(
                    &loaded,
                    spec.n_samples,
                    &images::sampler_of(spec),
                    spec.seed,
                    device,
                )?;
                let png = dir.file(&format!("samples/{}.png", row.slug));
                samples.grid.write_png(&png)?;
                let mut card = ProtocolCard::new(
                    "table3",
                    &format!("{} samples", row.name),
                    scale.name(),
                    Environment::capture(Some(&root), device, samples.wall_seconds),
                );
                card.sampling = Some(SamplingProtocol {
                    schedule: suite::schedule_label(&loaded.cfg),
                    grid: spec.grid.name().into(),
                    steps: spec.steps,
                    precision: spec.precision.name().into(),
                    top_p: None,
                    n_samples: spec.n_samples as usize,
                    seed: spec.seed,
                    ema: true,
                    network_calls: samples.network_calls,
                });
                card.notes = vec![
                    format!("run directory: {} (step {})", run_dir.display(), loaded.step),
                    format!("positions still masked after the last step, filled by argmax: {}", samples.argmax_filled),
                    "samples/<row>.png is a lossless 8-bit grid (1-pixel black gutters); its pixels are the sampled tokens".into(),
                ];
                let card_path = dir.file(&format!("cards/{}-samples.yaml", row.slug));
                card.write(&card_path)?;
                outputs.extend([png, card_path]);
            }
        }
        suite::push_paired(&mut table, scored, &suite_cfg.reference_row()?.slug, unit)?;
        data_protocols.push(data);
    }

    // The paper's rows that no row of ours mirrors, for reference.
    for prow in &paper.table("table3")?.rows {
        if used_paper_rows.contains(&prow.key) {
            continue;
        }
        let group = prow.group.as_deref().unwrap_or("");
        let params = prow.params.as_deref().map(|p| format!(", {p} params")).unwrap_or_default();
        table.push(Row::new(
            &format!("{} — {group}", prow.method),
            None,
            unit.label(),
            Some(paper.value("table3", &prow.key, "bpd")?),
            &format!("paper only ({group}{params})"),
        ));
    }

    if !args.no_checks && !cfg.checks.is_empty() {
        outputs.extend(write_checks(&cfg, &dir, device)?);
    }

    // Has training converged at this budget? The last fifth of each validation curve.
    let flattening: Vec<String> = curves
        .iter()
        .filter_map(|c: &md4_eval::Series| {
            let gain = c.last_fifth_improvement()?;
            let verdict = if gain < 0.02 { "flattened (< 2 %)" } else { "still improving (≥ 2 %)" };
            Some(format!("{}: {:.1} %, {verdict}", c.name, 100.0 * gain))
        })
        .collect();
    if !flattening.is_empty() {
        table.footer.push(format!(
            "Validation BPD gained over the last fifth of training (EMA weights, 4 validation batches): {}.",
            flattening.join("; ")
        ));
    }
    let curves = LinePlot::new(
        "Validation bits per dimension (EMA weights) during training",
        "training step",
        "validation BPD (bound; exact for AR)",
        curves,
    );
    let mut notes = vec![
        cfg.description.clone(),
        suite::paired_note(&reference),
        "each row's estimator, passes and checkpoint are in cards/<row>.yaml; samples/<row>.png with cards/<row>-samples.yaml".into(),
        "paper column: arXiv v4 Table 3 — CIFAR-10 test and downsampled ImageNet 64×64 validation, no augmentation; rows without ours are the paper's baselines".into(),
    ];
    if scale != experiments::Scale::Paper {
        notes.push(format!(
            "evaluated on nothing it was not trained for: the {scale}-scale models are trained on the Fashion-MNIST training split and scored only on Fashion-MNIST test images; they are not evaluated on CIFAR-10 or ImageNet 64×64 (colour, 32×32 and 64×64), which they never saw, so compare orderings with the paper's column, never values"
        ));
        notes.push("Table 6 (FID) is not computed at this scale: see the image-samples artifact".into());
    }
    for extra in data_protocols.iter().skip(1) {
        notes.push(format!(
            "also evaluated: {} {} ({} images, tokens sha256 {})",
            extra.dataset, extra.split, extra.n_sequences, extra.tokens_sha256
        ));
    }
    let data = data_protocols.into_iter().next().expect("table3 has at least one suite");
    suite::finish_table(&run, &dir, device, &table, Some(curves), data, notes, outputs)?;
    println!("table3 ({scale}) written to {}", dir.path.display());
    Ok(())
}

/// Run the loading-path checks; write `checks/<i>.yaml` per check and `checks/table.md`.
fn write_checks(
    cfg: &Table3Config,
    dir: &ArtifactDir,
    device: tch::Device,
) -> Result<Vec<std::path::PathBuf>> {
    let mut outputs = vec![];
    let mut table = Table::new("Loading-path checks: untrained networks on the foolbox images", 4);
    for (i, spec) in cfg.checks.iter().enumerate() {
        eprintln!("== check: {}", spec.name);
        let result: CheckResult = images::run_check(spec, device)?;
        let path = dir.file(&format!("checks/{}-{}.yaml", i, spec.dataset));
        std::fs::create_dir_all(dir.file("checks"))?;
        std::fs::write(&path, serde_yaml::to_string(&result)?)?;
        outputs.push(path);
        let estimate = Estimate { mean: result.untrained_bpd, se: result.untrained_bpd_se, bound: true };
        let notes = format!(
            "{} images {}x{}x{}, {:.1}M params; expected (1 − ε)·8 = {:.4}; logits {:?}, max |logit| {}; one training step: loss {:.4} bits, parameters finite: {}, the batch's BPD with the same masks {:.4} → {:.4}",
            result.images,
            result.shape[0],
            result.shape[1],
            result.shape[2],
            result.parameters as f64 / 1e6,
            result.expected_bpd,
            result.logits_shape,
            result.untrained_logits_max_abs,
            result.step_loss_bits,
            result.step_params_finite,
            result.batch_bpd_before,
            result.batch_bpd_after,
        );
        table.push(Row::new(&spec.name, Some(estimate), "BPD", None, &notes));
    }
    let (md, csv) = table.write(&dir.file("checks"))?;
    outputs.extend([md, csv]);
    Ok(outputs)
}
