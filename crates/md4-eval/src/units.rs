//! Reported units (spec §3.5): the one place where a mean ± standard error in nats per token
//! becomes bits per character (text8), bits per dimension (images), perplexity (OWT and the
//! zero-shot sets) or bits per token. Constants come from `md4_core::units`.

use anyhow::{Result, bail};
use md4_core::units::{nats_to_bits, nats_to_perplexity};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A reported unit; every one of them is "lower is better".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Bits per character (text8): nats per token / ln 2.
    BitsPerChar,
    /// Bits per dimension (sub-pixel; CIFAR-10, ImageNet 64×64): nats per token / ln 2.
    BitsPerDim,
    /// exp(nats per token); the standard error by the delta method, exp(mean)·se.
    Perplexity,
    /// Bits per token (GPT-2 BPE): nats per token / ln 2.
    BitsPerToken,
}

impl Unit {
    /// The short label used in table headers and axis labels.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BitsPerChar => "BPC",
            Self::BitsPerDim => "BPD",
            Self::Perplexity => "PPL",
            Self::BitsPerToken => "bits/token",
        }
    }

    /// The serde name (`bits_per_char`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::BitsPerChar => "bits_per_char",
            Self::BitsPerDim => "bits_per_dim",
            Self::Perplexity => "perplexity",
            Self::BitsPerToken => "bits_per_token",
        }
    }

    /// Parse a serde name or a label (`bpc`, `bpd`, `ppl`, case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "bits_per_char" | "bpc" => Self::BitsPerChar,
            "bits_per_dim" | "bpd" => Self::BitsPerDim,
            "perplexity" | "ppl" => Self::Perplexity,
            "bits_per_token" | "bits/token" => Self::BitsPerToken,
            _ => bail!(
                "unknown unit '{s}' (expected bits_per_char, bits_per_dim, perplexity or bits_per_token)"
            ),
        })
    }

    /// A value in nats per token in this unit.
    pub fn from_nats(&self, nats_per_token: f64) -> f64 {
        match self {
            Self::Perplexity => nats_to_perplexity(nats_per_token),
            Self::BitsPerChar | Self::BitsPerDim | Self::BitsPerToken => nats_to_bits(nats_per_token),
        }
    }

    /// (mean, standard error) in nats per token → (mean, standard error) in this unit.
    /// The bit units are linear; perplexity uses the delta method, SE ≈ exp(mean)·se.
    pub fn convert(&self, mean_nats_per_token: f64, se_nats_per_token: f64) -> (f64, f64) {
        let mean = self.from_nats(mean_nats_per_token);
        let se = match self {
            Self::Perplexity => mean * se_nats_per_token,
            Self::BitsPerChar | Self::BitsPerDim | Self::BitsPerToken => nats_to_bits(se_nats_per_token),
        };
        (mean, se)
    }
}

impl Unit {
    /// A paired difference (mean, SE) in nats per token → the scale its column reports: bits
    /// for the bit units (linear, so Δ converts like a value), and for perplexity Δ ln PPL in
    /// nats per token (the log of the perplexity ratio; exp(Δ) is the ratio itself).
    pub fn convert_difference(&self, mean_nats_per_token: f64, se_nats_per_token: f64) -> (f64, f64) {
        match self {
            Self::Perplexity => (mean_nats_per_token, se_nats_per_token),
            Self::BitsPerChar | Self::BitsPerDim | Self::BitsPerToken => {
                (nats_to_bits(mean_nats_per_token), nats_to_bits(se_nats_per_token))
            }
        }
    }

    /// The label of [`Unit::convert_difference`]'s scale (`BPC`, `ln PPL`, …).
    pub fn difference_label(&self) -> &'static str {
        match self {
            Self::Perplexity => "ln PPL",
            _ => self.label(),
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_units_divide_by_ln2() {
        // log2(27) nats·ln2 per token is log2(27) bits: the uniform text8 model.
        let nats = 27f64.ln();
        for unit in [Unit::BitsPerChar, Unit::BitsPerDim, Unit::BitsPerToken] {
            let (mean, se) = unit.convert(nats, 0.5 * std::f64::consts::LN_2);
            assert!((mean - 27f64.log2()).abs() < 1e-12);
            assert!((se - 0.5).abs() < 1e-12);
        }
    }

    #[test]
    fn perplexity_uses_the_delta_method() {
        let (mean, se) = Unit::Perplexity.convert(50257f64.ln(), 0.01);
        assert!((mean - 50257.0).abs() < 1e-6);
        assert!((se - 502.57).abs() < 1e-6);
        // The delta method is the first-order change of exp: compare with a finite difference.
        let h = 1e-6;
        let slope = (Unit::Perplexity.from_nats(3.0 + h) - Unit::Perplexity.from_nats(3.0 - h)) / (2.0 * h);
        assert!((Unit::Perplexity.convert(3.0, 1.0).1 - slope).abs() < 1e-5);
    }

    #[test]
    fn names_round_trip_and_typos_fail() {
        for unit in [Unit::BitsPerChar, Unit::BitsPerDim, Unit::Perplexity, Unit::BitsPerToken] {
            assert_eq!(Unit::parse(unit.name()).unwrap(), unit);
            assert_eq!(Unit::parse(unit.label()).unwrap(), unit);
            let yaml = serde_yaml::to_string(&unit).unwrap();
            assert_eq!(yaml.trim(), unit.name());
        }
        assert!(Unit::parse("bits_per_chr").unwrap_err().to_string().contains("bits_per_chr"));
    }
}
