//! Zero-shot evaluation (paper Tables 1 and 7, spec §11): the language models trained by the
//! `table5` suite, scored on evaluation sets they were not trained on, one column per set.
//! A column that cannot be computed at a scale (its data set only comes from the Hub) carries
//! the reason instead of a number.
//!
//! The experiment file is `experiments/configs/table1/<scale>.yaml` ([`ZeroShotConfig`]); `table7`
//! reads the same file for its columns and its model.

use crate::context::{ArtifactContext, LikelihoodCard};
use crate::suite::{self, Estimator, EvalSpec, SuiteConfig};
use anyhow::{Context, Result, bail};
use md4_eval::{
    Bound, Cell, DataProtocol, Estimate, EvalResult, LikelihoodProtocol, Matrix, MatrixColumn, MatrixRow,
    Unit,
};
use md4_train::LoadedRun;
use serde::Deserialize;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// `experiments/configs/table1/<scale>.yaml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotConfig {
    pub description: String,
    /// The artifact whose suite trained the models (`table5`): its rows are reused or trained.
    pub suite: String,
    /// Our rows, by the suite's slugs, with the key of the comparable paper row.
    pub rows: Vec<ZeroShotRow>,
    pub columns: Vec<ZeroShotColumn>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotRow {
    pub slug: String,
    #[serde(default)]
    pub paper_row: Option<String>,
}

/// One evaluation set: either how to score it, or why it is not scored at this scale.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotColumn {
    pub name: String,
    /// The paper's column key (`lambada`, `wikitext2`, `ptb`, `wikitext103`, `lm1b`).
    #[serde(default)]
    pub paper_column: Option<String>,
    #[serde(default)]
    pub eval: Option<EvalSpec>,
    /// Why the column is not computed (required when `eval` is absent).
    #[serde(default)]
    pub unavailable: Option<String>,
    /// What the column measures relative to the paper's (e.g. "proxy: …").
    #[serde(default)]
    pub note: Option<String>,
}

impl ZeroShotConfig {
    /// table1's experiment file at the artifact's scale (table7 scores the same columns).
    pub fn load(ctx: &ArtifactContext) -> Result<Self> {
        let cfg: Self = ctx.config("table1")?;
        for c in &cfg.columns {
            if c.eval.is_none() && c.unavailable.is_none() {
                bail!("table1 column '{}' needs `eval` or `unavailable`", c.name);
            }
        }
        Ok(cfg)
    }

    /// The matrix's columns.
    pub fn matrix_columns(&self) -> Vec<MatrixColumn> {
        self.columns
            .iter()
            .map(|c| MatrixColumn { name: c.name.clone(), paper_key: c.paper_column.clone() })
            .collect()
    }
}

/// A column's sequences, loaded once.
pub struct LoadedColumn {
    pub column: ZeroShotColumn,
    pub data: Option<(Tensor, DataProtocol)>,
}

/// Load every computable column's evaluation sequences.
pub fn load_columns(cfg: &ZeroShotConfig, suite: &SuiteConfig) -> Result<Vec<LoadedColumn>> {
    let vocab = suite.sub_vocab()?;
    cfg.columns
        .iter()
        .map(|c| {
            let data = match &c.eval {
                Some(spec) => Some(
                    suite::eval_sequences(spec, vocab.as_ref())
                        .with_context(|| format!("loading column '{}'", c.name))?,
                ),
                None => None,
            };
            Ok(LoadedColumn { column: c.clone(), data })
        })
        .collect()
}

/// One scored cell: the estimate, the raw result and the bound used.
pub struct Scored {
    pub estimate: Estimate,
    pub result: EvalResult,
    pub bound: Bound,
}

/// Score one loaded column with `estimator` (perplexity, delta-method SE).
pub fn score(
    loaded: &LoadedRun,
    column: &LoadedColumn,
    estimator: Estimator,
    device: Device,
) -> Result<Option<Scored>> {
    let (Some(spec), Some((seqs, _))) = (&column.column.eval, &column.data) else {
        return Ok(None);
    };
    let result = suite::evaluate_run(loaded, seqs, spec, estimator, device)?;
    let bound = suite::bound_of(&loaded.trained, estimator, None);
    let estimate = Estimate::from_result(&result, Unit::Perplexity, !loaded.trained.is_exact());
    Ok(Some(Scored { estimate, result, bound }))
}

/// The cell of a scored (or unavailable) column.
pub fn cell(column: &LoadedColumn, scored: &Option<Scored>) -> Cell {
    match scored {
        Some(s) => Cell::Value(s.estimate),
        None => Cell::Missing(column.column.unavailable.clone().unwrap_or_else(|| "not computed".into())),
    }
}

/// The likelihood part of a cell's card.
pub fn likelihood_protocol(s: &Scored, loaded: &LoadedRun, estimator: Estimator) -> LikelihoodProtocol {
    LikelihoodProtocol::from_result(
        &s.result,
        s.bound,
        &suite::schedule_label(&loaded.cfg),
        true,
        suite::time_sampling(estimator, loaded.trained.is_exact()),
        Unit::Perplexity,
    )
}

/// An empty matrix with the config's columns.
pub fn matrix(title: &str, cfg: &ZeroShotConfig, paper_rows: Vec<md4_eval::table::PaperRow>) -> Matrix {
    Matrix {
        title: title.into(),
        unit: Unit::Perplexity.label().into(),
        decimals: 1,
        columns: cfg.matrix_columns(),
        rows: vec![],
        paper_rows,
        delta_reference: None,
        references: vec![],
    }
}

/// A row of the matrix.
pub fn matrix_row(method: &str, cells: Vec<Cell>, notes: String) -> MatrixRow {
    MatrixRow { method: method.into(), cells, notes, deltas: vec![] }
}

/// Fill every row's paired differences to row `reference` (by method name), column by column,
/// from the rows' results (`results[row][column]`, None where a cell was not scored).
pub fn pair_rows(matrix: &mut Matrix, results: &[Vec<Option<EvalResult>>], reference: &str) -> Result<()> {
    let Some(base) = matrix.rows.iter().position(|r| r.method == reference) else {
        return Ok(());
    };
    for (row, row_results) in matrix.rows.iter_mut().zip(results) {
        row.deltas = row_results
            .iter()
            .zip(&results[base])
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) if row.method != reference => {
                    let d = md4_eval::Delta::between(a, b, Unit::Perplexity)
                        .with_context(|| format!("pairing '{}' with '{reference}'", row.method))?;
                    Ok(Some(d))
                }
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
    }
    matrix.delta_reference = Some((reference.into(), Unit::Perplexity.difference_label().into()));
    Ok(())
}

/// Notes for the summary card: what each column is.
pub fn column_notes(columns: &[LoadedColumn]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match (&c.data, &c.column.unavailable) {
            (Some((_, d)), _) => format!(
                "column {}: {} {} ({} sequences of {} tokens){}",
                c.column.name,
                d.dataset,
                d.split,
                d.n_sequences,
                d.sequence_length,
                c.column.note.as_deref().map(|n| format!("; {n}")).unwrap_or_default()
            ),
            (None, Some(why)) => format!("column {}: not computed — {why}", c.column.name),
            (None, None) => format!("column {}: not computed", c.column.name),
        })
        .collect()
}

/// Write the matrix (`table.md`, `cells.csv`), the summary `card.yaml` and `record.yaml`, then
/// print the table.
pub fn finish_matrix(
    ctx: &ArtifactContext,
    matrix: &Matrix,
    notes: Vec<String>,
    mut outputs: Vec<PathBuf>,
) -> Result<()> {
    let (md, csv) = matrix.write(&ctx.dir.path)?;
    outputs.extend([md, csv]);
    outputs.push(ctx.write_summary_card(None, notes)?);
    ctx.finish(&outputs)?;
    println!("{}", matrix.to_markdown());
    Ok(())
}

/// `WikiText2 (proxy)` → `wikitext2-proxy`: a column's name in card file names (lower case,
/// every run of other characters one `-`).
pub fn column_slug(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// What the cards of one matrix row say: the row's label, the file stem of each column's card
/// and the notes every card carries.
pub struct RowCards<'a> {
    pub label: &'a str,
    pub stem: &'a dyn Fn(&str) -> String,
    pub notes: Vec<String>,
}

/// One matrix row's cells, the results behind them (None where not scored, for [`pair_rows`])
/// and the cards written.
pub type ScoredColumns = (Vec<Cell>, Vec<Option<EvalResult>>, Vec<PathBuf>);

/// Score `loaded` with `estimator` on every column: one cell per column and a card per scored
/// cell, `cards/<stem(column)>.yaml`, named `<label> on <column>`.
pub fn score_columns(
    ctx: &ArtifactContext,
    loaded: &LoadedRun,
    columns: &[LoadedColumn],
    estimator: Estimator,
    cards: &RowCards,
) -> Result<ScoredColumns> {
    let (mut cells, mut results, mut paths) = (vec![], vec![], vec![]);
    for column in columns {
        let name = &column.column.name;
        if column.data.is_some() {
            eprintln!("== {} on {name}", cards.label);
        }
        let scored = score(loaded, column, estimator, ctx.device)?;
        cells.push(cell(column, &scored));
        results.push(scored.as_ref().map(|s| s.result.clone()));
        if let (Some(s), Some((_, data))) = (&scored, &column.data) {
            paths.push(ctx.write_likelihood_card(LikelihoodCard {
                item: format!("{} on {name}", cards.label),
                stem: (cards.stem)(name),
                data,
                likelihood: likelihood_protocol(s, loaded, estimator),
                wall_seconds: s.result.wall_seconds,
                notes: cards.notes.clone(),
            })?);
        }
    }
    Ok((cells, results, paths))
}

/// What table1 and table7 share: the experiment file, the models' suite, the loaded columns
/// and the paper's rows of the artifact's table.
pub struct ZeroShot {
    pub cfg: ZeroShotConfig,
    pub suite: SuiteConfig,
    pub columns: Vec<LoadedColumn>,
    pub paper_rows: Vec<md4_eval::table::PaperRow>,
}

impl ZeroShot {
    /// Train (or reuse) the models' suite row `slug` and load it: its name, run directory and run.
    pub fn trained(&self, ctx: &ArtifactContext, slug: &str) -> Result<(String, PathBuf, LoadedRun)> {
        let row = self.suite.row(slug)?;
        let (dir, loaded) = suite::trained(ctx, &self.suite, &self.cfg.suite, row)?;
        Ok((row.name.clone(), dir, loaded))
    }

    /// Load `table1/<scale>.yaml`, its suite, every computable column and `paper_table`'s rows.
    pub fn load(ctx: &ArtifactContext, paper_table: &str) -> Result<Self> {
        let cfg = ZeroShotConfig::load(ctx)?;
        let suite = ctx.suite(&cfg.suite)?;
        let paper_rows = ctx.paper()?.table(paper_table)?.rows.clone();
        let columns = load_columns(&cfg, &suite)?;
        Ok(Self { cfg, suite, columns, paper_rows })
    }

    /// An empty matrix titled `<title> — <description>`.
    pub fn matrix(&self, title: &str) -> Matrix {
        matrix(&format!("{title} — {}", self.cfg.description), &self.cfg, self.paper_rows.clone())
    }

    /// Pair every row with `reference`, write the matrix with its notes (the Δ column, the
    /// descriptions, `notes`, the columns) and the record.
    pub fn finish(
        &self,
        ctx: &ArtifactContext,
        mut matrix: Matrix,
        (results, reference): (&[Vec<Option<EvalResult>>], &str),
        notes: Vec<String>,
        outputs: Vec<PathBuf>,
    ) -> Result<()> {
        pair_rows(&mut matrix, results, reference)?;
        let mut all =
            vec![suite::paired_note(reference), self.cfg.description.clone(), self.suite.description.clone()];
        all.extend(notes);
        all.extend(column_notes(&self.columns));
        finish_matrix(ctx, &matrix, all, outputs)?;
        println!("{} ({}) written to {}", ctx.run.artifact, ctx.scale, ctx.dir.path.display());
        Ok(())
    }
}

/// Artifact `table1`: every row of the experiment file (table5's models) on every column, with
/// the reference yardsticks of each scored column, paired against the first row.
pub fn table1(ctx: &ArtifactContext) -> Result<()> {
    let zs = ZeroShot::load(ctx, "table1")?;
    let mut matrix = zs.matrix("Zero-shot perplexity");
    let (mut outputs, mut results) = (vec![], vec![]);
    for row in &zs.cfg.rows {
        let (name, run_dir, loaded) = zs.trained(ctx, &row.slug)?;
        let cards = RowCards {
            label: &name,
            stem: &|column| format!("{}-{}", row.slug, column_slug(column)),
            notes: [
                suite::run_notes(&run_dir, &loaded),
                vec![
                    format!("objective: {:?}", loaded.cfg.objective),
                    format!("paper row: {}", row.paper_row.as_deref().unwrap_or("none")),
                ],
            ]
            .concat(),
        };
        let (cells, row_results, cards) =
            score_columns(ctx, &loaded, &zs.columns, Estimator::Reported, &cards)?;
        outputs.extend(cards);
        let bound = suite::bound_of(&loaded.trained, Estimator::Reported, None);
        let notes = format!(
            "{}; {:.2}M params; {} steps × {}",
            suite::bound_label(&bound),
            loaded.parameters() as f64 / 1e6,
            loaded.step,
            loaded.cfg.train.batch
        );
        results.push(row_results);
        matrix.rows.push(matrix_row(&name, cells, notes));
    }
    // Reference yardsticks per scored column, given the models' training split.
    let ref_cfg = zs.suite.run_config(zs.suite.reference_row()?)?;
    for column in &zs.columns {
        if let (Some(spec), Some((seqs, _))) = (&column.column.eval, &column.data) {
            let refs = crate::references::references(&ref_cfg, spec, seqs, ctx.scale.reference_train_cap())?;
            matrix.references.push((column.column.name.clone(), refs, Unit::Perplexity));
        }
    }
    // Every row against the first (MD4), column by column, on common random numbers.
    let reference = matrix.rows.first().map(|r| r.method.clone()).unwrap_or_default();
    let notes = vec![
        "paper rows: arXiv v4 Table 1 (models trained on OpenWebText; baselines other than SEDD Absorb (reimpl.) from Lou et al.); small-scale numbers are not comparable in value".into(),
    ];
    zs.finish(ctx, matrix, (&results, &reference), notes, outputs)
}

/// Artifact `table7`: table5's MD4 on every column with the finite-T bound for each T in `steps`
/// and with the continuous bound, every T paired against the continuous bound.
pub fn table7(ctx: &ArtifactContext, steps: &[i64]) -> Result<()> {
    let zs = ZeroShot::load(ctx, "table7")?;
    let (name, run_dir, loaded) = zs.trained(ctx, "md4")?;
    let mut matrix = zs.matrix(&format!("Finite-T vs continuous bound, {name}"));
    let reference = "T = ∞ (continuous)";
    let mut estimators: Vec<(String, String, Estimator)> =
        steps.iter().map(|&t| (format!("T = {t}"), format!("t{t}"), Estimator::FiniteT(t))).collect();
    estimators.push((reference.into(), "continuous".into(), Estimator::Reported));
    let (mut outputs, mut results) = (vec![], vec![]);
    for (label, stem, estimator) in estimators {
        let cards = RowCards {
            label: &label,
            stem: &|column| format!("{stem}-{}", column_slug(column)),
            notes: suite::run_notes(&run_dir, &loaded),
        };
        let (cells, row_results, cards) = score_columns(ctx, &loaded, &zs.columns, estimator, &cards)?;
        outputs.extend(cards);
        let bound = suite::bound_of(&loaded.trained, estimator, None);
        let notes = format!(
            "{}; same model (step {}), same chunks and seeds",
            suite::bound_label(&bound),
            loaded.step
        );
        results.push(row_results);
        matrix.rows.push(matrix_row(&label, cells, notes));
    }
    // Every finite T against the continuous bound of the same model, on common random numbers.
    let notes = vec![
        "paper rows: arXiv v4 Table 7 (MD4-S on OpenWebText); its WikiText103 column is internally inconsistent (spec §10.7)".into(),
        "expected: continuous ≤ T=10000 ≤ T=1000 ≤ T=100 in expectation; judge it on the paired Δ".into(),
    ];
    zs.finish(ctx, matrix, (&results, reference), notes, outputs)
}

#[cfg(test)]
mod tests {
    use super::column_slug;

    #[test]
    fn column_slugs_have_one_dash_per_run_of_other_characters() {
        assert_eq!(column_slug("WikiText2 (proxy)"), "wikitext2-proxy");
        assert_eq!(column_slug("Wikipedia (WikiText-style proxy)"), "wikipedia-wikitext-style-proxy");
        assert_eq!(column_slug("English mix (held-out)"), "english-mix-held-out");
        assert_eq!(column_slug("PTB"), "ptb");
    }
}
