//! The interval around a forecast, from the relative residuals of walk-forward evaluation: what
//! a fitted model carries and what evaluation produces, so it depends on neither.

use serde::{Deserialize, Serialize};

/// Lower quantile of the relative residuals reported for forecast intervals.
pub const LOWER_RESIDUAL_QUANTILE: f64 = 0.05;
/// Upper quantile of the relative residuals reported for forecast intervals.
pub const UPPER_RESIDUAL_QUANTILE: f64 = 0.95;

/// Quantiles of the relative residuals `actual / predicted − 1` seen in walk-forward: a forecast
/// `f` has the interval `f × (1 + lower) ..= f × (1 + upper)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualInterval {
    /// Quantile level of `lower` (0.05).
    pub lower_quantile: f64,
    /// Quantile level of `upper` (0.95).
    pub upper_quantile: f64,
    /// The lower quantile of `actual / predicted − 1`.
    pub lower: f64,
    /// The upper quantile of `actual / predicted − 1`.
    pub upper: f64,
    /// Residuals the quantiles were taken over.
    pub rows: usize,
}

impl ResidualInterval {
    /// The interval around a forecast close.
    pub fn around(&self, predicted_close: f64) -> (f64, f64) {
        (
            predicted_close * (1.0 + self.lower),
            predicted_close * (1.0 + self.upper),
        )
    }
}
