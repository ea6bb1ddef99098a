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
    check_references(&out.join("references.csv"));
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

/// A CSV line split on commas outside double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted) = (vec![], String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// The reference rows of the smoke table against values computed here, independently of the
/// binary: the first 8 test chunks of 256 characters as text, compressed with the compressor
/// crates directly, and the unigram entropies counted by hand, in bits per character.
fn check_references(path: &Path) {
    use std::io::Write;
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "scored,reference,alone,given_train,unit,settings");
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let value = |name: &str, col: usize| -> Option<f64> {
        let row = rows.iter().find(|r| r[1] == name).unwrap_or_else(|| panic!("no {name} row: {text}"));
        assert_eq!(row[4], "bits_per_char");
        row[col].parse().ok()
    };
    let prepared = md4_data::prepare("text8-wiki", &Default::default()).unwrap();
    let read = |split: &str| {
        let f = prepared.open(split).unwrap();
        (0..f.len()).map(|i| f.get(i) as u8).collect::<Vec<u8>>()
    };
    let (train, test) = (read("train"), read("test"));
    let test = &test[..8 * 256];
    let n = test.len() as f64;
    let bytes = md4_data::text8_decode(test).into_bytes();
    let train_bytes = md4_data::text8_decode(&train).into_bytes();
    // At smoke scale the compressors condition on the training split's last 1 MiB.
    let train_bytes = &train_bytes[train_bytes.len() - (1 << 20)..];
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b).unwrap();
        e.finish().unwrap().len() as f64
    };
    let bz = |b: &[u8]| {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(b).unwrap();
        e.finish().unwrap().len() as f64
    };
    let xz = |b: &[u8]| {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 9 | liblzma::stream::PRESET_EXTREME);
        e.write_all(b).unwrap();
        e.finish().unwrap().len() as f64
    };
    let close =
        |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{what}: {a} vs {b}");
    close(value("gzip", 2).unwrap(), gz(&bytes) * 8.0 / n, "gzip alone");
    close(value("bzip2", 2).unwrap(), bz(&bytes) * 8.0 / n, "bzip2 alone");
    close(value("xz", 2).unwrap(), xz(&bytes) * 8.0 / n, "xz alone");
    let both: Vec<u8> = train_bytes.iter().chain(&bytes).copied().collect();
    close(value("gzip", 3).unwrap(), (gz(&both) - gz(train_bytes)) * 8.0 / n, "gzip given train");
    close(value("xz", 3).unwrap(), (xz(&both) - xz(train_bytes)) * 8.0 / n, "xz given train");
    // Unigram: plug-in entropy of the chunks, and cross-entropy under add-one train counts (V = 27).
    let (mut c_test, mut c_train) = ([0f64; 27], [0f64; 27]);
    test.iter().for_each(|&t| c_test[t as usize] += 1.0);
    train.iter().for_each(|&t| c_train[t as usize] += 1.0);
    let nt = train.len() as f64 + 27.0;
    let h: f64 = c_test.iter().filter(|&&c| c > 0.0).map(|&c| -(c / n) * (c / n).log2()).sum();
    let x: f64 = c_test.iter().zip(&c_train).map(|(&c, &t)| -(c / n) * ((t + 1.0) / nt).log2()).sum();
    close(value("unigram", 2).unwrap(), h, "unigram entropy");
    close(value("unigram", 3).unwrap(), x, "unigram cross-entropy");
    // Sanity of the yardsticks themselves: text compresses below 8 bits and above 1 bit per char.
    for name in ["gzip", "bzip2", "xz"] {
        assert!((1.0..8.0).contains(&value(name, 2).unwrap()), "{name}");
    }
}

#[test]
fn masking_keeps_structure() {
    assert_eq!(mask_digits("≤ 4.438 ± 0.298 | 12 steps"), "≤ #.# ± #.# | # steps");
    assert_eq!(mask_digits("MD4 on text8, D3PM"), "MD4 on text8, D3PM");
    assert_eq!(mask_digits("| -0.042 ± 0.006 (resolved) |"), "| Δ#.# ± #.# (verdict) |");
    assert_eq!(mask_digits("| +0.003 ± 0.006 (within 2 SE) |"), "| Δ#.# ± #.# (verdict) |");
}
