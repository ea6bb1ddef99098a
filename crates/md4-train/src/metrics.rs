//! What a run directory records besides checkpoints (style rule 10): `metrics.jsonl` (one JSON
//! object per line: training loss in bits per token, learning rate, tokens/s, wall time, and
//! validation with the EMA weights) and `run.json` (seed, git commit, library versions, device
//! and every session that trained the run).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use tch::Device;

/// The tch crate this workspace pins (checked against Cargo.toml by a test).
pub const TCH_VERSION: &str = "0.24.0";

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    /// None: a log that writes nothing (ranks other than 0 of a data-parallel run).
    file: Option<File>,
}

impl MetricsLog {
    /// Open `path` for appending. Lines whose `step` is beyond `keep_through` (written after
    /// the checkpoint a run resumes from) are dropped first, so the file describes one history.
    pub fn open(path: &Path, keep_through: i64) -> Result<Self> {
        if path.exists() {
            let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(Value::as_i64))
                        .is_some_and(|s| s <= keep_through)
                })
                .collect();
            if kept.len() != text.lines().count() {
                let tmp = path.with_extension("jsonl.tmp");
                let mut body = kept.join("\n");
                if !body.is_empty() {
                    body.push('\n');
                }
                fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
                fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { path: path.to_path_buf(), file: Some(file) })
    }

    /// A log that discards every line (for ranks other than 0).
    pub fn discard() -> Self {
        Self { path: PathBuf::new(), file: None }
    }

    /// Append one JSON object as a line.
    pub fn append(&mut self, value: &Value) -> Result<()> {
        let Some(file) = &mut self.file else { return Ok(()) };
        writeln!(file, "{value}").with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Read every line of a metrics file.
pub fn read_metrics(path: &Path) -> Result<Vec<Value>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}: bad line {l}", path.display())))
        .collect()
}

/// A run's history without what depends on the machine or the session (the `session` lines,
/// throughput and wall time): two runs that took the same updates give equal lists.
pub fn history(path: &Path) -> Result<Vec<String>> {
    Ok(read_metrics(path)?
        .into_iter()
        .filter(|l| l["kind"] != "session")
        .map(|mut l| {
            if let Some(o) = l.as_object_mut() {
                o.remove("tokens_per_s");
                o.remove("wall_s");
            }
            l.to_string()
        })
        .collect())
}

/// One process that trained the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Unix seconds when the session started.
    pub started: f64,
    /// The step it started from.
    pub from_step: i64,
    pub device: String,
    pub threads: i32,
    /// The arithmetic of the networks (`bf16 (auto: …)`); absent in runs from before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// Data-parallel ranks (1: one process; absent in runs from before it was recorded).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: usize,
    pub git_commit: String,
    pub command: String,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// `run.json`: provenance of a run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub seed: u64,
    /// sha256 of the resolved `config.yaml`.
    pub config_sha256: String,
    pub objective: String,
    pub model_parameters: i64,
    pub data: String,
    pub tch_version: String,
    pub libtorch_version: String,
    pub md4_version: String,
    pub sessions: Vec<Session>,
}

impl RunRecord {
    pub fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
    /// Write atomically (temporary file, rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    }
}

/// `git rev-parse HEAD` in the current directory, or "unknown".
pub fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A device in words (`cpu`, `cuda:0`).
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => md4_torch::describe(device),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A new session entry for now.
pub fn session(from_step: i64, device: Device, precision: &md4_models::PrecisionChoice) -> Session {
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    Session {
        started,
        from_step,
        device: device_name(device),
        threads: tch::get_num_threads(),
        precision: Some(precision.describe()),
        world_size: 1,
        git_commit: git_commit(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resuming_drops_lines_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::open(&path, 0).unwrap();
        for step in 1..=6 {
            log.append(&json!({"step": step, "loss_bits": 1.0})).unwrap();
        }
        drop(log);
        let mut log = MetricsLog::open(&path, 4).unwrap();
        log.append(&json!({"step": 5, "loss_bits": 2.0})).unwrap();
        let lines = read_metrics(&path).unwrap();
        let steps: Vec<i64> = lines.iter().map(|v| v["step"].as_i64().unwrap()).collect();
        assert_eq!(steps, vec![1, 2, 3, 4, 5]);
        assert_eq!(lines[4]["loss_bits"], 2.0);
    }

    /// The recorded tch version is the one the workspace pins.
    #[test]
    fn tch_version_matches_the_workspace_pin() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let text = fs::read_to_string(manifest).unwrap();
        assert!(
            text.contains(&format!("tch = \"={TCH_VERSION}\"")),
            "workspace does not pin tch {TCH_VERSION}"
        );
    }
}
