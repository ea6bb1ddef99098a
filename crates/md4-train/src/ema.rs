//! Exponential moving average of the parameters (spec §8, pitfall 13): decay 0.9999 in the
//! paper, updated after every optimizer step from the initial parameters, without bias
//! correction. Every evaluation and every sample uses these weights.

use anyhow::{Context, Result, ensure};
use std::collections::HashMap;
use tch::{Tensor, nn::VarStore};

/// EMA copies of a fixed, named list of parameters.
#[derive(Debug)]
pub struct Ema {
    pub decay: f64,
    /// (name, average) in the order of the parameters given to [`Ema::new`].
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    /// Start the averages at the current parameter values.
    pub fn new(params: &[(String, Tensor)], decay: f64) -> Self {
        assert!((0.0..=1.0).contains(&decay), "ema decay must be in [0, 1], got {decay}");
        let shadow = params.iter().map(|(n, p)| (n.clone(), p.detach().copy())).collect();
        Self { decay, shadow }
    }

    /// (name, average) pairs.
    pub fn averages(&self) -> &[(String, Tensor)] {
        &self.shadow
    }

    /// `ema ← decay·ema + (1 − decay)·θ` (as `ema + (1 − decay)(θ − ema)`) for every parameter;
    /// `params` in construction order.
    pub fn update(&mut self, params: &[(String, Tensor)]) {
        let decay = self.decay;
        tch::no_grad(|| {
            for ((_, e), (_, p)) in self.shadow.iter_mut().zip(params) {
                let _ = e.lerp_(p, 1.0 - decay);
            }
        });
    }

    /// Replace the averages (resume); `values` maps every name to a tensor of the right shape.
    pub fn restore(&mut self, values: &HashMap<String, Tensor>) -> Result<()> {
        for (name, e) in &mut self.shadow {
            let t = values.get(name).with_context(|| format!("the ema of {name} is missing"))?;
            ensure!(
                t.size() == e.size(),
                "the ema of {name} has shape {:?}, expected {:?}",
                t.size(),
                e.size()
            );
            tch::no_grad(|| e.copy_(t));
        }
        Ok(())
    }

    /// Exchange the live parameters and the averages in place. Calling it twice restores both
    /// exactly, so training can evaluate with EMA weights and continue bit for bit.
    pub fn swap(&mut self, params: &[(String, Tensor)]) {
        tch::no_grad(|| {
            for ((_, e), (_, p)) in self.shadow.iter_mut().zip(params) {
                let live = p.detach().copy();
                let mut p = p.shallow_clone();
                p.copy_(e);
                e.copy_(&live);
            }
        });
    }
}

/// Copy named tensors into the variables of `vs` with the same names; every name must exist
/// with the same shape.
pub fn copy_named_into<'a>(
    vs: &VarStore,
    values: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> Result<()> {
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, value) in values {
            let mut var =
                vars.get(name).with_context(|| format!("the model has no variable {name}"))?.shallow_clone();
            ensure!(
                var.size() == value.size(),
                "{name} has shape {:?}, expected {:?}",
                value.size(),
                var.size()
            );
            var.copy_(&value.to_device(var.device()).to_kind(var.kind()));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn update_is_the_unbiased_free_recursion() {
        let p = Tensor::from_slice(&[1.0f64, -2.0]);
        let params = vec![("p".to_string(), p.shallow_clone())];
        let mut ema = Ema::new(&params, 0.9);
        let mut expect = [1.0f64, -2.0];
        for k in 0..5 {
            tch::no_grad(|| {
                let _ = p.shallow_clone().g_add_scalar_(1.0);
            });
            ema.update(&params);
            let now = Vec::<f64>::try_from(&p).unwrap();
            for i in 0..2 {
                expect[i] = 0.9 * expect[i] + 0.1 * now[i];
            }
            let got = Vec::<f64>::try_from(&ema.averages()[0].1).unwrap();
            for i in 0..2 {
                assert!((got[i] - expect[i]).abs() < 1e-14, "step {k}");
            }
        }
    }

    #[test]
    fn swapping_twice_restores_both_bit_for_bit() {
        let p = Tensor::randn([3, 4], (Kind::Float, tch::Device::Cpu));
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut ema = Ema::new(&params, 0.5);
        tch::no_grad(|| {
            let _ = p.shallow_clone().g_mul_scalar_(3.0);
        });
        ema.update(&params);
        let (live, avg) = (p.copy(), ema.averages()[0].1.copy());
        ema.swap(&params);
        assert!(p.equal(&avg) && ema.averages()[0].1.equal(&live));
        ema.swap(&params);
        assert!(p.equal(&live) && ema.averages()[0].1.equal(&avg));
    }
}
