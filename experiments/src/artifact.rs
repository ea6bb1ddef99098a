//! Scales, artifact directories, run records and per-scale configs (issue 5 §3, style rules 5
//! and 10): every artifact writes to `results/<artifact>/<scale>/` and records how it ran.

use anyhow::{Context, Result};
use md4_eval::provenance;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};
use tch::Device;

md4_core::named_enum! {
    /// How big a reproduction is: `smoke` (CI, under 2 minutes), `small` (real data on a 2-core
    /// CPU, the default), `paper` (the paper's configs, for GPUs).
    #[derive(Hash, clap::ValueEnum)]
    pub enum Scale("scale") {
        Smoke = "smoke",
        Small = "small",
        Paper = "paper",
    }
}

impl Scale {
    /// How much of the training split the "given train" compressor references condition on:
    /// all of it, except at smoke scale (CI), where the last 1 MiB keeps xz's cost to seconds.
    pub fn reference_train_cap(&self) -> Option<usize> {
        match self {
            Self::Smoke => Some(1 << 20),
            Self::Small | Self::Paper => None,
        }
    }
}

/// The flags every artifact binary that trains or evaluates takes (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug)]
pub struct ArtifactArgs {
    /// Reproduction scale: smoke (CI), small (2-core CPU, real data) or paper (GPU cluster).
    #[arg(long, value_enum, default_value_t = Scale::Small)]
    pub scale: Scale,
    /// Output directory [default: results/<artifact>/<scale>/ under the workspace root].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device for training, evaluation and sampling, and libtorch's CPU threads.
    #[command(flatten)]
    pub device: md4_torch::DeviceArgs,
}

impl ArtifactArgs {
    /// Open `--device` (loading CUDA when asked) and set libtorch's thread count.
    pub fn device(&self) -> anyhow::Result<tch::Device> {
        self.device.open()
    }
}

/// The workspace root: the nearest ancestor of the current directory whose `Cargo.toml` is
/// this workspace's (it declares `[workspace]` and has `experiments/`), else the root this
/// crate was built from.
pub fn workspace_root() -> PathBuf {
    let is_root = |dir: &Path| {
        std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
            && dir.join("experiments").is_dir()
    };
    if let Ok(cwd) = std::env::current_dir()
        && let Some(dir) = cwd.ancestors().find(|d| is_root(d))
    {
        return dir.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The output directory of one artifact at one scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactDir {
    pub artifact: String,
    pub scale: Scale,
    pub path: PathBuf,
}

impl ArtifactDir {
    /// `<root>/results/<artifact>/<scale>/`.
    pub fn new(root: &Path, artifact: &str, scale: Scale) -> Self {
        let path = root.join("results").join(artifact).join(scale.name());
        Self { artifact: artifact.into(), scale, path }
    }

    /// `out` if given (a binary's `--out`), else the standard directory under the workspace root.
    pub fn resolve(out: Option<&Path>, artifact: &str, scale: Scale) -> Self {
        match out {
            Some(path) => Self { artifact: artifact.into(), scale, path: path.to_path_buf() },
            None => Self::new(&workspace_root(), artifact, scale),
        }
    }

    /// Create the directory (and its parents).
    pub fn create(&self) -> Result<&Self> {
        std::fs::create_dir_all(&self.path).with_context(|| format!("creating {}", self.path.display()))?;
        Ok(self)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// `<root>/experiments/configs/<artifact>/<scale>.yaml`.
pub fn config_path(root: &Path, artifact: &str, scale: Scale) -> PathBuf {
    root.join("experiments").join("configs").join(artifact).join(format!("{scale}.yaml"))
}

/// Load an artifact's config for a scale into `T` (declare `T` with
/// `#[serde(deny_unknown_fields)]`, so that a typo is an error naming the key).
pub fn load_config<T: DeserializeOwned>(root: &Path, artifact: &str, scale: Scale) -> Result<T> {
    let path = config_path(root, artifact, scale);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading config {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
}

/// A run in progress: when it started, for the record.
#[derive(Debug)]
pub struct Run {
    pub artifact: String,
    pub scale: Scale,
    started: SystemTime,
    clock: Instant,
}

impl Run {
    pub fn start(artifact: &str, scale: Scale) -> Self {
        md4_train::tune_allocator();
        // Pin the commit and worktree state the numbers will be credited to: the code now.
        provenance::code_version(Some(&workspace_root()));
        Self { artifact: artifact.into(), scale, started: SystemTime::now(), clock: Instant::now() }
    }

    /// Seconds since [`Run::start`].
    pub fn elapsed(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    /// The finished run's record, written as `record.yaml` in `dir`; `outputs` are the files the
    /// run wrote (stored relative to `dir` where possible).
    pub fn finish(&self, dir: &ArtifactDir, device: Device, outputs: &[PathBuf]) -> Result<RunRecord> {
        let (commit, worktree_dirty) = provenance::code_version(Some(&workspace_root()));
        let record = RunRecord {
            artifact: self.artifact.clone(),
            scale: self.scale,
            command_line: provenance::command_line(),
            commit,
            worktree_dirty,
            started: provenance::utc_timestamp(self.started),
            ended: provenance::utc_timestamp(SystemTime::now()),
            wall_seconds: self.elapsed(),
            device: md4_torch::describe(device),
            libtorch: md4_torch::libtorch_version(),
            outputs: outputs
                .iter()
                .map(|p| p.strip_prefix(&dir.path).unwrap_or(p).display().to_string())
                .collect(),
        };
        record.write(&dir.file("record.yaml"))?;
        Ok(record)
    }
}

/// How an artifact run went: `record.yaml` in its directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub artifact: String,
    pub scale: Scale,
    pub command_line: String,
    pub commit: String,
    pub worktree_dirty: Option<bool>,
    /// RFC 3339 UTC.
    pub started: String,
    pub ended: String,
    pub wall_seconds: f64,
    pub device: String,
    pub libtorch: String,
    pub outputs: Vec<String>,
}

impl RunRecord {
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = serde_yaml::to_string(self).context("serialising the run record")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_yaml::from_str(&text).with_context(|| format!("parsing run record {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_parses_and_displays() {
        for scale in Scale::ALL {
            assert_eq!(scale.to_string().parse::<Scale>().unwrap(), scale);
            assert_eq!(serde_yaml::to_string(&scale).unwrap().trim(), scale.name());
            assert_eq!(<Scale as clap::ValueEnum>::from_str(scale.name(), false).unwrap(), scale);
        }
        assert!("Small".parse::<Scale>().unwrap_err().to_string().contains("'Small'"));
    }

    #[test]
    fn workspace_root_is_this_workspace() {
        let root = workspace_root();
        assert!(root.join("experiments/Cargo.toml").is_file(), "{}", root.display());
        assert!(root.join("crates/md4-eval").is_dir());
        let dir = ArtifactDir::new(&root, "fig1", Scale::Smoke);
        assert_eq!(dir.path, root.join("results/fig1/smoke"));
        assert_eq!(
            ArtifactDir::resolve(Some(Path::new("/tmp/x")), "fig1", Scale::Paper).path,
            Path::new("/tmp/x")
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Toy {
        steps: usize,
        schedule: String,
    }

    #[test]
    fn configs_load_and_typos_name_the_key() {
        let root = crate::scratch_dir("configs");
        let path = config_path(&root, "toy", Scale::Small);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "steps: 3\nschedule: cosine\n").unwrap();
        let toy: Toy = load_config(&root, "toy", Scale::Small).unwrap();
        assert_eq!(toy, Toy { steps: 3, schedule: "cosine".into() });
        std::fs::write(&path, "steps: 3\nschedul: cosine\n").unwrap();
        let err = load_config::<Toy>(&root, "toy", Scale::Small).unwrap_err();
        assert!(format!("{err:#}").contains("schedul"), "{err:#}");
        let missing = load_config::<Toy>(&root, "toy", Scale::Paper).unwrap_err();
        assert!(format!("{missing:#}").contains("paper.yaml"));
    }

    #[test]
    fn run_record_round_trips() {
        let out = crate::scratch_dir("record");
        let dir = ArtifactDir::resolve(Some(&out.join("fig1/smoke")), "fig1", Scale::Smoke);
        dir.create().unwrap();
        let run = Run::start("fig1", Scale::Smoke);
        let record = run.finish(&dir, Device::Cpu, &[dir.file("fig1_alpha.png")]).unwrap();
        assert_eq!(record.outputs, vec!["fig1_alpha.png".to_string()]);
        assert_eq!(RunRecord::read(&dir.file("record.yaml")).unwrap(), record);
        assert!(record.started <= record.ended);
        assert!(record.device.starts_with("cpu"));
    }
}
