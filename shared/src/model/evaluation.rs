//! Honest evaluation: walk-forward over time-ordered windows against the naive baseline, with a
//! Diebold–Mariano test of the difference and split-conformal intervals scored out of sample.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::dataset::rfc3339;
use super::diebold_mariano::{DieboldMariano, newey_west_lag};
use super::interval::{IntervalScore, ResidualInterval};
use super::trained::min_training_rows;
use super::{Dataset, ModelParams, TrainedModel, model_error};
use crate::Result;

/// Forecast accuracy on closes.
///
/// Direction: a row counts when the actual close moved (`actual ≠ last`); it is right when the
/// forecast moved the same way (`sign(predicted − last) = sign(actual − last)`). A forecast of
/// no move is wrong whenever the price moved, so the naive baseline's direction accuracy is 0.
/// Rows where the price did not move are left out; when no row moved it is `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Rows evaluated.
    pub n: usize,
    /// Mean absolute error, in price units.
    pub mae: f64,
    /// Root mean squared error, in price units.
    pub rmse: f64,
    /// Mean absolute percentage error, in percent of the actual close.
    pub mape: f64,
    /// Share (0 to 1) of the rows that moved whose direction was forecast right.
    pub direction_accuracy: Option<f64>,
}

impl Metrics {
    /// Scores forecasts against actual closes, each from its last close.
    pub fn of(predicted: &[f64], actual: &[f64], last: &[f64]) -> Self {
        let n = predicted.len();
        let (mut abs, mut sq, mut pct, mut moved, mut right) = (0.0, 0.0, 0.0, 0usize, 0usize);
        for ((&p, &a), &l) in predicted.iter().zip(actual).zip(last) {
            let error = p - a;
            abs += error.abs();
            sq += error * error;
            pct += (error / a).abs();
            if a != l {
                moved += 1;
                if (p - l).signum() == (a - l).signum() && p != l {
                    right += 1;
                }
            }
        }
        let count = n.max(1) as f64;
        Self {
            n,
            mae: abs / count,
            rmse: (sq / count).sqrt(),
            mape: 100.0 * pct / count,
            direction_accuracy: (moved > 0).then(|| right as f64 / moved as f64),
        }
    }

    /// `1 − MAE / MAE_baseline`: above 0 beats the baseline, below 0 is worse than it.
    /// `None` when the baseline's error is zero (the price never moved).
    pub fn skill_against(&self, baseline: &Metrics) -> Option<f64> {
        (baseline.mae > 0.0).then(|| 1.0 - self.mae / baseline.mae)
    }
}

/// One walk-forward step: a model trained on everything known before the window, tested on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// Rows the model was trained on (always from row 0: an expanding window).
    pub train_rows: Range<usize>,
    /// Rows it was tested on.
    pub test_rows: Range<usize>,
    /// Open time of the first test row (ms since the epoch).
    pub first_open_ms: i64,
    /// Open time of the last test row (ms since the epoch).
    pub last_open_ms: i64,
    /// The model's accuracy.
    pub model: Metrics,
    /// The naive baseline's accuracy ("next close = last close").
    pub baseline: Metrics,
    /// `1 − MAE / MAE_baseline`, negative when the model is worse.
    pub skill: Option<f64>,
}

/// The rows of one window, for a chart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowSeries {
    /// Open time of each row's candle (ms since the epoch); the forecast is for `horizon`
    /// candles later.
    pub open_time_ms: Vec<i64>,
    /// The close forecasts start from.
    pub last_close: Vec<f64>,
    /// The close that came.
    pub actual: Vec<f64>,
    /// The model's forecast.
    pub predicted: Vec<f64>,
    /// The naive forecast (the last close).
    pub baseline: Vec<f64>,
    /// How many candles ahead.
    pub horizon: u32,
    /// Candle interval in milliseconds.
    pub interval_ms: i64,
}

/// The result of [`walk_forward`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The parameters evaluated.
    pub params: ModelParams,
    /// Each window, oldest first.
    pub windows: Vec<WindowReport>,
    /// The model's accuracy over every evaluated row.
    pub model: Metrics,
    /// The baseline's accuracy over the same rows.
    pub baseline: Metrics,
    /// Pooled `1 − MAE / MAE_baseline`, reported even when negative.
    pub skill: Option<f64>,
    /// The most recent window's rows, for a chart.
    pub last_window: WindowSeries,
    /// The split-conformal interval at the nominal level, calibrated on every evaluated row's
    /// relative residual: the interval the final model serves.
    pub residual_interval: ResidualInterval,
    /// How the interval held on rows it was not calibrated on: each window from the second on,
    /// scored with the interval calibrated on the windows before it. `None` with one window.
    pub interval_score: Option<IntervalScore>,
    /// Diebold–Mariano test of the model's absolute errors against the baseline's over every
    /// evaluated row; `None` when they never differ (the naive model) or too few rows.
    pub diebold_mariano: Option<DieboldMariano>,
}

impl Evaluation {
    /// The most recent window (the one to compare a champion on).
    pub fn last_report(&self) -> Option<&WindowReport> {
        self.windows.last()
    }
}

/// Rows [`walk_forward`] needs for `windows` × `window_rows` test rows with `features` features
/// and this horizon: the test rows, the rows whose targets are not yet known at the first test
/// row, and the smallest training set.
pub fn walk_forward_rows_needed(
    windows: usize,
    window_rows: usize,
    features: usize,
    horizon: u32,
) -> usize {
    windows * window_rows + horizon as usize + min_training_rows(features)
}

/// Expanding-window walk-forward evaluation over the most recent `windows` windows of
/// `window_rows` rows each, oldest first, without shuffling; intervals at nominal coverage
/// `level` (in (0, 1), `PRICECAST_INTERVAL_LEVEL`).
///
/// No look-ahead: the model for a window starting at row `s` is fitted (standardiser included)
/// only on rows whose target close was known by the time row `s`'s candle opened, rows `i`
/// with `open_time[i] + (horizon + 1) × interval − 1 ≤ open_time[s]` — on a series without gaps,
/// every row but the last `horizon` before `s`.
pub fn walk_forward(
    params: &ModelParams,
    data: &Dataset,
    windows: usize,
    window_rows: usize,
    level: f64,
) -> Result<Evaluation> {
    let operation = format!("walk-forward evaluation of a {} model", params.kind);
    let fail = |message: String| Err(model_error(&operation, message));
    params.validate()?;
    if !(level > 0.0 && level < 1.0) {
        return fail(format!(
            "PRICECAST_INTERVAL_LEVEL must be between 0 and 1, both excluded (got {level})"
        ));
    }
    if windows == 0 || window_rows == 0 {
        return fail(format!(
            "windows ({windows}) and rows per window ({window_rows}) must be at least 1"
        ));
    }
    let constant = data.constant_features();
    if !constant.is_empty() {
        return fail(format!(
            "feature(s) {} have the same value in every row and cannot be learned from; fix or drop them",
            constant.join(", ")
        ));
    }
    let n = data.rows();
    let needed = walk_forward_rows_needed(windows, window_rows, data.features(), data.horizon());
    if n < needed {
        return fail(format!(
            "{n} rows exist but {needed} are needed ({windows} windows × {window_rows} rows, \
             {} rows whose targets are not yet known, {} training rows at least); \
             collect more history or use fewer or smaller windows",
            data.horizon(),
            min_training_rows(data.features())
        ));
    }
    let first_test = n - windows * window_rows;
    let mut reports = Vec::with_capacity(windows);
    let (mut predicted, mut actual, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_window = None;
    let mut interval_score = IntervalScore::default();
    for w in 0..windows {
        let start = first_test + w * window_rows;
        let test_rows = start..start + window_rows;
        let train_end = training_end(data, start);
        let needed_train = min_training_rows(data.features());
        if train_end < needed_train {
            return fail(format!(
                "the window starting {} has only {train_end} training rows known before it, {needed_train} are needed",
                rfc3339(data.open_time_ms()[start])
            ));
        }
        let model = TrainedModel::fit(params, data, 0..train_end)?;
        let window_predicted = model.predict(data, test_rows.clone())?;
        let window_actual = &data.target_close()[test_rows.clone()];
        let window_last = &data.last_close()[test_rows.clone()];
        let model_metrics = Metrics::of(&window_predicted, window_actual, window_last);
        let baseline_metrics = Metrics::of(window_last, window_actual, window_last);
        reports.push(WindowReport {
            train_rows: 0..train_end,
            test_rows: test_rows.clone(),
            first_open_ms: data.open_time_ms()[start],
            last_open_ms: data.open_time_ms()[test_rows.end - 1],
            skill: model_metrics.skill_against(&baseline_metrics),
            model: model_metrics,
            baseline: baseline_metrics,
        });
        if w + 1 == windows {
            last_window = Some(WindowSeries {
                open_time_ms: data.open_time_ms()[test_rows.clone()].to_vec(),
                last_close: window_last.to_vec(),
                actual: window_actual.to_vec(),
                predicted: window_predicted.clone(),
                baseline: window_last.to_vec(),
                horizon: data.horizon(),
                interval_ms: data.interval_ms(),
            });
        }
        // Scored before its own residuals join the calibration set.
        if let Some(interval) =
            ResidualInterval::conformal(&relative_residuals(&predicted, &actual), level)
        {
            interval_score.add(&interval, &window_predicted, window_actual);
        }
        predicted.extend_from_slice(&window_predicted);
        actual.extend_from_slice(window_actual);
        last.extend_from_slice(window_last);
    }
    let Some(last_window) = last_window else {
        return fail("no window was evaluated".into());
    };
    let model = Metrics::of(&predicted, &actual, &last);
    let baseline = Metrics::of(&last, &actual, &last);
    let Some(residual_interval) =
        ResidualInterval::conformal(&relative_residuals(&predicted, &actual), level)
    else {
        return fail("no row was evaluated".into());
    };
    let errors = |forecasts: &[f64]| -> Vec<f64> {
        forecasts.iter().zip(&actual).map(|(f, a)| f - a).collect()
    };
    let diebold_mariano = DieboldMariano::test(
        &errors(&predicted),
        &errors(&last),
        newey_west_lag(data.horizon(), predicted.len()),
    );
    Ok(Evaluation {
        params: params.clone(),
        windows: reports,
        skill: model.skill_against(&baseline),
        model,
        baseline,
        last_window,
        residual_interval,
        interval_score: (interval_score.rows > 0).then_some(interval_score),
        diebold_mariano,
    })
}

/// `actual / predicted − 1`, row by row.
fn relative_residuals(predicted: &[f64], actual: &[f64]) -> Vec<f64> {
    actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| a / p - 1.0)
        .collect()
}

/// Scores an already trained model (a champion) on `rows` of `data`, with the same metrics as
/// [`walk_forward`]'s windows.
pub fn evaluate(model: &TrainedModel, data: &Dataset, rows: Range<usize>) -> Result<Metrics> {
    let predicted = model.predict(data, rows.clone())?;
    Ok(Metrics::of(
        &predicted,
        &data.target_close()[rows.clone()],
        &data.last_close()[rows],
    ))
}

/// The end of the training rows for a test window starting at row `start`: every row whose
/// target was known by the time row `start`'s candle opened.
fn training_end(data: &Dataset, start: usize) -> usize {
    let cutoff = data.open_time_ms()[start];
    let known_after = (i64::from(data.horizon()) + 1) * data.interval_ms() - 1;
    data.open_time_ms()[..start].partition_point(|&open| open + known_after <= cutoff)
}
