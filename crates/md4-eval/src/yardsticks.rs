//! Yardsticks nobody here wrote: what general-purpose compressors and a unigram model achieve on
//! exactly the tokens a table scores, in the table's unit. They are references printed under a
//! table, never ranked as methods.
//!
//! Compressors see the scored tokens as bytes (text as its UTF-8 bytes, images as their sub-pixel
//! bytes); their size in bits divided by the number of scored tokens is a code length per token,
//! so it reads like a model's bits per token. "Given the training split" is the conditional code
//! length C(train ‖ test) − C(train): what a compressor that has already seen the training data
//! needs for the test data (gzip's 32 KiB window makes this nearly the same as test alone).

use std::io::Write;

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use crate::likelihood::unigram;

/// A general-purpose compressor at its strongest standard setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressor {
    Gzip,
    Bzip2,
    Xz,
}

impl Compressor {
    pub const ALL: [Compressor; 3] = [Compressor::Gzip, Compressor::Bzip2, Compressor::Xz];

    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
        }
    }

    /// The implementation, its version and settings, for cards.
    pub fn settings(self) -> &'static str {
        match self {
            Self::Gzip => "gzip container, DEFLATE level 9 (flate2 1.x, miniz_oxide backend)",
            Self::Bzip2 => "bzip2 level 9, 900 kB blocks (bzip2 0.6, libbz2-rs-sys)",
            Self::Xz => "xz container, preset 9 | extreme, CRC64 (liblzma 0.4, bundled xz-utils 5.8.4)",
        }
    }

    /// Size in bytes of `bytes` compressed.
    pub fn compressed_len(self, bytes: &[u8]) -> Result<usize> {
        let out = match self {
            Self::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(bytes)?;
                e.finish()?
            }
            Self::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
                e.write_all(bytes)?;
                e.finish()?
            }
            Self::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 9 | liblzma::stream::PRESET_EXTREME);
                e.write_all(bytes)?;
                e.finish()?
            }
        };
        Ok(out.len())
    }
}

/// One reference value, in nats per scored token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Yardstick {
    pub name: String,
    pub settings: String,
    /// Code length of the test data on its own.
    pub alone_nats: f64,
    /// Code length of the test data given the training data, where computed.
    pub given_train_nats: Option<f64>,
}

/// gzip, bzip2 and xz on `test` (the scored tokens as bytes, `n_tokens` of them), alone and, when
/// `train` is given, conditioned on it. Every compression runs on a thread of its own: each is
/// single-threaded and deterministic, so the lengths are those of a sequential run.
pub fn compressor_yardsticks(train: Option<&[u8]>, test: &[u8], n_tokens: usize) -> Result<Vec<Yardstick>> {
    ensure!(n_tokens > 0 && !test.is_empty(), "compressor yardsticks of an empty split");
    let per_token = |bytes: usize| bytes as f64 * 8.0 * std::f64::consts::LN_2 / n_tokens as f64;
    let both: Option<Vec<u8>> = train.map(|train| train.iter().chain(test).copied().collect());
    // Per compressor: [test alone] or [test alone, train alone, train then test].
    let lengths: Vec<Result<usize>> = std::thread::scope(|s| {
        let mut jobs = vec![];
        for c in Compressor::ALL {
            jobs.push(s.spawn(move || c.compressed_len(test)));
            if let (Some(train), Some(both)) = (train, both.as_deref()) {
                jobs.push(s.spawn(move || compressed_len_memo(c, train)));
                jobs.push(s.spawn(move || c.compressed_len(both)));
            }
        }
        jobs.into_iter().map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut lengths = lengths.into_iter();
    Compressor::ALL
        .iter()
        .map(|&c| {
            let mut next = || lengths.next().expect("one length per job");
            let alone = next().with_context(|| format!("{} of the test bytes", c.name()))?;
            let given = match train {
                Some(_) => {
                    let (base, joint) = (next()?, next()?);
                    Some(per_token(joint.saturating_sub(base)))
                }
                None => None,
            };
            Ok(Yardstick {
                name: c.name().to_string(),
                settings: c.settings().to_string(),
                alone_nats: per_token(alone),
                given_train_nats: given,
            })
        })
        .collect()
}

/// [`Compressor::compressed_len`], remembered per process by content hash (a table scores several
/// columns against the same training split).
fn compressed_len_memo(c: Compressor, bytes: &[u8]) -> Result<usize> {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static MEMO: LazyLock<Mutex<HashMap<(&'static str, Vec<u8>), usize>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let key = (c.name(), Sha256::digest(bytes).to_vec());
    if let Some(&n) = MEMO.lock().unwrap().get(&key) {
        return Ok(n);
    }
    let n = c.compressed_len(bytes)?;
    MEMO.lock().unwrap().insert(key, n);
    Ok(n)
}

/// The unigram reference: the test split's own plug-in entropy ("alone") and its cross-entropy
/// under the training split's add-one frequencies ("given train"), tokens in `0..vocab`.
pub fn unigram_yardstick(train: &[i64], test: &[i64], vocab: usize) -> Result<Yardstick> {
    let u = unigram(train, test, vocab)?;
    Ok(Yardstick {
        name: "unigram".to_string(),
        settings: format!(
            "alone: plug-in entropy of the scored tokens' own frequencies; given train: cross-entropy under the training split's frequencies, add-one over {vocab} tokens"
        ),
        alone_nats: u.entropy_nats,
        given_train_nats: Some(u.cross_entropy_nats),
    })
}

/// The references under a table: what was compressed, and the values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct References {
    /// Which tokens, as which bytes (e.g. "the 602 scored 256-character chunks of text8-wiki test").
    pub scored: String,
    /// Which training data "given train" conditions on.
    pub train: String,
    pub items: Vec<Yardstick>,
}

impl References {
    /// A Markdown section: one line per reference, in `unit`.
    pub fn to_markdown(&self, unit: crate::Unit, decimals: usize) -> String {
        let d = decimals;
        let cell =
            |nats: Option<f64>| nats.map_or("–".to_string(), |n| format!("{:.d$}", unit.from_nats(n)));
        let mut out = format!(
            "References, not models (on {}; \"given train\" conditions on {}), in {}:\n\n| Reference | Test alone | Given train | Settings |\n|---|---|---|---|\n",
            self.scored,
            self.train,
            unit.label()
        );
        for y in &self.items {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                y.name,
                cell(Some(y.alone_nats)),
                cell(y.given_train_nats),
                y.settings.replace('|', "\\|")
            ));
        }
        out
    }

    /// CSV: `reference,alone,given_train,unit,settings` (values in `unit`).
    pub fn to_csv(&self, unit: crate::Unit) -> String {
        let mut out = String::from("reference,alone,given_train,unit,settings\n");
        for y in &self.items {
            let given = y.given_train_nats.map_or(String::new(), |n| unit.from_nats(n).to_string());
            out.push_str(&format!(
                "{},{},{given},{},\"{}\"\n",
                y.name,
                unit.from_nats(y.alone_nats),
                unit.name(),
                y.settings.replace('"', "'")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_bytes_compress_to_almost_nothing_and_random_bytes_do_not() {
        let zeros = vec![0u8; 100_000];
        let mut x = 0x2545F4914F6CDD1Du64;
        let random: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        for c in Compressor::ALL {
            let z = c.compressed_len(&zeros).unwrap();
            let r = c.compressed_len(&random).unwrap();
            assert!(z < 1_000, "{}: {z} bytes for 100 kB of zeros", c.name());
            // Incompressible: at least 8 bits per byte, plus a small container overhead.
            assert!((100_000..101_500).contains(&r), "{}: {r} bytes for 100 kB of noise", c.name());
        }
    }

    #[test]
    fn given_train_helps_when_test_repeats_train() {
        // A test split that repeats a 20 kB stretch of train (inside gzip's 32 KiB window).
        let text: Vec<u8> =
            (0..20_000u32).map(|i| b"abcdefghijklmnopqrstuvwxyz "[(i * i % 27) as usize]).collect();
        let ys = compressor_yardsticks(Some(&text), &text, text.len()).unwrap();
        assert_eq!(ys.iter().map(|y| y.name.as_str()).collect::<Vec<_>>(), ["gzip", "bzip2", "xz"]);
        for y in &ys {
            let given = y.given_train_nats.unwrap();
            assert!(given < 0.5 * y.alone_nats, "{}: given {given} vs alone {}", y.name, y.alone_nats);
        }
        // Per-token scaling: the same bytes counted as half as many tokens cost twice as much each.
        let half = compressor_yardsticks(None, &text, text.len() / 2).unwrap();
        for (a, b) in ys.iter().zip(&half) {
            assert!((b.alone_nats - 2.0 * a.alone_nats).abs() < 1e-12);
            assert_eq!(b.given_train_nats, None);
        }
    }

    #[test]
    fn references_render_in_the_table_unit() {
        let refs = References {
            scored: "4 tokens".into(),
            train: "nothing".into(),
            items: vec![Yardstick {
                name: "gzip".into(),
                settings: "level 9".into(),
                alone_nats: std::f64::consts::LN_2,
                given_train_nats: None,
            }],
        };
        let md = refs.to_markdown(crate::Unit::BitsPerChar, 3);
        assert!(md.contains("| gzip | 1.000 | – | level 9 |"), "{md}");
        let csv = refs.to_csv(crate::Unit::Perplexity);
        assert!(csv.lines().nth(1).unwrap().starts_with("gzip,2,,"), "{csv}");
    }

    #[test]
    fn unigram_of_a_uniform_split_is_log_v() {
        let test: Vec<i64> = (0..4000).map(|i| i % 4).collect();
        let y = unigram_yardstick(&test, &test, 4).unwrap();
        assert!((y.alone_nats - 4f64.ln()).abs() < 1e-12);
        assert!((y.given_train_nats.unwrap() - 4f64.ln()).abs() < 1e-12);
    }
}
