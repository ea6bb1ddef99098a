//! Hugging Face Hub sources (spec §9, §11.1) through hf-hub 1.0's blocking client, plus the
//! parquet / JSON-lines readers that turn Hub files into rows. hf-hub does not read
//! `HF_HUB_OFFLINE`, so it is mapped here to cache-only lookups. `--from DIR` bypasses the Hub:
//! files are taken from `DIR/<path in repo>` or `DIR/<file name>`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use hf_hub::{HFClientBuilder, HFClientSync, HFError};
use polars::prelude::{DataFrame, DataType, ParquetReader, SerReader};

/// Whether `HF_HUB_OFFLINE` asks for cache-only operation (`1`, `true`, `yes`, `on`).
pub fn hub_offline_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Resolves Hub files to local paths.
pub struct HubFetcher {
    client: HFClientSync,
    offline: bool,
    from_dir: Option<PathBuf>,
}

impl std::fmt::Debug for HubFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubFetcher")
            .field("offline", &self.offline)
            .field("from_dir", &self.from_dir)
            .finish()
    }
}

impl HubFetcher {
    /// A fetcher using `cache_dir` (default: hf-hub's `HF_HUB_CACHE` → `$HF_HOME/hub` → `~/.cache`);
    /// `offline` (or `HF_HUB_OFFLINE=1`) restricts it to the local cache.
    pub fn new(cache_dir: Option<PathBuf>, offline: bool, from_dir: Option<PathBuf>) -> Result<Self> {
        let mut builder = HFClientBuilder::new();
        if let Some(dir) = cache_dir {
            builder = builder.cache_dir(dir);
        }
        let client =
            builder.build_sync().map_err(|e| anyhow!("creating the hugging face hub client: {e}"))?;
        Ok(Self { client, offline: offline || hub_offline_env(), from_dir })
    }

    /// Local path of `file` in dataset repository `repo` (`owner/name`) at `revision`.
    pub fn fetch(&self, repo: &str, revision: &str, file: &str) -> Result<PathBuf> {
        if let Some(dir) = &self.from_dir {
            let base = Path::new(file).file_name().map(PathBuf::from).unwrap_or_default();
            for candidate in [dir.join(file), dir.join(base)] {
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
            bail!("{file} of {repo} is not in {} (looked for {file} and its file name)", dir.display());
        }
        let (owner, name) =
            repo.split_once('/').ok_or_else(|| anyhow!("hub repo {repo:?} must be owner/name"))?;
        let result = self
            .client
            .dataset(owner, name)
            .download_file()
            .filename(file)
            .revision(revision.to_string())
            .local_files_only(self.offline)
            .send();
        match result {
            Ok(path) => Ok(path),
            Err(HFError::LocalEntryNotFound { .. }) => bail!(
                "{repo}@{revision}/{file} is not in the local hugging face cache and offline mode is on \
                 (HF_HUB_OFFLINE or --offline); download it once online or pass --from DIR"
            ),
            Err(e) => {
                Err(anyhow!("{e}")).with_context(|| format!("fetching {repo}@{revision}/{file} from the hub"))
            }
        }
    }
}

fn read_parquet(path: &Path, column: &str) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    ParquetReader::new(file)
        .with_columns(Some(vec![column.to_string()]))
        .finish()
        .with_context(|| format!("{}: reading parquet column {column:?}", path.display()))
}

/// Rows of a string column (nulls become empty rows, which still get their EOS).
pub fn read_parquet_strings(path: &Path, column: &str) -> Result<Vec<String>> {
    let df = read_parquet(path, column)?;
    let series = df.column(column)?.as_materialized_series();
    let ca = series
        .str()
        .with_context(|| format!("{}: column {column:?} is not a string column", path.display()))?;
    Ok(ca.iter().map(|v| v.unwrap_or_default().to_string()).collect())
}

/// Number of rows of a parquet file (from its metadata).
pub fn parquet_num_rows(path: &Path) -> Result<usize> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    ParquetReader::new(file)
        .num_rows()
        .with_context(|| format!("{}: reading parquet metadata", path.display()))
}

/// Encoded images of an image column: a `{bytes, path}` struct (the `datasets` Image feature) or
/// a plain binary column.
pub fn read_parquet_images(path: &Path, column: &str) -> Result<Vec<Vec<u8>>> {
    let df = read_parquet(path, column)?;
    let series = df.column(column)?.as_materialized_series().clone();
    let bytes = match series.dtype() {
        DataType::Struct(_) => series
            .struct_()?
            .field_by_name("bytes")
            .with_context(|| format!("{}: image column {column:?} has no \"bytes\" field", path.display()))?,
        DataType::Binary => series,
        other => bail!(
            "{}: column {column:?} has type {other}, expected an image struct or binary",
            path.display()
        ),
    };
    let ca = bytes.binary().with_context(|| format!("{}: image bytes are not binary", path.display()))?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| v.map(<[u8]>::to_vec).ok_or_else(|| anyhow!("{}: image {i} is null", path.display())))
        .collect()
}

/// Rows of a JSON-lines file (`field` of every object; blank lines are skipped).
pub fn read_jsonl_strings(path: &Path, field: &str) -> Result<Vec<String>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: reading line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {} is not json", path.display(), i + 1))?;
        let text = value
            .get(field)
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("{}: line {} has no string field {field:?}", path.display(), i + 1))?;
        rows.push(text.to_string());
    }
    Ok(rows)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use polars::prelude::{IntoSeries, NamedFrom, ParquetWriter, Series, StructChunked, df};

    /// Writes `file` into a hand-built hub cache (`datasets--owner--name/{refs,snapshots}`), the
    /// layout hf-hub reads in cache-only mode.
    pub(crate) fn put_in_cache(cache: &Path, repo: &str, file: &str, bytes: &[u8]) {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let folder = cache.join(format!("datasets--{}", repo.replace('/', "--")));
        std::fs::create_dir_all(folder.join("refs")).unwrap();
        std::fs::write(folder.join("refs/main"), commit).unwrap();
        let path = folder.join("snapshots").join(commit).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub(crate) fn parquet_bytes(mut df: DataFrame) -> Vec<u8> {
        let mut out = Vec::new();
        ParquetWriter::new(&mut out).finish(&mut df).unwrap();
        out
    }

    #[test]
    fn cache_only_fetch_reads_a_local_hub_cache() {
        let dir = tempfile::tempdir().unwrap();
        let df = df!("text" => &["first row", "", "third"]).unwrap();
        put_in_cache(
            dir.path(),
            "Salesforce/wikitext",
            "wikitext-2-raw-v1/test-00000-of-00001.parquet",
            &parquet_bytes(df),
        );
        let hub = HubFetcher::new(Some(dir.path().to_path_buf()), true, None).unwrap();
        let path = hub
            .fetch("Salesforce/wikitext", "main", "wikitext-2-raw-v1/test-00000-of-00001.parquet")
            .unwrap();
        assert_eq!(read_parquet_strings(&path, "text").unwrap(), ["first row", "", "third"]);
        assert_eq!(parquet_num_rows(&path).unwrap(), 3);
        let err = format!("{:#}", hub.fetch("Salesforce/wikitext", "main", "missing.parquet").unwrap_err());
        assert!(err.contains("offline") && err.contains("--from"), "{err}");
        assert!(read_parquet_strings(&path, "nope").is_err());
    }

    #[test]
    fn from_dir_overrides_the_hub() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lambada_test.jsonl"), "{\"text\": \"a b\"}\n\n{\"text\": \"c\"}\n")
            .unwrap();
        let hub =
            HubFetcher::new(Some(dir.path().join("cache")), true, Some(dir.path().to_path_buf())).unwrap();
        let path = hub.fetch("EleutherAI/lambada_openai", "main", "data/lambada_test.jsonl").unwrap();
        assert_eq!(read_jsonl_strings(&path, "text").unwrap(), ["a b", "c"]);
        assert!(read_jsonl_strings(&path, "sentence").unwrap_err().to_string().contains("sentence"));
    }

    #[test]
    fn image_columns_as_struct_or_binary() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Vec<&[u8]> = vec![b"png-1", b"png-22"];
        let bytes = Series::new("bytes".into(), blobs.clone());
        let paths = Series::new("path".into(), vec!["a.png", "b.png"]);
        let img = StructChunked::from_series("img".into(), 2, [bytes, paths].iter()).unwrap().into_series();
        let df =
            DataFrame::new(2, vec![img.into(), Series::new("label".into(), vec![3i64, 8]).into()]).unwrap();
        let p = dir.path().join("s.parquet");
        std::fs::write(&p, parquet_bytes(df)).unwrap();
        assert_eq!(read_parquet_images(&p, "img").unwrap(), [b"png-1".to_vec(), b"png-22".to_vec()]);
        let df = DataFrame::new(2, vec![Series::new("image".into(), blobs).into()]).unwrap();
        let p = dir.path().join("b.parquet");
        std::fs::write(&p, parquet_bytes(df)).unwrap();
        assert_eq!(read_parquet_images(&p, "image").unwrap().len(), 2);
        assert!(read_parquet_images(&p, "label").is_err());
    }
}
