//! Generative perplexity (paper Fig. 8, spec §11.4): unconditional samples scored by an
//! autoregressive judge, always reported with the samples' unigram entropy (low-diversity
//! samples game the perplexity), the number of network calls and the wall time.
//!
//! Judges: at small scale the `ar` row of the table5 suite (same data and tokenizer); at paper
//! scale GPT-2 Large from the Hub ([`md4_models::Gpt2`], safetensors in Hugging Face's layout).

use anyhow::{Context, Result};
use md4_models::{Gpt2, Gpt2Config};
use md4_train::LoadedRun;
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

/// Which model judges the samples.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JudgeSpec {
    /// A row of the training suite (an autoregressive run), by slug.
    Suite { slug: String },
    /// A GPT-2 checkpoint on the Hub (`model.safetensors` + `config.json`).
    Gpt2 { repo: String, revision: String },
}

/// A loaded judge.
pub enum Judge {
    Run(Box<LoadedRun>),
    Gpt2(Box<Gpt2>),
}

impl Judge {
    /// Download (or find in the Hub cache) and load a GPT-2 checkpoint.
    pub fn gpt2_from_hub(repo: &str, revision: &str, device: Device) -> Result<Self> {
        let fetcher = md4_data::hub::HubFetcher::new(None, md4_data::hub::hub_offline_env(), None)?;
        let config = fetcher.fetch(repo, revision, "config.json")?;
        let weights = fetcher.fetch(repo, revision, "model.safetensors")?;
        let cfg = Gpt2Config::from_json_file(&config)?;
        let model = Gpt2::load_safetensors(&cfg, &weights, device)
            .with_context(|| format!("loading the GPT-2 judge {repo}"))?;
        Ok(Self::Gpt2(Box::new(model)))
    }

    /// Negative log-likelihood of every sequence in nats (no gradients).
    ///
    /// # Shapes
    /// `x: [B, N]` → `[B]` float64.
    pub fn nll(&self, x: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| match self {
            Self::Gpt2(m) => Ok(m.nll(x)),
            Self::Run(run) => match &run.trained {
                md4_train::Trained::Ar(o) => Ok(o.model.ar_nll(x, false).to_kind(Kind::Double)),
                _ => anyhow::bail!("the judge must be an autoregressive run"),
            },
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Gpt2(m) => format!("GPT-2 ({} layers, width {})", m.cfg.n_layer, m.cfg.n_embd),
            Self::Run(run) => format!(
                "the AR baseline of the same suite ({}, step {}, EMA weights)",
                run.checkpoint.display(),
                run.step
            ),
        }
    }
}

/// exp(total NLL / total tokens) and its delta-method standard error over sequences.
///
/// # Shapes
/// `nll: [B]` nats per sequence of `n` tokens.
pub fn perplexity(nll: &Tensor, n: i64) -> (f64, f64) {
    let per_token = nll.to_kind(Kind::Double) / n as f64;
    let b = per_token.size()[0];
    let mean = per_token.mean(Kind::Double).double_value(&[]);
    let se = if b > 1 { per_token.std(true).double_value(&[]) / (b as f64).sqrt() } else { f64::NAN };
    (mean.exp(), mean.exp() * se)
}

/// Mean over sequences of the entropy (nats) of each sequence's empirical token distribution.
///
/// # Shapes
/// `x: [B, N]` int64.
pub fn unigram_entropy(x: &Tensor) -> f64 {
    let (b, n) = x.size2().expect("[B, N]");
    let mut total = 0.0;
    for i in 0..b {
        let mut row: Vec<i64> = Vec::<i64>::try_from(&x.get(i)).expect("int64 tokens");
        row.sort_unstable();
        let mut h = 0.0;
        let mut j = 0;
        while j < row.len() {
            let k = row[j..].iter().take_while(|&&t| t == row[j]).count();
            let p = k as f64 / n as f64;
            h -= p * p.ln();
            j += k;
        }
        total += h;
    }
    total / b as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unigram_entropy_of_constant_and_distinct_rows() {
        let x = Tensor::from_slice(&[7i64, 7, 7, 7, 1, 2, 3, 4]).view([2, 4]);
        // Row 0: 0 nats; row 1: ln 4.
        assert!((unigram_entropy(&x) - 4f64.ln() / 2.0).abs() < 1e-12);
    }

    #[test]
    fn perplexity_is_exp_of_mean_nats_per_token() {
        let nll = Tensor::from_slice(&[2.0f64 * 10.0, 4.0 * 10.0]);
        let (ppl, se) = perplexity(&nll, 10);
        assert!((ppl - 3f64.exp()).abs() < 1e-9);
        // per-token values 2 and 4: sample SD √2, SE 1, delta method e³·1.
        assert!((se - 3f64.exp()).abs() < 1e-9, "{se}");
    }
}
