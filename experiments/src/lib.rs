//! Shared plumbing of the per-artifact binaries (issue 5 §3): scales, output directories
//! `results/<artifact>/<scale>/`, run records, per-scale YAML configs, the artifact registry
//! with its tidy check, and the pure-math figures (spec §10.8, Fig. 1 and Fig. 2 right).
//!
//! Binaries stay thin: parse arguments, load the config for their scale, call the libraries,
//! write the outputs and a `record.yaml` into their artifact directory.

pub mod artifact;
pub mod context;
pub mod figures;
pub mod genppl;
pub mod images;
pub mod lm;
pub mod references;
pub mod suite;
pub mod text8;
pub mod tidy;
pub mod zeroshot;

pub use artifact::{
    ArtifactArgs, ArtifactDir, Run, RunRecord, Scale, config_path, load_config, workspace_root,
};
pub use context::{ArtifactContext, NoFlags, RowFlags, StepsFlags, main};
pub use tidy::{ARTIFACTS, Artifact, tidy_check};

/// A fresh scratch directory for a test, removed when dropped (experiments has no tempfile
/// dev-dependency).
#[cfg(test)]
pub(crate) struct ScratchDir(std::path::PathBuf);

#[cfg(test)]
impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
pub(crate) fn scratch_dir(name: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("md4-experiments-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    ScratchDir(dir)
}
