//! The `md4` binary end to end: help texts, config errors, and a tiny train → resume → eval →
//! sample round trip on generated text (seconds on a CPU).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn md4(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_md4"))
        .args(args)
        .current_dir(cwd)
        .env("MD4_DATA_DIR", cwd.join("data-cache"))
        .output()
        .expect("running md4")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

#[test]
fn every_subcommand_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for (sub, flags) in [
        ("train", &["--config", "--set", "--run-dir", "--data", "--vocab", "--device"][..]),
        ("eval", &["--run-dir", "--passes", "--steps", "--split", "--json", "--compare"]),
        (
            "sample",
            &["--run-dir", "--steps", "--grid", "--precision", "--top-p", "--prompt", "--suffix", "--out"],
        ),
        ("info", &["--preset"]),
        ("data", &["--from", "--offline", "--list"]),
    ] {
        let out = md4(&[sub, "--help"], dir.path());
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{sub} --help failed: {stderr}");
        for flag in flags {
            // Each flag is listed with a description after it.
            let line = stdout.lines().find(|l| {
                let l = l.trim_start();
                l.starts_with('-') && l.split_whitespace().any(|w| w.trim_end_matches(',') == *flag)
            });
            let line = line.unwrap_or_else(|| panic!("{sub} --help does not list {flag}:\n{stdout}"));
            let described = line.trim().split("  ").filter(|s| !s.trim().is_empty()).count() >= 2;
            assert!(described, "{sub} {flag} has no description: {line}");
        }
    }
}

#[test]
fn info_prints_the_parameter_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = md4(&["info", "--preset", "md4-s-owt"], dir.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let count = md4_models::preset("md4-s-owt").unwrap().param_count();
    assert!(stdout.contains(&count.to_string()), "{stdout}");
    let out = md4(&["info", "--preset", "no-such-model"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no-such-model"));
}

#[test]
fn every_config_in_the_configs_folder_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            md4_train::RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 5, "expected the example configs, found {n}");
}

#[test]
fn unknown_config_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(configs_dir().join("text8-tiny.yaml")).unwrap();
    std::fs::write(dir.path().join("bad.yaml"), cfg.replace("warmup: 20", "warmup: 20\n  learning_rat: 1"))
        .unwrap();
    let out = md4(&["train", "--config", "bad.yaml", "--run-dir", "run"], dir.path());
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("learning_rat"), "{stderr}");
    // A mistyped --set key is named too.
    let out =
        md4(&["train", "--config", "bad.yaml", "--set", "train.stepz=3", "--run-dir", "run"], dir.path());
    assert!(text(&out).1.contains("stepz") || text(&out).1.contains("learning_rat"));
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, &cfg).unwrap();
    let out =
        md4(&["train", "--config", "good.yaml", "--set", "train.stepz=3", "--run-dir", "run"], dir.path());
    let (_, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("stepz"), "{stderr}");
}

fn corpus(dir: &Path) {
    // A small deterministic corpus of words.
    let words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "home"];
    let mut state = 7u64;
    let mut text = String::new();
    for _ in 0..1500 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        text.push_str(words[(state >> 33) as usize % words.len()]);
        text.push(' ');
    }
    std::fs::write(dir.join("corpus.txt"), text).unwrap();
}

/// Train on generated text through `--data text:PATH` (with a registry config), stop and
/// resume, evaluate as JSON, sample, and see a finished run return at once.
#[test]
fn train_resume_eval_sample_on_own_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    let config = configs_dir().join("text8-tiny.yaml");
    let config = config.to_str().unwrap();
    let base = [
        "train",
        "--config",
        config,
        "--data",
        "text:corpus.txt",
        "--holdout",
        "0.1",
        "--run-dir",
        "run",
        "--quiet",
        "--set",
        "train.steps=4",
        "--set",
        "train.batch=4",
        "--set",
        "train.seq_len=32",
        "--set",
        "train.warmup=1",
        "--set",
        "train.ckpt_every=1",
        "--set",
        "train.eval_every=2",
        "--set",
        "train.eval_batches=1",
        "--set",
        "train.log_every=1",
    ];
    let mut first = base.to_vec();
    first.extend(["--stop-at", "2"]);
    let out = md4(&first, d);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("step 2/4"), "{stdout}");
    let run = d.join("run");
    for file in ["config.yaml", "run.json", "metrics.jsonl", "checkpoints/ckpt-000000002.safetensors"] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    // The stored config is the resolved one: own data, and the vocabulary of text8.
    let stored = md4_train::read_run_config(&run).unwrap();
    assert!(matches!(stored.data, md4_train::DataConfig::Text { .. }));
    assert_eq!(stored.model.vocab().size(), 27);

    // Resume without --config: the run directory's config is used.
    let out = md4(&["train", "--run-dir", "run", "--quiet"], d);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("step 4/4"), "{stdout}");
    let record = md4_train::RunRecord::read(&run.join("run.json")).unwrap();
    assert_eq!(record.sessions.iter().map(|s| s.from_step).collect::<Vec<_>>(), vec![0, 2]);
    let metrics = md4_train::metrics::read_metrics(&run.join("metrics.jsonl")).unwrap();
    let steps: Vec<i64> =
        metrics.iter().filter(|m| m["kind"] == "train").map(|m| m["step"].as_i64().unwrap()).collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    assert!(metrics.iter().any(|m| m["kind"] == "validation" && m["step"] == 4));

    // Finished: returns at once.
    let out = md4(&base, d);
    assert!(out.status.success());
    assert!(text(&out).0.contains("already finished"), "{}", text(&out).0);

    // A different config in the same run directory is refused.
    let mut other = base.to_vec();
    other.extend(["--set", "train.lr=0.5"]);
    let out = md4(&other, d);
    assert!(!out.status.success() && text(&out).1.contains("different configuration"), "{}", text(&out).1);

    let out = md4(&["eval", "--run-dir", "run", "--json", "--passes", "2"], d);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let bits = v["bits_per_token"].as_f64().unwrap();
    let se = v["se_bits_per_token"].as_f64().unwrap();
    assert!(bits > 0.0 && bits.is_finite() && se > 0.0, "{v}");
    assert_eq!(v["passes"], 2);
    assert_eq!(v["checkpoint_step"], 4);
    assert_eq!(v["bound"], "continuous");
    // 10% of the ~7.5k-character corpus in chunks of 32.
    let held_out = v["n_sequences"].as_u64().unwrap();
    assert!(held_out >= 10, "{held_out}");
    // A run compared with itself on the same keyed streams differs by exactly 0 ± 0, and with
    // another batch size scores the same (the draws are keyed by sequence; bit-identity of the
    // network across batch shapes is up to the BLAS, so within float rounding here).
    let out =
        md4(&["eval", "--run-dir", "run", "--json", "--passes", "2", "--batch", "3", "--compare", "run"], d);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let c: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rebatched = c["bits_per_token"].as_f64().unwrap();
    assert!((rebatched - bits).abs() < 1e-5 * bits, "batch size changed the score: {rebatched} vs {bits}");
    assert_eq!(c["compare"]["difference_bits_per_token"].as_f64(), Some(0.0), "{c}");
    assert_eq!(c["compare"]["difference_se_bits_per_token"].as_f64(), Some(0.0), "{c}");
    assert_eq!(c["compare"]["resolved"], false);
    let out = md4(&["eval", "--run-dir", "run", "--json", "--steps", "50", "--limit", "4"], d);
    let v: serde_json::Value =
        serde_json::from_str(&text(&out).0).unwrap_or_else(|_| panic!("{}", text(&out).1));
    assert_eq!((v["bound"].as_str(), v["n_sequences"].as_u64()), (Some("finite-T"), Some(4)));

    let out = md4(
        &[
            "sample",
            "--run-dir",
            "run",
            "--steps",
            "8",
            "--num",
            "3",
            "--prompt",
            "the cat",
            "--out",
            "s.txt",
        ],
        d,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("network calls"), "{stdout}");
    let samples = std::fs::read_to_string(d.join("s.txt")).unwrap();
    let lines: Vec<&str> = samples.lines().collect();
    assert_eq!(lines.len(), 3);
    for line in lines {
        assert_eq!(line.len(), 32);
        assert!(line.starts_with("the cat"), "{line}");
        assert!(line.chars().all(|c| c.is_ascii_lowercase() || c == ' '), "{line}");
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("s.txt.json")).unwrap()).unwrap();
    let calls = record["network_calls"].as_i64().unwrap();
    assert!((8..=9).contains(&calls), "{record}");

    // Infilling: prefix and suffix kept, the span between them generated and scored.
    let out = md4(
        &[
            "sample",
            "--run-dir",
            "run",
            "--steps",
            "8",
            "--num",
            "2",
            "--prompt",
            "the cat",
            "--suffix",
            "sat down",
            "--out",
            "i.txt",
        ],
        d,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("infilled 17 tokens per sample"), "{stdout}");
    for line in std::fs::read_to_string(d.join("i.txt")).unwrap().lines() {
        assert!(line.starts_with("the cat") && line.ends_with("sat down") && line.len() == 32, "{line}");
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("i.txt.json")).unwrap()).unwrap();
    let spans = record["span_nelbo_nats"].as_array().unwrap();
    assert_eq!((spans.len(), record["generated_tokens"].as_i64()), (2, Some(17)));
    assert!(spans.iter().all(|v| v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0)), "{record}");
    // Prefix and suffix that leave nothing to generate are refused with the reason.
    let long = "a".repeat(20);
    let out = md4(
        &[
            "sample",
            "--run-dir",
            "run",
            "--steps",
            "2",
            "--prompt",
            &long,
            "--suffix",
            &long,
            "--out",
            "x.txt",
        ],
        d,
    );
    assert!(!out.status.success() && text(&out).1.contains("leave nothing to generate"), "{}", text(&out).1);

    // A truncated newest checkpoint: reported by name, the previous one is used.
    let newest = run.join("checkpoints/ckpt-000000004.safetensors");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() - 100]).unwrap();
    let out = md4(&["eval", "--run-dir", "run", "--json", "--limit", "2"], d);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ckpt-000000004.safetensors") && stderr.contains("previous"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["checkpoint_step"], 3);
}
