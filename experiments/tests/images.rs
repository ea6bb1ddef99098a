//! The image artifacts end to end at smoke scale (issue: image artifacts): `table3` trains its
//! four tiny rows on Fashion-MNIST, scores the test images, draws sample grids and runs the
//! loading-path checks of the CIFAR-10 and ImageNet64 networks on the 20 foolbox images of
//! each; `image-samples` then reuses its runs. The checks carry real math: an untrained
//! network (zero-initialised output layer) must score (1 − ε)·8 bits per dimension within its
//! Monte-Carlo error, its logits must have the paper's shapes, and one training step must keep
//! every parameter finite and lower the bound of the batch it saw. The rendered table is
//! snapshot-tested with digits masked, as table2's.
//! Needs `fashion-mnist`, `cifar10-foolbox` and `imagenet64-foolbox` (`just data-registry`);
//! skipped without them unless `MD4_REQUIRE_DATA=1`.

mod common;

use common::{data_ready, mask_digits};
use experiments::images::CheckResult;
use std::path::Path;
use std::process::Command;

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

fn run(bin: &str, args: &[&str], out: &Path, runs: &Path) -> std::process::Output {
    let output = Command::new(bin)
        .args(args)
        .arg("--out")
        .arg(out)
        .env("MD4_RUNS_DIR", runs)
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    assert!(output.status.success(), "{bin} {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn check_the_checks(out: &Path) {
    let mut results = vec![];
    for entry in std::fs::read_dir(out.join("checks")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            results.push(serde_yaml::from_str::<CheckResult>(&text).unwrap());
        }
    }
    results.sort_by(|a, b| a.dataset.cmp(&b.dataset));
    let datasets: Vec<&str> = results.iter().map(|r| r.dataset.as_str()).collect();
    assert_eq!(datasets, ["cifar10-foolbox", "imagenet64-foolbox"]);
    for (r, hw) in results.iter().zip([32, 64]) {
        let n = hw * hw * 3;
        assert_eq!((r.images, r.shape), (20, [hw, hw, 3]), "{}", r.name);
        assert_eq!(r.logits_shape, [2, n, 256], "{}", r.name);
        assert_eq!(r.untrained_logits_max_abs, 0.0, "{}: the output layer is zero-initialised", r.name);
        // (1 − ε)·log2(256) with ε = 1e−4; the estimate's noise is the binomial count of masked
        // sub-pixels weighted by 1/(1 − α_t), heavy-tailed near t = 0, hence the 4 SE.
        assert_eq!(r.expected_bpd, 8.0 * (1.0 - 1e-4));
        let gap = (r.untrained_bpd - r.expected_bpd).abs();
        assert!(
            r.untrained_bpd_se < 0.1 && gap <= 4.0 * r.untrained_bpd_se + 1e-3,
            "{}: {} ± {} bits per dimension, expected {}",
            r.name,
            r.untrained_bpd,
            r.untrained_bpd_se,
            r.expected_bpd
        );
        assert!(r.step_params_finite && r.step_loss_bits.is_finite(), "{}", r.name);
        assert!((6.0..10.0).contains(&r.step_loss_bits), "{}: step loss {}", r.name, r.step_loss_bits);
        assert!(
            r.batch_bpd_after < r.batch_bpd_before,
            "{}: one step must lower the batch's bound ({} → {})",
            r.name,
            r.batch_bpd_before,
            r.batch_bpd_after
        );
    }
}

#[test]
fn table3_and_image_samples_smoke() {
    if !data_ready(&["fashion-mnist", "cifar10-foolbox", "imagenet64-foolbox"]) {
        eprintln!("skipped: image data sets not prepared");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("md4-images-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let (out, runs) = (scratch.join("table3"), scratch.join("runs"));
    run(env!("CARGO_BIN_EXE_table3"), &["--scale", "smoke"], &out, &runs);

    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    let snapshot_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/table3_smoke.md");
    let masked = mask_digits(&table);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&snapshot_path, &masked).unwrap();
    }
    let expected = std::fs::read_to_string(&snapshot_path).expect("snapshot (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(masked, expected, "table3 smoke rendering changed; review and rerun with UPDATE_SNAPSHOTS=1");
    // Four rows of ours, the Campbell network rescored with MD4's estimator, and the paper's 15
    // other rows; a card per row.
    let csv = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5 + 15, "{csv}");
    for slug in ["md4-linear", "campbell", "campbell-md4-estimator", "ar", "md4-cosine"] {
        let card = std::fs::read_to_string(out.join(format!("cards/{slug}.yaml"))).unwrap();
        assert!(card.contains("standard_error") && card.contains("unit: bits_per_dim"), "{slug}: {card}");
        if slug != "campbell-md4-estimator" {
            assert!(card.contains("evaluated only on fashion-mnist test"), "{slug}: {card}");
        }
    }
    // Sample grids of the diffusion rows: 4 images of 28×28 in a 2×2 grid with gutters.
    for slug in ["md4-linear", "campbell", "md4-cosine"] {
        assert_eq!(png_size(&out.join(format!("samples/{slug}.png"))), (59, 59), "{slug}");
        let card = std::fs::read_to_string(out.join(format!("cards/{slug}-samples.yaml"))).unwrap();
        assert!(card.contains("network_calls") && card.contains("grid: cosine"), "{slug}: {card}");
    }
    assert!(!out.join("samples/ar.png").exists(), "the AR row is not sampled");
    check_the_checks(&out);
    let notes = std::fs::read_to_string(out.join("card.yaml")).unwrap();
    assert!(notes.contains("evaluated on nothing it was not trained for"), "{notes}");

    // image-samples reuses table3's finished runs and draws 3 settings × 2 step counts.
    let samples_out = scratch.join("image-samples");
    let output = run(env!("CARGO_BIN_EXE_image_samples"), &["--scale", "smoke"], &samples_out, &runs);
    assert!(String::from_utf8_lossy(&output.stderr).contains("already finished"), "runs must be reused");
    let csv = std::fs::read_to_string(samples_out.join("samples.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(lines.len(), 6, "{csv}");
    for line in &lines {
        let fields: Vec<&str> = line.rsplitn(6, ',').collect();
        let (calls, steps): (i64, i64) = (fields[3].parse().unwrap(), fields[4].parse().unwrap());
        // T steps, plus one argmax fill when positions are still masked.
        assert!(calls == steps || calls == steps + 1, "{line}");
        assert_eq!(png_size(&samples_out.join(fields[0])), (59, 59), "{line}");
    }
    assert!(png_size(&samples_out.join("image_samples.png")).0 >= 480);
    let table6 = std::fs::read_to_string(samples_out.join("table6.md")).unwrap();
    assert!(table6.contains("193.81") && table6.contains("not computed"), "{table6}");
    let card = std::fs::read_to_string(samples_out.join("card.yaml")).unwrap();
    assert!(card.contains("FID is not computed at smoke scale"), "{card}");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn masking_keeps_structure() {
    assert_eq!(mask_digits("≤ 7.999 ± 0.012 | 28×28"), "≤ #.# ± #.# | #×#");
}
