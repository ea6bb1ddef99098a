//! Where prepared data lives and the small file utilities every loader shares: the cache root
//! ([`data_root`], env `MD4_DATA_DIR`), the manifest folder ([`datasets_dir`]), sha256 / md5
//! hashing, atomic writes (temp file + fsync + rename) and progress bars.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};

/// Environment variable that overrides the cache root.
pub const DATA_DIR_ENV: &str = "MD4_DATA_DIR";
/// Environment variable that overrides the manifest folder.
pub const DATASETS_DIR_ENV: &str = "MD4_DATASETS_DIR";

/// The workspace root: the nearest ancestor of the current directory that holds `datasets/` and a
/// `Cargo.toml`, else the workspace this crate was compiled in (two levels above its manifest).
pub fn workspace_root() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("datasets").is_dir() && dir.join("Cargo.toml").is_file() {
                return dir.to_path_buf();
            }
        }
    }
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR"));
    compiled.parent().and_then(Path::parent).unwrap_or(compiled).to_path_buf()
}

/// Cache directory for downloads and prepared data: `$MD4_DATA_DIR`, default `<workspace>/data`
/// (gitignored).
pub fn data_root() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("data"),
    }
}

/// Where users' own files (`--data text:PATH`, …) are tokenised to: `<data root>/local`.
pub fn local_cache_dir() -> PathBuf {
    data_root().join("local")
}

/// Folder of the dataset manifests: `$MD4_DATASETS_DIR`, default `<workspace>/datasets`.
pub fn datasets_dir() -> PathBuf {
    match std::env::var_os(DATASETS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("datasets"),
    }
}

/// Lowercase hex sha256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex md5 of a byte slice (only for comparing with published md5 sums).
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// Streaming sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks a file's sha256 against an expected lowercase hex digest.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(path)?;
    anyhow::ensure!(
        got.eq_ignore_ascii_case(expected),
        "sha256 mismatch for {}: expected {expected}, got {got}",
        path.display()
    );
    Ok(())
}

/// The temporary sibling a file is written to before it is renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = temp_path(path);
    {
        let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    }
    rename_synced(&tmp, path)
}

/// Renames `from` onto `to` and fsyncs the destination folder so the rename is durable.
pub fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    if let Some(parent) = to.parent()
        && let Ok(dir) = File::open(parent)
    {
        // Folder fsync is best effort: some file systems refuse it, and the data itself is synced.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A progress bar over `len` units (hidden when `enabled` is false).
pub fn progress_bar(len: u64, message: &str, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>24} [{bar:30}] {human_pos}/{human_len} ({eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}

/// A spinner for steps of unknown length (hidden when `enabled` is false).
pub fn spinner(message: &str, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // Published test vectors (FIPS 180-2 and RFC 1321).
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn atomic_write_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.bin");
        write_atomic(&path, b"abc").unwrap();
        verify_sha256(&path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad").unwrap();
        let err = verify_sha256(&path, &"0".repeat(64)).unwrap_err().to_string();
        assert!(err.contains("sha256 mismatch") && err.contains("x.bin"), "{err}");
        assert!(!temp_path(&path).exists());
    }
}
