//! What the `md4` end-to-end tests share: the binary under test and a generated corpus.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

/// The `md4` binary: `MD4_BIN` (a copied binary, as in scripts/gpu-check.sh), else cargo's.
pub fn md4_bin() -> PathBuf {
    std::env::var_os("MD4_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_md4").into())
}

/// The repository's configs/ (`MD4_REPO/configs` when the tests run from a copied tree).
pub fn configs_dir() -> PathBuf {
    match std::env::var_os("MD4_REPO") {
        Some(repo) => PathBuf::from(repo).join("configs"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs"),
    }
}

/// Write `dir/corpus.txt`: `words` words drawn from ten by a seeded LCG (deterministic).
pub fn corpus(dir: &Path, seed: u64, words: usize) {
    let vocab = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "home"];
    let mut state = seed;
    let mut text = String::new();
    for _ in 0..words {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        text.push_str(vocab[(state >> 33) as usize % vocab.len()]);
        text.push(' ');
    }
    std::fs::write(dir.join("corpus.txt"), text).unwrap();
}

/// `md4 train` on `corpus.txt` (see [`corpus`]) with configs/text8-tiny.yaml shrunk to seconds:
/// batch 4 × 32 characters, validation every 2 updates, a metrics line every update.
pub fn tiny_train_args(config: &str, run: &str, steps: &str) -> Vec<String> {
    let steps = format!("train.steps={steps}");
    [
        "train",
        "--config",
        config,
        "--data",
        "text:corpus.txt",
        "--holdout",
        "0.1",
        "--run-dir",
        run,
        "--quiet",
        "--set",
        &steps,
        "--set",
        "train.batch=4",
        "--set",
        "train.seq_len=32",
        "--set",
        "train.warmup=1",
        "--set",
        "train.eval_every=2",
        "--set",
        "train.log_every=1",
    ]
    .map(String::from)
    .to_vec()
}
