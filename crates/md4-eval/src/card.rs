//! Protocol cards (issue 5 §1, style rule 10): a YAML file beside every number saying exactly
//! how it was measured — data split and token hash, tokenizer, sequence length, sequences and
//! Monte-Carlo passes, EMA, bound, schedule and grid, sampling precision, scale, commit,
//! command line, wall time, device and libtorch version (spec §3.5, §11).

use crate::likelihood::EvalResult;
use crate::provenance;
use crate::units::Unit;
use anyhow::{Context, Result};
use md4_core::{Grid, Precision, SamplerConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Device;

/// Which negative-ELBO bound (or exact likelihood) a number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Bound {
    /// The continuous-time bound L_∞ (spec §3.3, eq. 5).
    Continuous,
    /// The T-step Riemann-sum bound (spec §3.4, Table 7).
    FiniteT { steps: i64 },
    /// An exact likelihood (autoregressive models).
    Exact,
}

/// The evaluation data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataProtocol {
    /// Data set name (`text8`, `openwebtext`, `wikitext2`, …).
    pub dataset: String,
    pub split: String,
    /// sha256 of the evaluation tokens ([`crate::tokens_sha256`] or the data cache's own hash).
    pub tokens_sha256: String,
    pub tokenizer: String,
    pub sequence_length: usize,
    pub n_sequences: usize,
    /// How the sequences were cut, and that none were dropped (or which were, and why).
    pub chunking: String,
}

/// The time sampling of every evaluation since issue 12: one uniform t per sequence and pass,
/// with the masking uniforms, from the Philox stream keyed by (seed, pass, sequence) — the same
/// draws for every row of a table (common random numbers).
pub const KEYED_TIME_SAMPLING: &str =
    "one t per sequence per pass from the keyed stream (seed, pass, sequence), shared by every row";

/// How a likelihood number was estimated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LikelihoodProtocol {
    pub bound: Bound,
    /// Masking schedule used by the bound (`linear`, `cosine`, `genmd4 (learned w)`, `n/a` for AR).
    pub schedule: String,
    pub ema: bool,
    /// Monte-Carlo passes K over every sequence.
    pub passes: usize,
    pub batch_size: usize,
    /// Sequence i in pass p drew from the keyed stream (seed, p, i) of `md4_core::noise`.
    pub seed: i64,
    /// How t was drawn ([`KEYED_TIME_SAMPLING`], `one step of T per sequence`, …).
    pub time_sampling: String,
    pub unit: Unit,
    /// Every sequence was scored, including a last partial batch.
    pub all_sequences_scored: bool,
    pub mean: f64,
    pub standard_error: f64,
    /// The same in nats per token, before conversion.
    pub mean_nats_per_token: f64,
    pub se_nats_per_token: f64,
}

impl LikelihoodProtocol {
    /// The protocol of an [`EvalResult`], with its mean and standard error converted to `unit`.
    pub fn from_result(
        result: &EvalResult,
        bound: Bound,
        schedule: &str,
        ema: bool,
        time_sampling: &str,
        unit: Unit,
    ) -> Self {
        let (mean, standard_error) = unit.convert(result.mean_nats_per_token, result.se_nats_per_token);
        Self {
            bound,
            schedule: schedule.into(),
            ema,
            passes: result.passes,
            batch_size: result.batch_size,
            seed: result.seed,
            time_sampling: time_sampling.into(),
            unit,
            all_sequences_scored: result.per_sequence_nats.len() == result.n_sequences,
            mean,
            standard_error,
            mean_nats_per_token: result.mean_nats_per_token,
            se_nats_per_token: result.se_nats_per_token,
        }
    }
}

/// How samples were drawn, where a number involves sampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingProtocol {
    pub schedule: String,
    /// Discretisation grid (`uniform`, `cosine`, spec §5.2).
    pub grid: Grid,
    pub steps: i64,
    /// Categorical sampling precision (`f32-gumbel`, `f64`, spec §5.3).
    pub precision: Precision,
    pub top_p: Option<f64>,
    pub n_samples: usize,
    pub seed: i64,
    /// Whether the EMA weights sampled (they always should, spec §5.1).
    pub ema: bool,
    /// Network evaluations over all samples' trajectories (the argmax fill included).
    pub network_calls: i64,
}

impl SamplingProtocol {
    /// `n_samples` drawn with `sampler` from the EMA weights of a model with `schedule`
    /// (seeded with `seed`), costing `network_calls` network evaluations in all.
    pub fn new(
        schedule: &str,
        sampler: &SamplerConfig,
        n_samples: usize,
        seed: i64,
        network_calls: i64,
    ) -> Self {
        Self {
            schedule: schedule.into(),
            grid: sampler.grid,
            steps: sampler.steps,
            precision: sampler.precision,
            top_p: sampler.top_p,
            n_samples,
            seed,
            ema: true,
            network_calls,
        }
    }
}

/// Where and when it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub commit: String,
    pub worktree_dirty: Option<bool>,
    pub command_line: String,
    pub device: String,
    /// The arithmetic of the networks behind the number (`bf16 (auto: …)`), as chosen by
    /// `precision: auto | f32 | bf16`; absent on cards written before it was recorded and on
    /// cards of pure math.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    pub libtorch: String,
    pub tch: String,
    pub wall_seconds: f64,
    /// UTC time the card was written.
    pub written_at: String,
}

impl Environment {
    /// The current process's environment; `repo` is where git is asked (None: current dir),
    /// once per process ([`provenance::code_version`]).
    pub fn capture(repo: Option<&Path>, device: Device, wall_seconds: f64) -> Self {
        let (commit, worktree_dirty) = provenance::code_version(repo);
        Self {
            commit,
            worktree_dirty,
            command_line: provenance::command_line(),
            device: md4_torch::describe(device),
            precision: md4_models::compute::recorded(),
            libtorch: md4_torch::libtorch_version(),
            // The workspace pins tch =0.24.0 (Cargo.toml); tch exposes no version constant.
            tch: "0.24.0".into(),
            wall_seconds,
            written_at: provenance::utc_timestamp(std::time::SystemTime::now()),
        }
    }
}

/// The card written beside a number, a table or a figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolCard {
    /// The artifact (`table2`, `fig1`, …) and the number's name inside it (a row, a series).
    pub artifact: String,
    pub item: String,
    /// `smoke`, `small` or `paper`.
    pub scale: String,
    pub data: Option<DataProtocol>,
    pub likelihood: Option<LikelihoodProtocol>,
    pub sampling: Option<SamplingProtocol>,
    pub environment: Environment,
    /// Anything a reader needs to compare the number with the paper's.
    pub notes: Vec<String>,
}

impl ProtocolCard {
    /// A card with only the environment filled in; set the other fields directly.
    pub fn new(artifact: &str, item: &str, scale: &str, environment: Environment) -> Self {
        Self {
            artifact: artifact.into(),
            item: item.into(),
            scale: scale.into(),
            data: None,
            likelihood: None,
            sampling: None,
            environment,
            notes: Vec::new(),
        }
    }

    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).context("serialising the protocol card")
    }

    /// Write the card as YAML, creating the parent directory.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, self.to_yaml()?).with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_yaml::from_str(&text).with_context(|| format!("parsing protocol card {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> ProtocolCard {
        let environment = Environment {
            commit: "unknown".into(),
            worktree_dirty: None,
            command_line: "table2 --scale smoke".into(),
            device: "cpu (2 threads)".into(),
            precision: Some("bf16 (auto: test)".into()),
            libtorch: "2.11.0".into(),
            tch: "0.24.0".into(),
            wall_seconds: 1.5,
            written_at: "2024-06-06T12:00:00Z".into(),
        };
        let result = EvalResult {
            n_sequences: 2,
            tokens_per_sequence: 4,
            passes: 3,
            batch_size: 2,
            seed: 0,
            per_sequence_nats: vec![4.0, 8.0],
            pass_mean_nats_per_token: vec![1.5; 3],
            mean_nats_per_token: 1.5,
            se_nats_per_token: 0.5,
            wall_seconds: 0.1,
        };
        let mut card = ProtocolCard::new("table2", "MD4 (linear)", "smoke", environment);
        card.data = Some(DataProtocol {
            dataset: "text8".into(),
            split: "test".into(),
            tokens_sha256: "00".repeat(32),
            tokenizer: "text8 characters (27)".into(),
            sequence_length: 4,
            n_sequences: 2,
            chunking: "non-overlapping, none dropped".into(),
        });
        card.likelihood = Some(LikelihoodProtocol::from_result(
            &result,
            Bound::FiniteT { steps: 1000 },
            "linear",
            true,
            KEYED_TIME_SAMPLING,
            Unit::BitsPerChar,
        ));
        card.notes.push("smoke scale".into());
        card
    }

    #[test]
    fn card_round_trips_through_yaml_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/card.yaml");
        let card = example();
        card.write(&path).unwrap();
        assert_eq!(ProtocolCard::read(&path).unwrap(), card);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("kind: finite_t\n"), "{text}");
        assert!(text.contains("steps: 1000"), "{text}");
    }

    #[test]
    fn likelihood_protocol_converts_to_the_unit() {
        let card = example();
        let lik = card.likelihood.unwrap();
        assert!((lik.mean - 1.5 / std::f64::consts::LN_2).abs() < 1e-12);
        assert!((lik.standard_error - 0.5 / std::f64::consts::LN_2).abs() < 1e-12);
        assert!(lik.all_sequences_scored);
        assert_eq!(lik.passes, 3);
    }

    #[test]
    fn unknown_card_fields_are_rejected() {
        let yaml = example().to_yaml().unwrap().replace("scale: smoke", "scale: smoke\nscael: small");
        let err = serde_yaml::from_str::<ProtocolCard>(&yaml).unwrap_err();
        assert!(err.to_string().contains("scael"), "{err}");
    }
}
