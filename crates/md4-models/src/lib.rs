//! Networks that implement [`md4_core::Denoiser`] (Shi et al. 2024, §7 of the spec): the text
//! transformer with adaLN-Zero time conditioning (§7.1) and its time-independent variant, the
//! autoregressive baseline built on the same backbone, the CIFAR-10 U-Net (§7.2) and the
//! ImageNet 64×64 U-Net + DiT (§7.3); their configurations and named presets.
//!
//! Every network returns float32 logits over the V real tokens (never a mask column) and can
//! run its matrix multiplications in bf16 (`compute_dtype: bf16`) while keeping the residual
//! stream, norms and logits in float32 (pitfall 24).

pub mod ar;
pub mod compute;
pub mod config;
pub mod dit;
pub mod frame;
pub mod gpt2;
pub mod images;
pub mod layers;
pub mod transformer;
pub mod unet;
pub mod uvit;

pub use ar::{ArObjective, ArTransformer};
pub use compute::{ComputePrecision, Hardware, PrecisionChoice};
pub use config::{CPU_PRESETS, ModelConfig, Network, PAPER_PRESETS, describe, preset, preset_names};
pub use dit::DitConfig;
pub use gpt2::{Gpt2, Gpt2Config};
pub use images::ImageShape;
pub use layers::{ComputeDtype, count_parameters};
pub use transformer::{MlpType, TimeConditioning, TokenEmbedding, Transformer, TransformerConfig};
pub use unet::{MidAttention, Unet, UnetConfig};
pub use uvit::{Uvit, UvitConfig};
