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

use pricecast_shared::model::{DieboldMariano, newey_west_lag, pinball_loss};
use salvo::oapi::ToSchema;
use serde::Serialize;

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
    let model_errors: Vec<f64> = forecasts.iter().map(|f| f.predicted - f.actual).collect();
    let naive_errors: Vec<f64> = forecasts.iter().map(|f| f.baseline - f.actual).collect();
    let dm = DieboldMariano::test(
        &model_errors,
        &naive_errors,
        newey_west_lag(horizon, forecasts.len()),
    )
    .map(|dm| (dm.statistic, dm.p_value));
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
            (pinball_loss(y, lower, tau) + pinball_loss(y, upper, 1.0 - tau)) / 2.0
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
    fn the_diebold_mariano_test_is_the_train_job_s_own() {
        // Forecasts whose absolute errors differ from the baseline's by d, row by row.
        let d = [-1.0, 0.5, -0.25, -2.0, 1.0, -0.5];
        let rows: Vec<ScoredForecast> = d
            .iter()
            .map(|&d| forecast(100.0 + 5.0 + d, 105.0, 100.0))
            .collect();
        let s = score(&rows, 1);
        let lag = newey_west_lag(1, d.len());
        let mean = d.iter().sum::<f64>() / 6.0;
        let gamma = |k: usize| {
            (k..6)
                .map(|t| (d[t] - mean) * (d[t - k] - mean))
                .sum::<f64>()
                / 6.0
        };
        let variance = gamma(0)
            + (1..=lag)
                .map(|k| 2.0 * (1.0 - k as f64 / (lag as f64 + 1.0)) * gamma(k))
                .sum::<f64>();
        let expected = mean / (variance / 6.0).sqrt();
        assert!((s.dm_stat.expect("defined") - expected).abs() < 1e-12);
        let p = s.dm_p_value.expect("defined");
        assert!(p > 0.0 && p < 1.0);
    }
}
