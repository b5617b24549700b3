//! The Diebold–Mariano test: are a model's absolute errors different from the baseline's on the
//! same rows, more than chance explains?
//!
//! With the loss differential `d_t = |e_model,t| − |e_baseline,t|` over `n` rows, its mean `d̄`
//! and autocovariances `γ_k = (1/n) Σ_{t=k+1..n} (d_t − d̄)(d_{t−k} − d̄)`, the long-run variance
//! is Newey–West's with the Bartlett kernel, `σ² = γ_0 + 2 Σ_{k=1..L} (1 − k/(L+1)) γ_k`
//! (never negative), and the statistic `DM = d̄ / √(σ²/n)`, standard normal under equal accuracy.
//! Negative means the model's errors are smaller. The p-value is two-sided, `2 (1 − Φ(|DM|))`.
//!
//! An `h`-step forecast's errors are autocorrelated up to lag `h − 1` even when it is optimal,
//! so the lag `L` is at least `h − 1`; [`newey_west_lag`] also widens it with the row count
//! (Newey and West's 1994 rule `⌊4 (n/100)^(2/9)⌋`), since absolute errors of prices cluster.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// A Diebold–Mariano test of the model's absolute errors against the baseline's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DieboldMariano {
    /// The statistic: negative when the model's absolute errors are smaller.
    pub statistic: f64,
    /// Two-sided p-value under the standard normal.
    pub p_value: f64,
    /// Mean loss differential `mean(|e_model| − |e_baseline|)`, in price units.
    pub mean_difference: f64,
    /// Newey–West long-run variance of the differential.
    pub long_run_variance: f64,
    /// Autocovariance lags in the variance.
    pub lag: usize,
    /// Rows compared.
    pub n: usize,
}

/// The lag of the long-run variance for `n` rows of `horizon`-step forecasts: at least
/// `horizon − 1`, and at least `⌊4 (n/100)^(2/9)⌋`.
pub fn newey_west_lag(horizon: u32, n: usize) -> usize {
    let rule = (4.0 * (n as f64 / 100.0).powf(2.0 / 9.0)).floor() as usize;
    rule.max(horizon.saturating_sub(1) as usize)
}

impl DieboldMariano {
    /// Tests `model_errors` against `baseline_errors` (forecast minus actual, row by row) with
    /// `lag` autocovariance lags. `None` when there are fewer than two rows, the lengths differ,
    /// `lag` is not below the row count, or the differential does not vary (two forecasts equal
    /// in every row, or identical absolute errors): then there is nothing to test.
    pub fn test(model_errors: &[f64], baseline_errors: &[f64], lag: usize) -> Option<Self> {
        let n = model_errors.len();
        if n < 2 || baseline_errors.len() != n || lag >= n {
            return None;
        }
        let d: Vec<f64> = model_errors
            .iter()
            .zip(baseline_errors)
            .map(|(m, b)| m.abs() - b.abs())
            .collect();
        let count = n as f64;
        let mean = d.iter().sum::<f64>() / count;
        let autocovariance = |k: usize| {
            d[k..]
                .iter()
                .zip(&d[..n - k])
                .map(|(a, b)| (a - mean) * (b - mean))
                .sum::<f64>()
                / count
        };
        let mut variance = autocovariance(0);
        for k in 1..=lag {
            let weight = 1.0 - k as f64 / (lag as f64 + 1.0);
            variance += 2.0 * weight * autocovariance(k);
        }
        if !(variance.is_finite() && variance > 0.0) {
            return None;
        }
        let statistic = mean / (variance / count).sqrt();
        let normal = Normal::standard();
        Some(Self {
            statistic,
            p_value: 2.0 * normal.sf(statistic.abs()),
            mean_difference: mean,
            long_run_variance: variance,
            lag,
            n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statistic written out by hand for five rows, lag 1:
    /// model errors 1, −2, 3, −1, 2 and baseline errors 2, 1, −2, 2, 1 give
    /// d = |m| − |b| = −1, 1, 1, −1, 1; d̄ = 0.2; deviations −1.2, 0.8, 0.8, −1.2, 0.8;
    /// γ_0 = (1.44 + 0.64 + 0.64 + 1.44 + 0.64) / 5 = 0.96;
    /// γ_1 = (0.8·−1.2 + 0.8·0.8 + −1.2·0.8 + 0.8·−1.2) / 5 = −0.448;
    /// σ² = 0.96 + 2 · (1 − 1/2) · (−0.448) = 0.512; DM = 0.2 / √(0.512 / 5) = 0.625;
    /// p = 2 (1 − Φ(0.625)) = 0.531971 (Φ(0.625) = 0.734014).
    #[test]
    fn the_statistic_by_hand() {
        let model = [1.0, -2.0, 3.0, -1.0, 2.0];
        let baseline = [2.0, 1.0, -2.0, 2.0, 1.0];
        let dm = DieboldMariano::test(&model, &baseline, 1).expect("testable");
        assert!((dm.mean_difference - 0.2).abs() < 1e-12, "{dm:?}");
        assert!((dm.long_run_variance - 0.512).abs() < 1e-12, "{dm:?}");
        assert!((dm.statistic - 0.625).abs() < 1e-12, "{dm:?}");
        assert!((dm.p_value - 0.531_971).abs() < 1e-6, "{dm:?}");
        // Lag 0: σ² = γ_0 = 0.96, DM = 0.2 / √(0.96 / 5).
        let plain = DieboldMariano::test(&model, &baseline, 0).expect("testable");
        assert!((plain.statistic - 0.2 / (0.96_f64 / 5.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn the_sign_says_which_is_better_and_identical_errors_are_not_tested() {
        let baseline = [1.0, -1.5, 2.0, -0.5, 1.0, 1.2, -0.8, 0.9];
        let smaller: Vec<f64> = baseline.iter().map(|e| e * 0.5).collect();
        let dm = DieboldMariano::test(&smaller, &baseline, 1).expect("testable");
        assert!(dm.statistic < 0.0 && dm.p_value < 0.05, "{dm:?}");
        let larger: Vec<f64> = baseline.iter().map(|e| e * 2.0).collect();
        assert!(
            DieboldMariano::test(&larger, &baseline, 1)
                .expect("testable")
                .statistic
                > 0.0
        );
        assert_eq!(DieboldMariano::test(&baseline, &baseline, 1), None);
        assert_eq!(DieboldMariano::test(&[1.0], &[2.0], 0), None);
        assert_eq!(DieboldMariano::test(&[1.0, 2.0], &[2.0], 0), None);
        assert_eq!(DieboldMariano::test(&[1.0, 2.0], &[2.0, 3.5], 2), None);
    }

    #[test]
    fn the_lag_covers_the_horizon_and_grows_with_the_rows() {
        assert_eq!(newey_west_lag(1, 100), 4);
        assert_eq!(newey_west_lag(1, 840), 6);
        assert_eq!(newey_west_lag(24, 840), 23);
        assert_eq!(newey_west_lag(1, 1), 1);
    }
}
