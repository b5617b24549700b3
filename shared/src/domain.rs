//! Domain types: trading symbols, candle intervals and candles with exact decimal prices.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Longest symbol Binance lists today is well under this; anything longer is a typo.
const MAX_SYMBOL_LEN: usize = 20;
const MIN_SYMBOL_LEN: usize = 2;

/// A Binance trading pair such as `BTCUSDT`: upper-case ASCII letters and digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

impl Symbol {
    /// The symbol as Binance spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a symbol was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not a valid symbol: expected {MIN_SYMBOL_LEN} to {MAX_SYMBOL_LEN} letters or digits, such as BTCUSDT"
)]
pub struct InvalidSymbol(pub String);

impl FromStr for Symbol {
    type Err = InvalidSymbol;

    /// Accepts lower case (`btcusdt`) and normalises it to Binance's upper case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let ok = (MIN_SYMBOL_LEN..=MAX_SYMBOL_LEN).contains(&trimmed.len())
            && trimmed.bytes().all(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Self(trimmed.to_ascii_uppercase()))
        } else {
            Err(InvalidSymbol(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Symbol {
    type Error = InvalidSymbol;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Symbol> for String {
    fn from(value: Symbol) -> Self {
        value.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 1970-01-01 was a Thursday; Binance weeks start on Monday 00:00 UTC, four days later.
const WEEK_OFFSET_MS: i64 = 4 * DAY_MS;

/// A Binance kline interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Interval {
    /// One second.
    S1,
    /// One minute.
    M1,
    /// Three minutes.
    M3,
    /// Five minutes.
    M5,
    /// Fifteen minutes.
    M15,
    /// Thirty minutes.
    M30,
    /// One hour.
    H1,
    /// Two hours.
    H2,
    /// Four hours.
    H4,
    /// Six hours.
    H6,
    /// Eight hours.
    H8,
    /// Twelve hours.
    H12,
    /// One day.
    D1,
    /// Three days.
    D3,
    /// One week, starting Monday 00:00 UTC.
    W1,
    /// One calendar month.
    Mo1,
}

/// Why an interval was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a Binance interval: use one of {list}", list = Interval::ALL_NAMES.join(", "))]
pub struct InvalidInterval(pub String);

impl Interval {
    /// Every interval, shortest first.
    pub const ALL: [Interval; 16] = [
        Self::S1,
        Self::M1,
        Self::M3,
        Self::M5,
        Self::M15,
        Self::M30,
        Self::H1,
        Self::H2,
        Self::H4,
        Self::H6,
        Self::H8,
        Self::H12,
        Self::D1,
        Self::D3,
        Self::W1,
        Self::Mo1,
    ];

    /// Binance's names, in the order of [`Interval::ALL`].
    pub const ALL_NAMES: [&'static str; 16] = [
        "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d",
        "1w", "1M",
    ];

    /// Binance's name for the interval (`1m`, `1h`, `1M`, …).
    pub fn as_str(self) -> &'static str {
        let index = Self::ALL
            .iter()
            .position(|i| *i == self)
            .unwrap_or_default();
        Self::ALL_NAMES[index]
    }

    /// The nominal length in milliseconds (a month counts as 30 days; see [`Interval::next_open`]).
    pub fn duration_ms(self) -> i64 {
        match self {
            Self::S1 => SECOND_MS,
            Self::M1 => MINUTE_MS,
            Self::M3 => 3 * MINUTE_MS,
            Self::M5 => 5 * MINUTE_MS,
            Self::M15 => 15 * MINUTE_MS,
            Self::M30 => 30 * MINUTE_MS,
            Self::H1 => HOUR_MS,
            Self::H2 => 2 * HOUR_MS,
            Self::H4 => 4 * HOUR_MS,
            Self::H6 => 6 * HOUR_MS,
            Self::H8 => 8 * HOUR_MS,
            Self::H12 => 12 * HOUR_MS,
            Self::D1 => DAY_MS,
            Self::D3 => 3 * DAY_MS,
            Self::W1 => 7 * DAY_MS,
            Self::Mo1 => 30 * DAY_MS,
        }
    }

    /// Whether a candle may open at this time (ms since the epoch).
    pub fn is_aligned(self, open_time_ms: i64) -> bool {
        match self {
            Self::W1 => (open_time_ms - WEEK_OFFSET_MS).rem_euclid(self.duration_ms()) == 0,
            // Binance's 3-day candles run on their own cycle; they always open at midnight.
            Self::D3 => open_time_ms.rem_euclid(DAY_MS) == 0,
            Self::Mo1 => Utc
                .timestamp_millis_opt(open_time_ms)
                .single()
                .is_some_and(|t| t.day() == 1 && t.timestamp_millis().rem_euclid(DAY_MS) == 0),
            _ => open_time_ms.rem_euclid(self.duration_ms()) == 0,
        }
    }

    /// The open time of the candle after the one opening at `open_time_ms`.
    pub fn next_open(self, open_time_ms: i64) -> i64 {
        match self {
            Self::Mo1 => {
                let Some(t) = Utc.timestamp_millis_opt(open_time_ms).single() else {
                    return open_time_ms + self.duration_ms();
                };
                let (year, month) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
                    .single()
                    .map_or(open_time_ms + self.duration_ms(), |t| t.timestamp_millis())
            }
            _ => open_time_ms + self.duration_ms(),
        }
    }

    /// The latest aligned open time at or before `t_ms` (for fixed-length intervals).
    pub fn floor(self, t_ms: i64) -> i64 {
        match self {
            Self::W1 => t_ms - (t_ms - WEEK_OFFSET_MS).rem_euclid(self.duration_ms()),
            Self::D3 => t_ms - t_ms.rem_euclid(DAY_MS),
            Self::Mo1 => Utc
                .timestamp_millis_opt(t_ms)
                .single()
                .and_then(|t| {
                    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
                        .single()
                })
                .map_or(t_ms, |t| t.timestamp_millis()),
            _ => t_ms - t_ms.rem_euclid(self.duration_ms()),
        }
    }
}

impl FromStr for Interval {
    type Err = InvalidInterval;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        Self::ALL_NAMES
            .iter()
            .position(|name| *name == trimmed)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| InvalidInterval(s.to_owned()))
    }
}

impl TryFrom<String> for Interval {
    type Error = InvalidInterval;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Interval> for String {
    fn from(value: Interval) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a stored candle came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandleSource {
    /// Binance's REST API.
    Binance,
    /// Binance's public bulk archive (monthly zipped CSV files).
    BinanceArchive,
    /// The bundled history replayed by the demo.
    Replay,
}

impl CandleSource {
    /// The name stored in the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Binance => "binance",
            Self::BinanceArchive => "binance_archive",
            Self::Replay => "replay",
        }
    }
}

/// One closed kline. Prices and volumes are exact decimals with the scale Binance sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// Start of the candle.
    pub open_time: DateTime<Utc>,
    /// First trade price.
    pub open: Decimal,
    /// Highest trade price.
    pub high: Decimal,
    /// Lowest trade price.
    pub low: Decimal,
    /// Last trade price.
    pub close: Decimal,
    /// Base asset volume.
    pub volume: Decimal,
    /// Quote asset volume (absent from histories that only kept OHLCV).
    pub quote_volume: Option<Decimal>,
    /// Number of trades (absent from histories that only kept OHLCV).
    pub trades: Option<i64>,
    /// Taker buy base asset volume.
    pub taker_buy_base: Option<Decimal>,
    /// Taker buy quote asset volume.
    pub taker_buy_quote: Option<Decimal>,
    /// End of the candle (inclusive, one millisecond before the next open).
    pub close_time: DateTime<Utc>,
    /// Where the candle came from (`binance`, `replay`).
    pub source: String,
}

/// A close price at a candle's open time: all that price queries and the seed features need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PricePoint {
    /// Open time of the candle.
    pub open_time: DateTime<Utc>,
    /// Close of the candle.
    pub close: Decimal,
}

impl From<&Candle> for PricePoint {
    fn from(c: &Candle) -> Self {
        Self {
            open_time: c.open_time,
            close: c.close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_normalised_and_validated() {
        assert_eq!(
            "btcusdt".parse::<Symbol>().map(|s| s.to_string()),
            Ok("BTCUSDT".into())
        );
        assert!("BTC-USDT".parse::<Symbol>().is_err());
        assert!("B".parse::<Symbol>().is_err());
        assert!("A".repeat(21).parse::<Symbol>().is_err());
    }

    #[test]
    fn intervals_round_trip_and_reject_unknown_names() {
        for name in Interval::ALL_NAMES {
            let interval: Interval = name.parse().expect("known interval");
            assert_eq!(interval.as_str(), name);
        }
        let err = "7m".parse::<Interval>().expect_err("unknown interval");
        assert!(err.to_string().contains("1m, 3m"), "{err}");
    }

    #[test]
    fn alignment_follows_binance_calendar() {
        let monday = Utc
            .with_ymd_and_hms(2025, 4, 28, 0, 0, 0)
            .single()
            .expect("date")
            .timestamp_millis();
        assert!(Interval::W1.is_aligned(monday));
        assert!(!Interval::W1.is_aligned(monday + DAY_MS));
        assert!(Interval::H1.is_aligned(monday + HOUR_MS));
        assert!(!Interval::H1.is_aligned(monday + MINUTE_MS));
        let may_first = Utc
            .with_ymd_and_hms(2025, 5, 1, 0, 0, 0)
            .single()
            .expect("date")
            .timestamp_millis();
        assert!(Interval::Mo1.is_aligned(may_first));
        assert_eq!(
            Interval::Mo1.next_open(may_first),
            Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0)
                .single()
                .expect("date")
                .timestamp_millis()
        );
        assert_eq!(Interval::H1.floor(monday + HOUR_MS + 5), monday + HOUR_MS);
        assert_eq!(Interval::W1.floor(monday + 3 * DAY_MS), monday);
    }
}
