//! Sample statistics of per-sequence values (the "± SE" of every table, spec §10): the mean and
//! its standard error, and the paired difference of two evaluations scored on the same
//! sequences with the same keyed draws (common random numbers, [`crate::noise`]).

/// Mean and standard error (sample standard deviation / √n) of `values`; SE is NaN for n < 2.
pub fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Mean and standard error of the paired differences `a[i] − b[i]`: the SE of a difference
/// between two rows scored on the same sequences, far smaller than either row's own SE when
/// the rows are correlated.
///
/// Panics when the two slices differ in length (the caller checks that they pair up).
pub fn paired_difference(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "paired difference of {} and {} values", a.len(), b.len());
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    mean_and_se(&diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_se_match_the_closed_form() {
        // mean 2.5, sample variance 5/3, SE = √(5/3 / 4) = √(5/12).
        let (mean, se) = mean_and_se(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(mean, 2.5);
        assert!((se - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
        let (one, nan) = mean_and_se(&[7.0]);
        assert_eq!(one, 7.0);
        assert!(nan.is_nan());
    }

    #[test]
    fn paired_difference_cancels_the_shared_part() {
        // b = a + 1 exactly: Δ = −1 with zero spread, although a itself varies.
        let a = [0.5, 3.0, -2.0, 8.0];
        let b: Vec<f64> = a.iter().map(|x| x + 1.0).collect();
        assert_eq!(paired_difference(&a, &b), (-1.0, 0.0));
    }
}
