//! The one place where nats become bits (style: nats inside, bits only at the edge).

/// ln 2.
pub const LN_2: f64 = std::f64::consts::LN_2;

/// Nats → bits.
pub fn nats_to_bits(nats: f64) -> f64 {
    nats / LN_2
}

/// Nats per token → perplexity exp(nats).
pub fn nats_to_perplexity(nats_per_token: f64) -> f64 {
    nats_per_token.exp()
}
