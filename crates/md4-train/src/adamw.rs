//! AdamW written out on tensors (spec §8, §14), so that its moments can be checkpointed and
//! resumed bit for bit (tch's optimizer state is not accessible).
//!
//! The update is optax's `adamw` (the reference code's optimizer): with count c = k + 1 after
//! update k,
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, `m̂ = m/(1−β1^c)`, `v̂ = v/(1−β2^c)`,
//! `θ ← θ − lr·(m̂/(√v̂ + ε) + wd·θ)`.
//! The decay is decoupled and applies to **every** parameter (embeddings, biases and GenMD4's
//! `w_raw` included, pitfall 14). A parameter that received no gradient is treated as having
//! a zero gradient, as optax does for a pytree leaf that does not influence the loss.

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// The fixed hyper-parameters of [`AdamW`]; the learning rate is passed to every step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// β1 = 0.9 and ε = 1e−8 as in every paper run, with the given β2 and decay.
    pub fn paper(beta2: f64, weight_decay: f64) -> Self {
        Self { beta1: 0.9, beta2, eps: 1e-8, weight_decay }
    }
}

/// AdamW state over a fixed, named list of parameters.
#[derive(Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// (name, parameter) in a fixed order; the tensors share storage with the VarStore.
    params: Vec<(String, Tensor)>,
    /// First moments, one per parameter.
    m: Vec<Tensor>,
    /// Second moments, one per parameter.
    v: Vec<Tensor>,
    /// Number of updates applied so far.
    count: i64,
}

impl AdamW {
    /// Zero moments for `params` (name, tensor); the order of `params` is kept.
    pub fn new(params: Vec<(String, Tensor)>, config: AdamWConfig) -> Self {
        let zeros = |p: &Tensor| p.zeros_like().detach();
        let m = params.iter().map(|(_, p)| zeros(p)).collect();
        let v = params.iter().map(|(_, p)| zeros(p)).collect();
        Self { config, params, m, v, count: 0 }
    }

    /// Updates applied so far.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// The parameters in optimizer order.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// (name, first moment) pairs.
    pub fn first_moments(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(n, _)| n.as_str()).zip(self.m.iter())
    }

    /// (name, second moment) pairs.
    pub fn second_moments(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(n, _)| n.as_str()).zip(self.v.iter())
    }

    /// Replace the moments and the count (resume). `m` and `v` map every parameter name to a
    /// tensor of the parameter's shape.
    pub fn restore(
        &mut self,
        count: i64,
        m: &HashMap<String, Tensor>,
        v: &HashMap<String, Tensor>,
    ) -> Result<()> {
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (slot, source, what) in [(&mut self.m[i], m, "first"), (&mut self.v[i], v, "second")] {
                let t =
                    source.get(name).with_context(|| format!("the {what} moment of {name} is missing"))?;
                ensure!(
                    t.size() == p.size(),
                    "the {what} moment of {name} has shape {:?}, the parameter {:?}",
                    t.size(),
                    p.size()
                );
                tch::no_grad(|| slot.copy_(t));
            }
        }
        self.count = count;
        Ok(())
    }

    /// Clear every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// Global L2 norm of the gradients, `[]` float32 on the parameters' device (no sync).
    pub fn grad_norm(&self) -> Tensor {
        let device = self.params.first().map(|(_, p)| p.device()).unwrap_or(tch::Device::Cpu);
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for (_, p) in &self.params {
            let g = p.grad();
            if g.defined() {
                total += g.to_kind(Kind::Float).square().sum(Kind::Float);
            }
        }
        total.sqrt()
    }

    /// optax `clip_by_global_norm`: scale every gradient by `max_norm / max(norm, max_norm)`.
    /// Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Tensor {
        let norm = self.grad_norm();
        let scale = norm.clamp_min(max_norm).reciprocal() * max_norm;
        tch::no_grad(|| {
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_(&scale.to_kind(g.kind()));
                }
            }
        });
        norm
    }

    /// Apply one update with learning rate `lr` using the current gradients.
    ///
    /// Written with in-place ops (two temporaries per parameter): `θ·(1 − lr·wd)` first, then
    /// `θ − (lr/(1−β1^c))·m / (√v/√(1−β2^c) + ε)`, which equals the optax form above.
    pub fn step(&mut self, lr: f64) {
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        self.count += 1;
        let c = self.count as i32;
        let bc1 = 1.0 - beta1.powi(c);
        let bc2_sqrt = (1.0 - beta2.powi(c)).sqrt();
        tch::no_grad(|| {
            for ((_, p), (m, v)) in self.params.iter_mut().zip(self.m.iter_mut().zip(self.v.iter_mut())) {
                let g = p.grad();
                let g = if g.defined() { g } else { p.zeros_like() };
                let _ = m.lerp_(&g, 1.0 - beta1);
                let _ = v.g_mul_scalar_(beta2);
                let _ = v.addcmul_(&(&g * (1.0 - beta2)), &g);
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bc2_sqrt);
                let _ = denom.g_add_scalar_(eps);
                let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                let _ = p.addcdiv_(&(&*m * (-lr / bc1)), &denom);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(values: &[f64]) -> Tensor {
        Tensor::from_slice(values).to_kind(Kind::Double).set_requires_grad(true)
    }

    /// Two updates against the formula evaluated by hand in f64.
    #[test]
    fn two_steps_match_a_hand_computation() {
        let p = param(&[0.5, -1.5, 2.0]);
        let cfg = AdamWConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
        let mut opt = AdamW::new(vec![("p".into(), p.shallow_clone())], cfg);
        let (mut theta, mut m, mut v) = ([0.5f64, -1.5, 2.0], [0.0f64; 3], [0.0f64; 3]);
        for (k, lr) in [(1, 0.01), (2, 0.02)] {
            opt.zero_grad();
            // loss = Σ θ_i³ → g = 3θ².
            (&p * &p * &p).sum(Kind::Double).backward();
            opt.step(lr);
            for i in 0..3 {
                let g = 3.0 * theta[i] * theta[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.99 * v[i] + 0.01 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(k));
                let vh = v[i] / (1.0 - 0.99f64.powi(k));
                theta[i] -= lr * (mh / (vh.sqrt() + 1e-8) + 0.1 * theta[i]);
            }
            let got = Vec::<f64>::try_from(&p.detach()).unwrap();
            for i in 0..3 {
                assert!(
                    (got[i] - theta[i]).abs() < 1e-14,
                    "step {k} coordinate {i}: {} vs {}",
                    got[i],
                    theta[i]
                );
            }
        }
        assert_eq!(opt.count(), 2);
    }

    /// With a zero learning rate nothing moves, but the moments still accumulate (the first
    /// paper update has lr 0).
    #[test]
    fn zero_lr_keeps_parameters_but_updates_moments() {
        let p = param(&[1.0, 2.0]);
        let mut opt = AdamW::new(vec![("p".into(), p.shallow_clone())], AdamWConfig::paper(0.999, 0.03));
        (&p * 2.0).sum(Kind::Double).backward();
        opt.step(0.0);
        assert_eq!(Vec::<f64>::try_from(&p.detach()).unwrap(), vec![1.0, 2.0]);
        let m: Vec<f64> = Vec::try_from(opt.first_moments().next().unwrap().1).unwrap();
        assert!((m[0] - 0.2).abs() < 1e-15 && (m[1] - 0.2).abs() < 1e-15);
    }

    /// Decay applies even without a gradient: θ ← θ − lr·wd·θ when g = 0 (m̂ = 0).
    #[test]
    fn weight_decay_applies_to_parameters_without_gradient() {
        let p = param(&[4.0]);
        let mut opt = AdamW::new(vec![("p".into(), p.shallow_clone())], AdamWConfig::paper(0.999, 0.5));
        opt.step(0.1);
        let got = Vec::<f64>::try_from(&p.detach()).unwrap()[0];
        assert!((got - (4.0 - 0.1 * 0.5 * 4.0)).abs() < 1e-15, "{got}");
    }

    #[test]
    fn clipping_scales_to_the_maximum_norm() {
        let p = param(&[3.0, 4.0]);
        let mut opt = AdamW::new(vec![("p".into(), p.shallow_clone())], AdamWConfig::paper(0.999, 0.0));
        // g = θ, norm 5.
        (&p * &p * 0.5).sum(Kind::Double).backward();
        let norm = opt.clip_grad_norm(1.0).double_value(&[]);
        assert!((norm - 5.0).abs() < 1e-6);
        let g: Vec<f64> = Vec::try_from(&p.grad()).unwrap();
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6, "{g:?}");
        // Below the threshold the gradient is untouched.
        let norm_after = opt.clip_grad_norm(10.0).double_value(&[]);
        assert!((norm_after - 1.0).abs() < 1e-6);
        let g2: Vec<f64> = Vec::try_from(&p.grad()).unwrap();
        assert!((g2[0] - 0.6).abs() < 1e-6 && (g2[1] - 0.8).abs() < 1e-6);
    }
}
