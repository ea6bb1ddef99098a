//! The language-model artifacts that read table5's runs at the same scale without scoring a
//! table (spec §10.8, Fig. 4 and Fig. 10): `fig4` (validation perplexity during training) and
//! `infill` (infilling between a fixed prefix and suffix, with −log p(span | context) bounds).
//! `table1`/`table7` live in [`crate::zeroshot`], `fig8` in [`crate::genppl`].

use crate::context::ArtifactContext;
use crate::suite;
use anyhow::{Result, anyhow};
use md4_core::sampler::{Conditioning, SampleRequest};
use md4_core::{Grid, Precision, SamplerConfig};
use md4_eval::{LinePlot, Series};
use std::fmt::Write as _;
use std::time::Instant;
use tch::Kind;

/// Artifact `fig4`: the validation curves of every table5 row, as perplexity against steps.
pub fn fig4(ctx: &ArtifactContext) -> Result<()> {
    let (scale, device) = (ctx.scale, ctx.device);
    let suite_cfg = ctx.suite("table5")?;
    let mut series = vec![];
    let mut notes = vec![suite_cfg.description.clone()];
    for row in &suite_cfg.rows {
        let run_dir = suite::run_dir("table5", scale, &row.slug);
        suite::ensure_trained(&suite_cfg, row, &run_dir, device)?;
        if let Some(s) = suite::validation_series(&row.name, &run_dir)? {
            // bits per token → perplexity 2^bits (the bound's perplexity for diffusion rows).
            let ppl: Vec<f64> = s.y.iter().map(|b| b.exp2()).collect();
            notes.push(format!(
                "{}: last validation perplexity {:.1} at step {} ({})",
                row.name,
                ppl.last().copied().unwrap_or(f64::NAN),
                s.x.last().copied().unwrap_or(f64::NAN),
                run_dir.display()
            ));
            series.push(Series::new(&row.name, s.x, ppl));
        }
    }
    let plot = LinePlot::new(
        &format!("Validation perplexity during training ({scale})"),
        "training step",
        "validation perplexity (bound; exact for AR)",
        series,
    );
    let files = plot.write(&ctx.dir.file("fig4"))?;
    notes.push("validation: the suite's eval split, `eval_batches` batches per point, EMA weights; perplexity = 2^(bits per token)".into());
    notes.push("paper Fig. 4: OWT validation perplexity of Gaussian diffusion, SEDD, MD4, GenMD4 (small) and MD4 (medium) over 1M steps; MD4 converges faster, SEDD showed instabilities".into());
    let mut card = ctx.card("validation curves", ctx.run.elapsed());
    card.notes = notes;
    let card_path = ctx.write_card(&card, "card.yaml")?;
    ctx.finish(&[files.png, files.svg, files.csv, card_path])?;
    println!("fig4 ({scale}) written to {}", ctx.dir.path.display());
    Ok(())
}

/// Prefix and suffix pairs around the sentences of Fig. 10.
const PROMPTS: [(&str, &str); 2] = [
    (
        "I went skydiving last weekend with my friends. Skydiving is a fun sport",
        "and that is why we go again next month.",
    ),
    (
        "My hair gets dirty very quickly in the summer.",
        "That is why I always shampoo twice a day and shower three times a day.",
    ),
];

/// Artifact `infill`: table5's MD4 fills the span between each prompt's prefix and suffix,
/// `num` samples per prompt and sampler setting, each with its conditional bound.
pub fn infill(ctx: &ArtifactContext, num: i64) -> Result<()> {
    let (scale, device) = (ctx.scale, ctx.device);
    let suite_cfg = ctx.suite("table5")?;
    let (_, model) = suite::trained(ctx, &suite_cfg, "table5", suite_cfg.row("md4")?)?;
    let seq_len = model.cfg.train.seq_len;
    let codec = md4_data::Gpt2Codec::new(model.cfg.data.sub_vocab())?;
    let settings = [
        ("uniform grid, f32 Gumbel", Grid::Uniform, Precision::F32Gumbel),
        ("cosine grid, f32 Gumbel", Grid::Cosine, Precision::F32Gumbel),
        ("cosine grid, f64", Grid::Cosine, Precision::F64),
    ];
    let mut md = format!(
        "# Infilling ({scale}): table5's MD4, {seq_len}-token sequences, prefix and suffix fixed, T = {seq_len} steps\n\n\
         The generated span is between ⟦ and ⟧. Bound: −log p(span | prefix, suffix) ≤ … in bits per generated token \
         (conditional continuous-time ELBO, 8 antithetic passes).\n\n"
    );
    let mut csv =
        String::from("prompt,setting,sample,generated_tokens,span_bits_per_token,network_calls,wall_s\n");
    for (p, (prefix, suffix)) in PROMPTS.iter().enumerate() {
        let pre = codec.encode(prefix);
        let suf = codec.encode(&format!(" {suffix}"));
        let cond = Conditioning::infill(&pre, &suf, seq_len, num, device).map_err(|e| anyhow!(e))?;
        let free = cond.fixed.logical_not();
        let n_free = free.get(0).sum(Kind::Int64).int64_value(&[]);
        writeln!(md, "## Prompt {}: “{prefix} … {suffix}” ({n_free} tokens generated)\n", p + 1)?;
        for (name, grid, precision) in settings {
            let sampler = SamplerConfig { steps: seq_len, grid, precision, top_p: None };
            tch::manual_seed(p as i64);
            let clock = Instant::now();
            let out = tch::no_grad(|| {
                model.trained.sample(&SampleRequest {
                    batch: num,
                    seq_len,
                    cond: Some(&cond),
                    sampler: &sampler,
                    device,
                })
            });
            let wall = clock.elapsed().as_secs_f64();
            let nats = model
                .trained
                .conditional_nelbo(&out.tokens, &free, 8)
                .ok_or_else(|| anyhow!("the infill model must be a scalar-schedule diffusion model"))?;
            writeln!(md, "### {name} ({} network calls, {wall:.1} s)\n", out.network_calls)?;
            for i in 0..num {
                let row: Vec<i64> = Vec::try_from(&out.tokens.get(i))?;
                // One sample per line: newlines inside the text are shown as ⏎.
                let decode = |r: &[i64]| codec.decode(r).map(|s| s.replace('\n', "⏎"));
                let (a, rest) = row.split_at(pre.len());
                let (mid, b) = rest.split_at(rest.len() - suf.len());
                let bits = nats.double_value(&[i]) / (n_free as f64 * std::f64::consts::LN_2);
                writeln!(
                    md,
                    "{}. `{bits:.2} bits/token` {}⟦{}⟧{}\n",
                    i + 1,
                    decode(a)?,
                    decode(mid)?,
                    decode(b)?
                )?;
                writeln!(csv, "{},{name},{},{n_free},{bits},{},{wall}", p + 1, i + 1, out.network_calls)?;
            }
        }
    }
    std::fs::write(ctx.dir.file("infill.md"), &md)?;
    std::fs::write(ctx.dir.file("infill.csv"), &csv)?;
    let mut card = ctx.card("infilling samples", ctx.run.elapsed());
    card.notes = vec![
        suite_cfg.description.clone(),
        format!("model: {} (step {}, EMA weights)", model.checkpoint.display(), model.step),
        "prefix and suffix are GPT-2 tokens of the prompt texts (the suffix with a leading space); everything between them starts masked".into(),
        "paper Fig. 10 shows MD4-M infills for three schedule/grid settings; its prompts are only partly printed, so these prefix/suffix pairs are built around the printed sentences".into(),
    ];
    let card_path = ctx.write_card(&card, "card.yaml")?;
    ctx.finish(&[ctx.dir.file("infill.md"), ctx.dir.file("infill.csv"), card_path])?;
    println!("{md}");
    println!("infill ({scale}) written to {}", ctx.dir.path.display());
    Ok(())
}
