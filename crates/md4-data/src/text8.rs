//! The text8 alphabet (spec §9.1): a–z → 0..25, space → 26, mask 27; the normalisation that
//! maps arbitrary text onto it (lowercase, digits spelled out, everything else a single space,
//! as in Mahoney's filter, see [`crate::wikifil`]); and the 90/5/5 character split.

use anyhow::{Result, bail};

/// Real tokens of the text8 alphabet (a–z and space); the mask id is 27.
pub const TEXT8_VOCAB: u32 = 27;
/// Token id of the space character.
pub const TEXT8_SPACE: u8 = 26;

const DIGIT_WORDS: [&str; 10] =
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// Normalises bytes the way text8's filter does after markup removal: A–Z are lowercased, each
/// digit becomes its English name surrounded by spaces, and every run of other bytes becomes a
/// single space. Returns characters in `a–z` and space.
pub fn normalize_text8(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut last_space = false;
    let push_space = |out: &mut Vec<u8>, last_space: &mut bool| {
        if !*last_space {
            out.push(b' ');
            *last_space = true;
        }
    };
    for &b in bytes {
        let c = b.to_ascii_lowercase();
        if c.is_ascii_lowercase() {
            out.push(c);
            last_space = false;
        } else if c.is_ascii_digit() {
            push_space(&mut out, &mut last_space);
            out.extend_from_slice(DIGIT_WORDS[(c - b'0') as usize].as_bytes());
            last_space = false;
            push_space(&mut out, &mut last_space);
        } else {
            push_space(&mut out, &mut last_space);
        }
    }
    out
}

/// Encodes arbitrary text into text8 tokens (for `--data text:PATH`): [`normalize_text8`], then
/// a–z → 0..25 and space → 26.
pub fn text8_encode(text: &str) -> Vec<u8> {
    normalize_text8(text.as_bytes()).into_iter().map(char_to_token).collect()
}

fn char_to_token(c: u8) -> u8 {
    if c.is_ascii_lowercase() { c - b'a' } else { TEXT8_SPACE }
}

/// Tokenises text that is already in the text8 alphabet (a–z and space only), failing on any
/// other byte, e.g. a corrupted text8 file.
pub fn text8_tokens(chars: &[u8]) -> Result<Vec<u8>> {
    if let Some(pos) = chars.iter().position(|&c| !(c.is_ascii_lowercase() || c == b' ')) {
        bail!("byte {:#04x} at offset {pos} is not in the text8 alphabet (a-z and space)", chars[pos]);
    }
    Ok(chars.iter().map(|&c| char_to_token(c)).collect())
}

/// Decodes text8 tokens back to characters; ids ≥ 27 (the mask) are shown as `_`.
pub fn text8_decode(tokens: &[u8]) -> String {
    tokens
        .iter()
        .map(|&t| match t {
            0..=25 => (b'a' + t) as char,
            TEXT8_SPACE => ' ',
            _ => '_',
        })
        .collect()
}

/// Split sizes for fractions in percent (e.g. 90/5/5) of `n` items: the first parts are
/// `floor(n·p/100)`, the last part takes the rest.
pub fn split_sizes(n: u64, percents: &[u32]) -> Result<Vec<u64>> {
    let total: u32 = percents.iter().sum();
    anyhow::ensure!(total == 100, "split percentages must add up to 100, got {percents:?}");
    let mut sizes: Vec<u64> = percents.iter().map(|&p| n * p as u64 / 100).collect();
    let used: u64 = sizes[..sizes.len() - 1].iter().sum();
    *sizes.last_mut().unwrap() = n - used;
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_normalises_like_text8() {
        assert_eq!(text8_decode(&text8_encode("Hello,  World! 42x")), "hello world four two x");
        let toks = text8_encode("az Z");
        assert_eq!(toks, [0, 25, 26, 25]);
        assert_eq!(text8_decode(&text8_encode("café")), "caf ");
    }

    #[test]
    fn tokens_reject_foreign_bytes() {
        assert_eq!(text8_tokens(b" ab").unwrap(), [26, 0, 1]);
        let err = text8_tokens(b"ab\n").unwrap_err().to_string();
        assert!(err.contains("offset 2"), "{err}");
    }

    #[test]
    fn split_90_5_5() {
        // text8 itself: 90M / 5M / 5M.
        assert_eq!(split_sizes(100_000_000, &[90, 5, 5]).unwrap(), [90_000_000, 5_000_000, 5_000_000]);
        assert_eq!(split_sizes(101, &[90, 5, 5]).unwrap(), [90, 5, 6]);
        assert!(split_sizes(10, &[90, 5]).is_err());
    }
}
