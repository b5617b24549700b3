//! The training data: one row per candle whose target close is known.

use chrono::DateTime;

use super::model_error;
use crate::Result;

/// Feature rows with the close they start from and the close `horizon` candles later.
///
/// Built once from a feature frame with [`Dataset::new`], which checks every value; afterwards
/// every row is usable for training and evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    feature_names: Vec<String>,
    open_time_ms: Vec<i64>,
    x: Vec<f64>,
    last_close: Vec<f64>,
    target_close: Vec<f64>,
    horizon: u32,
    interval_ms: i64,
}

impl Dataset {
    /// Checks and wraps the columns.
    ///
    /// * `x` — row-major, `open_time_ms.len()` rows × `feature_names.len()` features;
    /// * `last_close` — the row's own close; `target_close` — the close `horizon` candles later;
    /// * `interval_ms` — the candle interval, used to tell when a row's target became known.
    ///
    /// Errors name the offending feature and row: lengths must agree, there must be at least one
    /// feature and one row, feature names must be distinct, every value finite, closes > 0, open
    /// times strictly increasing, `horizon` ≥ 1 and `interval_ms` > 0.
    pub fn new(
        feature_names: Vec<String>,
        open_time_ms: Vec<i64>,
        x: Vec<f64>,
        last_close: Vec<f64>,
        target_close: Vec<f64>,
        horizon: u32,
        interval_ms: i64,
    ) -> Result<Self> {
        let invalid = |message: String| Err(model_error("building the training data", message));
        let p = feature_names.len();
        let n = open_time_ms.len();
        if p == 0 {
            return invalid("there are no features".into());
        }
        if n == 0 {
            return invalid("there are no rows with a known target".into());
        }
        if horizon == 0 || interval_ms <= 0 {
            return invalid(format!(
                "horizon ({horizon}) and interval ({interval_ms} ms) must be positive"
            ));
        }
        if x.len() != n * p || last_close.len() != n || target_close.len() != n {
            return invalid(format!(
                "column lengths disagree: {n} open times, {} feature values for {p} features \
                 (expected {}), {} last closes, {} target closes",
                x.len(),
                n * p,
                last_close.len(),
                target_close.len()
            ));
        }
        for (j, name) in feature_names.iter().enumerate() {
            if feature_names[..j].contains(name) {
                return invalid(format!("feature {name} appears twice"));
            }
        }
        for (j, name) in feature_names.iter().enumerate() {
            let column = || x.iter().skip(j).step_by(p);
            if column().all(|v| v.is_nan()) {
                return invalid(format!("feature {name} is NaN in every row"));
            }
            if let Some(i) = column().position(|v| !v.is_finite()) {
                return invalid(format!(
                    "feature {name} is {} in row {i} (open time {})",
                    x[i * p + j],
                    rfc3339(open_time_ms[i])
                ));
            }
        }
        for (i, (&last, &target)) in last_close.iter().zip(&target_close).enumerate() {
            for (what, value) in [("last close", last), ("target close", target)] {
                if !(value.is_finite() && value > 0.0) {
                    return invalid(format!(
                        "{what} is {value} in row {i} (open time {}); closes must be positive",
                        rfc3339(open_time_ms[i])
                    ));
                }
            }
        }
        if let Some(i) = open_time_ms.windows(2).position(|w| w[1] <= w[0]) {
            return invalid(format!(
                "open times must strictly increase, but row {} ({}) does not come after row {i} ({})",
                i + 1,
                rfc3339(open_time_ms[i + 1]),
                rfc3339(open_time_ms[i])
            ));
        }
        Ok(Self {
            feature_names,
            open_time_ms,
            x,
            last_close,
            target_close,
            horizon,
            interval_ms,
        })
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Number of features.
    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.open_time_ms.len()
    }

    /// Open time of each row's candle, milliseconds since the Unix epoch.
    pub fn open_time_ms(&self) -> &[i64] {
        &self.open_time_ms
    }

    /// All feature values, row-major.
    pub fn x(&self) -> &[f64] {
        &self.x
    }

    /// The features of row `i`.
    ///
    /// # Panics
    /// When `i` is not below [`Dataset::rows`].
    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.features();
        &self.x[i * p..(i + 1) * p]
    }

    /// Each row's own close.
    pub fn last_close(&self) -> &[f64] {
        &self.last_close
    }

    /// Each row's close `horizon` candles later.
    pub fn target_close(&self) -> &[f64] {
        &self.target_close
    }

    /// How many candles ahead the target is.
    pub fn horizon(&self) -> u32 {
        self.horizon
    }

    /// Candle interval in milliseconds.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// Names of the features whose value is the same in every row.
    pub fn constant_features(&self) -> Vec<&str> {
        let p = self.features();
        self.feature_names
            .iter()
            .enumerate()
            .filter(|&(j, _)| {
                let first = self.x[j];
                self.x.iter().skip(j).step_by(p).all(|&v| v == first)
            })
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// The log returns `ln(target_close / last_close)` of `rows`.
    pub(crate) fn log_returns(&self, rows: std::ops::Range<usize>) -> Vec<f64> {
        self.target_close[rows.clone()]
            .iter()
            .zip(&self.last_close[rows])
            .map(|(target, last)| (target / last).ln())
            .collect()
    }

    /// Checks that `rows` lies inside the data and is not empty.
    pub(crate) fn check_rows(&self, rows: &std::ops::Range<usize>, operation: &str) -> Result<()> {
        if rows.start >= rows.end || rows.end > self.rows() {
            return Err(model_error(
                operation,
                format!(
                    "rows {}..{} are not a non-empty range inside the {} rows of the data",
                    rows.start,
                    rows.end,
                    self.rows()
                ),
            ));
        }
        Ok(())
    }
}

/// A time for messages.
pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
}
