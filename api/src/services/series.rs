//! The series a request names: the default interval of a symbol, and the answers for a series
//! with nothing stored or nothing in a window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::store::{CandleQuery, Store};
use rust_decimal::prelude::ToPrimitive;

use super::error::{ServiceError, ServiceResult};

/// How long the default interval of a symbol is remembered.
const DEFAULT_INTERVAL_TTL: Duration = Duration::from_secs(30);

/// Resolves series over the read-only store; cheap to clone.
#[derive(Clone, Debug)]
pub struct SeriesService {
    store: Store,
    default_intervals: Arc<Mutex<HashMap<Symbol, (Interval, Instant)>>>,
}

impl SeriesService {
    /// Series of this store.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            default_intervals: Arc::default(),
        }
    }

    /// The store the series are read from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The interval to use when a request names none: the finest one stored for the symbol,
    /// remembered for a short while. Not found when nothing is stored for the symbol.
    pub async fn default_interval(&self, symbol: &Symbol) -> ServiceResult<Interval> {
        if let Some(interval) = self.cached_interval(symbol) {
            return Ok(interval);
        }
        for interval in Interval::ALL {
            if self.store.last_open_time(symbol, interval).await?.is_some() {
                if let Ok(mut cache) = self.default_intervals.lock() {
                    cache.insert(symbol.clone(), (interval, Instant::now()));
                }
                return Ok(interval);
            }
        }
        Err(ServiceError::NotFound(format!(
            "no candles stored for symbol {symbol}; collect it first (pricecast-collect --symbols {symbol})"
        )))
    }

    fn cached_interval(&self, symbol: &Symbol) -> Option<Interval> {
        let cache = self.default_intervals.lock().ok()?;
        cache
            .get(symbol)
            .filter(|(_, at)| at.elapsed() < DEFAULT_INTERVAL_TTL)
            .map(|(interval, _)| *interval)
    }

    /// The requested interval, or the default one of the symbol.
    pub async fn interval_or_default(
        &self,
        symbol: &Symbol,
        interval: Option<Interval>,
    ) -> ServiceResult<Interval> {
        match interval {
            Some(interval) => Ok(interval),
            None => self.default_interval(symbol).await,
        }
    }

    /// The newest candle of a series; not found when none is stored.
    pub async fn newest_candle(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> ServiceResult<Candle> {
        self.store
            .latest_candle(symbol, interval)
            .await?
            .ok_or_else(|| nothing_stored(symbol, interval))
    }

    /// Up to `max_points` closes of the `hours` hours before the newest candle, oldest first.
    pub async fn recent_closes(
        &self,
        symbol: &Symbol,
        interval: Interval,
        hours: i64,
        max_points: i64,
    ) -> ServiceResult<Vec<(DateTime<Utc>, f64)>> {
        let newest = self.newest_candle(symbol, interval).await?;
        let from = newest.open_time - chrono::Duration::hours(hours);
        let mut closes: Vec<(DateTime<Utc>, f64)> = self
            .store
            .closes(&newest_first(
                symbol,
                interval,
                Some(from),
                None,
                max_points,
            ))
            .await?
            .into_iter()
            .filter_map(|p| Some((p.open_time, p.close.to_f64()?)))
            .collect();
        closes.reverse();
        Ok(closes)
    }

    /// Not found for an empty window of the last `hours` hours before `now`, saying where the
    /// data is.
    pub async fn empty_window(
        &self,
        symbol: &Symbol,
        interval: Interval,
        hours: i64,
        now: DateTime<Utc>,
    ) -> ServiceError {
        match self.store.latest_candle(symbol, interval).await {
            Ok(Some(newest)) => {
                let age_s = (now - newest.open_time).num_seconds().max(0);
                let hours_needed = (age_s + 3599) / 3600 + 1;
                ServiceError::NotFound(format!(
                    "no {symbol} {interval} candles in the last {hours} hours; the newest opened at {} (use hours={hours_needed} to reach it)",
                    newest.open_time.format("%Y-%m-%dT%H:%M:%SZ")
                ))
            }
            Ok(None) => nothing_stored(symbol, interval),
            Err(e) => e.into(),
        }
    }
}

/// Not found for a series with no candles stored, saying how to collect them.
pub fn nothing_stored(symbol: &Symbol, interval: Interval) -> ServiceError {
    ServiceError::NotFound(format!(
        "no {symbol} {interval} candles stored; collect them first (pricecast-collect --symbols {symbol} --intervals {interval})"
    ))
}

/// The query for the newest `limit` candles of a series opened from `from` to `to`
/// (inclusive, open-ended when `None`), newest first.
pub fn newest_first(
    symbol: &Symbol,
    interval: Interval,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: i64,
) -> CandleQuery {
    CandleQuery {
        symbol: symbol.clone(),
        interval,
        from,
        to,
        limit,
        offset: 0,
        newest_first: true,
    }
}
