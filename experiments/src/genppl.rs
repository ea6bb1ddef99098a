//! Generative perplexity (paper Fig. 8, spec §11.4): unconditional samples scored by an
//! autoregressive judge, always reported with the samples' unigram entropy (low-diversity
//! samples game the perplexity), the number of network calls and the wall time.
//!
//! Judges: at small scale the `ar` row of the table5 suite (same data and tokenizer); at paper
//! scale GPT-2 Large from the Hub ([`md4_models::Gpt2`], safetensors in Hugging Face's layout).

use crate::context::ArtifactContext;
use crate::suite::{self, EvalSpec};
use anyhow::{Context, Result, bail};
use md4_core::sampler::SampleRequest;
use md4_core::{Grid, Precision, SamplerConfig};
use md4_eval::{LinePlot, SamplingProtocol, Series};
use md4_models::{Gpt2, Gpt2Config};
use md4_train::LoadedRun;
use serde::Deserialize;
use std::fmt::Write as _;
use std::time::Instant;
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

/// `experiments/configs/fig8/<scale>.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fig8Config {
    pub description: String,
    /// The training suite and the slug of the sampled diffusion model.
    pub suite: String,
    pub model: String,
    pub judge: JudgeSpec,
    pub samples: i64,
    pub seq_len: i64,
    pub steps: Vec<i64>,
    pub samplers: Vec<SamplerSpec>,
    pub seed: i64,
    /// Held-out text scored by the judge (the level real text reaches).
    pub reference: EvalSpec,
}

/// One sampler of the figure: a curve over the step counts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerSpec {
    pub name: String,
    pub grid: Grid,
    /// `f32-gumbel` (float32 Gumbel, the reference code) or `f64`.
    pub precision: Precision,
    #[serde(default)]
    pub cached: bool,
}

/// Artifact `fig8`: the suite's diffusion model sampled with every sampler at every step count,
/// each point's samples scored by the judge, beside the judge's perplexity of held-out text.
pub fn fig8(ctx: &ArtifactContext) -> Result<()> {
    let (scale, device) = (ctx.scale, ctx.device);
    let cfg: Fig8Config = ctx.config("fig8")?;
    let suite_cfg = ctx.suite(&cfg.suite)?;
    let (_, model) = suite::trained(ctx, &suite_cfg, &cfg.suite, suite_cfg.row(&cfg.model)?)?;
    let codec = md4_data::Gpt2Codec::new(model.cfg.data.sub_vocab())?;
    let judge = match &cfg.judge {
        JudgeSpec::Suite { slug } => {
            let (_, judge) = suite::trained(ctx, &suite_cfg, &cfg.suite, suite_cfg.row(slug)?)?;
            Judge::Run(Box::new(judge))
        }
        JudgeSpec::Gpt2 { repo, revision } => Judge::gpt2_from_hub(repo, revision, device)?,
    };
    eprintln!("fig8 ({scale}): judge = {}", judge.describe());

    let (reference, _) = suite::eval_sequences(&cfg.reference, suite_cfg.sub_vocab()?.as_ref())?;
    if reference.size()[1] != cfg.seq_len {
        bail!("the reference chunks must have the sample length {}", cfg.seq_len);
    }
    let (ref_ppl, ref_se) = perplexity(&judge.nll(&reference)?, cfg.seq_len);
    let ref_entropy = unigram_entropy(&reference);

    let mut points = String::from(
        "sampler,steps,gen_ppl,gen_ppl_se,unigram_entropy_nats,network_calls,wall_s,argmax_filled\n",
    );
    let mut ppl_series = vec![];
    let mut entropy_series = vec![];
    let mut samples_md = format!("# Unconditional samples ({scale}), {} tokens\n\n", cfg.seq_len);
    let mut protocols = vec![];
    for spec in &cfg.samplers {
        let (grid, precision) = (spec.grid, spec.precision);
        let (mut xs, mut ys, mut es, mut hs) = (vec![], vec![], vec![], vec![]);
        for &steps in &cfg.steps {
            let sampler = SamplerConfig { steps, grid, precision, top_p: None };
            eprintln!("== {}: T = {steps}, {} samples", spec.name, cfg.samples);
            tch::manual_seed(cfg.seed);
            let clock = Instant::now();
            let out = tch::no_grad(|| {
                if spec.cached {
                    model.trained.sample_cached(&SampleRequest {
                        batch: cfg.samples,
                        seq_len: cfg.seq_len,
                        cond: None,
                        sampler: &sampler,
                        device,
                    })
                } else {
                    model.trained.sample(&SampleRequest {
                        batch: cfg.samples,
                        seq_len: cfg.seq_len,
                        cond: None,
                        sampler: &sampler,
                        device,
                    })
                }
            });
            let wall = clock.elapsed().as_secs_f64();
            let (ppl, se) = perplexity(&judge.nll(&out.tokens)?, cfg.seq_len);
            let entropy = unigram_entropy(&out.tokens);
            writeln!(
                points,
                "\"{}\",{steps},{ppl},{se},{entropy},{},{wall},{}",
                spec.name, out.network_calls, out.argmax_filled
            )?;
            xs.push(steps as f64);
            ys.push(ppl);
            es.push(se);
            hs.push(entropy);
            protocols.push(SamplingProtocol::new(
                &suite::schedule_label(&model.cfg),
                &sampler,
                cfg.samples as usize,
                cfg.seed,
                out.network_calls,
            ));
            if steps == *cfg.steps.last().expect("steps") {
                let first: Vec<i64> = Vec::<i64>::try_from(&out.tokens.get(0))?;
                writeln!(
                    samples_md,
                    "## {} — T = {steps} (gen. PPL {ppl:.1}, entropy {entropy:.2} nats)\n\n```text\n{}\n```\n",
                    spec.name,
                    codec.decode(&first)?
                )?;
            }
        }
        ppl_series.push(Series::new(&spec.name, xs.clone(), ys).with_err(es));
        entropy_series.push(Series::new(&spec.name, xs, hs));
    }
    let flat = |v: f64| {
        Series::new("held-out text", cfg.steps.iter().map(|&s| s as f64).collect(), vec![v; cfg.steps.len()])
    };
    ppl_series.push(flat(ref_ppl));
    entropy_series.push(flat(ref_entropy));
    let plot = LinePlot::new(
        &format!("Generative perplexity vs sampling steps ({scale})"),
        "sampling steps T",
        "generative perplexity (judge)",
        ppl_series,
    );
    let mut outputs = vec![];
    let files = plot.write(&ctx.dir.file("fig8"))?;
    outputs.extend([files.png, files.svg, files.csv]);
    let files = LinePlot::new(
        "Unigram entropy of the samples (nats per sequence)",
        "sampling steps T",
        "unigram entropy (nats)",
        entropy_series,
    )
    .write(&ctx.dir.file("entropy"))?;
    outputs.extend([files.png, files.svg, files.csv]);
    std::fs::write(ctx.dir.file("points.csv"), &points)?;
    std::fs::write(ctx.dir.file("samples.md"), &samples_md)?;
    outputs.extend([ctx.dir.file("points.csv"), ctx.dir.file("samples.md")]);

    let mut card = ctx.card("generative perplexity", ctx.run.elapsed());
    card.sampling = protocols.into_iter().next();
    card.notes = vec![
        cfg.description.clone(),
        format!("sampled model: {} (step {}, EMA weights)", model.checkpoint.display(), model.step),
        format!("judge: {}", judge.describe()),
        format!("held-out reference: judge perplexity {ref_ppl:.2} ± {ref_se:.2}, unigram entropy {ref_entropy:.3} nats ({} chunks of {})", reference.size()[0], cfg.seq_len),
        "generative perplexity = exp(total judge NLL / total tokens) over the samples (SE by the delta method over samples); every point uses the same seed; all samplers, steps and network calls are in points.csv".into(),
        "spec §11.4: low generative perplexity can come from low diversity (watch the unigram entropy); float32 Gumbel sampling truncates rare tokens and lowers both".into(),
    ];
    outputs.push(ctx.write_card(&card, "card.yaml")?);
    ctx.finish(&outputs)?;
    println!("{points}");
    println!("held-out text: judge perplexity {ref_ppl:.2} ± {ref_se:.2}, entropy {ref_entropy:.3} nats");
    println!("fig8 ({scale}) written to {}", ctx.dir.path.display());
    Ok(())
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
