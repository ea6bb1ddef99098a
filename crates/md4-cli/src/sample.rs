//! `md4 sample`: draw sequences from a run's EMA weights with the ancestral sampler of spec §5
//! (GenMD4: its per-token variant; AR baseline: left to right), write them as text (text8 or
//! GPT-2 BPE decoded, token ids otherwise) or as a PNG grid for image models, and report the
//! number of network calls and the wall time (also in `<out>.json`).

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use md4_core::sampler::{Conditioning, Grid, SampleRequest, SamplerConfig};
use md4_core::{Precision, Vocab};
use md4_models::ModelConfig;
use md4_train::load_run_with;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind};

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Run directory written by `md4 train`.
    #[arg(long)]
    run_dir: PathBuf,
    /// Number of reverse steps T.
    #[arg(long)]
    steps: i64,
    /// Discretisation grid: uniform (t = i/T) or cosine (t = cos(π/2·(1 − i/T)), the paper's
    /// text default).
    #[arg(long, default_value = "cosine", value_parser = Grid::parse)]
    grid: Grid,
    /// Categorical sampling: f32-gumbel (JAX-like float32 Gumbel-argmax) or f64 (exact).
    #[arg(long, default_value = "f32-gumbel", value_parser = Precision::parse)]
    precision: Precision,
    /// Nucleus truncation of μ_θ before every step (off by default, as in the paper).
    #[arg(long)]
    top_p: Option<f64>,
    /// Text that every sample starts with (text models only).
    #[arg(long)]
    prompt: Option<String>,
    /// Text that every sample ends with (text models only); with --prompt, the tokens between
    /// them are infilled (paper Fig. 10) and the record gets the bound on −log p(infill | context).
    #[arg(long)]
    suffix: Option<String>,
    /// Skip the network call when no token changed since the last one; exact (same samples,
    /// fewer calls) for time-independent denoisers, a no-op for time-conditioned ones
    #[arg(long)]
    cached: bool,
    /// Number of samples.
    #[arg(long, default_value_t = 4)]
    num: i64,
    /// Tokens per sample (default: the run's train.seq_len; fixed for images).
    #[arg(long)]
    seq_len: Option<i64>,
    /// Seed of torch's RNG.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    #[command(flatten)]
    device: md4_torch::DeviceArgs,
    #[command(flatten)]
    compute: crate::ComputeArgs,
    /// Output file: text, or a PNG grid for image models. A JSON record goes to <out>.json.
    #[arg(long)]
    out: PathBuf,
}

/// How tokens become an output file.
enum Decoder {
    Text8,
    Gpt2(md4_data::Gpt2Codec),
    Ids,
    Image { height: i64, width: i64, channels: i64 },
}

fn decoder_for(cfg: &md4_train::RunConfig) -> Result<Decoder> {
    if let Some(v) = cfg.data.sub_vocab() {
        return Ok(Decoder::Gpt2(md4_data::Gpt2Codec::new(Some(v))?));
    }
    Ok(match &cfg.model {
        ModelConfig::Unet(c) => {
            Decoder::Image { height: c.image.height, width: c.image.width, channels: c.image.channels }
        }
        ModelConfig::Uvit(c) => {
            Decoder::Image { height: c.image.height, width: c.image.width, channels: c.image.channels }
        }
        ModelConfig::Transformer(c) if c.vocab_size == Vocab::text8().size() => Decoder::Text8,
        ModelConfig::Transformer(c) if c.vocab_size == Vocab::gpt2().size() => {
            Decoder::Gpt2(md4_data::Gpt2Codec::Full)
        }
        ModelConfig::Transformer(_) => Decoder::Ids,
    })
}

fn encode_prompt(decoder: &Decoder, prompt: &str) -> Result<Vec<i64>> {
    Ok(match decoder {
        Decoder::Text8 => md4_data::text8_encode(prompt).into_iter().map(i64::from).collect(),
        Decoder::Gpt2(codec) => codec.encode(prompt),
        Decoder::Ids => prompt
            .split_whitespace()
            .map(|t| t.parse::<i64>().with_context(|| format!("prompt token '{t}' is not an id")))
            .collect::<Result<_>>()?,
        Decoder::Image { .. } => bail!("--prompt applies to text models"),
    })
}

/// A `rows × cols` grid of images (1-pixel black gutters) as an 8-bit PNG.
fn write_png_grid(path: &Path, tokens: &[i64], count: usize, h: usize, w: usize, c: usize) -> Result<()> {
    let cols = (count as f64).sqrt().ceil() as usize;
    let rows = count.div_ceil(cols);
    let (gw, gh) = (cols * (w + 1) + 1, rows * (h + 1) + 1);
    let mut canvas = vec![0u8; gw * gh * c];
    for i in 0..count {
        let (r, q) = (i / cols, i % cols);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = tokens[i * h * w * c + (y * w + x) * c + ch].clamp(0, 255) as u8;
                    let (gy, gx) = (1 + r * (h + 1) + y, 1 + q * (w + 1) + x);
                    canvas[(gy * gw + gx) * c + ch] = v;
                }
            }
        }
    }
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), gw as u32, gh as u32);
    enc.set_color(if c == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().context("writing the png header")?;
    writer.write_image_data(&canvas).context("writing the png")?;
    Ok(())
}

pub fn run(a: SampleArgs) -> Result<()> {
    if let Some(env) = md4_dist::DistEnv::from_env()?.filter(|e| e.world_size > 1) {
        anyhow::bail!(
            "md4 sample runs in one process, but this is rank {} of {} ({}): every rank would write the same \
             files; start it without a launcher",
            env.rank,
            env.world_size,
            env.launcher
        );
    }
    ensure!(a.steps >= 1, "--steps must be at least 1");
    ensure!(a.num >= 1, "--num must be at least 1");
    if let Some(p) = a.top_p {
        ensure!(p > 0.0 && p <= 1.0, "--top-p must lie in (0, 1]");
    }
    let device = a.device.open()?;
    let loaded = load_run_with(&a.run_dir, device, a.compute.apply())?;
    let cfg = &loaded.cfg;
    let decoder = decoder_for(cfg)?;
    let seq_len = match (cfg.model.fixed_seq_len(), a.seq_len) {
        (Some(n), Some(s)) if s != n => bail!("this image model samples {n} tokens, not {s}"),
        (Some(n), _) => n,
        (None, s) => s.unwrap_or(cfg.train.seq_len),
    };
    let vocab = cfg.model.vocab();
    let cond = if a.prompt.is_some() || a.suffix.is_some() {
        let prefix = encode_prompt(&decoder, a.prompt.as_deref().unwrap_or(""))?;
        let suffix = encode_prompt(&decoder, a.suffix.as_deref().unwrap_or(""))?;
        ensure!(
            prefix.iter().chain(&suffix).all(|&t| (0..vocab.size()).contains(&t)),
            "prompt token outside the vocabulary"
        );
        Some(Conditioning::infill(&prefix, &suffix, seq_len, a.num, device).map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    let sampler = SamplerConfig { steps: a.steps, grid: a.grid, precision: a.precision, top_p: a.top_p };
    tch::manual_seed(a.seed);
    let start = Instant::now();
    let out = if a.cached {
        loaded.trained.sample_cached(&SampleRequest {
            batch: a.num,
            seq_len,
            cond: cond.as_ref(),
            sampler: &sampler,
            device,
        })
    } else {
        loaded.trained.sample(&SampleRequest {
            batch: a.num,
            seq_len,
            cond: cond.as_ref(),
            sampler: &sampler,
            device,
        })
    };
    let wall = start.elapsed().as_secs_f64();
    // The infilled span's likelihood bound, −log p(span | context), 8 antithetic passes.
    let span = match &cond {
        Some(c) => {
            let free = c.fixed.logical_not();
            let n_free = free.get(0).sum(Kind::Int64).int64_value(&[]);
            loaded.trained.conditional_nelbo(&out.tokens, &free, 8).map(|nats| {
                let nats: Vec<f64> = Vec::try_from(&nats.to_device(Device::Cpu)).unwrap_or_default();
                (n_free, nats)
            })
        }
        None => None,
    };
    let tokens: Vec<i64> = Vec::try_from(&out.tokens.to_device(Device::Cpu).view([-1]))?;
    let rows: Vec<&[i64]> = tokens.chunks(seq_len as usize).collect();
    match decoder {
        Decoder::Image { height, width, channels } => write_png_grid(
            &a.out,
            &tokens,
            a.num as usize,
            height as usize,
            width as usize,
            channels as usize,
        )?,
        Decoder::Text8 => {
            let text: Vec<String> = rows
                .iter()
                .map(|r| md4_data::text8_decode(&r.iter().map(|&t| t as u8).collect::<Vec<_>>()))
                .collect();
            std::fs::write(&a.out, text.join("\n") + "\n")?
        }
        Decoder::Gpt2(codec) => {
            let text = rows.iter().map(|r| codec.decode(r)).collect::<Result<Vec<_>>>()?;
            std::fs::write(&a.out, text.join("\n\n==========\n\n") + "\n")?
        }
        Decoder::Ids => {
            let lines: Vec<String> =
                rows.iter().map(|r| r.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")).collect();
            std::fs::write(&a.out, lines.join("\n") + "\n")?
        }
    }
    let record = json!({
        "run_dir": a.run_dir,
        "checkpoint_step": loaded.step,
        "precision": loaded.precision.describe(),
        "weights": "ema",
        "samples": a.num,
        "seq_len": seq_len,
        "sampler": sampler,
        "prompt": a.prompt,
        "suffix": a.suffix,
        "generated_tokens": span.as_ref().map(|(n, _)| *n),
        "span_nelbo_nats": span.as_ref().map(|(_, v)| v.clone()),
        "cached": a.cached,
        "seed": a.seed,
        "network_calls": out.network_calls,
        "argmax_filled": out.argmax_filled,
        "wall_seconds": wall,
    });
    let record_path = PathBuf::from(format!("{}.json", a.out.display()));
    std::fs::write(&record_path, serde_json::to_string_pretty(&record)? + "\n")?;
    if let Some((n, nats)) = &span {
        let mean = nats.iter().sum::<f64>() / nats.len().max(1) as f64;
        println!(
            "infilled {n} tokens per sample: −log p(span | context) ≤ {mean:.1} nats = {:.3} bits per token (mean of {} samples)",
            mean / (*n as f64 * std::f64::consts::LN_2),
            nats.len()
        );
    }
    println!(
        "{} samples of {seq_len} tokens in {wall:.2} s, {} network calls ({} leftover masks filled by argmax) -> {}",
        a.num,
        out.network_calls,
        out.argmax_filled,
        a.out.display()
    );
    Ok(())
}
