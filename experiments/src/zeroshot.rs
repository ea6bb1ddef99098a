//! Zero-shot evaluation (paper Tables 1 and 7, spec §11): the language models trained by the
//! `table5` suite, scored on evaluation sets they were not trained on, one column per set.
//! A column that cannot be computed at a scale (its data set only comes from the Hub) carries
//! the reason instead of a number.
//!
//! The experiment file is `experiments/configs/table1/<scale>.yaml` ([`ZeroShotConfig`]); `table7`
//! reads the same file for its columns and its model.

use crate::suite::{self, Estimator, EvalSpec, SuiteConfig};
use anyhow::{Context, Result, bail};
use md4_eval::{
    Bound, Cell, DataProtocol, Estimate, EvalResult, LikelihoodProtocol, Matrix, MatrixColumn, MatrixRow,
    Unit,
};
use md4_train::LoadedRun;
use serde::Deserialize;
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
    pub fn load(scale: crate::Scale) -> Result<Self> {
        let cfg: Self = crate::load_config(&crate::workspace_root(), "table1", scale)?;
        for c in &cfg.columns {
            if c.eval.is_none() && c.unavailable.is_none() {
                bail!("table1 column '{}' needs `eval` or `unavailable`", c.name);
            }
        }
        Ok(cfg)
    }

    /// The training suite of the models.
    pub fn suite(&self, scale: crate::Scale) -> Result<SuiteConfig> {
        crate::load_config(&crate::workspace_root(), &self.suite, scale)
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

/// Train (or reuse) the suite row `slug` and load it.
pub fn trained_row(
    suite_cfg: &SuiteConfig,
    suite_artifact: &str,
    scale: crate::Scale,
    slug: &str,
    device: Device,
) -> Result<(String, std::path::PathBuf, LoadedRun)> {
    let row = suite_cfg.row(slug)?;
    let dir = suite::run_dir(suite_artifact, scale, slug);
    suite::ensure_trained(suite_cfg, row, &dir, device)?;
    let loaded = suite::load(&dir, device)?;
    Ok((row.name.clone(), dir, loaded))
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
pub fn likelihood_protocol(s: &Scored, loaded: &LoadedRun) -> LikelihoodProtocol {
    let exact = loaded.trained.is_exact();
    LikelihoodProtocol::from_result(
        &s.result,
        s.bound,
        &suite::schedule_label(&loaded.cfg),
        true,
        match (&s.bound, exact) {
            (_, true) => "none (exact likelihood)",
            (Bound::FiniteT { .. }, _) => {
                "one step i ~ U{1..T} per sequence per pass, u and the masks from the keyed stream (seed, pass, sequence), shared by every row"
            }
            _ => md4_eval::KEYED_TIME_SAMPLING,
        },
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
                    let d = md4_eval::paired_difference(a, b)
                        .with_context(|| format!("pairing '{}' with '{reference}'", row.method))?;
                    Ok(Some(md4_eval::Delta::from_paired(&d, Unit::Perplexity)))
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
    run: &crate::Run,
    dir: &crate::ArtifactDir,
    device: Device,
    matrix: &Matrix,
    notes: Vec<String>,
    mut outputs: Vec<std::path::PathBuf>,
) -> Result<()> {
    let (md, csv) = matrix.write(&dir.path)?;
    outputs.extend([md, csv]);
    let environment = md4_eval::Environment::capture(Some(&crate::workspace_root()), device, run.elapsed());
    let mut card = md4_eval::ProtocolCard::new(&run.artifact, "all rows", run.scale.name(), environment);
    card.notes = notes;
    card.write(&dir.file("card.yaml"))?;
    outputs.push(dir.file("card.yaml"));
    run.finish(dir, device, &outputs)?;
    println!("{}", matrix.to_markdown());
    Ok(())
}
