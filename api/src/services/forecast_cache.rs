//! The newest forecast of each series, kept until a new candle, another champion or
//! [`FORECAST_TTL`]: a forecast only changes when one of those does, and computing its feature
//! row costs far more than the query that tells whether anything changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pricecast_shared::domain::{Interval, Symbol};
use rust_decimal::Decimal;

use super::prediction::Prediction;

/// Longest a forecast is reused: bounds how long a repaired candle inside the feature window
/// (which leaves the newest candle as it was) goes unnoticed.
pub const FORECAST_TTL: Duration = Duration::from_secs(10);

/// What a forecast was made from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ForecastKey {
    /// Trading pair.
    pub symbol: Symbol,
    /// Interval.
    pub interval: Interval,
    /// Open time of the newest candle.
    pub newest_open: DateTime<Utc>,
    /// Its close (a corrected candle makes another forecast).
    pub newest_close: Decimal,
    /// The champion's version.
    pub version: u64,
}

/// A forecast with what and when it was made from.
#[derive(Debug)]
struct CachedForecast {
    key: ForecastKey,
    made: Instant,
    prediction: Arc<Prediction>,
}

/// The newest forecast per series.
#[derive(Debug, Default)]
pub struct ForecastCache {
    entries: Mutex<HashMap<(Symbol, Interval), CachedForecast>>,
}

impl ForecastCache {
    /// The forecast made from exactly `key`, if it is younger than [`FORECAST_TTL`].
    pub fn get(&self, key: &ForecastKey) -> Option<Arc<Prediction>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&(key.symbol.clone(), key.interval))
            .filter(|c| c.key == *key && c.made.elapsed() < FORECAST_TTL)
            .map(|c| c.prediction.clone())
    }

    /// Keeps `prediction` as the series' newest forecast.
    pub fn put(&self, key: ForecastKey, prediction: Arc<Prediction>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            (key.symbol.clone(), key.interval),
            CachedForecast {
                key,
                made: Instant::now(),
                prediction,
            },
        );
    }
}
