//! Binance's kline wire format: parsing a `/api/v3/klines` page and validating its candles.
//!
//! A page is a JSON array of arrays:
//! `[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume", trades,
//!   "takerBuyBase", "takerBuyQuote", "ignore"]`. Prices arrive as strings and are kept as exact
//! decimals with the scale they were sent with.
//!
//! Binance's bulk archive holds the same rows as CSV lines without quotes ([`parse_csv`]); its
//! spot files give times in microseconds from 2025 on.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::{Error, Result};
use rust_decimal::Decimal;
use serde_json::Value;

/// Fields of a kline row, in Binance's order (the twelfth, "ignore", is not read).
const FIELDS: [&str; 11] = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
];

/// The error for a page or file from `source` that is not in Binance's format.
fn malformed(source: &str) -> impl Fn(String) -> Error + '_ {
    move |detail| Error::MalformedPage {
        source_name: source.to_owned(),
        detail,
    }
}

/// Parses one kline page. Errors name the row and field that is wrong.
pub fn parse_page(
    body: &[u8],
    symbol: &Symbol,
    interval: Interval,
    source: &str,
) -> Result<Vec<Candle>> {
    let malformed = malformed(source);
    let rows: Vec<Vec<Value>> = serde_json::from_slice(body).map_err(|e| {
        let preview: String = String::from_utf8_lossy(body).chars().take(200).collect();
        malformed(format!(
            "expected a JSON array of kline arrays ({e}); body starts with {preview:?}"
        ))
    })?;
    rows.iter()
        .enumerate()
        .map(|(index, row)| parse_row(index, row, symbol, interval, source).map_err(&malformed))
        .collect()
}

/// Open times at or above this are microseconds, not milliseconds (in milliseconds it is the
/// year 5138): the archive's spot files switched to microseconds on 2025-01-01.
const MICROSECONDS_FROM: i64 = 100_000_000_000_000;

/// Parses the CSV of one archive file: kline rows in the REST order, no quotes, times in
/// milliseconds or microseconds, an optional header line. Errors name the line and field.
pub fn parse_csv(
    body: &[u8],
    symbol: &Symbol,
    interval: Interval,
    source: &str,
) -> Result<Vec<Candle>> {
    let malformed = malformed(source);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut candles = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| malformed(format!("row {}: {e}", index + 1)))?;
        if index == 0
            && record
                .get(0)
                .is_some_and(|first| first.trim() == "open_time")
        {
            continue;
        }
        let row: Vec<Value> = record
            .iter()
            .enumerate()
            .map(|(field, text)| {
                let text = text.trim();
                // Times (0, 6) and the trade count (8) are integers, the rest decimal strings.
                match (field, text.parse::<i64>()) {
                    (0 | 6, Ok(time)) if time >= MICROSECONDS_FROM => Value::from(time / 1000),
                    (0 | 6 | 8, Ok(number)) => Value::from(number),
                    _ => Value::String(text.to_owned()),
                }
            })
            .collect();
        // Errors say `row N` for line N of the file.
        let candle = parse_row(index + 1, &row, symbol, interval, source).map_err(&malformed)?;
        candles.push(candle);
    }
    Ok(candles)
}

fn parse_row(
    index: usize,
    row: &[Value],
    symbol: &Symbol,
    interval: Interval,
    source: &str,
) -> std::result::Result<Candle, String> {
    if row.len() < FIELDS.len() {
        return Err(format!(
            "row {index} has {} fields, expected at least {}",
            row.len(),
            FIELDS.len()
        ));
    }
    let field_error = |field: usize, what: &str| {
        format!(
            "row {index}: field `{}` {what}, got {}",
            FIELDS[field], row[field]
        )
    };
    let time = |field: usize| -> std::result::Result<DateTime<Utc>, String> {
        row[field]
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .ok_or_else(|| field_error(field, "must be a time in milliseconds"))
    };
    let decimal = |field: usize| -> std::result::Result<Decimal, String> {
        row[field]
            .as_str()
            .and_then(|s| Decimal::from_str(s).ok())
            .ok_or_else(|| field_error(field, "must be a decimal string"))
    };
    // Histories that kept only OHLCV (the bundled replay) send null for these.
    let optional_decimal = |field: usize| -> std::result::Result<Option<Decimal>, String> {
        if row[field].is_null() {
            Ok(None)
        } else {
            decimal(field).map(Some)
        }
    };
    let trades = if row[8].is_null() {
        None
    } else {
        Some(
            row[8]
                .as_i64()
                .ok_or_else(|| field_error(8, "must be an integer"))?,
        )
    };
    Ok(Candle {
        symbol: symbol.clone(),
        interval,
        open_time: time(0)?,
        open: decimal(1)?,
        high: decimal(2)?,
        low: decimal(3)?,
        close: decimal(4)?,
        volume: decimal(5)?,
        close_time: time(6)?,
        quote_volume: optional_decimal(7)?,
        trades,
        taker_buy_base: optional_decimal(9)?,
        taker_buy_quote: optional_decimal(10)?,
        source: source.to_owned(),
    })
}

/// Checks every candle of a page; the first broken rule fails the whole page.
///
/// Rules: prices > 0; high ≥ low, open and close; low ≤ open and close; volumes ≥ 0; open time
/// aligned to the interval; close time one millisecond before the next open; open times strictly
/// increasing (no duplicates, no disorder).
pub fn validate_page(candles: &[Candle]) -> Result<()> {
    let mut previous: Option<&Candle> = None;
    for candle in candles {
        validate_candle(candle)?;
        if let Some(prev) = previous {
            if candle.open_time == prev.open_time {
                return Err(invalid(candle, "duplicate open_time in the page".into()));
            }
            if candle.open_time < prev.open_time {
                return Err(invalid(
                    candle,
                    format!(
                        "open_time out of order: comes after {}",
                        prev.open_time.to_rfc3339()
                    ),
                ));
            }
        }
        previous = Some(candle);
    }
    Ok(())
}

fn validate_candle(c: &Candle) -> Result<()> {
    for (name, value) in [
        ("open", c.open),
        ("high", c.high),
        ("low", c.low),
        ("close", c.close),
    ] {
        if value <= Decimal::ZERO {
            return Err(invalid(c, format!("{name} must be > 0, got {value}")));
        }
    }
    if c.high < c.low {
        return Err(invalid(
            c,
            format!("high {} is below low {}", c.high, c.low),
        ));
    }
    for (name, value) in [("open", c.open), ("close", c.close)] {
        if value > c.high {
            return Err(invalid(
                c,
                format!("{name} {value} is above high {}", c.high),
            ));
        }
        if value < c.low {
            return Err(invalid(c, format!("{name} {value} is below low {}", c.low)));
        }
    }
    let volumes = [
        ("volume", Some(c.volume)),
        ("quote_volume", c.quote_volume),
        ("taker_buy_base", c.taker_buy_base),
        ("taker_buy_quote", c.taker_buy_quote),
    ];
    for (name, value) in volumes {
        if let Some(v) = value
            && v < Decimal::ZERO
        {
            return Err(invalid(c, format!("{name} must be >= 0, got {v}")));
        }
    }
    if c.trades.is_some_and(|t| t < 0) {
        return Err(invalid(c, "trades must be >= 0".into()));
    }
    let open_ms = c.open_time.timestamp_millis();
    if !c.interval.is_aligned(open_ms) {
        return Err(invalid(
            c,
            format!("open_time is not aligned to the {} interval", c.interval),
        ));
    }
    let expected_close = c.interval.next_open(open_ms) - 1;
    if c.close_time.timestamp_millis() != expected_close {
        return Err(invalid(
            c,
            format!(
                "close_time {} should be {} for a {} candle",
                c.close_time.timestamp_millis(),
                expected_close,
                c.interval
            ),
        ));
    }
    Ok(())
}

fn invalid(c: &Candle, reason: String) -> Error {
    Error::InvalidCandle {
        symbol: c.symbol.to_string(),
        interval: c.interval.to_string(),
        open_time: c.open_time.to_rfc3339(),
        reason,
    }
}

/// Keeps only candles that have closed by `now` (Binance also returns the candle in progress).
pub fn closed_only(mut candles: Vec<Candle>, now: DateTime<Utc>) -> Vec<Candle> {
    candles.retain(|c| c.close_time < now);
    candles
}

/// Renders candles as a Binance kline page (the inverse of [`parse_page`]); unknown optional
/// fields are written as `null`.
pub fn render_page(candles: &[Candle]) -> Vec<u8> {
    let mut out = Vec::with_capacity(candles.len() * 200 + 2);
    out.push(b'[');
    for (i, c) in candles.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let opt = |d: Option<Decimal>| d.map_or_else(|| "null".to_owned(), |d| format!("\"{d}\""));
        let row = format!(
            "[{},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},{},{},{},{},\"0\"]",
            c.open_time.timestamp_millis(),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            c.close_time.timestamp_millis(),
            opt(c.quote_volume),
            c.trades
                .map_or_else(|| "null".to_owned(), |t| t.to_string()),
            opt(c.taker_buy_base),
            opt(c.taker_buy_quote),
        );
        out.extend_from_slice(row.as_bytes());
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"[
      [1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]
    ]"#;

    #[test]
    fn archive_csv_rows_parse_like_rest_rows_in_milliseconds_or_microseconds() {
        let from_rest = parse_page(PAGE.as_bytes(), &btc(), Interval::W1, "binance").expect("rest");
        let millis = "1499040000000,0.01634790,0.80000000,0.01575800,0.01577100,148976.11427815,\
                      1499644799999,2434.19055334,308,1756.87402397,28.46694368,0\n";
        let micros = "1499040000000000,0.01634790,0.80000000,0.01575800,0.01577100,148976.11427815,\
                      1499644799999999,2434.19055334,308,1756.87402397,28.46694368,0\n";
        let header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,\
                      taker_buy_volume,taker_buy_quote_volume,ignore\n";
        for body in [
            millis.to_owned(),
            micros.to_owned(),
            format!("{header}{millis}"),
        ] {
            let parsed = parse_csv(body.as_bytes(), &btc(), Interval::W1, "binance").expect("csv");
            assert_eq!(parsed, from_rest, "{body}");
        }
        let csv = parse_csv(millis.as_bytes(), &btc(), Interval::W1, "binance").expect("csv");
        assert_eq!(csv[0].open.to_string(), "0.01634790", "scale kept");
    }

    #[test]
    fn a_bad_archive_line_is_named() {
        let body = "1499040000000,0.1,0.2,0.1,0.1,1,1499644799999,1,3,1,1,0\n\
                    1499644800000,0.1,abc,0.1,0.1,1,1500249599999,1,3,1,1,0\n";
        let error = parse_csv(body.as_bytes(), &btc(), Interval::W1, "binance").expect_err("bad");
        let text = error.to_string();
        assert!(text.contains("row 2") && text.contains("`high`"), "{text}");
        let short =
            parse_csv(b"1499040000000,0.1\n", &btc(), Interval::W1, "binance").expect_err("short");
        assert!(short.to_string().contains("row 1 has 2 fields"), "{short}");
    }

    fn btc() -> Symbol {
        "BTCUSDT".parse().expect("symbol")
    }

    fn hourly(open_ms: i64, open: &str, high: &str, low: &str, close: &str) -> Candle {
        Candle {
            symbol: btc(),
            interval: Interval::H1,
            open_time: Utc.timestamp_millis_opt(open_ms).single().expect("time"),
            open: open.parse().expect("decimal"),
            high: high.parse().expect("decimal"),
            low: low.parse().expect("decimal"),
            close: close.parse().expect("decimal"),
            volume: Decimal::ONE,
            quote_volume: None,
            trades: None,
            taker_buy_base: None,
            taker_buy_quote: None,
            close_time: Utc
                .timestamp_millis_opt(open_ms + 3_600_000 - 1)
                .single()
                .expect("time"),
            source: "binance".into(),
        }
    }

    #[test]
    fn parses_binance_documented_example_exactly() {
        let candles = parse_page(PAGE.as_bytes(), &btc(), Interval::W1, "binance").expect("page");
        assert_eq!(candles.len(), 1);
        let c = &candles[0];
        assert_eq!(c.open.to_string(), "0.01634790");
        assert_eq!(c.volume.to_string(), "148976.11427815");
        assert_eq!(c.trades, Some(308));
        assert_eq!(c.close_time.timestamp_millis(), 1499644799999);
    }

    #[test]
    fn malformed_pages_name_row_and_field() {
        let err = parse_page(
            br#"[[1499040000000,"x","1","1","1","1",1,"1",1,"1","1","0"]]"#,
            &btc(),
            Interval::H1,
            "binance",
        )
        .expect_err("bad decimal");
        assert!(err.to_string().contains("row 0: field `open`"), "{err}");
        let err =
            parse_page(br#"{"code":-1}"#, &btc(), Interval::H1, "binance").expect_err("object");
        assert!(err.to_string().contains("expected a JSON array"), "{err}");
        let err = parse_page(br#"[[1,"1"]]"#, &btc(), Interval::H1, "binance").expect_err("short");
        assert!(err.to_string().contains("row 0 has 2 fields"), "{err}");
    }

    #[test]
    fn render_and_parse_round_trip() {
        let candles = vec![hourly(3_600_000, "1.10", "2.5", "1.0", "2.00")];
        let page = render_page(&candles);
        let back = parse_page(&page, &btc(), Interval::H1, "binance").expect("page");
        assert_eq!(back, candles);
    }

    #[test]
    fn validation_rejects_each_broken_rule() {
        let good = hourly(3_600_000, "10", "12", "9", "11");
        validate_page(std::slice::from_ref(&good)).expect("valid");

        let cases = [
            (
                hourly(3_600_000, "10", "8", "9", "9"),
                "high 8 is below low 9",
            ),
            (hourly(3_600_000, "0", "12", "9", "11"), "open must be > 0"),
            (
                hourly(3_600_000, "13", "12", "9", "11"),
                "open 13 is above high",
            ),
            (hourly(3_600_060, "10", "12", "9", "11"), "not aligned"),
        ];
        for (candle, expected) in cases {
            let err = validate_page(&[candle]).expect_err(expected);
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = validate_page(&[good.clone(), good.clone()]).expect_err("duplicate");
        assert!(err.to_string().contains("duplicate open_time"), "{err}");
        let earlier = hourly(0, "10", "12", "9", "11");
        let err = validate_page(&[good, earlier]).expect_err("order");
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn only_closed_candles_are_kept() {
        let c = hourly(3_600_000, "10", "12", "9", "11");
        let during = Utc
            .timestamp_millis_opt(3_600_000 + 10)
            .single()
            .expect("t");
        let after = Utc.timestamp_millis_opt(7_200_000).single().expect("t");
        assert!(closed_only(vec![c.clone()], during).is_empty());
        assert_eq!(closed_only(vec![c], after).len(), 1);
    }
}
