//! What a forecast answers: the forecast close, its interval, the baseline and the model that
//! made it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use serde::Serialize;

/// A forecast.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[salvo(schema(name = Prediction))]
pub struct Prediction {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// The forecast close of the target candle (the seed app's field).
    pub predicted_price: f64,
    /// The close it predicts from (the seed app's field).
    pub current_price: f64,
    /// When the forecast was made (the seed app's field).
    pub timestamp: DateTime<Utc>,
    /// Open time of the candle whose features were used.
    pub based_on: DateTime<Utc>,
    /// When the forecast close is due: the close time of the candle `horizon` intervals later.
    pub target_time: DateTime<Utc>,
    /// Candles ahead.
    pub horizon: u32,
    /// The naive baseline's forecast: the last close.
    pub baseline_price: f64,
    /// Lower end of the interval around the forecast: split-conformal from the model's
    /// walk-forward residuals, at the nominal level it was trained with.
    pub lower: Option<f64>,
    /// Upper end of that interval.
    pub upper: Option<f64>,
    /// The feature values used, by name (the seed app's `features_used`).
    pub features_used: BTreeMap<String, f64>,
    /// The model that made it.
    pub model: ModelRef,
}

/// The model behind a forecast.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[salvo(schema(name = ModelRef))]
pub struct ModelRef {
    /// Registered model name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// Alias it is served under (`champion`).
    pub alias: String,
    /// Training run (the seed app's `model_run_id`).
    pub run_id: String,
    /// Model type.
    pub model_type: String,
    /// Walk-forward MAE over its recent evaluation windows.
    pub mae: Option<f64>,
    /// `1 − MAE / baseline MAE` over the same windows (negative: worse than the baseline).
    pub skill: Option<f64>,
}
