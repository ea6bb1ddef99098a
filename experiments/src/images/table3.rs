//! Artifact `table3` (paper Table 3, spec §10.3): the likelihood loop of
//! [`crate::suite::likelihood_table`] over one suite per image data set, scoring whole images,
//! plus Campbell et al.'s network scored with MD4's estimator, a sample grid per diffusion row,
//! the paper's rows that no row of ours mirrors, and the loading-path checks on the foolbox
//! images.

use super::{CheckResult, SampleOutput, Table3Config};
use crate::context::ArtifactContext;
use crate::suite::{self, Estimator, RowReport, RowSpec, ScoredRow, SuiteConfig};
use anyhow::{Context, Result};
use md4_eval::table::{PaperTables, Row, Table};
use md4_eval::{DataProtocol, Estimate, LinePlot, Series, Unit};
use md4_train::LoadedRun;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tch::Tensor;

const UNIT: Unit = Unit::BitsPerDim;

/// Train (or reuse) and score every row of every suite (only the slugs in `only` when not
/// empty), write the table, cards, curves, sample grids and — with `checks` — the loading-path
/// checks.
pub fn table3(ctx: &ArtifactContext, only: &[String], checks: bool) -> Result<()> {
    let scale = ctx.scale;
    let cfg: Table3Config = ctx.config("table3")?;
    cfg.validate()?;
    let paper = ctx.paper()?;
    let reference = cfg.suites.first().context("table3 has no suites")?.reference_row()?.name.clone();
    let mut table = Table::new(&format!("Bits per dimension — {}", cfg.description), 3)
        .with_delta_column(&reference, UNIT);
    let (mut outputs, mut curves, mut data_protocols) = (vec![], vec![], vec![]);
    let mut used_paper_rows = BTreeSet::new();
    for suite_cfg in &cfg.suites {
        let (seqs, data) = super::image_sequences(&suite_cfg.eval)?;
        eprintln!(
            "table3 ({scale}): {} {} images of {} sub-pixels",
            data.n_sequences, data.dataset, data.sequence_length
        );
        let ref_cfg = suite_cfg.run_config(suite_cfg.reference_row()?)?;
        table.references.push((
            crate::references::references(&ref_cfg, &suite_cfg.eval, &seqs, scale.reference_train_cap())?,
            UNIT,
        ));
        let mut scored = vec![];
        for row in suite_cfg.rows.iter().filter(|r| only.is_empty() || only.contains(&r.slug)) {
            let (run_dir, loaded) = suite::trained(ctx, suite_cfg, "table3", row)?;
            eprintln!(
                "== {}: evaluating {} images × {} passes",
                row.name, data.n_sequences, suite_cfg.eval.passes
            );
            let result =
                suite::evaluate_run(&loaded, &seqs, &suite_cfg.eval, Estimator::Reported, ctx.device)?;
            let bound = suite::bound_of(&loaded.trained, Estimator::Reported, None);
            let paper_value = match &row.paper_row {
                Some(key) => {
                    used_paper_rows.insert(key.clone());
                    Some(paper.value("table3", key, "bpd")?)
                }
                None => None,
            };
            let params = loaded.parameters();
            let (row_scored, card) = suite::report_row(
                ctx,
                &data,
                UNIT,
                RowReport {
                    paper: paper_value,
                    note: format!(
                        "{}; {:.2}M params; {} steps × {} images; {} {}",
                        suite::bound_label(&bound),
                        params as f64 / 1e6,
                        loaded.step,
                        loaded.cfg.train.batch,
                        data.dataset,
                        data.split,
                    ),
                    card_notes: [suite::run_notes(&run_dir, &loaded), vec![
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
                    ]].concat(),
                    ..RowReport::reported(row, &loaded, result, bound)
                },
            )?;
            scored.push(row_scored);
            outputs.push(card);
            curves.extend(suite::validation_series(&row.name, &run_dir)?);
            if matches!(loaded.cfg.objective, md4_train::ObjectiveConfig::Campbell { .. }) {
                let (row_scored, card) =
                    campbell_with_md4_estimator(ctx, suite_cfg, row, &loaded, &run_dir, (&seqs, &data))?;
                scored.push(row_scored);
                outputs.push(card);
            }
            if let (Some(spec), false) = (&cfg.samples, loaded.trained.is_exact()) {
                eprintln!(
                    "== {}: {} samples, T = {} ({} grid)",
                    row.name,
                    spec.n_samples,
                    spec.steps,
                    spec.grid.name()
                );
                let out = SampleOutput {
                    item: format!("{} samples", row.name),
                    png: row.slug.clone(),
                    card: format!("{}-samples", row.slug),
                    png_label: "samples/<row>.png".into(),
                    run_dir: &run_dir,
                };
                let sampler = super::sampler_of(spec);
                let (_, paths) =
                    super::write_samples(ctx, &loaded, &sampler, (spec.n_samples, spec.seed), out)?;
                outputs.extend(paths);
            }
        }
        suite::push_paired(&mut table, scored, &suite_cfg.reference_row()?.slug, UNIT)?;
        data_protocols.push(data);
    }
    push_paper_only_rows(&mut table, &paper, &used_paper_rows)?;
    if checks && !cfg.checks.is_empty() {
        outputs.extend(write_checks(&cfg, ctx)?);
    }
    if let Some(footer) = flattening_footer(&curves) {
        table.footer.push(footer);
    }
    let curves = LinePlot::new(
        "Validation bits per dimension (EMA weights) during training",
        "training step",
        "validation BPD (bound; exact for AR)",
        curves,
    );
    let notes = summary_notes(&cfg, ctx, &reference, &data_protocols);
    let data = data_protocols.into_iter().next().expect("table3 has at least one suite");
    suite::finish_table(ctx, &table, Some(curves), data, notes, outputs)?;
    println!("table3 ({scale}) written to {}", ctx.dir.path.display());
    Ok(())
}

/// Campbell et al.'s estimator is unbiased for the same bound as MD4's but noisier (one unmasked
/// position per image): scoring the same network with MD4's estimator separates "the objective
/// trains a worse network" from "the estimate is noisier".
fn campbell_with_md4_estimator(
    ctx: &ArtifactContext,
    suite_cfg: &SuiteConfig,
    row: &RowSpec,
    loaded: &LoadedRun,
    run_dir: &Path,
    (seqs, data): (&Tensor, &DataProtocol),
) -> Result<(ScoredRow, PathBuf)> {
    let (row_name, slug) = (&row.name, &row.slug);
    eprintln!("== {row_name}: scoring the same network with MD4's estimator");
    let result = super::evaluate_with_md4_estimator(loaded, seqs, &suite_cfg.eval, ctx.device)?;
    suite::report_row(
        ctx,
        data,
        UNIT,
        RowReport {
            name: format!("{row_name}, scored with MD4's estimator"),
            key: format!("{slug}-md4-estimator"),
            stem: format!("{slug}-md4-estimator"),
            result,
            estimator: Estimator::Reported,
            bound: suite::bound_of(&loaded.trained, Estimator::Reported, None),
            schedule: suite::schedule_label(&loaded.cfg),
            paper: None,
            note: format!(
                "the network of the row above; same bound, MD4's continuous-time estimator; {} {}",
                data.dataset, data.split
            ),
            card_notes: vec![
                format!(
                    "run directory: {} (step {}, trained with {:?})",
                    run_dir.display(),
                    loaded.step,
                    loaded.cfg.objective
                ),
                "for the same network both estimators have the same expectation (spec §6, Prop. 3; md4-core's oracle test)".into(),
            ],
        },
    )
}

/// The paper's rows that no row of ours mirrors, for reference.
fn push_paper_only_rows(table: &mut Table, paper: &PaperTables, used: &BTreeSet<String>) -> Result<()> {
    for prow in paper.table("table3")?.rows.iter().filter(|r| !used.contains(&r.key)) {
        let group = prow.group.as_deref().unwrap_or("");
        let params = prow.params.as_deref().map(|p| format!(", {p} params")).unwrap_or_default();
        table.push(Row::new(
            &format!("{} — {group}", prow.method),
            None,
            UNIT.label(),
            Some(paper.value("table3", &prow.key, "bpd")?),
            &format!("paper only ({group}{params})"),
        ));
    }
    Ok(())
}

/// Has training converged at this budget? The last fifth of each validation curve.
fn flattening_footer(curves: &[Series]) -> Option<String> {
    let flattening: Vec<String> = curves
        .iter()
        .filter_map(|c| {
            let gain = c.last_fifth_improvement()?;
            let verdict = if gain < 0.02 { "flattened (< 2 %)" } else { "still improving (≥ 2 %)" };
            Some(format!("{}: {:.1} %, {verdict}", c.name, 100.0 * gain))
        })
        .collect();
    (!flattening.is_empty()).then(|| {
        format!(
            "Validation BPD gained over the last fifth of training (EMA weights, 4 validation batches): {}.",
            flattening.join("; ")
        )
    })
}

/// The summary card's notes.
fn summary_notes(
    cfg: &Table3Config,
    ctx: &ArtifactContext,
    reference: &str,
    data_protocols: &[DataProtocol],
) -> Vec<String> {
    let scale = ctx.scale;
    let mut notes = vec![
        cfg.description.clone(),
        suite::paired_note(reference),
        "each row's estimator, passes and checkpoint are in cards/<row>.yaml; samples/<row>.png with cards/<row>-samples.yaml".into(),
        "paper column: arXiv v4 Table 3 — CIFAR-10 test and downsampled ImageNet 64×64 validation, no augmentation; rows without ours are the paper's baselines".into(),
    ];
    if scale != crate::Scale::Paper {
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
    notes
}

/// Run the loading-path checks; write `checks/<i>-<dataset>.yaml` per check and `checks/table.md`.
fn write_checks(cfg: &Table3Config, ctx: &ArtifactContext) -> Result<Vec<PathBuf>> {
    let mut outputs = vec![];
    let mut table = Table::new("Loading-path checks: untrained networks on the foolbox images", 4);
    for (i, spec) in cfg.checks.iter().enumerate() {
        eprintln!("== check: {}", spec.name);
        let result: CheckResult = super::run_check(spec, ctx.device)?;
        let path = ctx.dir.file(&format!("checks/{}-{}.yaml", i, spec.dataset));
        std::fs::create_dir_all(ctx.dir.file("checks"))?;
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
    let (md, csv) = table.write(&ctx.dir.file("checks"))?;
    outputs.extend([md, csv]);
    Ok(outputs)
}
