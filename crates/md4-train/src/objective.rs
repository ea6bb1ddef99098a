//! The objective factory: a run's `objective` config and network become one trainable model
//! (spec §3 MD4, §4 GenMD4, §6 baselines, §8 AR baseline). Adding an objective means one
//! variant in [`crate::config::ObjectiveConfig`], one in [`Trained`] and one arm in [`build`].
//!
//! Variable names: the network's variables sit at the root of the VarStore (their names mirror
//! the struct fields); GenMD4's exponents at `genmd4.w_raw`, so a checkpoint holds
//! `model/genmd4.w_raw` beside `model/blocks.0.attn.wq.weight`.

use crate::config::{ObjectiveConfig, RunConfig};
use anyhow::Result;
use md4_core::baselines::{Campbell, D3pm, D3pmConfig, Sedd};
use md4_core::sampler::{SampleOutput, SampleRequest, ancestral_sample, genmd4_sample};
use md4_core::{GenMd4, GenMd4Schedule, Md4, Objective, Schedule, Vocab};
use md4_models::{ArObjective, ComputePrecision, Network, PrecisionChoice};
use tch::{Kind, Tensor, nn};

/// A network together with the loss that trains it.
#[derive(Debug)]
pub enum Trained {
    Md4(Md4<Network>),
    GenMd4(GenMd4<Network>),
    Ar(ArObjective),
    D3pm(D3pm<Network>),
    Sedd(Sedd<Network>),
    Campbell(Campbell<Network>),
}

/// Build the network of `cfg.model` and its objective under `vs`, in the arithmetic of
/// `train.precision` (or `precision`, overriding it) resolved for the VarStore's device.
pub fn build(
    cfg: &RunConfig,
    vs: &nn::Path,
    precision: Option<ComputePrecision>,
) -> Result<(Trained, PrecisionChoice)> {
    let (model, choice) = cfg.effective_model(vs.device(), precision);
    let vocab = model.vocab();
    let trained = match cfg.objective {
        ObjectiveConfig::Md4 { schedule } => {
            Trained::Md4(Md4 { denoiser: model.build_network(vs)?, schedule: Schedule::md4(schedule), vocab })
        }
        ObjectiveConfig::Genmd4 { power_init } => Trained::GenMd4(GenMd4 {
            denoiser: model.build_network(vs)?,
            schedule: GenMd4Schedule::new(&(vs / "genmd4"), vocab, power_init),
        }),
        ObjectiveConfig::Ar => Trained::Ar(ArObjective { model: model.build_ar(vs)? }),
        ObjectiveConfig::D3pm { steps, aux_weight } => {
            Trained::D3pm(D3pm::new(model.build_network(vs)?, vocab, D3pmConfig { steps, aux_weight }))
        }
        ObjectiveConfig::Sedd { schedule } => {
            Trained::Sedd(Sedd::new(model.build_network(vs)?, Schedule::md4(schedule), vocab))
        }
        ObjectiveConfig::Campbell { schedule } => {
            Trained::Campbell(Campbell::new(model.build_network(vs)?, Schedule::md4(schedule), vocab))
        }
    };
    Ok((trained, choice))
}

impl Trained {
    /// The loss as the training loop and the evaluator see it.
    pub fn objective(&self) -> &dyn Objective {
        match self {
            Self::Md4(o) => o,
            Self::GenMd4(o) => o,
            Self::Ar(o) => o,
            Self::D3pm(o) => o,
            Self::Sedd(o) => o,
            Self::Campbell(o) => o,
        }
    }

    /// Upper bound on −log p(x_free | x_fixed) of every sequence in nats (spec §5.4), the mean
    /// of `passes` antithetic draws of t; `None` for models without a scalar schedule.
    ///
    /// # Shapes
    /// `x: [B, N]`, `free: [B, N]` bool → `[B]` float64.
    pub fn conditional_nelbo(&self, x: &Tensor, free: &Tensor, passes: usize) -> Option<Tensor> {
        let (net, schedule, vocab) = self.scalar_diffusion()?;
        let b = x.size()[0];
        tch::no_grad(|| {
            let mut total = Tensor::zeros([b], (Kind::Double, x.device()));
            for _ in 0..passes.max(1) {
                let t = md4_core::forward::antithetic_times(b, x.device());
                let nelbo = md4_core::elbo::conditional_nelbo(net, x, free, &t, &schedule, vocab, false);
                total += nelbo.to_kind(Kind::Double);
            }
            Some(total / passes.max(1) as f64)
        })
    }

    /// The masked-diffusion denoiser and its scalar schedule, for the finite-T bound and the
    /// ancestral sampler; `None` for the AR baseline and GenMD4 (per-token schedule).
    pub fn scalar_diffusion(&self) -> Option<(&Network, Schedule, Vocab)> {
        match self {
            Self::Md4(o) => Some((&o.denoiser, o.schedule, o.vocab)),
            Self::D3pm(o) => Some((&o.denoiser, o.schedule(), o.vocab)),
            Self::Sedd(o) => Some((&o.denoiser, o.schedule, o.vocab)),
            Self::Campbell(o) => Some((&o.denoiser, o.schedule, o.vocab)),
            Self::GenMd4(_) | Self::Ar(_) => None,
        }
    }

    /// Whether the reported `nelbo` is an exact likelihood (AR) rather than a bound.
    pub fn is_exact(&self) -> bool {
        matches!(self, Self::Ar(_))
    }

    /// Draw `batch` sequences of `seq_len` tokens (EMA weights must already be loaded).
    /// Diffusion models use the ancestral sampler of spec §5 (GenMD4 its per-token variant);
    /// the AR baseline samples left to right with one network call per token. Positions fixed
    /// by the request's conditioning are kept.
    ///
    /// # Shapes
    /// → tokens `[batch, seq_len]` int64 on `device`.
    pub fn sample(&self, request: &SampleRequest) -> SampleOutput {
        match self {
            Self::GenMd4(o) => {
                let w = tch::no_grad(|| o.schedule.w());
                genmd4_sample(&o.denoiser, &w, o.schedule.vocab, request)
            }
            Self::Ar(o) => ar_sample(o, request),
            _ => {
                let (net, schedule, vocab) = self.scalar_diffusion().expect("a scalar-schedule model");
                ancestral_sample(net, &schedule, vocab, request)
            }
        }
    }
}

impl Trained {
    /// [`Trained::sample`] with the cached ancestral sampler for scalar-schedule diffusion
    /// models (the network call is skipped when no token changed and the denoiser ignores t;
    /// identical samples, fewer calls). GenMD4 and the AR baseline sample as usual.
    pub fn sample_cached(&self, request: &SampleRequest) -> SampleOutput {
        match self.scalar_diffusion() {
            Some((net, schedule, vocab)) => {
                md4_core::sampler::cached_ancestral_sample(net, &schedule, vocab, request)
            }
            None => self.sample(request),
        }
    }
}

/// Left-to-right sampling from the AR baseline (top-p and precision as for diffusion).
fn ar_sample(o: &ArObjective, request: &SampleRequest) -> SampleOutput {
    let &SampleRequest { batch, seq_len, cond, sampler: cfg, device } = request;
    let _guard = tch::no_grad_guard();
    let mut tokens = Tensor::zeros([batch, 0], (Kind::Int64, device));
    for n in 0..seq_len {
        let logits = o.model.next_token_logits(&tokens);
        let mut probs = logits.to_kind(Kind::Double).softmax(-1, Kind::Double);
        if let Some(p) = cfg.top_p {
            probs = md4_core::sampler::top_p_filter(&probs, p);
        }
        let mut next = md4_core::categorical::sample(&probs, cfg.precision).unsqueeze(1);
        if let Some(c) = cond {
            let given = c.tokens.narrow(1, n, 1).to_device(device);
            next = given.where_self(&c.fixed.narrow(1, n, 1).to_device(device), &next);
        }
        tokens = Tensor::cat(&[tokens, next], 1);
    }
    // Left to right: token n is revealed at step n + 1 (given tokens at step 0).
    let mut reveal_step =
        (Tensor::arange(seq_len, (Kind::Int64, device)) + 1).unsqueeze(0).repeat([batch, 1]);
    if let Some(c) = cond {
        reveal_step = reveal_step.masked_fill(&c.fixed.to_device(device), 0);
    }
    SampleOutput { tokens, network_calls: seq_len, argmax_filled: 0, reveal_step }
}
