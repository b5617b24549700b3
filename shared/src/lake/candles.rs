//! Candles in the lake: the hive-style layout, the Parquet schema and the Arrow batches.
//!
//! ```text
//! candles/symbol=BTCUSDT/interval=1m/date=2025-11-23/part-0.parquet
//! candles/symbol=BTCUSDT/interval=1m/_manifest.json
//! ```
//!
//! One file per UTC day, sorted by `open_time`, no duplicates. Schema (readable by pyarrow,
//! polars, DuckDB and Spark without Pricecast):
//!
//! | column | Arrow type | Parquet |
//! |---|---|---|
//! | `symbol`, `interval` | dictionary(int32, utf8) | BYTE_ARRAY, dictionary-encoded |
//! | `open_time`, `close_time` | timestamp(ms, UTC) | INT64 TIMESTAMP(MILLIS, UTC) |
//! | `open`, `high`, `low`, `close`, `volume` | decimal128(38, 8) | FIXED_LEN_BYTE_ARRAY(16) DECIMAL |
//! | `quote_volume`, `taker_buy_base`, `taker_buy_quote` | decimal128(38, 8), nullable | same |
//! | `trades` | int64, nullable | INT64 |
//!
//! Decimals use one scale for every value: 8, Binance's wire scale. The database keeps each
//! value with the scale it arrived with ("39610.14" and "39610.14000000" both occur); both are
//! the same number at scale 8, exactly. A value with non-zero digits beyond the 8th decimal
//! cannot be stored exactly and stops the export with an error naming it.
//!
//! Compression is zstd (level 1, as pyarrow's default), statistics are kept per page and
//! per row group. Only `symbol` and `interval` are dictionary-encoded: every other column of a
//! day is nearly all distinct values, which a dictionary stores twice (the values, then an
//! index per row); written plain they take 18 % less space and 22 % less time to encode.
//!
//! Row groups hold up to 1,048,576 rows: a day of 1s candles (86,400 rows, the finest
//! interval) is one row group, which scan engines read in one go and can skip by its
//! `open_time` min/max; more, smaller row groups would only add footer and seek overhead.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Array, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

pub use crate::candle_row::{DECIMAL_PRECISION, DECIMAL_SCALE, LakeCandle, to_lake_decimal};
use crate::domain::{Candle, Interval, Symbol};
use crate::error::{Error, Result};

/// Version of the lake's candle layout and schema, in every file's metadata and manifest.
pub const SCHEMA_VERSION: u32 = 1;
/// Rows per row group at most; see the module documentation.
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// zstd level: pyarrow's default, fast to write and about as small as level 3 on candles.
pub const ZSTD_LEVEL: i32 = 1;
/// Folder of every candle file.
pub const CANDLES_DIR: &str = "candles";
/// Name of the one file in each day partition.
pub const PART_FILE: &str = "part-0.parquet";
/// Key of the schema version in each file's key-value metadata.
pub const SCHEMA_VERSION_KEY: &str = "pricecast.schema_version";

const OPEN_TIME_COLUMN: usize = 2;

/// The folder of one series: `candles/symbol=BTCUSDT/interval=1m`.
pub fn series_dir(symbol: &Symbol, interval: Interval) -> String {
    format!("{CANDLES_DIR}/symbol={symbol}/interval={interval}")
}

/// One day of one series: the unit that is written and rewritten whole.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CandlePartition {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// UTC date of the candles' open times.
    pub date: NaiveDate,
}

impl CandlePartition {
    /// The partition's file, relative to the lake root.
    pub fn path(&self) -> String {
        format!(
            "{}/date={}/{PART_FILE}",
            series_dir(&self.symbol, self.interval),
            self.date.format("%Y-%m-%d")
        )
    }
}

/// The Arrow schema of candle files.
pub fn candle_schema() -> SchemaRef {
    let dictionary = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let time = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let decimal = || DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE);
    Arc::new(Schema::new(vec![
        Field::new("symbol", dictionary(), false),
        Field::new("interval", dictionary(), false),
        Field::new("open_time", time(), false),
        Field::new("open", decimal(), false),
        Field::new("high", decimal(), false),
        Field::new("low", decimal(), false),
        Field::new("close", decimal(), false),
        Field::new("volume", decimal(), false),
        Field::new("close_time", time(), false),
        Field::new("quote_volume", decimal(), true),
        Field::new("trades", DataType::Int64, true),
        Field::new("taker_buy_base", decimal(), true),
        Field::new("taker_buy_quote", decimal(), true),
    ]))
}

/// Parquet settings of candle files: zstd, statistics, dictionaries for the two string
/// columns only, sorted by `open_time`, one row group per day; deterministic, so the same rows
/// always give the same bytes.
pub fn writer_properties() -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("symbol"), true)
        .set_column_dictionary_enabled(ColumnPath::from("interval"), true)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: OPEN_TIME_COLUMN as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_owned(),
            SCHEMA_VERSION.to_string(),
        )]))
        .build())
}

/// Collects the candles of one series, in strictly increasing `open_time`, into a batch.
#[derive(Debug)]
pub struct CandleBatchBuilder {
    symbol: Symbol,
    interval: Interval,
    open_time: Vec<i64>,
    open: Vec<i128>,
    high: Vec<i128>,
    low: Vec<i128>,
    close: Vec<i128>,
    volume: Vec<i128>,
    close_time: Vec<i64>,
    quote_volume: Vec<Option<i128>>,
    trades: Vec<Option<i64>>,
    taker_buy_base: Vec<Option<i128>>,
    taker_buy_quote: Vec<Option<i128>>,
}

impl CandleBatchBuilder {
    /// An empty builder with room for `capacity` candles.
    pub fn new(symbol: Symbol, interval: Interval, capacity: usize) -> Self {
        Self {
            symbol,
            interval,
            open_time: Vec::with_capacity(capacity),
            open: Vec::with_capacity(capacity),
            high: Vec::with_capacity(capacity),
            low: Vec::with_capacity(capacity),
            close: Vec::with_capacity(capacity),
            volume: Vec::with_capacity(capacity),
            close_time: Vec::with_capacity(capacity),
            quote_volume: Vec::with_capacity(capacity),
            trades: Vec::with_capacity(capacity),
            taker_buy_base: Vec::with_capacity(capacity),
            taker_buy_quote: Vec::with_capacity(capacity),
        }
    }

    /// Candles added so far.
    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    /// Whether no candle was added.
    pub fn is_empty(&self) -> bool {
        self.open_time.is_empty()
    }

    /// Open time (ms) of the first and last candle added.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        Some((*self.open_time.first()?, *self.open_time.last()?))
    }

    /// Adds a candle. Refuses another series, a time not after the previous one (so a file is
    /// sorted and free of duplicates by construction), and a value that is not exact at the
    /// lake's scale.
    pub fn push(&mut self, candle: &Candle) -> Result<()> {
        if candle.symbol != self.symbol || candle.interval != self.interval {
            return Err(Error::InexactValue {
                series: format!("{} {}", candle.symbol, candle.interval),
                open_time: candle.open_time.to_rfc3339(),
                column: "symbol",
                value: candle.symbol.to_string(),
                reason: format!("the batch is for {} {}", self.symbol, self.interval),
            });
        }
        self.push_row(&LakeCandle::from_candle(candle)?)
    }

    /// Adds a candle of this builder's series already at the lake's scale. Refuses a time not
    /// after the previous one, so a file is sorted and free of duplicates by construction.
    pub fn push_row(&mut self, row: &LakeCandle) -> Result<()> {
        if let Some(&previous) = self.open_time.last()
            && row.open_time <= previous
        {
            return Err(Error::InexactValue {
                series: format!("{} {}", self.symbol, self.interval),
                open_time: DateTime::from_timestamp_millis(row.open_time)
                    .map_or_else(|| format!("{} ms", row.open_time), |t| t.to_rfc3339()),
                column: "open_time",
                value: row.open_time.to_string(),
                reason: format!(
                    "not after the previous candle ({previous} ms): rows must be sorted and unique"
                ),
            });
        }
        self.open_time.push(row.open_time);
        self.open.push(row.open);
        self.high.push(row.high);
        self.low.push(row.low);
        self.close.push(row.close);
        self.volume.push(row.volume);
        self.close_time.push(row.close_time);
        self.quote_volume.push(row.quote_volume);
        self.trades.push(row.trades);
        self.taker_buy_base.push(row.taker_buy_base);
        self.taker_buy_quote.push(row.taker_buy_quote);
        Ok(())
    }

    /// The batch, in the [`candle_schema`]; the builder is left empty for the next one.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let rows = self.len();
        let constant = |value: &str| -> ArrayRef {
            Arc::new(DictionaryArray::<Int32Type>::new(
                Int32Array::from(vec![0; rows]),
                Arc::new(StringArray::from(vec![value])),
            ))
        };
        let time = |values: &mut Vec<i64>| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from(std::mem::take(values)).with_timezone("UTC"))
        };
        let decimal = |values: &mut Vec<i128>| -> Result<ArrayRef> {
            Ok(Arc::new(
                Decimal128Array::from(std::mem::take(values))
                    .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)?,
            ))
        };
        let nullable = |values: &mut Vec<Option<i128>>| -> Result<ArrayRef> {
            Ok(Arc::new(
                Decimal128Array::from(std::mem::take(values))
                    .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)?,
            ))
        };
        let columns = vec![
            constant(self.symbol.as_str()),
            constant(self.interval.as_str()),
            time(&mut self.open_time),
            decimal(&mut self.open)?,
            decimal(&mut self.high)?,
            decimal(&mut self.low)?,
            decimal(&mut self.close)?,
            decimal(&mut self.volume)?,
            time(&mut self.close_time),
            nullable(&mut self.quote_volume)?,
            Arc::new(Int64Array::from(std::mem::take(&mut self.trades))),
            nullable(&mut self.taker_buy_base)?,
            nullable(&mut self.taker_buy_quote)?,
        ];
        Ok(RecordBatch::try_new(candle_schema(), columns)?)
    }
}

/// Encodes batches into a Parquet file in memory with the candle settings (benchmarks and
/// tests; the export streams to the lake instead).
pub fn encode_parquet(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        &mut out,
        candle_schema(),
        Some(writer_properties()?),
    )?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(out)
}

/// The UTC date a candle belongs to.
pub fn partition_date(open_time: DateTime<Utc>) -> NaiveDate {
    open_time.date_naive()
}

/// The UTC date of an open time in ms since the epoch; `None` out of chrono's range.
pub fn partition_date_ms(open_time_ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(open_time_ms).map(partition_date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CandleSource;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn candle(open_ms: i64, close: &str) -> Candle {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        Candle {
            symbol: "BTCUSDT".parse().expect("symbol"),
            interval: Interval::M1,
            open_time: DateTime::from_timestamp_millis(open_ms).expect("time"),
            open: d("39610.14"),
            high: d("39610.14000000"),
            low: d("39600"),
            close: d(close),
            volume: d("1.23456789"),
            quote_volume: Some(d("48900.5")),
            trades: Some(42),
            taker_buy_base: None,
            taker_buy_quote: Some(d("0.00000001")),
            close_time: DateTime::from_timestamp_millis(open_ms + 59_999).expect("time"),
            source: CandleSource::Binance.as_str().to_owned(),
        }
    }

    #[test]
    fn decimals_rescale_exactly_or_fail() {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        assert_eq!(to_lake_decimal(d("39610.14")), Ok(3_961_014_000_000));
        assert_eq!(to_lake_decimal(d("39610.14000000")), Ok(3_961_014_000_000));
        assert_eq!(to_lake_decimal(d("0.000000010000")), Ok(1));
        assert_eq!(to_lake_decimal(d("-2.5")), Ok(-250_000_000));
        assert!(to_lake_decimal(d("0.000000001")).is_err());
    }

    #[test]
    fn partitions_are_hive_style_days() {
        let partition = CandlePartition {
            symbol: "BTCUSDT".parse().expect("symbol"),
            interval: Interval::M1,
            date: NaiveDate::from_ymd_opt(2025, 11, 23).expect("date"),
        };
        assert_eq!(
            partition.path(),
            "candles/symbol=BTCUSDT/interval=1m/date=2025-11-23/part-0.parquet"
        );
        let late = DateTime::from_timestamp_millis(1_763_942_399_999).expect("time");
        assert_eq!(partition_date(late), partition.date);
    }

    #[test]
    fn batches_follow_the_schema_and_refuse_disorder() {
        let mut builder =
            CandleBatchBuilder::new("BTCUSDT".parse().expect("symbol"), Interval::M1, 4);
        builder.push(&candle(0, "1")).expect("first");
        builder.push(&candle(60_000, "2.5")).expect("second");
        assert!(builder.push(&candle(60_000, "3")).is_err(), "duplicate");
        assert!(
            builder.push(&candle(120_000, "0.123456789")).is_err(),
            "inexact"
        );
        assert_eq!(builder.time_range(), Some((0, 60_000)));
        let batch = builder.finish().expect("batch");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), candle_schema());
        assert!(builder.is_empty());
        let bytes = encode_parquet(std::slice::from_ref(&batch)).expect("encode");
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(
            bytes,
            encode_parquet(&[batch]).expect("again"),
            "deterministic"
        );
    }
}
