//! Parsers under attack (issue 15 §5), md4-train's side: the safetensors checkpoint loader
//! (random bytes, truncation, absurd header lengths, and structural header edits that keep
//! the checksum valid — a tensor removed, a shape or dtype changed) through `read_checkpoint`,
//! `Trainer::restore` and `load_ema_weights`; and YAML run configs (random edits of every
//! committed config). No panic, no hang, bounded memory, and every error names the file.

use md4_fuzz::{Harness, Mutator};
use md4_train::{RunConfig, Trainer, objective, read_checkpoint};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, nn::VarStore};

fn tiny() -> RunConfig {
    RunConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/text8-tiny.yaml"), &[])
        .unwrap()
}

/// Rewrite a checkpoint's JSON header with one structural edit; the data section (and so the
/// stored checksum) is unchanged.
fn edit_header(bytes: &[u8], m: &mut Mutator) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let names: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
    let name = &names[m.below(names.len())];
    match m.below(4) {
        0 => {
            header.remove(name);
        }
        1 => {
            let shape = header[name]["shape"].as_array().cloned().unwrap_or_default();
            let mut shape: Vec<u64> = shape.iter().filter_map(|d| d.as_u64()).collect();
            if shape.len() >= 2 && m.below(2) == 0 {
                shape.reverse(); // same byte size: passes the parser, must fail the shape checks
            } else if !shape.is_empty() {
                let i = m.below(shape.len());
                shape[i] = [0, 1, 2, 1 << 40][m.below(4)];
            } else {
                shape.push(1);
            }
            header[name]["shape"] = serde_json::json!(shape);
        }
        2 => {
            header[name]["dtype"] =
                serde_json::json!(["BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "X"][m.below(7)])
        }
        _ => {
            let meta = header.get_mut("__metadata__").and_then(|v| v.as_object_mut()).unwrap();
            let key = ["step", "format", "data_sha256", "wall_seconds"][m.below(4)].to_string();
            meta.insert(key, serde_json::json!(["-1", "99999999999999999999", "", "x"][m.below(4)]));
        }
    }
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    out
}

#[test]
fn checkpoint_loader() {
    let cfg = tiny();
    let vs = VarStore::new(Device::Cpu);
    let (_trained, _) = objective::build(&cfg, &vs.root(), None).unwrap();
    let mut trainer = Trainer::new(&vs, &cfg.train);
    let dir = tempfile::tempdir().unwrap();
    let good = trainer.save(dir.path(), &HashMap::new()).unwrap();
    let seed = std::fs::read(&good).unwrap();
    let target = dir.path().join("fuzz").join("ckpt-000000001.safetensors");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let mut h = Harness::new("checkpoint", 600);
    let mut m = h.mutator();
    let mut loaded = 0;
    for i in 0..h.cases {
        let input = if m.below(2) == 0 { edit_header(&seed, &mut m) } else { m.mutate(&seed) };
        std::fs::write(&target, &input).unwrap();
        h.case(
            i,
            &input,
            || {
                let ckpt = read_checkpoint(&target).map_err(|e| format!("{e:#}"))?;
                loaded += 1;
                trainer.restore(&ckpt).map_err(|e| format!("{e:#}"))?;
                md4_train::load_ema_weights(&vs, &ckpt).map_err(|e| format!("{e:#}"))
            },
            |e| e.contains("ckpt-000000001"),
        );
    }
    eprintln!("{}; {loaded} parsed and verified, then went through restore/EMA loading", h.summary());
    assert!(loaded > 0, "no mutated checkpoint got past the parser: the restore paths went untested");
}

#[test]
fn run_configs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let seeds: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("fuzzed.yaml");
    let mut h = Harness::new("run-config", 1500);
    let mut m = h.mutator();
    for i in 0..h.cases {
        let text = &seeds[m.below(seeds.len())];
        let input =
            if m.below(4) == 0 { m.mutate(text.as_bytes()) } else { m.mutate_text(text).into_bytes() };
        std::fs::write(&path, &input).unwrap();
        h.case(
            i,
            &input,
            || RunConfig::load(&path, &[]).map(|_| ()).map_err(|e| format!("{e:#}")),
            |e| e.contains("fuzzed.yaml"),
        );
    }
    eprintln!("{}", h.summary());
}
