//! The GPT-2 judge of generative perplexity (spec §11.4): Hugging Face's key layout round-trips
//! through safetensors (with the `transformer.` prefix and the mask buffers of real checkpoints),
//! the forward pass equals an independent position-by-position implementation of GPT-2's
//! equations, attention is causal, and bad checkpoints are named in the error.

use md4_models::{Gpt2, Gpt2Config};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

fn var(m: &Gpt2, name: &str) -> Tensor {
    m.vs.variables().remove(name).unwrap_or_else(|| panic!("no variable {name}"))
}

fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let mean = x.mean_dim([-1i64].as_slice(), true, Kind::Double);
    let var = (x - &mean).square().mean_dim([-1i64].as_slice(), true, Kind::Double);
    (x - mean) / (var + 1e-5).sqrt() * w + b
}

/// GPT-2's equations for one sequence, in float64, one query position at a time.
fn reference_logits(m: &Gpt2, ids: &[i64]) -> Tensor {
    let c = &m.cfg;
    let (d, h) = (c.n_embd, c.n_head);
    let hd = d / h;
    let v = |n: &str| var(m, n).to_kind(Kind::Double);
    let n = ids.len() as i64;
    let mut x = v("wte.weight").index_select(0, &Tensor::from_slice(ids)) + v("wpe.weight").narrow(0, 0, n);
    for l in 0..c.n_layer {
        let p = |s: &str| v(&format!("h.{l}.{s}"));
        let a = layer_norm(&x, &p("ln_1.weight"), &p("ln_1.bias"));
        let qkv = a.matmul(&p("attn.c_attn.weight")) + p("attn.c_attn.bias");
        let (q, k, vv) = (qkv.narrow(1, 0, d), qkv.narrow(1, d, d), qkv.narrow(1, 2 * d, d));
        let mut rows = vec![];
        for i in 0..n {
            let mut heads = vec![];
            for j in 0..h {
                let qi = q.get(i).narrow(0, j * hd, hd);
                let kj = k.narrow(0, 0, i + 1).narrow(1, j * hd, hd);
                let vj = vv.narrow(0, 0, i + 1).narrow(1, j * hd, hd);
                let scores = kj.matmul(&qi) / (hd as f64).sqrt();
                let w = (&scores - scores.max()).exp();
                let w = &w / w.sum(Kind::Double);
                heads.push(w.unsqueeze(0).matmul(&vj).squeeze_dim(0));
            }
            rows.push(Tensor::cat(&heads, 0));
        }
        let attn = Tensor::stack(&rows, 0).matmul(&p("attn.c_proj.weight")) + p("attn.c_proj.bias");
        x += attn;
        let u = layer_norm(&x, &p("ln_2.weight"), &p("ln_2.bias")).matmul(&p("mlp.c_fc.weight"))
            + p("mlp.c_fc.bias");
        let inner: Tensor = (&u + u.pow_tensor_scalar(3) * 0.044715) * (2.0 / std::f64::consts::PI).sqrt();
        let gelu: Tensor = &u * 0.5 * (inner.tanh() + 1.0);
        x = x + gelu.matmul(&p("mlp.c_proj.weight")) + p("mlp.c_proj.bias");
    }
    layer_norm(&x, &v("ln_f.weight"), &v("ln_f.bias")).matmul(&v("wte.weight").tr())
}

fn randomized_tiny() -> Gpt2 {
    tch::manual_seed(3);
    let m = Gpt2::new(&Gpt2Config::tiny(), Device::Cpu);
    tch::no_grad(|| {
        for (_, mut v) in m.vs.variables() {
            let noise = v.randn_like() * 0.2;
            v.copy_(&noise);
        }
    });
    m
}

#[test]
fn forward_equals_gpt2_equations_and_is_causal() {
    let m = randomized_tiny();
    let ids = [50256i64, 464, 2068, 7586, 21831, 18045, 625, 262];
    let got = tch::no_grad(|| m.logits(&Tensor::from_slice(&ids).unsqueeze(0)))
        .squeeze_dim(0)
        .to_kind(Kind::Double);
    let want = reference_logits(&m, &ids);
    let diff = (&got - &want).abs().max().double_value(&[]);
    assert!(diff < 1e-3, "max |Δlogit| = {diff}");
    let mut changed = ids;
    changed[5] = 11;
    let got2 = tch::no_grad(|| m.logits(&Tensor::from_slice(&changed).unsqueeze(0))).squeeze_dim(0);
    let same =
        (got.narrow(0, 0, 5).to_kind(Kind::Float) - got2.narrow(0, 0, 5)).abs().max().double_value(&[]);
    assert_eq!(same, 0.0, "positions before 5 must not see token 5");
    assert!((got.get(5).to_kind(Kind::Float) - got2.get(5)).abs().max().double_value(&[]) > 1e-4);
    // nll: the sum of −log p of every token after <|endoftext|>.
    let x = Tensor::from_slice(&ids[1..]).unsqueeze(0);
    let nll = tch::no_grad(|| m.nll(&x)).double_value(&[0]);
    let logp = want.log_softmax(-1, Kind::Double);
    let by_hand: f64 = (1..ids.len()).map(|i| -logp.double_value(&[i as i64 - 1, ids[i]])).sum();
    assert!((nll - by_hand).abs() < 1e-3 * by_hand.abs().max(1.0), "{nll} vs {by_hand}");
}

#[test]
fn hub_layout_round_trips_through_safetensors() {
    let m = randomized_tiny();
    let dir = tempfile::tempdir().unwrap();
    // A checkpoint as the Hub ships it: `transformer.` prefix, mask buffers, a tied lm_head.
    let mut named: Vec<(String, Tensor)> =
        m.vs.variables().into_iter().map(|(k, v)| (format!("transformer.{k}"), v.detach())).collect();
    let n = m.cfg.n_positions;
    for l in 0..m.cfg.n_layer {
        named.push((
            format!("transformer.h.{l}.attn.bias"),
            Tensor::ones([1, 1, n, n], (Kind::Float, Device::Cpu)).tril(0),
        ));
    }
    named.push(("lm_head.weight".into(), var(&m, "wte.weight").detach()));
    let path = dir.path().join("model.safetensors");
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    Tensor::write_safetensors(&refs, &path).unwrap();
    let loaded = Gpt2::load_safetensors(&m.cfg, &path, Device::Cpu).unwrap();
    let ids = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]).unsqueeze(0);
    let (a, b) = tch::no_grad(|| (m.logits(&ids), loaded.logits(&ids)));
    assert!(a.equal(&b), "loaded weights must reproduce the logits exactly");

    // Our own save (no prefix) loads too.
    let own = dir.path().join("own.safetensors");
    m.save_safetensors(&own).unwrap();
    assert!(
        tch::no_grad(|| Gpt2::load_safetensors(&m.cfg, &own, Device::Cpu).unwrap().logits(&ids)).equal(&a)
    );

    // A missing tensor and a wrong shape are named.
    let vars: BTreeMap<String, Tensor> = m.vs.variables().into_iter().collect();
    let partial: Vec<(&str, &Tensor)> =
        vars.iter().filter(|(k, _)| *k != "ln_f.bias").map(|(k, v)| (k.as_str(), v)).collect();
    let bad = dir.path().join("missing.safetensors");
    Tensor::write_safetensors(&partial, &bad).unwrap();
    let err = format!("{:#}", Gpt2::load_safetensors(&m.cfg, &bad, Device::Cpu).unwrap_err());
    assert!(err.contains("ln_f.bias"), "{err}");
    let wide = Gpt2Config { n_embd: 64, ..m.cfg.clone() };
    let err = format!("{:#}", Gpt2::load_safetensors(&wide, &own, Device::Cpu).unwrap_err());
    assert!(err.contains("shape"), "{err}");
}

#[test]
fn reads_the_hub_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "n_ctx": 1024, "n_embd": 1280,
            "n_head": 20, "n_layer": 36, "n_positions": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-05}"#,
    )
    .unwrap();
    assert_eq!(Gpt2Config::from_json_file(&path).unwrap(), Gpt2Config::large());
}
