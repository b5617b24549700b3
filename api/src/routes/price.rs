//! `/price/*`: the newest price, recent history with the seed features, window statistics and
//! raw candles, in the seed app's JSON shapes (with Pricecast's keys added). Prices are exact
//! decimals, written as JSON numbers with their stored digits.

use chrono::{DateTime, Utc};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::SeedFeatures;
use pricecast_shared::store::{ChangedCandle, StoredPrice};
use rust_decimal::Decimal;
use salvo::oapi::{ToParameters, ToSchema};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::{app_state, series};
use crate::error::ApiError;
use crate::params;
use crate::services::prices::{CandlePage, WindowStats};

/// Longest window, in hours (ten years).
const MAX_HOURS: i64 = 87_600;
/// Window when `hours` is absent, as in the seed app.
const DEFAULT_HOURS: i64 = 24;
/// Most rows of one history or candles page.
const MAX_LIMIT: i64 = 5_000;
/// History rows when `limit` is absent, as in the seed app.
const DEFAULT_HISTORY_LIMIT: i64 = 100;
/// Candles when `limit` is absent.
const DEFAULT_CANDLES_LIMIT: i64 = 500;
/// Largest `offset` accepted.
const MAX_OFFSET: i64 = 1_000_000_000;

/// Parameters naming a series.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct SeriesQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval: 1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M
    /// (default: the finest interval stored for the symbol).
    interval: Option<String>,
}

/// Parameters of `GET /price/history`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct HistoryQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval (default: the finest interval stored for the symbol).
    interval: Option<String>,
    /// Window: candles opened in the last `hours` hours, 1 to 87600 (default 24).
    #[salvo(parameter(value_type = Option<i64>))]
    hours: Option<String>,
    /// Most rows returned (the window's newest, sent oldest first), 1 to 5000 (default 100).
    #[salvo(parameter(value_type = Option<i64>))]
    limit: Option<String>,
}

/// Parameters of `GET /price/stats`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct StatsQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval (default: the finest interval stored for the symbol).
    interval: Option<String>,
    /// Window: candles opened in the last `hours` hours, 1 to 87600 (default 24).
    #[salvo(parameter(value_type = Option<i64>))]
    hours: Option<String>,
}

/// Parameters of `GET /price/candles`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct CandlesQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval (default: the finest interval stored for the symbol).
    interval: Option<String>,
    /// Earliest open time, inclusive: RFC 3339, a date or milliseconds since the epoch.
    start: Option<String>,
    /// Latest open time, inclusive: RFC 3339, a date or milliseconds since the epoch.
    end: Option<String>,
    /// Most candles returned, 1 to 5000 (default 500).
    #[salvo(parameter(value_type = Option<i64>))]
    limit: Option<String>,
    /// Candles skipped, for paging (default 0; use `next_offset`).
    #[salvo(parameter(value_type = Option<i64>))]
    offset: Option<String>,
}

/// The newest candle of a series: the seed app's `LatestPriceResponse` (`price`, `timestamp`,
/// `source`, `last_updated`) plus the series and the candle's OHLCV.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = LatestPrice))]
pub struct LatestPrice {
    /// Close of the newest candle.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub price: Decimal,
    /// Open time of the newest candle (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// Where the candle came from (`binance`, `replay`).
    pub source: String,
    /// When the candle was stored: the time it was last inserted or changed.
    pub last_updated: DateTime<Utc>,
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Open time.
    pub open_time: DateTime<Utc>,
    /// Close time.
    pub close_time: DateTime<Utc>,
    /// Open price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub open: Decimal,
    /// High price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub high: Decimal,
    /// Low price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub low: Decimal,
    /// Close price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub close: Decimal,
    /// Base asset volume.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub volume: Decimal,
}

/// One history row, the seed app's `BitcoinPriceFeatureResponse`: a stored close with the
/// closes around it and the ten-candle mean.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = HistoryRow))]
pub struct HistoryRow {
    /// The candle's id in the `bitcoin_prices` view: its open time in seconds since the epoch.
    pub id: i64,
    /// Close.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub price: Decimal,
    /// Open time of the candle.
    pub timestamp: DateTime<Utc>,
    /// Where the candle came from (`binance`, `replay`).
    pub source: String,
    /// When the candle was stored: the time it was last inserted or changed.
    pub created_at: DateTime<Utc>,
    /// Close of the next candle; null on the newest candle and before a gap.
    #[serde(
        rename = "price_t+1",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    #[salvo(schema(value_type = Option<f64>, rename = "price_t+1", required))]
    pub price_next: Option<Decimal>,
    /// Close one candle earlier.
    #[serde(
        rename = "price_t-1",
        with = "rust_decimal::serde::arbitrary_precision"
    )]
    #[salvo(schema(value_type = f64, rename = "price_t-1"))]
    pub price_t1: Decimal,
    /// Close two candles earlier.
    #[serde(
        rename = "price_t-2",
        with = "rust_decimal::serde::arbitrary_precision"
    )]
    #[salvo(schema(value_type = f64, rename = "price_t-2"))]
    pub price_t2: Decimal,
    /// Close three candles earlier.
    #[serde(
        rename = "price_t-3",
        with = "rust_decimal::serde::arbitrary_precision"
    )]
    #[salvo(schema(value_type = f64, rename = "price_t-3"))]
    pub price_t3: Decimal,
    /// Close four candles earlier.
    #[serde(
        rename = "price_t-4",
        with = "rust_decimal::serde::arbitrary_precision"
    )]
    #[salvo(schema(value_type = f64, rename = "price_t-4"))]
    pub price_t4: Decimal,
    /// Close five candles earlier.
    #[serde(
        rename = "price_t-5",
        with = "rust_decimal::serde::arbitrary_precision"
    )]
    #[salvo(schema(value_type = f64, rename = "price_t-5"))]
    pub price_t5: Decimal,
    /// Mean of the last ten closes, this one included.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub ma_10: Decimal,
}

impl HistoryRow {
    /// The row of a stored close and its features; `None` when a lag or the mean is unknown
    /// (the candle follows a gap too closely), a row the seed app dropped.
    fn complete(stored: &StoredPrice, features: &SeedFeatures) -> Option<Self> {
        let [
            Some(price_t1),
            Some(price_t2),
            Some(price_t3),
            Some(price_t4),
            Some(price_t5),
        ] = features.lags
        else {
            return None;
        };
        Some(Self {
            id: stored.open_time.timestamp(),
            price: stored.close,
            timestamp: stored.open_time,
            source: stored.source.clone(),
            created_at: stored.ingested_at,
            price_next: features.next,
            price_t1,
            price_t2,
            price_t3,
            price_t4,
            price_t5,
            ma_10: features.ma_10?,
        })
    }
}

/// Statistics of the closes in a window: the seed app's keys (`period_hours`, `total_records`,
/// `min_price`, `max_price`, `avg_price`, `latest_price`) and Pricecast's.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = StatsBody))]
pub struct StatsBody {
    /// Window in hours, as asked.
    pub period_hours: i64,
    /// Candles in the window.
    pub total_records: u64,
    /// Lowest close.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub min_price: Decimal,
    /// Highest close.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub max_price: Decimal,
    /// Mean close, rounded to 8 decimal places.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub avg_price: Decimal,
    /// Close of the newest candle in the window.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub latest_price: Decimal,
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Window in hours (`period_hours`).
    pub hours: i64,
    /// Candles in the window (`total_records`).
    pub count: u64,
    /// Open time of the oldest candle in the window.
    pub from: DateTime<Utc>,
    /// Open time of the newest candle in the window.
    pub to: DateTime<Utc>,
    /// Lowest close (`min_price`).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub min: Decimal,
    /// Highest close (`max_price`).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub max: Decimal,
    /// Mean close, rounded to 8 decimal places (`avg_price`).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub mean: Decimal,
    /// Sample standard deviation of the closes; null for a single candle.
    #[salvo(schema(required))]
    pub std: Option<f64>,
    /// Oldest close.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub first: Decimal,
    /// Newest close (`latest_price`).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub last: Decimal,
    /// `last - first`.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub change: Decimal,
    /// `change / first * 100`, rounded to 8 decimal places.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub change_pct: Decimal,
}

/// One stored candle with every field.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = CandleBody))]
pub struct CandleBody {
    /// Start of the candle.
    pub open_time: DateTime<Utc>,
    /// End of the candle (inclusive).
    pub close_time: DateTime<Utc>,
    /// Open price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub open: Decimal,
    /// High price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub high: Decimal,
    /// Low price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub low: Decimal,
    /// Close price.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub close: Decimal,
    /// Base asset volume.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    #[salvo(schema(value_type = f64))]
    pub volume: Decimal,
    /// Quote asset volume, when known.
    #[serde(with = "rust_decimal::serde::arbitrary_precision_option")]
    #[salvo(schema(value_type = Option<f64>))]
    pub quote_volume: Option<Decimal>,
    /// Number of trades, when known.
    pub trades: Option<i64>,
    /// Taker buy base asset volume, when known.
    #[serde(with = "rust_decimal::serde::arbitrary_precision_option")]
    #[salvo(schema(value_type = Option<f64>))]
    pub taker_buy_base: Option<Decimal>,
    /// Taker buy quote asset volume, when known.
    #[serde(with = "rust_decimal::serde::arbitrary_precision_option")]
    #[salvo(schema(value_type = Option<f64>))]
    pub taker_buy_quote: Option<Decimal>,
    /// Where the candle came from (`binance`, `replay`).
    pub source: String,
}

impl From<Candle> for CandleBody {
    fn from(c: Candle) -> Self {
        Self {
            open_time: c.open_time,
            close_time: c.close_time,
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume,
            quote_volume: c.quote_volume,
            trades: c.trades,
            taker_buy_base: c.taker_buy_base,
            taker_buy_quote: c.taker_buy_quote,
            source: c.source,
        }
    }
}

/// A page of candles, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = CandlesBody))]
pub struct CandlesBody {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Candles returned.
    pub count: usize,
    /// The `limit` applied.
    pub limit: i64,
    /// The `offset` applied.
    pub offset: i64,
    /// The `offset` of the next page; null when this is the last one.
    pub next_offset: Option<i64>,
    /// The candles, oldest first.
    pub candles: Vec<CandleBody>,
}

/// The newest price of a series (the seed app's fields: price, timestamp, source,
/// last_updated), with its candle.
#[endpoint(tags("price"))]
pub async fn latest(query: SeriesQuery, depot: &mut Depot) -> Result<Json<LatestPrice>, ApiError> {
    let state = app_state(depot)?;
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    let ChangedCandle {
        candle,
        ingested_at,
    } = state.prices.latest(&symbol, interval).await?;
    Ok(Json(LatestPrice {
        price: candle.close,
        timestamp: candle.open_time,
        source: candle.source,
        last_updated: ingested_at,
        symbol: symbol.to_string(),
        interval: interval.to_string(),
        open_time: candle.open_time,
        close_time: candle.close_time,
        open: candle.open,
        high: candle.high,
        low: candle.low,
        close: candle.close,
        volume: candle.volume,
    }))
}

/// The newest `limit` closes of the last `hours` hours, oldest first, with the seed features:
/// a JSON array of the seed app's rows.
///
/// Features come from the shared feature definitions (the ones training uses) and never reach
/// across a gap in the candles: a candle whose five lags or ten-candle mean are not all known is
/// left out, as the seed app dropped it; `price_t+1` is null on the newest candle and before a
/// gap.
#[endpoint(tags("price"))]
pub async fn history(
    query: HistoryQuery,
    depot: &mut Depot,
) -> Result<Json<Vec<HistoryRow>>, ApiError> {
    let state = app_state(depot)?;
    let hours = params::integer("hours", query.hours.as_deref(), DEFAULT_HOURS, 1, MAX_HOURS)?;
    let limit = params::integer(
        "limit",
        query.limit.as_deref(),
        DEFAULT_HISTORY_LIMIT,
        1,
        MAX_LIMIT,
    )?;
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    let rows = state
        .prices
        .history(&symbol, interval, hours, limit)
        .await?
        .iter()
        .filter_map(|(stored, features)| HistoryRow::complete(stored, features))
        .collect();
    Ok(Json(rows))
}

impl StatsBody {
    /// The body of a window's statistics.
    fn new(window: WindowStats, symbol: &Symbol, interval: Interval, hours: i64) -> Self {
        Self {
            period_hours: hours,
            total_records: window.count,
            min_price: window.min,
            max_price: window.max,
            avg_price: window.mean,
            latest_price: window.last,
            symbol: symbol.to_string(),
            interval: interval.to_string(),
            hours,
            count: window.count,
            from: window.from,
            to: window.to,
            min: window.min,
            max: window.max,
            mean: window.mean,
            std: window.std,
            first: window.first,
            last: window.last,
            change: window.change,
            change_pct: window.change_pct,
        }
    }
}

/// Statistics of the closes of the last `hours` hours.
#[endpoint(tags("price"))]
pub async fn stats(query: StatsQuery, depot: &mut Depot) -> Result<Json<StatsBody>, ApiError> {
    let state = app_state(depot)?;
    let hours = params::integer("hours", query.hours.as_deref(), DEFAULT_HOURS, 1, MAX_HOURS)?;
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    let window = state.prices.window_stats(&symbol, interval, hours).await?;
    Ok(Json(StatsBody::new(window, &symbol, interval, hours)))
}

/// OHLCV candles, oldest first, by open-time range and page.
#[endpoint(tags("price"))]
pub async fn candles(
    query: CandlesQuery,
    depot: &mut Depot,
) -> Result<Json<CandlesBody>, ApiError> {
    let state = app_state(depot)?;
    let start = params::time("start", query.start.as_deref())?;
    let end = params::time("end", query.end.as_deref())?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(ApiError::BadRequest(format!(
            "start ({}) is after end ({})",
            start.to_rfc3339(),
            end.to_rfc3339()
        )));
    }
    let limit = params::integer(
        "limit",
        query.limit.as_deref(),
        DEFAULT_CANDLES_LIMIT,
        1,
        MAX_LIMIT,
    )?;
    let offset = params::integer("offset", query.offset.as_deref(), 0, 0, MAX_OFFSET)?;
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    let CandlePage {
        candles: rows,
        more,
    } = state
        .prices
        .candles(&symbol, interval, start, end, limit, offset)
        .await?;
    Ok(Json(CandlesBody {
        symbol: symbol.to_string(),
        interval: interval.to_string(),
        count: rows.len(),
        limit,
        offset,
        next_offset: more.then_some(offset + limit),
        candles: rows.into_iter().map(CandleBody::from).collect(),
    }))
}
