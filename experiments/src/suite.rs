//! A *suite*: several training runs that share data, network and budget and differ in their
//! objective — the rows of a likelihood table (Table 2 at every scale; later Tables 3 and 5).
//! Each row is trained with `md4_train::train` into `runs/<artifact>/<scale>/<slug>/` (a
//! finished run is reused, an interrupted one resumes) and evaluated with its EMA weights by
//! `md4_eval::evaluate` over every evaluation sequence, K Monte-Carlo passes each.

use crate::context::{ArtifactContext, LikelihoodCard};
use anyhow::{Context, Result, bail};
use md4_core::elbo::discrete_nelbo;
use md4_data::SubVocabSpec;
use md4_eval::table::{PaperValue, Row, Table};
use md4_eval::{
    Bound, DataProtocol, Estimate, EvalConfig, EvalResult, LikelihoodProtocol, LinePlot, Unit, evaluate,
    tokens_sha256,
};
use md4_train::config::deep_merge;
use md4_train::{LoadedRun, RunConfig, TrainOptions, Trained, load_run, train};
use serde::Deserialize;
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The experiment file of a suite (`experiments/configs/<artifact>/<scale>.yaml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    /// What the numbers are, for the table title and the cards (data set, scale, budget).
    pub description: String,
    /// Shared `RunConfig` sections (`model`, `data`, `train`), as YAML so that presets and
    /// per-row overrides resolve exactly as in `md4 train`.
    pub model: Value,
    pub data: Value,
    pub train: Value,
    pub eval: EvalSpec,
    pub rows: Vec<RowSpec>,
    /// Slug of the row every other row is compared with (paired Δ column); absent: the first.
    #[serde(default)]
    pub reference: Option<String>,
}

/// How the rows are scored.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Registry data set and split scored (e.g. `text8-wiki`, `test`).
    pub dataset: String,
    pub split: String,
    /// Non-overlapping chunks of this many tokens; the remainder shorter than one chunk is
    /// dropped (the standard protocol) and reported on the card.
    pub seq_len: i64,
    /// How text became tokens, for the card (e.g. `text8 alphabet: a-z = 0..25, space = 26`).
    pub tokenizer: String,
    /// Score only the first this many chunks (smoke scale); absent: all of them.
    pub max_sequences: Option<usize>,
    /// Monte-Carlo passes K per sequence (exact likelihoods use 1).
    pub passes: usize,
    pub batch: usize,
    pub seed: i64,
}

/// One row: a name, the paper row it mirrors, its objective and optional overrides.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    pub name: String,
    /// Directory name of the run.
    pub slug: String,
    /// Key of the comparable row in `results/paper.yaml` (absent: none).
    pub paper_row: Option<String>,
    pub objective: Value,
    /// Merged over the shared sections (e.g. `{train: {lr: 1e-3}}`).
    #[serde(default)]
    pub overrides: Option<Value>,
}

impl SuiteConfig {
    /// `experiments/configs/<artifact>/<scale>.yaml`, with every row resolved up front: a typo
    /// in any row is an error before the first row trains.
    pub fn load(root: &Path, artifact: &str, scale: crate::Scale) -> Result<Self> {
        let suite: Self = crate::load_config(root, artifact, scale)?;
        suite.resolve_rows().with_context(|| format!("{artifact} at {scale} scale"))?;
        Ok(suite)
    }

    /// Every row's resolved run configuration, in order.
    pub fn resolve_rows(&self) -> Result<Vec<RunConfig>> {
        self.rows.iter().map(|row| self.run_config(row)).collect()
    }

    /// The resolved run configuration of `row`.
    pub fn run_config(&self, row: &RowSpec) -> Result<RunConfig> {
        let mut tree = Value::Mapping(Default::default());
        let map = tree.as_mapping_mut().expect("a mapping");
        map.insert("model".into(), self.model.clone());
        map.insert("data".into(), self.data.clone());
        map.insert("train".into(), self.train.clone());
        map.insert("objective".into(), row.objective.clone());
        if let Some(over) = &row.overrides {
            deep_merge(&mut tree, over.clone());
        }
        let text = serde_yaml::to_string(&tree)?;
        RunConfig::from_yaml(&text).with_context(|| format!("resolving the run config of row '{}'", row.name))
    }

    /// The reference row of the Δ column.
    /// The sub-vocabulary the suite's models are trained in (its reference row's), if any.
    pub fn sub_vocab(&self) -> Result<Option<SubVocabSpec>> {
        Ok(self.run_config(self.reference_row()?)?.data.sub_vocab().cloned())
    }

    pub fn reference_row(&self) -> Result<&RowSpec> {
        match &self.reference {
            Some(slug) => self.row(slug),
            None => self.rows.first().context("the suite has no rows"),
        }
    }

    pub fn row(&self, slug: &str) -> Result<&RowSpec> {
        match self.rows.iter().find(|r| r.slug == slug) {
            Some(r) => Ok(r),
            None => bail!("the suite has no row '{slug}'"),
        }
    }
}

/// Where training runs live: `$MD4_RUNS_DIR`, else `<workspace>/runs` (gitignored).
pub fn runs_root() -> PathBuf {
    std::env::var_os("MD4_RUNS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("runs"))
}

/// `runs/<artifact>/<scale>/<slug>`.
pub fn run_dir(artifact: &str, scale: crate::Scale, slug: &str) -> PathBuf {
    runs_root().join(artifact).join(scale.name()).join(slug)
}

/// Train `row` (or resume it, or reuse it when finished) and return its run directory.
pub fn ensure_trained(suite: &SuiteConfig, row: &RowSpec, dir: &Path, device: Device) -> Result<PathBuf> {
    let cfg = suite.run_config(row)?;
    eprintln!("== {}: training in {}", row.name, dir.display());
    let summary = train(&cfg, dir, &TrainOptions { device, ..TrainOptions::default() })
        .with_context(|| format!("training row '{}'", row.name))?;
    if summary.already_finished {
        eprintln!("   already finished at step {} (reused)", summary.step);
    }
    Ok(dir.to_path_buf())
}

/// Train (or reuse, or resume) `row` of `suite`, the training suite of `artifact`, at the
/// context's scale, and load it for evaluation; returns its run directory and the loaded run.
pub fn trained(
    ctx: &ArtifactContext,
    suite: &SuiteConfig,
    artifact: &str,
    row: &RowSpec,
) -> Result<(PathBuf, LoadedRun)> {
    let dir = run_dir(artifact, ctx.scale, &row.slug);
    ensure_trained(suite, row, &dir, ctx.device)?;
    let loaded = load(&dir, ctx.device)?;
    Ok((dir, loaded))
}

/// A prepared split, re-spelt in `vocab` when the models were trained in a sub-vocabulary.
pub fn open_split(dataset: &str, split: &str, vocab: Option<&SubVocabSpec>) -> Result<md4_data::TokenFile> {
    let prepared = md4_data::prepare(dataset, &md4_data::PrepareOptions::default())
        .with_context(|| format!("preparing data set {dataset}"))?;
    match vocab {
        Some(v) => md4_data::SubVocab::load(v)?.open_split(&prepared, split),
        None => prepared.open(split),
    }
}

/// The evaluation sequences of a suite: `[S, N]` int64 and the data part of the card. `vocab`:
/// the sub-vocabulary of the models scored (the suite's, [`SuiteConfig::sub_vocab`]).
pub fn eval_sequences(spec: &EvalSpec, vocab: Option<&SubVocabSpec>) -> Result<(Tensor, DataProtocol)> {
    let file = open_split(&spec.dataset, &spec.split, vocab)?;
    let mut tokens = vec![0i64; file.len() as usize];
    file.read_i64(0, &mut tokens);
    let n = spec.seq_len as usize;
    let available = tokens.len() / n;
    let count = spec.max_sequences.map_or(available, |m| m.min(available));
    if count == 0 {
        bail!("{} {} has fewer than {n} tokens", spec.dataset, spec.split);
    }
    let seqs = Tensor::from_slice(&tokens[..count * n]).view([count as i64, spec.seq_len]);
    let dropped = tokens.len() - available * n;
    let mut chunking = format!(
        "non-overlapping {n}-token chunks; {available} chunks, the last {dropped} tokens (shorter than one chunk) dropped; every chunk scored, including a last partial batch"
    );
    if count < available {
        chunking = format!("the first {count} of {available} non-overlapping {n}-token chunks (smoke scale)");
    }
    let protocol = DataProtocol {
        dataset: spec.dataset.clone(),
        split: spec.split.clone(),
        tokens_sha256: tokens_sha256(&seqs)?,
        tokenizer: match vocab {
            Some(v) => format!("{}; re-spelt in the {}", spec.tokenizer, v.describe()),
            None => spec.tokenizer.clone(),
        },
        sequence_length: n,
        n_sequences: count,
        chunking,
    };
    Ok((seqs, protocol))
}

/// Which bound to evaluate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimator {
    /// The objective's own reported value (MD4/SEDD/Campbell: the continuous bound; GenMD4:
    /// its NELBO; D3PM: its T-step bound; AR: the exact NLL).
    Reported,
    /// MD4's finite-T bound with T steps (spec §3.4), for scalar-schedule models.
    FiniteT(i64),
}

/// The card's `Bound` for an estimator on a trained model.
pub fn bound_of(trained: &Trained, estimator: Estimator, d3pm_steps: Option<i64>) -> Bound {
    match (estimator, trained) {
        (Estimator::FiniteT(steps), _) => Bound::FiniteT { steps },
        (_, Trained::Ar(_)) => Bound::Exact,
        (_, Trained::D3pm(_)) => Bound::FiniteT { steps: d3pm_steps.unwrap_or(0) },
        _ => Bound::Continuous,
    }
}

/// `continuous-time bound`, `T = 1000 bound`, `exact NLL`.
pub fn bound_label(bound: &Bound) -> String {
    match bound {
        Bound::Continuous => "continuous-time bound".into(),
        Bound::FiniteT { steps } => format!("T = {steps} bound"),
        Bound::Exact => "exact NLL".into(),
    }
}

/// How the card says the evaluation times were drawn.
pub fn time_sampling(estimator: Estimator, exact: bool) -> &'static str {
    match (estimator, exact) {
        (_, true) => "none (exact likelihood)",
        (Estimator::FiniteT(_), false) => {
            "one step i ~ U{1..T} per sequence per pass, u and the masks from the keyed stream (seed, pass, sequence), shared by every row"
        }
        (Estimator::Reported, false) => md4_eval::KEYED_TIME_SAMPLING,
    }
}

/// A scored row on its way into a table: its pairing key (see [`push_paired`]), the table's row
/// and the evaluation behind it.
pub type ScoredRow = (String, Row, EvalResult);

/// One evaluated row of a likelihood table, as [`report_row`] takes it.
#[derive(Clone, Debug)]
pub struct RowReport {
    /// Name in the table and on the card.
    pub name: String,
    /// Pairing key of the Δ column (usually the row's slug).
    pub key: String,
    /// File stem of the card, `cards/<stem>.yaml`.
    pub stem: String,
    pub result: EvalResult,
    pub estimator: Estimator,
    pub bound: Bound,
    /// The schedule as the card names it ([`schedule_label`]).
    pub schedule: String,
    pub paper: Option<PaperValue>,
    /// The table's notes column.
    pub note: String,
    pub card_notes: Vec<String>,
}

impl RowReport {
    /// A suite row scored with its objective's own estimator: named, keyed and filed by the
    /// row; the paper value, the table note and the card notes still to fill.
    pub fn reported(row: &RowSpec, loaded: &LoadedRun, result: EvalResult, bound: Bound) -> Self {
        Self {
            name: row.name.clone(),
            key: row.slug.clone(),
            stem: row.slug.clone(),
            result,
            estimator: Estimator::Reported,
            bound,
            schedule: schedule_label(&loaded.cfg),
            paper: None,
            note: String::new(),
            card_notes: vec![],
        }
    }
}

/// Evaluate → row, protocol and card: the table row of `report` (estimate in `unit`, a bound
/// unless exact) and its card `cards/<stem>.yaml` on `data`; returns the row for
/// [`push_paired`] and the card's path.
pub fn report_row(
    ctx: &ArtifactContext,
    data: &DataProtocol,
    unit: Unit,
    report: RowReport,
) -> Result<(ScoredRow, PathBuf)> {
    let exact = report.bound == Bound::Exact;
    let likelihood = LikelihoodProtocol::from_result(
        &report.result,
        report.bound,
        &report.schedule,
        true,
        time_sampling(report.estimator, exact),
        unit,
    );
    let card = ctx.write_likelihood_card(LikelihoodCard {
        item: report.name.clone(),
        stem: report.stem,
        data,
        likelihood,
        wall_seconds: report.result.wall_seconds,
        notes: report.card_notes,
    })?;
    let estimate = Estimate::from_result(&report.result, unit, !exact);
    let row = Row::new(&report.name, Some(estimate), unit.label(), report.paper, &report.note);
    Ok(((report.key, row, report.result), card))
}

/// Score `seqs` with the EMA weights of `loaded`.
pub fn evaluate_run(
    loaded: &LoadedRun,
    seqs: &Tensor,
    spec: &EvalSpec,
    estimator: Estimator,
    device: Device,
) -> Result<EvalResult> {
    let passes = if loaded.trained.is_exact() { 1 } else { spec.passes };
    let config = EvalConfig::new(spec.batch, passes, spec.seed, device);
    match estimator {
        Estimator::Reported => {
            let objective = loaded.trained.objective();
            evaluate(seqs, &config, |x| objective.loss(x, false).nelbo.to_kind(Kind::Double))
        }
        Estimator::FiniteT(steps) => {
            let Some((net, schedule, vocab)) = loaded.trained.scalar_diffusion() else {
                bail!("the finite-T bound needs a scalar-schedule diffusion model");
            };
            evaluate(seqs, &config, |x| {
                let b = x.size()[0];
                let u = md4_core::forward::antithetic_times(b, x.device());
                discrete_nelbo(net, x, &u, steps, &schedule, vocab, false).to_kind(Kind::Double)
            })
        }
    }
}

/// The card notes that say which run and checkpoint a number came from.
pub fn run_notes(run_dir: &Path, loaded: &LoadedRun) -> Vec<String> {
    vec![
        format!("run directory: {}", run_dir.display()),
        format!("checkpoint: {} (EMA weights, step {})", loaded.checkpoint.display(), loaded.step),
    ]
}

/// Load a finished run for evaluation.
pub fn load(dir: &Path, device: Device) -> Result<LoadedRun> {
    load_run(dir, device).with_context(|| format!("loading the run in {}", dir.display()))
}

/// The validation curve (EMA bits per token against steps) of a run's `metrics.jsonl`, named
/// `name`; None when the run logged no validation.
pub fn validation_series(name: &str, run_dir: &Path) -> Result<Option<md4_eval::Series>> {
    let metrics = md4_train::metrics::read_metrics(&run_dir.join("metrics.jsonl"))?;
    let (x, y): (Vec<f64>, Vec<f64>) = metrics
        .iter()
        .filter(|m| m["kind"] == "validation")
        .filter_map(|m| Some((m["step"].as_f64()?, m["val_bits"].as_f64()?)))
        .unzip();
    Ok((!x.is_empty()).then(|| md4_eval::Series::new(name, x, y)))
}

/// What every table artifact writes after its rows: `table.md` and `rows.csv`, the curves plot
/// (when it has series), the summary `card.yaml` (data protocol and notes) and `record.yaml`;
/// then prints the table.
pub fn finish_table(
    ctx: &ArtifactContext,
    table: &md4_eval::Table,
    curves: Option<md4_eval::LinePlot>,
    data: DataProtocol,
    notes: Vec<String>,
    mut outputs: Vec<PathBuf>,
) -> Result<()> {
    let (md, csv) = table.write(&ctx.dir.path)?;
    outputs.extend([md, csv]);
    if let Some(plot) = curves.filter(|p| !p.series.is_empty()) {
        let files = plot.write(&ctx.dir.file("curves")).context("plotting the training curves")?;
        outputs.extend([files.png, files.svg, files.csv]);
    }
    outputs.push(ctx.write_summary_card(Some(data), notes)?);
    ctx.finish(&outputs)?;
    println!("{}", std::fs::read_to_string(ctx.dir.file("table.md"))?);
    Ok(())
}

/// A short description of a row's schedule for the card.
pub fn schedule_label(cfg: &RunConfig) -> String {
    use md4_train::ObjectiveConfig as O;
    match &cfg.objective {
        O::Md4 { schedule } | O::Sedd { schedule } | O::Campbell { schedule } => schedule.name(),
        O::Genmd4 { .. } => "genmd4 (learned per-token w)".into(),
        O::D3pm { steps, .. } => format!("linear, T = {steps} (D3PM)"),
        O::Ar => "n/a (autoregressive)".into(),
    }
}

/// What distinguishes one single-column likelihood table (Table 2, Table 5, the image table)
/// from another; [`likelihood_table`] does the rest.
#[derive(Clone, Debug)]
pub struct LikelihoodTable<'a> {
    pub artifact: &'a str,
    pub unit: md4_eval::Unit,
    /// `results/paper.yaml` table and column of the paper values (`table2`, `bpc`).
    pub paper_table: &'a str,
    pub paper_column: &'a str,
    /// Table title before the suite's description (`text8 bits per character`).
    pub title: &'a str,
    pub decimals: usize,
    /// Title and y label of `curves.png` (validation bits per token against steps).
    pub curve_title: &'a str,
    pub curve_ylabel: &'a str,
    /// Where the paper column comes from and how comparable it is.
    pub paper_note: &'a str,
    /// Print the evaluation split's unigram yardsticks under the table.
    pub references: bool,
}

/// Train (or reuse) every row of `spec.artifact`'s suite at the context's scale (only `only` when not
/// empty), score each on the suite's evaluation split with EMA weights, and write the table,
/// the per-row cards, the validation curves and the record.
pub fn likelihood_table(ctx: &ArtifactContext, spec: &LikelihoodTable, only: &[String]) -> Result<()> {
    let (scale, device) = (ctx.scale, ctx.device);
    let suite = ctx.suite(spec.artifact)?;
    let paper = ctx.paper()?;
    let (seqs, data) = eval_sequences(&suite.eval, suite.sub_vocab()?.as_ref())?;
    eprintln!(
        "{} ({scale}): {} evaluation chunks of {} tokens",
        spec.artifact, data.n_sequences, data.sequence_length
    );
    let unit = spec.unit;
    let reference = suite.reference_row()?;
    let mut table = Table::new(&format!("{} — {}", spec.title, suite.description), spec.decimals)
        .with_delta_column(&reference.name, unit);
    let (mut outputs, mut curves, mut scored) = (vec![], vec![], vec![]);
    for row in suite.rows.iter().filter(|r| only.is_empty() || only.contains(&r.slug)) {
        let (run_dir, loaded) = trained(ctx, &suite, spec.artifact, row)?;
        eprintln!("== {}: evaluating {} chunks × {} passes", row.name, data.n_sequences, suite.eval.passes);
        let result = evaluate_run(&loaded, &seqs, &suite.eval, Estimator::Reported, device)?;
        let d3pm_steps = match loaded.cfg.objective {
            md4_train::ObjectiveConfig::D3pm { steps, .. } => Some(steps),
            _ => None,
        };
        let bound = bound_of(&loaded.trained, Estimator::Reported, d3pm_steps);
        let paper_value = match &row.paper_row {
            Some(key) => Some(paper.value(spec.paper_table, key, spec.paper_column)?),
            None => None,
        };
        let (row_scored, card) = report_row(
            ctx,
            &data,
            unit,
            RowReport {
                paper: paper_value,
                note: format!(
                    "{}; {:.2}M params; {} steps × {}",
                    bound_label(&bound),
                    loaded.parameters() as f64 / 1e6,
                    loaded.step,
                    loaded.cfg.train.batch
                ),
                card_notes: [
                    run_notes(&run_dir, &loaded),
                    vec![format!("objective: {:?}", loaded.cfg.objective), suite.description.clone()],
                ]
                .concat(),
                ..RowReport::reported(row, &loaded, result, bound)
            },
        )?;
        scored.push(row_scored);
        outputs.push(card);
        curves.extend(validation_series(&row.name, &run_dir)?);
    }
    push_paired(&mut table, scored, &reference.slug, unit)?;
    if spec.references {
        let cfg = suite.run_config(reference)?;
        let refs = crate::references::references(&cfg, &suite.eval, &seqs, scale.reference_train_cap())?;
        table.references.push((refs, unit));
    }
    let curves = LinePlot::new(spec.curve_title, "training step", spec.curve_ylabel, curves);
    let notes = vec![
        suite.description.clone(),
        "each row's estimator, passes and checkpoint are in cards/<row>.yaml".into(),
        paired_note(&reference.name),
        spec.paper_note.into(),
    ];
    finish_table(ctx, &table, Some(curves), data, notes, outputs)?;
    println!("{} ({scale}) written to {}", spec.artifact, ctx.dir.path.display());
    Ok(())
}

/// Push `scored` rows (slug, row, evaluation) onto `table`, each with its paired difference to
/// the row `reference` (none for the reference itself, or when it was not scored this time).
pub fn push_paired(
    table: &mut md4_eval::Table,
    scored: Vec<ScoredRow>,
    reference: &str,
    unit: md4_eval::Unit,
) -> Result<()> {
    let base = scored.iter().find(|(slug, ..)| slug == reference).map(|(.., r)| r.clone());
    for (slug, row, result) in scored {
        let delta = match &base {
            Some(base) if slug != reference => {
                let d = md4_eval::Delta::between(&result, base, unit)
                    .with_context(|| format!("pairing row '{slug}' with '{reference}'"))?;
                Some(d)
            }
            _ => None,
        };
        table.push(row.with_delta(delta));
    }
    Ok(())
}

/// The card note that explains the Δ column.
pub fn paired_note(reference: &str) -> String {
    format!(
        "Δ vs {reference}: the mean over sequences of (row − {reference}) with its standard error over the per-sequence differences; every row is scored on the same keyed random streams (common random numbers), so Δ is far more precise than either row; |Δ| ≥ 2 SE is marked resolved"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed suite (table2, table5 and table3's per-data-set suites) resolves every
    /// row at every scale.
    #[test]
    fn every_committed_suite_resolves_every_row_at_every_scale() {
        let root = crate::workspace_root();
        for scale in crate::Scale::ALL {
            for artifact in ["table2", "table5"] {
                let suite = SuiteConfig::load(&root, artifact, scale).unwrap_or_else(|e| panic!("{e:#}"));
                assert_eq!(suite.resolve_rows().unwrap().len(), suite.rows.len());
                suite.reference_row().unwrap();
            }
            let table3: crate::images::Table3Config = crate::load_config(&root, "table3", scale).unwrap();
            for suite in &table3.suites {
                suite.resolve_rows().unwrap_or_else(|e| panic!("table3 {scale}: {e:#}"));
            }
        }
    }

    #[test]
    fn a_typo_in_any_row_fails_before_training() {
        let root = crate::workspace_root();
        let mut suite = SuiteConfig::load(&root, "table2", crate::Scale::Smoke).unwrap();
        let last = suite.rows.len() - 1;
        suite.rows[last].objective = serde_yaml::from_str("{kind: md4, schedul: {kind: linear}}").unwrap();
        let err = suite.resolve_rows().unwrap_err();
        assert!(format!("{err:#}").contains("schedul"), "{err:#}");
    }
}
