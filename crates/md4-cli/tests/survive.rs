//! Runs that survive anything (issue 15), end to end through the `md4` binary on a tiny model:
//! SIGKILL at random moments, SIGTERM (preemption), a file-size limit standing in for a full
//! disk, and a second writer on the same run directory. Every interrupted run is resumed and
//! must end bit-identical (every tensor: weights, EMA, AdamW moments) to an uninterrupted one,
//! with `metrics.jsonl` holding each training step exactly once.
//! `MD4_SOAK_KILLS=N` (default 5; `just soak` uses 50) sets the number of SIGKILLs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// SIGKILLs in the crash test: `MD4_SOAK_KILLS`, default 5.
fn kills() -> usize {
    std::env::var("MD4_SOAK_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(5)
}

/// Training steps of every run here: enough for every kill to land mid-training.
fn steps() -> i64 {
    120.max(15 * kills() as i64)
}

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/text8-tiny.yaml")
}

/// A scratch directory with a generated corpus.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::corpus(dir.path(), 11, 3000);
    dir
}

fn train_args(run: &str, ckpt_every: i64) -> Vec<String> {
    let mut a: Vec<String> =
        ["train", "--config", config().to_str().unwrap(), "--data", "text:corpus.txt", "--holdout", "0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    a.extend(["--run-dir".into(), run.into(), "--quiet".into(), "--threads".into(), "1".into()]);
    for set in [
        format!("train.steps={}", steps()),
        "train.batch=4".into(),
        "train.seq_len=32".into(),
        "train.warmup=1".into(),
        format!("train.ckpt_every={ckpt_every}"),
        "train.eval_every=0".into(),
        "train.log_every=1".into(),
        "train.keep_last=2".into(),
    ] {
        a.extend(["--set".into(), set]);
    }
    a
}

fn command(dir: &Path, args: &[String]) -> Command {
    let mut c = Command::new(common::md4_bin());
    c.args(args).current_dir(dir).env("MD4_DATA_DIR", dir.join("data-cache"));
    c
}

fn run(dir: &Path, args: &[String]) -> Output {
    command(dir, args).output().expect("running md4")
}

fn spawn(dir: &Path, args: &[String]) -> Child {
    command(dir, args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("starting md4")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn final_checkpoint(dir: &Path, run: &str) -> md4_train::Checkpoint {
    let ckpt =
        md4_train::load_latest_valid(&dir.join(run).join("checkpoints")).unwrap().expect("a checkpoint");
    assert_eq!(ckpt.step, steps(), "{run} did not finish");
    ckpt
}

/// Every tensor of `run`'s final checkpoint equals the uninterrupted reference's, and its
/// metrics list each training step once.
fn assert_same_as_reference(dir: &Path, run: &str) {
    let (a, b) = (final_checkpoint(dir, "reference"), final_checkpoint(dir, run));
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (name, t) in &a.tensors {
        assert!(t.equal(&b.tensors[name]), "{run}: {name} differs from the uninterrupted run");
    }
    let metrics = md4_train::metrics::read_metrics(&dir.join(run).join("metrics.jsonl")).unwrap();
    let logged: Vec<i64> =
        metrics.iter().filter(|m| m["kind"] == "train").map(|m| m["step"].as_i64().unwrap()).collect();
    assert_eq!(logged, (1..=steps()).collect::<Vec<_>>(), "{run}: training steps in metrics.jsonl");
}

fn reference(dir: &Path) {
    let out = run(dir, &train_args("reference", 10));
    assert!(out.status.success(), "{}", stderr(&out));
}

fn newest_step(dir: &Path, run: &str) -> i64 {
    md4_train::checkpoint::list_checkpoints(&dir.join(run).join("checkpoints"))
        .map(|l| l.last().map_or(0, |(s, _)| *s))
        .unwrap_or(0)
}

fn logged_step(dir: &Path, run: &str) -> i64 {
    let text = std::fs::read_to_string(dir.join(run).join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["kind"] == "train")
        .filter_map(|m| m["step"].as_i64())
        .max()
        .unwrap_or(0)
}

fn wait_for_step(dir: &Path, run: &str, step: i64, child: &mut Child) {
    let start = Instant::now();
    while logged_step(dir, run) < step {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("md4 exited ({status}) before step {step}");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no step {step} within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_at_random_moments_then_resume_is_bit_exact() {
    let dir = setup();
    let d = dir.path();
    reference(d);
    let kills = kills();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut landed = 0;
    for _ in 0..kills {
        let before = newest_step(d, "killed");
        if before >= steps() {
            break;
        }
        let mut child = spawn(d, &train_args("killed", 10));
        // Wait until training is under way, then a random few more milliseconds.
        wait_for_step(d, "killed", (logged_step(d, "killed") + 1).min(steps()), &mut child);
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(5 + (state >> 33) % 400));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            landed += 1;
        }
        child.wait().unwrap();
    }
    let out = run(d, &train_args("killed", 10));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(landed >= kills.min(3), "only {landed} of {kills} kills landed while training");
    eprintln!("{landed} SIGKILLs landed mid-training, each resumed");
    assert_same_as_reference(d, "killed");
}

#[test]
fn sigterm_checkpoints_at_the_signal_and_exits_with_the_interrupted_status() {
    let dir = setup();
    let d = dir.path();
    reference(d);
    // Checkpoints only every 1000 updates: the one written at the signal is the only one.
    let args = train_args("preempted", 1000);
    let mut child = spawn(d, &args);
    wait_for_step(d, "preempted", 7, &mut child);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(md4_train::guard::INTERRUPTED_EXIT_CODE), "{}", stderr(&out));
    assert!(stderr(&out).contains("resume with the same command"), "{}", stderr(&out));
    let metrics = md4_train::metrics::read_metrics(&d.join("preempted/metrics.jsonl")).unwrap();
    let at = metrics
        .iter()
        .find(|m| m["kind"] == "interrupted")
        .and_then(|m| m["step"].as_i64())
        .expect("an interrupted line");
    assert!(at >= 7 && at < steps());
    assert_eq!(newest_step(d, "preempted"), at, "the checkpoint is at the signal's step");
    let out = run(d, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_as_reference(d, "preempted");
}

#[test]
fn a_full_disk_is_a_clear_error_that_loses_nothing() {
    let dir = setup();
    let d = dir.path();
    reference(d);
    let args = train_args("full", 10);
    let mut first = args.clone();
    first.extend(["--stop-at".into(), "10".into()]);
    assert!(run(d, &first).status.success());
    // A file-size limit far below a checkpoint (SIGXFSZ ignored, so writes fail with EFBIG).
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f 256; exec "$0" "$@""#)
        .arg(common::md4_bin())
        .args(&args)
        .current_dir(d)
        .env("MD4_DATA_DIR", d.join("data-cache"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("writing checkpoint") && err.contains("ckpt-000000020"), "{err}");
    assert!(err.contains("File too large"), "the operating system's reason is named: {err}");
    let ckpts = d.join("full/checkpoints");
    let names: Vec<String> = std::fs::read_dir(&ckpts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "a temporary stayed behind: {names:?}");
    assert_eq!(
        md4_train::load_latest_valid(&ckpts).unwrap().unwrap().step,
        10,
        "the previous checkpoint is intact"
    );
    // A temporary left by a crash (not by us) is cleaned when training starts again.
    std::fs::write(ckpts.join(".ckpt-000000099.safetensors.tmp"), b"half").unwrap();
    let out = run(d, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!ckpts.join(".ckpt-000000099.safetensors.tmp").exists());
    assert_same_as_reference(d, "full");
}

#[test]
fn a_second_writer_is_refused_and_a_killed_writers_lock_is_released() {
    let dir = setup();
    let d = dir.path();
    let args = train_args("shared", 10);
    let mut first = spawn(d, &args);
    wait_for_step(d, "shared", 2, &mut first);
    let out = run(d, &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in use by another training process") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let out = run(d, &args);
    assert!(out.status.success(), "the lock of a killed writer is gone: {}", stderr(&out));
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = setup();
    let d = dir.path();
    // Updates long enough (~1.2 s) that the second signal, sent 0.6 s after the first (signals
    // within half a second count as one), lands while the first one's update is still running.
    let mut args = train_args("twice", 1000);
    args.extend(["--set", "train.batch=512", "--set", "train.seq_len=256"].map(String::from));
    let mut child = spawn(d, &args);
    wait_for_step(d, "twice", 2, &mut child);
    let pid = child.id().to_string();
    let out = Command::new("bash")
        .args(["-c", "kill -TERM $0 && sleep 0.6 && kill -TERM $0", &pid])
        .output()
        .unwrap();
    let both = out.status.success();
    let status = child.wait().unwrap();
    if both {
        assert_eq!(status.code(), Some(130), "the second signal must end the process at once");
        eprintln!("second signal: exit 130");
    } else {
        // The first signal's checkpoint-and-exit won the race against the second kill.
        assert_eq!(status.code(), Some(md4_train::guard::INTERRUPTED_EXIT_CODE));
    }
}
