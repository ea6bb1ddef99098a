//! The `md4` binary end to end: help texts, config errors, and a tiny train → resume → eval →
//! sample round trip on generated text (seconds on a CPU).
//!
//! Tests that need a GPU are `#[ignore]`d with the reason, so `cargo test` lists them as
//! ignored instead of passing them silently; `scripts/gpu-check.sh` runs them with
//! `MD4_TEST_DEVICE=cuda:0 … --ignored` on a machine that has one (and no Rust: `MD4_BIN` and
//! `MD4_REPO` then point at the copied binary and working tree).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn md4(args: &[&str], cwd: &Path) -> Output {
    md4_env(args, cwd, &[])
}

fn md4_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(common::md4_bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .env("MD4_DATA_DIR", cwd.join("data-cache"))
        .output()
        .expect("running md4")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn every_subcommand_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for (sub, flags) in [
        (
            "train",
            &[
                "--config",
                "--set",
                "--run-dir",
                "--data",
                "--vocab",
                "--device",
                "--deterministic",
                "--threads",
                "--dist-backend",
                "--dist-timeout",
            ][..],
        ),
        ("eval", &["--run-dir", "--passes", "--steps", "--split", "--json", "--compare"]),
        (
            "sample",
            &["--run-dir", "--steps", "--grid", "--precision", "--top-p", "--prompt", "--suffix", "--out"],
        ),
        ("info", &["--preset", "--memory", "--world-size"]),
        ("data", &["--from", "--offline", "--list"]),
        ("curves", &["--run-dir", "--out", "--reference"]),
        ("launch", &["--nproc", "--grace"]),
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
    for entry in std::fs::read_dir(common::configs_dir()).unwrap() {
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
    let cfg = std::fs::read_to_string(common::configs_dir().join("text8-tiny.yaml")).unwrap();
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

/// Train on generated text through `--data text:PATH` (with a registry config), stop and
/// resume, evaluate as JSON, sample, and see a finished run return at once.
#[test]
fn train_resume_eval_sample_on_own_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::corpus(d, 7, 1500);
    let config = common::configs_dir().join("text8-tiny.yaml");
    let config = config.to_str().unwrap();
    let mut owned = common::tiny_train_args(config, "run", "4");
    owned.extend(["--set", "train.ckpt_every=1", "--set", "train.eval_batches=1"].map(String::from));
    let base: Vec<&str> = owned.iter().map(String::as_str).collect();
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

    // Sampling 8 steps from the run, with the given prompt and options.
    let sample = |extra: &[&str]| {
        let mut args = vec!["sample", "--run-dir", "run", "--steps", "8", "--prompt", "the cat"];
        args.extend(extra);
        md4(&args, d)
    };
    let out = sample(&["--num", "3", "--out", "s.txt"]);
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
    let out = sample(&["--num", "2", "--suffix", "sat down", "--out", "i.txt"]);
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

/// Asking for CUDA where it cannot run is one clear error that names the reason, before
/// anything is written: here (no NVIDIA driver) the missing driver or libraries; on a machine
/// with GPUs, an index beyond them.
#[test]
fn cuda_where_it_cannot_run_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = common::configs_dir().join("text8-tiny.yaml");
    let has_driver = Path::new("/proc/driver/nvidia/version").exists();
    let device = if has_driver { "cuda:99" } else { "cuda:0" };
    let args =
        ["train", "--config", config.to_str().unwrap(), "--run-dir", "run", "--quiet", "--device", device];
    for out in [md4(&args, d), md4_env(&args[..6], d, &[("MD4_DEVICE", device)])] {
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Could not run"), "{stderr}");
        assert!(stderr.lines().count() <= 4, "not one clear error:\n{stderr}");
        if has_driver {
            assert!(stderr.contains("usable GPU"), "{stderr}");
        } else {
            let named = stderr.contains("no NVIDIA driver") || stderr.contains("just setup --gpu");
            assert!(named && stderr.contains("--device cuda:0"), "{stderr}");
        }
        assert!(!d.join("run").exists(), "nothing may be written before the device is usable");
    }
}

fn device_under_test() -> String {
    std::env::var("MD4_TEST_DEVICE")
        .expect("the device tests need MD4_TEST_DEVICE=cuda:N (see scripts/gpu-check.sh)")
}

/// On the device: train with deterministic algorithms, stop and resume bit-exactly, score the
/// same checkpoint on the device and on the CPU (same keyed draws: equal up to float rounding),
/// and sample.
#[test]
#[ignore = "needs a GPU: MD4_TEST_DEVICE=cuda:0, run by scripts/gpu-check.sh"]
fn device_train_resume_eval_sample() {
    let device = device_under_test();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::corpus(d, 7, 1500);
    let config = common::configs_dir().join("text8-tiny.yaml");
    let train = |run: &str, extra: &[&str]| {
        // Later --set values override the tiny defaults.
        let mut owned = common::tiny_train_args(config.to_str().unwrap(), run, "6");
        owned.extend(
            [
                "--device",
                &device,
                "--deterministic",
                "--compute",
                "f32",
                "--set",
                "train.batch=8",
                "--set",
                "train.seq_len=64",
                "--set",
                "train.ckpt_every=3",
                "--set",
                "train.eval_every=3",
                "--set",
                "train.eval_batches=1",
            ]
            .map(String::from),
        );
        let mut args: Vec<&str> = owned.iter().map(String::as_str).collect();
        args.extend(extra);
        let out = md4_env(&args, d, &[("MD4_TF32", "0")]);
        assert!(out.status.success(), "{}", text(&out).1);
    };
    train("straight", &[]);
    train("resumed", &["--stop-at", "3"]);
    train("resumed", &[]);
    let a = md4_train::read_checkpoint(&d.join("straight/checkpoints/ckpt-000000006.safetensors")).unwrap();
    let b = md4_train::read_checkpoint(&d.join("resumed/checkpoints/ckpt-000000006.safetensors")).unwrap();
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (name, t) in &a.tensors {
        assert!(t.equal(&b.tensors[name]), "{name} differs after a resume on {device}");
    }
    let metrics = md4_train::metrics::read_metrics(&d.join("straight/metrics.jsonl")).unwrap();
    let logged = metrics.iter().any(|m| m["device_peak_gib"].as_f64().is_some_and(|g| g > 0.0));
    assert_eq!(logged, device.starts_with("cuda"), "peak device memory is logged on CUDA only");

    let eval = |dev: &str, compute: &str| {
        let args = [
            "eval",
            "--run-dir",
            "straight",
            "--json",
            "--passes",
            "2",
            "--device",
            dev,
            "--compute",
            compute,
        ];
        let out = md4_env(&args, d, &[("MD4_TF32", "0")]);
        let v: serde_json::Value =
            serde_json::from_str(&text(&out).0).unwrap_or_else(|_| panic!("{}", text(&out).1));
        v["bits_per_token"].as_f64().unwrap()
    };
    let (gpu, cpu) = (eval(&device, "f32"), eval("cpu", "f32"));
    assert!((gpu - cpu).abs() <= 1e-4 * cpu, "f32 on {device} {gpu} vs cpu {cpu}");
    let bf16 = eval(&device, "bf16");
    assert!((bf16 - cpu).abs() <= 0.02 * cpu, "bf16 on {device} {bf16} vs f32 on cpu {cpu}");

    let out = md4(
        &[
            "sample",
            "--run-dir",
            "straight",
            "--steps",
            "8",
            "--num",
            "3",
            "--device",
            &device,
            "--out",
            "s.txt",
        ],
        d,
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let samples = std::fs::read_to_string(d.join("s.txt")).unwrap();
    assert!(samples.chars().filter(|c| c.is_ascii_lowercase()).count() >= 3 * 32, "{samples}");
}

/// One binary serves CPU and GPU: nothing of CUDA is a load-time dependency (it is opened at
/// run time when a command asks for a GPU), so the binary starts where CUDA's libraries are
/// missing.
#[test]
fn the_binary_needs_no_cuda_library_to_start() {
    let out = Command::new("readelf")
        .args(["-d", env!("CARGO_BIN_EXE_md4")])
        .output()
        .expect("readelf (binutils, which the linker needs too) is installed");
    let needed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1).map(|s| s.trim_end_matches(']').to_string()))
        .collect();
    assert!(needed.iter().any(|l| l == "libtorch_cpu.so"), "{needed:?}");
    for lib in &needed {
        assert!(
            !lib.contains("cuda") && !lib.contains("cudart") && !lib.contains("nccl"),
            "{lib} in {needed:?}"
        );
    }
}

/// `md4 curves` plots what metrics.jsonl holds and says when a reference line was passed.
#[test]
fn curves_plot_a_run_and_name_the_first_update_below_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("run")).unwrap();
    let mut lines = vec![];
    for (i, bits) in [4.0, 3.2, 2.6, 2.4].iter().enumerate() {
        let step = 100 * (i + 1);
        lines.push(format!(
            r#"{{"kind":"train","step":{step},"loss_bits":{bits},"wall_s":{}}}"#,
            60 * (i + 1)
        ));
        lines.push(format!(
            r#"{{"kind":"validation","step":{step},"val_bits":{},"val_se_bits":0.01,"wall_s":{}}}"#,
            bits + 0.1,
            60 * (i + 1)
        ));
    }
    std::fs::write(d.join("run/metrics.jsonl"), lines.join("\n")).unwrap();
    let out = md4(
        &["curves", "--run-dir", "run", "--out", "c", "--reference", "gzip=2.6", "--reference", "xz=2.0"],
        d,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("below gzip (2.6) from update 400 (4.0 min)"), "{stdout}");
    assert!(stdout.contains("never below xz (2)"), "{stdout}");
    for f in ["c-updates.png", "c-updates.svg", "c-wall.png", "c-wall.csv"] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(d.join("c-wall.csv")).unwrap();
    assert!(csv.contains("gzip") && csv.contains("validation (EMA)"), "{csv}");
    let out = md4(&["curves", "--run-dir", "run", "--out", "c", "--reference", "gzip"], d);
    assert!(!out.status.success() && text(&out).1.contains("not NAME=BITS"), "{}", text(&out).1);
}

/// `--data` inputs that cannot train: each is one error naming the file and the problem.
#[test]
fn bad_own_data_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = common::configs_dir().join("text8-tiny.yaml");
    std::fs::write(d.join("empty.txt"), "").unwrap();
    std::fs::write(d.join("short.txt"), "a few words").unwrap();
    std::fs::write(d.join("binary.txt"), [0xffu8, 0xfe, 0x00, 0x80].repeat(500)).unwrap();
    std::fs::write(
        d.join("ids.u16"),
        [1u16, 2, 3, 60000].repeat(200).iter().flat_map(|t| t.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(d.join("odd.u16"), [1u8, 2, 3]).unwrap();
    for (spec, vocab, expect) in [
        ("text:empty.txt", None, "fewer than one sequence"),
        ("text:short.txt", None, "fewer than one sequence"),
        ("bpe:empty.txt", None, "fewer than one sequence"),
        ("tokens:ids.u16", Some("100"), "token 60000 at position 3 is not below the vocabulary size 100"),
        ("tokens:odd.u16", Some("100"), "not a whole number of u16 tokens"),
        ("text:missing.txt", None, "no such file"),
    ] {
        let run = format!("run-{}", spec.replace([':', '.'], "-"));
        let mut args =
            vec!["train", "--config", config.to_str().unwrap(), "--data", spec, "--run-dir", &run, "--quiet"];
        args.extend(["--set", "train.steps=2", "--set", "train.seq_len=64"]);
        if let Some(v) = vocab {
            args.extend(["--vocab", v]);
        }
        let out = md4(&args, d);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{spec}: {stderr}");
        assert!(!stderr.contains("panicked"), "{spec}: {stderr}");
        let file = spec.split(':').nth(1).unwrap();
        assert!(stderr.contains(file), "{spec}: the error does not name the file: {stderr}");
        assert!(
            stderr.to_lowercase().contains(expect),
            "{spec}: the error does not say '{expect}': {stderr}"
        );
    }
}
