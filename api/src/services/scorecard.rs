//! How the ledger's forecasts did once their target candles were known: accuracy against the
//! naive baseline, a Diebold–Mariano test of the difference, and how well the intervals hold.
//!
//! Over `n` scored forecasts with errors `e = predicted − actual` and baseline errors
//! `b = baseline − actual`:
//! - `mae = mean |e|`, `baseline_mae = mean |b|`, `skill = 1 − mae / baseline_mae`;
//! - Diebold–Mariano on `d = |e| − |b|`: `dm_stat = mean(d) / √(σ²/n)` with the Newey–West
//!   long-run variance `σ² = γ₀ + 2 Σ_{k=1..L} (1 − k/(L+1)) γ_k` (Bartlett kernel,
//!   `γ_k = (1/n) Σ (d_t − d̄)(d_{t−k} − d̄)`), lag `L = max(h − 1, ⌊4 (n/100)^(2/9)⌋)`;
//!   `dm_p_value = 2 (1 − Φ(|dm_stat|))`. Negative `dm_stat`: the model's errors are smaller.
//!   Undefined (null) below two rows, when `L ≥ n`, or when `d` does not vary;
//! - over the forecasts with an interval: `coverage` (share with `lower ≤ actual ≤ upper`,
//!   against the nominal [`INTERVAL_LEVEL`]), `mean_interval_width = mean (upper − lower)`, and
//!   `pinball_loss`, the mean of the two ends' pinball losses at their quantile levels
//!   `τ = (1 − level)/2` and `1 − τ`: `ρ_τ(y, q) = max(τ (y − q), (τ − 1)(y − q))`.

use salvo::oapi::ToSchema;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The nominal coverage of the served interval: its ends are the 5% and 95% quantiles of the
/// model's walk-forward residuals (`residual_q05`, `residual_q95`).
pub const INTERVAL_LEVEL: f64 = 0.9;

/// One forecast whose target is known.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredForecast {
    /// Forecast close.
    pub predicted: f64,
    /// The baseline's forecast (the close it was made from).
    pub baseline: f64,
    /// Lower end of its interval.
    pub lower: Option<f64>,
    /// Upper end.
    pub upper: Option<f64>,
    /// The target candle's close.
    pub actual: f64,
}

/// The numbers of a set of scored forecasts (see the module documentation); every mean is
/// `null` when there is nothing to average.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
#[salvo(schema(name = Score))]
pub struct Score {
    /// Forecasts scored.
    pub n: u64,
    /// Mean absolute error.
    pub mae: Option<f64>,
    /// The naive baseline's mean absolute error on the same forecasts.
    pub baseline_mae: Option<f64>,
    /// `1 − mae / baseline_mae`: above zero when the model beat the baseline.
    pub skill: Option<f64>,
    /// Diebold–Mariano statistic of the absolute errors (negative: the model's are smaller).
    pub dm_stat: Option<f64>,
    /// Its two-sided p-value.
    pub dm_p_value: Option<f64>,
    /// Forecasts that had an interval.
    pub with_interval: u64,
    /// Share of those whose actual close fell inside it.
    pub coverage: Option<f64>,
    /// The nominal coverage it is compared with.
    pub nominal_coverage: f64,
    /// Mean `upper − lower`, in price units.
    pub mean_interval_width: Option<f64>,
    /// Mean pinball loss of the interval's two ends, in price units.
    pub pinball_loss: Option<f64>,
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> Option<f64> {
    let n = values.len();
    (n > 0).then(|| values.sum::<f64>() / n as f64)
}

/// The pinball (quantile) loss of `quantile` as the `tau` quantile of `actual`.
pub fn pinball(tau: f64, quantile: f64, actual: f64) -> f64 {
    let miss = actual - quantile;
    (tau * miss).max((tau - 1.0) * miss)
}

/// The Newey–West lag for `n` forecasts `horizon` candles ahead.
pub fn newey_west_lag(horizon: u32, n: usize) -> usize {
    let rule = (4.0 * (n as f64 / 100.0).powf(2.0 / 9.0)).floor() as usize;
    rule.max(horizon.saturating_sub(1) as usize)
}

/// The Diebold–Mariano statistic and two-sided p-value of the loss differential `d` with `lag`
/// autocovariance lags; `None` when it is undefined.
pub fn diebold_mariano(d: &[f64], lag: usize) -> Option<(f64, f64)> {
    let n = d.len();
    if n < 2 || lag >= n {
        return None;
    }
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
        variance += 2.0 * (1.0 - k as f64 / (lag as f64 + 1.0)) * autocovariance(k);
    }
    if !(variance.is_finite() && variance > 0.0) {
        return None;
    }
    let statistic = mean / (variance / count).sqrt();
    Some((statistic, 2.0 * Normal::standard().sf(statistic.abs())))
}

/// The score of `forecasts` (oldest first), made `horizon` candles ahead.
pub fn score(forecasts: &[ScoredForecast], horizon: u32) -> Score {
    let abs_errors = || forecasts.iter().map(|f| (f.predicted - f.actual).abs());
    let baseline_errors = || forecasts.iter().map(|f| (f.baseline - f.actual).abs());
    let mae = mean(abs_errors());
    let baseline_mae = mean(baseline_errors());
    let skill = match (mae, baseline_mae) {
        (Some(m), Some(b)) if b > 0.0 => Some(1.0 - m / b),
        _ => None,
    };
    let d: Vec<f64> = abs_errors()
        .zip(baseline_errors())
        .map(|(m, b)| m - b)
        .collect();
    let dm = diebold_mariano(&d, newey_west_lag(horizon, d.len()));
    let bands: Vec<(f64, f64, f64)> = forecasts
        .iter()
        .filter_map(|f| Some((f.lower?, f.upper?, f.actual)))
        .collect();
    let tau = (1.0 - INTERVAL_LEVEL) / 2.0;
    Score {
        n: forecasts.len() as u64,
        mae,
        baseline_mae,
        skill,
        dm_stat: dm.map(|(stat, _)| stat),
        dm_p_value: dm.map(|(_, p)| p),
        with_interval: bands.len() as u64,
        coverage: mean(
            bands
                .iter()
                .map(|&(lower, upper, y)| f64::from(u8::from(lower <= y && y <= upper))),
        ),
        nominal_coverage: INTERVAL_LEVEL,
        mean_interval_width: mean(bands.iter().map(|&(lower, upper, _)| upper - lower)),
        pinball_loss: mean(bands.iter().map(|&(lower, upper, y)| {
            (pinball(tau, lower, y) + pinball(1.0 - tau, upper, y)) / 2.0
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecast(predicted: f64, baseline: f64, actual: f64) -> ScoredForecast {
        ScoredForecast {
            predicted,
            baseline,
            lower: Some(predicted - 1.0),
            upper: Some(predicted + 1.0),
            actual,
        }
    }

    #[test]
    fn nothing_scored_is_n_zero_with_no_numbers() {
        let empty = score(&[], 1);
        assert_eq!(empty.n, 0);
        assert_eq!(empty.mae, None);
        assert_eq!(empty.skill, None);
        assert_eq!(empty.dm_p_value, None);
        assert_eq!(empty.coverage, None);
        assert_eq!(empty.nominal_coverage, INTERVAL_LEVEL);
    }

    #[test]
    fn accuracy_coverage_and_pinball_by_hand() {
        let rows = [
            forecast(10.0, 9.0, 10.5),
            forecast(11.0, 10.0, 12.5),
            forecast(12.0, 13.0, 12.0),
        ];
        let s = score(&rows, 1);
        let close = |got: Option<f64>, expected: f64| {
            assert!(
                (got.expect("defined") - expected).abs() < 1e-12,
                "{got:?} {expected}"
            )
        };
        assert_eq!(s.n, 3);
        close(s.mae, (0.5 + 1.5 + 0.0) / 3.0);
        close(s.baseline_mae, (1.5 + 2.5 + 1.0) / 3.0);
        close(s.skill, 1.0 - 2.0 / 5.0);
        assert_eq!(s.coverage, Some(2.0 / 3.0), "12.5 is outside 10..12");
        assert_eq!(s.mean_interval_width, Some(2.0));
        // Row 2: actual 0.5 above the upper end (τ 0.95) and 2.5 above the lower one (τ 0.05).
        let row2 = (0.05 * 2.5 + 0.95 * 0.5) / 2.0;
        let row1 = (0.05 * 1.5 + 0.05 * 0.5) / 2.0;
        let row3 = (0.05 * 1.0 + 0.05 * 1.0) / 2.0;
        let expected = (row1 + row2 + row3) / 3.0;
        assert!((s.pinball_loss.expect("pinball") - expected).abs() < 1e-12);
    }

    #[test]
    fn diebold_mariano_matches_a_hand_computation() {
        let d = [-1.0, 0.5, -0.25, -2.0, 1.0, -0.5];
        let (stat, p) = diebold_mariano(&d, 1).expect("defined");
        let mean = d.iter().sum::<f64>() / 6.0;
        let g0 = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 6.0;
        let g1 = (1..6)
            .map(|t| (d[t] - mean) * (d[t - 1] - mean))
            .sum::<f64>()
            / 6.0;
        let variance = g0 + 2.0 * 0.5 * g1;
        let expected = mean / (variance / 6.0).sqrt();
        assert!((stat - expected).abs() < 1e-12);
        assert!(p > 0.0 && p < 1.0);
        assert_eq!(diebold_mariano(&[1.0, 1.0, 1.0], 0), None, "no variation");
        assert_eq!(diebold_mariano(&[1.0], 0), None);
        assert_eq!(newey_west_lag(1, 100), 4);
        assert_eq!(newey_west_lag(24, 100), 23);
    }
}
