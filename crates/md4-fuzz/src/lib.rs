//! A small, dependency-free mutation fuzzer for the parser tests (issue 15 §5): seeded and
//! bounded, so `cargo test` runs a fixed number of cases per target (`MD4_FUZZ_CASES`, default
//! given by each test; `just fuzz` runs many more with fresh seeds via `MD4_FUZZ_SEED`).
//!
//! [`Mutator`] mutates bytes (bit flips, "interesting" integers written over length fields,
//! truncation, insertion, deletion, duplication, splicing) and text (line and token edits
//! for YAML). [`Harness::case`] runs one input: a panic fails the test with a reproducer file
//! written beside it; so does a case slower than the per-case time limit (a hang) or a peak
//! resident memory beyond the limit (an allocation sized by a header's claim).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Seeded xorshift-multiply generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Mutator {
    state: u64,
}

const INTERESTING_U32: [u32; 10] =
    [0, 1, 2, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
const INTERESTING_U64: [u64; 6] = [0, 1, u64::MAX, u64::MAX / 2, 1 << 40, 1 << 62];
const YAML_VALUES: [&str; 14] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    ".nan",
    ".inf",
    "null",
    "true",
    "''",
    "[]",
    "{}",
    "99999999999999999999",
    "x",
    "~",
];

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self { state: seed ^ 0x9e37_79b9_7f4a_7c15 }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// 1–4 random byte-level mutations of `input`.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let len = v.len();
            match self.below(9) {
                0 if len > 0 => {
                    let i = self.below(len);
                    v[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    v[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{', b'\n'][self.below(7)];
                }
                2 if len >= 4 => {
                    let i = self.below(len - 3);
                    let x = INTERESTING_U32[self.below(INTERESTING_U32.len())];
                    let bytes = if self.below(2) == 0 { x.to_le_bytes() } else { x.to_be_bytes() };
                    v[i..i + 4].copy_from_slice(&bytes);
                }
                3 if len >= 8 => {
                    let i = if self.below(2) == 0 { 0 } else { self.below(len - 7) };
                    v[i..i + 8]
                        .copy_from_slice(&INTERESTING_U64[self.below(INTERESTING_U64.len())].to_le_bytes());
                }
                4 => v.truncate(self.below(len + 1)),
                5 => {
                    let at = self.below(len + 1);
                    let extra: Vec<u8> = (0..1 + self.below(16)).map(|_| self.next_u64() as u8).collect();
                    v.splice(at..at, extra);
                }
                6 if len > 0 => {
                    let a = self.below(len);
                    let b = (a + 1 + self.below(32)).min(len);
                    v.drain(a..b);
                }
                7 if len > 0 => {
                    let a = self.below(len);
                    let b = (a + 1 + self.below(64)).min(len);
                    let chunk = v[a..b].to_vec();
                    let at = self.below(len + 1);
                    v.splice(at..at, chunk);
                }
                _ => {
                    let n = self.below(len + 1);
                    v = (0..n).map(|_| self.next_u64() as u8).collect();
                }
            }
        }
        v
    }

    /// 1–3 line/token edits of a text (YAML configs and manifests): delete, duplicate or
    /// swap lines, change indentation, replace a value, rename a key, insert an unknown key.
    pub fn mutate_text(&mut self, input: &str) -> String {
        let mut lines: Vec<String> = input.lines().map(String::from).collect();
        for _ in 0..1 + self.below(3) {
            let n = lines.len();
            if n == 0 {
                lines.push("x: 1".into());
                continue;
            }
            let i = self.below(n);
            match self.below(7) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                2 => lines.swap(i, self.below(n)),
                3 => lines[i] = format!("{}{}", " ".repeat(self.below(5)), lines[i].trim_start()),
                4 => {
                    if let Some((k, _)) = lines[i].split_once(':') {
                        lines[i] = format!("{k}: {}", YAML_VALUES[self.below(YAML_VALUES.len())]);
                    }
                }
                5 => {
                    if let Some((k, rest)) = lines[i].split_once(':') {
                        lines[i] = format!("{k}_typo:{rest}");
                    }
                }
                _ => {
                    let indent: String = lines[i].chars().take_while(|c| *c == ' ').collect();
                    lines.insert(i, format!("{indent}unknown_key_{}: 1", self.below(100)));
                }
            }
        }
        lines.join("\n")
    }

    /// A random string of up to `max` chars drawn from `alphabet` plus arbitrary code points.
    pub fn string(&mut self, alphabet: &[char], max: usize) -> String {
        (0..self.below(max + 1))
            .map(|_| {
                if self.below(8) == 0 {
                    char::from_u32(self.next_u64() as u32 % 0x11_0000).unwrap_or('\u{fffd}')
                } else {
                    alphabet[self.below(alphabet.len())]
                }
            })
            .collect()
    }
}

/// Runs fuzz cases for one target and enforces the no-panic, no-hang and memory rules.
#[derive(Debug)]
pub struct Harness {
    target: String,
    pub cases: usize,
    pub seed: u64,
    time_limit: Duration,
    rss_limit_mib: f64,
    reproducers: PathBuf,
    pub errors: usize,
}

impl Harness {
    /// `default_cases` unless `MD4_FUZZ_CASES` is set; seed from `MD4_FUZZ_SEED` (default 0).
    pub fn new(target: &str, default_cases: usize) -> Self {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            target: target.into(),
            cases: env("MD4_FUZZ_CASES").map_or(default_cases, |c| c as usize),
            seed: env("MD4_FUZZ_SEED").unwrap_or(0),
            time_limit: Duration::from_secs(2),
            rss_limit_mib: 2048.0,
            reproducers: std::env::temp_dir().join("md4-fuzz-failures"),
            errors: 0,
        }
    }

    pub fn mutator(&self) -> Mutator {
        Mutator::new(self.seed.wrapping_mul(0x100_0000_01b3) ^ self.target.len() as u64)
    }

    /// Run one case: `f` gets the input and returns Ok(()) for accepted inputs or the error
    /// text; `check_error` decides whether an error is acceptable (e.g. names the file).
    pub fn case(
        &mut self,
        i: usize,
        input: &[u8],
        f: impl FnOnce() -> Result<(), String>,
        check_error: impl FnOnce(&str) -> bool,
    ) {
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(f));
        let elapsed = start.elapsed();
        let fail = |why: String| -> ! {
            std::fs::create_dir_all(&self.reproducers).ok();
            let path = self.reproducers.join(format!("{}-seed{}-case{i}.bin", self.target, self.seed));
            std::fs::write(&path, input).ok();
            panic!("{} case {i} (seed {}): {why}; input saved to {}", self.target, self.seed, path.display());
        };
        match outcome {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                fail(format!("panicked: {}", msg.unwrap_or_default()))
            }
            Ok(Err(e)) => {
                self.errors += 1;
                if !check_error(&e) {
                    fail(format!("unhelpful error: {e}"))
                }
            }
            Ok(Ok(())) => {}
        }
        if elapsed > self.time_limit {
            fail(format!("took {elapsed:?} (limit {:?}): a hang?", self.time_limit));
        }
        let rss = peak_rss_mib();
        if rss > self.rss_limit_mib {
            fail(format!("peak resident memory {rss:.0} MiB (limit {} MiB)", self.rss_limit_mib));
        }
    }

    /// One line for the test log: cases run and how many were rejected with an error.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} cases (seed {}), {} rejected with an error, no panic",
            self.target, self.cases, self.seed, self.errors
        )
    }
}

/// This process's peak resident memory (Linux `VmHWM`), MiB; 0 where unknown.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:")?.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_change_the_input() {
        let seed = b"0123456789abcdefghijklmnopqrstuvwxyz".to_vec();
        let (mut a, mut b) = (Mutator::new(3), Mutator::new(3));
        let mut changed = 0;
        for _ in 0..100 {
            let (x, y) = (a.mutate(&seed), b.mutate(&seed));
            assert_eq!(x, y);
            changed += usize::from(x != seed);
        }
        assert!(changed > 90, "{changed}");
        assert_ne!(a.mutate_text("a: 1\nb: 2"), "a: 1\nb: 2".to_string() + "x");
    }

    #[test]
    #[should_panic(expected = "panicked: boom")]
    fn a_panic_fails_with_a_reproducer() {
        let mut h = Harness::new("selftest", 1);
        h.case(0, b"x", || panic!("boom"), |_| true);
    }
}
