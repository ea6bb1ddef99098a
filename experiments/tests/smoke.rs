//! Smoke-scale artifacts end to end (issue 5: "snapshot-test the smoke-scale rendering"): the
//! table2 binary trains its six tiny rows, scores the test chunks and renders the table. The
//! numbers of a 4-step model depend on the CPU's floating-point kernels, so the snapshot masks
//! digits and pins everything else: rows, order, units, bound markers, paper column, notes.
//! Needs the `text8-wiki` data set (`md4 data text8-wiki`); skipped without it unless
//! `MD4_REQUIRE_DATA=1`.

mod common;

use common::{data_ready, mask_digits};
use std::path::Path;
use std::process::Command;

#[test]
fn table2_smoke_renders_the_expected_table() {
    if !data_ready(&["text8-wiki"]) {
        eprintln!("skipped: text8-wiki not prepared");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("md4-table2-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let out = scratch.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_table2"))
        .args(["--scale", "smoke", "--out"])
        .arg(&out)
        .env("MD4_RUNS_DIR", scratch.join("runs"))
        .status()
        .expect("running table2");
    assert!(status.success(), "table2 --scale smoke failed");
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    let snapshot_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/table2_smoke.md");
    let masked = mask_digits(&table);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&snapshot_path, &masked).unwrap();
    }
    let expected = std::fs::read_to_string(&snapshot_path).expect("snapshot (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(masked, expected, "table2 smoke rendering changed; review and rerun with UPDATE_SNAPSHOTS=1");
    // Every row has a card, the CSV has six rows, and the run record names the command.
    let csv = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    for slug in ["md4-linear", "md4-cosine", "genmd4", "sedd", "d3pm", "ar"] {
        let card = std::fs::read_to_string(out.join(format!("cards/{slug}.yaml"))).unwrap();
        assert!(card.contains("tokens_sha256") && card.contains("standard_error"), "{slug}: {card}");
    }
    let record = std::fs::read_to_string(out.join("record.yaml")).unwrap();
    assert!(record.contains("--scale smoke"), "{record}");
    // A second invocation reuses the finished runs.
    let second = Command::new(env!("CARGO_BIN_EXE_table2"))
        .args(["--scale", "smoke", "--rows", "ar", "--out"])
        .arg(scratch.join("again"))
        .env("MD4_RUNS_DIR", scratch.join("runs"))
        .output()
        .expect("running table2 again");
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already finished"), "runs must be reused");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn masking_keeps_structure() {
    assert_eq!(mask_digits("≤ 4.438 ± 0.298 | 12 steps"), "≤ #.# ± #.# | # steps");
    assert_eq!(mask_digits("MD4 on text8, D3PM"), "MD4 on text8, D3PM");
    assert_eq!(mask_digits("| -0.042 ± 0.006 (resolved) |"), "| Δ#.# ± #.# (verdict) |");
    assert_eq!(mask_digits("| +0.003 ± 0.006 (within 2 SE) |"), "| Δ#.# ± #.# (verdict) |");
}
