//! The run configuration read by `md4 train` (YAML; every struct denies unknown keys, so a
//! typo is an error naming the key, style rule 5):
//!
//! ```yaml
//! model: { preset: tiny-text8, dropout: 0.0 }   # or a full md4_models::ModelConfig
//! objective: { kind: md4, schedule: { kind: linear } }
//! data: { source: dataset, name: text8, train_split: train, eval_split: validation }
//! train: { steps: 1000, batch: 32, seq_len: 256, lr: 3.0e-4, warmup: 100, ... }
//! ```
//!
//! Loading goes through a YAML tree: `--set a.b.c=value` overrides are applied to the tree
//! first, then `model.preset` is replaced by the preset's full configuration with the other
//! `model` keys merged over it, and only then is the tree deserialised. The resolved
//! configuration (every knob written out) is what a run directory stores.

use anyhow::{Context, Result, bail, ensure};
use md4_core::MaskingSchedule;
use md4_models::{ComputePrecision, ModelConfig, PrecisionChoice};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Everything a training run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub objective: ObjectiveConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
}

/// Which loss trains the network (spec §3, §4, §6). Adding an objective means a variant here
/// and one arm in [`crate::objective::build`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectiveConfig {
    /// MD4's continuous-time NELBO with the ε-shifted schedule (ε = 1e−4) and antithetic t.
    Md4 { schedule: MaskingSchedule },
    /// GenMD4: learnable per-token polynomial exponents w = softplus(w_raw), initialised to
    /// `power_init` (1 = linear), trained with the RLOO estimator.
    Genmd4 { power_init: f64 },
    /// The autoregressive baseline: the same transformer with a causal mask, exact NLL.
    Ar,
    /// D3PM absorbing: the T-step bound plus the hybrid cross-entropy.
    D3pm { steps: i64, aux_weight: f64 },
    /// SEDD absorb: score entropy with the ε-shifted schedule.
    Sedd { schedule: MaskingSchedule },
    /// Campbell et al.'s CTMC ELBO with the ε-shifted schedule.
    Campbell { schedule: MaskingSchedule },
}

impl ObjectiveConfig {
    /// A short name for logs (`md4`, `genmd4`, `ar`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Md4 { .. } => "md4",
            Self::Genmd4 { .. } => "genmd4",
            Self::Ar => "ar",
            Self::D3pm { .. } => "d3pm",
            Self::Sedd { .. } => "sedd",
            Self::Campbell { .. } => "campbell",
        }
    }
}

/// Where the token sequences come from (spec §9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// A registry data set prepared by `md4 data NAME` (`datasets/NAME.yaml`).
    Dataset {
        name: String,
        train_split: String,
        /// The split used for periodic validation; none: no validation.
        eval_split: Option<String>,
        /// Re-spell the (GPT-2) tokens in a compact sub-vocabulary (`md4_data::subvocab`);
        /// every evaluation of the run's models uses the same one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vocab: Option<md4_data::SubVocabSpec>,
    },
    /// A plain text file mapped to the text8 alphabet (a–z and space, V = 27).
    Text {
        path: PathBuf,
        /// Fraction of the stream, taken from its end, kept for validation (0: none).
        holdout: f64,
    },
    /// A text file tokenised with GPT-2 BPE (V = 50257).
    Bpe { path: PathBuf, holdout: f64 },
    /// Raw little-endian u16 tokens (or an md4 token file) with vocabulary size `vocab`.
    Tokens { path: PathBuf, vocab: u32, holdout: f64 },
}

impl DataConfig {
    /// The sub-vocabulary the tokens are re-spelt in, if any.
    pub fn sub_vocab(&self) -> Option<&md4_data::SubVocabSpec> {
        match self {
            Self::Dataset { vocab, .. } => vocab.as_ref(),
            _ => None,
        }
    }

    /// The vocabulary size the data implies without opening it, where it is fixed.
    pub fn known_vocab(&self) -> Option<i64> {
        match self {
            Self::Dataset { vocab, .. } => vocab.as_ref().map(|v| v.size as i64),
            Self::Text { .. } => Some(md4_core::Vocab::text8().size()),
            Self::Bpe { .. } => Some(md4_core::Vocab::gpt2().size()),
            Self::Tokens { vocab, .. } => Some(*vocab as i64),
        }
    }
}

/// Optimisation, checkpointing and logging (spec §8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Total number of optimizer updates K.
    pub steps: i64,
    /// Sequences per update (split into `accum` micro-batches).
    pub batch: i64,
    /// Tokens per sequence N (for image data: H·W·C).
    pub seq_len: i64,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up updates W (the learning rate starts at 0).
    pub warmup: i64,
    /// Decoupled weight decay, applied to every parameter.
    pub weight_decay: f64,
    /// Adam β2 (β1 = 0.9, ε = 1e−8).
    pub beta2: f64,
    /// EMA decay of the evaluation weights.
    pub ema: f64,
    /// Global-norm gradient clipping threshold; absent or null: no clipping (the paper).
    pub clip: Option<f64>,
    /// Micro-batches per update (gradient accumulation); must divide `batch`.
    pub accum: i64,
    /// Seed of the data order, the masks and times (torch's RNG is reseeded every update).
    pub seed: u64,
    /// Write a checkpoint every this many updates (and at the end).
    pub ckpt_every: i64,
    /// Checkpoints kept on disk.
    pub keep_last: usize,
    /// Append a metrics line every this many updates.
    pub log_every: i64,
    /// Validate with the EMA weights every this many updates (0: never).
    pub eval_every: i64,
    /// Validation batches (of `batch / accum` sequences) per validation.
    pub eval_batches: i64,
    /// Arithmetic of matrix multiplications, convolutions and attention: `auto` (bf16 where
    /// the device multiplies bf16 natively, else f32), `f32` or `bf16`. Master weights,
    /// optimizer state, the loss and the ELBO accumulation stay float32.
    #[serde(default)]
    pub precision: ComputePrecision,
}

impl TrainConfig {
    /// Sequences per micro-batch.
    pub fn micro_batch(&self) -> i64 {
        self.batch / self.accum
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(self.steps >= 1, "train.steps must be at least 1, got {}", self.steps);
        ensure!(self.batch >= 1, "train.batch must be at least 1, got {}", self.batch);
        ensure!(self.seq_len >= 1, "train.seq_len must be at least 1, got {}", self.seq_len);
        ensure!(self.accum >= 1, "train.accum must be at least 1, got {}", self.accum);
        ensure!(
            self.batch % self.accum == 0,
            "train.accum ({}) must divide train.batch ({})",
            self.accum,
            self.batch
        );
        ensure!(self.lr.is_finite() && self.lr >= 0.0, "train.lr must be finite and non-negative");
        ensure!(self.warmup >= 0, "train.warmup must be non-negative");
        ensure!((0.0..1.0).contains(&self.beta2), "train.beta2 must lie in [0, 1), got {}", self.beta2);
        ensure!((0.0..=1.0).contains(&self.ema), "train.ema must lie in [0, 1], got {}", self.ema);
        if let Some(c) = self.clip {
            ensure!(c > 0.0, "train.clip must be positive (or null for no clipping), got {c}");
        }
        ensure!(self.ckpt_every >= 1, "train.ckpt_every must be at least 1");
        ensure!(self.keep_last >= 1, "train.keep_last must be at least 1");
        ensure!(self.log_every >= 1, "train.log_every must be at least 1");
        ensure!(
            self.eval_every >= 0 && self.eval_batches >= 0,
            "train.eval_every and eval_batches must be ≥ 0"
        );
        Ok(())
    }
}

/// Apply `key.path=value` overrides to a YAML tree; `value` is parsed as YAML (numbers, bools,
/// strings, `{kind: cosine}` flow mappings). Missing intermediate mappings are created.
pub fn apply_overrides(tree: &mut Value, sets: &[String]) -> Result<()> {
    for set in sets {
        let (path, raw) =
            set.split_once('=').with_context(|| format!("--set '{set}' must look like key.path=value"))?;
        ensure!(!path.is_empty(), "--set '{set}' has an empty key");
        let value: Value = serde_yaml::from_str(raw)
            .with_context(|| format!("--set '{set}': the value is not valid YAML"))?;
        let mut node = &mut *tree;
        let keys: Vec<&str> = path.split('.').collect();
        for (i, key) in keys.iter().enumerate() {
            if !node.is_mapping() {
                bail!("--set '{set}': '{}' is not a mapping", keys[..i].join("."));
            }
            let map = node.as_mapping_mut().expect("checked to be a mapping");
            let k = Value::String((*key).to_string());
            if i + 1 == keys.len() {
                map.insert(k, value.clone());
                break;
            }
            node = map.entry(k).or_insert_with(|| Value::Mapping(Mapping::new()));
        }
    }
    Ok(())
}

/// Merge `over` into `base`: mappings key by key (recursively), anything else replaced.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Replace `model: {preset: NAME, ...overrides}` by the preset's configuration with the
/// overrides merged over it.
fn resolve_preset(tree: &mut Value) -> Result<()> {
    let Some(model) = tree.get_mut("model") else { return Ok(()) };
    let Some(map) = model.as_mapping_mut() else { return Ok(()) };
    let Some(name) = map.remove("preset") else { return Ok(()) };
    let name = name.as_str().context("model.preset must be a string")?.to_string();
    let mut resolved = serde_yaml::to_value(md4_models::preset(&name)?)?;
    deep_merge(&mut resolved, Value::Mapping(map.clone()));
    *model = resolved;
    Ok(())
}

impl RunConfig {
    /// Parse YAML text, apply `--set` overrides and resolve the model preset.
    pub fn from_yaml_with(text: &str, sets: &[String]) -> Result<Self> {
        let mut tree: Value = serde_yaml::from_str(text).context("the run config is not valid YAML")?;
        if tree.is_null() {
            tree = Value::Mapping(Mapping::new());
        }
        apply_overrides(&mut tree, sets)?;
        if let Some(old) = tree.get("train").and_then(|t| t.get("bf16")) {
            md4_models::compute::old_bf16_key_error(old.as_bool())?;
        }
        resolve_preset(&mut tree)?;
        // Deserialise from text so that errors carry the path of the offending key.
        let resolved = serde_yaml::to_string(&tree)?;
        let cfg: Self = serde_yaml::from_str(&resolved).map_err(|e| anyhow::anyhow!("run config: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// [`RunConfig::from_yaml_with`] without overrides.
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::from_yaml_with(text, &[])
    }

    /// Read a YAML file and apply overrides.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_yaml_with(&text, sets).with_context(|| format!("loading {}", path.display()))
    }

    /// The resolved configuration as YAML (what `config.yaml` of a run holds).
    pub fn to_yaml(&self) -> Result<String> {
        Ok(serde_yaml::to_string(self)?)
    }

    /// sha256 of [`RunConfig::to_yaml`]: identifies the configuration of a checkpoint.
    pub fn sha256(&self) -> Result<String> {
        Ok(hex::encode(Sha256::digest(self.to_yaml()?.as_bytes())))
    }

    /// The model actually built on `device`: `train.precision` (or `precision` when given,
    /// overriding it) resolved for that device, and the choice with its reason.
    pub fn effective_model(
        &self,
        device: tch::Device,
        precision: Option<ComputePrecision>,
    ) -> (ModelConfig, PrecisionChoice) {
        let choice = md4_models::compute::resolve(precision.unwrap_or(self.train.precision), device);
        (self.model.with_compute_dtype(choice.dtype), choice)
    }

    /// Cross-field checks: each part is valid, and the sequence length fits the model.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        if let Some(n) = self.model.fixed_seq_len() {
            ensure!(
                n == self.train.seq_len,
                "train.seq_len is {} but the model reads images of {n} tokens",
                self.train.seq_len
            );
        }
        if let Some(v) = self.data.known_vocab() {
            ensure!(
                v == self.model.vocab().size(),
                "the data has {v} tokens but the model's vocabulary is {} (set model.vocab_size)",
                self.model.vocab().size()
            );
        }
        if let ObjectiveConfig::Genmd4 { power_init } = self.objective {
            ensure!(power_init > 0.0, "objective.power_init must be positive, got {power_init}");
        }
        if let ObjectiveConfig::D3pm { steps, aux_weight } = self.objective {
            ensure!(steps >= 1 && aux_weight >= 0.0, "objective d3pm needs steps ≥ 1 and aux_weight ≥ 0");
        }
        if self.objective == ObjectiveConfig::Ar {
            ensure!(
                matches!(self.model, ModelConfig::Transformer(_)),
                "objective ar needs a transformer model"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "
model: { preset: tiny-text8 }
objective: { kind: md4, schedule: { kind: linear } }
data: { source: text, path: corpus.txt, holdout: 0.1 }
train:
  steps: 10
  batch: 4
  seq_len: 16
  lr: 1.0e-3
  warmup: 2
  weight_decay: 0.03
  beta2: 0.999
  ema: 0.9
  accum: 1
  seed: 1
  ckpt_every: 5
  keep_last: 2
  log_every: 1
  eval_every: 0
  eval_batches: 0
  precision: f32
";

    #[test]
    fn preset_with_overrides_resolves_to_the_full_model() {
        let cfg =
            RunConfig::from_yaml_with(BASE, &["model.n_layers=3".into(), "train.lr=2e-3".into()]).unwrap();
        let ModelConfig::Transformer(t) = &cfg.model else { panic!("not a transformer") };
        let preset = md4_models::preset("tiny-text8").unwrap();
        let ModelConfig::Transformer(p) = preset else { panic!() };
        assert_eq!(t.n_layers, 3);
        assert_eq!(t.n_heads, p.n_heads);
        assert_eq!(cfg.train.lr, 2e-3);
        assert_eq!(cfg.train.clip, None);
        // The resolved YAML round-trips and names every model knob.
        let yaml = cfg.to_yaml().unwrap();
        assert!(yaml.contains("n_layers: 3") && !yaml.contains("preset"), "{yaml}");
        assert_eq!(RunConfig::from_yaml(&yaml).unwrap(), cfg);
        assert_eq!(RunConfig::from_yaml(&yaml).unwrap().sha256().unwrap(), cfg.sha256().unwrap());
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        for (set, key) in [
            ("train.lrr=1", "lrr"),
            ("model.n_layer=2", "n_layer"),
            ("objective.shedule=linear", "shedule"),
            ("data.pth=x", "pth"),
            ("extra=1", "extra"),
        ] {
            let err = format!("{:#}", RunConfig::from_yaml_with(BASE, &[set.into()]).unwrap_err());
            assert!(err.contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn overrides_parse_yaml_values_and_reject_bad_paths() {
        let cfg =
            RunConfig::from_yaml_with(BASE, &["objective={kind: md4, schedule: {kind: cosine}}".into()])
                .unwrap();
        assert_eq!(cfg.objective, ObjectiveConfig::Md4 { schedule: MaskingSchedule::Cosine });
        let cfg = RunConfig::from_yaml_with(BASE, &["train.clip=1.5".into()]).unwrap();
        assert_eq!(cfg.train.clip, Some(1.5));
        assert!(RunConfig::from_yaml_with(BASE, &["train.steps.x=1".into()]).is_err());
        assert!(RunConfig::from_yaml_with(BASE, &["no-equals-sign".into()]).is_err());
    }

    #[test]
    fn cross_field_checks() {
        let err = format!("{:#}", RunConfig::from_yaml_with(BASE, &["train.accum=3".into()]).unwrap_err());
        assert!(err.contains("must divide"), "{err}");
        let err =
            format!("{:#}", RunConfig::from_yaml_with(BASE, &["model.vocab_size=50".into()]).unwrap_err());
        assert!(err.contains("vocabulary"), "{err}");
    }

    #[test]
    fn the_old_bf16_key_names_its_replacement() {
        for (old, hint) in [("true", "precision: bf16"), ("false", "precision: f32")] {
            let err =
                format!("{:#}", RunConfig::from_yaml_with(BASE, &[format!("train.bf16={old}")]).unwrap_err());
            assert!(err.contains("train.precision") && err.contains(hint), "{err}");
        }
        // Without the key, precision defaults to auto; every value parses.
        let text = BASE.replace("  precision: f32\n", "");
        assert_eq!(RunConfig::from_yaml(&text).unwrap().train.precision, ComputePrecision::Auto);
        for p in ["auto", "f32", "bf16"] {
            let cfg = RunConfig::from_yaml_with(BASE, &[format!("train.precision={p}")]).unwrap();
            assert_eq!(cfg.train.precision.name(), p);
        }
        assert!(RunConfig::from_yaml_with(BASE, &["train.precision=f16".into()]).is_err());
    }

    #[test]
    fn a_sub_vocabulary_fixes_the_model_vocabulary() {
        let data = "data={source: dataset, name: english-mix, train_split: train, eval_split: null, vocab: {size: 4096, from: english-mix}}";
        let err = format!("{:#}", RunConfig::from_yaml_with(BASE, &[data.into()]).unwrap_err());
        assert!(err.contains("4096") && err.contains("model.vocab_size"), "{err}");
        let cfg = RunConfig::from_yaml_with(BASE, &[data.into(), "model.vocab_size=4096".into()]).unwrap();
        let v = cfg.data.sub_vocab().unwrap();
        assert_eq!((v.size, v.from.as_str(), v.split.as_str()), (4096, "english-mix", "train"));
        // Round trip through YAML keeps it; a misspelt key inside is an error naming it.
        assert_eq!(RunConfig::from_yaml(&cfg.to_yaml().unwrap()).unwrap(), cfg);
        let bad = data.replace("from:", "form:");
        let err = format!(
            "{:#}",
            RunConfig::from_yaml_with(BASE, &[bad, "model.vocab_size=4096".into()]).unwrap_err()
        );
        assert!(err.contains("form"), "{err}");
    }
}
