//! Stored prices of a series: the newest candle, recent closes with the seed features, window
//! statistics and pages of candles.

use chrono::{DateTime, Duration, Utc};
use pricecast_shared::domain::{Candle, Interval, PricePoint, Symbol};
use pricecast_shared::features::{SEED_HISTORY, SeedFeatures, seed_features};
use pricecast_shared::store::{CandleQuery, ChangedCandle, StoredPrice};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::error::{ServiceError, ServiceResult};
use super::series::{SeriesService, newest_first, nothing_stored};

/// Candles read per query while computing window statistics.
const STATS_PAGE: i64 = 10_000;
/// Decimal places of computed (not stored) values.
const COMPUTED_SCALE: u32 = 8;

/// Reads stored prices; cheap to clone.
#[derive(Clone, Debug)]
pub struct PriceService {
    series: SeriesService,
}

/// Statistics of the closes in a window, oldest to newest.
#[derive(Debug)]
pub struct WindowStats {
    /// Candles in the window.
    pub count: u64,
    /// Open time of the oldest candle.
    pub from: DateTime<Utc>,
    /// Open time of the newest candle.
    pub to: DateTime<Utc>,
    /// Oldest close.
    pub first: Decimal,
    /// Newest close.
    pub last: Decimal,
    /// Lowest close.
    pub min: Decimal,
    /// Highest close.
    pub max: Decimal,
    /// Mean close, rounded to 8 decimal places.
    pub mean: Decimal,
    /// Sample standard deviation of the closes; `None` for a single candle.
    pub std: Option<f64>,
    /// `last - first`.
    pub change: Decimal,
    /// `change / first * 100`, rounded to 8 decimal places.
    pub change_pct: Decimal,
}

/// A page of candles, oldest first.
#[derive(Debug)]
pub struct CandlePage {
    /// The candles.
    pub candles: Vec<Candle>,
    /// Whether another page follows.
    pub more: bool,
}

impl PriceService {
    /// Prices of the series `series` resolves.
    pub fn new(series: SeriesService) -> Self {
        Self { series }
    }

    /// The newest candle of a series with when it was stored; not found when none is.
    pub async fn latest(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> ServiceResult<ChangedCandle> {
        self.series
            .store()
            .latest_changed_candle(symbol, interval)
            .await?
            .ok_or_else(|| nothing_stored(symbol, interval))
    }

    /// The newest `limit` closes of the last `hours` hours, oldest first, each with its seed
    /// features (computed from the history before the window too); not found for an empty
    /// window.
    pub async fn history(
        &self,
        symbol: &Symbol,
        interval: Interval,
        hours: i64,
        limit: i64,
    ) -> ServiceResult<Vec<(StoredPrice, SeedFeatures)>> {
        let now = Utc::now();
        let window_start = now - Duration::hours(hours);
        // The window's newest `limit` candles and the history the oldest of them needs.
        let mut recent = self
            .series
            .store()
            .stored_prices(&newest_first(
                symbol,
                interval,
                None,
                None,
                limit + SEED_HISTORY as i64,
            ))
            .await?;
        let in_window = recent
            .iter()
            .take_while(|c| c.open_time >= window_start)
            .count()
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        if in_window == 0 {
            return Err(self.series.empty_window(symbol, interval, hours, now).await);
        }
        recent.reverse();
        let points: Vec<PricePoint> = recent.iter().map(PricePoint::from).collect();
        let features = seed_features(&points, interval);
        let before_window = recent.len() - in_window;
        Ok(recent
            .into_iter()
            .zip(features)
            .skip(before_window)
            .collect())
    }

    /// Statistics of the closes of the last `hours` hours; not found for an empty window.
    pub async fn window_stats(
        &self,
        symbol: &Symbol,
        interval: Interval,
        hours: i64,
    ) -> ServiceResult<WindowStats> {
        let now = Utc::now();
        let mut page_query = CandleQuery {
            symbol: symbol.clone(),
            interval,
            from: Some(now - Duration::hours(hours)),
            to: None,
            limit: STATS_PAGE,
            offset: 0,
            newest_first: false,
        };
        let mut running: Option<RunningStats> = None;
        loop {
            let page = self.series.store().closes(&page_query).await?;
            for point in &page {
                running
                    .get_or_insert_with(|| RunningStats::new(point))
                    .add(point)?;
            }
            match page.last() {
                Some(last) if page.len() as i64 == STATS_PAGE => {
                    page_query.from = Some(last.open_time + Duration::milliseconds(1));
                }
                _ => break,
            }
        }
        match running {
            Some(window) => Ok(window.finish()),
            None => Err(self.series.empty_window(symbol, interval, hours, now).await),
        }
    }

    /// Up to `limit` candles opened from `start` to `end` (inclusive), oldest first, after
    /// skipping `offset`; not found when nothing at all is stored for the series.
    pub async fn candles(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        limit: i64,
        offset: i64,
    ) -> ServiceResult<CandlePage> {
        let store = self.series.store();
        // One more than asked tells whether another page follows.
        let mut candles = store
            .candles(&CandleQuery {
                symbol: symbol.clone(),
                interval,
                from: start,
                to: end,
                limit: limit + 1,
                offset,
                newest_first: false,
            })
            .await?;
        let more = candles.len() as i64 > limit;
        candles.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        if candles.is_empty()
            && offset == 0
            && store.last_open_time(symbol, interval).await?.is_none()
        {
            return Err(nothing_stored(symbol, interval));
        }
        Ok(CandlePage { candles, more })
    }
}

/// Running statistics over closes, read oldest first.
struct RunningStats {
    count: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    first: Decimal,
    last: Decimal,
    min: Decimal,
    max: Decimal,
    sum: Decimal,
    /// Welford's running mean and sum of squared deviations, for the standard deviation.
    mean_f64: f64,
    m2: f64,
}

impl RunningStats {
    fn new(first: &PricePoint) -> Self {
        Self {
            count: 0,
            from: first.open_time,
            to: first.open_time,
            first: first.close,
            last: first.close,
            min: first.close,
            max: first.close,
            sum: Decimal::ZERO,
            mean_f64: 0.0,
            m2: 0.0,
        }
    }

    fn add(&mut self, point: &PricePoint) -> ServiceResult<()> {
        let close = point.close;
        self.count += 1;
        self.to = point.open_time;
        self.last = close;
        self.min = self.min.min(close);
        self.max = self.max.max(close);
        self.sum = self
            .sum
            .checked_add(close)
            .ok_or_else(|| ServiceError::Internal("sum of closes overflows a decimal".into()))?;
        let x = close.to_f64().unwrap_or(f64::NAN);
        let delta = x - self.mean_f64;
        self.mean_f64 += delta / self.count as f64;
        self.m2 += delta * (x - self.mean_f64);
        Ok(())
    }

    fn finish(self) -> WindowStats {
        let mean = (self.sum / Decimal::from(self.count)).round_dp(COMPUTED_SCALE);
        let std = (self.count > 1).then(|| (self.m2 / (self.count - 1) as f64).sqrt());
        let change = self.last - self.first;
        let change_pct = if self.first.is_zero() {
            Decimal::ZERO
        } else {
            (change / self.first * Decimal::ONE_HUNDRED).round_dp(COMPUTED_SCALE)
        };
        WindowStats {
            count: self.count,
            from: self.from,
            to: self.to,
            first: self.first,
            last: self.last,
            min: self.min,
            max: self.max,
            mean,
            std,
            change,
            change_pct,
        }
    }
}
