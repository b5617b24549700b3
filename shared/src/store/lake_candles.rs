//! Candles of a series as the lake stores them ([`LakeCandle`]), for the export: PostgreSQL
//! decodes a binary COPY straight into lake integers (the export's hot path); SQLite converts
//! decoded candles.

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::postgres::{PgPool, PgPoolCopyExt};

use super::Store;
use super::pg_binary::{
    CopyError, CopyRows, numeric_to_lake_decimal, numeric_to_string, timestamptz_to_millis,
};
use crate::candle_row::LakeCandle;
use crate::domain::{Interval, Symbol};
use crate::error::{Error, Result};

/// Columns of the COPY, in [`LakeCandle`]'s order.
const LAKE_CANDLE_COLUMNS: &str = "open_time, open, high, low, close, volume, close_time, \
     quote_volume, trades, taker_buy_base, taker_buy_quote";
/// Number of [`LAKE_CANDLE_COLUMNS`].
const LAKE_CANDLE_FIELDS: usize = 11;

impl From<CopyError> for Error {
    fn from(e: CopyError) -> Self {
        Self::CorruptRow(e.0)
    }
}

impl Store {
    /// Streams the candles of a series with open times in `[from, before)`, oldest first, as the
    /// lake stores them ([`LakeCandle`]); a value not exact at the lake's scale is an error.
    /// PostgreSQL decodes its binary columns straight into lake integers (the export's hot path);
    /// SQLite converts [`Store::stream_candles`]' candles.
    pub fn stream_lake_candles<'a>(
        &'a self,
        symbol: &'a Symbol,
        interval: Interval,
        from: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> BoxStream<'a, Result<LakeCandle>> {
        match self {
            Self::Postgres(pg) => copy_lake_candles(pg.pool(), symbol, interval, from, before),
            Self::Sqlite(_) => self
                .stream_candles(symbol, interval, from, before)
                .map(|candle| candle.and_then(|c| LakeCandle::from_candle(&c)))
                .boxed(),
        }
    }
}

/// A binary COPY rather than a query: PostgreSQL sends the rows as one stream, decoded here
/// field by field without sqlx rows. COPY takes no bind parameters, so the values are
/// written as literals: a validated symbol, an interval name and two UTC timestamps.
fn copy_lake_candles<'a>(
    pool: &'a PgPool,
    symbol: &'a Symbol,
    interval: Interval,
    from: DateTime<Utc>,
    before: DateTime<Utc>,
) -> BoxStream<'a, Result<LakeCandle>> {
    let statement = format!(
        "COPY (SELECT {LAKE_CANDLE_COLUMNS} FROM candles WHERE symbol = {} AND interval = {} \
         AND open_time >= {} AND open_time < {} ORDER BY open_time) TO STDOUT (FORMAT binary)",
        sql_literal(symbol.as_str()),
        sql_literal(interval.as_str()),
        timestamp_literal(from),
        timestamp_literal(before),
    );
    futures::stream::once(async move { pool.copy_out_raw(&statement).await })
        .map_ok(move |chunks| lake_candles_from_copy(chunks, symbol, interval))
        .map_err(Error::from)
        .try_flatten()
        .boxed()
}

/// A text literal, quotes doubled.
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A UTC timestamp literal with microseconds, PostgreSQL's precision.
fn timestamp_literal(at: DateTime<Utc>) -> String {
    format!("'{}'::timestamptz", at.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// The candles of a binary COPY of [`LAKE_CANDLE_COLUMNS`], one per row.
fn lake_candles_from_copy<'a>(
    chunks: BoxStream<'static, sqlx::Result<bytes::Bytes>>,
    symbol: &'a Symbol,
    interval: Interval,
) -> BoxStream<'a, Result<LakeCandle>> {
    let rows = CopyRows::<LAKE_CANDLE_FIELDS>::default();
    futures::stream::try_unfold((chunks, rows), move |(mut chunks, mut rows)| async move {
        loop {
            let candle =
                rows.next_row(|fields| lake_candle_from_fields(fields, symbol, interval))?;
            if let Some(candle) = candle {
                return Ok(Some((candle, (chunks, rows))));
            }
            match chunks.try_next().await? {
                Some(chunk) => rows.push(&chunk),
                None => {
                    rows.finish()?;
                    return Ok(None);
                }
            }
        }
    })
    .boxed()
}

/// One row of [`LAKE_CANDLE_COLUMNS`] from its binary fields; a value that is not exact at the
/// lake's scale is an error naming the series, candle and column.
fn lake_candle_from_fields(
    fields: [Option<&[u8]>; LAKE_CANDLE_FIELDS],
    symbol: &Symbol,
    interval: Interval,
) -> Result<LakeCandle> {
    let required = |index: usize, column: &'static str| {
        fields[index].ok_or_else(|| Error::CorruptRow(format!("{column} is NULL")))
    };
    let time = |index: usize, column: &'static str| {
        timestamptz_to_millis(required(index, column)?)
            .ok_or_else(|| Error::CorruptRow(format!("{column} is out of range")))
    };
    let open_time = time(0, "open_time")?;
    let decimal = |column: &'static str, bytes: &[u8]| {
        numeric_to_lake_decimal(bytes).map_err(|e| Error::InexactValue {
            series: format!("{symbol} {interval}"),
            open_time: DateTime::from_timestamp_millis(open_time)
                .map_or_else(|| format!("{open_time} ms"), |t| t.to_rfc3339()),
            column,
            value: numeric_to_string(bytes),
            reason: e.reason(),
        })
    };
    let exact = |index, column| decimal(column, required(index, column)?);
    let optional = |index: usize, column| fields[index].map(|b| decimal(column, b)).transpose();
    let trades = fields[8]
        .map(|b| {
            b.try_into()
                .map(i64::from_be_bytes)
                .map_err(|_| Error::CorruptRow("trades is not an int8".into()))
        })
        .transpose()?;
    Ok(LakeCandle {
        open_time,
        open: exact(1, "open")?,
        high: exact(2, "high")?,
        low: exact(3, "low")?,
        close: exact(4, "close")?,
        volume: exact(5, "volume")?,
        close_time: time(6, "close_time")?,
        quote_volume: optional(7, "quote_volume")?,
        trades,
        taker_buy_base: optional(9, "taker_buy_base")?,
        taker_buy_quote: optional(10, "taker_buy_quote")?,
    })
}
