//! What the `md4` end-to-end tests share: the binary under test and a generated corpus.

use std::path::{Path, PathBuf};

/// The `md4` binary: `MD4_BIN` (a copied binary, as in scripts/gpu-check.sh), else cargo's.
pub fn md4_bin() -> PathBuf {
    std::env::var_os("MD4_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_md4").into())
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
