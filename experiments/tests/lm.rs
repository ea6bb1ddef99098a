//! The language-model artifacts end to end at smoke scale (table5 → table1, table7, fig4, fig8,
//! infill share one scratch runs directory, so table5's tiny models are trained once), with the
//! invariants each output must satisfy whatever a 3-step model's numbers are:
//! * table1: Hub-only columns carry their reason, computed cells are finite, AR cells are exact
//!   (no ≤) and diffusion cells are bounds; the zero-shot PTB column scores exactly the prepared
//!   test split's chunks.
//! * table7: T = 100/1000/10000/∞ rows on the same columns; the T = ∞ row equals table1's MD4
//!   row (same model, chunks and seeds ⇒ the same estimator draws).
//! * fig8: an uncached time-conditioned sampler makes exactly T calls (+1 for a leftover fill);
//!   unigram entropies lie in [0, ln N].
//! * infill: every sample keeps the prefix and suffix token for token.
//!
//! Needs `english-mix`, `ptb` and `wiki-proxy` (`just data-registry`); skipped without them
//! unless `MD4_REQUIRE_DATA=1`.

mod common;

use common::data_ready;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(bin: &str, exe: &str, scratch: &Path) -> PathBuf {
    let out = scratch.join(bin);
    let status = Command::new(exe)
        .args(["--scale", "smoke", "--out"])
        .arg(&out)
        .env("MD4_RUNS_DIR", scratch.join("runs"))
        .env("OMP_NUM_THREADS", "1")
        .status()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    assert!(status.success(), "{bin} --scale smoke failed");
    assert!(out.join("record.yaml").is_file(), "{bin} wrote no record");
    out
}

/// `cells.csv` as (method, column, ours, bound, missing) rows.
fn cells(path: &Path) -> Vec<(String, String, Option<f64>, Option<bool>, Option<String>)> {
    let df = md4_eval::table::read_csv(path).unwrap();
    let s = |c: &str| df.column(c).unwrap().str().unwrap().clone();
    let (method, column, missing) = (s("method"), s("column"), s("missing"));
    let ours = df.column("ours").unwrap().f64().unwrap().clone();
    let bound = df.column("ours_bound").unwrap().bool().unwrap().clone();
    (0..df.height())
        .map(|i| {
            (
                method.get(i).unwrap().to_string(),
                column.get(i).unwrap().to_string(),
                ours.get(i),
                bound.get(i),
                missing.get(i).map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn language_model_artifacts_at_smoke_scale() {
    if !data_ready(&["english-mix", "ptb", "wiki-proxy"]) {
        eprintln!("skipped: registry text data not prepared");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("md4-lm-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);

    let t5 = run("table5", env!("CARGO_BIN_EXE_table5"), &scratch);
    let table5 = std::fs::read_to_string(t5.join("table.md")).unwrap();
    for row in ["| MD4 | ≤ ", "| GenMD4 | ≤ ", "| SEDD absorb | ≤ ", "| AR transformer | "] {
        assert!(table5.contains(row), "table5 lacks {row:?}:\n{table5}");
    }
    // Reference yardsticks under the table, in perplexity, on the sub-vocabulary's tokens.
    for r in ["References, not models", "| unigram | ", "| gzip | ", "| bzip2 | ", "| xz | "] {
        assert!(table5.contains(r), "table5 lacks {r:?}:\n{table5}");
    }
    let card = std::fs::read_to_string(t5.join("cards/md4.yaml")).unwrap();
    assert!(card.contains("1024 tokens") && card.contains("sub-vocabulary"), "table5 card: {card}");

    let t1 = run("table1", env!("CARGO_BIN_EXE_table1"), &scratch);
    let c1 = cells(&t1.join("cells.csv"));
    assert_eq!(c1.len(), 3 * 7, "3 rows × 7 columns");
    for (method, column, ours, bound, missing) in &c1 {
        match column.as_str() {
            "LAMBADA" | "WikiText2" | "WikiText103" | "1BW" => {
                assert!(ours.is_none() && missing.as_deref().is_some_and(|m| m.contains("Hub")), "{column}")
            }
            _ => {
                let v = ours.unwrap_or_else(|| panic!("{method} on {column} has no value"));
                assert!(v.is_finite() && v > 1.0, "{method} on {column}: {v}");
                assert_eq!(*bound, Some(method != "AR transformer"), "{method}: bound flag");
            }
        }
    }
    let card = std::fs::read_to_string(t1.join("cards/md4-ptb.yaml")).unwrap();
    assert!(card.contains("n_sequences: 8"), "PTB card: {card}");
    // One block of four references (unigram, gzip, bzip2, xz) per scored column.
    let refs = std::fs::read_to_string(t1.join("references.csv")).unwrap();
    assert_eq!(refs.lines().count(), 1 + 3 * 4, "{refs}");
    for line in refs.lines().skip(1) {
        assert!(line.contains(",perplexity,"), "{line}");
    }

    let t7 = run("table7", env!("CARGO_BIN_EXE_table7"), &scratch);
    let c7 = cells(&t7.join("cells.csv"));
    let methods: Vec<&str> = c7.iter().map(|c| c.0.as_str()).collect();
    for m in ["T = 100", "T = 1000", "T = 10000", "T = ∞ (continuous)"] {
        assert!(methods.contains(&m), "table7 lacks {m}");
    }
    for column in ["PTB", "Wikipedia (WikiText-style proxy)"] {
        let t1_md4 = c1.iter().find(|c| c.0 == "MD4" && c.1 == column).unwrap().2.unwrap();
        let t7_inf = c7.iter().find(|c| c.0 == "T = ∞ (continuous)" && c.1 == column).unwrap().2.unwrap();
        assert!((t1_md4 - t7_inf).abs() <= 1e-9 * t1_md4, "{column}: table1 {t1_md4} vs table7 ∞ {t7_inf}");
    }

    let f4 = run("fig4", env!("CARGO_BIN_EXE_fig4"), &scratch);
    assert!(f4.join("fig4.png").is_file() && f4.join("fig4.csv").is_file());

    let f8 = run("fig8", env!("CARGO_BIN_EXE_fig8"), &scratch);
    let points = std::fs::read_to_string(f8.join("points.csv")).unwrap();
    for line in points.lines().skip(1) {
        // The sampler name is quoted and may hold commas; the seven numbers follow it.
        let mut f: Vec<&str> = line.rsplitn(8, ',').collect();
        f.reverse();
        let (steps, entropy, calls, filled): (i64, f64, i64, i64) =
            (f[1].parse().unwrap(), f[4].parse().unwrap(), f[5].parse().unwrap(), f[7].parse().unwrap());
        assert!((0.0..=(64f64).ln() + 1e-9).contains(&entropy), "{line}");
        if f[0].contains("cached") {
            assert!(calls <= steps + 1, "{line}");
        } else {
            assert_eq!(calls, steps + i64::from(filled > 0), "{line}");
        }
    }

    let inf = run("infill", env!("CARGO_BIN_EXE_infill"), &scratch);
    let md = std::fs::read_to_string(inf.join("infill.md")).unwrap();
    let samples: Vec<&str> = md.lines().filter(|l| l.contains(" bits/token` ")).collect();
    assert_eq!(samples.len(), 2 * 3 * 3, "2 prompts × 3 settings × 3 samples");
    for s in samples {
        assert!(
            s.contains("My hair gets dirty very quickly in the summer.⟦")
                || s.contains("Skydiving is a fun sport⟦"),
            "prefix changed: {s}"
        );
        assert!(
            s.ends_with("⟧ That is why I always shampoo twice a day and shower three times a day.")
                || s.ends_with("⟧ and that is why we go again next month."),
            "suffix changed: {s}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
