//! The token alphabet: V real tokens `0..V` plus one mask state whose id is `V` (spec §1).

use serde::{Deserialize, Serialize};

/// A vocabulary of `size` real tokens. The mask token's id is [`Vocab::mask_id`] `== size`,
/// so an input embedding has `size + 1` rows and a logit head has `size` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocab {
    size: i64,
}

impl Vocab {
    /// A vocabulary of `size ≥ 2` real tokens.
    pub fn new(size: i64) -> Self {
        assert!(size >= 2, "a vocabulary needs at least 2 real tokens, got {size}");
        Self { size }
    }
    /// Number of real tokens V (the width of every logit tensor).
    pub fn size(&self) -> i64 {
        self.size
    }
    /// The id of the mask state, equal to V.
    pub fn mask_id(&self) -> i64 {
        self.size
    }
    /// Rows of an input embedding: V + 1 (real tokens and the mask).
    pub fn input_rows(&self) -> i64 {
        self.size + 1
    }
    /// text8: a–z = 0..25, space = 26, mask = 27.
    pub fn text8() -> Self {
        Self::new(27)
    }
    /// GPT-2 BPE (r50k_base): 50,257 tokens including `<|endoftext|>` = 50256; mask = 50257.
    pub fn gpt2() -> Self {
        Self::new(50257)
    }
    /// 8-bit sub-pixels: 0..255, mask = 256.
    pub fn pixels() -> Self {
        Self::new(256)
    }
}
