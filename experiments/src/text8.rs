//! The text8 artifacts that reuse table2's suite and runs at the same scale (spec §3.4, §10.2,
//! §10.8): `table7-text8` (finite-T against continuous bounds of one MD4), `ablate-schedules`
//! (MD4 trained with each masking schedule), `fig2` (tokens revealed per step and a sample's
//! unmasking order) and `fig-genmd4-w` (GenMD4's learned exponents).

use crate::context::ArtifactContext;
use crate::figures;
use crate::suite::{self, Estimator, RowReport, RowSpec, SuiteConfig};
use anyhow::{Result, bail};
use md4_core::sampler::SampleRequest;
use md4_core::{Grid, MaskingSchedule, Precision, SamplerConfig};
use md4_eval::table::Table;
use md4_eval::{BarChart, Bound, LinePlot, SamplingProtocol, Series, TokenGrid, Unit};
use md4_train::{LoadedRun, Trained};
use std::path::PathBuf;

const UNIT: Unit = Unit::BitsPerChar;

/// table2's suite, one of its rows trained (or reused) and loaded, and the row's run directory.
fn table2_row(ctx: &ArtifactContext, slug: &str) -> Result<(SuiteConfig, RowSpec, PathBuf, LoadedRun)> {
    let suite = ctx.suite("table2")?;
    let row = suite.row(slug)?.clone();
    let (run_dir, loaded) = suite::trained(ctx, &suite, "table2", &row)?;
    Ok((suite, row, run_dir, loaded))
}

/// Artifact `table7-text8`: table2's MD4 (linear) scored with the finite-T bound for each T in
/// `steps` and with the continuous bound, on table2's chunks and seeds, each T paired against
/// the continuous bound.
pub fn table7_text8(ctx: &ArtifactContext, steps: &[i64]) -> Result<()> {
    let (suite, _, _, loaded) = table2_row(ctx, "md4-linear")?;
    let (seqs, data) = suite::eval_sequences(&suite.eval, suite.sub_vocab()?.as_ref())?;
    let reference = "T = ∞ (continuous)";
    let mut table = Table::new(
        &format!("Finite-T vs continuous bound, MD4 (linear) on text8 — {}", suite.description),
        4,
    )
    .with_delta_column(reference, UNIT);
    let (mut outputs, mut scored) = (vec![], vec![]);
    let mut estimators: Vec<(String, Estimator)> =
        steps.iter().map(|&t| (format!("T = {t}"), Estimator::FiniteT(t))).collect();
    estimators.push((reference.into(), Estimator::Reported));
    for (label, estimator) in estimators {
        eprintln!("== {label}: {} chunks × {} passes", data.n_sequences, suite.eval.passes);
        let result = suite::evaluate_run(&loaded, &seqs, &suite.eval, estimator, ctx.device)?;
        let bound = suite::bound_of(&loaded.trained, estimator, None);
        let report = RowReport {
            name: label.clone(),
            key: label.clone(),
            stem: label.split_whitespace().nth(2).unwrap_or("continuous").replace('∞', "inf"),
            result,
            estimator,
            bound,
            schedule: "linear".into(),
            paper: None,
            note: format!(
                "{}; same model (step {}), same chunks and seeds",
                suite::bound_label(&bound),
                loaded.step
            ),
            card_notes: vec![format!("checkpoint: {}", loaded.checkpoint.display())],
        };
        let (row, card) = suite::report_row(ctx, &data, UNIT, report)?;
        scored.push(row);
        outputs.push(card);
    }
    suite::push_paired(&mut table, scored, reference, UNIT)?;
    let notes = vec![
        suite.description.clone(),
        suite::paired_note(reference),
        "paper Table 7 (MD4-S on OWT, zero-shot perplexity; e.g. PTB ≤ 105.2 / 102.5 / 102.4 / 102.3 for T = 100 / 1000 / 10000 / ∞) has no text8 counterpart, so the Paper column is empty; the expected ordering is continuous ≤ T=10000 ≤ T=1000 ≤ T=100".into(),
    ];
    let refs =
        crate::references::references(&loaded.cfg, &suite.eval, &seqs, ctx.scale.reference_train_cap())?;
    table.references.push((refs, UNIT));
    suite::finish_table(ctx, &table, None, data, notes, outputs)
}

/// Artifact `ablate-schedules`: table2's MD4 row trained with each masking schedule in
/// `schedules` (spelt as [`MaskingSchedule::parse`] reads them), scored on table2's chunks and
/// paired against the first.
pub fn ablate_schedules(ctx: &ArtifactContext, schedules: &[String]) -> Result<()> {
    let suite = ctx.suite("table2")?;
    let template = suite.row("md4-linear")?.clone();
    let (seqs, data) = suite::eval_sequences(&suite.eval, suite.sub_vocab()?.as_ref())?;
    // Paired against the first schedule listed (linear by default), on common random numbers.
    let reference = format!("MD4 ({})", schedules.first().map_or("linear", String::as_str));
    let mut table = Table::new(&format!("MD4 with each masking schedule, text8 — {}", suite.description), 3)
        .with_delta_column(&reference, UNIT);
    let (mut outputs, mut curves, mut scored) = (vec![], vec![], vec![]);
    for name in schedules {
        let schedule = MaskingSchedule::parse(name).map_err(anyhow::Error::msg)?;
        let row = RowSpec {
            name: format!("MD4 ({name})"),
            slug: format!("md4-{name}"),
            paper_row: None,
            objective: serde_yaml::to_value(md4_train::ObjectiveConfig::Md4 { schedule })?,
            overrides: template.overrides.clone(),
        };
        let (run_dir, loaded) = suite::trained(ctx, &suite, "table2", &row)?;
        let result = suite::evaluate_run(&loaded, &seqs, &suite.eval, Estimator::Reported, ctx.device)?;
        let report = RowReport {
            name: row.name.clone(),
            key: row.name.clone(),
            stem: name.clone(),
            result,
            estimator: Estimator::Reported,
            bound: Bound::Continuous,
            schedule: name.clone(),
            paper: None,
            note: format!("continuous-time bound; {} steps × {}", loaded.step, loaded.cfg.train.batch),
            card_notes: vec![format!("run directory: {}", run_dir.display())],
        };
        let (table_row, card) = suite::report_row(ctx, &data, UNIT, report)?;
        scored.push(table_row);
        outputs.push(card);
        curves.extend(suite::validation_series(&row.name, &run_dir)?);
    }
    suite::push_paired(&mut table, scored, &reference, UNIT)?;
    let curves = LinePlot::new(
        "Validation bits per character (EMA) by masking schedule",
        "training step",
        "validation BPC (bound)",
        curves,
    );
    let notes = vec![
        suite.description.clone(),
        suite::paired_note(&reference),
        "the paper proves the continuous bound is schedule-invariant for a fixed denoiser (§3.2); schedules differ through the training signal's variance and weighting".into(),
    ];
    let cfg = suite.run_config(&template)?;
    table.references.push((
        crate::references::references(&cfg, &suite.eval, &seqs, ctx.scale.reference_train_cap())?,
        UNIT,
    ));
    suite::finish_table(ctx, &table, Some(curves), data, notes, outputs)
}

/// Artifact `fig2`: the expected tokens revealed per step (pure math) and the unmasking order of
/// one sample of table2's MD4 (linear) with `steps` steps on the cosine grid, torch seeded with
/// `seed`.
pub fn fig2(ctx: &ArtifactContext, steps: i64, seed: i64) -> Result<()> {
    let reveal = figures::fig2_reveal(&ctx.dir.path, 256, 12288)?;
    let (suite, row, _, loaded) = table2_row(ctx, "md4-linear")?;
    let sampler = SamplerConfig { steps, grid: Grid::Cosine, precision: Precision::F32Gumbel, top_p: None };
    tch::manual_seed(seed);
    let out = loaded.trained.sample(&SampleRequest {
        batch: 1,
        seq_len: suite.eval.seq_len,
        cond: None,
        sampler: &sampler,
        device: ctx.device,
    });
    let tokens: Vec<u8> =
        Vec::<i64>::try_from(out.tokens.squeeze_dim(0))?.into_iter().map(|t| t as u8).collect();
    let text = md4_data::text8_decode(&tokens);
    let labels: Vec<String> =
        text.chars().map(|c| if c == ' ' { "·".to_string() } else { c.to_string() }).collect();
    let reveal_step: Vec<usize> =
        Vec::<i64>::try_from(out.reveal_step.squeeze_dim(0))?.into_iter().map(|s| s as usize).collect();
    let title = format!("Unmasking order of one MD4 sample (T = {steps}, cosine grid, {} scale)", ctx.scale);
    let grid = TokenGrid::new(&title, labels, reveal_step, steps as usize + 1, 32);
    let unmasking = grid.write(&ctx.dir.file("fig2_unmasking"))?;

    let mut card = ctx.card("tokens revealed per step; unmasking order", ctx.run.elapsed());
    card.sampling = Some(SamplingProtocol::new("linear", &sampler, 1, seed, out.network_calls));
    card.notes = vec![
        "fig2_reveal: expected counts N·(α_s − α_t), unshifted linear and cosine schedules, uniform grid, T = 256, N = 12288 (pure math)".into(),
        format!("fig2_unmasking: table2 '{}' run at step {} (EMA weights), {}", row.name, loaded.step, suite.description),
        format!("sample text: {text}"),
        format!("argmax-filled positions after the last step: {}", out.argmax_filled),
    ];
    let card = ctx.write_card(&card, "card.yaml")?;
    ctx.finish(&[reveal.png, reveal.svg, reveal.csv, unmasking.png, unmasking.svg, unmasking.csv, card])?;
    println!("fig2 ({}) written to {}\nsample: {text}", ctx.scale, ctx.dir.path.display());
    Ok(())
}

/// Artifact `fig-genmd4-w`: the per-character exponents w that table2's GenMD4 row learned,
/// beside the linear schedule's w = 1.
pub fn fig_genmd4_w(ctx: &ArtifactContext) -> Result<()> {
    let (suite, row, _, loaded) = table2_row(ctx, "genmd4")?;
    let Trained::GenMd4(model) = &loaded.trained else { bail!("table2's genmd4 row is not a GenMD4 run") };
    let w: Vec<f64> = Vec::try_from(tch::no_grad(|| model.schedule.w()).to_kind(tch::Kind::Double))?;
    let x: Vec<f64> = (0..w.len()).map(|i| i as f64).collect();
    let chars: String = (0..w.len() as u8).map(|i| if i < 26 { (b'a' + i) as char } else { '_' }).collect();
    let chart = BarChart::new(
        &format!(
            "GenMD4 learned exponents w per character (text8; 0–25 = a–z, 26 = space; {} scale)",
            ctx.scale
        ),
        "token id",
        "w (α_t = 1 − t^w)",
        vec![
            Series::new("learned w", x.clone(), w.clone()),
            Series::new("linear schedule (w = 1)", x, vec![1.0; w.len()]),
        ],
    );
    let files = chart.write(&ctx.dir.file("genmd4_w"))?;
    let mut card = ctx.card("learned w", ctx.run.elapsed());
    let (lo, hi) = w.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    card.notes = vec![
        format!("table2 '{}' run at step {}, {}", row.name, loaded.step, suite.description),
        "w = softplus(w_raw), initialised at 1 (the linear schedule); weight decay applies to w_raw as in the reference (pulls w toward ln 2)".into(),
        format!("token order: {chars}"),
        format!("w range: {lo:.4} … {hi:.4}"),
        format!("w: {}", w.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ")),
    ];
    let card = ctx.write_card(&card, "card.yaml")?;
    ctx.finish(&[files.png, files.svg, files.csv, card])?;
    println!("fig-genmd4-w ({}) written to {}", ctx.scale, ctx.dir.path.display());
    Ok(())
}
