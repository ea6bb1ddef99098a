//! Where a number came from (style rule 10): commit, command line, device, library versions
//! and UTC timestamps, for protocol cards and run records.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// `git rev-parse HEAD` in `dir` (or the current directory), or "unknown" (no git, no commit).
pub fn git_commit(dir: Option<&Path>) -> String {
    git(dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

/// Whether tracked files other than `results/` differ from HEAD — the code, configs and docs
/// a number depends on (an artifact rewrites its own files under `results/` before its record
/// is written, which must not count); None when git cannot tell (no git, no commit yet).
pub fn git_dirty(dir: Option<&Path>) -> Option<bool> {
    git(dir, &["rev-parse", "--verify", "HEAD"])?;
    git(dir, &["status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"])
        .map(|s| !s.is_empty())
}

/// The commit and worktree state ([`git_commit`], [`git_dirty`]) of `dir`'s repository as
/// this process first asked for them. A number's provenance is the code the process started
/// from: asked again when a card is written, git would credit a commit made during a long run
/// with numbers the process computed from the code before it. Artifacts ask at start.
pub fn code_version(dir: Option<&Path>) -> (String, Option<bool>) {
    type Seen = HashMap<Option<PathBuf>, (String, Option<bool>)>;
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    seen.entry(dir.map(Path::to_path_buf)).or_insert_with(|| (git_commit(dir), git_dirty(dir))).clone()
}

fn git(dir: Option<&Path>, args: &[&str]) -> Option<String> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The process's command line, arguments joined by spaces (quoted when they contain spaces).
pub fn command_line() -> String {
    std::env::args()
        .map(|a| if a.contains(char::is_whitespace) { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An RFC 3339 UTC timestamp, `2024-06-06T12:00:00Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_match_known_dates() {
        let at = |secs: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // `date -u -d @1717675200` → Thu Jun  6 12:00:00 UTC 2024 (the arXiv v1 date).
        assert_eq!(at(1_717_675_200), "2024-06-06T12:00:00Z");
        // A leap day: `date -u -d @951782400` → Tue Feb 29 00:00:00 UTC 2000.
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_782_400 - 1), "2000-02-28T23:59:59Z");
    }

    #[test]
    fn results_do_not_make_the_tree_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
                .args(args)
                .current_dir(d)
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q"]);
        std::fs::create_dir(d.join("results")).unwrap();
        std::fs::write(d.join("results/table.md"), "1").unwrap();
        std::fs::write(d.join("code.rs"), "1").unwrap();
        run(&["add", "."]);
        run(&["commit", "-q", "-m", "c"]);
        assert_eq!(git_dirty(Some(d)), Some(false));
        std::fs::write(d.join("results/table.md"), "2").unwrap();
        assert_eq!(git_dirty(Some(d)), Some(false), "an artifact's own outputs");
        std::fs::write(d.join("code.rs"), "2").unwrap();
        assert_eq!(git_dirty(Some(d)), Some(true));

        // The process's code version is the one it first saw: a commit made later (during a
        // long artifact run) is not credited with the process's numbers.
        let first = code_version(Some(d));
        assert_eq!(first, (git_commit(Some(d)), Some(true)));
        run(&["commit", "-q", "-am", "later"]);
        assert_ne!(git_commit(Some(d)), first.0);
        assert_eq!(code_version(Some(d)), first);
    }

    #[test]
    fn commit_outside_a_repository_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(git_commit(Some(dir.path())), "unknown");
        assert_eq!(git_dirty(Some(dir.path())), None);
    }
}
