//! GPT-2 byte-pair encoding (spec §9.2, §11.2) through tiktoken-rs's `r50k_base`, whose ranks are
//! exactly GPT-2's (50,256 merges' worth of ranks plus `<|endoftext|>` = 50256), compiled in.

use std::sync::LazyLock;

use anyhow::{Context, Result};
use tiktoken_rs::CoreBPE;

/// GPT-2 vocabulary size V (including `<|endoftext|>`); the mask id is 50257.
pub const GPT2_VOCAB: u32 = 50257;
/// `<|endoftext|>`, appended after every document / row.
pub const GPT2_EOS: u32 = 50256;

static BPE: LazyLock<&'static CoreBPE> = LazyLock::new(tiktoken_rs::r50k_base_singleton);

/// Encodes text with GPT-2 BPE. A literal `<|endoftext|>` in the text becomes token 50256, as
/// Hugging Face's GPT-2 tokenizer does by default.
pub fn gpt2_encode(text: &str) -> Vec<u32> {
    BPE.encode_with_special_tokens(text)
}

/// Decodes GPT-2 tokens to text (invalid UTF-8 from split multi-byte characters is replaced).
pub fn gpt2_decode(tokens: &[u32]) -> Result<String> {
    let bytes =
        BPE.decode_bytes(tokens).map_err(|e| anyhow::anyhow!("{e:?}")).context("decoding gpt-2 tokens")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Encodes many texts on all cores, keeping their order.
pub fn gpt2_encode_batch<S: AsRef<str> + Sync>(texts: &[S]) -> Vec<Vec<u32>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(16);
    if threads <= 1 || texts.len() < 2 {
        return texts.iter().map(|t| gpt2_encode(t.as_ref())).collect();
    }
    // Interleaved assignment balances documents of very different lengths across threads.
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); texts.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..texts.len())
                        .step_by(threads)
                        .map(|i| (i, gpt2_encode(texts[i].as_ref())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, toks) in h.join().expect("tokenizer thread panicked") {
                out[i] = toks;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_gpt2_ids() {
        // Ids from GPT-2's published encoder.json (also listed in docs/toolchain.md).
        assert_eq!(gpt2_encode("Hello world"), [15496, 995]);
        assert_eq!(gpt2_encode("The quick brown fox"), [464, 2068, 7586, 21831]);
        assert_eq!(gpt2_encode("<|endoftext|>"), [GPT2_EOS]);
        assert_eq!(gpt2_decode(&[15496, 995, GPT2_EOS]).unwrap(), "Hello world<|endoftext|>");
    }

    #[test]
    fn batch_matches_sequential_and_round_trips() {
        let texts: Vec<String> =
            (0..9).map(|i| format!("Document {i}: naïve café — {}", "x".repeat(i))).collect();
        let batch = gpt2_encode_batch(&texts);
        for (t, toks) in texts.iter().zip(&batch) {
            assert_eq!(toks, &gpt2_encode(t));
            assert_eq!(&gpt2_decode(toks).unwrap(), t);
            assert!(toks.iter().all(|&id| id < GPT2_VOCAB));
        }
    }
}
