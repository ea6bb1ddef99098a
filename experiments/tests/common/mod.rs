//! Helpers shared by the artifact smoke tests (`mod common;` in each test file).
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};

/// Whether every data set in `names` is prepared under `$MD4_DATA_DIR` (default
/// `<workspace>/data`). Missing data skips a test, unless `MD4_REQUIRE_DATA=1` (CI), which
/// makes it fail with the names.
pub fn data_ready(names: &[&str]) -> bool {
    let root = std::env::var_os("MD4_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data"));
    let missing: Vec<&str> =
        names.iter().copied().filter(|d| !root.join(d).join("prepared.json").is_file()).collect();
    if !missing.is_empty() && std::env::var("MD4_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!("{missing:?} not prepared in {} and MD4_REQUIRE_DATA=1", root.display());
    }
    missing.is_empty()
}

/// Runs of digits that do not continue a word become `#`, so `≤ 4.438 ± 0.298` reads
/// `≤ #.# ± #.#` while names such as `MD4` and `text8` stay. A paired difference's sign and
/// verdict depend on the numbers too (and so on the machine's precision), so
/// `-0.042 ± 0.006 (resolved)` reads `Δ#.# ± #.# (verdict)`.
pub fn mask_digits(text: &str) -> String {
    let text = mask_number_runs(text);
    let text = text.replace("(resolved)", "(verdict)").replace("(within # SE)", "(verdict)");
    text.replace("| +#", "| Δ#").replace("| -#", "| Δ#")
}

fn mask_number_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_number, mut after_letter) = (false, false);
    for c in text.chars() {
        if c.is_ascii_digit() && !after_letter {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            after_letter = c.is_alphabetic() || (after_letter && c.is_ascii_digit());
            out.push(c);
        }
    }
    out
}
