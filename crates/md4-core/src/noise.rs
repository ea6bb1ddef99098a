//! Where the estimators' random numbers come from.
//!
//! Training draws from libtorch's generator (seeded by the trainer). Evaluation opens a *keyed
//! scope* with [`keyed`]: inside it every draw of the forward process — the time of each
//! sequence, its masking uniforms, Campbell's unmasked-position keys — comes from a
//! counter-based Philox4x32-10 stream keyed by (seed, pass, sequence index, draw slot), where the
//! slot counts the draws of one estimator call (0: times, 1: masking uniforms, 2: …). A
//! sequence's randomness then depends on nothing else: not on the batch size, the order of the
//! batches, the model or the table row. Two rows scored on the same streams share their
//! randomness (common random numbers), so the SE of their *difference* is far smaller than either
//! row's own SE.
//!
//! Values are 53-bit uniforms in [0, 1): float64 uses all 53 bits, float32 the top 24 (rounded
//! down, so never 1.0), so a float32 and a float64 draw of the same slot agree to 2⁻²⁴.

use std::cell::RefCell;
use tch::{Device, Kind, Tensor};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The Philox4x32-10 block function of Salmon et al. (2011), the counter-based generator of
/// Random123, JAX and cuRAND: ten rounds on a 128-bit counter under a 64-bit key.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The `index`-th 53-bit uniform of stream (seed, pass, row, slot), as an integer in [0, 2⁵³).
fn bits53(seed: u64, pass: u32, row: u32, slot: u32, index: u64) -> u64 {
    let block = u32::try_from(index / 2).expect("more than 2³³ draws in one slot");
    let words = philox4x32_10([block, slot, row, pass], [seed as u32, (seed >> 32) as u32]);
    let (a, b) = if index.is_multiple_of(2) { (words[0], words[1]) } else { (words[2], words[3]) };
    ((a as u64) << 21) ^ ((b as u64) >> 11)
}

/// The `index`-th uniform of stream (seed, pass, row, slot) as float64 in [0, 1).
pub fn keyed_uniform(seed: u64, pass: u32, row: u32, slot: u32, index: u64) -> f64 {
    bits53(seed, pass, row, slot, index) as f64 * (-53f64).exp2()
}

/// The same draw as float32 in [0, 1): the top 24 of the 53 bits.
pub fn keyed_uniform_f32(seed: u64, pass: u32, row: u32, slot: u32, index: u64) -> f32 {
    (bits53(seed, pass, row, slot, index) >> 29) as f32 * (-24f32).exp2()
}

/// An open keyed scope: the stream key and the sequence index of every batch row.
#[derive(Debug)]
struct Scope {
    seed: u64,
    pass: u32,
    rows: Vec<u32>,
    next_slot: u32,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Restores the enclosing scope (usually none) when `keyed` returns or unwinds.
struct Restore(Option<Scope>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        SCOPE.with(|s| *s.borrow_mut() = previous);
    }
}

/// Run `f` with every forward-process draw keyed by (seed, pass, `rows[b]`, slot) for batch
/// row b; slots count from 0 within this call. `rows` are the sequences' indices in the
/// evaluation set (their position in the batch does not matter).
pub fn keyed<R>(seed: u64, pass: u32, rows: &[u64], f: impl FnOnce() -> R) -> R {
    let rows =
        rows.iter().map(|&r| u32::try_from(r).expect("sequence index beyond 2³² in a keyed scope")).collect();
    let scope = Scope { seed, pass, rows, next_slot: 0 };
    let previous = SCOPE.with(|s| s.borrow_mut().replace(scope));
    let _restore = Restore(previous);
    f()
}

/// Whether a keyed scope is open on this thread.
pub fn is_keyed() -> bool {
    SCOPE.with(|s| s.borrow().is_some())
}

/// Uniforms in [0, 1) of `shape` (first dimension = batch rows) and float `kind`: from the
/// keyed stream of each row inside [`keyed`] (taking the next slot), else from libtorch's
/// generator.
///
/// # Panics
/// Inside a keyed scope, when `shape[0]` is not the scope's number of rows or `kind` is not
/// float32/float64.
pub fn uniform(shape: &[i64], kind: Kind, device: Device) -> Tensor {
    let keyed = SCOPE.with(|s| {
        let mut guard = s.borrow_mut();
        let scope = guard.as_mut()?;
        let slot = scope.next_slot;
        scope.next_slot += 1;
        Some((scope.seed, scope.pass, scope.rows.clone(), slot))
    });
    let Some((seed, pass, rows, slot)) = keyed else {
        return Tensor::rand(shape, (kind, device));
    };
    assert_eq!(
        shape.first().copied(),
        Some(rows.len() as i64),
        "a keyed draw's first dimension must be the batch ({} rows), got shape {shape:?}",
        rows.len()
    );
    let per_row = shape[1..].iter().product::<i64>() as u64;
    // One row after another, `per_row` draws each, in the float kind asked for.
    fn draws<T: tch::kind::Element>(rows: &[u32], per_row: u64, draw: impl Fn(u32, u64) -> T) -> Tensor {
        let v: Vec<T> = rows
            .iter()
            .flat_map(|&row| (0..per_row).map(move |i| (row, i)))
            .map(|(row, i)| draw(row, i))
            .collect();
        Tensor::from_slice(&v)
    }
    let values = match kind {
        Kind::Float => draws(&rows, per_row, |row, i| keyed_uniform_f32(seed, pass, row, slot, i)),
        Kind::Double => draws(&rows, per_row, |row, i| keyed_uniform(seed, pass, row, slot, i)),
        other => panic!("keyed uniforms are float32 or float64, not {other:?}"),
    };
    values.view(shape).to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123's `kat_vectors` for philox4x32, 10 rounds.
    #[test]
    fn philox_matches_the_random123_known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn keyed_draws_depend_on_the_row_not_its_position_in_the_batch() {
        let a = keyed(7, 1, &[3, 9, 4], || uniform(&[3, 5], Kind::Float, Device::Cpu));
        let b = keyed(7, 1, &[9, 4, 3], || uniform(&[3, 5], Kind::Float, Device::Cpu));
        let perm = Tensor::from_slice(&[1i64, 2, 0]); // b's rows 9, 4, 3 are a's rows 1, 2, 0
        assert!(a.index_select(0, &perm).equal(&b));
        // A one-row batch of row 9 sees the same draws as row 9 inside a larger batch.
        let single = keyed(7, 1, &[9], || uniform(&[1, 5], Kind::Float, Device::Cpu));
        assert!(single.equal(&a.narrow(0, 1, 1)));
    }

    #[test]
    fn slots_seeds_and_passes_give_fresh_streams() {
        let (first, second) = keyed(7, 0, &[0, 1], || {
            (uniform(&[2, 4], Kind::Double, Device::Cpu), uniform(&[2, 4], Kind::Double, Device::Cpu))
        });
        let other_pass = keyed(7, 1, &[0, 1], || uniform(&[2, 4], Kind::Double, Device::Cpu));
        let other_seed = keyed(8, 0, &[0, 1], || uniform(&[2, 4], Kind::Double, Device::Cpu));
        for other in [&second, &other_pass, &other_seed] {
            assert!(!first.equal(other));
        }
        // The scope restarts its slots on every call, and closes when it returns.
        let again = keyed(7, 0, &[0, 1], || uniform(&[2, 4], Kind::Double, Device::Cpu));
        assert!(first.equal(&again));
        assert!(!is_keyed());
    }

    #[test]
    fn float32_draws_are_the_float64_draws_rounded_down() {
        for i in 0..1000 {
            let d = keyed_uniform(3, 2, 5, 1, i);
            let f = keyed_uniform_f32(3, 2, 5, 1, i) as f64;
            assert!(f <= d && d - f < (-24f64).exp2() && f < 1.0, "draw {i}: {f} vs {d}");
        }
    }

    /// Chi-square test of uniformity over 20 equal bins, and a lag-1 correlation check, on
    /// 100,000 draws spread over rows and slots (p = 0.001 critical value of χ²₁₉ is 43.8).
    #[test]
    fn keyed_uniforms_are_uniform_and_uncorrelated() {
        let bins = 20;
        let mut counts = vec![0usize; bins];
        let mut values = Vec::new();
        for row in 0..100 {
            for i in 0..1000 {
                let u = keyed_uniform(11, 0, row, row % 3, i);
                counts[(u * bins as f64) as usize] += 1;
                values.push(u);
            }
        }
        let expected = values.len() as f64 / bins as f64;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 43.8, "chi-square {chi2}");
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let lag1 = values.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>()
            / ((values.len() - 1) as f64 * var);
        assert!(lag1.abs() < 0.01, "lag-1 correlation {lag1}");
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }
}
