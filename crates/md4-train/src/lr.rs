//! The learning-rate schedule of every paper run (spec §8, pitfall 14): linear warm-up from 0,
//! then cosine decay to exactly 0 at the last step,
//! `lr(k) = base·min(1, k/W)·½(1 + cos(π·max(0, (k−W)/(K−W))))`.
//!
//! `k` is the 0-based index of the update, as optax evaluates a schedule at its step count
//! before incrementing it, so the first update has lr 0.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Warm-up plus cosine decay (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// The peak learning rate.
    pub base: f64,
    /// W, the number of warm-up updates.
    pub warmup: i64,
    /// K, the total number of updates.
    pub total: i64,
}

impl LrSchedule {
    /// The learning rate of update `k` (0-based).
    pub fn at(&self, k: i64) -> f64 {
        let k = k as f64;
        let (w, total) = (self.warmup as f64, self.total as f64);
        let warm = if self.warmup > 0 { (k / w).min(1.0) } else { 1.0 };
        let decay_len = (total - w).max(1.0);
        let progress = ((k - w) / decay_len).clamp(0.0, 1.0);
        self.base * warm * 0.5 * (1.0 + (PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_starts_at_zero_and_is_linear() {
        let s = LrSchedule { base: 3e-4, warmup: 100, total: 1000 };
        assert_eq!(s.at(0), 0.0);
        // Before the decay starts, cos(0) = 1: lr = base·k/W exactly.
        assert!((s.at(25) - 3e-4 * 0.25).abs() < 1e-18);
        assert!((s.at(100) - 3e-4).abs() < 1e-18);
    }

    #[test]
    fn cosine_reaches_half_at_midpoint_and_zero_at_the_end() {
        let s = LrSchedule { base: 2.0, warmup: 10, total: 110 };
        // Midpoint of the decay: ½(1 + cos(π/2)) = ½.
        assert!((s.at(60) - 1.0).abs() < 1e-12);
        // A quarter: ½(1 + cos(π/4)) = ½ + √2/4.
        assert!((s.at(35) - 2.0 * (0.5 + 2f64.sqrt() / 4.0)).abs() < 1e-12);
        assert!(s.at(110).abs() < 1e-15);
        // Past the end it stays at 0 (max(0, ·) clamps only below; we clamp both ways).
        assert!(s.at(500).abs() < 1e-15);
    }

    #[test]
    fn matches_the_formula_everywhere() {
        let s = LrSchedule { base: 5e-4, warmup: 7, total: 53 };
        for k in 0..=53 {
            let (kf, w, total) = (k as f64, 7.0, 53.0);
            let expect =
                5e-4 * (kf / w).min(1.0) * 0.5 * (1.0 + (PI * ((kf - w) / (total - w)).max(0.0)).cos());
            assert!((s.at(k) - expect).abs() < 1e-18, "k = {k}");
        }
    }

    #[test]
    fn no_warmup_starts_at_base() {
        let s = LrSchedule { base: 1.0, warmup: 0, total: 4 };
        assert_eq!(s.at(0), 1.0);
        assert!((s.at(2) - 0.5).abs() < 1e-15);
    }
}
