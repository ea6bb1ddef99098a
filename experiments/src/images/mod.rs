//! What the image artifacts share (Table 3, image samples / Table 6; spec §7.2, §7.3, §9.4,
//! §10.3, §10.6): the table3 experiment file (one likelihood suite per data set, loading-path
//! checks, sample grids), image evaluation sets (whole images, never chunks that straddle two),
//! the untrained-model check on the 20 foolbox images, and sample grids from a trained run.
//!
//! The untrained check rests on the zero-initialised output layers of both image networks
//! (§7.2, §7.3): μ_θ is uniform over the V = 256 values, so MD4's continuous-time NELBO
//! with the ε-shifted linear schedule is exactly (α_0 − α_1)·log V for the diffusion part plus
//! ε·log V of reconstruction, i.e. (1 − ε)·log2 V = 8·(1 − ε) bits per dimension for every
//! image, up to the Monte-Carlo noise of the number of masked sub-pixels.

mod samples;
mod table3;

pub use samples::image_samples;
pub use table3::table3;

use crate::context::ArtifactContext;
use crate::suite::{EvalSpec, SuiteConfig};
use anyhow::{Context, Result, bail, ensure};
use md4_core::sampler::{Grid, SampleRequest, SamplerConfig};
use md4_core::{MaskingSchedule, Md4, Objective, Precision, Schedule};
use md4_data::PrepareOptions;
use md4_eval::{DataProtocol, EvalConfig, ImageGrid, SamplingProtocol, evaluate, tokens_sha256};
use md4_models::{ImageShape, ModelConfig};
use md4_train::config::deep_merge;
use md4_train::{Batches, LoadedRun, TrainConfig, Trainer};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The experiment file of `table3` (`experiments/configs/table3/<scale>.yaml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table3Config {
    /// Title of the table: data, scale, budget.
    pub description: String,
    /// One likelihood suite per data set (small: Fashion-MNIST; paper: CIFAR-10, ImageNet64).
    /// Row slugs are unique across suites: they name the run directories.
    pub suites: Vec<SuiteConfig>,
    /// Loading-path checks with untrained networks (the foolbox images).
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// A grid of unconditional samples from every diffusion row (none: no grids).
    pub samples: Option<GridSpec>,
}

impl Table3Config {
    /// Check that row slugs are unique across suites and every suite scores image data.
    pub fn validate(&self) -> Result<()> {
        let mut slugs = BTreeSet::new();
        for suite in &self.suites {
            for row in &suite.rows {
                ensure!(slugs.insert(row.slug.as_str()), "table3: row slug '{}' appears twice", row.slug);
                let cfg = suite.run_config(row)?;
                if let Some(n) = cfg.model.fixed_seq_len() {
                    ensure!(
                        n == suite.eval.seq_len,
                        "table3 row '{}': the model reads {n} tokens but eval.seq_len is {}",
                        row.name,
                        suite.eval.seq_len
                    );
                }
            }
        }
        Ok(())
    }

    /// The suite holding the row `slug`.
    pub fn suite_of(&self, slug: &str) -> Result<&SuiteConfig> {
        match self.suites.iter().find(|s| s.rows.iter().any(|r| r.slug == slug)) {
            Some(s) => Ok(s),
            None => bail!("table3 has no row '{slug}'"),
        }
    }
}

/// How many samples to draw, with which sampler.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    pub n_samples: i64,
    /// Reverse steps T.
    pub steps: i64,
    pub grid: Grid,
    pub precision: Precision,
    /// torch's seed before sampling.
    pub seed: i64,
}

/// One loading-path check: an image data set's split scored by an untrained network, and one
/// training step on its first images.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Row name in `checks/table.md`.
    pub name: String,
    pub dataset: String,
    pub split: String,
    /// A model config (`{preset: cifar10}` with optional overrides), as in a run config.
    pub model: Value,
    pub batch: usize,
    pub passes: usize,
    /// Images in the one training step.
    pub train_batch: i64,
    pub lr: f64,
    pub seed: i64,
}

/// What a check measured (`checks/<n>.yaml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub dataset: String,
    pub split: String,
    pub images: usize,
    /// Height, width, channels.
    pub shape: [i64; 3],
    pub tokens_sha256: String,
    pub parameters: i64,
    /// Shape of the denoiser's logits on two fully masked images: `[2, H·W·C, 256]`.
    pub logits_shape: Vec<i64>,
    /// max |logit| of the untrained network (0: the zero-initialised output layer).
    pub untrained_logits_max_abs: f64,
    /// MD4 (linear, ε = 1e−4) NELBO of the untrained network in bits per dimension.
    pub untrained_bpd: f64,
    pub untrained_bpd_se: f64,
    /// (1 − ε)·log2 V.
    pub expected_bpd: f64,
    pub passes: usize,
    /// The one training step: its loss (bits per dimension), whether every parameter stayed
    /// finite, and the batch's bound before and after the step with the same masks and times.
    pub step_loss_bits: f64,
    pub step_params_finite: bool,
    pub batch_bpd_before: f64,
    pub batch_bpd_after: f64,
    pub wall_seconds: f64,
}

/// The experiment file of `image-samples` (`experiments/configs/image-samples/<scale>.yaml`):
/// which table3 runs (at the same scale) are sampled, with which grids and step counts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSamplesConfig {
    pub description: String,
    pub settings: Vec<SampleSetting>,
    /// Reverse steps T of every setting.
    pub steps: Vec<i64>,
    /// Samples per (setting, T).
    pub n_samples: i64,
    pub precision: Precision,
    /// torch's seed before every (setting, T).
    pub seed: i64,
}

/// One sampler setting of Table 6: a trained table3 row and a discretisation grid.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSetting {
    /// Label, e.g. `linear α_t, cosine grid`.
    pub name: String,
    /// File-name stem, e.g. `linear-cosine`.
    pub slug: String,
    /// The table3 row whose run is sampled.
    pub row: String,
    pub grid: Grid,
    /// Key of the row in `results/paper.yaml` table6.
    pub paper_row: String,
}

/// A model config written as in a run config: `{preset: NAME, ...overrides}` or every key.
pub fn resolve_model(value: &Value) -> Result<ModelConfig> {
    let mut tree = value.clone();
    if let Some(map) = tree.as_mapping_mut()
        && let Some(name) = map.remove("preset")
    {
        let name = name.as_str().context("model.preset must be a string")?.to_string();
        let mut resolved = serde_yaml::to_value(md4_models::preset(&name)?)?;
        deep_merge(&mut resolved, Value::Mapping(map.clone()));
        tree = resolved;
    }
    let text = serde_yaml::to_string(&tree)?;
    ModelConfig::from_yaml(&text)
}

/// The image shape of an image network; `None` for text models.
pub fn image_shape(model: &ModelConfig) -> Option<ImageShape> {
    match model {
        ModelConfig::Unet(c) => Some(c.image),
        ModelConfig::Uvit(c) => Some(c.image),
        ModelConfig::Transformer(_) => None,
    }
}

/// The evaluation images of `spec`: the first `max_sequences` images of the split (all of them
/// when absent), each `seq_len` = H·W·C sub-pixel tokens, and the data part of the card.
///
/// # Shapes
/// → `[S, H·W·C]` int64 in 0..=255.
pub fn image_sequences(spec: &EvalSpec) -> Result<(Tensor, DataProtocol)> {
    let prepared = md4_data::prepare(&spec.dataset, &PrepareOptions::default())
        .with_context(|| format!("preparing data set {}", spec.dataset))?;
    let file = prepared.open(&spec.split)?;
    let n = spec.seq_len as usize;
    let total = file.len() as usize;
    ensure!(
        n > 0 && total.is_multiple_of(n),
        "{} {} holds {total} tokens, not a whole number of {n}-token images",
        spec.dataset,
        spec.split
    );
    let available = total / n;
    let count = spec.max_sequences.map_or(available, |m| m.min(available));
    ensure!(count > 0, "{} {} has no images", spec.dataset, spec.split);
    let mut tokens = vec![0i64; count * n];
    file.read_i64(0, &mut tokens);
    ensure!(tokens.iter().all(|t| (0..256).contains(t)), "{} holds tokens outside 0..=255", spec.dataset);
    let seqs = Tensor::from_slice(&tokens).view([count as i64, spec.seq_len]);
    let chunking = if count < available {
        format!(
            "the first {count} of the {available} {} images in file order, whole images of {n} sub-pixel tokens; every one scored",
            spec.split
        )
    } else {
        format!(
            "all {available} {} images, whole images of {n} sub-pixel tokens; every one scored",
            spec.split
        )
    };
    let protocol = DataProtocol {
        dataset: spec.dataset.clone(),
        split: spec.split.clone(),
        tokens_sha256: tokens_sha256(&seqs)?,
        tokenizer: spec.tokenizer.clone(),
        sequence_length: n,
        n_sequences: count,
        chunking,
    };
    Ok((seqs, protocol))
}

/// A fixed set of images served as every training batch (its first `batch` rows).
#[derive(Debug)]
struct FixedImages(Tensor);

impl Batches for FixedImages {
    fn train_batch(&self, _seed: u64, _step: u64, batch: i64) -> Tensor {
        self.0.narrow(0, 0, batch)
    }
    fn eval_len(&self) -> u64 {
        0
    }
    fn eval_batch(&self, _start: u64, _count: u64) -> Tensor {
        unreachable!("fixed training images have no validation set")
    }
}

/// Bits per dimension of every image of `x` under `md4` with torch seeded to `seed`.
fn batch_bpd(md4: &Md4<md4_models::Network>, x: &Tensor, seed: i64) -> f64 {
    tch::manual_seed(seed);
    let n = x.size()[1] as f64;
    let nelbo = tch::no_grad(|| md4.loss(x, false).nelbo.to_kind(Kind::Double));
    md4_core::units::nats_to_bits(nelbo.mean(Kind::Double).double_value(&[]) / n)
}

/// Run one loading-path check (module docs): load the split, build the untrained network,
/// check its logits' shape, score every image with MD4's bound, and take one AdamW step.
pub fn run_check(spec: &CheckSpec, device: Device) -> Result<CheckResult> {
    let started = Instant::now();
    let model = resolve_model(&spec.model).with_context(|| format!("check '{}'", spec.name))?;
    let shape =
        image_shape(&model).with_context(|| format!("check '{}' needs an image network", spec.name))?;
    let n = shape.tokens();
    let eval = EvalSpec {
        dataset: spec.dataset.clone(),
        split: spec.split.clone(),
        seq_len: n,
        tokenizer: String::new(),
        max_sequences: None,
        passes: spec.passes,
        batch: spec.batch,
        seed: spec.seed,
    };
    let (seqs, data) = image_sequences(&eval)?;
    let vocab = model.vocab();
    ensure!(
        vocab.size() == 256,
        "check '{}': pixel models predict 256 values, not {}",
        spec.name,
        vocab.size()
    );

    let vs = VarStore::new(device);
    tch::manual_seed(spec.seed);
    let md4 = Md4 {
        denoiser: model.build_network(&vs.root())?,
        schedule: Schedule::md4(MaskingSchedule::Linear),
        vocab,
    };
    let masked = Tensor::full([2, n], vocab.mask_id(), (Kind::Int64, device));
    let logits = tch::no_grad(|| {
        use md4_core::Denoiser;
        md4.denoiser.logits(&masked, &Tensor::ones([2], (Kind::Float, device)), false)
    });
    let logits_shape = logits.size();
    let untrained_logits_max_abs = logits.abs().max().double_value(&[]);

    let config = EvalConfig::new(spec.batch, spec.passes, spec.seed, device);
    let result = evaluate(&seqs, &config, |x| md4.loss(x, false).nelbo.to_kind(Kind::Double))?;
    let (untrained_bpd, untrained_bpd_se) =
        md4_eval::Unit::BitsPerDim.convert(result.mean_nats_per_token, result.se_nats_per_token);

    // One update on the first images (lr at step 0 is the peak: no warm-up).
    let batch = spec.train_batch.min(seqs.size()[0]);
    let x = seqs.narrow(0, 0, batch).to_device(device);
    let before = batch_bpd(&md4, &x, spec.seed);
    let train = TrainConfig {
        steps: 1,
        batch,
        seq_len: n,
        lr: spec.lr,
        warmup: 0,
        weight_decay: 0.01,
        beta2: 0.99,
        ema: 0.9999,
        clip: None,
        accum: 1,
        seed: spec.seed as u64,
        ckpt_every: 1,
        keep_last: 1,
        log_every: 1,
        eval_every: 0,
        eval_batches: 0,
        precision: md4_models::ComputePrecision::Auto,
    };
    let mut trainer = Trainer::new(&vs, &train);
    let stats = trainer.train_step(&md4, &FixedImages(x.shallow_clone()))?;
    let step_params_finite =
        vs.trainable_variables().iter().all(|t| t.isfinite().all().int64_value(&[]) == 1);
    let after = batch_bpd(&md4, &x, spec.seed);
    Ok(CheckResult {
        name: spec.name.clone(),
        dataset: spec.dataset.clone(),
        split: spec.split.clone(),
        images: data.n_sequences,
        shape: [shape.height, shape.width, shape.channels],
        tokens_sha256: data.tokens_sha256,
        parameters: model.param_count(),
        logits_shape,
        untrained_logits_max_abs,
        untrained_bpd,
        untrained_bpd_se,
        expected_bpd: (1.0 - md4_core::schedule::MD4_EPS) * (vocab.size() as f64).log2(),
        passes: spec.passes,
        step_loss_bits: stats.loss_bits,
        step_params_finite,
        batch_bpd_before: before,
        batch_bpd_after: after,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Score a scalar-schedule diffusion run (e.g. one trained with Campbell et al.'s objective)
/// with MD4's continuous-time estimator (spec §3.3) instead of its own: for the same μ_θ both
/// estimate the same bound (spec §6, Prop. 3), so the difference between the two is only
/// Monte-Carlo noise, and the gap to an MD4-trained network is the network's.
pub fn evaluate_with_md4_estimator(
    loaded: &LoadedRun,
    seqs: &Tensor,
    spec: &EvalSpec,
    device: Device,
) -> Result<md4_eval::EvalResult> {
    let Some((net, schedule, vocab)) = loaded.trained.scalar_diffusion() else {
        bail!("MD4's estimator needs a scalar-schedule diffusion model");
    };
    let config = EvalConfig::new(spec.batch, spec.passes, spec.seed, device);
    evaluate(seqs, &config, |x| {
        let t = md4_core::forward::antithetic_times(x.size()[0], x.device());
        md4_core::elbo::continuous_nelbo(net, x, &t, &schedule, vocab, false).to_kind(Kind::Double)
    })
}

/// Unconditional samples of a trained image model, and what they cost.
#[derive(Debug)]
pub struct ImageSamples {
    pub grid: ImageGrid,
    pub network_calls: i64,
    pub argmax_filled: i64,
    pub wall_seconds: f64,
}

/// Draw `spec.n_samples` images from `loaded` (its EMA weights) with T = `steps` on `grid`.
pub fn sample_images(
    loaded: &LoadedRun,
    n_samples: i64,
    sampler: &SamplerConfig,
    seed: i64,
    device: Device,
) -> Result<ImageSamples> {
    let shape = image_shape(&loaded.cfg.model).context("sampling images needs an image network")?;
    let started = Instant::now();
    tch::manual_seed(seed);
    let out = loaded.trained.sample(&SampleRequest {
        batch: n_samples,
        seq_len: shape.tokens(),
        cond: None,
        sampler,
        device,
    });
    let tokens: Vec<i64> = Vec::try_from(out.tokens.to_device(Device::Cpu).view([-1]))?;
    let grid = ImageGrid::new(&tokens, shape.height as usize, shape.width as usize, shape.channels as usize)?;
    Ok(ImageSamples {
        grid,
        network_calls: out.network_calls,
        argmax_filled: out.argmax_filled,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Where one set of sample images goes and what its card says.
#[derive(Clone, Debug)]
pub struct SampleOutput<'a> {
    /// The card's item (`MD4 (linear) samples`).
    pub item: String,
    /// `samples/<png>.png`, `cards/<card>.yaml`.
    pub png: String,
    pub card: String,
    /// How the card's note names the picture (`samples/<row>.png`).
    pub png_label: String,
    pub run_dir: &'a Path,
}

/// Draw `n_samples` images from `loaded` with `sampler` (torch seeded with `seed`), write them
/// as a lossless grid and their card with the sampling protocol; returns the samples and the
/// two paths.
pub fn write_samples(
    ctx: &ArtifactContext,
    loaded: &LoadedRun,
    sampler: &SamplerConfig,
    (n_samples, seed): (i64, i64),
    out: SampleOutput,
) -> Result<(ImageSamples, [PathBuf; 2])> {
    let samples = sample_images(loaded, n_samples, sampler, seed, ctx.device)?;
    let png = ctx.dir.file(&format!("samples/{}.png", out.png));
    samples.grid.write_png(&png)?;
    let mut card = ctx.card(&out.item, samples.wall_seconds);
    let schedule = crate::suite::schedule_label(&loaded.cfg);
    card.sampling =
        Some(SamplingProtocol::new(&schedule, sampler, n_samples as usize, seed, samples.network_calls));
    card.notes = vec![
        format!("run directory: {} (step {})", out.run_dir.display(), loaded.step),
        format!("positions still masked after the last step, filled by argmax: {}", samples.argmax_filled),
        format!(
            "{} is a lossless 8-bit grid (1-pixel black gutters); its pixels are the sampled tokens",
            out.png_label
        ),
    ];
    let card_path = ctx.write_card(&card, &format!("cards/{}.yaml", out.card))?;
    Ok((samples, [png, card_path]))
}

/// `SamplerConfig` of a grid spec (no top-p: the paper samples without truncation).
pub fn sampler_of(spec: &GridSpec) -> SamplerConfig {
    SamplerConfig { steps: spec.steps, grid: spec.grid, precision: spec.precision, top_p: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_values_resolve_presets_and_name_typos() {
        let v: Value = serde_yaml::from_str("{preset: cifar10, n_layers: 2, dropout: 0.0}").unwrap();
        let ModelConfig::Unet(c) = resolve_model(&v).unwrap() else { panic!("not a unet") };
        assert_eq!((c.n_layers, c.feature_dim, c.dropout), (2, 128, 0.0));
        assert_eq!(image_shape(&ModelConfig::Unet(c)).unwrap().tokens(), 3072);
        let typo: Value = serde_yaml::from_str("{preset: cifar10, n_layer: 2}").unwrap();
        assert!(format!("{:#}", resolve_model(&typo).unwrap_err()).contains("n_layer"));
        let text: Value = serde_yaml::from_str("{preset: small-ar-fmnist}").unwrap();
        assert!(image_shape(&resolve_model(&text).unwrap()).is_none());
    }

    #[test]
    fn committed_image_sample_configs_name_table3_rows() {
        let root = crate::workspace_root();
        for scale in crate::Scale::ALL {
            let cfg: ImageSamplesConfig = crate::load_config(&root, "image-samples", scale).unwrap();
            let table3: Table3Config = crate::load_config(&root, "table3", scale).unwrap();
            for setting in &cfg.settings {
                let suite = table3.suite_of(&setting.row).unwrap();
                let run = suite.run_config(suite.row(&setting.row).unwrap()).unwrap();
                assert!(image_shape(&run.model).is_some(), "{scale}: {} is not an image model", setting.row);
            }
        }
    }

    #[test]
    fn committed_table3_configs_parse_and_validate() {
        let root = crate::workspace_root();
        for scale in crate::Scale::ALL {
            let cfg: Table3Config = crate::load_config(&root, "table3", scale).unwrap();
            cfg.validate().unwrap_or_else(|e| panic!("table3 {scale}: {e:#}"));
            for check in &cfg.checks {
                let model = resolve_model(&check.model).unwrap();
                assert!(image_shape(&model).is_some(), "{scale}: {}", check.name);
            }
        }
    }
}
