//! Per-feature standardisation, learned on the training rows and stored with the model.

use serde::{Deserialize, Serialize};

use super::least_squares::column_means;

/// A spread below this fraction of the mean's magnitude is rounding noise, not variation.
const ZERO_SPREAD_RATIO: f64 = 1e-12;

/// Means and scales of the features and of the target (the log return).
///
/// A feature (or target) that does not vary over the training rows gets scale 1: its
/// standardised value is then `x − mean`, zero on every training row, so it cannot influence
/// the fit, and a value seen later is not blown up by a division by zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    /// Mean of each feature over the training rows.
    pub feature_mean: Vec<f64>,
    /// Population standard deviation of each feature over the training rows (1 when zero).
    pub feature_scale: Vec<f64>,
    /// Mean of the training log returns.
    pub target_mean: f64,
    /// Population standard deviation of the training log returns (1 when zero).
    pub target_scale: f64,
}

impl Standardiser {
    /// Learns means and scales from the row-major `x` (rows × `features`) and the targets `y`.
    pub fn fit(x: &[f64], y: &[f64], features: usize) -> Self {
        let (feature_mean, target_mean) = column_means(x, y, features);
        let n = y.len() as f64;
        let mut sum_sq = vec![0.0; features];
        for row in x.chunks_exact(features) {
            for ((s, v), m) in sum_sq.iter_mut().zip(row).zip(&feature_mean) {
                *s += (v - m) * (v - m);
            }
        }
        let feature_scale = sum_sq
            .iter()
            .zip(&feature_mean)
            .map(|(s, &m)| scale((s / n).sqrt(), m))
            .collect();
        let target_sum_sq: f64 = y
            .iter()
            .map(|v| (v - target_mean) * (v - target_mean))
            .sum();
        Self {
            feature_mean,
            feature_scale,
            target_scale: scale((target_sum_sq / n).sqrt(), target_mean),
            target_mean,
        }
    }

    /// Standardises one row into `out`.
    pub fn transform_into(&self, row: &[f64], out: &mut [f64]) {
        for (((o, v), m), s) in out
            .iter_mut()
            .zip(row)
            .zip(&self.feature_mean)
            .zip(&self.feature_scale)
        {
            *o = (v - m) / s;
        }
    }

    /// Standardises row-major rows.
    pub fn transform(&self, x: &[f64]) -> Vec<f64> {
        let p = self.feature_mean.len();
        let mut out = vec![0.0; x.len()];
        for (row, out_row) in x.chunks_exact(p).zip(out.chunks_exact_mut(p)) {
            self.transform_into(row, out_row);
        }
        out
    }

    /// The standardised target of a log return.
    pub fn target(&self, log_return: f64) -> f64 {
        (log_return - self.target_mean) / self.target_scale
    }

    /// The log return of a standardised target.
    pub fn log_return(&self, standardised: f64) -> f64 {
        self.target_mean + self.target_scale * standardised
    }
}

fn scale(std: f64, mean: f64) -> f64 {
    if std == 0.0 || std <= ZERO_SPREAD_RATIO * mean.abs() || !std.is_finite() {
        1.0
    } else {
        std
    }
}
