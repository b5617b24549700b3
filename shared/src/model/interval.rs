//! The interval around a forecast, split-conformal from the relative residuals of walk-forward
//! evaluation (errors on rows the model was not fitted on), and how such an interval scores on
//! rows it was not calibrated on: what a fitted model carries and what evaluation produces, so
//! it depends on neither.
//!
//! Calibration: with `n` out-of-sample relative residuals `r = actual / predicted − 1` sorted
//! `r_(1) ≤ … ≤ r_(n)` and nominal level `1 − α`, the interval is `[r_(k_lo), r_(k_hi)]` with
//! `k_lo = ⌊(n + 1) α/2⌋` and `k_hi = ⌈(n + 1)(1 − α/2)⌉`, the finite-sample corrected ranks of
//! split-conformal prediction, α/2 in each tail: a new row exchangeable with the residuals falls
//! inside with probability at least `1 − α`. With fewer than `2/α − 1` residuals those ranks
//! fall outside the sample, and the smallest or largest residual is used instead (coverage may
//! then be below nominal).

use serde::{Deserialize, Serialize};

/// Default nominal coverage of forecast intervals (`PRICECAST_INTERVAL_LEVEL`).
pub const DEFAULT_INTERVAL_LEVEL: f64 = 0.9;

/// Parses `PRICECAST_INTERVAL_LEVEL`: a number strictly between 0 and 1.
pub fn parse_interval_level(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "PRICECAST_INTERVAL_LEVEL must be a number between 0 and 1, both excluded, such as 0.9 (got {s})"
        )),
    }
}

/// Quantiles of the relative residuals `actual / predicted − 1` seen in walk-forward: a forecast
/// `f` has the interval `f × (1 + lower) ..= f × (1 + upper)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualInterval {
    /// Quantile level of `lower` (α/2: 0.05 at the default level).
    pub lower_quantile: f64,
    /// Quantile level of `upper` (1 − α/2: 0.95 at the default level).
    pub upper_quantile: f64,
    /// The lower quantile of `actual / predicted − 1`.
    pub lower: f64,
    /// The upper quantile of `actual / predicted − 1`.
    pub upper: f64,
    /// Residuals the quantiles were taken over.
    pub rows: usize,
}

impl ResidualInterval {
    /// The split-conformal interval at nominal `level` (in (0, 1)) from out-of-sample relative
    /// residuals; `None` without residuals.
    pub fn conformal(residuals: &[f64], level: f64) -> Option<Self> {
        let mut sorted: Vec<f64> = residuals.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        let tail = (1.0 - level) / 2.0;
        let count = (n + 1) as f64;
        // Ranks from 1; a small epsilon keeps an exact product such as 0.95 × 20 = 19 on 19.
        let low_rank = ((count * tail) + 1e-9).floor() as usize;
        let high_rank = ((count * (1.0 - tail)) - 1e-9).ceil() as usize;
        Some(Self {
            lower_quantile: tail,
            upper_quantile: 1.0 - tail,
            lower: sorted[low_rank.clamp(1, n) - 1],
            upper: sorted[high_rank.clamp(1, n) - 1],
            rows: n,
        })
    }

    /// The nominal coverage, `upper_quantile − lower_quantile`.
    pub fn level(&self) -> f64 {
        self.upper_quantile - self.lower_quantile
    }

    /// The interval around a forecast close.
    pub fn around(&self, predicted_close: f64) -> (f64, f64) {
        (
            predicted_close * (1.0 + self.lower),
            predicted_close * (1.0 + self.upper),
        )
    }
}

/// How intervals did on rows they were not calibrated on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalScore {
    /// Rows scored.
    pub rows: usize,
    /// Share of the rows whose actual close fell inside the interval (ends included).
    pub coverage: f64,
    /// Mean width of the interval, in percent of the forecast close.
    pub width_pct: f64,
    /// Mean pinball loss of the lower end at its quantile level, in price units.
    pub pinball_lower: f64,
    /// Mean pinball loss of the upper end at its quantile level, in price units.
    pub pinball_upper: f64,
}

/// The pinball (quantile) loss of the forecast `quantile` at level `tau` when `actual` came.
pub fn pinball_loss(actual: f64, quantile: f64, tau: f64) -> f64 {
    let miss = actual - quantile;
    if miss >= 0.0 {
        tau * miss
    } else {
        (tau - 1.0) * miss
    }
}

impl IntervalScore {
    /// Scores `interval` around each forecast in `predicted` against `actual`, adding to the
    /// rows already scored.
    pub fn add(&mut self, interval: &ResidualInterval, predicted: &[f64], actual: &[f64]) {
        let before = self.rows as f64;
        let (mut inside, mut width, mut low, mut high) = (0usize, 0.0, 0.0, 0.0);
        for (&p, &a) in predicted.iter().zip(actual) {
            let (lo, hi) = interval.around(p);
            if lo <= a && a <= hi {
                inside += 1;
            }
            width += 100.0 * (hi - lo) / p;
            low += pinball_loss(a, lo, interval.lower_quantile);
            high += pinball_loss(a, hi, interval.upper_quantile);
        }
        let added = predicted.len().min(actual.len());
        let total = before + added as f64;
        if added == 0 {
            return;
        }
        let mean = |old: f64, sum: f64| (old * before + sum) / total;
        self.coverage = mean(self.coverage, inside as f64);
        self.width_pct = mean(self.width_pct, width);
        self.pinball_lower = mean(self.pinball_lower, low);
        self.pinball_upper = mean(self.pinball_upper, high);
        self.rows += added;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformal_ranks_carry_the_finite_sample_correction() {
        // 19 residuals −0.09, −0.08, …, 0.09; level 0.9: (n + 1) = 20, k_lo = ⌊20 · 0.05⌋ = 1,
        // k_hi = ⌈20 · 0.95⌉ = 19: the extremes.
        let residuals: Vec<f64> = (-9..=9).map(|k| f64::from(k) / 100.0).collect();
        let interval = ResidualInterval::conformal(&residuals, 0.9).expect("residuals");
        assert_eq!((interval.lower, interval.upper), (-0.09, 0.09));
        assert!((interval.level() - 0.9).abs() < 1e-12);
        // 99 residuals 1..=99 (in order reversed): k_lo = ⌊100 · 0.05⌋ = 5, k_hi = 95.
        let residuals: Vec<f64> = (1..=99).rev().map(f64::from).collect();
        let interval = ResidualInterval::conformal(&residuals, 0.9).expect("residuals");
        assert_eq!((interval.lower, interval.upper), (5.0, 95.0));
        // Level 0.8 over 9 residuals: k_lo = ⌊10 · 0.1⌋ = 1, k_hi = ⌈10 · 0.9⌉ = 9.
        let nine: Vec<f64> = (1..=9).map(f64::from).collect();
        let interval = ResidualInterval::conformal(&nine, 0.8).expect("residuals");
        assert_eq!((interval.lower, interval.upper), (1.0, 9.0));
        // Too few for the level: the extremes; none: no interval.
        let interval = ResidualInterval::conformal(&[0.5, -0.5], 0.99).expect("residuals");
        assert_eq!((interval.lower, interval.upper), (-0.5, 0.5));
        assert_eq!(ResidualInterval::conformal(&[], 0.9), None);
    }

    #[test]
    fn the_level_is_strictly_between_0_and_1() {
        assert_eq!(parse_interval_level("0.9"), Ok(0.9));
        assert_eq!(parse_interval_level(" 0.5 "), Ok(0.5));
        for bad in ["0", "1", "1.5", "-0.1", "ninety", "NaN", ""] {
            let err = parse_interval_level(bad).expect_err(bad);
            assert!(err.contains("PRICECAST_INTERVAL_LEVEL"), "{err}");
        }
    }

    #[test]
    fn scores_by_hand() {
        let interval = ResidualInterval {
            lower_quantile: 0.1,
            upper_quantile: 0.9,
            lower: -0.01,
            upper: 0.02,
            rows: 50,
        };
        // Forecast 100: interval 99..102. Actuals 100 (inside), 98 (below), 103 (above).
        let mut score = IntervalScore::default();
        score.add(&interval, &[100.0, 100.0], &[100.0, 98.0]);
        score.add(&interval, &[100.0], &[103.0]);
        assert_eq!(score.rows, 3);
        assert!((score.coverage - 1.0 / 3.0).abs() < 1e-12);
        assert!((score.width_pct - 3.0).abs() < 1e-9);
        // Lower end 99 at τ = 0.1: 0.1 · 1, 0.9 · 1, 0.1 · 4 → mean 0.4667.
        assert!((score.pinball_lower - (0.1 + 0.9 + 0.4) / 3.0).abs() < 1e-9);
        // Upper end 102 at τ = 0.9: 0.1 · 2, 0.1 · 4, 0.9 · 1 → mean 0.5.
        assert!((score.pinball_upper - (0.2 + 0.4 + 0.9) / 3.0).abs() < 1e-9);
        assert_eq!(pinball_loss(5.0, 5.0, 0.3), 0.0);
    }
}
