//! Tables with one column per evaluation set (paper Tables 1 and 7): rows of our methods (or
//! bounds) × columns of data sets, each cell a mean ± standard error or the reason it could not
//! be computed at this scale; the paper's rows printed below ours for reference. Written as
//! `table.md` and a long-format `cells.csv` (one line per row × column). A matrix may carry
//! paired differences to a reference row, column by column, rendered as a second table below
//! the first (`Δ vs <reference>`, see [`crate::paired_difference`]).

use crate::table::{Delta, Estimate, PaperRow, write_csv};
use anyhow::{Context, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// One cell of our rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Value(Estimate),
    /// Not computed; why (e.g. "LAMBADA comes from the Hub, unreachable at small scale").
    Missing(String),
}

/// One of our rows.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixRow {
    pub method: String,
    /// One per column.
    pub cells: Vec<Cell>,
    pub notes: String,
    /// Paired difference to the reference row per column (empty, or one per column).
    pub deltas: Vec<Option<Delta>>,
}

/// A column: its display name and the paper table's column key (absent: no paper counterpart).
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixColumn {
    pub name: String,
    pub paper_key: Option<String>,
}

/// A rows × data sets table.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub title: String,
    /// Unit label of every cell (`PPL`).
    pub unit: String,
    pub decimals: usize,
    pub columns: Vec<MatrixColumn>,
    pub rows: Vec<MatrixRow>,
    /// The paper's rows, printed after ours (matched to our columns by `paper_key`).
    pub paper_rows: Vec<PaperRow>,
    /// (reference row's method, difference label) when the rows carry paired differences.
    pub delta_reference: Option<(String, String)>,
    /// Reference yardsticks per column (column name, values, unit): rendered under the matrix
    /// and written to `references.csv`, never ranked with the rows.
    pub references: Vec<(String, crate::References, crate::Unit)>,
}

/// Column names of `cells.csv`, in order.
pub const CELL_COLUMNS: [&str; 10] = [
    "method",
    "column",
    "ours",
    "ours_se",
    "ours_bound",
    "unit",
    "missing",
    "delta",
    "delta_se",
    "delta_resolved",
];

impl Matrix {
    /// The cells in long format with [`CELL_COLUMNS`]; missing values are nulls.
    pub fn to_dataframe(&self) -> Result<DataFrame> {
        let (mut method, mut column, mut ours, mut se, mut bound, mut unit, mut missing) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut delta, mut delta_se, mut resolved) = (vec![], vec![], vec![]);
        for row in &self.rows {
            for (i, (col, cell)) in self.columns.iter().zip(&row.cells).enumerate() {
                let d = row.deltas.get(i).copied().flatten();
                delta.push(d.map(|d| d.mean));
                delta_se.push(d.map(|d| d.se));
                resolved.push(d.map(|d| d.resolved));
                method.push(row.method.clone());
                column.push(col.name.clone());
                unit.push(self.unit.clone());
                match cell {
                    Cell::Value(e) => {
                        ours.push(Some(e.mean));
                        se.push(Some(e.se).filter(|s| s.is_finite()));
                        bound.push(Some(e.bound));
                        missing.push(None);
                    }
                    Cell::Missing(why) => {
                        ours.push(None);
                        se.push(None);
                        bound.push(None);
                        missing.push(Some(why.clone()));
                    }
                }
            }
        }
        Ok(df!(
            CELL_COLUMNS[0] => method,
            CELL_COLUMNS[1] => column,
            CELL_COLUMNS[2] => ours,
            CELL_COLUMNS[3] => se,
            CELL_COLUMNS[4] => bound,
            CELL_COLUMNS[5] => unit,
            CELL_COLUMNS[6] => missing,
            CELL_COLUMNS[7] => delta,
            CELL_COLUMNS[8] => delta_se,
            CELL_COLUMNS[9] => resolved,
        )?)
    }

    /// Markdown: our rows, then the paper's, then numbered footnotes for the missing cells.
    pub fn to_markdown(&self) -> String {
        let d = self.decimals;
        let mut reasons: Vec<String> = vec![];
        let mut out = format!("## {} ({})\n\n| Method |", self.title, self.unit);
        for c in &self.columns {
            out.push_str(&format!(" {} |", c.name));
        }
        out.push_str(" Notes |\n|---|");
        out.push_str(&"---|".repeat(self.columns.len() + 1));
        out.push('\n');
        let esc = |s: &str| s.replace('|', "\\|");
        for row in &self.rows {
            out.push_str(&format!("| {} |", esc(&row.method)));
            for cell in &row.cells {
                let text = match cell {
                    Cell::Value(e) => {
                        let le = if e.bound { "≤ " } else { "" };
                        if e.se.is_finite() {
                            format!("{le}{:.d$} ± {:.d$}", e.mean, e.se)
                        } else {
                            format!("{le}{:.d$} (SE n/a)", e.mean)
                        }
                    }
                    Cell::Missing(why) => {
                        let i = match reasons.iter().position(|r| r == why) {
                            Some(i) => i,
                            None => {
                                reasons.push(why.clone());
                                reasons.len() - 1
                            }
                        };
                        format!("n/a [{}]", i + 1)
                    }
                };
                out.push_str(&format!(" {text} |"));
            }
            out.push_str(&format!(" {} |\n", esc(&row.notes)));
        }
        for p in &self.paper_rows {
            let group = p.group.as_deref().map(|g| format!(" ({g})")).unwrap_or_default();
            out.push_str(&format!("| *paper:* {}{group} |", esc(&p.method)));
            for c in &self.columns {
                let cell =
                    c.paper_key.as_ref().and_then(|k| p.values.get(k)).map_or("–".to_string(), |v| {
                        format!("{}{}", if v.bound { "≤ " } else { "" }, v.value)
                    });
                out.push_str(&format!(" {cell} |"));
            }
            out.push_str(&format!(" {} |\n", esc(p.note.as_deref().unwrap_or(""))));
        }
        if let Some((reference, label)) = &self.delta_reference {
            out.push_str(&format!(
                "\n### Δ vs {reference} ({label}, paired, same sequences and draws)\n\n| Method |"
            ));
            for c in &self.columns {
                out.push_str(&format!(" {} |", c.name));
            }
            out.push_str("\n|---|");
            out.push_str(&"---|".repeat(self.columns.len()));
            out.push('\n');
            for row in &self.rows {
                out.push_str(&format!("| {} |", esc(&row.method)));
                for i in 0..self.columns.len() {
                    let text = match row.deltas.get(i).copied().flatten() {
                        _ if row.method == *reference => "reference".to_string(),
                        Some(delta) => delta.render(3),
                        None => "–".to_string(),
                    };
                    out.push_str(&format!(" {text} |"));
                }
                out.push('\n');
            }
        }
        for (column, refs, unit) in &self.references {
            out.push_str(&format!("\n### {column}: reference yardsticks\n\n"));
            out.push_str(&refs.to_markdown(*unit, self.decimals));
        }
        if !reasons.is_empty() {
            out.push('\n');
            for (i, r) in reasons.iter().enumerate() {
                out.push_str(&format!("[{}] {r}\n", i + 1));
            }
        }
        out
    }

    /// Write `table.md` and `cells.csv` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let md = dir.join("table.md");
        std::fs::write(&md, self.to_markdown()).with_context(|| format!("writing {}", md.display()))?;
        let csv = dir.join("cells.csv");
        write_csv(&mut self.to_dataframe()?, &csv)?;
        if !self.references.is_empty() {
            let mut text = String::from("column,");
            for (i, (column, refs, unit)) in self.references.iter().enumerate() {
                for (j, line) in refs.to_csv(*unit).lines().enumerate() {
                    if j > 0 {
                        text.push_str(&format!("\"{column}\",{line}\n"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::PaperValue;

    #[test]
    fn renders_values_missing_cells_and_paper_rows() {
        let m = Matrix {
            title: "Zero-shot".into(),
            unit: "PPL".into(),
            decimals: 1,
            columns: vec![
                MatrixColumn { name: "LAMBADA".into(), paper_key: Some("lambada".into()) },
                MatrixColumn { name: "PTB".into(), paper_key: Some("ptb".into()) },
                MatrixColumn { name: "Mix".into(), paper_key: None },
            ],
            rows: vec![MatrixRow {
                method: "MD4".into(),
                cells: vec![
                    Cell::Missing("Hub only".into()),
                    Cell::Value(Estimate { mean: 812.34, se: 5.01, bound: true }),
                    Cell::Value(Estimate { mean: 40.0, se: f64::NAN, bound: false }),
                ],
                notes: "n|b".into(),
                deltas: vec![],
            }],
            paper_rows: vec![PaperRow {
                key: "small/md4".into(),
                method: "MD4 (Ours)".into(),
                group: Some("Small".into()),
                params: None,
                note: None,
                values: [("ptb".to_string(), PaperValue { value: 102.26, bound: true, note: None })].into(),
            }],
            delta_reference: None,
            references: vec![],
        };
        let md = m.to_markdown();
        assert!(md.contains("| MD4 | n/a [1] | ≤ 812.3 ± 5.0 | 40.0 (SE n/a) | n\\|b |"), "{md}");
        assert!(md.contains("| *paper:* MD4 (Ours) (Small) | – | ≤ 102.26 | – |"), "{md}");
        assert!(md.contains("[1] Hub only"));
        let df = m.to_dataframe().unwrap();
        assert_eq!(df.height(), 3);
        assert_eq!(df.column("missing").unwrap().str().unwrap().get(0), Some("Hub only"));
        assert_eq!(df.column("ours_se").unwrap().f64().unwrap().get(2), None);
        assert!(!md.contains("Δ vs"), "{md}");
    }

    #[test]
    fn paired_differences_render_below_the_values() {
        let est = Cell::Value(Estimate { mean: 100.0, se: 5.0, bound: true });
        let delta = Delta { mean: 0.042, se: 0.01, resolved: true };
        let row = |method: &str, deltas: Vec<Option<Delta>>| MatrixRow {
            method: method.into(),
            cells: vec![est.clone(), Cell::Missing("Hub only".into())],
            notes: String::new(),
            deltas,
        };
        let m = Matrix {
            title: "Zero-shot".into(),
            unit: "PPL".into(),
            decimals: 1,
            columns: vec![
                MatrixColumn { name: "PTB".into(), paper_key: None },
                MatrixColumn { name: "LAMBADA".into(), paper_key: None },
            ],
            rows: vec![row("MD4", vec![None, None]), row("SEDD", vec![Some(delta), None])],
            paper_rows: vec![],
            delta_reference: Some(("MD4".into(), "ln PPL".into())),
            references: vec![],
        };
        let md = m.to_markdown();
        assert!(md.contains("### Δ vs MD4 (ln PPL, paired, same sequences and draws)"), "{md}");
        assert!(md.contains("| MD4 | reference | reference |"), "{md}");
        assert!(md.contains("| SEDD | +0.042 ± 0.010 (resolved) | – |"), "{md}");
        let df = m.to_dataframe().unwrap();
        let d: Vec<Option<f64>> = df.column("delta").unwrap().f64().unwrap().iter().collect();
        assert_eq!(d, vec![None, None, Some(0.042), None]);
    }
}
