//! The bundled price history (real Binance BTCUSDT and ETHUSDT hourly candles, 2022-04-29 to
//! 2025-04-28) and a replay source that serves it as Binance kline pages, so the demo runs
//! offline through the same parsing and validation as live collection.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use chrono::{NaiveDateTime, TimeZone, Utc};
use flate2::read::GzDecoder;
use pricecast_shared::domain::{Candle, CandleSource, Interval, Symbol};
use pricecast_shared::{Error, Result};
use rust_decimal::Decimal;

use crate::kline;

const BTCUSDT_1H: &[u8] = include_bytes!("../data/btcusdt_1h.csv.gz");
const ETHUSDT_1H: &[u8] = include_bytes!("../data/ethusdt_1h.csv.gz");

/// Symbols whose history ships with Pricecast.
pub const BUNDLED_SYMBOLS: [&str; 2] = ["BTCUSDT", "ETHUSDT"];
/// The interval of the bundled history.
pub const BUNDLED_INTERVAL: Interval = Interval::H1;

/// Loads the bundled hourly history of `symbol` (`BTCUSDT` or `ETHUSDT`), oldest first.
pub fn bundled_candles(symbol: &Symbol) -> Result<Vec<Candle>> {
    let gz = match symbol.as_str() {
        "BTCUSDT" => BTCUSDT_1H,
        "ETHUSDT" => ETHUSDT_1H,
        other => {
            return Err(Error::config(format!(
                "no bundled history for {other}: the replay source has {}",
                BUNDLED_SYMBOLS.join(" and ")
            )));
        }
    };
    let mut text = String::new();
    GzDecoder::new(gz).read_to_string(&mut text)?;
    parse_ohlcv_csv(
        &text,
        symbol,
        BUNDLED_INTERVAL,
        CandleSource::Replay.as_str(),
    )
}

/// Parses `date,open,high,low,close,volume` rows (date as `YYYY-MM-DD HH:MM:SS` UTC).
pub fn parse_ohlcv_csv(
    text: &str,
    symbol: &Symbol,
    interval: Interval,
    source: &str,
) -> Result<Vec<Candle>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut candles = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let bad = |what: &str| {
            Error::config(format!(
                "bundled history {symbol}: line {}: {what}",
                line + 2
            ))
        };
        let record = record.map_err(|e| bad(&e.to_string()))?;
        let field = |i: usize| record.get(i).ok_or_else(|| bad("too few columns"));
        let decimal = |i: usize| -> Result<Decimal> {
            field(i)?
                .parse::<Decimal>()
                .map_err(|e| bad(&format!("column {i}: {e}")))
        };
        let open_time = NaiveDateTime::parse_from_str(field(0)?, "%Y-%m-%d %H:%M:%S")
            .map_err(|e| bad(&format!("date: {e}")))?;
        let open_ms = Utc.from_utc_datetime(&open_time).timestamp_millis();
        let close_ms = interval.next_open(open_ms) - 1;
        candles.push(Candle {
            symbol: symbol.clone(),
            interval,
            open_time: Utc.from_utc_datetime(&open_time),
            open: decimal(1)?,
            high: decimal(2)?,
            low: decimal(3)?,
            close: decimal(4)?,
            volume: decimal(5)?,
            quote_volume: None,
            trades: None,
            taker_buy_base: None,
            taker_buy_quote: None,
            close_time: Utc
                .timestamp_millis_opt(close_ms)
                .single()
                .ok_or_else(|| bad("close time out of range"))?,
            source: source.to_owned(),
        });
    }
    Ok(candles)
}

/// Serves the bundled history page by page in Binance's kline format.
#[derive(Clone, Debug, Default)]
pub struct ReplaySource {
    history: Arc<HashMap<Symbol, Vec<Candle>>>,
}

impl ReplaySource {
    /// The symbols it replays, sorted.
    pub fn symbols(&self) -> Vec<Symbol> {
        let mut symbols: Vec<Symbol> = self.history.keys().cloned().collect();
        symbols.sort();
        symbols
    }

    /// Loads the bundled history of every bundled symbol.
    pub fn bundled() -> Result<Self> {
        let mut history = HashMap::new();
        for name in BUNDLED_SYMBOLS {
            let symbol: Symbol =
                name.parse()
                    .map_err(|e: pricecast_shared::domain::InvalidSymbol| {
                        Error::config(e.to_string())
                    })?;
            let candles = bundled_candles(&symbol)?;
            history.insert(symbol, candles);
        }
        Ok(Self {
            history: Arc::new(history),
        })
    }

    /// Newest candle's open time for `symbol`, in ms.
    pub fn last_open_ms(&self, symbol: &Symbol) -> Option<i64> {
        self.history
            .get(symbol)
            .and_then(|c| c.last())
            .map(|c| c.open_time.timestamp_millis())
    }

    /// First candle's open time for `symbol`, in ms.
    pub fn first_open_ms(&self, symbol: &Symbol) -> Option<i64> {
        self.history
            .get(symbol)
            .and_then(|c| c.first())
            .map(|c| c.open_time.timestamp_millis())
    }

    /// The page Binance would answer for `startTime=start_ms&endTime=end_ms&limit=limit`, as JSON.
    pub fn page(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_ms: i64,
        end_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let Some(candles) = self.history.get(symbol) else {
            return Err(Error::config(format!(
                "the replay source has no history for {symbol}: it has {}",
                BUNDLED_SYMBOLS.join(" and ")
            )));
        };
        if interval != BUNDLED_INTERVAL {
            return Err(Error::config(format!(
                "the replay source has only {BUNDLED_INTERVAL} candles, not {interval}"
            )));
        }
        let from = candles.partition_point(|c| c.open_time.timestamp_millis() < start_ms);
        let page: Vec<Candle> = candles[from..]
            .iter()
            .take_while(|c| end_ms.is_none_or(|end| c.open_time.timestamp_millis() <= end))
            .take(limit)
            .cloned()
            .collect();
        Ok(kline::render_page(&page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_history_is_real_and_has_the_known_gap() {
        let btc: Symbol = "BTCUSDT".parse().expect("symbol");
        let candles = bundled_candles(&btc).expect("bundled");
        assert_eq!(candles.len(), 26_279);
        assert_eq!(candles[0].open.to_string(), "39610.14");
        kline::validate_page(&candles).expect("bundled history is valid");
        let gap_start = Utc
            .with_ymd_and_hms(2023, 3, 24, 13, 0, 0)
            .single()
            .expect("time");
        assert!(candles.iter().all(|c| c.open_time != gap_start));
        let zero_volume = candles
            .iter()
            .find(|c| c.open_time == gap_start - chrono::Duration::hours(1))
            .expect("12:00 candle");
        assert_eq!(zero_volume.volume, Decimal::ZERO);
    }

    #[test]
    fn replay_pages_follow_start_time_and_limit() {
        let replay = ReplaySource::bundled().expect("bundled");
        let btc: Symbol = "BTCUSDT".parse().expect("symbol");
        let first = replay.first_open_ms(&btc).expect("first");
        let page = replay
            .page(&btc, Interval::H1, first + 1, None, 3)
            .expect("page");
        let candles = kline::parse_page(&page, &btc, Interval::H1, "replay").expect("parse");
        assert_eq!(candles.len(), 3);
        assert_eq!(candles[0].open_time.timestamp_millis(), first + 3_600_000);
        assert!(replay.page(&btc, Interval::M1, first, None, 3).is_err());
    }

    #[test]
    fn the_library_test_slice_is_the_bundled_history() {
        let btc: Symbol = "BTCUSDT".parse().expect("symbol");
        let text = include_str!("../../testdata/btcusdt_1h_2023-03-22.csv");
        let slice = parse_ohlcv_csv(text, &btc, BUNDLED_INTERVAL, "replay").expect("slice");
        let candles = bundled_candles(&btc).expect("bundled");
        let first = candles
            .iter()
            .position(|c| c.open_time == slice[0].open_time)
            .expect("start");
        assert_eq!(candles[first..first + slice.len()], slice[..]);
    }
}
