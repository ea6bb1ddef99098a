//! Result tables (issue 5 §1, spec §10): rows of (method, our value ± standard error, unit,
//! the paper's value, notes), held in a polars DataFrame and written as `table.md` (Markdown)
//! and `rows.csv`. The paper's values are transcribed once in `results/paper.yaml` and looked
//! up by (table, row key, column key); a value printed with "≤" in the paper is a bound.
//!
//! A table may carry a column `Δ vs <reference row>`: each row's paired difference to the
//! reference ([`crate::paired_difference`], common random numbers), which is how orderings are
//! judged (|Δ| ≥ 2 SE: resolved).

use crate::likelihood::{EvalResult, PairedDifference};
use crate::units::Unit;
use anyhow::{Context, Result, bail};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One number of the paper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperValue {
    pub value: f64,
    /// Printed with "≤": an upper bound on the negative log-likelihood. Absent means exact.
    #[serde(default)]
    pub bound: bool,
    /// E.g. the arXiv v1 value where it differs.
    #[serde(default)]
    pub note: Option<String>,
}

/// One row of a paper table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperRow {
    /// Stable key, `<group>/<method>` where the table has groups (`small/md4`).
    pub key: String,
    /// The method as the paper prints it.
    pub method: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub params: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// Column key → value.
    pub values: BTreeMap<String, PaperValue>,
}

/// One table of the paper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperTable {
    pub title: String,
    /// `bits_per_char`, `perplexity`, … or `fid`.
    pub unit: String,
    pub source: String,
    pub columns: Vec<String>,
    pub rows: Vec<PaperRow>,
}

/// All of `results/paper.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperTables {
    pub tables: BTreeMap<String, PaperTable>,
}

impl PaperTables {
    /// Load and check `paper.yaml`: row keys unique, every value under a declared column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let tables: Self = serde_yaml::from_str(text)?;
        for (name, table) in &tables.tables {
            let mut keys = BTreeSet::new();
            for row in &table.rows {
                if !keys.insert(row.key.as_str()) {
                    bail!("table {name}: duplicate row key '{}'", row.key);
                }
                if let Some(column) = row.values.keys().find(|c| !table.columns.contains(c)) {
                    bail!("table {name}, row {}: column '{column}' is not in {:?}", row.key, table.columns);
                }
            }
        }
        Ok(tables)
    }

    pub fn table(&self, table: &str) -> Result<&PaperTable> {
        self.tables.get(table).with_context(|| {
            format!(
                "paper.yaml has no table '{table}' (tables: {:?})",
                self.tables.keys().collect::<Vec<_>>()
            )
        })
    }

    pub fn row(&self, table: &str, row: &str) -> Result<&PaperRow> {
        let t = self.table(table)?;
        t.rows.iter().find(|r| r.key == row).with_context(|| {
            let keys: Vec<&str> = t.rows.iter().map(|r| r.key.as_str()).collect();
            format!("paper.yaml table {table} has no row '{row}' (rows: {keys:?})")
        })
    }

    /// The paper's value at (table, row key, column key); a missing key is an error naming it.
    pub fn value(&self, table: &str, row: &str, column: &str) -> Result<PaperValue> {
        let r = self.row(table, row)?;
        r.values.get(column).cloned().with_context(|| {
            format!(
                "paper.yaml table {table}, row {row} has no column '{column}' (columns: {:?})",
                r.values.keys().collect::<Vec<_>>()
            )
        })
    }
}

/// Our estimate in the row's unit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    pub mean: f64,
    /// Standard error; NaN when undefined (one sequence).
    pub se: f64,
    /// An upper bound on the negative log-likelihood (every diffusion ELBO).
    pub bound: bool,
}

impl Estimate {
    /// From a mean ± SE in nats per token.
    pub fn from_nats(mean_nats_per_token: f64, se_nats_per_token: f64, unit: Unit, bound: bool) -> Self {
        let (mean, se) = unit.convert(mean_nats_per_token, se_nats_per_token);
        Self { mean, se, bound }
    }

    pub fn from_result(result: &EvalResult, unit: Unit, bound: bool) -> Self {
        Self::from_nats(result.mean_nats_per_token, result.se_nats_per_token, unit, bound)
    }
}

/// A row's paired difference to the table's reference row, in the unit's difference scale
/// ([`Unit::convert_difference`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    pub mean: f64,
    pub se: f64,
    /// Δ ≠ 0 and |Δ| ≥ 2 SE.
    pub resolved: bool,
}

impl Delta {
    pub fn from_paired(d: &PairedDifference, unit: Unit) -> Self {
        let (mean, se) = unit.convert_difference(d.mean_nats_per_token, d.se_nats_per_token);
        Self { mean, se, resolved: d.resolved() }
    }

    /// Δ = `row` − `reference` in `unit`, from two evaluations of the same sequences on the same
    /// keyed streams (see [`crate::paired_difference`]).
    pub fn between(row: &EvalResult, reference: &EvalResult, unit: Unit) -> Result<Self> {
        Ok(Self::from_paired(&crate::paired_difference(row, reference)?, unit))
    }

    /// `-0.042 ± 0.006 (resolved)` or `+0.003 ± 0.006 (within 2 SE)`. A standard error below
    /// the precision gets the decimals that show it (up to 9), so that a resolved difference
    /// never reads `+0.000 ± 0.000`; an exact 0 (a model against itself) keeps `decimals`.
    pub fn render(&self, decimals: usize) -> String {
        let mut d = decimals;
        while d < 9 && self.se > 0.0 && self.se < 0.5 * 10f64.powi(-(d as i32)) {
            d += 1;
        }
        let verdict = if self.resolved { "resolved" } else { "within 2 SE" };
        format!("{:+.d$} ± {:.d$} ({verdict})", self.mean, self.se)
    }
}

/// One row of a result table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub method: String,
    /// None: not measured at this scale (say why in `notes`).
    pub ours: Option<Estimate>,
    /// Unit label (`BPC`, `PPL`, `FID`, …).
    pub unit: String,
    pub paper: Option<PaperValue>,
    pub notes: String,
    /// Paired difference to the table's reference row (None: not paired, or the reference).
    pub delta: Option<Delta>,
}

impl Row {
    pub fn new(
        method: &str,
        ours: Option<Estimate>,
        unit: &str,
        paper: Option<PaperValue>,
        notes: &str,
    ) -> Self {
        Self { method: method.into(), ours, unit: unit.into(), paper, notes: notes.into(), delta: None }
    }

    pub fn with_delta(mut self, delta: Option<Delta>) -> Self {
        self.delta = delta;
        self
    }
}

/// A result table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub title: String,
    /// Decimals for our mean and SE (the paper's values keep the paper's own digits).
    pub decimals: usize,
    pub rows: Vec<Row>,
    /// The Δ column: (reference row's method, difference label), when the rows are paired.
    pub delta_column: Option<(String, String)>,
    /// Lines printed under the table (e.g. the unigram yardsticks of the evaluation split).
    pub footer: Vec<String>,
    /// Reference yardsticks (unigram, compressors) on the scored tokens, in the given unit;
    /// rendered under the table and written to `references.csv`, never ranked with the rows.
    pub references: Vec<(crate::References, Unit)>,
}

/// Column names of `rows.csv`, in order.
pub const CSV_COLUMNS: [&str; 11] = [
    "method",
    "ours",
    "ours_se",
    "ours_bound",
    "unit",
    "paper",
    "paper_bound",
    "notes",
    "delta",
    "delta_se",
    "delta_resolved",
];

impl Table {
    pub fn new(title: &str, decimals: usize) -> Self {
        Self {
            title: title.into(),
            decimals,
            rows: Vec::new(),
            delta_column: None,
            footer: Vec::new(),
            references: Vec::new(),
        }
    }

    /// Add the column `Δ vs <reference> (<unit>, paired)`; rows carry their [`Delta`].
    pub fn with_delta_column(mut self, reference: &str, unit: Unit) -> Self {
        self.delta_column = Some((reference.into(), unit.difference_label().into()));
        self
    }

    pub fn push(&mut self, row: Row) -> &mut Self {
        self.rows.push(row);
        self
    }

    /// The rows as a DataFrame with [`CSV_COLUMNS`]; missing values are nulls.
    pub fn to_dataframe(&self) -> Result<DataFrame> {
        let col = |f: &dyn Fn(&Row) -> Option<f64>| self.rows.iter().map(f).collect::<Vec<_>>();
        let flag = |f: &dyn Fn(&Row) -> Option<bool>| self.rows.iter().map(f).collect::<Vec<_>>();
        let text = |f: &dyn Fn(&Row) -> String| self.rows.iter().map(f).collect::<Vec<_>>();
        let df = df!(
            CSV_COLUMNS[0] => text(&|r| r.method.clone()),
            CSV_COLUMNS[1] => col(&|r| r.ours.map(|e| e.mean)),
            CSV_COLUMNS[2] => col(&|r| r.ours.map(|e| e.se).filter(|se| se.is_finite())),
            CSV_COLUMNS[3] => flag(&|r| r.ours.map(|e| e.bound)),
            CSV_COLUMNS[4] => text(&|r| r.unit.clone()),
            CSV_COLUMNS[5] => col(&|r| r.paper.as_ref().map(|p| p.value)),
            CSV_COLUMNS[6] => flag(&|r| r.paper.as_ref().map(|p| p.bound)),
            CSV_COLUMNS[7] => text(&|r| r.notes.clone()),
            CSV_COLUMNS[8] => col(&|r| r.delta.map(|d| d.mean)),
            CSV_COLUMNS[9] => col(&|r| r.delta.map(|d| d.se)),
            CSV_COLUMNS[10] => flag(&|r| r.delta.map(|d| d.resolved)),
        )?;
        Ok(df)
    }

    /// The table as Markdown, rendered from [`Table::to_dataframe`].
    pub fn to_markdown(&self) -> Result<String> {
        let df = self.to_dataframe()?;
        let method = df.column("method")?.str()?;
        let ours = df.column("ours")?.f64()?;
        let ours_se = df.column("ours_se")?.f64()?;
        let ours_bound = df.column("ours_bound")?.bool()?;
        let unit = df.column("unit")?.str()?;
        let paper = df.column("paper")?.f64()?;
        let paper_bound = df.column("paper_bound")?.bool()?;
        let notes = df.column("notes")?.str()?;
        let d = self.decimals;
        let mut out = match &self.delta_column {
            None => format!(
                "## {}\n\n| Method | Ours | Unit | Paper | Notes |\n|---|---|---|---|---|\n",
                self.title
            ),
            Some((reference, label)) => format!(
                "## {}\n\n| Method | Ours | Unit | Δ vs {reference} ({label}, paired) | Paper | Notes |\n|---|---|---|---|---|---|\n",
                self.title
            ),
        };
        for i in 0..df.height() {
            let ours_cell = match ours.get(i) {
                None => "–".to_string(),
                Some(mean) => {
                    let le = if ours_bound.get(i) == Some(true) { "≤ " } else { "" };
                    match ours_se.get(i) {
                        Some(se) => format!("{le}{mean:.d$} ± {se:.d$}"),
                        None => format!("{le}{mean:.d$} (SE n/a)"),
                    }
                }
            };
            let paper_cell = match paper.get(i) {
                None => "–".to_string(),
                Some(v) => format!("{}{v}", if paper_bound.get(i) == Some(true) { "≤ " } else { "" }),
            };
            let mut cells = vec![method.get(i).unwrap_or(""), ours_cell.as_str(), unit.get(i).unwrap_or("")];
            let delta_cell = match (&self.delta_column, self.rows[i].delta) {
                (Some((reference, _)), _) if self.rows[i].method == *reference => "reference".to_string(),
                // Differences of ln PPL are small numbers whatever the perplexities' digits.
                (Some((_, label)), Some(delta)) if label == Unit::Perplexity.difference_label() => {
                    delta.render(d.max(3))
                }
                (_, Some(delta)) => delta.render(d),
                _ => "–".to_string(),
            };
            if self.delta_column.is_some() {
                cells.push(delta_cell.as_str());
            }
            cells.extend([paper_cell.as_str(), notes.get(i).unwrap_or("")]);
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if !self.footer.is_empty() {
            out.push('\n');
            for line in &self.footer {
                out.push_str(&format!("{line}\n"));
            }
        }
        for (refs, unit) in &self.references {
            out.push('\n');
            out.push_str(&refs.to_markdown(*unit, self.decimals));
        }
        Ok(out)
    }

    /// Write `table.md` and `rows.csv` into `dir` (created if needed); returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let md = dir.join("table.md");
        std::fs::write(&md, self.to_markdown()?).with_context(|| format!("writing {}", md.display()))?;
        let csv = dir.join("rows.csv");
        write_csv(&mut self.to_dataframe()?, &csv)?;
        if !self.references.is_empty() {
            let mut text = String::from("scored,");
            for (i, (refs, unit)) in self.references.iter().enumerate() {
                for (j, line) in refs.to_csv(*unit).lines().enumerate() {
                    if j > 0 {
                        text.push_str(&format!("\"{}\",{line}\n", refs.scored.replace('"', "'")));
                    } else if i == 0 {
                        text.push_str(&format!("{line}\n"));
                    }
                }
            }
            let path = dir.join("references.csv");
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok((md, csv))
    }
}

/// Write a DataFrame as CSV with a header.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    let mut file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    CsvWriter::new(&mut file)
        .include_header(true)
        .finish(df)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("writing {}", path.display()))
}

/// Read a CSV with a header into a DataFrame.
pub fn read_csv(path: &Path) -> Result<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|reader| reader.finish())
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: &str = "
tables:
  table2:
    title: text8 test bits per character
    unit: bits_per_char
    source: test
    columns: [bpc]
    rows:
      - {key: md4, method: MD4 (Ours), values: {bpc: {value: 1.37, bound: true}}}
      - {key: transformer_ar, method: Transformer AR, values: {bpc: {value: 1.23}}}
";

    fn small_table() -> Table {
        let paper = PaperTables::parse(PAPER).unwrap();
        let mut table = Table::new("text8 test BPC (smoke)", 3);
        table
            .push(Row::new(
                "MD4 (linear)",
                Some(Estimate { mean: 1.45678, se: 0.01234, bound: true }),
                "BPC",
                Some(paper.value("table2", "md4", "bpc").unwrap()),
                "K = 2 passes | EMA",
            ))
            .push(Row::new(
                "AR transformer",
                Some(Estimate { mean: 1.3, se: f64::NAN, bound: false }),
                "BPC",
                Some(paper.value("table2", "transformer_ar", "bpc").unwrap()),
                "",
            ))
            .push(Row::new("GenMD4", None, "BPC", None, "not run at smoke scale"));
        table
    }

    #[test]
    fn markdown_snapshot() {
        let expected = "\
## text8 test BPC (smoke)

| Method | Ours | Unit | Paper | Notes |
|---|---|---|---|---|
| MD4 (linear) | ≤ 1.457 ± 0.012 | BPC | ≤ 1.37 | K = 2 passes \\| EMA |
| AR transformer | 1.300 (SE n/a) | BPC | 1.23 |  |
| GenMD4 | – | BPC | – | not run at smoke scale |
";
        assert_eq!(small_table().to_markdown().unwrap(), expected);
    }

    #[test]
    fn ln_ppl_differences_keep_three_decimals_in_a_one_decimal_table() {
        let mut table = Table::new("ppl", 1).with_delta_column("MD4", Unit::Perplexity);
        let d = Delta { mean: -0.4241, se: 0.0123, resolved: true };
        table.push(Row::new("MD4", None, "PPL", None, ""));
        table.push(Row::new("GenMD4", None, "PPL", None, "").with_delta(Some(d)));
        let md = table.to_markdown().unwrap();
        assert!(
            md.contains("| -0.424 ± 0.012 (resolved) |") || md.contains("| −0.424 ± 0.012 (resolved) |"),
            "{md}"
        );
    }

    #[test]
    fn differences_below_the_precision_get_the_decimals_that_show_them() {
        let d = |mean, se, resolved| Delta { mean, se, resolved }.render(3);
        assert_eq!(d(-0.0011, 0.0003, true), "-0.0011 ± 0.0003 (resolved)");
        assert_eq!(d(3.1e-7, 2.0e-8, true), "+0.00000031 ± 0.00000002 (resolved)");
        assert_eq!(d(0.0, 0.0, false), "+0.000 ± 0.000 (within 2 SE)");
        assert_eq!(d(0.0123, 0.0049, true), "+0.012 ± 0.005 (resolved)");
    }

    #[test]
    fn delta_column_names_the_reference_and_judges_each_row() {
        let mut table = Table::new("paired", 3).with_delta_column("MD4", Unit::BitsPerChar);
        let est = Some(Estimate { mean: 3.2, se: 0.01, bound: true });
        let paired = |mean: f64, se: f64| PairedDifference {
            mean_nats_per_token: mean,
            se_nats_per_token: se,
            n_sequences: 9,
        };
        let ln2 = std::f64::consts::LN_2;
        table
            .push(Row::new("MD4", est, "BPC", None, ""))
            .push(
                Row::new("SEDD", est, "BPC", None, "")
                    .with_delta(Some(Delta::from_paired(&paired(0.05 * ln2, 0.01 * ln2), Unit::BitsPerChar))),
            )
            .push(
                Row::new("GenMD4", est, "BPC", None, "").with_delta(Some(Delta::from_paired(
                    &paired(-0.01 * ln2, 0.01 * ln2),
                    Unit::BitsPerChar,
                ))),
            )
            .push(Row::new("AR", est, "BPC", None, ""));
        let md = table.to_markdown().unwrap();
        assert!(md.contains("| Method | Ours | Unit | Δ vs MD4 (BPC, paired) | Paper | Notes |"), "{md}");
        assert!(md.contains("| MD4 | ≤ 3.200 ± 0.010 | BPC | reference | – |  |"), "{md}");
        assert!(md.contains("| SEDD | ≤ 3.200 ± 0.010 | BPC | +0.050 ± 0.010 (resolved) |"), "{md}");
        assert!(md.contains("| GenMD4 | ≤ 3.200 ± 0.010 | BPC | -0.010 ± 0.010 (within 2 SE) |"), "{md}");
        assert!(md.contains("| AR | ≤ 3.200 ± 0.010 | BPC | – |"), "{md}");
        let df = table.to_dataframe().unwrap();
        let resolved: Vec<Option<bool>> =
            df.column("delta_resolved").unwrap().bool().unwrap().iter().collect();
        assert_eq!(resolved, vec![None, Some(true), Some(false), None]);
        // Perplexity tables report Δ ln PPL in nats per token.
        let ppl = Delta::from_paired(&paired(0.1, 0.02), Unit::Perplexity);
        assert_eq!((ppl.mean, ppl.se, ppl.resolved), (0.1, 0.02, true));
        assert_eq!(Unit::Perplexity.difference_label(), "ln PPL");
    }

    #[test]
    fn csv_round_trips_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let table = small_table();
        let (md, csv) = table.write(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(md).unwrap(), table.to_markdown().unwrap());
        let df = read_csv(&csv).unwrap();
        let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
        assert_eq!(names, CSV_COLUMNS);
        let ours: Vec<Option<f64>> = df.column("ours").unwrap().f64().unwrap().iter().collect();
        assert_eq!(ours, vec![Some(1.45678), Some(1.3), None]);
        let se: Vec<Option<f64>> = df.column("ours_se").unwrap().f64().unwrap().iter().collect();
        assert_eq!(se, vec![Some(0.01234), None, None]);
        let paper: Vec<Option<f64>> = df.column("paper").unwrap().f64().unwrap().iter().collect();
        assert_eq!(paper, vec![Some(1.37), Some(1.23), None]);
        let bound: Vec<Option<bool>> = df.column("paper_bound").unwrap().bool().unwrap().iter().collect();
        assert_eq!(bound, vec![Some(true), Some(false), None]);
        assert_eq!(df.column("notes").unwrap().str().unwrap().get(0), Some("K = 2 passes | EMA"));
    }

    #[test]
    fn paper_lookups_name_missing_keys() {
        let paper = PaperTables::parse(PAPER).unwrap();
        assert_eq!(
            paper.value("table2", "md4", "bpc").unwrap(),
            PaperValue { value: 1.37, bound: true, note: None }
        );
        assert!(!paper.value("table2", "transformer_ar", "bpc").unwrap().bound);
        assert!(format!("{:#}", paper.value("table9", "md4", "bpc").unwrap_err()).contains("table9"));
        assert!(format!("{:#}", paper.value("table2", "md5", "bpc").unwrap_err()).contains("'md5'"));
        assert!(format!("{:#}", paper.value("table2", "md4", "bpd").unwrap_err()).contains("'bpd'"));
        let typo = PAPER.replace("bound: true", "bund: true");
        assert!(format!("{:#}", PaperTables::parse(&typo).unwrap_err()).contains("bund"));
        let stray = PAPER.replace("values: {bpc: {value: 1.23}}", "values: {bpd: {value: 1.23}}");
        assert!(format!("{:#}", PaperTables::parse(&stray).unwrap_err()).contains("'bpd'"));
    }

    #[test]
    fn committed_paper_yaml_has_the_spec_tables() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/paper.yaml");
        let paper = PaperTables::load(&path).unwrap();
        let names: Vec<&str> = paper.tables.keys().map(String::as_str).collect();
        assert_eq!(names, ["table1", "table2", "table3", "table5", "table6", "table7"]);
        // Every row has a value in every column (the spec's tables have no gaps).
        for (name, table) in &paper.tables {
            for row in &table.rows {
                assert_eq!(row.values.len(), table.columns.len(), "{name}/{}", row.key);
            }
        }
        // The text8 table's ordering claims: GenMD4 < MD4 < SEDD < D3PM Absorb, all bounds,
        // and the Transformer AR row is an exact likelihood.
        let bpc = |row: &str| paper.value("table2", row, "bpc").unwrap();
        assert!(bpc("genmd4").value < bpc("md4").value);
        assert!(bpc("md4").value < bpc("sedd_absorb").value);
        assert!(bpc("sedd_absorb").value < bpc("d3pm_absorb").value);
        assert!(bpc("md4").bound && !bpc("transformer_ar").bound);
        // Table 7: finite-T bounds decrease with T in every column except the WikiText103 typo.
        for column in ["lambada", "wikitext2", "ptb", "lm1b"] {
            let v = |row: &str| paper.value("table7", row, column).unwrap().value;
            assert!(v("t100") >= v("t1000") && v("t1000") >= v("t10000") && v("t10000") >= v("continuous"));
        }
    }
}
